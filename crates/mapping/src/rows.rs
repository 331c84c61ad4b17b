//! Custom table syncs: rows of any source table → rows of a desk custom table, planned a page at
//! a time like users and devices (a custom-table sync is its own run, entity `custom_tables`).
//!
//! The configuration ([`CustomTableMapping`], in [`crate::MappingConfig::custom_tables`]) names
//! the source table, the desk table, an optional filter, the field mappings (a source path → a
//! desk column; `lookup/column` is a child lookup, `lookup/lookup/column` a grandchild lookup)
//! and what happens to desk rows whose source row was deleted ([`RemovedRows`]).
//!
//! Per table: [`RowPlanner::begin_table`], then for each page [`RowPlanner::lookups`] (which desk
//! rows to load) and [`RowPlanner::plan_page`], then [`RowPlanner::finish_table`] with the rows
//! the connection imported into the table (a complete full read removes those it did not find).
//!
//! Invariants:
//! - Values are typed, never coerced: a value whose JSON type does not fit the desk column's type
//!   (a number for a text column, a text for a number column, a date that is not one) is a
//!   per-record error ([`crate::PlanError`]); nothing changes for that row, and the table's read
//!   counts as partial (nobody is removed for being absent from it).
//! - A change names the row as `<desk table>/<source id>` (see [`row_key`]).
//! - Removing a row deletes it from the desk table (the store journals every value it held) only
//!   when the mapping says [`RemovedRows::Delete`]; with [`RemovedRows::Keep`] it stays and a note
//!   says so.
//! - Planning is pure and the planner keeps only the ids it has seen per table: a preview plans
//!   exactly what the sync applies, and applying a plan then planning again gives no writes
//!   ([`apply_rows`]).

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::input::{Completeness, ReadMode, Removal};
use crate::plan::{Action, Change, Counts, Entity, FieldChange, Plan, PlanError};

/// The variable a filter may use for the start of the table's last successful sync, substituted
/// as a Dataverse date-time literal (unquoted UTC, `2026-12-07T10:00:00Z`).
pub const LAST_SYNC_VARIABLE: &str = "$-INTEGRATORLASTSYNC";

/// Segments a field's source path may have: a column, a child lookup's column, a grandchild's.
pub const MAX_PATH_SEGMENTS: usize = 3;

/// One table mapping: a source table into a desk custom table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTableMapping {
    /// The source table's logical name (Dataverse: `cr7a1_contract`, `account`).
    pub source_table: String,
    /// The desk custom table's name; each desk table is the target of at most one mapping of a
    /// connection.
    pub desk_table: String,
    /// Only rows matching this OData filter (`statecode eq 0`, `modifiedon ge $-INTEGRATORLASTSYNC`).
    /// A leading `$filter=` is accepted and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Source path → desk column; each desk column at most once.
    pub fields: Vec<RowField>,
    /// What a row deleted in the source does to its desk row.
    #[serde(default)]
    pub removed_rows: RemovedRows,
}

impl CustomTableMapping {
    /// The filter without a leading `$filter=`, when one is set and not blank.
    pub fn filter_text(&self) -> Option<&str> {
        let text = self.filter.as_deref()?.trim();
        let text = text.strip_prefix("$filter=").unwrap_or(text).trim();
        (!text.is_empty()).then_some(text)
    }

    /// Whether the filter names the last-sync variable.
    pub fn uses_last_sync(&self) -> bool {
        self.filter_text().is_some_and(|f| f.contains(LAST_SYNC_VARIABLE))
    }

    /// The filter with the variable replaced by `last_sync` (already a date-time literal).
    pub fn filter_with(&self, last_sync: &str) -> Option<String> {
        self.filter_text()
            .map(|f| f.replace(LAST_SYNC_VARIABLE, last_sync))
    }
}

/// One field mapping of a table mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowField {
    /// A column (`cr7a1_name`), a child lookup's column through the lookup's navigation
    /// property (`cr7a1_accountid/name`), or a grandchild's (`cr7a1_accountid/primarycontactid/fullname`).
    pub source: String,
    /// The desk table's column.
    pub target: String,
}

impl RowField {
    pub fn segments(&self) -> Vec<&str> {
        self.source.split('/').collect()
    }
}

/// What a row deleted in the source (or, after a complete full read, not found in it) does to
/// the row it was imported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedRows {
    /// The desk row is deleted; the journal keeps every value it held.
    #[default]
    Delete,
    /// The desk row stays as it was.
    Keep,
}

