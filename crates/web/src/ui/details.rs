//! A connection's "Details & authorisation" tab: its settings and credential, testing it,
//! delegated sign-in with Microsoft (and the callback it returns to), agents' access, and
//! deleting the connection.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use deskbridge_core::ErrorCode;
use deskbridge_store::{Access, Role};
use serde_json::Value;

use deskbridge_source::settings::{Purpose, SettingPart};

use super::html::{Opt, Page, Section, cell, checkbox, form, phrase, select};
use super::{UiResult, field, parse_form, reload, see_other, settings_form, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;
use crate::error::ApiError;

/// The redirect URIs the app registration must list for this connection's sign-ins (Microsoft
/// refuses any other with AADSTS50011): this site's callback, and the CLI's loopback listener.
fn redirect_uris(state: &AppState, headers: &HeaderMap) -> String {
    let site = api::callback_uri(state, headers)
        .unwrap_or_else(|_| "https://<this site>/auth/microsoft/callback".into());
    format!(
        "Redirect URIs to register on the app registration: {site} (platform Web), and http://localhost \
         (platform Mobile and desktop, any port) for `deskbridge connection authorize`."
    )
}

async fn details_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    headers: &HeaderMap,
    flash: &str,
    error: &str,
) -> UiResult {
    let view = api::connection_view(state, &scope.connection, scope.access).await?;
    let s = &view["settings"];
    let modify = scope.access == Access::Modify;
    let id = scope.connection.id.0;
    let mut page = Page::connection(caller, scope, "details");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let source = api::source_of(state, &scope.connection)?;
    let schema = source.settings();
    let mut rows = vec![
        vec![cell("Name"), cell(&scope.connection.name)],
        vec![cell("Kind"), cell(source.label())],
    ];
    rows.extend(
        schema
            .iter()
            .filter(|st| st.part == SettingPart::Identity)
            .map(|st| vec![cell(st.label), cell(show(&s[st.key]))]),
    );
    if let Some(id) = deskbridge_source::desk::id_of(&s["customer_id"]) {
        let mut tx = state.store.read().await?;
        let customer = tx.get(deskbridge_store::Entity::Customer, id).await?;
        tx.commit().await?;
        let name = customer
            .and_then(|c| c.text("name").map(str::to_owned))
            .map_or_else(|| format!("#{id} (deleted)"), |name| format!("{name} (#{id})"));
        rows.push(vec![cell("Desk customer"), cell(name)]);
    }
    rows.push(vec![cell("Instances"), cell(&scope.connection.enabled_instances)]);
    let mut details = Section::titled("Details").table(&["Setting", "Value"], rows);
    if modify {
        let fields = settings_form::fields(
            schema,
            &[SettingPart::Identity, SettingPart::Credential],
            Some(s),
            Purpose::Edit,
        );
        details = details.form(form(
            "details",
            format!("/connections/{id}"),
            "Save details",
            fields,
        ));
    }
    let credential = &view["credential"];
    if let Some(authorised) = credential["authorised"].as_bool() {
        let mut delegated = Section::titled("Sign in with Microsoft").text(format!(
            "Delegated permissions: an administrator of the tenant signs in with Microsoft; deskbridge keeps the \
             refresh token sealed and never shows it. {} {}",
            if authorised {
                "Signed in."
            } else {
                "Not signed in yet: the connection cannot read until someone does."
            },
            redirect_uris(state, headers)
        ));
        if modify {
            delegated = delegated.form(form(
                "authorize",
                format!("/connections/{id}/authorize"),
                "Sign in with Microsoft",
                Vec::new(),
            ));
        }
        page = page.section(delegated);
    }
    let method = schema
        .iter()
        .find(|st| st.key == "auth")
        .and_then(|st| match st.kind {
            deskbridge_source::settings::SettingKind::Choice { options } => options
                .iter()
                .find(|o| Some(o.value) == credential["kind"].as_str()),
            _ => None,
        })
        .map_or("Signs in", |o| o.label);
    let mut authorisation = Section::titled("Authorisation")
        .line(match credential["expires_at"].as_str() {
            Some(at) => phrase(
                format!("{method}; the stored credential expires "),
                at,
                ". Secrets are stored sealed and are never shown.",
            ),
            None => cell(format!(
                "{method}; no expiry date is recorded. Secrets are stored sealed and are never shown."
            )),
        })
        .form(form(
            "test",
            format!("/connections/{id}/test"),
            "Test connection",
            Vec::new(),
        ));
    authorisation = authorisation.link("Export configuration", format!("/api/v1/connections/{id}/export"));
    page = page.section(details).section(authorisation);
    if caller.is_admin() {
        let mut tx = state.store.read().await?;
        let grants = tx.grants_of_connection(scope.connection.id).await?;
        let accounts = tx.accounts().await?;
        tx.commit().await?;
        let name_of = |aid: i64| {
            accounts
                .iter()
                .find(|a| a.id == aid)
                .map_or_else(|| aid.to_string(), |a| a.username.clone())
        };
        let agents: Vec<(String, String)> = accounts
            .iter()
            .filter(|a| a.role == Role::Agent)
            .map(|a| (a.id.to_string(), a.username.clone()))
            .collect();
        let mut account_field = select("account_id", "Agent", "", &[]);
        account_field.options = agents
            .into_iter()
            .map(|(value, label)| Opt { value, label })
            .collect();
        page = page.section(
            Section::titled("Access")
                .text("Administrators see every connection; agents see only those granted here.")
                .table(
                    &["Agent", "Access"],
                    grants
                        .iter()
                        .map(|g| vec![cell(name_of(g.account_id)), cell(g.access.as_str())])
                        .collect(),
                )
                .form(form(
                    "access",
                    format!("/connections/{id}/access"),
                    "Set access",
                    vec![
                        account_field,
                        select(
                            "access",
                            "Access",
                            "read",
                            &[
                                ("read", "Read"),
                                ("modify", "Read and modify"),
                                ("none", "No access"),
                            ],
                        ),
                    ],
                )),
        );
    }
    if modify {
        let mut delete = form(
            "delete",
            format!("/connections/{id}/delete"),
            "Delete connection",
            Vec::new(),
        );
        delete.danger = true;
        delete.fields.push(checkbox(
            "confirm",
            "Yes, delete this connection (imported records stay)",
            false,
        ));
        page = page.section(Section::titled("Danger zone").form(delete));
    }
    Ok(page.render())
}

