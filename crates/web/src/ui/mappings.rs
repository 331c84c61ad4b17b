//! A connection's mapping tabs (field, site, asset and advanced mappings): tables and "add"
//! forms for the common cases, and every section editable as JSON. A submitted section is applied to a
//! copy of the whole configuration and saved only if the whole validates.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use deskbridge_mapping::{FieldMapping, MappingConfig};
use deskbridge_store::Access;
use serde_json::Value;

use super::html::{Cell, Field, Opt, Page, Section, cell, form, hidden, select, text_field, textarea};
use super::{UiError, UiResult, field, mapping_of, parse_form, pretty, reload, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

pub(super) fn section_json(mapping: &MappingConfig, section: &str) -> Result<String, UiError> {
    let value = serde_json::to_value(mapping).map_err(ApiError::internal)?;
    let pick = |keys: &[&str]| {
        let obj: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), value[*k].clone()))
            .collect();
        pretty(&obj)
    };
    Ok(match section {
        "fields" => pick(&["user_fields", "agent_fields"]),
        "sites" => pick(&["site_mappings"]),
        "imports" => pick(&["imports"]),
        "assets" => pick(&["assets"]),
        "tables" => pick(&["custom_tables"]),
        "customers" => pick(&["customers"]),
        _ => pick(&[
            "advanced",
            "licence_management",
            "service_accounts",
            "followers",
            "circuit_breaker",
            "field_locks",
            "record_locks",
        ]),
    })
}

