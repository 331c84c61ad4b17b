//! Custom table syncs: any Dataverse table into a desk custom table, per the connection's table
//! mappings (`MappingConfig::custom_tables`), one partition per mapping.
//!
//! Each mapping is resolved against the organisation's metadata first (`EntityDefinitions`: the
//! table, its entity set and primary key, whether change tracking is on; its columns; the lookup
//! columns' targets, read through the `LookupAttributeMetadata` cast), so a table or column that
//! does not exist is refused by name before any row is read.
//!
//! How a table is read:
//! - **Change tracking** (the table has it, and the mapping has no filter — Dataverse refuses
//!   `$filter` and `$expand` with `Prefer: odata.track-changes`): a full round stores its
//!   `@odata.deltaLink` as the cursor `table/<logical>/delta`; later runs read only creates,
//!   updates and deletes (deleted rows → removals, handled per the mapping's `removed_rows`). An
//!   expired token (`0x80044352`) is answered by a full read, which removes only what a complete
//!   read did not find.
//! - **Otherwise** a `modifiedon` watermark: the cursor `table/<logical>/since` keeps the start of
//!   the table's last complete read; the next read asks `modifiedon ge <since − 5 minutes>` (the
//!   overlap absorbs clock skew; rows read twice change nothing). A filter naming
//!   `$-INTEGRATORLASTSYNC` gets that start instead, as a Dataverse date-time literal (unquoted
//!   UTC, `2026-12-07T10:00:00Z`), and no watermark of ours; before the first complete read the
//!   variable is `1900-01-01T00:00:00Z` and the read is a full one. Deleted rows cannot be seen
//!   this way: a full read (`--full`) removes what it did not find.
//!
//! Lookups: a field `lookup/column` (child) or `lookup/lookup/column` (grandchild, two
//! relationships away) names single-valued navigation properties. Where Dataverse allows it they
//! are read with the rows through (nested) `$expand`; on change-tracking reads, where it does
//! not, through batched lookups: the page's lookup ids, 50 at a time, with
//! `Microsoft.Dynamics.CRM.In` on the related table (and `$expand` for the grandchild there).
//!
//! Values keep their Dataverse types: text, numbers, booleans, dates as text, choices as their
//! labels (the formatted value), multi-select choices as a list of labels, a lookup column as the
//! related row's id. Whether a value fits the desk column is the mapping engine's check; a row
//! that does not fit is an error against it, never coerced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use deskbridge_dataverse::{
    Annotations, AttributeMetadata, Change, DataverseClient, DataverseError, EntityMetadata, Expand, Query,
    Row, filter,
};
use deskbridge_mapping::{
    Completeness, CustomTableMapping, CustomerMappings, ReadMode, Removal, RemovalReason, RowField, SourceRow,
};
use deskbridge_source::{
    Emitter, Page, PartitionEnd, PartitionStart, ReadEvent, RequestRecord, RequestSink, SourceRecord,
    StoredCursors, SyncError,
};
use deskbridge_store::IntegrationError;
use serde_json::{Map, Value};

use crate::error::from_dataverse;
use crate::read::MAX_PAGE_SIZE;

/// The cursor of a change-tracked table's delta link.
pub fn delta_cursor(logical: &str) -> String {
    format!("{TABLE_STREAMS}/{logical}/delta")
}

/// The cursor of the start of a table's last complete read (the watermark and the last-sync
/// variable).
pub fn since_cursor(logical: &str) -> String {
    format!("{TABLE_STREAMS}/{logical}/since")
}

/// The cursors' prefix of custom table syncs.
pub const TABLE_STREAMS: &str = "table";

/// The last-sync variable's value before any complete read: earlier than any row.
pub const BEFORE_ANY_SYNC: &str = "1900-01-01T00:00:00Z";

/// How far before the watermark a watermark read starts.
const WATERMARK_OVERLAP_SECONDS: i64 = 300;

/// Ids per batched lookup request.
const LOOKUP_BATCH: usize = 50;

const FORMATTED: &str = "@OData.Community.Display.V1.FormattedValue";

