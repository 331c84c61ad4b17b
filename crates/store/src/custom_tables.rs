//! Custom tables: desk tables an administrator defines (any upstream table can be synced into
//! one). Rows are JSON objects whose keys are the table's typed columns; they keep their source
//! identity like every imported record and are journaled as `custom_table:<name>`.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::db::{Sql, SqlType, StoreTx};
use crate::records::{FieldChange, SourceKey, UpsertOutcome, same_value};
use crate::{Result, StoreError, format_timestamp, parse_timestamp};

const COLUMN_TYPES: [&str; 6] = [
    "text",
    "number",
    "date",
    "boolean",
    "single_select",
    "multi_select",
];

/// One row of a custom table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomRow {
    pub id: RecordId,
    pub source: Option<SourceKey>,
    pub data: Map<String, Value>,
}

struct TableDef {
    id: i64,
    columns: Vec<(String, String)>,
}

fn bad(table: &str, column: &str, message: String) -> StoreError {
    StoreError::InvalidValue {
        entity: "custom_table_row",
        field: format!("{table}.{column}"),
        message,
    }
}

impl StoreTx {
    /// Creates a custom table with typed columns (text, number, date, boolean, single_select,
    /// multi_select).
    pub async fn define_custom_table(
        &mut self,
        name: &str,
        label: Option<&str>,
        columns: &[(&str, &str)],
    ) -> Result<RecordId> {
        for (column, ty) in columns {
            if !COLUMN_TYPES.contains(ty) {
                return Err(bad(name, column, format!("unknown column type {ty:?}")));
            }
        }
        let at = Sql::Text(format_timestamp(self.at));
        let id = self
            .insert_returning_id(
                "INSERT INTO custom_tables (name, label, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
                &[Sql::text(name), Sql::opt_text(label), at],
                "custom_tables",
            )
            .await
            .map_err(|e| match e {
                StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    StoreError::Conflict(format!("a custom table named {name:?} already exists"))
                }
                other => other,
            })?;
        for (column, ty) in columns {
            self.execute(
                "INSERT INTO custom_table_columns (table_id, name, field_type) VALUES ($1, $2, $3)",
                &[Sql::Int(id), Sql::text(*column), Sql::text(*ty)],
            )
            .await?;
        }
        Ok(RecordId(id))
    }

    async fn custom_table(&mut self, name: &str) -> Result<TableDef> {
        let row = self
            .row(
                "SELECT id FROM custom_tables WHERE name = $1",
                &[Sql::text(name)],
                &[SqlType::Int],
            )
            .await?;
        let id =
            row.and_then(|r| r.first().and_then(Sql::as_int))
                .ok_or_else(|| StoreError::UnknownField {
                    entity: "custom_table",
                    field: name.to_owned(),
                })?;
        let columns = self
            .rows(
                "SELECT name, field_type FROM custom_table_columns WHERE table_id = $1 ORDER BY name",
                &[Sql::Int(id)],
                &[SqlType::Text, SqlType::Text],
            )
            .await?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Sql::Text(n), Sql::Text(t)] => Some((n.clone(), t.clone())),
                _ => None,
            })
            .collect();
        Ok(TableDef { id, columns })
    }

    /// Creates or updates the row imported from `source`; only changed columns are journaled.
    pub async fn upsert_custom_row(
        &mut self,
        table: &str,
        source: &SourceKey,
        data: &Map<String, Value>,
    ) -> Result<UpsertOutcome> {
        let def = self.custom_table(table).await?;
        let mut clean = Map::new();
        for (key, value) in data {
            let ty = def
                .columns
                .iter()
                .find(|(n, _)| n == key)
                .map(|(_, t)| t.as_str())
                .ok_or_else(|| bad(table, key, "no such column".to_owned()))?;
            clean.insert(key.clone(), check_column(table, key, ty, value)?);
        }
        let existing = self
            .row(
                "SELECT id, data FROM custom_table_rows WHERE table_id = $1 AND source_connection_id = $2 AND external_id = $3",
                &[Sql::Int(def.id), Sql::Int(source.connection_id.0), Sql::text(source.external_id.clone())],
                &[SqlType::Int, SqlType::Text],
            )
            .await?;
        let entity = format!("custom_table:{table}");
        let at = Sql::Text(format_timestamp(self.at));
        match existing.as_deref() {
            Some([Sql::Int(id), Sql::Text(old)]) => {
                let before: Map<String, Value> = serde_json::from_str(old)
                    .map_err(|e| StoreError::Corrupt(entity.clone(), e.to_string()))?;
                let mut after = before.clone();
                let mut changes = Vec::new();
                for (k, v) in clean {
                    let old_value = before.get(&k).cloned().unwrap_or(Value::Null);
                    if !same_value(&old_value, &v) {
                        changes.push(FieldChange {
                            field: k.clone(),
                            before: old_value,
                            after: v.clone(),
                        });
                        after.insert(k, v);
                    }
                }
                if changes.is_empty() {
                    return Ok(UpsertOutcome::Unchanged(RecordId(*id)));
                }
                self.execute(
                    "UPDATE custom_table_rows SET data = $1, updated_at = $2 WHERE id = $3",
                    &[Sql::Text(Value::Object(after).to_string()), at, Sql::Int(*id)],
                )
                .await?;
                self.journal_entity(&entity, RecordId(*id), "update", &changes)
                    .await?;
                Ok(UpsertOutcome::Updated(RecordId(*id), changes))
            }
            _ => {
                let id = RecordId(
                    self.insert_returning_id(
                        "INSERT INTO custom_table_rows (table_id, data, source_connection_id, external_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                        &[
                            Sql::Int(def.id),
                            Sql::Text(Value::Object(clean.clone()).to_string()),
                            Sql::Int(source.connection_id.0),
                            Sql::text(source.external_id.clone()),
                            at,
                        ],
                        "custom_table_rows",
                    )
                    .await?,
                );
                let changes: Vec<FieldChange> = clean
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| FieldChange {
                        field: k,
                        before: Value::Null,
                        after: v,
                    })
                    .collect();
                self.journal_entity(&entity, id, "create", &changes).await?;
                Ok(UpsertOutcome::Created(id))
            }
        }
    }

    /// A custom table's columns and their types, by column name; `None` when there is no table
    /// of that name.
    pub async fn custom_table_columns(&mut self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self.custom_table(name).await {
            Ok(def) => Ok(Some(def.columns.into_iter().collect())),
            Err(StoreError::UnknownField { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names of the custom tables, in name order.
    pub async fn custom_table_names(&mut self) -> Result<Vec<String>> {
        Ok(self
            .rows(
                "SELECT name FROM custom_tables ORDER BY name",
                &[],
                &[SqlType::Text],
            )
            .await?
            .into_iter()
            .filter_map(|r| r.first().and_then(Sql::as_text).map(str::to_owned))
            .collect())
    }

    /// The rows of `table` imported by `connection` as these source ids.
    pub async fn custom_rows_by_source(
        &mut self,
        table: &str,
        connection: ConnectionId,
        external_ids: &[String],
    ) -> Result<Vec<CustomRow>> {
        let def = self.custom_table(table).await?;
        let mut out = Vec::new();
        for chunk in external_ids.chunks(500) {
            let mut args = vec![Sql::Int(def.id), Sql::Int(connection.0)];
            let marks: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    args.push(Sql::text(id.clone()));
                    format!("${}", i + 3)
                })
                .collect();
            if marks.is_empty() {
                continue;
            }
            let sql = format!(
                "SELECT id, data, source_connection_id, external_id FROM custom_table_rows \
                 WHERE table_id = $1 AND source_connection_id = $2 AND external_id IN ({}) ORDER BY id",
                marks.join(", ")
            );
            let rows = self
                .rows(
                    &sql,
                    &args,
                    &[SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Text],
                )
                .await?;
            out.extend(
                rows.into_iter()
                    .map(|r| custom_row(table, r))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        Ok(out)
    }

    /// Every row of `table` imported by `connection`, in id order.
    pub async fn custom_rows_of_connection(
        &mut self,
        table: &str,
        connection: ConnectionId,
    ) -> Result<Vec<CustomRow>> {
        let def = self.custom_table(table).await?;
        let rows = self
            .rows(
                "SELECT id, data, source_connection_id, external_id FROM custom_table_rows \
                 WHERE table_id = $1 AND source_connection_id = $2 ORDER BY id",
                &[Sql::Int(def.id), Sql::Int(connection.0)],
                &[SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Text],
            )
            .await?;
        rows.into_iter().map(|r| custom_row(table, r)).collect()
    }

    /// Deletes the row `connection` imported as `external_id` into `table`, journaling every
    /// value it held (action `delete`, field `*`). Whether there was one.
    pub async fn delete_custom_row(
        &mut self,
        table: &str,
        connection: ConnectionId,
        external_id: &str,
    ) -> Result<Option<RecordId>> {
        let found = self
            .custom_rows_by_source(table, connection, &[external_id.to_owned()])
            .await?;
        let Some(row) = found.into_iter().next() else {
            return Ok(None);
        };
        self.execute(
            "DELETE FROM custom_table_rows WHERE id = $1",
            &[Sql::Int(row.id.0)],
        )
        .await?;
        let change = FieldChange {
            field: "*".to_owned(),
            before: serde_json::json!({
                "data": Value::Object(row.data),
                "source_connection_id": connection.0,
                "external_id": external_id,
            }),
            after: Value::Null,
        };
        self.journal_entity(&format!("custom_table:{table}"), row.id, "delete", &[change])
            .await?;
        Ok(Some(row.id))
    }

    /// A page of a custom table's rows in id order.
    pub async fn custom_rows(
        &mut self,
        table: &str,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<CustomRow>> {
        let def = self.custom_table(table).await?;
        let rows = self
            .rows(
                "SELECT id, data, source_connection_id, external_id FROM custom_table_rows WHERE table_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
                &[Sql::Int(def.id), Sql::Int(after.map_or(0, |a| a.0)), Sql::Int(i64::from(limit))],
                &[SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Text],
            )
            .await?;
        rows.into_iter().map(|r| custom_row(table, r)).collect()
    }
}

fn custom_row(table: &str, r: Vec<Sql>) -> Result<CustomRow> {
    match r.as_slice() {
        [Sql::Int(id), Sql::Text(data), conn, ext] => Ok(CustomRow {
            id: RecordId(*id),
            source: match (conn.as_int(), ext.as_text()) {
                (Some(c), Some(e)) => Some(SourceKey::new(deskbridge_core::ConnectionId(c), e)),
                _ => None,
            },
            data: serde_json::from_str(data)
                .map_err(|e| StoreError::Corrupt(format!("custom table {table}"), e.to_string()))?,
        }),
        _ => Err(StoreError::Corrupt(
            format!("custom table {table}"),
            "unexpected row shape".into(),
        )),
    }
}

fn check_column(table: &str, column: &str, ty: &str, value: &Value) -> Result<Value> {
    let ok = match (ty, value) {
        (_, Value::Null) => true,
        ("text" | "single_select", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_)) => true,
        ("multi_select", Value::Array(items)) => items.iter().all(Value::is_string),
        ("date", Value::String(s)) => s.parse::<jiff::civil::Date>().is_ok() || parse_timestamp(s).is_ok(),
        _ => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(bad(table, column, format!("expected a {ty} value, got {value}")))
    }
}
