//! The Dataverse part of the world: organisations (environments), their tables, columns,
//! option sets, rows, and the version counter change tracking reads.
//!
//! Invariants: every row and every tombstone carries the org-wide version at which it last
//! changed (strictly increasing, starting at 1), so "changed since version v" is a scan;
//! lookups are stored as `{"id", "table"}` objects under the column's logical name; picklists
//! are integers, multi-select picklists `"1,9"` strings; dates RFC 3339 UTC strings.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One Dataverse environment, served at `{base}/org/{name}/api/data/v9.2/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    /// The URL segment (`contoso0`): the org URL is `{base}/org/{name}`.
    pub name: String,
    pub friendly_name: String,
    /// The Entra tenant the environment belongs to; only its tokens are accepted.
    pub tenant_id: String,
    pub organization_id: String,
    pub business_unit_id: String,
    /// Apps registered as application users (client credentials), with their privileges.
    #[serde(default)]
    pub application_users: Vec<ApplicationUser>,
    /// Tenant users (object ids) who are *not* users of this environment; every other enabled
    /// user of the tenant may sign in (delegated) with full read and write privileges.
    #[serde(default)]
    pub excluded_users: Vec<String>,
    /// Change-tracking tokens older than this are refused (the org setting `ExpireChangeTrackingInDays`).
    #[serde(default = "default_expiry_days")]
    pub expire_change_tracking_in_days: u32,
    /// Tokens issued at or before this instant are refused as expired (tests: "expire now").
    #[serde(default)]
    pub change_tokens_expired_before: Option<Timestamp>,
    /// The last version handed out (rows and tombstones carry versions ≤ this).
    #[serde(default)]
    pub version: u64,
    pub tables: Vec<Table>,
}

