//! The "Custom tables" mapping tab's forms: a table mapping added field by field — the source
//! table, the desk custom table (chosen among the desk's), a filter and what a deleted row does;
//! then each field (a column, `lookup/column` or `lookup/lookup/column` → one of the desk table's
//! columns); and removing a field or a whole mapping. Each form changes a copy of the whole
//! configuration, which `api::save_mappings` validates in full (the desk table and its columns)
//! before anything is saved; the JSON stays under "As code" for mappings-as-code.

use std::collections::HashMap;

use deskbridge_mapping::{CustomTableMapping, MappingConfig, RemovedRows, RowField};

use super::html::{Field, Opt, Section, checkbox, form, hidden, select, text_field};
use super::{UiError, confirmed, field};
use crate::AppState;
use crate::error::ApiError;

/// The forms, for those who may change the mappings.
pub(super) async fn forms(
    state: &AppState,
    mapping: &MappingConfig,
    action: &str,
) -> Result<Vec<Section>, UiError> {
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let mut desk_tables = Vec::new();
    for name in tx.custom_table_names().await.map_err(ApiError::from)? {
        let columns = tx
            .custom_table_columns(&name)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        desk_tables.push((name, columns));
    }
    tx.commit().await.map_err(ApiError::from)?;
    let mut out = Vec::new();
    let free: Vec<Opt> = desk_tables
        .iter()
        .filter(|(name, _)| !mapping.custom_tables.iter().any(|t| &t.desk_table == name))
        .map(|(name, columns)| Opt {
            value: name.clone(),
            label: format!("{name} ({} column(s))", columns.len()),
        })
        .collect();
    let mut desk_table = select("desk_table", "Desk custom table", "", &[]);
    desk_table.options = free;
    out.push(
        Section::titled("Add a table mapping")
            .text(if desk_tables.is_empty() {
                "The desk has no custom tables yet: define one first (deskbridge custom-tables add --name NAME \
                 --column name:type …)."
            } else {
                "A source table into a desk custom table that no other mapping of this connection fills, with its \
                 first field; add the others next."
            })
            .form(form(
                "add-table",
                action,
                "Add table mapping",
                vec![
                    hidden("op", "add-table"),
                    Field {
                        help: "The source table's logical name, e.g. cr7a1_contract or account.".into(),
                        required: true,
                        ..text_field("source_table", "Source table", "")
                    },
                    desk_table,
                    Field {
                        help: "The first field: a column (cr7a1_name), lookup/column or lookup/lookup/column.".into(),
                        required: true,
                        ..text_field("source", "Source path", "")
                    },
                    Field {
                        help: "The desk table's column it fills.".into(),
                        required: true,
                        ..text_field("target", "Desk column", "")
                    },
                    Field {
                        help: "Optional OData filter, e.g. statecode eq 0 or modifiedon ge $-INTEGRATORLASTSYNC \
                               (the start of the table's last complete read)."
                            .into(),
                        ..text_field("filter", "Filter", "")
                    },
                    select(
                        "removed_rows",
                        "When a source row is deleted",
                        "delete",
                        &[
                            ("delete", "Delete the desk row (the journal keeps its values)"),
                            ("keep", "Keep the desk row"),
                        ],
                    ),
                ],
            )),
    );
    if mapping.custom_tables.is_empty() {
        return Ok(out);
    }
    let mapped: Vec<(String, String)> = mapping
        .custom_tables
        .iter()
        .map(|t| {
            let columns = desk_tables
                .iter()
                .find(|(name, _)| *name == t.desk_table)
                .map(|(_, columns)| columns.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            (
                t.desk_table.clone(),
                format!("{} → {} (columns: {columns})", t.source_table, t.desk_table),
            )
        })
        .collect();
    let choose = |name: &'static str| {
        let mut f = select(name, "Table mapping", "", &[]);
        f.options = mapped
            .iter()
            .map(|(value, label)| Opt {
                value: value.clone(),
                label: label.clone(),
            })
            .collect();
        f
    };
    out.push(Section::titled("Add a field to a table mapping").form(form(
        "add-table-field",
        action,
        "Add field",
        vec![
            hidden("op", "add-field"),
            choose("table"),
            Field {
                help: "A column (cr7a1_name), a child lookup's column through its navigation property \
                       (cr7a1_accountid/name) or a grandchild's (cr7a1_accountid/primarycontactid/fullname)."
                    .into(),
                required: true,
                ..text_field("source", "Source path", "")
            },
            Field {
                help: "One of the desk table's columns, listed with the table mapping.".into(),
                required: true,
                ..text_field("target", "Desk column", "")
            },
        ],
    )));
    let mut remove = form(
        "remove-table-field",
        action,
        "Remove",
        vec![
            hidden("op", "remove"),
            choose("table"),
            Field {
                help: "The desk column whose field mapping to remove; leave empty to remove the whole table mapping \
                       (its desk rows stay)."
                    .into(),
                ..text_field("target", "Desk column", "")
            },
            checkbox("confirm", "Yes, remove it", false),
        ],
    );
    remove.danger = true;
    out.push(Section::titled("Remove a field or a table mapping").form(remove));
    Ok(out)
}

