//! Rows on the wire: `@odata.etag`, the primary key always, lookups as `_x_value` with their
//! annotations, formatted values on request (`Prefer: odata.include-annotations`), and
//! `$expand`ed navigation properties (single-valued, collection-valued, nested).
use serde_json::{Map, Value, json};

use super::model::{Column, ColumnKind, Org, Row, Table};
use super::query::{Expand, Options, Prefer, compare_values, matches};
use super::{DvResult, bad_query};

const FORMATTED: &str = "OData.Community.Display.V1.FormattedValue";
const NAV_PROPERTY: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";
const LOOKUP_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
/// Related rows an unpaged collection-valued `$expand` returns at most.
pub(crate) const EXPAND_LIMIT: usize = 5_000;

pub(crate) struct Render<'a> {
    pub org: &'a Org,
    pub api: &'a str,
    pub prefer: &'a Prefer,
}

/// The row as a flat wire record (every column, lookups as `_x_value` ids): what `$filter`
/// and `$orderby` read.
pub(crate) fn record(table: &Table, row: &Row) -> Map<String, Value> {
    let mut out = Map::new();
    for column in &table.columns {
        let value = if column.logical_name == table.primary_id {
            json!(row.id)
        } else if column.logical_name == "createdon" {
            json!(stamp(row.created_on))
        } else if column.logical_name == "modifiedon" {
            json!(stamp(row.modified_on))
        } else if column.kind.is_lookup() {
            row.values
                .get(&column.logical_name)
                .and_then(|v| v.get("id"))
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            row.values
                .get(&column.logical_name)
                .cloned()
                .unwrap_or(Value::Null)
        };
        out.insert(column.wire_name(), value);
    }
    out
}

pub(crate) fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The record `$filter` evaluates: the flat record plus, for navigation paths the filter reads
/// (`parentcustomerid_account/name`), the related row's record.
pub(crate) fn filter_record(org: &Org, table: &Table, row: &Row, nav_names: &[String]) -> Map<String, Value> {
    let mut out = record(table, row);
    for name in nav_names {
        if let Some(nav) = table.single_nav(name) {
            let related = row
                .values
                .get(&nav.column.logical_name)
                .filter(|v| v.get("table").and_then(Value::as_str) == Some(nav.target.table.as_str()))
                .and_then(|v| v.get("id").and_then(Value::as_str))
                .and_then(|id| {
                    org.table(&nav.target.table)
                        .and_then(|t| t.row(id).map(|r| (t, r)))
                });
            let value = related.map_or(Value::Null, |(t, r)| Value::Object(record(t, r)));
            out.insert(name.clone(), value);
        }
    }
    out
}

/// Navigation properties a filter reads (first segments of paths with a `/`).
pub(crate) fn nav_paths(filter: &deskbridge_odata::Expr) -> Vec<String> {
    filter
        .properties()
        .into_iter()
        .filter_map(|p| p.split_once('/').map(|(first, _)| first.to_owned()))
        .collect()
}

fn unknown_property(table: &Table, name: &str) -> super::DvError {
    bad_query(format!(
        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{}'.",
        table.logical_name
    ))
}

/// Checks `$select`, `$orderby` and `$expand` names against the table (recursively).
pub(crate) fn validate(org: &Org, table: &Table, options: &Options, nested_query: bool) -> DvResult<()> {
    for name in options.select.iter().flatten() {
        if table.column_by_wire(name).is_none() {
            return Err(unknown_property(table, name));
        }
    }
    for (name, _) in &options.orderby {
        if table.column_by_wire(name).is_none() {
            return Err(unknown_property(table, name));
        }
    }
    for expand in &options.expand {
        if let Some(nav) = table.single_nav(&expand.nav) {
            let target = org
                .table(&nav.target.table)
                .ok_or_else(|| unknown_property(table, &expand.nav))?;
            validate(org, target, &expand.options, nested_query)?;
        } else if let Some(nav) = org.collection_nav(table, &expand.nav) {
            if nested_query && (expand.options.top.is_some() || !expand.options.orderby.is_empty()) {
                return Err(bad_query(
                    "Only $select and $filter clause can be provided while doing $expand on many-to-one relationship \
                     or nested one-to-many relationship.",
                ));
            }
            validate(org, nav.table, &expand.options, nested_query)?;
        } else {
            return Err(unknown_property(table, &expand.nav));
        }
    }
    Ok(())
}