fn default_expiry_days() -> u32 {
    7
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationUser {
    pub client_id: String,
    /// The application user's `systemuserid`.
    pub user_id: String,
    /// Tables (logical names) it may read; `None` = every table.
    #[serde(default)]
    pub read_tables: Option<Vec<String>>,
    /// It may create, update and delete rows.
    #[serde(default)]
    pub write: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub logical_name: String,
    pub entity_set_name: String,
    pub display_name: String,
    pub display_collection_name: String,
    pub primary_id: String,
    pub primary_name: String,
    pub object_type_code: i32,
    #[serde(default)]
    pub is_custom: bool,
    pub change_tracking: bool,
    pub metadata_id: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub rows: Vec<Row>,
    /// Deleted rows, for change tracking.
    #[serde(default)]
    pub tombstones: Vec<Tombstone>,
    /// Lower-case id → position in `rows` (rebuilt on load; a stale entry falls back to a scan).
    #[serde(skip)]
    pub index: std::collections::HashMap<String, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    String,
    Memo,
    Integer,
    Decimal,
    Money,
    Boolean,
    DateTime,
    /// Date only (`DateOnly` behaviour): `2025-01-31`.
    Date,
    Picklist,
    MultiSelectPicklist,
    State,
    Status,
    Lookup,
    /// Polymorphic lookup to account or contact.
    Customer,
    Owner,
    Uniqueidentifier,
}

impl ColumnKind {
    /// `AttributeType` in metadata.
    pub fn attribute_type(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Memo => "Memo",
            Self::Integer => "Integer",
            Self::Decimal => "Decimal",
            Self::Money => "Money",
            Self::Boolean => "Boolean",
            Self::DateTime | Self::Date => "DateTime",
            Self::Picklist => "Picklist",
            Self::MultiSelectPicklist => "Virtual",
            Self::State => "State",
            Self::Status => "Status",
            Self::Lookup => "Lookup",
            Self::Customer => "Customer",
            Self::Owner => "Owner",
            Self::Uniqueidentifier => "Uniqueidentifier",
        }
    }

    /// `AttributeTypeName.Value` in metadata.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::String => "StringType",
            Self::Memo => "MemoType",
            Self::Integer => "IntegerType",
            Self::Decimal => "DecimalType",
            Self::Money => "MoneyType",
            Self::Boolean => "BooleanType",
            Self::DateTime | Self::Date => "DateTimeType",
            Self::Picklist => "PicklistType",
            Self::MultiSelectPicklist => "MultiSelectPicklistType",
            Self::State => "StateType",
            Self::Status => "StatusType",
            Self::Lookup => "LookupType",
            Self::Customer => "CustomerType",
            Self::Owner => "OwnerType",
            Self::Uniqueidentifier => "UniqueidentifierType",
        }
    }

    /// The metadata entity type (`@odata.type` without `#Microsoft.Dynamics.CRM.`).
    pub fn metadata_type(self) -> &'static str {
        match self {
            Self::String => "StringAttributeMetadata",
            Self::Memo => "MemoAttributeMetadata",
            Self::Integer => "IntegerAttributeMetadata",
            Self::Decimal => "DecimalAttributeMetadata",
            Self::Money => "MoneyAttributeMetadata",
            Self::Boolean => "BooleanAttributeMetadata",
            Self::DateTime | Self::Date => "DateTimeAttributeMetadata",
            Self::Picklist => "PicklistAttributeMetadata",
            Self::MultiSelectPicklist => "MultiSelectPicklistAttributeMetadata",
            Self::State => "StateAttributeMetadata",
            Self::Status => "StatusAttributeMetadata",
            Self::Lookup | Self::Customer | Self::Owner => "LookupAttributeMetadata",
            Self::Uniqueidentifier => "AttributeMetadata",
        }
    }

    /// The EDM type in `$metadata`.
    pub fn edm_type(self) -> &'static str {
        match self {
            Self::String | Self::Memo | Self::MultiSelectPicklist => "Edm.String",
            Self::Integer | Self::Picklist | Self::State | Self::Status => "Edm.Int32",
            Self::Decimal | Self::Money => "Edm.Decimal",
            Self::Boolean => "Edm.Boolean",
            Self::DateTime => "Edm.DateTimeOffset",
            Self::Date => "Edm.Date",
            Self::Lookup | Self::Customer | Self::Owner | Self::Uniqueidentifier => "Edm.Guid",
        }
    }

    pub fn is_lookup(self) -> bool {
        matches!(self, Self::Lookup | Self::Customer | Self::Owner)
    }

    pub fn has_options(self) -> bool {
        matches!(
            self,
            Self::Picklist | Self::MultiSelectPicklist | Self::State | Self::Status | Self::Boolean
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub logical_name: String,
    pub kind: ColumnKind,
    pub display_name: String,
    #[serde(default)]
    pub is_custom: bool,
    /// Options of picklists, states, statuses and booleans (false = 0, true = 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<OptionValue>,
    /// The option set's name when it is global (shared between tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_option_set: Option<String>,
    /// Lookup targets and the one-to-many relationship behind each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<LookupTarget>,
    pub metadata_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptionValue {
    pub value: i32,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LookupTarget {
    /// Target table (logical name).
    pub table: String,
    /// Relationship schema name: the collection-valued navigation property on the target.
    pub relationship: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: String,
    pub version: u64,
    pub created_on: Timestamp,
    pub modified_on: Timestamp,
    /// Column logical name → value (lookups as `{"id", "table"}`).
    #[serde(default)]
    pub values: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    pub id: String,
    pub version: u64,
    pub deleted_on: Timestamp,
}

/// A single-valued navigation property: a lookup column and one of its targets.
#[derive(Debug, Clone, Copy)]
pub struct SingleNav<'a> {
    pub column: &'a Column,
    pub target: &'a LookupTarget,
}

/// A collection-valued navigation property: rows of `table` whose `column` points here.
#[derive(Debug, Clone, Copy)]
pub struct CollectionNav<'a> {
    pub table: &'a Table,
    pub column: &'a Column,
}

impl Column {
    /// `_parentcustomerid_value` for lookups, the logical name otherwise.
    pub fn wire_name(&self) -> String {
        if self.kind.is_lookup() {
            format!("_{}_value", self.logical_name)
        } else {
            self.logical_name.clone()
        }
    }

    /// The single-valued navigation property for `target`: the column name for single-target
    /// lookups, `{column}_{target}` for polymorphic ones (`parentcustomerid_account`).
    pub fn nav_name(&self, target: &LookupTarget) -> String {
        if self.targets.len() == 1 {
            self.logical_name.clone()
        } else {
            format!("{}_{}", self.logical_name, target.table)
        }
    }

    pub fn label(&self, value: i64) -> Option<&str> {
        self.options
            .iter()
            .find(|o| i64::from(o.value) == value)
            .map(|o| o.label.as_str())
    }
}

impl Table {
    pub fn column(&self, logical_name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.logical_name.eq_ignore_ascii_case(logical_name))
    }

    /// A column by its name on the wire (`_x_value` for lookups, or the logical name).
    pub fn column_by_wire(&self, wire: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.wire_name().eq_ignore_ascii_case(wire))
    }

    pub fn single_nav(&self, name: &str) -> Option<SingleNav<'_>> {
        self.columns
            .iter()
            .filter(|c| c.kind.is_lookup())
            .find_map(|column| {
                column
                    .targets
                    .iter()
                    .find(|t| column.nav_name(t).eq_ignore_ascii_case(name))
                    .map(|target| SingleNav { column, target })
            })
    }

    fn position(&self, id: &str) -> Option<usize> {
        let indexed = self
            .index
            .get(&id.to_ascii_lowercase())
            .copied()
            .filter(|i| self.rows.get(*i).is_some_and(|r| r.id.eq_ignore_ascii_case(id)));
        indexed.or_else(|| self.rows.iter().position(|r| r.id.eq_ignore_ascii_case(id)))
    }

    pub fn row(&self, id: &str) -> Option<&Row> {
        self.position(id).map(|i| &self.rows[i])
    }

    pub fn row_mut(&mut self, id: &str) -> Option<&mut Row> {
        self.position(id).map(|i| &mut self.rows[i])
    }

    pub fn rebuild_index(&mut self) {
        self.index = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.to_ascii_lowercase(), i))
            .collect();
    }

    /// The display value of a row (its primary name column).
    pub fn name_of(&self, row: &Row) -> Option<String> {
        row.values
            .get(&self.primary_name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

impl Org {
    pub fn table(&self, logical_name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.logical_name.eq_ignore_ascii_case(logical_name))
    }

    pub fn table_by_set(&self, entity_set: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.entity_set_name.eq_ignore_ascii_case(entity_set))
    }

    pub fn table_index(&self, logical_or_set: &str) -> Option<usize> {
        self.tables.iter().position(|t| {
            t.logical_name.eq_ignore_ascii_case(logical_or_set)
                || t.entity_set_name.eq_ignore_ascii_case(logical_or_set)
        })
    }

    /// The collection-valued navigation property `name` on `table`.
    pub fn collection_nav(&self, table: &Table, name: &str) -> Option<CollectionNav<'_>> {
        self.tables.iter().find_map(|other| {
            other
                .columns
                .iter()
                .filter(|c| c.kind.is_lookup())
                .find(|c| {
                    c.targets.iter().any(|t| {
                        t.table.eq_ignore_ascii_case(&table.logical_name)
                            && t.relationship.eq_ignore_ascii_case(name)
                    })
                })
                .map(|column| CollectionNav { table: other, column })
        })
    }

    /// Every collection-valued navigation property of `table` (name, related table, column).
    pub fn collection_navs<'a>(&'a self, table: &'a Table) -> Vec<(String, CollectionNav<'a>)> {
        let mut out = Vec::new();
        for other in &self.tables {
            for column in other.columns.iter().filter(|c| c.kind.is_lookup()) {
                for target in &column.targets {
                    if target.table.eq_ignore_ascii_case(&table.logical_name) {
                        out.push((
                            target.relationship.clone(),
                            CollectionNav { table: other, column },
                        ));
                    }
                }
            }
        }
        out
    }

    pub fn application_user(&self, client_id: &str) -> Option<&ApplicationUser> {
        self.application_users
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn rebuild_indexes(&mut self) {
        for t in &mut self.tables {
            t.rebuild_index();
        }
    }

    pub fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }
}

