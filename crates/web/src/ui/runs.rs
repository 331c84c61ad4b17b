//! A connection's run history and a run's own page (status, counts, errors; live while it
//! runs), with cancelling a run and approving a held one.

use axum::Extension;
use axum::extract::{Path, State};
use deskbridge_core::RunId;
use deskbridge_store::{Access, RunStatus};
use serde_json::Value;

use super::html::{Cell, Page, Section, cell, form, link};
use super::{UiResult, see_other, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

fn run_row(r: &deskbridge_store::Run) -> Vec<Cell> {
    vec![
        link(r.id.to_string(), format!("/runs/{}", r.id)),
        cell(&r.kind),
        cell(r.status.as_str()),
        cell(r.counts.created.to_string()),
        cell(r.counts.updated.to_string()),
        cell(r.counts.deactivated.to_string()),
        cell(r.counts.errors.to_string()),
        cell(r.started_at.clone().unwrap_or_default()),
        cell(r.ended_at.clone().unwrap_or_default()),
    ]
}

const RUN_HEADERS: &[&str] = &[
    "Run",
    "Kind",
    "Status",
    "Created",
    "Updated",
    "Deactivated",
    "Errors",
    "Started",
    "Ended",
];

pub(super) async fn run_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let mut tx = state.store.read().await?;
    let runs = tx.runs(Some(scope.connection.id), 100).await?;
    tx.commit().await?;
    let mut section = Section::default().table(RUN_HEADERS, runs.iter().map(run_row).collect());
    section.id = "runs".into();
    Ok(Page::connection(&caller, &scope, "runs")
        .section(section)
        .render())
}

pub(super) async fn run_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    let view = api::run_view(&state, run).await?;
    let row: &Value = &view["run"];
    let finished = view["finished"] == Value::Bool(true);
    let mut page = match &scope {
        Some(Extension(s)) => Page::connection(&caller, s, "runs"),
        None => Page::new(&caller, "Run"),
    };
    page.inner.title = format!("Run {run}");
    let c = &row["counts"];
    let mut status = Section::titled("Status").table(
        &["", ""],
        vec![
            vec![cell("Status"), cell(show(&row["status"]))],
            vec![cell("Kind"), cell(show(&row["kind"]))],
            vec![cell("Created"), cell(show(&c["created"]))],
            vec![cell("Updated"), cell(show(&c["updated"]))],
            vec![cell("Deactivated"), cell(show(&c["deactivated"]))],
            vec![cell("Unchanged"), cell(show(&c["unchanged"]))],
            vec![cell("Conflicts"), cell(show(&c["conflicts"]))],
            vec![cell("Errors"), cell(show(&c["errors"]))],
            vec![cell("Message"), cell(show(&row["message"]))],
            vec![cell("Started"), cell(show(&row["started_at"]))],
            vec![cell("Ended"), cell(show(&row["ended_at"]))],
        ],
    );
    status.id = if finished {
        "run-finished".into()
    } else {
        "run-status".into()
    };
    let modify = scope
        .as_ref()
        .map_or(caller.is_admin(), |s| s.access == Access::Modify);
    if modify && !finished {
        status = status.form(form(
            "cancel",
            format!("/runs/{run}/cancel"),
            "Cancel run",
            Vec::new(),
        ));
    }
    if modify && show(&row["status"]) == RunStatus::Held.as_str() {
        status = status.form(form(
            "approve",
            format!("/runs/{run}/approve"),
            "Approve and apply",
            Vec::new(),
        ));
    }
    if let Some(Extension(s)) = &scope {
        status = status
            .link(
                "Imported users",
                format!("/connections/{}/directory/users", s.connection.id),
            )
            .link(
                "Logs of this run",
                format!("/connections/{}/logs?run={run}", s.connection.id),
            );
    }
    let errors: Vec<Vec<Cell>> = view["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| {
                    vec![
                        cell(show(&e["code"])),
                        cell(show(&e["external_id"])),
                        cell(show(&e["message"])),
                        cell(show(&e["remedy"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !finished {
        page.inner.run_id = run.to_string();
    }
    Ok(page
        .section(status)
        .section(Section::titled("Errors").table(&["Code", "Record", "Message", "Remedy"], errors))
        .render())
}

pub(super) async fn cancel_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    state.runs.cancel(&state, run, &caller.account.username).await?;
    Ok(see_other(&format!("/runs/{run}")))
}

pub(super) async fn approve_run(
    State(state): State<AppState>,
    scope: Option<Extension<Scope>>,
    Path(run_id): Path<String>,
) -> UiResult {
    let run = RunId(
        run_id
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("not a run id"))?,
    );
    let started = api::approve(&state, scope.as_ref().map(|s| &s.0), run).await?;
    Ok(see_other(&started.run_id.map_or_else(
        || format!("/runs/{run}"),
        |r| format!("/runs/{r}"),
    )))
}