/// `(name,accountnumber,primarycontactid(fullname))` for `@odata.context`.
pub(crate) fn context_projection(options: &Options) -> String {
    let mut items: Vec<String> = options.select.clone().unwrap_or_default();
    for e in &options.expand {
        items.push(format!(
            "{}({})",
            e.nav,
            context_projection(&e.options).trim_matches(|c| c == '(' || c == ')')
        ));
    }
    if items.is_empty() {
        String::new()
    } else {
        format!("({})", items.join(","))
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn decimal_text(value: f64) -> String {
    let cents = (value * 100.0).round();
    let whole = (cents / 100.0).trunc();
    let frac = (cents - whole * 100.0).abs();
    format!("{}.{:02}", thousands(whole as i64), frac as i64)
}

/// The formatted value of a column (en-US, as a user with default settings sees it).
fn formatted(org: &Org, column: &Column, value: &Value) -> Option<String> {
    match column.kind {
        ColumnKind::Picklist | ColumnKind::State | ColumnKind::Status => {
            value.as_i64().and_then(|v| column.label(v)).map(str::to_owned)
        }
        ColumnKind::MultiSelectPicklist => {
            let labels: Vec<&str> = value
                .as_str()?
                .split(',')
                .filter_map(|v| v.trim().parse::<i64>().ok())
                .filter_map(|v| column.label(v))
                .collect();
            Some(labels.join("; "))
        }
        ColumnKind::Boolean => column.label(i64::from(value.as_bool()?)).map(str::to_owned),
        ColumnKind::Money => value.as_f64().map(|v| format!("${}", decimal_text(v))),
        ColumnKind::Decimal => value.as_f64().map(decimal_text),
        ColumnKind::Integer => value.as_i64().map(thousands),
        ColumnKind::DateTime => value
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.strftime("%-m/%-d/%Y %-I:%M %p").to_string()),
        ColumnKind::Date => value
            .as_str()
            .and_then(|s| s.parse::<jiff::civil::Date>().ok())
            .map(|d| d.strftime("%-m/%-d/%Y").to_string()),
        ColumnKind::Lookup | ColumnKind::Customer | ColumnKind::Owner => {
            let id = value.get("id")?.as_str()?;
            let table = org.table(value.get("table")?.as_str()?)?;
            table.row(id).and_then(|r| table.name_of(r))
        }
        ColumnKind::String | ColumnKind::Memo | ColumnKind::Uniqueidentifier => None,
    }
}

impl Render<'_> {
    /// One row with `options` applied (selection, annotations, expands).
    pub(crate) fn row(&self, table: &Table, row: &Row, options: &Options) -> DvResult<Map<String, Value>> {
        let mut out = Map::new();
        out.insert("@odata.etag".into(), json!(format!("W/\"{}\"", row.version)));
        let flat = record(table, row);
        let selected: Vec<&Column> = match &options.select {
            Some(names) => table
                .columns
                .iter()
                .filter(|c| {
                    c.logical_name == table.primary_id
                        || names.iter().any(|n| n.eq_ignore_ascii_case(&c.wire_name()))
                })
                .collect(),
            None => table.columns.iter().collect(),
        };
        // A money column brings its currency lookup, as Dataverse does.
        let mut selected = selected;
        if selected.iter().any(|c| c.kind == ColumnKind::Money)
            && let Some(currency) = table.column("transactioncurrencyid")
            && !selected.iter().any(|c| c.logical_name == currency.logical_name)
        {
            selected.push(currency);
        }
        let want_formatted = self.prefer.wants(FORMATTED);
        for column in selected {
            let wire = column.wire_name();
            let value = flat.get(&wire).cloned().unwrap_or(Value::Null);
            let stored = if column.kind.is_lookup() {
                row.values.get(&column.logical_name)
            } else {
                Some(&value)
            };
            if want_formatted
                && let Some(text) = stored
                    .filter(|v| !v.is_null())
                    .and_then(|v| formatted(self.org, column, v))
            {
                out.insert(format!("{wire}@{FORMATTED}"), json!(text));
            }
            if column.kind.is_lookup()
                && let Some(target_table) = stored.and_then(|v| v.get("table")).and_then(Value::as_str)
            {
                if self.prefer.wants(NAV_PROPERTY)
                    && let Some(target) = column.targets.iter().find(|t| t.table == target_table)
                {
                    out.insert(format!("{wire}@{NAV_PROPERTY}"), json!(column.nav_name(target)));
                }
                if self.prefer.wants(LOOKUP_NAME) {
                    out.insert(format!("{wire}@{LOOKUP_NAME}"), json!(target_table));
                }
            }
            out.insert(wire, value);
        }
        for expand in &options.expand {
            self.expand(table, row, expand, &mut out)?;
        }
        Ok(out)
    }

    fn expand(
        &self,
        table: &Table,
        row: &Row,
        expand: &Expand,
        out: &mut Map<String, Value>,
    ) -> DvResult<()> {
        if let Some(nav) = table.single_nav(&expand.nav) {
            let related = row
                .values
                .get(&nav.column.logical_name)
                .filter(|v| v.get("table").and_then(Value::as_str) == Some(nav.target.table.as_str()))
                .and_then(|v| v.get("id").and_then(Value::as_str))
                .and_then(|id| {
                    self.org
                        .table(&nav.target.table)
                        .and_then(|t| t.row(id).map(|r| (t, r)))
                });
            let value = match related {
                Some((t, r)) => Value::Object(self.row(t, r, &expand.options)?),
                None => Value::Null,
            };
            out.insert(expand.nav.clone(), value);
            return Ok(());
        }
        let nav = self
            .org
            .collection_nav(table, &expand.nav)
            .ok_or_else(|| unknown_property(table, &expand.nav))?;
        let rows = related_rows(self.org, table, &row.id, nav.table, nav.column, &expand.options)?;
        let limit = expand.options.top.unwrap_or(EXPAND_LIMIT).min(EXPAND_LIMIT);
        let mut values = Vec::new();
        for r in rows.iter().take(limit) {
            values.push(Value::Object(self.row(nav.table, r, &expand.options)?));
        }
        out.insert(expand.nav.clone(), Value::Array(values));
        if rows.len() > limit && expand.options.top.is_none() {
            let select = expand
                .options
                .select
                .as_ref()
                .map(|s| format!("?$select={}", s.join(",")))
                .unwrap_or_default();
            out.insert(
                format!("{}@odata.nextLink", expand.nav),
                json!(format!(
                    "{}/{}({})/{}{select}",
                    self.api, table.entity_set_name, row.id, expand.nav
                )),
            );
        }
        Ok(())
    }
}

