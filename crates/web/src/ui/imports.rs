//! A connection's "Imports" tab: the matching and import options, previewing an import (what
//! it would do, user by user or device by device, with the rule that decided it) and starting
//! one — of the directory, or of the managed devices as assets when the connector reads them.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_core::RecordId;
use deskbridge_mapping::Action;
use deskbridge_source::SyncEntity;
use deskbridge_store::{Access, Entity, StoreTx};
use serde_json::Value;

use super::html::{Cell, Page, Section, cell, checkbox, form, hidden, select, textarea};
use super::mappings::section_json;
use super::{UiResult, field, mapping_of, parse_form, see_other, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

async fn imports_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    flash: &str,
    error: &str,
) -> UiResult {
    let mapping = mapping_of(state, scope)?;
    let id = scope.connection.id.0;
    let opts = &mapping.imports;
    let mut page = Page::connection(caller, scope, "imports");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let matching = Section::titled("Matching and options").table(
        &["Option", "Value"],
        vec![
            vec![
                cell("Match unlinked records by"),
                cell(
                    opts.match_order
                        .iter()
                        .map(|m| m.desk_field())
                        .collect::<Vec<_>>()
                        .join(", then "),
                ),
            ],
            vec![
                cell("Deactivate users not found"),
                cell(if opts.deactivate_not_found { "yes" } else { "no" }),
            ],
            vec![
                cell("Active follows account enabled"),
                cell(if opts.sync_account_enabled { "yes" } else { "no" }),
            ],
            vec![
                cell("Unassign tickets of deactivated agents"),
                cell(if opts.reassign_tickets_of_inactive_agents {
                    "yes"
                } else {
                    "no"
                }),
            ],
        ],
    );
    let mut editor = Section::titled("Import options (as code)");
    let options_form = (scope.access == Access::Modify).then(|| {
        super::advanced_forms::import_options_form(
            &mapping.imports,
            &format!("/connections/{id}/mappings/advanced"),
        )
    });
    if scope.access == Access::Modify {
        editor = editor.form(form(
            "imports-code",
            format!("/connections/{id}/mappings/advanced"),
            "Save import options",
            vec![
                hidden("op", "replace"),
                textarea(
                    "json",
                    "Import options (JSON)",
                    section_json(&mapping, "imports")?,
                    8,
                ),
            ],
        ));
    } else {
        editor.pre = section_json(&mapping, "imports")?;
    }
    let tenant = tenant_field(state, scope).await?;
    let mut run = Section::titled("Import")
        .text(
            "Preview lists every user with the mapping that decided it; nothing is written until you import.",
        )
        .form(form(
            "preview",
            format!("/connections/{id}/preview"),
            "Preview import",
            tenant
                .iter()
                .cloned()
                .chain([
                    action_filter(""),
                    checkbox(
                        "full",
                        "Full preview (read everything, as without delta cursors; no cursor moves)",
                        false,
                    ),
                ])
                .collect(),
        ));
    if scope.access == Access::Modify {
        run = run.form(form(
            "run",
            format!("/connections/{id}/runs"),
            "Import now",
            tenant
                .iter()
                .cloned()
                .chain([checkbox("full", "Full import (ignore delta cursors)", false)])
                .collect(),
        ));
    }
    page = page.section(run);
    if imports_assets(state, scope) {
        page = page.section(devices_section(&mapping, scope, tenant.as_ref()));
    }
    if imports_custom_tables(state, scope) {
        page = page.section(custom_tables_section(&mapping, scope));
    }
    if imports_customers(state, scope) {
        page = page.section(customers_section(&mapping, scope));
    }
    page = page.section(matching);
    if let Some(options) = options_form {
        page = page.section(options);
    }
    Ok(page.section(editor).render())
}

/// Whether the connection's connector reads managed devices (asset imports).
fn imports_assets(state: &AppState, scope: &Scope) -> bool {
    api::source_of(state, &scope.connection)
        .is_ok_and(|s| s.entities().contains(&SyncEntity::Assets.as_str()))
}

