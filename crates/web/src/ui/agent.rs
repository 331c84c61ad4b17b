//! A connection's "Sync agent" tab: delta settings and cursors (reset, or take the latest) and
//! the connection's schedules.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use deskbridge_connector_entra::SyncMethod;
use deskbridge_store::Access;

use super::html::{Page, Section, cell, checkbox, form, select, text_field};
use super::{UiResult, field, parse_form, reload, settings};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api::{self, EditConnectionBody};
use crate::error::ApiError;

async fn agent_view(state: &AppState, caller: &Caller, scope: &Scope, flash: &str) -> UiResult {
    let settings = settings(scope)?;
    let id = scope.connection.id.0;
    let mut tx = state.store.read().await?;
    let last = tx.runs(Some(scope.connection.id), 1).await?;
    tx.commit().await?;
    let mut page = Page::connection(caller, scope, "agent");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let mut delta = Section::titled("Delta settings").table(
        &["Setting", "Value"],
        vec![
            vec![
                cell("Use delta queries after the first full import"),
                cell(if settings.delta { "yes" } else { "no" }),
            ],
            vec![
                cell("Sync method"),
                cell(match settings.sync_method {
                    SyncMethod::AllChanges => "listen to all changes",
                    SyncMethod::MappedFieldsOnly => "only mapped fields",
                }),
            ],
            vec![
                cell("Last run"),
                cell(
                    last.first()
                        .map(|r| format!("{} ({})", r.id, r.status.as_str()))
                        .unwrap_or_else(|| "never".into()),
                ),
            ],
        ],
    );
    if scope.access == Access::Modify {
        delta = delta.form(form(
            "agent",
            format!("/connections/{id}/agent"),
            "Save sync settings",
            vec![
                checkbox("delta", "Use delta queries", settings.delta),
                select(
                    "sync_method",
                    "Sync method",
                    match settings.sync_method {
                        SyncMethod::AllChanges => "all_changes",
                        SyncMethod::MappedFieldsOnly => "mapped_fields_only",
                    },
                    &[
                        ("all_changes", "Listen to all changes"),
                        ("mapped_fields_only", "Only changes to mapped fields"),
                    ],
                ),
            ],
        ));
        delta = delta.form(form(
            "reset",
            format!("/connections/{id}/cursors/reset"),
            "Reset delta (next sync reads everything)",
            Vec::new(),
        ));
        delta = delta.form(form(
            "latest",
            format!("/connections/{id}/cursors/latest"),
            "Get latest delta (next sync sees only changes from now)",
            Vec::new(),
        ));
    }
    let schedules = api::schedules_of(state, &scope.connection).await?;
    let rows = schedules
        .iter()
        .map(|s| {
            vec![
                cell(s.id.0.to_string()),
                cell(if s.kind == "interval" {
                    format!("every {} s", s.spec)
                } else {
                    format!("cron {}", s.spec)
                }),
                cell(s.time_zone.clone()),
                cell(match (&s.window_start, &s.window_end) {
                    (Some(a), Some(b)) => format!("{a}–{b}"),
                    _ => "any time".into(),
                }),
                cell(if s.enabled { "yes" } else { "no" }),
                cell(s.next_due.clone()),
                cell(s.last_fired_at.clone().unwrap_or_else(|| "never".into())),
            ]
        })
        .collect();
    let mut timetable = Section::titled("Schedules").table(
        &[
            "Id",
            "When",
            "Time zone",
            "Window",
            "Enabled",
            "Next due",
            "Last fired",
        ],
        rows,
    );
    timetable.id = "schedules".into();
    if scope.access == Access::Modify {
        timetable = timetable.form(form(
            "schedule",
            format!("/connections/{id}/schedules"),
            "Add schedule",
            vec![
                text_field(
                    "every",
                    "Every (e.g. 15m, 1h; or leave empty and give a cron expression)",
                    "",
                ),
                text_field("cron", "Cron expression (e.g. 0 */2 * * *)", ""),
                text_field("time_zone", "Time zone", "UTC"),
                text_field("window", "Only between (HH:MM-HH:MM, optional)", ""),
            ],
        ));
        for s in &schedules {
            timetable = timetable.form(form(
                &format!("remove-schedule-{}", s.id.0),
                format!("/connections/{id}/schedules/{}/remove", s.id.0),
                &format!("Remove schedule {}", s.id.0),
                Vec::new(),
            ));
        }
    }
    Ok(page.section(delta).section(timetable).render())
}

pub(super) async fn add_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let text = |name: &str| Some(field(&f, name).to_owned()).filter(|v| !v.trim().is_empty());
    let added = api::add_schedule(
        &state,
        &scope.connection,
        api::ScheduleBody {
            every: text("every"),
            cron: text("cron"),
            time_zone: text("time_zone"),
            window: text("window"),
            entity: None,
        },
    )
    .await;
    let flash = match added {
        Ok(id) => format!("Schedule {id} added."),
        Err(e) => format!("The schedule was not added: {}", e.message),
    };
    agent_view(&state, &caller, &scope, &flash).await
}

pub(super) async fn remove_schedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, schedule)): Path<(String, String)>,
) -> UiResult {
    let id: i64 = schedule
        .parse()
        .map_err(|_| ApiError::invalid(format!("{schedule:?} is not a schedule id")))?;
    api::remove_schedule(&state, &scope.connection, id).await?;
    agent_view(&state, &caller, &scope, &format!("Schedule {id} removed.")).await
}

pub(super) async fn agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    agent_view(&state, &caller, &scope, "").await
}

pub(super) async fn save_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let sync_method = match field(&f, "sync_method") {
        "mapped_fields_only" => SyncMethod::MappedFieldsOnly,
        _ => SyncMethod::AllChanges,
    };
    api::edit(
        &state,
        &scope.connection,
        EditConnectionBody {
            delta: Some(field(&f, "delta") == "on"),
            sync_method: Some(sync_method),
            ..EditConnectionBody::default()
        },
    )
    .await?;
    let scope = reload(&state, &scope).await?;
    agent_view(&state, &caller, &scope, "Sync settings saved.").await
}

pub(super) async fn reset_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let n = deskbridge_connector_entra::clear_deltas(&state.store, scope.connection.id).await?;
    agent_view(
        &state,
        &caller,
        &scope,
        &format!("Delta reset ({n} cursors cleared): the next sync is a full read."),
    )
    .await
}

pub(super) async fn latest_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let flash = match api::take_latest_cursors(&state, &scope.connection).await {
        Ok(_) => "Delta links taken from now: the next sync sees only changes made from here on.".to_owned(),
        Err(e) => format!("The latest delta links could not be taken: {}", e.message),
    };
    agent_view(&state, &caller, &scope, &flash).await
}