/// Rows of `related` whose lookup `column` points at `parent_id` in `parent`, filtered and sorted.
pub(crate) fn related_rows<'a>(
    org: &Org,
    parent: &Table,
    parent_id: &str,
    related: &'a Table,
    column: &Column,
    options: &Options,
) -> DvResult<Vec<&'a Row>> {
    let navs = options.filter.as_ref().map(nav_paths).unwrap_or_default();
    let mut rows = Vec::new();
    for r in &related.rows {
        let points_here = r.values.get(&column.logical_name).is_some_and(|v| {
            v.get("table").and_then(Value::as_str) == Some(parent.logical_name.as_str())
                && v.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(parent_id))
        });
        if !points_here {
            continue;
        }
        if let Some(filter) = &options.filter
            && !matches(filter, &filter_record(org, related, r, &navs))?
        {
            continue;
        }
        rows.push(r);
    }
    sort_rows(related, &mut rows, &options.orderby);
    Ok(rows)
}

/// Sorts by `$orderby`, then by primary key (the paging cookie's order).
pub(crate) fn sort_rows(table: &Table, rows: &mut [&Row], orderby: &[(String, bool)]) {
    if orderby.is_empty() {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        return;
    }
    let mut keyed: Vec<(Vec<Value>, &Row)> = rows
        .iter()
        .map(|r| {
            let flat = record(table, r);
            let keys = orderby
                .iter()
                .map(|(name, _)| flat.get(name).cloned().unwrap_or(Value::Null))
                .collect();
            (keys, *r)
        })
        .collect();
    keyed.sort_by(|(ka, a), (kb, b)| {
        for (i, (_, desc)) in orderby.iter().enumerate() {
            let ord = compare_values(ka.get(i), kb.get(i));
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        a.id.cmp(&b.id)
    });
    for (slot, (_, r)) in rows.iter_mut().zip(keyed) {
        *slot = r;
    }
}