/// One lookup step of a field's path.
#[derive(Debug, Clone, PartialEq)]
struct Hop {
    /// The single-valued navigation property (`cr7a1_accountid`, `parentcustomerid_account`).
    nav: String,
    /// The lookup column behind it.
    column: String,
    /// The table it points to.
    table: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaf {
    Plain,
    Choice,
    Choices,
    Lookup,
}

#[derive(Debug, Clone)]
struct FieldRead {
    path: String,
    hops: Vec<Hop>,
    column: String,
    leaf: Leaf,
}

/// A table's metadata as the read needs it.
#[derive(Debug, Clone)]
struct TableMeta {
    entity: EntityMetadata,
    /// Columns by lower-cased logical name, lookups with their targets.
    columns: BTreeMap<String, AttributeMetadata>,
}

/// Metadata read once per run.
pub(crate) struct Metadata<'a> {
    client: &'a DataverseClient,
    tables: BTreeMap<String, TableMeta>,
}

impl<'a> Metadata<'a> {
    pub(crate) fn new(client: &'a DataverseClient) -> Self {
        Self {
            client,
            tables: BTreeMap::new(),
        }
    }

    async fn table(&mut self, logical: &str) -> Result<TableMeta, String> {
        let key = logical.to_ascii_lowercase();
        if let Some(meta) = self.tables.get(&key) {
            return Ok(meta.clone());
        }
        let entity = self.client.entity_definition(&key).await.map_err(|e| {
            if e.api().is_some_and(|a| a.status == 404) {
                format!(
                    "the organisation has no table {logical:?} (EntityDefinitions(LogicalName='{key}') answered 404): \
                     give the table's logical name (Power Apps > Tables > the table > Properties > Logical name)"
                )
            } else {
                format!("the metadata of table {logical:?} could not be read: {e}")
            }
        })?;
        let mut columns: BTreeMap<String, AttributeMetadata> = self
            .client
            .attributes(&key)
            .await
            .map_err(|e| format!("the columns of table {logical:?} could not be read: {e}"))?
            .into_iter()
            .map(|a| (a.logical_name.to_ascii_lowercase(), a))
            .collect();
        for lookup in self
            .client
            .lookup_targets(&key)
            .await
            .map_err(|e| format!("the lookup columns of table {logical:?} could not be read: {e}"))?
        {
            if let Some(column) = columns.get_mut(&lookup.logical_name.to_ascii_lowercase()) {
                column.targets = lookup.targets;
            }
        }
        let meta = TableMeta { entity, columns };
        self.tables.insert(key, meta.clone());
        Ok(meta)
    }
}

/// A table mapping resolved against the organisation's metadata.
#[derive(Debug, Clone)]
pub(crate) struct TableRead {
    pub mapping: CustomTableMapping,
    entity: EntityMetadata,
    fields: Vec<FieldRead>,
    /// Primary keys of the tables lookups reach, by logical name.
    keys: BTreeMap<String, (String, String)>,
    /// The prefix of the read's cursors: [`TABLE_STREAMS`], or the customers' own, so that a
    /// table read both as customers and as a custom table keeps two positions.
    pub streams: &'static str,
}

impl TableRead {
    fn delta_stream(&self) -> String {
        format!("{}/{}/delta", self.streams, self.entity.logical_name)
    }

    fn since_stream(&self) -> String {
        format!("{}/{}/since", self.streams, self.entity.logical_name)
    }

    pub(crate) fn change_tracking(&self) -> bool {
        self.entity.change_tracking_enabled
    }

    /// The table's entity set and primary key.
    pub(crate) fn key(&self) -> (&str, &str) {
        (&self.entity.entity_set_name, &self.entity.primary_id_attribute)
    }
}

/// The navigation property `nav` of a table: its lookup column and target table.
fn hop(meta: &TableMeta, nav: &str) -> Result<Hop, String> {
    let wanted = nav.to_ascii_lowercase();
    let table = &meta.entity.logical_name;
    for column in meta.columns.values().filter(|c| c.is_lookup()) {
        let name = column.logical_name.to_ascii_lowercase();
        if name == wanted {
            return match column.targets.as_slice() {
                [target] => Ok(Hop {
                    nav: nav.to_owned(),
                    column: column.logical_name.clone(),
                    table: target.clone(),
                }),
                [] => Err(format!(
                    "lookup {table}.{nav} names no target table in the metadata"
                )),
                targets => Err(format!(
                    "lookup {table}.{nav} may point to {}: name the navigation property of one, e.g. {nav}_{}",
                    targets.join(" or "),
                    targets[0]
                )),
            };
        }
        if let Some(target) = column
            .targets
            .iter()
            .find(|t| format!("{name}_{}", t.to_ascii_lowercase()) == wanted)
        {
            return Ok(Hop {
                nav: nav.to_owned(),
                column: column.logical_name.clone(),
                table: target.clone(),
            });
        }
    }
    Err(match meta.columns.get(&wanted) {
        Some(_) => format!("{table}.{nav} is a column, not a lookup: a path goes through lookups only"),
        None => format!("table {table} has no lookup {nav:?}"),
    })
}

