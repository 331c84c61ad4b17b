//! Generic, journaled record operations over the entities described in [`crate::schema`].
//!
//! A record's fields are a JSON object: columns by name, link sets (`roles`, `teams`, …) as
//! arrays, custom fields as `"custom:<name>"`. Every change is validated against the schema,
//! written, and journaled field by field in the caller's transaction.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::db::{Sql, SqlType, StoreTx, placeholders};
use crate::schema::{Column, ColumnType, Entity, EntitySpec, Link};
use crate::{Result, StoreError, format_timestamp, parse_timestamp};

/// A record's fields by name.
pub type Fields = BTreeMap<String, Value>;

/// Where an imported record came from: the connection and the upstream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceKey {
    pub connection_id: ConnectionId,
    pub external_id: String,
}

impl SourceKey {
    pub fn new(connection_id: ConnectionId, external_id: impl Into<String>) -> Self {
        Self {
            connection_id,
            external_id: external_id.into(),
        }
    }
}

/// A desk record as read from the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub entity: Entity,
    pub id: RecordId,
    pub source: Option<SourceKey>,
    pub fields: Fields,
    pub created_at: String,
    pub updated_at: String,
}

impl Record {
    pub fn get(&self, field: &str) -> &Value {
        self.fields.get(field).unwrap_or(&Value::Null)
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.get(field).as_str()
    }

    /// The record as one flat JSON object (id, source, fields), as `directory --json` prints it.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("id".into(), json!(self.id.0));
        for (k, v) in &self.fields {
            out.insert(k.clone(), v.clone());
        }
        if let Some(source) = &self.source {
            out.insert("source_connection_id".into(), json!(source.connection_id.0));
            out.insert("external_id".into(), json!(source.external_id));
        }
        out.insert("created_at".into(), json!(self.created_at));
        out.insert("updated_at".into(), json!(self.updated_at));
        Value::Object(out)
    }
}

/// A subset of an entity's records, for [`StoreTx::list_scoped`]. Each scope is a fixed SQL
/// condition with bound values, so a listing never builds SQL from input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordScope {
    /// Users or agents a sync of `connection` (reading `tenant_id`) can match or change: its own
    /// imports, records imported by no connection, and records of other connections that are not
    /// tied to another tenant's object. Leaves out the rest of a many-tenant desk, which a
    /// connection's sync can neither match (object ids are unique across tenants; linked records
    /// are never matched by email) nor change.
    SyncableBy {
        connection: ConnectionId,
        tenant_id: String,
    },
    /// Users or agents one page of `connection`'s read (of `tenant_id`) can match or change: those
    /// the connection imported with one of `external_ids`, those carrying one of them as their
    /// Azure object id, and those whose column (`email`, `network_login`, `name`) holds one of the
    /// values listed for it — all compared lower-cased — within [`RecordScope::SyncableBy`].
    /// `external_ids` and the values must be lower-cased already.
    Lookup {
        connection: ConnectionId,
        tenant_id: String,
        external_ids: Vec<String>,
        by_column: Vec<(String, Vec<String>)>,
    },
    /// Users or agents `connection` imported that belong to `tenant_id` (ignoring case), or carry
    /// one of `external_ids` (lower-cased) as their external id: what a tenant's end reads.
    OfConnectionTenant {
        connection: ConnectionId,
        tenant_id: String,
        external_ids: Vec<String>,
    },
    /// Assets one page of `connection`'s device read can match or change: those it imported with
    /// one of `external_ids`, and those of `customer` (of any customer when `None`) whose
    /// `column` (`serial_number` or `name`) holds one of `values`, ignoring surrounding spaces.
    /// Ids and values lower-cased (and values trimmed).
    AssetLookup {
        connection: ConnectionId,
        customer: Option<RecordId>,
        external_ids: Vec<String>,
        column: Option<(String, Vec<String>)>,
    },
    /// Records of an entity with a `tenant_id` column (assets, subscriptions) that `connection`
    /// imported from `tenant_id` (ignoring case): what a tenant's end reads.
    ImportedFromTenant {
        connection: ConnectionId,
        tenant_id: String,
    },
    /// Tickets assigned to agents imported by the connection.
    AssignedToAgentsOf(ConnectionId),
    /// Records of the customer, and those of no customer.
    OfCustomerOrNone(RecordId),
    /// Records of any of these customers.
    OfCustomers(Vec<RecordId>),
    /// These records.
    Ids(Vec<RecordId>),
}

