//! The list of connections the caller may read, and adding a connection of any kind this build
//! has, with the form its connector's settings describe.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use deskbridge_agent::health::{ConnectionHealthView, SortKey, customers_text};
use deskbridge_store::{Access, Connection};

use axum::extract::RawQuery;
use deskbridge_source::settings::{Purpose, SettingPart};
use deskbridge_source::{CheckReport, Source};
use serde_json::Value;

use super::html::{Cell, Field, Page, Section, cell, checkbox, form, hidden, link, text_field, when_or};
use super::{UiResult, field, parse_form, see_other, settings_form};
use crate::AppState;
use crate::access::Caller;
use crate::api;
use crate::error::ApiError;

pub(super) async fn home() -> Response {
    see_other("/connections")
}

/// The connections the caller may read, with their health: customer, last run, next scheduled
/// run, open errors and held runs. Sorted and filtered by plain links (`?sort=`, `?failing=`),
/// so it works without script; a connection that needs someone is marked in red.
pub(super) async fn connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let query = api::HealthQuery::parse(query)?;
    let sort = query.sort()?;
    let failing = query.failing()?;
    let rows = api::visible_health(&state, &caller, &query)
        .await?
        .into_iter()
        .map(|(h, c, access)| health_row(&h, &c, access))
        .collect();
    let mut list = Section::default().table(
        &[
            "Name",
            "Customer",
            "Kind",
            "Health",
            "Last run",
            "When",
            "Created",
            "Updated",
            "Deactivated",
            "Errors",
            "Next run",
            "Open errors",
            "Held runs",
            "Your access",
            "",
        ],
        rows,
    );
    list.id = "health".into();
    list.caption = format!(
        "Sorted by {}{}",
        sort_label(sort),
        if failing {
            "; only connections that need someone"
        } else {
            ""
        }
    );
    let href = |sort: SortKey, failing: bool| {
        format!(
            "/connections?sort={}{}",
            sort.as_str(),
            if failing { "&failing=true" } else { "" }
        )
    };
    for key in SortKey::ALL {
        list = list.link(&format!("Sort by {}", sort_label(key)), href(key, failing));
    }
    list = if failing {
        list.link("Show every connection", href(sort, false))
    } else {
        list.link("Only failing connections", href(sort, true))
    };
    list = list.link("Every run", "/runs");
    if caller.can_create_connections() {
        for source in state
            .sources
            .iter()
            .filter(|s| api::may_create(&caller, s.as_ref()).is_ok())
        {
            list = list.link(
                &format!("Add {} connection", with_article(source.label())),
                format!("/connections/new?kind={}", source.kind()),
            );
        }
    }
    Ok(Page::new(&caller, "Connections").section(list).render())
}

fn sort_label(key: SortKey) -> &'static str {
    match key {
        SortKey::Name => "name",
        SortKey::Status => "health (worst first)",
        SortKey::LastRun => "last run (newest first)",
        SortKey::Errors => "open errors (most first)",
    }
}

fn health_row(h: &ConnectionHealthView, c: &Connection, access: Access) -> Vec<Cell> {
    let last = h.last_run.as_ref();
    let count = |f: fn(&deskbridge_store::RunCounts) -> i64| {
        cell(last.map(|r| f(&r.counts).to_string()).unwrap_or_default())
    };
    let mut health = cell(h.health);
    health.class = if h.needs_attention() {
        "bad"
    } else if h.health == "ok" {
        "ok"
    } else {
        ""
    };
    vec![
        link(&c.name, format!("/connections/{}", c.id)),
        cell(customers_text(&h.customers)),
        cell(&c.kind),
        health,
        last.map_or_else(
            || cell("never run"),
            |r| {
                link(
                    format!("{} ({})", r.status.as_str(), r.entity),
                    format!("/runs/{}", r.id),
                )
            },
        ),
        when_or(last.and_then(|r| r.at.as_deref()), ""),
        count(|c| c.created),
        count(|c| c.updated),
        count(|c| c.deactivated),
        count(|c| c.errors),
        when_or(h.next_run.as_deref(), "not scheduled"),
        cell(h.open_errors.to_string()),
        match h.held_runs.first() {
            Some(run) => link(
                format!("{} awaiting approval", h.held_runs.len()),
                format!("/runs/{}", run.id),
            ),
            None => cell("0"),
        },
        cell(if access == Access::Modify {
            "read and modify"
        } else {
            "read"
        }),
        link("runs", format!("/connections/{}/runs", c.id)),
    ]
}