fn leaf_of(meta: &TableMeta, column: &str) -> Result<(String, Leaf), String> {
    let attribute = meta.columns.get(&column.to_ascii_lowercase()).ok_or_else(|| {
        format!(
            "table {} has no column {column:?} (EntityDefinitions(LogicalName='{}')/Attributes)",
            meta.entity.logical_name, meta.entity.logical_name
        )
    })?;
    let leaf = if attribute.is_multi_select() {
        Leaf::Choices
    } else if attribute.is_lookup() {
        Leaf::Lookup
    } else if matches!(attribute.attribute_type.as_str(), "Picklist" | "State" | "Status") {
        Leaf::Choice
    } else {
        Leaf::Plain
    };
    Ok((attribute.logical_name.clone(), leaf))
}

/// Resolves a table mapping: every problem is one message naming the mapping and the field.
pub(crate) async fn resolve(
    meta: &mut Metadata<'_>,
    mapping: &CustomTableMapping,
) -> Result<TableRead, Vec<String>> {
    let name = format!(
        "custom table mapping {} → {}",
        mapping.source_table, mapping.desk_table
    );
    let root = meta
        .table(&mapping.source_table)
        .await
        .map_err(|e| vec![format!("{name}: {e}")])?;
    let mut problems = Vec::new();
    let mut fields = Vec::new();
    let mut keys = BTreeMap::new();
    keys.insert(
        root.entity.logical_name.clone(),
        (
            root.entity.entity_set_name.clone(),
            root.entity.primary_id_attribute.clone(),
        ),
    );
    for field in &mapping.fields {
        let segments = field.segments();
        let Some((last, navs)) = segments.split_last() else {
            continue;
        };
        let mut current = root.clone();
        let mut hops = Vec::new();
        let mut failed = None;
        for nav in navs {
            match hop(&current, nav) {
                Ok(h) => match meta.table(&h.table).await {
                    Ok(next) => {
                        keys.insert(
                            next.entity.logical_name.clone(),
                            (
                                next.entity.entity_set_name.clone(),
                                next.entity.primary_id_attribute.clone(),
                            ),
                        );
                        hops.push(h);
                        current = next;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            problems.push(format!("{name}: field {}: {e}", field.source));
            continue;
        }
        match leaf_of(&current, last) {
            Ok((column, leaf)) => fields.push(FieldRead {
                path: field.source.clone(),
                hops,
                column,
                leaf,
            }),
            Err(e) => problems.push(format!("{name}: field {}: {e}", field.source)),
        }
    }
    if problems.is_empty() {
        Ok(TableRead {
            mapping: mapping.clone(),
            entity: root.entity,
            fields,
            keys,
            streams: TABLE_STREAMS,
        })
    } else {
        Err(problems)
    }
}

/// Columns and expands of one level of the lookup tree.
#[derive(Debug, Default)]
struct Node {
    select: BTreeSet<String>,
    children: BTreeMap<String, (String, Node)>,
}

fn wire(column: &str, leaf: Leaf) -> String {
    if leaf == Leaf::Lookup {
        format!("_{column}_value")
    } else {
        column.to_owned()
    }
}

impl TableRead {
    /// The root's columns and the lookup tree under it.
    fn tree(&self) -> Node {
        let mut root = Node::default();
        root.select.insert(self.entity.primary_id_attribute.clone());
        for field in &self.fields {
            let mut node = &mut root;
            for hop in &field.hops {
                node.select.insert(format!("_{}_value", hop.column));
                let entry = node
                    .children
                    .entry(hop.nav.clone())
                    .or_insert_with(|| (hop.table.clone(), Node::default()));
                node = &mut entry.1;
                if let Some((_, key)) = self.keys.get(&hop.table) {
                    node.select.insert(key.clone());
                }
            }
            node.select.insert(wire(&field.column, field.leaf));
        }
        root
    }
}

fn expand_of(nav: &str, node: &Node) -> Expand {
    let mut expand = Expand::new(nav).select(node.select.iter().cloned());
    for (child, (_, inner)) in &node.children {
        expand = expand.expand(expand_of(child, inner));
    }
    expand
}

fn leaf_value(object: &Map<String, Value>, field: &FieldRead) -> Result<Value, String> {
    let column = &field.column;
    match field.leaf {
        Leaf::Plain => Ok(object.get(column).cloned().unwrap_or(Value::Null)),
        Leaf::Lookup => match object.get(&format!("_{column}_value")) {
            None | Some(Value::Null) => Ok(Value::Null),
            Some(Value::String(id)) => uuid_text(id)
                .map(Value::String)
                .ok_or_else(|| format!("{} is {id:?}, not a GUID", field.path)),
            Some(other) => Err(format!("{} is {other}, not a GUID", field.path)),
        },
        Leaf::Choice => match object.get(column) {
            None | Some(Value::Null) => Ok(Value::Null),
            Some(_) => object
                .get(&format!("{column}{FORMATTED}"))
                .and_then(Value::as_str)
                .map(|label| Value::String(label.to_owned()))
                .ok_or_else(|| format!("{} has a value but no label (formatted value)", field.path)),
        },
        Leaf::Choices => match object.get(column) {
            None | Some(Value::Null) => Ok(Value::Null),
            Some(_) => object
                .get(&format!("{column}{FORMATTED}"))
                .and_then(Value::as_str)
                .map(|labels| {
                    Value::Array(
                        labels
                            .split(';')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| Value::String(l.to_owned()))
                            .collect(),
                    )
                })
                .ok_or_else(|| format!("{} has values but no labels (formatted value)", field.path)),
        },
    }
}

fn uuid_text(text: &str) -> Option<String> {
    let trimmed = text.trim_matches(|c| c == '{' || c == '}');
    let ok = trimmed.len() == 36
        && trimmed.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    ok.then(|| trimmed.to_ascii_lowercase())
}

fn path_value(row: &Map<String, Value>, field: &FieldRead) -> Result<Value, String> {
    let mut object = row;
    for hop in &field.hops {
        match object.get(&hop.nav) {
            Some(Value::Object(inner)) => object = inner,
            None | Some(Value::Null) => return Ok(Value::Null),
            Some(other) => return Err(format!("{} is {other}, not the related row", hop.nav)),
        }
    }
    leaf_value(object, field)
}

/// A refused row as an error against the run.
fn refused(tenant: &str, table: &TableRead, id: Option<String>, message: String) -> IntegrationError {
    let customers = table.streams == CUSTOMER_STREAMS;
    IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: Some(if customers { "customer" } else { "custom_row" }.into()),
        external_id: id.map(|id| {
            if customers {
                id
            } else {
                deskbridge_mapping::row_key(&table.mapping.desk_table, &id)
            }
        }),
        code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.to_string(),
        message: format!("{} row: {message}; the row was not imported", table.mapping.source_table),
        remedy: Some(
            "Nothing was changed for this row, and no row is removed for being absent from this read. Correct the \
             row in Dynamics 365; the next sync reads it again."
                .into(),
        ),
    }
}

/// How one table is read this run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// From a stored delta link.
    Delta(String),
    /// A change-tracking round from the start.
    Tracked,
    /// A plain read with this filter (if any): full, or since a watermark.
    Query { filter: Option<String>, mode: ReadMode },
}

