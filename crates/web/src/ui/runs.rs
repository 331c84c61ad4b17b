//! A connection's run history and a run's own page (status, counts, errors; live while it
//! runs), with cancelling a run and approving a held one.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use deskbridge_agent::health::run_seconds;
use deskbridge_core::RunId;
use deskbridge_store::{Access, RunFilter, RunListing, RunStatus};
use serde_json::Value;

use super::html::{Cell, Page, Section, cell, duration, form, link, when_or};
use super::{UiResult, see_other, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

/// A run of a history, as the CLI's `runs list` shows it: its connection, entity, status, when,
/// how long, counts and the job that queued it.
fn run_row(r: &RunListing, now: jiff::Timestamp) -> Vec<Cell> {
    let run = &r.run;
    let mut status = cell(run.status.as_str());
    status.class = match run.status {
        RunStatus::Failed | RunStatus::Held | RunStatus::Interrupted => "bad",
        RunStatus::Succeeded => "ok",
        _ => "",
    };
    vec![
        link(run.id.to_string(), format!("/runs/{}", run.id)),
        match (&r.connection, run.connection_id) {
            (Some(name), Some(id)) => link(name, format!("/connections/{id}")),
            _ => cell(""),
        },
        cell(deskbridge_sync::entity_of_run_kind(&run.kind).as_str()),
        status,
        when_or(run.started_at.as_deref(), ""),
        cell(run_seconds(run, now).map(duration).unwrap_or_default()),
        cell(run.counts.created.to_string()),
        cell(run.counts.updated.to_string()),
        cell(run.counts.deactivated.to_string()),
        cell(run.counts.errors.to_string()),
        cell(match (r.job_id, &r.job_origin) {
            (Some(job), Some(origin)) => format!("job {job} ({origin})"),
            (Some(job), None) => format!("job {job}"),
            (None, _) => "direct".into(),
        }),
        cell(run.message.clone().unwrap_or_default()),
    ]
}

const RUN_HEADERS: &[&str] = &[
    "Run",
    "Connection",
    "Entity",
    "Status",
    "Started",
    "Duration",
    "Created",
    "Updated",
    "Deactivated",
    "Errors",
    "Queued by",
    "Message",
];

/// One connection's runs: every run of it, whoever started it.
pub(super) async fn run_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let mut tx = state.store.read().await?;
    let runs = tx
        .run_history(&RunFilter {
            connection: Some(scope.connection.id),
            limit: 100,
            ..RunFilter::default()
        })
        .await?;
    tx.commit().await?;
    let now = state.clock.now();
    let mut section = Section::default().table(RUN_HEADERS, runs.iter().map(|r| run_row(r, now)).collect());
    section.id = "runs".into();
    Ok(Page::connection(&caller, &scope, "runs")
        .section(section.link("Every connection's runs", "/runs"))
        .render())
}

/// Every run of the connections the caller may read (`?connection=NAME&status=…&limit=…`).
pub(super) async fn all_runs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let query: api::HistoryQuery = api::parse_query(query)?;
    let runs = api::visible_history(&state, &caller, &query).await?;
    let now = state.clock.now();
    let mut section = Section::default().table(RUN_HEADERS, runs.iter().map(|r| run_row(r, now)).collect());
    section.id = "runs".into();
    section.caption =
        "Every run, newest first: CLI syncs, scheduled and queued runs, runs started here".into();
    for (label, status) in [
        ("Failed", "failed"),
        ("Interrupted", "interrupted"),
        ("Held", "held"),
    ] {
        section = section.link(
            &format!("Only {} runs", label.to_lowercase()),
            format!("/runs?status={status}"),
        );
    }
    section = section
        .link("Every run", "/runs")
        .link("Connections", "/connections");
    Ok(Page::new(&caller, "Runs").section(section).render())
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
            vec![cell("Started"), when_or(row["started_at"].as_str(), "not yet")],
            vec![cell("Ended"), when_or(row["ended_at"].as_str(), "not yet")],
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
