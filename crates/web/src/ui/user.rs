//! A desk user's page: who they are, the licences they hold, and — when their connection allows
//! licences to be managed from the desk and the caller may modify it — a form to assign one of
//! their tenant's licences (with its free units) and a confirmed removal; then the licence changes
//! asked, with what Microsoft answered.

use axum::Extension;
use axum::extract::{Path, State};
use deskbridge_core::RecordId;
use deskbridge_store::{Access, LicenceAction};
use serde_json::Value;

use super::html::{Cell, Opt, Page, Section, cell, checkbox, form, select, when_or};
use super::{UiResult, field, parse_form, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;

/// A licence's label in a list: its name, part number and free units.
fn licence_label(l: &Value) -> String {
    let name = l["name"].as_str().unwrap_or("licence");
    let part = l["part_number"].as_str().unwrap_or_default();
    let units = match (l["free_units"].as_i64(), l["total_units"].as_i64()) {
        (Some(free), Some(total)) => format!("{free} free of {total}"),
        _ => "units not known".to_owned(),
    };
    format!("{name} ({part}) — {units}")
}

fn options(licences: &[Value]) -> Vec<Opt> {
    licences
        .iter()
        .filter_map(|l| {
            Some(Opt {
                value: l["id"].as_i64()?.to_string(),
                label: licence_label(l),
            })
        })
        .collect()
}

async fn user_view(state: &AppState, caller: &Caller, scope: &Scope, user: &str, flash: &str) -> UiResult {
    let data = api::user_licences(state, scope, user).await?;
    let empty = Vec::new();
    let held = data["licences"].as_array().unwrap_or(&empty);
    let available = data["available"].as_array().unwrap_or(&empty);
    let name = data["user"]["name"]
        .as_str()
        .or(data["user"]["email"].as_str())
        .unwrap_or("user");
    let mut page = Page::connection(caller, scope, "directory/users");
    page.inner.title = format!("User: {name}");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let rows: Vec<Vec<Cell>> = held
        .iter()
        .map(|l| {
            vec![
                cell(show(&l["name"])),
                cell(show(&l["part_number"])),
                cell(show(&l["consumed_units"])),
                cell(show(&l["total_units"])),
            ]
        })
        .collect();
    let mut licences = Section::titled("Licences")
        .text(format!(
            "{name} ({}), imported by connection {}.",
            show(&data["user"]["email"]),
            scope.connection.name
        ))
        .table(&["licence", "part number", "assigned", "units"], rows);
    licences.id = "licences".into();
    page = page.section(licences);
    let managed = data["manage_licences"].as_bool().unwrap_or(false);
    if !managed {
        page = page.section(Section::titled("Manage licences").text(
            "Licences of this connection are managed in Microsoft Entra, not here: turn on \"Manage licences from \
             the desk\" in the connection's details (it needs the LicenseAssignment.ReadWrite.All permission) to \
             assign and remove them from this page.",
        ));
    } else if scope.access == Access::Modify {
        let base = format!("/users/{}/licences", show(&data["user"]["id"]));
        let mut manage = Section::titled("Manage licences").text(
            "Changes are sent to Microsoft Entra at once; the desk follows once Microsoft has made them.",
        );
        if !available.is_empty() {
            let mut choose = select("licence_id", "Licence to assign", "", &[]);
            choose.options = options(available);
            manage = manage.form(form(
                "assign-licence",
                base.clone(),
                "Assign licence",
                vec![choose],
            ));
        }
        if !held.is_empty() {
            let mut choose = select("licence_id", "Licence to remove", "", &[]);
            choose.options = options(held);
            let mut remove = form(
                "remove-licence",
                format!("{base}/remove"),
                "Remove licence",
                vec![
                    choose,
                    checkbox("confirm", "Yes, remove it from the user's Entra account", false),
                ],
            );
            remove.danger = true;
            manage = manage.form(remove);
        }
        page = page.section(manage);
    }
    let changes: Vec<Vec<Cell>> = data["changes"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|c| {
            vec![
                when_or(c["updated_at"].as_str(), ""),
                cell(show(&c["requested_by"])),
                // The licence by name where this page knows it (held or available), else its id.
                cell(
                    held.iter()
                        .chain(available)
                        .find(|l| l["id"] == c["licence_id"])
                        .and_then(|l| l["name"].as_str())
                        .map_or_else(|| show(&c["licence_id"]), str::to_owned),
                ),
                cell(show(&c["action"])),
                cell(show(&c["status"])),
                cell(show(&c["message"])),
            ]
        })
        .collect();
    if !changes.is_empty() {
        page = page.section(
            Section::titled("Licence changes")
                .table(&["when", "by", "licence", "action", "status", "answer"], changes),
        );
    }
    Ok(page.render())
}

pub(super) async fn user_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path(user): Path<String>,
) -> UiResult {
    user_view(&state, &caller, &scope, &user, "").await
}

/// Sends the change, then shows the user again with what Microsoft answered.
async fn change(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    user: &str,
    body: &[u8],
    action: LicenceAction,
) -> UiResult {
    let f = parse_form(body);
    let licence = field(&f, "licence_id").trim().to_owned();
    let flash = match licence.parse::<i64>() {
        Err(_) => "Choose a licence.".to_owned(),
        Ok(_) if action == LicenceAction::Remove && field(&f, "confirm") != "on" => {
            "Tick the box to confirm the removal.".to_owned()
        }
        Ok(id) => {
            match api::change_licence(state, user, RecordId(id), action, &caller.account.username).await {
                Ok(outcome) => outcome.message,
                Err(e) => format!(
                    "The licence was not changed: {}{}",
                    e.message,
                    e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
                ),
            }
        }
    };
    user_view(state, caller, scope, user, &flash).await
}

pub(super) async fn assign_licence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> UiResult {
    change(&state, &caller, &scope, &user, &body, LicenceAction::Assign).await
}

pub(super) async fn remove_licence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path(user): Path<String>,
    body: axum::body::Bytes,
) -> UiResult {
    change(&state, &caller, &scope, &user, &body, LicenceAction::Remove).await
}