/// Decides how to read a table from its cursors: see the module's documentation.
pub(crate) fn plan_read(table: &TableRead, tenant: &str, cursors: &StoredCursors, full: bool) -> Plan {
    let mapping = &table.mapping;
    if table.change_tracking() && mapping.filter_text().is_none() {
        return match cursors.get(tenant, &table.delta_stream()) {
            Some(link) if !full => Plan::Delta(link.to_owned()),
            _ => Plan::Tracked,
        };
    }
    let since = if full {
        None
    } else {
        cursors
            .get(tenant, &table.since_stream())
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    };
    let mode = if since.is_some() {
        ReadMode::Delta
    } else {
        ReadMode::Full
    };
    if mapping.uses_last_sync() {
        let value = since.map_or_else(|| BEFORE_ANY_SYNC.to_owned(), filter::date_time);
        return Plan::Query {
            filter: mapping.filter_with(&value),
            mode,
        };
    }
    let watermark = since.map(|s| {
        let from = s
            .checked_sub(jiff::SignedDuration::from_secs(WATERMARK_OVERLAP_SECONDS))
            .unwrap_or(s);
        format!("modifiedon ge {}", filter::date_time(from))
    });
    let filter = match (mapping.filter_text(), watermark) {
        (Some(own), Some(watermark)) => Some(format!("({own}) and {watermark}")),
        (Some(own), None) => Some(own.to_owned()),
        (None, watermark) => watermark,
    };
    Plan::Query { filter, mode }
}