/// "a Microsoft …", "an Entra …".
fn with_article(label: &str) -> String {
    let vowel = label.chars().next().is_some_and(|c| "AEIOUaeiou".contains(c));
    format!("{} {label}", if vowel { "an" } else { "a" })
}

/// The form of a new connection of `source`'s kind: the parts every kind has, then its settings.
fn connection_form_fields(source: &dyn Source) -> Vec<Field> {
    let mut fields = vec![
        hidden("kind", source.kind()),
        Field {
            required: true,
            ..text_field("name", "Connection name", "")
        },
    ];
    fields.extend(settings_form::fields(
        source.settings(),
        &[SettingPart::Identity, SettingPart::Credential, SettingPart::Sync],
        None,
        Purpose::Create,
    ));
    fields.push(text_field(
        "customer",
        "Desk customer (default: the connection's name)",
        "",
    ));
    fields.push(checkbox(
        "check",
        "Check the connection before saving (nothing is saved if a required point fails)",
        true,
    ));
    fields
}

fn source_for<'a>(state: &'a AppState, kind: &str) -> Result<&'a std::sync::Arc<dyn Source>, ApiError> {
    state
        .sources
        .get(kind)
        .ok_or_else(|| ApiError::not_found(format!("this deskbridge has no connector for {kind:?}")))
}

fn new_connection_page(
    caller: &Caller,
    source: &dyn Source,
    fields: Vec<Field>,
    error: Option<String>,
    failed_check: Option<&CheckReport>,
) -> UiResult {
    let title = format!("Add {} connection", with_article(source.label()));
    let mut page = Page::new(caller, &title);
    if let Some(error) = error {
        page = page.error(error);
    }
    if let Some(report) = failed_check {
        page = page.section(super::check::points_table(report));
    }
    let mut section = Section::default();
    if !source.setup().is_empty() {
        section = section.text(source.setup());
    }
    Ok(page
        .section(section.form(form("new-connection", "/connections", "Add connection", fields)))
        .render())
}

pub(super) async fn new_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let kind = match field(&q, "kind") {
        "" => state.sources.kinds().next().unwrap_or("entra").to_owned(),
        kind => kind.to_owned(),
    };
    let source = source_for(&state, &kind)?;
    api::may_create(&caller, source.as_ref())?;
    new_connection_page(
        &caller,
        source.as_ref(),
        connection_form_fields(source.as_ref()),
        None,
        None,
    )
}

pub(super) async fn create_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let kind = match field(&f, "kind") {
        "" => "entra",
        kind => kind,
    };
    let source = source_for(&state, kind)?.clone();
    let mut body = settings_form::values(
        source.settings(),
        &[SettingPart::Identity, SettingPart::Credential, SettingPart::Sync],
        &f,
    );
    body.insert("kind".to_owned(), Value::String(kind.to_owned()));
    for key in ["name", "customer"] {
        body.insert(key.to_owned(), Value::String(field(&f, key).to_owned()));
    }
    body.insert("check".to_owned(), Value::Bool(field(&f, "check") == "on"));
    let (error, failed_check) = match api::create(&state, &caller, body).await {
        Ok(api::Created::Saved { connection, check }) => {
            let check = match check {
                None => "",
                Some(Some(_)) => "&check=passed",
                Some(None) => "&check=authorise",
            };
            return Ok(see_other(&format!(
                "/connections/{}?created=1{check}",
                connection.id
            )));
        }
        Ok(api::Created::CheckFailed(report)) => {
            let e = api::Created::check_error(&report);
            (
                format!("{} — {}", e.message, e.remedy.unwrap_or_default()),
                Some(report),
            )
        }
        Err(e) => (e.message, None),
    };
    // Everything but the secrets goes back into the form.
    let secrets: Vec<&str> = source
        .settings()
        .iter()
        .filter(|s| s.is_secret())
        .map(|s| s.key)
        .collect();
    let mut fields = connection_form_fields(source.as_ref());
    for fl in &mut fields {
        if !secrets.contains(&fl.name) {
            fl.value = field(&f, fl.name).to_owned();
            if fl.kind == "checkbox" && fl.value != "on" {
                fl.value.clear();
            }
        }
    }
    new_connection_page(
        &caller,
        source.as_ref(),
        fields,
        Some(error),
        failed_check.as_ref(),
    )
}