pub(super) async fn details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> UiResult {
    let query = query.as_deref().unwrap_or("");
    let flash = if !query.contains("created=1") {
        ""
    } else if query.contains("check=passed") {
        "Connection checked and added. Preview a sync (Imports), then check the mappings."
    } else if query.contains("check=authorise") {
        "Connection added, not checked: it signs in interactively, so it can be checked once it is \
         authorised. Authorise it, then run its configuration check."
    } else {
        "Connection added. Test it, then check the mappings."
    };
    details_view(&state, &caller, &scope, &headers, flash, "").await
}

pub(super) async fn save_details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let result = match api::source_of(&state, &scope.connection) {
        Ok(source) => {
            let edit = settings_form::values(
                source.settings(),
                &[SettingPart::Identity, SettingPart::Credential],
                &f,
            );
            api::edit(&state, &caller, &scope.connection, edit).await
        }
        Err(e) => Err(e),
    };
    let scope = reload(&state, &scope).await?;
    match result {
        Ok(()) => details_view(&state, &caller, &scope, &headers, "Saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, &headers, "", &e.message).await,
    }
}

pub(super) async fn delete_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    if field(&f, "confirm") != "on" {
        return details_view(
            &state,
            &caller,
            &scope,
            &headers,
            "",
            "Tick the box to confirm the deletion.",
        )
        .await;
    }
    let removal = api::delete(&state, &scope.connection).await?;
    let lines = removal.lines();
    if lines.is_empty() {
        return Ok(see_other("/connections"));
    }
    // What became of the customer it created is said once, on a page of its own.
    let mut section = Section::titled(&format!("Removed connection {}", scope.connection.name));
    for line in lines {
        section = section.text(line);
    }
    Ok(Page::new(&caller, "Connection removed")
        .section(section.link("Back to the connections", "/connections"))
        .render())
}

pub(super) async fn test_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
) -> UiResult {
    let result = api::test(&state, &scope.connection).await;
    if result["ok"] == Value::Bool(true) {
        details_view(
            &state,
            &caller,
            &scope,
            &headers,
            &format!("Test passed: {}", show(&result["detail"])),
            "",
        )
        .await
    } else {
        let e = &result["error"];
        let text = format!(
            "Test failed: {} ({}){}",
            show(&e["message"]),
            show(&e["code"]),
            e["remedy"]
                .as_str()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
        details_view(&state, &caller, &scope, &headers, "", &text).await
    }
}

pub(super) async fn authorize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
) -> UiResult {
    let redirect = api::callback_uri(&state, &headers)?;
    match api::begin_sign_in(&state, &scope.connection, &redirect).await {
        Ok(url) => Ok(see_other(&url)),
        Err(e) => {
            details_view(
                &state,
                &caller,
                &scope,
                &headers,
                "",
                &format!("The sign-in could not start: {}", e.message),
            )
            .await
        }
    }
}

pub(super) async fn microsoft_callback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> UiResult {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    if !field(&q, "error").is_empty() {
        // Microsoft's code (`access_denied`, …) is shown; ours says the sign-in did not complete.
        return Err(ApiError::new(
            ErrorCode::InvalidSignIn,
            format!(
                "Microsoft's sign-in did not complete: {}",
                field(&q, "error_description")
            ),
        )
        .with_upstream_code(field(&q, "error"))
        .into());
    }
    let connection = api::complete_sign_in(
        &state,
        &format!("/auth/microsoft/callback?{}", query.as_deref().unwrap_or("")),
    )
    .await?;
    let scope = crate::access::scope_for(&state, &caller, connection.id, Access::Read).await?;
    details_view(
        &state,
        &caller,
        &scope,
        &headers,
        "Signed in with Microsoft: the connection is authorised.",
        "",
    )
    .await
}

pub(super) async fn set_access(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let account = field(&f, "account_id")
        .parse::<i64>()
        .map_err(|_| ApiError::invalid("choose an agent"))?;
    let access = match field(&f, "access") {
        "read" => Some(Access::Read),
        "modify" => Some(Access::Modify),
        _ => None,
    };
    match api::grant(&state, scope.connection.id, account, access).await {
        Ok(()) => details_view(&state, &caller, &scope, &headers, "Access saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, &headers, "", &e.message).await,
    }
}
