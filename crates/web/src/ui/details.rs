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

use super::html::{Opt, Page, Section, cell, checkbox, form, password_field, select, text_field};
use super::{UiResult, field, parse_form, reload, see_other, show};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api::{self, EditConnectionBody};
use crate::error::ApiError;

async fn details_view(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
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
    let mut details = Section::titled("Details").table(
        &["Setting", "Value"],
        vec![
            vec![cell("Name"), cell(&scope.connection.name)],
            vec![cell("Tenant id"), cell(show(&s["tenant_id"]))],
            vec![cell("Client id"), cell(show(&s["client_id"]))],
            vec![cell("Identity platform"), cell(show(&s["authority_host"]))],
            vec![cell("Graph"), cell(show(&s["graph_url"]))],
            vec![cell("Desk customer id"), cell(show(&s["customer_id"]))],
            vec![cell("Instances"), cell(&scope.connection.enabled_instances)],
        ],
    );
    if modify {
        let mut fields = vec![
            text_field("tenant_id", "Tenant id", show(&s["tenant_id"])),
            text_field("client_id", "Client id", show(&s["client_id"])),
            text_field(
                "authority_host",
                "Identity platform host",
                show(&s["authority_host"]),
            ),
            text_field("graph_url", "Graph URL", show(&s["graph_url"])),
        ];
        fields.push(password_field(
            "client_secret",
            "New client secret value",
            "Leave empty to keep the stored secret. Write-only: never shown.",
        ));
        fields.push(text_field(
            "secret_expires_at",
            "New secret expires (RFC 3339, optional)",
            "",
        ));
        details = details.form(form(
            "details",
            format!("/connections/{id}"),
            "Save details",
            fields,
        ));
    }
    let credential = &view["credential"];
    if show(&credential["kind"]) == "delegated" {
        let mut delegated = Section::titled("Sign in with Microsoft").text(
            "Delegated permissions: an administrator of the tenant signs in with Microsoft; deskbridge keeps the \
             refresh token sealed and never shows it.",
        );
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
    let mut authorisation = Section::titled("Authorisation")
        .text(format!(
            "Application permissions with a {}; {}. The secret itself is stored sealed and is never shown.",
            if show(&credential["kind"]) == "certificate" {
                "certificate"
            } else {
                "client secret"
            },
            match credential["expires_at"].as_str() {
                Some(at) => format!("it expires {at}"),
                None => "no expiry date is recorded".into(),
            }
        ))
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
    RawQuery(query): RawQuery,
) -> UiResult {
    let flash = if query.as_deref().is_some_and(|q| q.contains("created=1")) {
        "Connection added. Test it, then check the mappings."
    } else {
        ""
    };
    details_view(&state, &caller, &scope, flash, "").await
}

pub(super) async fn save_details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let opt = |name: &str| Some(field(&f, name).to_owned()).filter(|v| !v.trim().is_empty());
    let edit = EditConnectionBody {
        tenant_id: opt("tenant_id"),
        client_id: opt("client_id"),
        client_secret: opt("client_secret"),
        secret_expires_at: opt("secret_expires_at"),
        authority_host: opt("authority_host"),
        graph_url: opt("graph_url"),
        ..EditConnectionBody::default()
    };
    let result = api::edit(&state, &scope.connection, edit).await;
    let scope = reload(&state, &scope).await?;
    match result {
        Ok(()) => details_view(&state, &caller, &scope, "Saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, "", &e.message).await,
    }
}

pub(super) async fn delete_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    if field(&f, "confirm") != "on" {
        return details_view(
            &state,
            &caller,
            &scope,
            "",
            "Tick the box to confirm the deletion.",
        )
        .await;
    }
    api::delete(&state, scope.connection.id).await?;
    Ok(see_other("/connections"))
}

pub(super) async fn test_connection(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let result = api::test(&state, &scope.connection).await;
    if result["ok"] == Value::Bool(true) {
        details_view(
            &state,
            &caller,
            &scope,
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
        details_view(&state, &caller, &scope, "", &text).await
    }
}

pub(super) async fn authorize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
) -> UiResult {
    let redirect = api::callback_uri(&state, &headers)?;
    match deskbridge_connector_entra::begin_delegated_authorization(
        &state.store,
        &scope.connection.name,
        &redirect,
        &state.clock,
    )
    .await
    {
        Ok(pending) => Ok(see_other(&pending.url)),
        Err(e) => {
            let e = ApiError::from(e);
            details_view(
                &state,
                &caller,
                &scope,
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
    let name = deskbridge_connector_entra::complete_delegated_authorization(
        &state.store,
        field(&q, "state"),
        field(&q, "code"),
        &state.clock,
    )
    .await
    .map_err(|e| match e {
        // A state that is not pending here: the browser's doing, not Microsoft's.
        deskbridge_sync::SyncError::Credential(message) => ApiError::new(ErrorCode::InvalidSignIn, message),
        other => ApiError::from(other),
    })?;
    let mut tx = state.store.read().await?;
    let connection = tx
        .connection_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connection named {name:?}")))?;
    tx.commit().await?;
    let scope = crate::access::scope_for(&state, &caller, connection.id, Access::Read).await?;
    details_view(
        &state,
        &caller,
        &scope,
        "Signed in with Microsoft: the connection is authorised.",
        "",
    )
    .await
}

pub(super) async fn set_access(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
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
        Ok(()) => details_view(&state, &caller, &scope, "Access saved.", "").await,
        Err(e) => details_view(&state, &caller, &scope, "", &e.message).await,
    }
}