/// A row of a source table as a connector read it: values by source path (the paths the
/// mapping's fields name), typed as the source gave them (text, number, boolean, date text,
/// choice labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRow {
    /// The desk table the row's mapping fills.
    pub desk_table: String,
    /// The row's primary key (a GUID, lower-cased).
    pub external_id: String,
    pub values: Map<String, Value>,
    /// The row's state (Dataverse: `statecode`, 0 active), when the read asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<i64>,
}

/// A desk custom table's column types by column name (`text`, `number`, `date`, `boolean`,
/// `single_select`, `multi_select`).
pub type DeskColumns = BTreeMap<String, String>;

/// A desk row this connection imported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskRow {
    pub id: RecordId,
    pub external_id: String,
    pub data: Map<String, Value>,
}

/// The key a plan names a row by: `<desk table>/<source id>`.
pub fn row_key(desk_table: &str, external_id: &str) -> String {
    format!("{desk_table}/{external_id}")
}

/// The desk table and source id of a [`row_key`].
pub fn split_row_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// Checks the table mappings' shape: what can be told without the desk or the source. Each
/// problem is one message naming the mapping.
pub fn check_table_mappings(mappings: &[CustomTableMapping]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut desk_tables = BTreeSet::new();
    for (i, m) in mappings.iter().enumerate() {
        let name = format!(
            "custom table mapping #{} ({} → {})",
            i + 1,
            m.source_table,
            m.desk_table
        );
        if m.source_table.trim().is_empty() {
            problems.push(format!(
                "{name}: source_table is empty; name the source table's logical name"
            ));
        }
        if m.desk_table.trim().is_empty() || m.desk_table.contains('/') {
            problems.push(format!(
                "{name}: desk_table must be a desk custom table's name (without '/')"
            ));
        }
        if !desk_tables.insert(m.desk_table.to_lowercase()) {
            problems.push(format!(
                "{name}: desk table {:?} is the target of another mapping; each desk table takes one source table",
                m.desk_table
            ));
        }
        if m.filter.is_some() && m.filter_text().is_none() {
            problems.push(format!(
                "{name}: the filter is empty; remove it or give an OData filter"
            ));
        }
        if m.fields.is_empty() {
            problems.push(format!(
                "{name}: no field mappings; map at least one source column to a desk column"
            ));
        }
        let mut targets = BTreeSet::new();
        for f in &m.fields {
            let segments = f.segments();
            if segments.len() > MAX_PATH_SEGMENTS || segments.iter().any(|s| s.trim().is_empty()) {
                problems.push(format!(
                    "{name}: field {:?} is not a column, lookup/column or lookup/lookup/column path",
                    f.source
                ));
            }
            if !targets.insert(f.target.as_str()) {
                problems.push(format!("{name}: desk column {:?} is mapped twice", f.target));
            }
        }
    }
    problems
}