/// Whether the connection's connector reads source tables into desk custom tables.
fn imports_custom_tables(state: &AppState, scope: &Scope) -> bool {
    api::source_of(state, &scope.connection)
        .is_ok_and(|s| s.entities().contains(&SyncEntity::CustomTables.as_str()))
}

/// "Table": every table mapping, or one (by its desk table).
fn table_choice(mapping: &deskbridge_mapping::MappingConfig) -> super::html::Field {
    let labels: Vec<(String, String)> = mapping
        .custom_tables
        .iter()
        .map(|t| {
            (
                t.desk_table.clone(),
                format!("{} → {}", t.source_table, t.desk_table),
            )
        })
        .collect();
    let mut options = vec![("", "Every table mapping")];
    options.extend(labels.iter().map(|(v, l)| (v.as_str(), l.as_str())));
    select("table", "Table", "", &options)
}

/// Whether the connection's connector reads the source's organisations as desk customers.
fn imports_customers(state: &AppState, scope: &Scope) -> bool {
    api::source_of(state, &scope.connection)
        .is_ok_and(|s| s.entities().contains(&SyncEntity::Customers.as_str()))
}

/// "Customers": preview and import of the accounts as desk customers, or where to set it up.
/// Customers go first: contacts are placed on the customers imported before them.
fn customers_section(mapping: &deskbridge_mapping::MappingConfig, scope: &Scope) -> Section {
    let id = scope.connection.id.0;
    let mut section = Section::titled("Customers");
    section.id = "customers".into();
    if mapping.customers.is_none() {
        return section
            .text("Accounts are not imported as customers: turn the customer import on first.")
            .link(
                "Set up the customer import",
                format!("/connections/{id}/mappings/customers"),
            );
    }
    section = section
        .text(
            "Accounts become desk customers, each with its main site. Import them before the contacts, whose site \
             is their account's customer's. Preview lists every account with what would change; nothing is \
             written until you import.",
        )
        .form(form(
            "preview-customers",
            format!("/connections/{id}/preview"),
            "Preview customer import",
            vec![hidden("entity", SyncEntity::Customers.as_str())],
        ));
    if scope.access == Access::Modify {
        section = section.form(form(
            "run-customers",
            format!("/connections/{id}/runs"),
            "Import customers",
            vec![hidden("entity", SyncEntity::Customers.as_str())],
        ));
    }
    section.link(
        "Customer mappings",
        format!("/connections/{id}/mappings/customers"),
    )
}

/// "Custom tables": preview and import of every table mapping, or where to set them up.
fn custom_tables_section(mapping: &deskbridge_mapping::MappingConfig, scope: &Scope) -> Section {
    let id = scope.connection.id.0;
    let mut section = Section::titled("Custom tables");
    section.id = "custom-tables".into();
    if mapping.custom_tables.is_empty() {
        return section
            .text("No custom table syncs are set up: map a source table to a desk custom table first.")
            .link(
                "Set up custom table syncs",
                format!("/connections/{id}/mappings/tables"),
            );
    }
    let tables: Vec<String> = mapping
        .custom_tables
        .iter()
        .map(|t| format!("{} → {}", t.source_table, t.desk_table))
        .collect();
    section = section
        .text(format!(
            "Rows of {} become desk custom table rows as the table mappings say. Preview lists every row with what \
             would change; nothing is written until you import.",
            tables.join(", ")
        ))
        .form(form(
            "preview-custom-tables",
            format!("/connections/{id}/preview"),
            "Preview custom table import",
            vec![hidden("entity", SyncEntity::CustomTables.as_str()), table_choice(mapping)],
        ));
    if scope.access == Access::Modify {
        section = section.form(form(
            "run-custom-tables",
            format!("/connections/{id}/runs"),
            "Import custom tables",
            vec![
                hidden("entity", SyncEntity::CustomTables.as_str()),
                table_choice(mapping),
            ],
        ));
    }
    section.link(
        "Custom table mappings",
        format!("/connections/{id}/mappings/tables"),
    )
}