/// One table's read.
pub(crate) struct TableReader<'a> {
    pub client: &'a DataverseClient,
    pub tenant: &'a str,
    pub customer: deskbridge_core::RecordId,
    pub page_size: u32,
    pub requests: &'a dyn RequestSink,
    /// When this table's read began: the `since` cursor a complete read commits.
    pub started_at: jiff::Timestamp,
}

/// How a delta read ended before it began.
pub(crate) enum DeltaStart {
    Expired(DataverseError),
    Failed(SyncError),
}

struct Progress {
    requests: u64,
    refused: usize,
    delta_link: Option<String>,
}

impl TableReader<'_> {
    fn record(&self, path: String, started: Instant, error: Option<&DataverseError>) {
        self.requests.record(RequestRecord {
            source: crate::DYNAMICS_KIND,
            tenant: self.tenant.to_owned(),
            method: "GET".into(),
            path,
            status: match error {
                None => Some(200),
                Some(e) => e.api().map(|a| a.status),
            },
            duration: started.elapsed(),
            request_id: None,
            retry_after: error.and_then(|e| e.api()).and_then(|a| a.retry_after),
            error: error.map(ToString::to_string),
        });
    }

    fn base(&self, table: &TableRead, root: &Node) -> Query {
        Query::new(table.entity.entity_set_name.clone())
            .select(root.select.iter().cloned())
            .page_size(self.page_size.clamp(1, MAX_PAGE_SIZE))
            .annotations(Annotations::FormattedValuesAndLookups)
    }

    async fn begin(&self, table: &TableRead, mode: ReadMode, out: &mut Emitter) -> Result<(), SyncError> {
        out.emit(ReadEvent::Begin(PartitionStart {
            tenant_id: self.tenant.to_owned(),
            customer_id: Some(self.customer),
            mode,
            subscribed_skus: None,
            subscriptions: None,
            usage: None,
            groups: None,
        }))
        .await?;
        out.emit(ReadEvent::CustomTable(table.mapping.desk_table.clone()))
            .await
    }

    /// Resolves the lookups of a change-tracking page by batched requests: each row gets its
    /// related rows under their navigation properties, as `$expand` would have given them.
    async fn batched_lookups(
        &self,
        table: &TableRead,
        root: &Node,
        rows: &mut [Row],
        progress: &mut Progress,
    ) -> Result<(), SyncError> {
        for (nav, (target, node)) in &root.children {
            let Some((set, key)) = table.keys.get(target) else {
                continue;
            };
            let Some(hop) = table
                .fields
                .iter()
                .flat_map(|f| f.hops.first())
                .find(|h| &h.nav == nav)
            else {
                continue;
            };
            let lookup_column = format!("_{}_value", hop.column);
            let ids: BTreeSet<String> = rows
                .iter()
                .filter_map(|r| r.get(&lookup_column).and_then(Value::as_str).and_then(uuid_text))
                .collect();
            let ids: Vec<String> = ids.into_iter().collect();
            let mut related: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            for chunk in ids.chunks(LOOKUP_BATCH) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let mut query = Query::new(set.clone())
                    .select(node.select.iter().cloned())
                    .filter(filter::in_values(key, &refs))
                    .annotations(Annotations::FormattedValuesAndLookups);
                for (child, (_, inner)) in &node.children {
                    query = query.expand(expand_of(child, inner));
                }
                let started = Instant::now();
                let found = self.client.get_all(&query).await;
                self.record(
                    format!("{set}?$filter=In({key}, {} ids)", chunk.len()),
                    started,
                    found.as_ref().err(),
                );
                progress.requests += 1;
                for row in found.map_err(|e| from_dataverse(&e))? {
                    if let Some(id) = row.get(key).and_then(Value::as_str).and_then(uuid_text) {
                        related.insert(id, row.0);
                    }
                }
            }
            for row in rows.iter_mut() {
                let value = row
                    .get(&lookup_column)
                    .and_then(Value::as_str)
                    .and_then(uuid_text)
                    .and_then(|id| related.get(&id).cloned())
                    .map_or(Value::Null, Value::Object);
                row.0.insert(nav.clone(), value);
            }
        }
        Ok(())
    }

    /// Turns rows into source rows and emits them as a page with the removals.
    async fn emit(
        &self,
        table: &TableRead,
        rows: Vec<Row>,
        removed: Vec<Removal>,
        progress: &mut Progress,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let key = &table.entity.primary_id_attribute;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let id = match row.get(key).and_then(Value::as_str) {
                Some(text) => match uuid_text(text) {
                    Some(id) => id,
                    None => {
                        progress.refused += 1;
                        out.emit(ReadEvent::Warning(refused(
                            self.tenant,
                            table,
                            Some(text.to_owned()),
                            format!("its {key} {text:?} is not a GUID"),
                        )))
                        .await?;
                        continue;
                    }
                },
                None => {
                    progress.refused += 1;
                    out.emit(ReadEvent::Warning(refused(
                        self.tenant,
                        table,
                        None,
                        format!("a row without its {key}"),
                    )))
                    .await?;
                    continue;
                }
            };
            let mut values = Map::new();
            let mut problem = None;
            for field in &table.fields {
                match path_value(&row.0, field) {
                    Ok(value) => {
                        values.insert(field.path.clone(), value);
                    }
                    Err(e) => {
                        problem = Some(e);
                        break;
                    }
                }
            }
            if let Some(message) = problem {
                progress.refused += 1;
                out.emit(ReadEvent::Warning(refused(self.tenant, table, Some(id), message)))
                    .await?;
                continue;
            }
            records.push(SourceRecord::Row(SourceRow {
                desk_table: table.mapping.desk_table.clone(),
                external_id: id,
                values,
                state: row.get("statecode").and_then(Value::as_i64),
            }));
        }
        out.emit(ReadEvent::Page(Page {
            tenant_id: self.tenant.to_owned(),
            records,
            removed,
            cursors: Vec::new(),
        }))
        .await
    }

    async fn end(&self, table: &TableRead, progress: Progress, out: &mut Emitter) -> Result<(), SyncError> {
        let complete = progress.refused == 0;
        let mut cursors = Vec::new();
        if let Some(link) = progress.delta_link {
            cursors.push((table.delta_stream(), link));
        }
        // The watermark moves only when every row was taken: a refused row is read again.
        if complete {
            cursors.push((table.since_stream(), filter::date_time(self.started_at)));
        }
        out.emit(ReadEvent::End(PartitionEnd {
            tenant_id: self.tenant.to_owned(),
            completeness: if complete {
                Completeness::Complete
            } else {
                Completeness::Partial
            },
            cursors,
            requests: progress.requests,
        }))
        .await
    }

    /// A plain read: with `$expand` for the lookups, the filter as planned.
    pub(crate) async fn query(
        &self,
        table: &TableRead,
        filter_text: Option<String>,
        mode: ReadMode,
        out: &mut Emitter,
    ) -> Result<(), SyncError> {
        let root = table.tree();
        let mut query = self.base(table, &root);
        for (nav, (_, node)) in &root.children {
            query = query.expand(expand_of(nav, node));
        }
        if let Some(text) = &filter_text {
            query = query.filter(text.clone());
        }
        let set = table.entity.entity_set_name.clone();
        let mut pager = self.client.pager(&query);
        let started = Instant::now();
        let first = pager.next_page().await;
        self.record(
            match &filter_text {
                Some(f) => format!("{set}?$filter={f}"),
                None => set.clone(),
            },
            started,
            first.as_ref().err(),
        );
        let first = first.map_err(|e| from_dataverse(&e))?.unwrap_or_default();
        self.begin(table, mode, out).await?;
        let mut progress = Progress {
            requests: 1,
            refused: 0,
            delta_link: None,
        };
        self.emit(table, first.rows, Vec::new(), &mut progress, out)
            .await?;
        loop {
            let started = Instant::now();
            let next = pager.next_page().await;
            self.record(
                format!("{set}?$skiptoken=(paging cookie)"),
                started,
                next.as_ref().err(),
            );
            let Some(page) = next.map_err(|e| from_dataverse(&e))? else {
                break;
            };
            progress.requests += 1;
            self.emit(table, page.rows, Vec::new(), &mut progress, out)
                .await?;
        }
        self.end(table, progress, out).await
    }

    /// A change-tracking read: from the start (`link` is `None`) or from a delta link. An
    /// expired token is handed back before anything is emitted.
    pub(crate) async fn tracked(
        &self,
        table: &TableRead,
        link: Option<&str>,
        out: &mut Emitter,
    ) -> Result<(), DeltaStart> {
        let root = table.tree();
        let set = table.entity.entity_set_name.clone();
        let mut pager = match link {
            Some(link) => self.client.changes_since(
                link,
                Some(self.page_size.clamp(1, MAX_PAGE_SIZE)),
                Annotations::FormattedValuesAndLookups,
            ),
            None => self.client.changes(&self.base(table, &root)),
        };
        let started = Instant::now();
        let first = pager.next_page().await;
        self.record(
            if link.is_some() {
                format!("{set}?$deltatoken=(delta token)")
            } else {
                set.clone()
            },
            started,
            first.as_ref().err(),
        );
        let first = match first {
            Ok(page) => page.unwrap_or_default(),
            Err(e) if link.is_some() && e.is_change_token_expired() => return Err(DeltaStart::Expired(e)),
            Err(e) => return Err(DeltaStart::Failed(from_dataverse(&e))),
        };
        let mode = if link.is_some() {
            ReadMode::Delta
        } else {
            ReadMode::Full
        };
        let run = async move {
            self.begin(table, mode, out).await?;
            let mut progress = Progress {
                requests: 1,
                refused: 0,
                delta_link: first.delta_link.clone(),
            };
            let mut page = Some(first);
            while let Some(current) = page.take() {
                let mut rows = Vec::new();
                let mut removed = Vec::new();
                for change in current.changes {
                    match change {
                        Change::Upsert(row) => rows.push(row),
                        Change::Deleted { id } => removed.push(Removal {
                            external_id: uuid_text(&id).unwrap_or(id),
                            reason: RemovalReason::Deleted,
                        }),
                    }
                }
                if !root.children.is_empty() && !rows.is_empty() {
                    self.batched_lookups(table, &root, &mut rows, &mut progress)
                        .await?;
                }
                self.emit(table, rows, removed, &mut progress, out).await?;
                let started = Instant::now();
                let next = pager.next_page().await;
                self.record(
                    format!("{set}?$skiptoken=(paging cookie)"),
                    started,
                    next.as_ref().err(),
                );
                if let Some(next) = next.map_err(|e| from_dataverse(&e))? {
                    progress.requests += 1;
                    progress.delta_link = next.delta_link.clone().or(progress.delta_link.take());
                    page = Some(next);
                }
            }
            if progress.delta_link.is_none() {
                return Err(SyncError::Upstream {
                    error_code: deskbridge_core::ErrorCode::UpstreamMalformedResponse,
                    code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.as_str().to_owned(),
                    message: format!(
                        "the change-tracking read of {} ended without an @odata.deltaLink",
                        table.entity.logical_name
                    ),
                    remedy: "Check that change tracking is enabled for the table (Power Apps > Tables > the table > \
                             Properties > Track changes), then run the sync again."
                        .into(),
                });
            }
            self.end(table, progress, out).await
        };
        run.await.map_err(DeltaStart::Failed)
    }
}