/// Checks a mapping against its desk table: it exists, and every mapped column is one of its
/// columns. `columns` is `None` when the desk has no such table.
pub fn check_against_desk(mapping: &CustomTableMapping, columns: Option<&DeskColumns>) -> Vec<String> {
    let Some(columns) = columns else {
        return vec![format!(
            "custom table mapping {} → {}: the desk has no custom table {:?}; create it first (with the mapped \
             columns) or correct desk_table",
            mapping.source_table, mapping.desk_table, mapping.desk_table
        )];
    };
    mapping
        .fields
        .iter()
        .filter(|f| !columns.contains_key(&f.target))
        .map(|f| {
            format!(
                "custom table mapping {} → {}: desk table {:?} has no column {:?} (field {}); its columns are {}",
                mapping.source_table,
                mapping.desk_table,
                mapping.desk_table,
                f.target,
                f.source,
                columns.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

/// Whether `value` fits a desk column of type `ty` as it is (null fits every type).
pub fn fits(ty: &str, value: &Value) -> bool {
    match (ty, value) {
        (_, Value::Null) => true,
        ("text" | "single_select", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_)) => true,
        ("multi_select", Value::Array(items)) => items.iter().all(Value::is_string),
        ("date", Value::String(s)) => {
            s.parse::<jiff::civil::Date>().is_ok() || s.parse::<jiff::Timestamp>().is_ok()
        }
        _ => false,
    }
}

/// What a page needs loaded from the desk: the rows of these source ids, per desk table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowLookups {
    pub external_ids: Vec<String>,
}

/// The open table of a [`RowPlanner`].
struct OpenTable {
    mapping: CustomTableMapping,
    columns: DeskColumns,
    tenant: String,
    mode: ReadMode,
    /// Source ids read (refused ones included: they exist in the source).
    seen: BTreeSet<String>,
    refused: usize,
}

/// Plans custom rows, a table and a page at a time.
pub struct RowPlanner {
    mappings: Vec<CustomTableMapping>,
    open: Option<OpenTable>,
}

impl RowPlanner {
    pub fn new(mappings: &[CustomTableMapping]) -> Self {
        Self {
            mappings: mappings.to_vec(),
            open: None,
        }
    }

    /// The mapping of `desk_table`.
    pub fn mapping(&self, desk_table: &str) -> Option<&CustomTableMapping> {
        self.mappings.iter().find(|m| m.desk_table == desk_table)
    }

    /// A table's read begins: `columns` are its desk table's (checked against the mapping first).
    pub fn begin_table(
        &mut self,
        tenant: &str,
        desk_table: &str,
        mode: ReadMode,
        columns: Option<&DeskColumns>,
    ) -> Result<(), String> {
        let mapping = self
            .mapping(desk_table)
            .ok_or_else(|| {
                format!("the source read desk table {desk_table:?}, which no custom table mapping fills")
            })?
            .clone();
        let problems = check_against_desk(&mapping, columns);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        self.open = Some(OpenTable {
            mapping,
            columns: columns.cloned().unwrap_or_default(),
            tenant: tenant.to_owned(),
            mode,
            seen: BTreeSet::new(),
            refused: 0,
        });
        Ok(())
    }

    /// The open table's desk name.
    pub fn open_table(&self) -> Option<&str> {
        self.open.as_ref().map(|o| o.mapping.desk_table.as_str())
    }

    /// The desk rows a page's rows and removals can be: by source id.
    pub fn lookups(&self, rows: &[SourceRow], removed: &[Removal]) -> RowLookups {
        let mut ids: BTreeSet<String> = rows.iter().map(|r| r.external_id.clone()).collect();
        ids.extend(removed.iter().map(|r| r.external_id.clone()));
        RowLookups {
            external_ids: ids.into_iter().collect(),
        }
    }

    /// Plans a page: creates, updates and (by the mapping's choice) deletions, against the desk
    /// rows of the page's ids.
    pub fn plan_page(&mut self, rows: &[SourceRow], removed: &[Removal], desk: &[DeskRow]) -> Plan {
        let mut plan = empty_plan();
        let Some(open) = self.open.as_mut() else {
            plan.notes
                .push("the source sent rows outside a table's read; nothing was planned for them".into());
            return plan;
        };
        let by_id: BTreeMap<&str, &DeskRow> = desk.iter().map(|d| (d.external_id.as_str(), d)).collect();
        let table = open.mapping.desk_table.clone();
        let rule = format!("custom table mapping {} → {}", open.mapping.source_table, table);
        for row in rows {
            open.seen.insert(row.external_id.clone());
            let key = row_key(&table, &row.external_id);
            if row.desk_table != table {
                open.refused += 1;
                plan.errors.push(PlanError {
                    tenant_id: open.tenant.clone(),
                    external_id: key,
                    message: format!(
                        "the row belongs to desk table {:?} but was read with {table:?}; it was not imported",
                        row.desk_table
                    ),
                });
                continue;
            }
            let wanted = match mapped(&open.mapping, &open.columns, row) {
                Ok(wanted) => wanted,
                Err(message) => {
                    open.refused += 1;
                    plan.counts.errors += 1;
                    plan.errors.push(PlanError {
                        tenant_id: open.tenant.clone(),
                        external_id: key,
                        message: format!(
                            "{message}; the row was not imported, nor changed (it is read again when it changes in \
                             the source, or by a full read)"
                        ),
                    });
                    continue;
                }
            };
            match by_id.get(row.external_id.as_str()) {
                None => {
                    let fields: BTreeMap<String, FieldChange> = wanted
                        .into_iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| {
                            (
                                k,
                                FieldChange {
                                    before: Value::Null,
                                    after: v,
                                },
                            )
                        })
                        .collect();
                    plan.counts.created += 1;
                    plan.changes.push(Change {
                        entity: Entity::CustomRow,
                        external_id: key,
                        name: None,
                        action: Action::Create,
                        fields,
                        rule: rule.clone(),
                        reason: format!(
                            "{} row {} is not in desk table {table} yet",
                            open.mapping.source_table, row.external_id
                        ),
                    });
                }
                Some(existing) => {
                    let fields: BTreeMap<String, FieldChange> = wanted
                        .into_iter()
                        .filter_map(|(k, v)| {
                            let before = existing.data.get(&k).cloned().unwrap_or(Value::Null);
                            (before != v).then_some((k, FieldChange { before, after: v }))
                        })
                        .collect();
                    if fields.is_empty() {
                        plan.counts.unchanged += 1;
                        continue;
                    }
                    plan.counts.updated += 1;
                    plan.targets
                        .insert(Plan::target_key(Entity::CustomRow, &key), existing.id);
                    plan.changes.push(Change {
                        entity: Entity::CustomRow,
                        external_id: key,
                        name: None,
                        action: Action::Update,
                        fields,
                        rule: rule.clone(),
                        reason: format!("{} row {} changed", open.mapping.source_table, row.external_id),
                    });
                }
            }
        }
        for removal in removed {
            if let Some(existing) = by_id.get(removal.external_id.as_str()) {
                remove(&mut plan, open, existing, "was deleted in the source");
            }
        }
        plan
    }

    /// The table's read is over: a complete full read removes (per the mapping) the rows the
    /// connection imported into the table that it did not find. `imported` are those rows.
    pub fn finish_table(&mut self, completeness: Completeness, imported: &[DeskRow]) -> Plan {
        let mut plan = empty_plan();
        let Some(open) = self.open.take() else {
            return plan;
        };
        let mut open = open;
        if open.mode != ReadMode::Full {
            return plan;
        }
        if completeness != Completeness::Complete || open.refused > 0 {
            let absent = imported
                .iter()
                .filter(|d| !open.seen.contains(&d.external_id))
                .count();
            if absent > 0 {
                plan.notes.push(format!(
                    "desk table {}: {absent} row(s) were not found, but the read was not complete, so none was removed",
                    open.mapping.desk_table
                ));
            }
            return plan;
        }
        let absent: Vec<&DeskRow> = imported
            .iter()
            .filter(|d| !open.seen.contains(&d.external_id))
            .collect();
        for existing in absent {
            remove(
                &mut plan,
                &mut open,
                existing,
                "is no longer in the source (a complete full read did not find it)",
            );
        }
        plan
    }
}

fn remove(plan: &mut Plan, open: &mut OpenTable, existing: &DeskRow, why: &str) {
    let table = &open.mapping.desk_table;
    match open.mapping.removed_rows {
        RemovedRows::Keep => plan.notes.push(format!(
            "desk table {table}: row {} (source {}) {why}; kept, as the mapping's removed_rows is \"keep\"",
            existing.id, existing.external_id
        )),
        RemovedRows::Delete => {
            let key = row_key(table, &existing.external_id);
            plan.counts.deactivated += 1;
            plan.targets
                .insert(Plan::target_key(Entity::CustomRow, &key), existing.id);
            plan.changes.push(Change {
                entity: Entity::CustomRow,
                external_id: key,
                name: None,
                action: Action::Deactivate,
                fields: existing
                    .data
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            FieldChange {
                                before: v.clone(),
                                after: Value::Null,
                            },
                        )
                    })
                    .collect(),
                rule: format!(
                    "custom table mapping {} → {table} (removed_rows: delete)",
                    open.mapping.source_table
                ),
                reason: format!(
                    "the source row {why}: the desk row is deleted (the journal keeps its values)"
                ),
            });
        }
    }
}