/// "Managed devices": preview and import of devices as assets, or, while asset import is not
/// set up, where to set it up (a button would only fail).
fn devices_section(
    mapping: &deskbridge_mapping::MappingConfig,
    scope: &Scope,
    tenant: Option<&super::html::Field>,
) -> Section {
    let id = scope.connection.id.0;
    let mut section = Section::titled("Managed devices");
    section.id = "devices".into();
    if mapping.assets.is_none() {
        return section
            .text("Asset import is not set up for this connection: choose how devices become assets first.")
            .link(
                "Set up asset import",
                format!("/connections/{id}/mappings/assets"),
            );
    }
    section = section
        .text(
            "Intune's managed devices become desk assets as the Assets mapping says. Preview lists every device with its asset type, user and site; nothing is written until you import.",
        )
        .form(form(
            "preview-assets",
            format!("/connections/{id}/preview"),
            "Preview device import",
            [hidden("entity", SyncEntity::Assets.as_str())]
                .into_iter()
                .chain(tenant.cloned())
                .collect(),
        ));
    if scope.access == Access::Modify {
        section = section.form(form(
            "run-assets",
            format!("/connections/{id}/runs"),
            "Import managed devices",
            [hidden("entity", SyncEntity::Assets.as_str())]
                .into_iter()
                .chain(tenant.cloned())
                .collect(),
        ));
    }
    section.link("Assets mapping", format!("/connections/{id}/mappings/assets"))
}

/// The run a preview or import form asks for: entity, table ("" for every table mapping), tenant
/// ("" for all) and full read.
fn form_request(
    state: &AppState,
    scope: &Scope,
    f: &HashMap<String, String>,
) -> Result<crate::runs::RunRequest, ApiError> {
    api::run_request(
        state,
        &scope.connection,
        Some(field(f, "entity")),
        Some(field(f, "table")),
        Some(field(f, "tenant")),
        field(f, "full") == "on",
    )
}

/// "Customer tenant": the connection's tenants by customer name, for a run of one of them (as the
/// guide's import "for one site"); none when the connection reads a single tenant.
async fn tenant_field(state: &AppState, scope: &Scope) -> Result<Option<super::html::Field>, ApiError> {
    let partitions = api::source_of(state, &scope.connection)?
        .open(&scope.connection)?
        .partitions();
    if partitions.len() < 2 {
        return Ok(None);
    }
    let mut tx = state.store.read().await?;
    let mut options = vec![("".to_owned(), "All tenants".to_owned())];
    for partition in partitions {
        let customer = tx
            .get(Entity::Customer, partition.customer_id)
            .await?
            .and_then(|c| c.text("name").map(str::to_owned))
            .unwrap_or_else(|| format!("customer {}", partition.customer_id));
        options.push((
            partition.tenant_id.clone(),
            format!("{customer} ({})", partition.tenant_id),
        ));
    }
    tx.commit().await?;
    let options: Vec<(&str, &str)> = options.iter().map(|(v, l)| (v.as_str(), l.as_str())).collect();
    Ok(Some(select("tenant", "Customer tenant", "", &options)))
}

/// The text of an error for a notice: message, code and remedy, once.
fn error_text(prefix: &str, e: &ApiError) -> String {
    format!(
        "{prefix}: {} ({}){}",
        e.message,
        e.code,
        e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
    )
}

/// Names of the desk records a preview's changes refer to, read once each.
#[derive(Default)]
struct Names(HashMap<(Entity, i64), String>);

impl Names {
    async fn of(&mut self, tx: &mut StoreTx, entity: Entity, id: i64) -> Result<String, ApiError> {
        if let Some(name) = self.0.get(&(entity, id)) {
            return Ok(name.clone());
        }
        let name = tx
            .get(entity, RecordId(id))
            .await?
            .and_then(|r| r.text("name").map(str::to_owned))
            .unwrap_or_else(|| format!("#{id} (not on the desk)"));
        self.0.insert((entity, id), name.clone());
        Ok(name)
    }