/// Applies one of the tab's forms to `mapping`.
pub(super) fn apply(
    mapping: &mut MappingConfig,
    op: &str,
    f: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match op {
        "add-table" => {
            let source_table = field(f, "source_table").trim();
            let desk_table = field(f, "desk_table").trim();
            let (source, target) = (field(f, "source").trim(), field(f, "target").trim());
            if source_table.is_empty() || desk_table.is_empty() || source.is_empty() || target.is_empty() {
                return Err(ApiError::invalid(
                    "name the source table, choose the desk custom table and give the first field (source path and \
                     desk column)",
                ));
            }
            if mapping.custom_tables.iter().any(|t| t.desk_table == desk_table) {
                return Err(ApiError::invalid(format!(
                    "desk table {desk_table} is already filled by another table mapping of this connection"
                )));
            }
            mapping.custom_tables.push(CustomTableMapping {
                source_table: source_table.to_owned(),
                desk_table: desk_table.to_owned(),
                filter: Some(field(f, "filter").trim().to_owned()).filter(|s| !s.is_empty()),
                fields: vec![RowField {
                    source: source.to_owned(),
                    target: target.to_owned(),
                }],
                removed_rows: match field(f, "removed_rows") {
                    "keep" => RemovedRows::Keep,
                    _ => RemovedRows::Delete,
                },
            });
        }
        "add-field" => {
            let table = table_of(mapping, field(f, "table"))?;
            let (source, target) = (field(f, "source").trim(), field(f, "target").trim());
            if source.is_empty() || target.is_empty() {
                return Err(ApiError::invalid("give the source path and the desk column"));
            }
            table.fields.push(RowField {
                source: source.to_owned(),
                target: target.to_owned(),
            });
        }
        "remove" => {
            confirmed(f, "the removal")?;
            let name = field(f, "table").trim().to_owned();
            let target = field(f, "target").trim();
            if target.is_empty() {
                table_of(mapping, &name)?;
                mapping.custom_tables.retain(|t| t.desk_table != name);
            } else {
                let table = table_of(mapping, &name)?;
                let before = table.fields.len();
                table.fields.retain(|m| m.target != target);
                if table.fields.len() == before {
                    return Err(ApiError::invalid(format!(
                        "the table mapping into {name} maps no desk column {target:?}"
                    )));
                }
            }
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}

fn table_of<'m>(
    mapping: &'m mut MappingConfig,
    desk_table: &str,
) -> Result<&'m mut CustomTableMapping, ApiError> {
    let desk_table = desk_table.trim();
    mapping
        .custom_tables
        .iter_mut()
        .find(|t| t.desk_table == desk_table)
        .ok_or_else(|| ApiError::invalid(format!("no table mapping fills desk table {desk_table:?}")))
}