/// Why a change to a Dataverse row was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("no table {0}")]
    NoTable(String),
    #[error("{table} With Id = {id} Does Not Exist")]
    NoRow { table: String, id: String },
    #[error("a row with id {0} already exists")]
    Duplicate(String),
}

impl Org {
    fn table_mut(&mut self, logical_or_set: &str) -> Result<&mut Table, RowError> {
        let index = self
            .table_index(logical_or_set)
            .ok_or_else(|| RowError::NoTable(logical_or_set.to_owned()))?;
        Ok(&mut self.tables[index])
    }

    /// Creates a row (values in stored form: lookups as `{"id", "table"}`); returns its id.
    pub fn insert_row(
        &mut self,
        table: &str,
        id: Option<String>,
        values: Map<String, Value>,
        now: Timestamp,
    ) -> Result<String, RowError> {
        let version = self.version + 1;
        let t = self.table_mut(table)?;
        let id = id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
            .to_ascii_lowercase();
        if t.row(&id).is_some() {
            return Err(RowError::Duplicate(id));
        }
        t.tombstones.retain(|d| !d.id.eq_ignore_ascii_case(&id));
        t.index.insert(id.clone(), t.rows.len());
        t.rows.push(Row {
            id: id.clone(),
            version,
            created_on: now,
            modified_on: now,
            values,
        });
        self.version = version;
        Ok(id)
    }

