//! A connection's "Logs" tab: the inbound, outbound and error logs, filtered by run and text,
//! newest first, a page at a time.

use axum::Extension;
use axum::extract::{RawQuery, State};
use deskbridge_core::RunId;
use deskbridge_store::LogFilter;

use super::html::{Cell, Field, Page, Section, cell, form, select, text_field, when};
use super::{UiResult, field, parse_form, show, with_query};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api::{self, LogQuery};

pub(super) async fn logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let raw = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let log = match field(&raw, "log") {
        "" => "inbound",
        l => l,
    }
    .to_owned();
    let kind = api::log_kind(&log)?;
    let q = LogQuery {
        run: field(&raw, "run").parse().ok(),
        q: Some(field(&raw, "q").to_owned()).filter(|s| !s.is_empty()),
        before: field(&raw, "before").parse().ok(),
        limit: Some(50),
        connection: None,
    };
    let id = scope.connection.id.0;
    let filter = LogFilter {
        connection: Some(scope.connection.id),
        run: q.run.map(RunId),
        search: q.q.clone(),
        before: q.before,
        limit: 50,
    };
    let page_data = api::log_page(&state, kind, &filter).await?;
    let entries = page_data["entries"].as_array().cloned().unwrap_or_default();
    // Each log's columns: heading and the entry's key.
    let columns: &[(&str, &str)] = match log.as_str() {
        "outbound" => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Method", "method"),
            ("URL", "url"),
            ("Status", "status"),
            ("ms", "duration_ms"),
        ],
        "errors" => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Code", "code"),
            ("Record", "external_id"),
            ("Message", "message"),
            ("Remedy", "remedy"),
        ],
        _ => &[
            ("At", "at"),
            ("Run", "run_id"),
            ("Kind", "entity"),
            ("External id", "external_id"),
            ("Rule", "rule"),
            ("Action", "action"),
            ("Result", "result"),
        ],
    };
    let headers: Vec<&str> = columns.iter().map(|(heading, _)| *heading).collect();
    let rows: Vec<Vec<Cell>> = entries
        .iter()
        .map(|e| {
            columns
                .iter()
                .map(|(_, key)| match (*key, e[*key].as_str()) {
                    ("at", Some(at)) => when(at),
                    _ => cell(show(&e[*key])),
                })
                .collect()
        })
        .collect();
    let base = format!("/connections/{id}/logs");
    let run_text = q.run.map(|r| r.to_string()).unwrap_or_default();
    let mut section = Section::titled(match log.as_str() {
        "outbound" => "Outbound requests",
        "errors" => "Errors",
        _ => "Inbound changes",
    })
    .table(&headers, rows);
    section.id = "log".into();
    let mut search = form(
        "log-search",
        &base,
        "Filter",
        vec![
            select(
                "log",
                "Log",
                &log,
                &[
                    ("inbound", "Inbound"),
                    ("outbound", "Outbound"),
                    ("errors", "Errors"),
                ],
            ),
            text_field("q", "Contains", q.q.clone().unwrap_or_default()),
            Field {
                kind: "number",
                ..text_field("run", "Run", run_text.clone())
            },
        ],
    );
    search.method = "get";
    let mut top = Section::default().form(search);
    for (l, label) in [
        ("inbound", "Inbound"),
        ("outbound", "Outbound"),
        ("errors", "Errors"),
    ] {
        top = top.link(
            label,
            with_query(&base, &[("log", l.to_owned()), ("run", run_text.clone())]),
        );
    }
    if let Some(next) = page_data["next_before"].as_i64() {
        section = section.link(
            "Older entries",
            with_query(
                &base,
                &[
                    ("log", log.clone()),
                    ("q", q.q.clone().unwrap_or_default()),
                    ("run", run_text),
                    ("before", next.to_string()),
                ],
            ),
        );
    }
    Ok(Page::connection(&caller, &scope, "logs")
        .section(top)
        .section(section)
        .render())
}