/// Reads every table mapping of the connection, one partition each. A mapping that does not
/// resolve against the organisation's metadata is an error against the run (its table is not
/// read, the others are).
pub(crate) async fn read_tables(
    reader: &TableReader<'_>,
    mappings: &[CustomTableMapping],
    cursors: &StoredCursors,
    full: bool,
    clock: &deskbridge_core::SharedClock,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let mut meta = Metadata::new(reader.client);
    for mapping in mappings {
        let table = match resolve(&mut meta, mapping).await {
            Ok(table) => table,
            Err(problems) => {
                out.emit(ReadEvent::Warning(IntegrationError {
                    tenant_id: Some(reader.tenant.to_owned()),
                    entity: Some("custom_table".into()),
                    external_id: Some(mapping.desk_table.clone()),
                    code: deskbridge_core::ErrorCode::InvalidConfiguration.as_str().to_owned(),
                    message: format!("{}; the table was not read", problems.join("; ")),
                    remedy: Some(
                        "Correct the table mapping (custom_tables in the connection's mappings) so that it names the \
                         table's and columns' logical names, then run the sync again."
                            .into(),
                    ),
                }))
                .await?;
                continue;
            }
        };
        read_one(reader, &table, cursors, full, clock, out).await?;
    }
    Ok(())
}