impl RecordScope {
    /// The SQL condition, binding its values after those already in `args`.
    fn condition(&self, spec: &EntitySpec, args: &mut Vec<Sql>) -> Result<String> {
        let needs = |column: &str| {
            if spec.column(column).is_some() {
                Ok(())
            } else {
                Err(StoreError::UnknownField {
                    entity: spec.name,
                    field: column.to_owned(),
                })
            }
        };
        Ok(match self {
            Self::SyncableBy {
                connection,
                tenant_id,
            } => {
                needs("azure_object_id")?;
                needs("azure_tenant_id")?;
                args.push(Sql::Int(connection.0));
                args.push(Sql::text(tenant_id.clone()));
                let (c, t) = (args.len() - 1, args.len());
                // The records not imported by another connection from another tenant's object, as a
                // union of index lookups: a filter over the whole table would read every tenant's
                // records for each sync.
                let table = spec.table;
                format!(
                    "id IN (SELECT id FROM {table} WHERE source_connection_id = ${c} \
                     UNION SELECT id FROM {table} WHERE source_connection_id IS NULL \
                     UNION SELECT id FROM {table} WHERE azure_object_id IS NULL \
                     UNION SELECT id FROM {table} WHERE lower(azure_tenant_id) IS NULL \
                     UNION SELECT id FROM {table} WHERE lower(azure_tenant_id) = lower(${t}))"
                )
            }
            Self::Lookup {
                connection,
                tenant_id,
                external_ids,
                by_column,
            } => {
                needs("azure_object_id")?;
                needs("azure_tenant_id")?;
                let table = spec.table;
                let mut parts = Vec::new();
                if !external_ids.is_empty() {
                    args.push(Sql::Int(connection.0));
                    let c = args.len();
                    let ids = text_list(external_ids, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE source_connection_id = ${c} AND lower(external_id) IN ({ids})"
                    ));
                    let ids = text_list(external_ids, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE lower(azure_object_id) IN ({ids})"
                    ));
                }
                for (column, values) in by_column.iter().filter(|(_, v)| !v.is_empty()) {
                    needs(column)?;
                    let values = text_list(values, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE lower({column}) IN ({values})"
                    ));
                }
                if parts.is_empty() {
                    return Ok("1 = 0".to_owned());
                }
                args.push(Sql::Int(connection.0));
                let c = args.len();
                args.push(Sql::text(tenant_id.clone()));
                let t = args.len();
                // Within the connection's reach (as SyncableBy): not imported by another connection
                // from another tenant's object.
                format!(
                    "id IN ({}) AND (source_connection_id = ${c} OR source_connection_id IS NULL \
                     OR azure_object_id IS NULL OR azure_tenant_id IS NULL OR lower(azure_tenant_id) = lower(${t}))",
                    parts.join(" UNION ")
                )
            }
            Self::OfConnectionTenant {
                connection,
                tenant_id,
                external_ids,
            } => {
                needs("azure_tenant_id")?;
                args.push(Sql::Int(connection.0));
                let c = args.len();
                args.push(Sql::text(tenant_id.clone()));
                let t = args.len();
                let table = spec.table;
                let mut parts = vec![format!(
                    "SELECT id FROM {table} WHERE source_connection_id = ${c} AND lower(azure_tenant_id) = lower(${t})"
                )];
                if !external_ids.is_empty() {
                    args.push(Sql::Int(connection.0));
                    let c = args.len();
                    let ids = text_list(external_ids, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE source_connection_id = ${c} AND lower(external_id) IN ({ids})"
                    ));
                }
                format!("id IN ({})", parts.join(" UNION "))
            }
            Self::AssetLookup {
                connection,
                customer,
                external_ids,
                column,
            } => {
                needs("serial_number")?;
                let table = spec.table;
                let mut parts = Vec::new();
                if !external_ids.is_empty() {
                    args.push(Sql::Int(connection.0));
                    let c = args.len();
                    let ids = text_list(external_ids, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE source_connection_id = ${c} AND lower(external_id) IN ({ids})"
                    ));
                }
                if let Some((column, values)) = column.as_ref().filter(|(_, v)| !v.is_empty()) {
                    needs(column)?;
                    let customer = match customer {
                        Some(customer) => {
                            args.push(Sql::Int(customer.0));
                            format!("customer_id = ${} AND ", args.len())
                        }
                        None => String::new(),
                    };
                    let values = text_list(values, args);
                    parts.push(format!(
                        "SELECT id FROM {table} WHERE {customer}lower(trim({column})) IN ({values})"
                    ));
                }
                if parts.is_empty() {
                    return Ok("1 = 0".to_owned());
                }
                format!("id IN ({})", parts.join(" UNION "))
            }
            Self::ImportedFromTenant {
                connection,
                tenant_id,
            } => {
                needs("tenant_id")?;
                args.push(Sql::Int(connection.0));
                let c = args.len();
                args.push(Sql::text(tenant_id.clone()));
                format!(
                    "source_connection_id = ${c} AND lower(tenant_id) = lower(${})",
                    args.len()
                )
            }
            Self::AssignedToAgentsOf(connection) => {
                needs("agent_id")?;
                args.push(Sql::Int(connection.0));
                format!(
                    "agent_id IN (SELECT id FROM agents WHERE source_connection_id = ${})",
                    args.len()
                )
            }
            Self::Ids(ids) => in_list("id", ids, args),
            Self::OfCustomers(customers) => {
                needs("customer_id")?;
                in_list("customer_id", customers, args)
            }
            Self::OfCustomerOrNone(customer) => {
                needs("customer_id")?;
                args.push(Sql::Int(customer.0));
                format!("customer_id IS NULL OR customer_id = ${}", args.len())
            }
        })
    }
}

/// `$k, …` over `values`, bound after `args` (non-empty `values`).
fn text_list(values: &[String], args: &mut Vec<Sql>) -> String {
    let first = args.len() + 1;
    args.extend(values.iter().map(|v| Sql::text(v.clone())));
    placeholders(first, values.len())
}

/// `column IN ($k, …)` over `ids`, bound after `args`; a condition no row meets when `ids` is empty.
fn in_list(column: &str, ids: &[RecordId], args: &mut Vec<Sql>) -> String {
    if ids.is_empty() {
        return "1 = 0".to_owned();
    }
    let first = args.len() + 1;
    args.extend(ids.iter().map(|id| Sql::Int(id.0)));
    format!("{column} IN ({})", placeholders(first, ids.len()))
}

/// One field changed by a write.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// What an upsert by source identity did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum UpsertOutcome {
    Created(RecordId),
    Updated(RecordId, Vec<FieldChange>),
    Unchanged(RecordId),
}

impl UpsertOutcome {
    pub fn id(&self) -> RecordId {
        match self {
            Self::Created(id) | Self::Updated(id, _) | Self::Unchanged(id) => *id,
        }
    }
}

const CUSTOM_PREFIX: &str = "custom:";

/// A field of a write, resolved against the schema.
enum Target<'a> {
    Column(&'static Column),
    Link(&'static Link),
    Custom(&'a str),
}

fn resolve<'a>(spec: &EntitySpec, field: &'a str) -> Result<Target<'a>> {
    if let Some(c) = spec.column(field) {
        return Ok(Target::Column(c));
    }
    if let Some(l) = spec.link(field) {
        return Ok(Target::Link(l));
    }
    if let Some(name) = field.strip_prefix(CUSTOM_PREFIX)
        && spec.custom_fields
        && !name.is_empty()
    {
        return Ok(Target::Custom(name));
    }
    Err(StoreError::UnknownField {
        entity: spec.name,
        field: field.to_owned(),
    })
}

fn invalid(spec: &EntitySpec, field: &str, message: String) -> StoreError {
    StoreError::InvalidValue {
        entity: spec.name,
        field: field.to_owned(),
        message,
    }
}

/// Checks a value against a column's type and returns it in its stored (canonical) form.
fn canonical(spec: &EntitySpec, field: &str, ty: ColumnType, value: &Value) -> Result<Value> {
    let wrong = |expected: &str| {
        invalid(
            spec,
            field,
            format!("expected {expected}, got {}", deskbridge_core::json_kind(value)),
        )
    };
    Ok(match (ty, value) {
        (_, Value::Null) => Value::Null,
        (ColumnType::Text, Value::String(_)) => value.clone(),
        (ColumnType::Text, _) => return Err(wrong("text")),
        (ColumnType::Int | ColumnType::Ref(_), Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            None => {
                return Err(invalid(
                    spec,
                    field,
                    format!("{n} is not a whole number in range"),
                ));
            }
        },
        (ColumnType::Int, _) => return Err(wrong("a whole number")),
        (ColumnType::Ref(target), _) => return Err(wrong(&format!("the id of a {target}"))),
        (ColumnType::Bool, Value::Bool(_)) => value.clone(),
        (ColumnType::Bool, _) => return Err(wrong("true or false")),
        (ColumnType::Float, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => json!(f),
            _ => return Err(invalid(spec, field, format!("{n} is not a finite number"))),
        },
        (ColumnType::Float, _) => return Err(wrong("a number")),
        (ColumnType::Timestamp, Value::String(s)) => Value::String(format_timestamp(
            parse_timestamp(s).map_err(|m| invalid(spec, field, m))?,
        )),
        (ColumnType::Timestamp, _) => return Err(wrong("an RFC 3339 timestamp")),
    })
}

fn sql_type(ty: ColumnType) -> SqlType {
    match ty {
        ColumnType::Text | ColumnType::Timestamp => SqlType::Text,
        ColumnType::Int | ColumnType::Ref(_) => SqlType::Int,
        ColumnType::Bool => SqlType::Bool,
        ColumnType::Float => SqlType::Float,
    }
}