/// "Custom table syncs": each table mapping (source table → desk custom table, filter, fields,
/// removed rows) and the desk's custom tables with their columns. Edited as code below.
async fn custom_tables_section(state: &AppState, mapping: &MappingConfig) -> Result<Section, UiError> {
    let rows: Vec<Vec<Cell>> = mapping
        .custom_tables
        .iter()
        .map(|t| {
            vec![
                cell(&t.source_table),
                cell(&t.desk_table),
                cell(t.filter_text().unwrap_or("(every row)")),
                cell(
                    t.fields
                        .iter()
                        .map(|f| format!("{} → {}", f.source, f.target))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                cell(match t.removed_rows {
                    deskbridge_mapping::RemovedRows::Delete => "deleted (journaled)",
                    deskbridge_mapping::RemovedRows::Keep => "kept",
                }),
            ]
        })
        .collect();
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let mut desk = Vec::new();
    for name in tx.custom_table_names().await.map_err(ApiError::from)? {
        let columns = tx
            .custom_table_columns(&name)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default();
        desk.push(
            name.clone()
                + ": "
                + &columns
                    .iter()
                    .map(|(c, t)| format!("{c} ({t})"))
                    .collect::<Vec<_>>()
                    .join(", "),
        );
    }
    tx.commit().await.map_err(ApiError::from)?;
    let mut section = Section::titled("Custom table syncs")
        .text(
            "Each mapping reads a source table into a desk custom table: fields are a column, lookup/column (a \
             child lookup) or lookup/lookup/column (a grandchild); the filter may use $-INTEGRATORLASTSYNC, the \
             start of the table's last complete read. Add them with the forms below, or edit them as code; saving \
             checks the desk table and its columns.",
        )
        .table(&["Source table", "Desk table", "Filter", "Fields", "Removed rows"], rows);
    section = section.text(if desk.is_empty() {
        "The desk has no custom tables yet: define one with deskbridge custom-tables add --name NAME --column name:type …"
            .to_owned()
    } else {
        format!("Desk custom tables: {}", desk.join("; "))
    });
    Ok(section)
}

pub(super) fn source_text(m: &FieldMapping) -> String {
    match serde_json::to_value(&m.source) {
        Ok(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| format!("{k}: {}", show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Ok(other) => show(&other),
        Err(_) => String::new(),
    }
}

async fn mappings_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    section: &str,
    flash: &str,
    error: &str,
    draft: Option<&str>,
) -> UiResult {
    if !matches!(
        section,
        "fields" | "sites" | "assets" | "tables" | "customers" | "advanced"
    ) {
        return Err(ApiError::not_found(format!("no mapping section {section:?}")).into());
    }
    let mapping = &mapping_of(state, scope)?;
    let id = scope.connection.id.0;
    let modify = scope.access == Access::Modify;
    let mut page = Page::connection(caller, scope, &format!("mappings/{section}"));
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let action = format!("/connections/{id}/mappings/{section}");
    match section {
        "fields" => {
            let rows = |list: &[FieldMapping]| -> Vec<Vec<Cell>> {
                list.iter()
                    .map(|m| vec![cell(source_text(m)), cell(&m.target)])
                    .collect()
            };
            page = page
                .section(Section::titled("User fields").table(
                    &["Microsoft Entra source", "Desk field"],
                    rows(&mapping.user_fields),
                ))
                .section(Section::titled("Agent fields").table(
                    &["Microsoft Entra source", "Desk field"],
                    rows(&mapping.agent_fields),
                ));
            if modify {
                page = page.section(Section::titled("Add a field mapping").form(form(
                    "add-field",
                    &action,
                    "Add field mapping",
                    vec![
                        hidden("op", "add"),
                        select("for", "Applies to", "user", &[("user", "Users"), ("agent", "Agents")]),
                        Field {
                            help: "A Graph user property, e.g. officeLocation or onPremisesExtensionAttributes/extensionAttribute1.".into(),
                            required: true,
                            ..text_field("source", "Microsoft Entra property", "")
                        },
                        Field {
                            help: "A desk field name, e.g. site_name, job_title, or custom:<name>.".into(),
                            required: true,
                            ..text_field("target", "Desk field", "")
                        },
                    ],
                )));
            }
        }
        "sites" => {
            for s in super::site_mappings::sections(state, scope, mapping, &action, modify).await? {
                page = page.section(s);
            }
        }
        "assets" => {
            for s in super::asset_mappings::sections(state, scope, mapping, &action, modify).await? {
                page = page.section(s);
            }
        }
        "tables" => {
            page = page.section(custom_tables_section(state, mapping).await?);
            if modify {
                for s in super::table_mappings::forms(state, mapping, &action).await? {
                    page = page.section(s);
                }
            }
        }
        "customers" => {
            for s in super::customer_mappings::sections(state, mapping, &action, modify).await? {
                page = page.section(s);
            }
        }
        _ => {
            for s in super::group_mappings::sections(state, mapping, &action, modify).await? {
                page = page.section(s);
            }
            for s in super::locks::sections(mapping, &action, modify) {
                page = page.section(s);
            }
            for s in super::licence_roles::sections(state, mapping, &action, modify).await? {
                page = page.section(s);
            }
            if modify {
                for s in super::advanced_forms::sections(mapping, &action) {
                    page = page.section(s);
                }
            }
        }
    }
    let mut editor = Section::titled(if section == "advanced" {
        "Advanced mappings (as code)"
    } else {
        "As code"
    })
    .text("The same mappings as JSON; saving validates them against the desk and the tenant's groups first.");
    let json = match draft {
        Some(d) => d.to_owned(),
        None => section_json(mapping, section)?,
    };
    let mut f = form(
        "code",
        &action,
        "Save",
        vec![
            hidden("op", "replace"),
            textarea("json", "Mappings (JSON)", json, 18),
        ],
    );
    if !modify {
        f.fields[1].disabled = true;
        editor.pre = f.fields[1].value.clone();
    } else {
        editor = editor.form(f);
    }
    page = page.section(editor);
    Ok(page.render())
}

pub(super) async fn mappings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, section)): Path<(String, String)>,
) -> UiResult {
    mappings_view(&state, &caller, &scope, &section, "", "", None).await
}

/// The sites a connection's mappings may name, as "Site — Customer".
pub(super) async fn site_options(state: &AppState, scope: &Scope) -> Result<Vec<Opt>, UiError> {
    Ok(super::site_mappings::names(state, scope).await?.sites)
}

