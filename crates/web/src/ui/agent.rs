//! A connection's "Sync agent" tab: delta settings and cursors (reset, or take the latest) and
//! the connection's schedules.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use deskbridge_source::settings::{Purpose, Setting, SettingKind, SettingPart};
use deskbridge_store::Access;
use serde_json::Value;

use super::html::{Cell, Page, Section, cell, destructive, every, form, text_field, when, when_or};
use super::{UiResult, confirmed, field, parse_form, reload, settings_form, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

async fn agent_view(state: &AppState, caller: &Caller, scope: &Scope, flash: &str) -> UiResult {
    agent_page(state, caller, scope, flash, "").await
}

async fn agent_page(state: &AppState, caller: &Caller, scope: &Scope, flash: &str, error: &str) -> UiResult {
    let source = api::source_of(state, &scope.connection)?;
    let id = scope.connection.id.0;
    let mut tx = state.store.read().await?;
    let last = tx.runs(Some(scope.connection.id), 1).await?;
    tx.commit().await?;
    let mut page = Page::connection(caller, scope, "agent");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let config = &scope.connection.config;
    let mut rows: Vec<Vec<Cell>> = source
        .settings()
        .iter()
        .filter(|st| st.part == SettingPart::Sync)
        .map(|st| vec![cell(st.label), cell(setting_text(st, &config[st.key]))])
        .collect();
    // What the connector says of its cursors; a connector that cannot say is no reason to fail
    // the page.
    match api::cursor_report(state, &scope.connection).await {
        Ok(report) => rows.extend(
            report
                .lines
                .into_iter()
                .map(|(what, value)| vec![cell(what), cell(value)]),
        ),
        Err(e) => rows.push(vec![
            cell("Cursors"),
            cell(format!("could not be read: {}", e.message)),
        ]),
    }
    rows.push(vec![
        cell("Last run"),
        cell(
            last.first()
                .map(|r| format!("{} ({})", r.id, r.status.as_str()))
                .unwrap_or_else(|| "never".into()),
        ),
    ]);
    let mut delta = Section::titled("Sync settings").table(&["Setting", "Value"], rows);
    if scope.access == Access::Modify {
        let fields = settings_form::fields(
            source.settings(),
            &[SettingPart::Sync],
            Some(config),
            Purpose::Edit,
        );
        if !fields.is_empty() {
            delta = delta.form(form(
                "agent",
                format!("/connections/{id}/agent"),
                "Save sync settings",
                fields,
            ));
        }
        delta = delta.form(destructive(
            form(
                "reset",
                format!("/connections/{id}/cursors/reset"),
                "Reset delta (next sync reads everything)",
                Vec::new(),
            ),
            "Yes, forget the delta links: the next sync reads every record again",
        ));
        if source.can_start_from_now() {
            delta = delta.form(destructive(
                form(
                    "latest",
                    format!("/connections/{id}/cursors/latest"),
                    "Get latest delta (next sync sees only changes from now)",
                    Vec::new(),
                ),
                "Yes, start from now: changes made before now that were not synced yet are never read",
            ));
        }
    }
    let schedules = api::schedules_of(state, &scope.connection).await?;
    let rows = schedules
        .iter()
        .map(|s| {
            vec![
                cell(s.id.0.to_string()),
                cell(match (s.kind.as_str(), s.spec.parse::<i64>()) {
                    ("interval", Ok(seconds)) => every(seconds),
                    _ => format!("cron {}", s.spec),
                }),
                cell(s.time_zone.clone()),
                cell(match (&s.window_start, &s.window_end) {
                    (Some(a), Some(b)) => format!("{a}–{b}"),
                    _ => "any time".into(),
                }),
                cell(if s.enabled { "yes" } else { "no" }),
                when(&s.next_due),
                when_or(s.last_fired_at.as_deref(), "never"),
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
            timetable = timetable.form(destructive(
                form(
                    &format!("remove-schedule-{}", s.id.0),
                    format!("/connections/{id}/schedules/{}/remove", s.id.0),
                    &format!("Remove schedule {}", s.id.0),
                    Vec::new(),
                ),
                &format!("Yes, remove schedule {}: it no longer starts syncs", s.id.0),
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
    body: Bytes,
) -> UiResult {
    let id: i64 = schedule
        .parse()
        .map_err(|_| ApiError::invalid(format!("{schedule:?} is not a schedule id")))?;
    if let Err(e) = confirmed(&parse_form(&body), &format!("the removal of schedule {id}")) {
        return agent_page(&state, &caller, &scope, "", &e.message).await;
    }
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
    let source = api::source_of(&state, &scope.connection)?;
    let values = settings_form::values(source.settings(), &[SettingPart::Sync], &f);
    api::edit(&state, &caller, &scope.connection, values).await?;
    let scope = reload(&state, &scope).await?;
    agent_view(&state, &caller, &scope, "Sync settings saved.").await
}

pub(super) async fn reset_cursors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    if let Err(e) = confirmed(&parse_form(&body), "the reset of the delta") {
        return agent_page(&state, &caller, &scope, "", &e.message).await;
    }
    let n = api::clear_cursors(&state, &scope.connection).await?;
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
    body: Bytes,
) -> UiResult {
    if let Err(e) = confirmed(&parse_form(&body), "starting from the latest delta") {
        return agent_page(&state, &caller, &scope, "", &e.message).await;
    }
    let flash = match api::take_latest_cursors(&state, &scope.connection).await {
        Ok(_) => "Delta links taken from now: the next sync sees only changes made from here on.".to_owned(),
        Err(e) => format!("The latest delta links could not be taken: {}", e.message),
    };
    agent_view(&state, &caller, &scope, &flash).await
}

/// A stored setting as people read it: a choice by its label, a flag as yes or no.
fn setting_text(setting: &Setting, value: &Value) -> String {
    match (setting.kind, value) {
        (SettingKind::Flag { default }, Value::Null) => if default { "yes" } else { "no" }.into(),
        (SettingKind::Flag { .. }, Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        (SettingKind::Choice { options }, Value::String(v)) => options
            .iter()
            .find(|o| o.value == v)
            .map_or_else(|| v.clone(), |o| o.label.to_owned()),
        _ => show(value),
    }
}