/// A canonical value as a bind argument.
fn to_sql(ty: ColumnType, value: &Value) -> Sql {
    match value {
        Value::String(s) => Sql::Text(s.clone()),
        Value::Bool(b) => Sql::Bool(*b),
        Value::Number(n) if matches!(ty, ColumnType::Float) => {
            n.as_f64().map_or(Sql::Null(SqlType::Float), Sql::Float)
        }
        Value::Number(n) => n.as_i64().map_or(Sql::Null(SqlType::Int), Sql::Int),
        _ => Sql::Null(sql_type(ty)),
    }
}

fn from_sql(value: &Sql) -> Value {
    match value {
        Sql::Null(_) => Value::Null,
        Sql::Text(s) => Value::String(s.clone()),
        Sql::Int(i) => json!(i),
        Sql::Bool(b) => json!(b),
        Sql::Float(f) => json!(f),
        Sql::Bytes(_) => Value::Null,
    }
}

/// The columns every desk table has besides its own.
const META_COLUMNS: &str = "id, source_connection_id, external_id, created_at, updated_at";
const META_TYPES: [SqlType; 5] = [
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];

fn select_sql(spec: &EntitySpec) -> String {
    let mut sql = format!("SELECT {META_COLUMNS}");
    for c in spec.columns {
        sql.push_str(", ");
        sql.push_str(c.name);
    }
    sql.push_str(" FROM ");
    sql.push_str(spec.table);
    sql
}

fn row_types(spec: &EntitySpec) -> Vec<SqlType> {
    META_TYPES
        .iter()
        .copied()
        .chain(spec.columns.iter().map(|c| sql_type(c.ty)))
        .collect()
}

fn record_from_row(spec: &EntitySpec, row: &[Sql]) -> Result<Record> {
    let corrupt = |what: &str| StoreError::Corrupt(spec.table.to_owned(), what.to_owned());
    let id = row.first().and_then(Sql::as_int).ok_or_else(|| corrupt("id"))?;
    let source = match (
        row.get(1).and_then(Sql::as_int),
        row.get(2).and_then(Sql::as_text),
    ) {
        (Some(c), Some(e)) => Some(SourceKey::new(ConnectionId(c), e)),
        _ => None,
    };
    let text_at = |i: usize| {
        row.get(i)
            .and_then(Sql::as_text)
            .map(str::to_owned)
            .ok_or_else(|| corrupt("timestamps"))
    };
    let mut fields = Fields::new();
    for (c, v) in spec.columns.iter().zip(row.iter().skip(META_TYPES.len())) {
        fields.insert(c.name.to_owned(), from_sql(v));
    }
    Ok(Record {
        entity: spec.entity,
        id: RecordId(id),
        source,
        fields,
        created_at: text_at(3)?,
        updated_at: text_at(4)?,
    })
}

/// How a link's elements are compared and journaled: sorted, so order never counts as a change.
fn canonical_link(spec: &EntitySpec, link: &Link, value: &Value) -> Result<Value> {
    let items = match value {
        Value::Null => return Ok(Value::Array(Vec::new())),
        Value::Array(items) => items,
        other => {
            return Err(invalid(
                spec,
                link.field,
                format!("expected a list, got {}", deskbridge_core::json_kind(other)),
            ));
        }
    };
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for item in items {
        let (target, element) = if link.extra.is_empty() {
            let target = canonical(spec, link.field, link.target_ty, item)?;
            (target.clone(), target)
        } else {
            let Value::Object(obj) = item else {
                return Err(invalid(
                    spec,
                    link.field,
                    format!("each element must be an object with {:?}", link.target),
                ));
            };
            for key in obj.keys() {
                if key != link.target && !link.extra.iter().any(|c| c.name == key) {
                    return Err(invalid(
                        spec,
                        link.field,
                        format!("unknown key {key:?} in an element"),
                    ));
                }
            }
            let target = canonical(
                spec,
                link.field,
                link.target_ty,
                obj.get(link.target).unwrap_or(&Value::Null),
            )?;
            let mut element = serde_json::Map::new();
            element.insert(link.target.to_owned(), target.clone());
            for c in link.extra {
                let v = canonical(spec, link.field, c.ty, obj.get(c.name).unwrap_or(&Value::Null))?;
                element.insert(c.name.to_owned(), v);
            }
            (target, Value::Object(element))
        };
        if target.is_null() {
            return Err(invalid(spec, link.field, "an element has no target".to_owned()));
        }
        // Sort numbers numerically and text alphabetically, with a stable key for both.
        let key = match &target {
            Value::Number(n) => format!("{:020}", n.as_i64().unwrap_or_default()),
            other => other.to_string(),
        };
        out.insert(key, element);
    }
    Ok(Value::Array(out.into_values().collect()))
}

/// A new record's fields, validated: see [`StoreTx::prepare_insert`].
struct PreparedInsert {
    columns: Vec<(&'static Column, Value)>,
    later: Vec<(String, Value)>,
}

/// The bookkeeping columns every new row sets, before its own columns.
const INSERT_META: [&str; 4] = ["source_connection_id", "external_id", "created_at", "updated_at"];

/// The values of [`INSERT_META`] for a new row.
fn insert_meta(source: Option<&SourceKey>, at: &str) -> [Sql; 4] {
    [
        Sql::opt_int(source.map(|s| s.connection_id.0)),
        Sql::opt_text(source.map(|s| s.external_id.clone())),
        Sql::text(at),
        Sql::text(at),
    ]
}

/// A custom field's definition.
struct CustomField {
    id: i64,
    field_type: String,
    options: BTreeSet<String>,
}

impl StoreTx {
    /// Reads one record, with its links and custom field values.
    pub async fn get(&mut self, entity: Entity, id: RecordId) -> Result<Option<Record>> {
        let spec = entity.spec();
        let sql = format!("{} WHERE id = $1", select_sql(spec));
        let Some(row) = self.row(&sql, &[Sql::Int(id.0)], &row_types(spec)).await? else {
            return Ok(None);
        };
        let mut record = record_from_row(spec, &row)?;
        self.load_extras(spec, std::slice::from_mut(&mut record)).await?;
        Ok(Some(record))
    }

    /// Reads the record imported from `source`, if any.
    pub async fn find_by_source(&mut self, entity: Entity, source: &SourceKey) -> Result<Option<Record>> {
        let spec = entity.spec();
        let sql = format!(
            "{} WHERE source_connection_id = $1 AND external_id = $2",
            select_sql(spec)
        );
        let args = [
            Sql::Int(source.connection_id.0),
            Sql::text(source.external_id.clone()),
        ];
        let Some(row) = self.row(&sql, &args, &row_types(spec)).await? else {
            return Ok(None);
        };
        let mut record = record_from_row(spec, &row)?;
        self.load_extras(spec, std::slice::from_mut(&mut record)).await?;
        Ok(Some(record))
    }