    /// A planned reference as people read it: an existing record by name, one the run creates
    /// as "… (new)", none as "none"; a field the change leaves alone is shown as unchanged.
    async fn reference(
        &mut self,
        tx: &mut StoreTx,
        change: &Value,
        field: &str,
        entity: Entity,
    ) -> Result<String, ApiError> {
        let Some(after) = change["fields"].get(field).map(|f| &f["after"]) else {
            return Ok("(unchanged)".into());
        };
        Ok(match after {
            Value::Null => "none".into(),
            Value::Number(n) => match n.as_i64() {
                Some(id) => self.of(tx, entity, id).await?,
                None => n.to_string(),
            },
            Value::Object(o) => match o.values().next() {
                Some(Value::String(name)) => format!("{name} (new)"),
                Some(Value::Object(inner)) => format!("{} (new)", show(&inner["name"])),
                _ => "(new)".into(),
            },
            other => show(other),
        })
    }
}

/// "Show": which actions a preview lists (its counts cover every change).
fn action_filter(current: &str) -> super::html::Field {
    let mut options = vec![("", "Every action")];
    options.extend(Action::ALL.iter().map(|a| (a.as_str(), a.as_str())));
    select("action", "Show", current, &options)
}

fn change_name(ch: &Value) -> String {
    ch["name"]
        .as_str()
        .or(ch["fields"]["name"]["after"].as_str())
        .or(ch["fields"]["name"]["before"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The preview table of an asset import: one row per device (and per asset type it creates),
/// references by name.
async fn device_rows(state: &AppState, changes: &[Value]) -> Result<Vec<Vec<Cell>>, ApiError> {
    let mut names = Names::default();
    let mut tx = state.store.read().await?;
    let mut rows = Vec::with_capacity(changes.len());
    for ch in changes {
        let (asset_type, user, site) = if ch["entity"] == "asset" {
            (
                names
                    .reference(&mut tx, ch, "asset_type_id", Entity::AssetType)
                    .await?,
                names.reference(&mut tx, ch, "user_id", Entity::User).await?,
                names.reference(&mut tx, ch, "site_id", Entity::Site).await?,
            )
        } else {
            Default::default()
        };
        rows.push(vec![
            cell(show(&ch["entity"]).replace('_', " ")),
            cell(change_name(ch)),
            cell(show(&ch["external_id"])),
            cell(show(&ch["action"])),
            cell(asset_type),
            cell(user),
            cell(site),
            cell(show(&ch["rule"])),
            cell(show(&ch["reason"])),
        ]);
    }
    tx.commit().await?;
    Ok(rows)
}

pub(super) async fn imports(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    imports_view(&state, &caller, &scope, "", "").await
}

pub(super) async fn preview(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let request = form_request(&state, &scope, &f);
    let outcome = match &request {
        Ok(request) => api::run_preview(&state, &scope.connection, request)
            .await
            .map(|o| (request.clone(), o)),
        Err(e) => Err(e.clone()),
    };
    let (request, mut outcome) = match outcome {
        Ok(o) => o,
        Err(e) => {
            return imports_view(&state, &caller, &scope, "", &error_text("Preview failed", &e)).await;
        }
    };
    let shown = field(&f, "action");
    match Action::parse_list(shown) {
        Ok(actions) => outcome.retain_actions(&actions),
        Err(e) => return imports_view(&state, &caller, &scope, "", &format!("Show: {e}")).await,
    }
    let entity = request.entity;
    let assets = entity == SyncEntity::Assets;
    let id = scope.connection.id.0;
    let c = outcome.counts;
    let changes =
        serde_json::to_value(outcome.changes.clone().unwrap_or_default()).map_err(ApiError::internal)?;
    let changes: &[Value] = changes.as_array().map_or(&[], Vec::as_slice);
    let rows: Vec<Vec<Cell>> = if assets {
        device_rows(&state, changes).await?
    } else {
        changes
            .iter()
            .map(|ch| {
                vec![
                    cell(show(&ch["entity"])),
                    cell(change_name(ch)),
                    cell(show(&ch["external_id"])),
                    cell(show(&ch["action"])),
                    cell(show(&ch["rule"])),
                    cell(show(&ch["reason"])),
                ]
            })
            .collect()
    };
    let mut page = Page::connection(&caller, &scope, "imports");
    page.inner.title = if assets {
        "Device import preview".into()
    } else {
        "Import preview".into()
    };
    let retire = if assets { "to retire" } else { "to deactivate" };
    let mut summary = Section::titled("What an import would do").text(format!(
        "{} to create, {} to update, {} {retire}, {} unchanged, {} conflicts, {} errors ({} mode).",
        c.created, c.updated, c.deactivated, c.unchanged, c.conflicts, c.errors, outcome.mode
    ));
    summary.id = "preview-summary".into();
    if let Some(preview) = &outcome.summary {
        let actions: Vec<String> = preview
            .actions
            .iter()
            .map(|(action, n)| format!("{action}: {n}"))
            .collect();
        if !actions.is_empty() {
            summary = summary.text(format!("By action: {}.", actions.join(", ")));
        }
        for (reason, n) in &preview.skipped {
            summary = summary.text(format!("Skipped, {reason}: {n}."));
        }
        if let Some(covers) = &preview.covers {
            summary = summary.text(format!("This delta preview covers {covers}."));
        }
    }
    // The same preview again: another filter, or a full read beside the delta one.
    summary = summary.form(form(
        "preview-again",
        format!("/connections/{id}/preview"),
        if outcome.mode == "delta" {
            "Full preview"
        } else {
            "Preview again"
        },
        [hidden("entity", entity.as_str())]
            .into_iter()
            .chain(request.tenant.as_deref().map(|t| hidden("tenant", t)))
            .chain(request.table.as_deref().map(|t| hidden("table", t)))
            .chain([action_filter(shown)])
            .chain((outcome.mode == "delta" || request.full).then(|| hidden("full", "on")))
            .collect(),
    ));
    if let Some(held) = &outcome.held {
        page = page.error(format!("This import would be held for approval: {held}"));
    }
    if scope.access == Access::Modify {
        summary = summary.form(form(
            "run",
            format!("/connections/{id}/runs"),
            if assets {
                "Import managed devices"
            } else {
                "Import"
            },
            [hidden("entity", entity.as_str())]
                .into_iter()
                .chain(request.tenant.as_deref().map(|t| hidden("tenant", t)))
                .collect(),
        ));
    }
    let mut table = if assets {
        Section::titled("Devices and asset types").table(
            &[
                "Kind",
                "Name",
                "Device id",
                "Action",
                "Asset type",
                "User",
                "Site",
                "Decided by",
                "Why",
            ],
            rows,
        )
    } else {
        Section::titled("Users and records").table(
            &["Kind", "Name", "External id", "Action", "Decided by", "Why"],
            rows,
        )
    };
    table.id = "preview".into();
    let errors: Vec<Vec<Cell>> = outcome
        .errors
        .iter()
        .map(|e| {
            vec![
                cell(&e.code),
                cell(e.external_id.clone().unwrap_or_default()),
                cell(&e.message),
                cell(e.remedy.clone().unwrap_or_default()),
            ]
        })
        .collect();
    let mut page = page.section(summary).section(table);
    if !errors.is_empty() {
        page =
            page.section(Section::titled("Problems").table(&["Code", "Record", "Message", "Remedy"], errors));
    }
    Ok(page.render())
}

pub(super) async fn start_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let started = match form_request(&state, &scope, &f) {
        Ok(request) => state.runs.start(&state, &scope.connection, &request, false).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(started) => match started.run_id {
            Some(run) => Ok(see_other(&format!("/runs/{run}"))),
            None => {
                imports_view(
                    &state,
                    &caller,
                    &scope,
                    "The sync started; it shows in the run history once it has signed in.",
                    "",
                )
                .await
            }
        },
        Err(e) => {
            let text = error_text("The sync could not start", &e);
            imports_view(&state, &caller, &scope, "", &text).await
        }
    }
}