/// The table customers are read from, and the desk name their partition is read under.
pub const ACCOUNT_TABLE: &str = "account";
/// The cursors' prefix of the customers' read.
pub const CUSTOMER_STREAMS: &str = "customers";

/// The account table read as a table mapping: the customer mappings' columns and `statecode`
/// (whether the customer is active).
pub(crate) fn customer_table_mapping(customers: &CustomerMappings) -> CustomTableMapping {
    let mut fields = customers.fields.clone();
    if !fields.iter().any(|f| f.source == "statecode") {
        fields.push(RowField {
            source: "statecode".into(),
            target: "statecode".into(),
        });
    }
    CustomTableMapping {
        source_table: ACCOUNT_TABLE.into(),
        desk_table: CUSTOMER_STREAMS.into(),
        filter: customers.filter_text().map(str::to_owned),
        fields,
        removed_rows: Default::default(),
    }
}

/// Reads the organisation's accounts for the customer mappings, as one partition: the mapped
/// columns and `statecode` (whether the customer is active). A mapping that does not resolve
/// against the organisation's metadata fails the run, naming each problem.
pub(crate) async fn read_customers(
    reader: &TableReader<'_>,
    customers: &CustomerMappings,
    cursors: &StoredCursors,
    full: bool,
    clock: &deskbridge_core::SharedClock,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let mapping = customer_table_mapping(customers);
    let mut meta = Metadata::new(reader.client);
    let mut table = resolve(&mut meta, &mapping).await.map_err(|problems| {
        SyncError::InvalidMappings(format!(
            "customer mappings: {}; correct them so that they name the account table's columns",
            problems.join("; ")
        ))
    })?;
    table.streams = CUSTOMER_STREAMS;
    read_one(reader, &table, cursors, full, clock, out).await
}