/// A row's desk values by column, each checked against its column's type.
fn mapped(
    mapping: &CustomTableMapping,
    columns: &DeskColumns,
    row: &SourceRow,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for field in &mapping.fields {
        let value = row.values.get(&field.source).cloned().unwrap_or(Value::Null);
        let ty = columns.get(&field.target).map(String::as_str).unwrap_or("text");
        if !fits(ty, &value) {
            return Err(format!(
                "{} is {} ({value}), which does not fit desk column {}.{} of type {ty}",
                field.source,
                deskbridge_core::json_kind(&value),
                mapping.desk_table,
                field.target
            ));
        }
        out.insert(field.target.clone(), value);
    }
    Ok(out)
}

pub(crate) fn empty_plan() -> Plan {
    Plan {
        generated_at: jiff::Timestamp::UNIX_EPOCH,
        changes: Vec::new(),
        targets: BTreeMap::new(),
        locked: Vec::new(),
        circuit_breaker: Vec::new(),
        held: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
        counts: Counts::default(),
    }
}

/// Applies a plan's row changes to a desk snapshot (rows by desk table), as the store would: for
/// tests of "preview = apply" and "apply twice is a no-op".
pub fn apply_rows(desk: &mut BTreeMap<String, Vec<DeskRow>>, plan: &Plan, next_id: &mut i64) {
    for change in plan.changes.iter().filter(|c| c.entity == Entity::CustomRow) {
        let Some((table, external)) = split_row_key(&change.external_id) else {
            continue;
        };
        let rows = desk.entry(table.to_owned()).or_default();
        match change.action {
            Action::Create | Action::Update => {
                let data: Map<String, Value> = change
                    .fields
                    .iter()
                    .map(|(k, f)| (k.clone(), f.after.clone()))
                    .collect();
                match rows.iter_mut().find(|r| r.external_id == external) {
                    Some(row) => row.data.extend(data),
                    None => {
                        *next_id += 1;
                        rows.push(DeskRow {
                            id: RecordId(*next_id),
                            external_id: external.to_owned(),
                            data,
                        });
                    }
                }
            }
            Action::Deactivate => rows.retain(|r| r.external_id != external),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn mapping() -> CustomTableMapping {
        serde_json::from_value(json!({
            "source_table": "cr7a1_contract",
            "desk_table": "contracts",
            "filter": "$filter=modifiedon ge $-INTEGRATORLASTSYNC",
            "fields": [
                {"source": "cr7a1_name", "target": "name"},
                {"source": "cr7a1_seats", "target": "seats"},
                {"source": "cr7a1_accountid/primarycontactid/fullname", "target": "signatory"},
            ],
        }))
        .unwrap()
    }

    fn columns() -> DeskColumns {
        [("name", "text"), ("seats", "number"), ("signatory", "text")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn row(id: &str, name: &str, seats: Value) -> SourceRow {
        let mut values = Map::new();
        values.insert("cr7a1_name".into(), json!(name));
        values.insert("cr7a1_seats".into(), seats);
        values.insert("cr7a1_accountid/primarycontactid/fullname".into(), json!("Ada"));
        SourceRow {
            desk_table: "contracts".into(),
            external_id: id.into(),
            values,
            state: None,
        }
    }

    fn desk_of(desk: &BTreeMap<String, Vec<DeskRow>>) -> Vec<DeskRow> {
        desk.get("contracts").cloned().unwrap_or_default()
    }

    #[test]
    fn the_filter_takes_the_last_sync_as_a_date_literal() {
        let m = mapping();
        assert!(m.uses_last_sync());
        assert_eq!(
            m.filter_with("2026-12-07T10:00:00Z").as_deref(),
            Some("modifiedon ge 2026-12-07T10:00:00Z")
        );
    }

    #[test]
    fn mappings_are_checked_with_messages_naming_them() {
        let mut bad = mapping();
        bad.fields.push(RowField {
            source: "a/b/c/d".into(),
            target: "name".into(),
        });
        let problems = check_table_mappings(&[bad.clone(), bad]);
        let text = problems.join("\n");
        assert!(text.contains("\"a/b/c/d\" is not a column"), "{text}");
        assert!(text.contains("desk column \"name\" is mapped twice"), "{text}");
        assert!(text.contains("is the target of another mapping"), "{text}");
        let desk = check_against_desk(&mapping(), None).join("");
        assert!(
            desk.contains("the desk has no custom table \"contracts\""),
            "{desk}"
        );
        let mut fewer = columns();
        fewer.remove("seats");
        let desk = check_against_desk(&mapping(), Some(&fewer)).join("");
        assert!(desk.contains("has no column \"seats\""), "{desk}");
    }

    #[test]
    fn a_wrong_typed_value_is_a_per_record_error_and_the_rest_is_planned() {
        let mut planner = RowPlanner::new(&[mapping()]);
        planner
            .begin_table("t", "contracts", ReadMode::Full, Some(&columns()))
            .unwrap();
        let rows = [row("a", "One", json!(5)), row("b", "Two", json!("five"))];
        let plan = planner.plan_page(&rows, &[], &[]);
        assert_eq!(plan.counts.created, 1);
        assert_eq!(plan.errors.len(), 1);
        assert_eq!(plan.errors[0].external_id, "contracts/b");
        assert!(
            plan.errors[0].message.contains("cr7a1_seats is text (\"five\")"),
            "{}",
            plan.errors[0].message
        );
        assert!(plan.errors[0].message.contains("contracts.seats of type number"));
        // A partial read removes nobody.
        let imported = [DeskRow {
            id: RecordId(9),
            external_id: "gone".into(),
            data: Map::new(),
        }];
        let end = planner.finish_table(Completeness::Complete, &imported);
        assert!(end.changes.is_empty(), "{end:?}");
    }

    #[test]
    fn removed_rows_are_deleted_or_kept_as_the_mapping_says() {
        let existing = DeskRow {
            id: RecordId(3),
            external_id: "x".into(),
            data: Map::new(),
        };
        let removal = Removal {
            external_id: "x".into(),
            reason: crate::RemovalReason::Deleted,
        };
        let mut planner = RowPlanner::new(&[mapping()]);
        planner
            .begin_table("t", "contracts", ReadMode::Delta, Some(&columns()))
            .unwrap();
        let plan = planner.plan_page(
            &[],
            std::slice::from_ref(&removal),
            std::slice::from_ref(&existing),
        );
        assert_eq!(plan.changes[0].action, Action::Deactivate);
        let mut keep = mapping();
        keep.removed_rows = RemovedRows::Keep;
        let mut planner = RowPlanner::new(&[keep]);
        planner
            .begin_table("t", "contracts", ReadMode::Delta, Some(&columns()))
            .unwrap();
        let plan = planner.plan_page(&[], &[removal], &[existing]);
        assert!(plan.changes.is_empty());
        assert!(plan.notes[0].contains("kept"), "{:?}", plan.notes);
    }

    /// Plans a full read of `rows` against `desk`, page by page.
    fn plan_full(rows: &[SourceRow], desk: &BTreeMap<String, Vec<DeskRow>>, page: usize) -> Plan {
        let mut planner = RowPlanner::new(&[mapping()]);
        planner
            .begin_table("t", "contracts", ReadMode::Full, Some(&columns()))
            .unwrap();
        let mut plan = empty_plan();
        let current = desk_of(desk);
        for chunk in rows.chunks(page.max(1)) {
            let lookups = planner.lookups(chunk, &[]);
            let wanted: Vec<DeskRow> = current
                .iter()
                .filter(|d| lookups.external_ids.contains(&d.external_id))
                .cloned()
                .collect();
            plan.absorb(planner.plan_page(chunk, &[], &wanted));
        }
        plan.absorb(planner.finish_table(Completeness::Complete, &current));
        plan
    }

    proptest! {
        #[test]
        fn preview_is_apply_and_applying_twice_writes_nothing(
            before in proptest::collection::vec(("[a-f]", "[A-C]{1,3}", 0u32..5), 0..8),
            after in proptest::collection::vec(("[a-f]", "[A-C]{1,3}", 0u32..5), 0..8),
            page in 1usize..4,
        ) {
            let dedup = |list: Vec<(String, String, u32)>| {
                let mut seen = BTreeSet::new();
                list.into_iter()
                    .filter(|(id, _, _)| seen.insert(id.clone()))
                    .map(|(id, name, seats)| row(&id, &name, json!(seats)))
                    .collect::<Vec<_>>()
            };
            let (before, after) = (dedup(before), dedup(after));
            let mut desk = BTreeMap::new();
            let mut next = 0;
            let first = plan_full(&before, &desk, page);
            apply_rows(&mut desk, &first, &mut next);
            // Preview: planning again against the same desk gives the same plan.
            prop_assert_eq!(plan_full(&after, &desk, page), plan_full(&after, &desk, page));
            let second = plan_full(&after, &desk, page);
            apply_rows(&mut desk, &second, &mut next);
            // The desk now holds exactly the source's rows.
            let mut ids: Vec<String> = desk_of(&desk).into_iter().map(|r| r.external_id).collect();
            ids.sort();
            let mut wanted: Vec<String> = after.iter().map(|r| r.external_id.clone()).collect();
            wanted.sort();
            prop_assert_eq!(ids, wanted);
            // Applied, nothing is left to write.
            let third = plan_full(&after, &desk, page);
            prop_assert!(third.changes.is_empty(), "{:?}", third.changes);
            prop_assert_eq!(third.counts.unchanged, after.len());
        }
    }
}