    /// The id of the record imported from `source`, if any (no fields read).
    pub async fn id_by_source(&mut self, entity: Entity, source: &SourceKey) -> Result<Option<RecordId>> {
        let sql = format!(
            "SELECT id FROM {} WHERE source_connection_id = $1 AND external_id = $2",
            entity.spec().table
        );
        let args = [
            Sql::Int(source.connection_id.0),
            Sql::text(source.external_id.clone()),
        ];
        let row = self.row(&sql, &args, &[SqlType::Int]).await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).map(RecordId))
    }

    /// The ids of the records `connection` imported with any of `external_ids`, by external id:
    /// one query per 500 ids instead of one per record.
    pub async fn ids_by_source(
        &mut self,
        entity: Entity,
        connection: ConnectionId,
        external_ids: &[&str],
    ) -> Result<BTreeMap<String, RecordId>> {
        let mut out = BTreeMap::new();
        for chunk in external_ids.chunks(500) {
            let sql = format!(
                "SELECT external_id, id FROM {} WHERE source_connection_id = $1 AND external_id IN ({})",
                entity.spec().table,
                placeholders(2, chunk.len())
            );
            let mut args = vec![Sql::Int(connection.0)];
            args.extend(chunk.iter().map(|id| Sql::text(*id)));
            for row in self.rows(&sql, &args, &[SqlType::Text, SqlType::Int]).await? {
                if let [Sql::Text(external), Sql::Int(id)] = row.as_slice() {
                    out.insert(external.clone(), RecordId(*id));
                }
            }
        }
        Ok(out)
    }

    /// Records whose text column `field` equals `value`, ignoring case (for matching users by
    /// email, login or name), in id order.
    pub async fn find_by_text(&mut self, entity: Entity, field: &str, value: &str) -> Result<Vec<Record>> {
        let spec = entity.spec();
        match spec.column(field) {
            Some(c) if c.ty == ColumnType::Text => {}
            _ => {
                return Err(StoreError::UnknownField {
                    entity: spec.name,
                    field: field.to_owned(),
                });
            }
        }
        let sql = format!(
            "{} WHERE lower({field}) = lower($1) ORDER BY id",
            select_sql(spec)
        );
        let rows = self.rows(&sql, &[Sql::text(value)], &row_types(spec)).await?;
        let mut records = rows
            .iter()
            .map(|r| record_from_row(spec, r))
            .collect::<Result<Vec<_>>>()?;
        self.load_extras(spec, &mut records).await?;
        Ok(records)
    }

    /// A page of records in id order, starting after `after` (keyset paging).
    pub async fn list(&mut self, entity: Entity, after: Option<RecordId>, limit: u32) -> Result<Vec<Record>> {
        let mut records = self.list_columns(entity, after, limit).await?;
        self.load_extras(entity.spec(), &mut records).await?;
        Ok(records)
    }

    /// A page of records in id order, like [`StoreTx::list`] but with their columns only: no link
    /// sets and no custom fields (for lookups by id and name, where those would be read and
    /// thrown away).
    pub async fn list_columns(
        &mut self,
        entity: Entity,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<Record>> {
        self.page(entity.spec(), None, after, limit).await
    }

    /// A page of the records in `scope`, in id order, starting after `after` (keyset paging).
    /// How many users and agents `connection` imported from `tenant_id` (ignoring case) are
    /// active: a tenant's size before a run, as the circuit breaker measures it.
    pub async fn active_records_of(&mut self, connection: ConnectionId, tenant_id: &str) -> Result<usize> {
        let count = |table: &str| {
            format!(
                "SELECT count(*) FROM {table} WHERE source_connection_id = $1 \
                 AND lower(azure_tenant_id) = lower($2) AND (active IS NULL OR active)"
            )
        };
        let sql = format!("SELECT ({}) + ({})", count("users"), count("agents"));
        let row = self
            .row(
                &sql,
                &[Sql::Int(connection.0), Sql::text(tenant_id.to_owned())],
                &[SqlType::Int],
            )
            .await?;
        Ok(row
            .and_then(|r| r.first().and_then(Sql::as_int))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0))
    }

    pub async fn list_scoped(
        &mut self,
        entity: Entity,
        scope: &RecordScope,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<Record>> {
        let spec = entity.spec();
        let mut records = self.page(spec, Some(scope), after, limit).await?;
        self.load_extras(spec, &mut records).await?;
        Ok(records)
    }

    /// The columns of a page of records (in `scope` when given) after `after`, in id order.
    async fn page(
        &mut self,
        spec: &EntitySpec,
        scope: Option<&RecordScope>,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<Record>> {
        // Parameters are numbered in the order they appear in the text, each used once, so that
        // SQLite binds them anonymously (see `sqlite_sql`): a scope may bind thousands.
        let mut args = vec![Sql::Int(after.map_or(0, |a| a.0))];
        let condition = match scope {
            Some(scope) => format!(" AND ({})", scope.condition(spec, &mut args)?),
            None => String::new(),
        };
        args.push(Sql::Int(i64::from(limit)));
        let sql = format!(
            "{} WHERE id > $1{condition} ORDER BY id LIMIT ${}",
            select_sql(spec),
            args.len()
        );
        let rows = self.rows(&sql, &args, &row_types(spec)).await?;
        rows.iter().map(|r| record_from_row(spec, r)).collect()
    }

    pub async fn count(&mut self, entity: Entity) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", entity.spec().table);
        let row = self.row(&sql, &[], &[SqlType::Int]).await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).unwrap_or(0))
    }

    /// Fills in link sets and custom field values for `records`, one query per link table.
    async fn load_extras(&mut self, spec: &EntitySpec, records: &mut [Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let ids: Vec<Sql> = records.iter().map(|r| Sql::Int(r.id.0)).collect();
        let placeholders = placeholders(1, ids.len());
        let index: BTreeMap<i64, usize> = records.iter().enumerate().map(|(i, r)| (r.id.0, i)).collect();
        for link in spec.links {
            let mut cols = vec![link.owner, link.target];
            cols.extend(link.extra.iter().map(|c| c.name));
            let sql = format!(
                "SELECT {} FROM {} WHERE {} IN ({placeholders}) ORDER BY {}, {}",
                cols.join(", "),
                link.table,
                link.owner,
                link.owner,
                link.target
            );
            let mut types = vec![SqlType::Int, sql_type(link.target_ty)];
            types.extend(link.extra.iter().map(|c| sql_type(c.ty)));
            let mut sets: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
            for row in self.rows(&sql, &ids, &types).await? {
                let Some(owner) = row.first().and_then(Sql::as_int) else {
                    continue;
                };
                let target = row.get(1).map(from_sql).unwrap_or(Value::Null);
                let element = if link.extra.is_empty() {
                    target
                } else {
                    let mut obj = serde_json::Map::new();
                    obj.insert(link.target.to_owned(), target);
                    for (c, v) in link.extra.iter().zip(row.iter().skip(2)) {
                        obj.insert(c.name.to_owned(), from_sql(v));
                    }
                    Value::Object(obj)
                };
                sets.entry(owner).or_default().push(element);
            }
            for record in records.iter_mut() {
                let set = sets.remove(&record.id.0).unwrap_or_default();
                let canonical = canonical_link(spec, link, &Value::Array(set))?;
                record.fields.insert(link.field.to_owned(), canonical);
            }
        }
        if spec.custom_fields {
            let sql = format!(
                "SELECT v.record_id, f.name, v.value FROM custom_field_values v JOIN custom_fields f ON f.id = v.field_id \
                 WHERE f.entity = ${} AND v.record_id IN ({placeholders})",
                ids.len() + 1
            );
            let mut args = ids.clone();
            args.push(Sql::text(spec.name));
            for row in self
                .rows(&sql, &args, &[SqlType::Int, SqlType::Text, SqlType::Text])
                .await?
            {
                if let [Sql::Int(id), Sql::Text(name), Sql::Text(value)] = row.as_slice()
                    && let Some(&i) = index.get(id)
                    && let Some(record) = records.get_mut(i)
                {
                    let value = serde_json::from_str(value)
                        .map_err(|e| StoreError::Corrupt(format!("custom field {name}"), e.to_string()))?;
                    record.fields.insert(format!("{CUSTOM_PREFIX}{name}"), value);
                }
            }
        }
        Ok(())
    }

    /// Creates a record (imported from `source` when given) and journals every field it sets.
    pub async fn insert(
        &mut self,
        entity: Entity,
        source: Option<&SourceKey>,
        fields: &Fields,
    ) -> Result<RecordId> {
        let spec = entity.spec();
        let prepared = self.prepare_insert(spec, fields).await?;
        let mut names = INSERT_META.to_vec();
        let mut args = insert_meta(source, &format_timestamp(self.at)).to_vec();
        for (c, v) in &prepared.columns {
            names.push(c.name);
            args.push(to_sql(c.ty, v));
        }
        let placeholders = placeholders(1, args.len());
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({placeholders}) RETURNING id",
            spec.table,
            names.join(", ")
        );
        let id = RecordId(
            self.insert_returning_id(&sql, &args, spec.table)
                .await
                .map_err(|e| unique_violation(spec, e))?,
        );
        self.finish_insert(spec, id, prepared).await?;
        if entity == Entity::Customer {
            self.ensure_main_site(id).await?;
        }
        Ok(id)
    }

    /// Creates many records imported by one connection, each as [`StoreTx::insert`] would, in
    /// a few multi-row statements: an import of thousands of users makes tens of round trips to
    /// the database instead of thousands. Ids are given in the order of `rows`. Customers (which
    /// get a main site each) are created one by one.
    pub async fn insert_many(
        &mut self,
        entity: Entity,
        connection: ConnectionId,
        rows: &[(&str, &Fields)],
    ) -> Result<Vec<RecordId>> {
        let spec = entity.spec();
        if entity == Entity::Customer {
            let mut ids = Vec::with_capacity(rows.len());
            for (external, fields) in rows {
                let source = SourceKey::new(connection, *external);
                ids.push(self.insert(entity, Some(&source), fields).await?);
            }
            return Ok(ids);
        }
        let mut prepared = Vec::with_capacity(rows.len());
        for (_, fields) in rows {
            prepared.push(Some(self.prepare_insert(spec, fields).await?));
        }
        // Rows setting the same columns share a statement (an omitted column takes its default,
        // which a bound NULL would not).
        let mut groups: BTreeMap<Vec<&'static str>, Vec<usize>> = BTreeMap::new();
        for (i, p) in prepared.iter().enumerate() {
            if let Some(p) = p {
                groups
                    .entry(p.columns.iter().map(|(c, _)| c.name).collect())
                    .or_default()
                    .push(i);
            }
        }
        let at = format_timestamp(self.at);
        let mut ids: Vec<Option<RecordId>> = vec![None; rows.len()];
        for (columns, members) in groups {
            let mut names = INSERT_META.to_vec();
            names.extend(columns.iter().copied());
            for chunk in members.chunks(100) {
                let mut sql = format!("INSERT INTO {} ({}) VALUES ", spec.table, names.join(", "));
                let mut args = Vec::with_capacity(chunk.len() * names.len());
                let mut by_external: BTreeMap<&str, usize> = BTreeMap::new();
                for (n, &i) in chunk.iter().enumerate() {
                    let (Some((external, _)), Some(Some(p))) = (rows.get(i), prepared.get(i)) else {
                        continue;
                    };
                    if n > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    sql.push_str(&placeholders(args.len() + 1, names.len()));
                    sql.push(')');
                    let source = SourceKey::new(connection, *external);
                    args.extend(insert_meta(Some(&source), &at));
                    args.extend(p.columns.iter().map(|(c, v)| to_sql(c.ty, v)));
                    by_external.insert(external, i);
                }
                // RETURNING gives no promise of order: rows are matched by their source id.
                sql.push_str(" RETURNING external_id, id");
                let returned = self
                    .rows(&sql, &args, &[SqlType::Text, SqlType::Int])
                    .await
                    .map_err(|e| unique_violation(spec, e))?;
                for row in returned {
                    if let [Sql::Text(external), Sql::Int(id)] = row.as_slice()
                        && let Some(&i) = by_external.get(external.as_str())
                        && let Some(slot) = ids.get_mut(i)
                    {
                        *slot = Some(RecordId(*id));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for (i, slot) in ids.into_iter().enumerate() {
            let (Some(id), Some(p)) = (slot, prepared.get_mut(i).and_then(Option::take)) else {
                return Err(StoreError::Corrupt(
                    spec.table.to_owned(),
                    "a multi-row insert returned no id for a row (two rows with one source id?)".to_owned(),
                ));
            };
            self.remember_exists(spec.table, id.0);
            self.finish_insert(spec, id, p).await?;
            out.push(id);
        }
        Ok(out)
    }

    /// Validates a new record's fields: its columns (canonical values, references checked,
    /// required ones present) and the link sets and custom fields written after the row.
    async fn prepare_insert(&mut self, spec: &'static EntitySpec, fields: &Fields) -> Result<PreparedInsert> {
        let mut columns: Vec<(&'static Column, Value)> = Vec::new();
        let mut later: Vec<(String, Value)> = Vec::new();
        for (field, value) in fields {
            match resolve(spec, field)? {
                Target::Column(c) => columns.push((c, canonical(spec, field, c.ty, value)?)),
                Target::Link(_) | Target::Custom(_) => later.push((field.clone(), value.clone())),
            }
        }
        for c in spec.columns.iter().filter(|c| c.required) {
            if !columns.iter().any(|(col, v)| col.name == c.name && !v.is_null()) {
                return Err(invalid(spec, c.name, "is required".to_owned()));
            }
        }
        for (c, v) in &columns {
            self.check_reference(spec, c, v).await?;
        }
        Ok(PreparedInsert { columns, later })
    }

    /// After a new record's row: its link sets and custom fields, and the journal.
    async fn finish_insert(
        &mut self,
        spec: &'static EntitySpec,
        id: RecordId,
        prepared: PreparedInsert,
    ) -> Result<()> {
        self.remember_exists(spec.table, id.0);
        let mut changes: Vec<FieldChange> = prepared
            .columns
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(c, v)| FieldChange {
                field: c.name.to_owned(),
                before: Value::Null,
                after: v,
            })
            .collect();
        for (field, value) in prepared.later {
            if let Some(change) = self.write_extra(spec, id, &field, &value, &Value::Null).await? {
                changes.push(change);
            }
        }
        if changes.is_empty() {
            changes.push(FieldChange {
                field: "*".to_owned(),
                before: Value::Null,
                after: json!({}),
            });
        }
        self.journal(spec, id, "create", &changes).await
    }

    /// Every customer has a main site: created with the customer.
    async fn ensure_main_site(&mut self, customer: RecordId) -> Result<()> {
        let existing = self
            .row(
                "SELECT id FROM sites WHERE customer_id = $1 AND is_main",
                &[Sql::Int(customer.0)],
                &[SqlType::Int],
            )
            .await?;
        if existing.is_none() {
            let fields: Fields = [
                ("customer_id".to_owned(), json!(customer.0)),
                ("name".to_owned(), json!("Main")),
                ("is_main".to_owned(), json!(true)),
            ]
            .into_iter()
            .collect();
            Box::pin(self.insert(Entity::Site, None, &fields)).await?;
        }
        Ok(())
    }

    /// The id of a customer's main site.
    pub async fn main_site(&mut self, customer: RecordId) -> Result<Option<RecordId>> {
        let row = self
            .row(
                "SELECT id FROM sites WHERE customer_id = $1 AND is_main",
                &[Sql::Int(customer.0)],
                &[SqlType::Int],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).map(RecordId))
    }

    /// The customer a Microsoft tenant belongs to (tenant ids compare without case), if any.
    pub async fn customer_of_tenant(&mut self, tenant_id: &str) -> Result<Option<RecordId>> {
        let row = self
            .row(
                "SELECT customer_id FROM customer_tenants WHERE lower(tenant_id) = lower($1)",
                &[Sql::text(tenant_id.to_owned())],
                &[SqlType::Int],
            )
            .await?;
        Ok(row.and_then(|r| r.first().and_then(Sql::as_int)).map(RecordId))
    }

    /// Changes the given fields of a record; fields not given are left alone. Only fields whose
    /// value really changes are written and journaled. Returns those changes.
    pub async fn update(
        &mut self,
        entity: Entity,
        id: RecordId,
        fields: &Fields,
    ) -> Result<Vec<FieldChange>> {
        let spec = entity.spec();
        let current = self.get(entity, id).await?.ok_or(StoreError::NotFound {
            entity: spec.name,
            id: id.0,
        })?;
        self.update_current(&current, fields).await
    }

    /// [`StoreTx::update`] of a record just read in this transaction.
    async fn update_current(&mut self, current: &Record, fields: &Fields) -> Result<Vec<FieldChange>> {
        let spec = current.entity.spec();
        let id = current.id;
        let mut set_columns: Vec<(&'static Column, Value)> = Vec::new();
        let mut changes = Vec::new();
        let mut extras = Vec::new();
        for (field, value) in fields {
            match resolve(spec, field)? {
                Target::Column(c) => {
                    let after = canonical(spec, field, c.ty, value)?;
                    let before = current.get(field).clone();
                    if c.required && after.is_null() {
                        return Err(invalid(
                            spec,
                            field,
                            "is required and cannot be cleared".to_owned(),
                        ));
                    }
                    if !same_value(&before, &after) {
                        self.check_reference(spec, c, &after).await?;
                        changes.push(FieldChange {
                            field: field.clone(),
                            before,
                            after: after.clone(),
                        });
                        set_columns.push((c, after));
                    }
                }
                Target::Link(_) | Target::Custom(_) => extras.push((field.clone(), value.clone())),
            }
        }
        if !set_columns.is_empty() {
            let mut assignments = Vec::new();
            let mut args = Vec::new();
            for (c, v) in &set_columns {
                args.push(to_sql(c.ty, v));
                assignments.push(format!("{} = ${}", c.name, args.len()));
            }
            args.push(Sql::Text(format_timestamp(self.at)));
            assignments.push(format!("updated_at = ${}", args.len()));
            args.push(Sql::Int(id.0));
            let sql = format!(
                "UPDATE {} SET {} WHERE id = ${}",
                spec.table,
                assignments.join(", "),
                args.len()
            );
            self.execute(&sql, &args)
                .await
                .map_err(|e| unique_violation(spec, e))?;
        }
        for (field, value) in extras {
            let before = current.get(&field).clone();
            if let Some(change) = self.write_extra(spec, id, &field, &value, &before).await? {
                changes.push(change);
            }
        }
        if !changes.is_empty() {
            if set_columns.is_empty() {
                let sql = format!("UPDATE {} SET updated_at = $1 WHERE id = $2", spec.table);
                self.execute(&sql, &[Sql::Text(format_timestamp(self.at)), Sql::Int(id.0)])
                    .await?;
            }
            self.journal(spec, id, "update", &changes).await?;
        }
        Ok(changes)
    }

    /// Creates or updates the record imported from `source`: a re-import updates, never
    /// duplicates.
    pub async fn upsert_by_source(
        &mut self,
        entity: Entity,
        source: &SourceKey,
        fields: &Fields,
    ) -> Result<UpsertOutcome> {
        match self.find_by_source(entity, source).await? {
            Some(existing) => {
                let changes = self.update_current(&existing, fields).await?;
                Ok(if changes.is_empty() {
                    UpsertOutcome::Unchanged(existing.id)
                } else {
                    UpsertOutcome::Updated(existing.id, changes)
                })
            }
            None => Ok(UpsertOutcome::Created(
                self.insert(entity, Some(source), fields).await?,
            )),
        }
    }

    /// Gives an existing desk record (matched by email, say) its source identity, journaled.
    pub async fn link_source(&mut self, entity: Entity, id: RecordId, source: &SourceKey) -> Result<()> {
        let spec = entity.spec();
        let current = self.get(entity, id).await?.ok_or(StoreError::NotFound {
            entity: spec.name,
            id: id.0,
        })?;
        if current.source.as_ref() == Some(source) {
            return Ok(());
        }
        let sql = format!(
            "UPDATE {} SET source_connection_id = $1, external_id = $2, updated_at = $3 WHERE id = $4",
            spec.table
        );
        let args = [
            Sql::Int(source.connection_id.0),
            Sql::text(source.external_id.clone()),
            Sql::Text(format_timestamp(self.at)),
            Sql::Int(id.0),
        ];
        self.execute(&sql, &args)
            .await
            .map_err(|e| unique_violation(spec, e))?;
        let before = current.source.map_or(Value::Null, |s| json!(s));
        let change = FieldChange {
            field: "source".to_owned(),
            before,
            after: json!(source),
        };
        self.journal(spec, id, "link", &[change]).await
    }

    /// Deletes a record; the journal keeps everything it held.
    pub async fn delete(&mut self, entity: Entity, id: RecordId) -> Result<()> {
        let spec = entity.spec();
        let current = self.get(entity, id).await?.ok_or(StoreError::NotFound {
            entity: spec.name,
            id: id.0,
        })?;
        let sql = format!("DELETE FROM {} WHERE id = $1", spec.table);
        self.execute(&sql, &[Sql::Int(id.0)]).await?;
        if spec.custom_fields {
            let sql = "DELETE FROM custom_field_values WHERE record_id = $1 AND field_id IN \
                       (SELECT id FROM custom_fields WHERE entity = $2)";
            self.execute(sql, &[Sql::Int(id.0), Sql::text(spec.name)]).await?;
        }
        let change = FieldChange {
            field: "*".to_owned(),
            before: current.to_json(),
            after: Value::Null,
        };
        self.journal(spec, id, "delete", &[change]).await
    }

    async fn check_reference(&mut self, spec: &EntitySpec, column: &Column, value: &Value) -> Result<()> {
        let ColumnType::Ref(target) = column.ty else {
            return Ok(());
        };
        let Some(id) = value.as_i64() else { return Ok(()) };
        let table = target.spec().table;
        if self.known_to_exist(table, id) {
            return Ok(());
        }
        let sql = format!("SELECT id FROM {table} WHERE id = $1");
        if self.row(&sql, &[Sql::Int(id)], &[SqlType::Int]).await?.is_none() {
            return Err(invalid(
                spec,
                column.name,
                format!("{target} {id} does not exist"),
            ));
        }
        self.remember_exists(table, id);
        Ok(())
    }

    /// Writes a link set or a custom field value if it differs from `before`.
    async fn write_extra(
        &mut self,
        spec: &EntitySpec,
        id: RecordId,
        field: &str,
        value: &Value,
        before: &Value,
    ) -> Result<Option<FieldChange>> {
        match resolve(spec, field)? {
            Target::Link(link) => {
                let after = canonical_link(spec, link, value)?;
                let before = if before.is_null() {
                    json!([])
                } else {
                    before.clone()
                };
                if before == after {
                    return Ok(None);
                }
                let Value::Array(items) = &after else {
                    return Ok(None);
                };
                let fresh = before.as_array().is_some_and(Vec::is_empty);
                if !fresh {
                    self.delete_link_rows(
                        &format!("DELETE FROM {} WHERE {} = $1", link.table, link.owner),
                        &[Sql::Int(id.0)],
                    )
                    .await?;
                }
                let mut names = vec![link.owner, link.target];
                names.extend(link.extra.iter().map(|c| c.name));
                let mut rows: Vec<Sql> = Vec::with_capacity(items.len() * names.len());
                for item in items {
                    let (target, extras): (Value, Vec<(&Column, Value)>) = if link.extra.is_empty() {
                        (item.clone(), Vec::new())
                    } else {
                        let target = item.get(link.target).cloned().unwrap_or(Value::Null);
                        let extras = link
                            .extra
                            .iter()
                            .map(|c| (c, item.get(c.name).cloned().unwrap_or(Value::Null)))
                            .collect();
                        (target, extras)
                    };
                    let target_column = Column {
                        name: link.target,
                        ty: link.target_ty,
                        required: true,
                    };
                    self.check_reference(spec, &target_column, &target).await?;
                    rows.push(Sql::Int(id.0));
                    rows.push(to_sql(link.target_ty, &target));
                    for (c, v) in &extras {
                        self.check_reference(spec, c, v).await?;
                        rows.push(to_sql(c.ty, v));
                    }
                }
                if fresh {
                    // Nothing to replace: queue the rows like the journal's (an import creates
                    // thousands of sets). They are sent before anything reads the table.
                    let columns = format!("({})", names.join(", "));
                    for row in rows.chunks(names.len()) {
                        self.append_row(link.table, &columns, row.to_vec()).await?;
                    }
                    return Ok(Some(FieldChange {
                        field: field.to_owned(),
                        before,
                        after,
                    }));
                }
                // One statement for the whole set (sets are small: a user's roles or licences).
                for chunk in rows.chunks(names.len() * 500) {
                    let mut sql = format!("INSERT INTO {} ({}) VALUES ", link.table, names.join(", "));
                    for row in 0..chunk.len() / names.len() {
                        if row > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        sql.push_str(&placeholders(row * names.len() + 1, names.len()));
                        sql.push(')');
                    }
                    self.execute(&sql, chunk)
                        .await
                        .map_err(|e| unique_violation(spec, e))?;
                }
                Ok(Some(FieldChange {
                    field: field.to_owned(),
                    before,
                    after,
                }))
            }
            Target::Custom(name) => {
                let def = self.custom_field(spec, name).await?;
                let after = check_custom_value(spec, field, &def, value)?;
                if same_value(before, &after) {
                    return Ok(None);
                }
                let args = [Sql::Int(def.id), Sql::Int(id.0)];
                self.execute(
                    "DELETE FROM custom_field_values WHERE field_id = $1 AND record_id = $2",
                    &args,
                )
                .await?;
                if !after.is_null() {
                    let args = [Sql::Int(def.id), Sql::Int(id.0), Sql::Text(after.to_string())];
                    self.execute(
                        "INSERT INTO custom_field_values (field_id, record_id, value) VALUES ($1, $2, $3)",
                        &args,
                    )
                    .await?;
                }
                Ok(Some(FieldChange {
                    field: field.to_owned(),
                    before: before.clone(),
                    after,
                }))
            }
            Target::Column(_) => Ok(None),
        }
    }

    async fn custom_field(&mut self, spec: &EntitySpec, name: &str) -> Result<CustomField> {
        let row = self
            .row(
                "SELECT id, field_type FROM custom_fields WHERE entity = $1 AND name = $2",
                &[Sql::text(spec.name), Sql::text(name)],
                &[SqlType::Int, SqlType::Text],
            )
            .await?;
        let Some([Sql::Int(id), Sql::Text(field_type)]) = row.as_deref() else {
            return Err(StoreError::UnknownField {
                entity: spec.name,
                field: format!("{CUSTOM_PREFIX}{name}"),
            });
        };
        let mut options = BTreeSet::new();
        if field_type.ends_with("select") {
            for row in self
                .rows(
                    "SELECT value FROM custom_field_options WHERE field_id = $1",
                    &[Sql::Int(*id)],
                    &[SqlType::Text],
                )
                .await?
            {
                if let Some(v) = row.first().and_then(Sql::as_text) {
                    options.insert(v.to_owned());
                }
            }
        }
        Ok(CustomField {
            id: *id,
            field_type: field_type.clone(),
            options,
        })
    }

    /// Defines a custom field on an entity (with its select options: value, label, external id).
    pub async fn define_custom_field(
        &mut self,
        entity: Entity,
        name: &str,
        field_type: &str,
        options: &[(String, Option<String>, Option<String>)],
    ) -> Result<RecordId> {
        let spec = entity.spec();
        if !spec.custom_fields {
            return Err(invalid(
                spec,
                name,
                format!("{} records have no custom fields", spec.name),
            ));
        }
        if ![
            "text",
            "number",
            "date",
            "boolean",
            "single_select",
            "multi_select",
        ]
        .contains(&field_type)
        {
            return Err(invalid(
                spec,
                name,
                format!("unknown custom field type {field_type:?}"),
            ));
        }
        let at = format_timestamp(self.at);
        let id = self
            .insert_returning_id(
                "INSERT INTO custom_fields (entity, name, field_type, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
                &[Sql::text(spec.name), Sql::text(name), Sql::text(field_type), Sql::Text(at)],
                "custom_fields",
            )
            .await
            .map_err(|e| unique_violation(spec, e))?;
        for (value, label, external_id) in options {
            self.execute(
                "INSERT INTO custom_field_options (field_id, value, label, external_id) VALUES ($1, $2, $3, $4)",
                &[Sql::Int(id), Sql::text(value.clone()), Sql::opt_text(label.clone()), Sql::opt_text(external_id.clone())],
            )
            .await?;
        }
        Ok(RecordId(id))
    }

    /// Sets (or, with `None`, clears) the external id of the option `value` of the select custom
    /// field `name` on `entity`: the source's option value it stands for (a Dataverse choice's
    /// `100000001`). An unknown field or option is an error naming it.
    pub async fn set_custom_field_option_external_id(
        &mut self,
        entity: Entity,
        name: &str,
        value: &str,
        external_id: Option<&str>,
    ) -> Result<()> {
        let spec = entity.spec();
        let field = self.custom_field(spec, name).await?;
        let changed = self
            .execute(
                "UPDATE custom_field_options SET external_id = $1 WHERE field_id = $2 AND value = $3",
                &[
                    Sql::opt_text(external_id.map(str::to_owned)),
                    Sql::Int(field.id),
                    Sql::text(value.to_owned()),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(invalid(
                spec,
                name,
                format!(
                    "the custom field {name} has no option {value:?} (its options: {})",
                    field.options.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    async fn journal(
        &mut self,
        spec: &EntitySpec,
        id: RecordId,
        action: &str,
        changes: &[FieldChange],
    ) -> Result<()> {
        self.journal_entity(spec.name, id, action, changes).await
    }

    /// Journals changes of a record of any entity (desk entities and custom tables).
    pub(crate) async fn journal_entity(
        &mut self,
        entity: &str,
        id: RecordId,
        action: &str,
        changes: &[FieldChange],
    ) -> Result<()> {
        // Queued: a large import sends its journal as a few multi-row inserts.
        let json_or_null = |v: &Value| {
            if v.is_null() {
                Sql::Null(SqlType::Text)
            } else {
                Sql::Text(v.to_string())
            }
        };
        let at = format_timestamp(self.at);
        for change in changes {
            let row = vec![
                Sql::opt_int(self.ctx.run_id.map(|r| r.0)),
                Sql::opt_int(self.ctx.connection_id.map(|c| c.0)),
                Sql::text(entity),
                Sql::Int(id.0),
                Sql::text(action),
                Sql::text(change.field.clone()),
                json_or_null(&change.before),
                json_or_null(&change.after),
                Sql::Text(at.clone()),
            ];
            self.append_row(
                "journal",
                "(run_id, connection_id, entity, record_id, action, field, before_value, after_value, at)",
                row,
            )
            .await?;
        }
        Ok(())
    }
}

/// Equal for the store's purposes (1 and 1.0 are the same number).
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn check_custom_value(spec: &EntitySpec, field: &str, def: &CustomField, value: &Value) -> Result<Value> {
    let bad = |expected: &str| {
        invalid(
            spec,
            field,
            format!("expected {expected}, got {}", deskbridge_core::json_kind(value)),
        )
    };
    let option = |v: &str| {
        if def.options.contains(v) {
            Ok(Value::String(v.to_owned()))
        } else {
            Err(invalid(
                spec,
                field,
                format!("{v:?} is not one of the field's options"),
            ))
        }
    };
    Ok(match (def.field_type.as_str(), value) {
        (_, Value::Null) => Value::Null,
        ("text", Value::String(_)) | ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => {
            value.clone()
        }
        ("text", _) => return Err(bad("text")),
        ("number", _) => return Err(bad("a number")),
        ("boolean", _) => return Err(bad("true or false")),
        ("date", Value::String(s)) => {
            if s.parse::<jiff::civil::Date>().is_ok() {
                value.clone()
            } else {
                Value::String(format_timestamp(
                    parse_timestamp(s).map_err(|m| invalid(spec, field, m))?,
                ))
            }
        }
        ("date", _) => return Err(bad("a date")),
        ("single_select", Value::String(s)) => option(s)?,
        ("single_select", _) => return Err(bad("one option value")),
        ("multi_select", Value::Array(items)) => {
            let mut chosen = BTreeSet::new();
            for item in items {
                match item {
                    Value::String(s) => {
                        option(s)?;
                        chosen.insert(s.clone());
                    }
                    _ => return Err(bad("a list of option values")),
                }
            }
            json!(chosen)
        }
        ("multi_select", _) => return Err(bad("a list of option values")),
        (other, _) => {
            return Err(invalid(
                spec,
                field,
                format!("unknown custom field type {other:?}"),
            ));
        }
    })
}

/// Turns a unique-constraint violation into a message naming the entity and what clashes. The
/// database's own text (its table, column or index names and the clashing value) is for the log,
/// not for the person who sees the error.
fn unique_violation(spec: &EntitySpec, e: StoreError) -> StoreError {
    if let StoreError::Database(sqlx::Error::Database(db)) = &e
        && db.is_unique_violation()
    {
        // SQLite names the columns in its message, PostgreSQL names the constraint or index;
        // both name the column or the index, which is all that is matched here.
        let clash = db
            .constraint()
            .unwrap_or_else(|| db.message())
            .to_ascii_lowercase();
        tracing::info!(entity = spec.name, database = %db.message(), "unique value clash");
        let entity = spec.name.replace('_', " ");
        let message = if clash.contains("external_id") || clash.ends_with("_source") {
            format!(
                "this {entity} was imported already from the same source record: update that {entity} instead"
            )
        } else if clash.contains("one_main") || clash.contains("sites.customer_id") {
            "the customer has a main site already: a customer has exactly one main site".to_owned()
        } else if clash.contains("tenant_id") {
            "the tenant belongs to another customer already: a tenant belongs to one customer; remove it \
             there first"
                .to_owned()
        } else if clash.contains("name") {
            format!("a {entity} with the same name already exists: choose another name")
        } else {
            format!("a {entity} with the same unique value already exists: change the value that clashes")
        };
        return StoreError::Conflict(message);
    }
    e
}

/// A custom field's definition, as listed by [`StoreTx::custom_field_definitions`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomFieldDefinition {
    pub entity: String,
    pub name: String,
    pub field_type: String,
    /// Option values of select fields.
    pub options: Vec<String>,
    /// The options' external ids (a source's option values) → their values.
    pub option_ids: std::collections::BTreeMap<String, String>,
}

impl StoreTx {
    /// Every custom field defined on the desk, with select options.
    pub async fn custom_field_definitions(&mut self) -> Result<Vec<CustomFieldDefinition>> {
        let rows = self
            .rows(
                "SELECT f.entity, f.name, f.field_type, o.value, o.external_id FROM custom_fields f \
                 LEFT JOIN custom_field_options o ON o.field_id = f.id ORDER BY f.entity, f.name, o.value",
                &[],
                &[
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Text,
                    SqlType::Text,
                ],
            )
            .await?;
        let mut out: Vec<CustomFieldDefinition> = Vec::new();
        for row in rows {
            let text = |i: usize| row.get(i).and_then(Sql::as_text).unwrap_or_default().to_owned();
            let (entity, name) = (text(0), text(1));
            let option = row.get(3).and_then(Sql::as_text).map(str::to_owned);
            let external = row
                .get(4)
                .and_then(Sql::as_text)
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned);
            let start = match out.last() {
                Some(last) => last.entity != entity || last.name != name,
                None => true,
            };
            if start {
                out.push(CustomFieldDefinition {
                    entity,
                    name,
                    field_type: text(2),
                    options: Vec::new(),
                    option_ids: Default::default(),
                });
            }
            if let Some(last) = out.last_mut()
                && let Some(option) = option
            {
                if let Some(external) = external {
                    last.option_ids.insert(external, option.clone());
                }
                last.options.push(option);
            }
        }
        Ok(out)
    }
}