    /// Merges `values` into a row (`null` clears a column) and gives it a new version.
    pub fn update_row(
        &mut self,
        table: &str,
        id: &str,
        values: Map<String, Value>,
        now: Timestamp,
    ) -> Result<(), RowError> {
        let version = self.version + 1;
        let t = self.table_mut(table)?;
        let logical = t.logical_name.clone();
        let row = t.row_mut(id).ok_or_else(|| RowError::NoRow {
            table: logical,
            id: id.to_owned(),
        })?;
        for (k, v) in values {
            if v.is_null() {
                row.values.remove(&k);
            } else {
                row.values.insert(k, v);
            }
        }
        row.version = version;
        row.modified_on = now;
        self.version = version;
        Ok(())
    }

    /// Deletes a row, leaving a tombstone for change tracking.
    pub fn delete_row(&mut self, table: &str, id: &str, now: Timestamp) -> Result<(), RowError> {
        let version = self.version + 1;
        let t = self.table_mut(table)?;
        let index = t.position(id).ok_or_else(|| RowError::NoRow {
            table: t.logical_name.clone(),
            id: id.to_owned(),
        })?;
        let row = t.rows.swap_remove(index);
        t.index.remove(&row.id.to_ascii_lowercase());
        if let Some(moved) = t.rows.get(index) {
            t.index.insert(moved.id.to_ascii_lowercase(), index);
        }
        t.tombstones.push(Tombstone {
            id: row.id,
            version,
            deleted_on: now,
        });
        self.version = version;
        Ok(())
    }
}

impl crate::World {
    /// The Dataverse organisation named `name` (its URL segment).
    pub fn dataverse_org(&self, name: &str) -> Option<&Org> {
        self.dataverse_orgs
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn dataverse_org_mut(&mut self, name: &str) -> Option<&mut Org> {
        self.dataverse_orgs
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }
}