/// Reads one resolved table as its own partition, from its cursors.
async fn read_one(
    reader: &TableReader<'_>,
    table: &TableRead,
    cursors: &StoredCursors,
    full: bool,
    clock: &deskbridge_core::SharedClock,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let table_reader = TableReader {
        started_at: clock.now(),
        ..*reader
    };
    match plan_read(table, reader.tenant, cursors, full) {
        Plan::Query { filter, mode } => table_reader.query(table, filter, mode, out).await?,
        Plan::Tracked => match table_reader.tracked(table, None, out).await {
            Ok(()) => {}
            Err(DeltaStart::Failed(e)) => return Err(e),
            Err(DeltaStart::Expired(e)) => return Err(from_dataverse(&e)),
        },
        Plan::Delta(link) => match table_reader.tracked(table, Some(&link), out).await {
            Ok(()) => {}
            Err(DeltaStart::Failed(e)) => return Err(e),
            Err(DeltaStart::Expired(e)) => {
                out.emit(ReadEvent::Note(format!(
                    "the change-tracking token of table {} has expired ({}); running a full read instead, which \
                     removes only what a complete read does not find",
                    table.entity.logical_name,
                    e.api().map(|a| a.code.as_str()).unwrap_or_default()
                )))
                .await?;
                match table_reader.tracked(table, None, out).await {
                    Ok(()) => {}
                    Err(DeltaStart::Failed(e)) => return Err(e),
                    Err(DeltaStart::Expired(e)) => return Err(from_dataverse(&e)),
                }
            }
        },
    }
    Ok(())
}
