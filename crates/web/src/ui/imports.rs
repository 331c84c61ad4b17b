//! A connection's "Imports" tab: the matching and import options, previewing an import (what
//! it would do, user by user, with the rule that decided it) and starting one.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_store::Access;

use super::html::{Cell, Page, Section, cell, checkbox, form, hidden, textarea};
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
    let mut run = Section::titled("Import")
        .text(
            "Preview lists every user with the mapping that decided it; nothing is written until you import.",
        )
        .form(form(
            "preview",
            format!("/connections/{id}/preview"),
            "Preview import",
            Vec::new(),
        ));
    if scope.access == Access::Modify {
        run = run.form(form(
            "run",
            format!("/connections/{id}/runs"),
            "Import now",
            vec![checkbox("full", "Full import (ignore delta cursors)", false)],
        ));
    }
    Ok(page.section(run).section(matching).section(editor).render())
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
) -> UiResult {
    let outcome = match api::run_preview(&state, &scope.connection).await {
        Ok(o) => o,
        Err(e) => {
            let text = format!(
                "Preview failed: {} ({}){}",
                e.message,
                e.code,
                e.remedy.map(|r| format!(" — {r}")).unwrap_or_default()
            );
            return imports_view(&state, &caller, &scope, "", &text).await;
        }
    };
    let id = scope.connection.id.0;
    let c = outcome.counts;
    let changes =
        serde_json::to_value(outcome.changes.clone().unwrap_or_default()).map_err(ApiError::internal)?;
    let rows: Vec<Vec<Cell>> = changes
        .as_array()
        .map(|list| {
            list.iter()
                .map(|ch| {
                    let name = ch["fields"]["name"]["after"]
                        .as_str()
                        .or(ch["fields"]["name"]["before"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    vec![
                        cell(show(&ch["entity"])),
                        cell(name),
                        cell(show(&ch["external_id"])),
                        cell(show(&ch["action"])),
                        cell(show(&ch["rule"])),
                        cell(show(&ch["reason"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let mut page = Page::connection(&caller, &scope, "imports");
    page.inner.title = "Import preview".into();
    let mut summary = Section::titled("What an import would do").text(format!(
        "{} to create, {} to update, {} to deactivate, {} unchanged, {} conflicts, {} errors ({} mode).",
        c.created, c.updated, c.deactivated, c.unchanged, c.conflicts, c.errors, outcome.mode
    ));
    summary.id = "preview-summary".into();
    if let Some(held) = &outcome.held {
        page = page.error(format!("This import would be held for approval: {held}"));
    }
    if scope.access == Access::Modify {
        summary = summary.form(form(
            "run",
            format!("/connections/{id}/runs"),
            "Import",
            Vec::new(),
        ));
    }
    let mut table = Section::titled("Users and records").table(
        &["Kind", "Name", "External id", "Action", "Decided by", "Why"],
        rows,
    );
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
    match state
        .runs
        .start(&state, &scope.connection, field(&f, "full") == "on", false)
        .await
    {
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
            let text = format!(
                "The sync could not start: {} ({}){}",
                e.message,
                e.code,
                e.remedy.map(|r| format!(" — {r}")).unwrap_or_default()
            );
            imports_view(&state, &caller, &scope, "", &text).await
        }
    }
}