/// Applies a submitted section to a copy of the whole configuration.
fn apply_section(
    mapping: &mut MappingConfig,
    section: &str,
    f: &HashMap<String, String>,
) -> Result<(), ApiError> {
    match (section, field(f, "op")) {
        ("assets", op) if op != "replace" => super::asset_mappings::apply(mapping, op, f)?,
        ("customers", op) if op != "replace" => super::customer_mappings::apply(mapping, op, f)?,
        ("tables", op) if op != "replace" => super::table_mappings::apply(mapping, op, f)?,
        ("fields", "add") => {
            let m = FieldMapping::property(field(f, "source").trim(), field(f, "target").trim());
            if field(f, "for") == "agent" {
                mapping.agent_fields.push(m);
            } else {
                mapping.user_fields.push(m);
            }
        }
        ("sites", op) if op != "replace" && op != "confirm" => super::site_mappings::apply(mapping, op, f)?,
        ("advanced", op) if super::advanced_forms::OPS.contains(&op) => {
            super::advanced_forms::apply(mapping, op, f)?
        }
        ("advanced", op) if super::group_mappings::OPS.contains(&op) => {
            super::group_mappings::apply(mapping, op, f)?
        }
        ("advanced", op) if super::locks::OPS.contains(&op) => super::locks::apply(mapping, op, f)?,
        ("advanced", op) if super::licence_roles::OPS.contains(&op) => {
            super::licence_roles::apply(mapping, op, f)?
        }
        // The whole configuration a confirmation page carries (see `confirm_delta_restart`);
        // validated in full like any other change.
        (_, "confirm") => {
            *mapping = deskbridge_core::parse_json(field(f, "pending").as_bytes())
                .map_err(|e| ApiError::invalid(format!("the mappings do not fit the configuration: {e}")))?;
        }
        (_, "replace") => {
            let patch: serde_json::Map<String, Value> =
                deskbridge_core::parse_json(field(f, "json").as_bytes())
                    .map_err(|e| ApiError::invalid(format!("the JSON you entered: {e}")))?;
            let mut whole = serde_json::to_value(&*mapping).map_err(ApiError::internal)?;
            for (k, v) in patch {
                whole[k] = v;
            }
            *mapping = deskbridge_core::json_from_value(whole)
                .map_err(|e| ApiError::invalid(format!("the mappings do not fit the configuration: {e}")))?;
        }
        _ => return Err(ApiError::invalid("unknown mapping operation")),
    }
    Ok(())
}

pub(super) async fn save_mapping_section(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, section)): Path<(String, String)>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let mut mapping = mapping_of(&state, &scope)?;
    let draft = (field(&f, "op") == "replace").then(|| field(&f, "json").to_owned());
    let links = api::DeltaLinksQuery::from_form(field(&f, "delta_links"))?;
    let result = match apply_section(&mut mapping, &section, &f) {
        Ok(())
            if links.restart().is_none()
                && deskbridge_sync::mapping_change_needs_confirmation(
                    &state.store,
                    &state.sources,
                    &scope.connection.name,
                    &mapping,
                )
                .await
                .map_err(ApiError::from)? =>
        {
            return confirm_delta_restart(&caller, &scope, &section, &mapping);
        }
        Ok(()) => api::save_mappings(&state, &caller, &scope.connection, mapping, links.restart()).await,
        Err(e) => Err(e),
    };
    let scope = reload(&state, &scope).await?;
    match result {
        Ok(()) => mappings_view(&state, &caller, &scope, &section, "Mappings saved.", "", None).await,
        Err(e) => {
            let text = format!("Not saved: {}", e.message);
            mappings_view(&state, &caller, &scope, &section, "", &text, draft.as_deref()).await
        }
    }
}

/// The guide's warning before a change to the user or site mappings of a connection that reads
/// through delta queries: nothing is saved until the administrator chooses how the delta links
/// restart. The page carries the whole changed configuration, saved as it is once confirmed.
fn confirm_delta_restart(caller: &Caller, scope: &Scope, section: &str, mapping: &MappingConfig) -> UiResult {
    let pending = serde_json::to_string(mapping).map_err(ApiError::internal)?;
    let id = scope.connection.id.0;
    let page = Page::connection(caller, scope, &format!("mappings/{section}")).section(
        Section::titled("Confirm: the delta queries restart")
            .text(
                "This connection reads changes through delta queries, and this change to its user or site \
                 mappings restarts them. Nothing is saved yet. Take the latest delta to start tracking from now \
                 (people who do not change are not read again under the new mappings), or read the whole \
                 tenant again on the next run.",
            )
            .form(form(
                "confirm-delta-restart",
                format!("/connections/{id}/mappings/{section}"),
                "Save the mappings",
                vec![
                    hidden("op", "confirm"),
                    hidden("pending", pending),
                    select(
                        "delta_links",
                        "The delta links",
                        "latest",
                        &[
                            ("latest", "Take the latest delta (tracking starts now)"),
                            ("clear", "Read the whole tenant again on the next run"),
                        ],
                    ),
                ],
            ))
            .link("Cancel: keep the mappings as they are", format!("/connections/{id}/mappings/{section}")),
    );
    Ok(page.render())
}
