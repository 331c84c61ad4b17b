//! The list of connections the caller may read, and adding a connection of any kind this build
//! has, with the form its connector's settings describe.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use deskbridge_store::Access;

use axum::extract::RawQuery;
use deskbridge_source::Source;
use deskbridge_source::settings::{Purpose, SettingPart};
use serde_json::Value;

use super::html::{Field, Page, Section, cell, form, hidden, link, text_field};
use super::{UiResult, field, parse_form, see_other, settings_form, show};
use crate::AppState;
use crate::access::Caller;
use crate::api;
use crate::error::ApiError;

pub(super) async fn home() -> Response {
    see_other("/connections")
}

pub(super) async fn connections(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> UiResult {
    let rows = api::visible_connections(&state, &caller)
        .await?
        .into_iter()
        .map(|(c, access)| {
            vec![
                link(&c.name, format!("/connections/{}", c.id)),
                cell(&c.kind),
                cell(show(&c.config["tenant_id"])),
                cell(&c.enabled_instances),
                cell(if access == Access::Modify {
                    "read and modify"
                } else {
                    "read"
                }),
                link("runs", format!("/connections/{}/runs", c.id)),
            ]
        })
        .collect();
    let mut list =
        Section::default().table(&["Name", "Kind", "Tenant", "Instances", "Your access", ""], rows);
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
) -> UiResult {
    let title = format!("Add {} connection", with_article(source.label()));
    let mut page = Page::new(caller, &title);
    if let Some(error) = error {
        page = page.error(error);
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
    match api::create(&state, &caller, body).await {
        Ok(c) => Ok(see_other(&format!("/connections/{}?created=1", c.id))),
        Err(e) => {
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
            new_connection_page(&caller, source.as_ref(), fields, Some(e.message))
        }
    }
}
