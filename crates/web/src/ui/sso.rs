//! Single sign-on pages: "Sign in with Microsoft" (it sends the browser to the identity
//! platform), the callback it comes back to (a session, or the sign-in page saying why not), and
//! the administrators' Single sign-on page (the app registration, on/off, the redirect URI to
//! register, and the allowed tenants with where each comes from). The rules are in
//! [`crate::sso`].

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::html::{
    Field, Page, Section, cell, checkbox, destructive, form, hidden, password_field, text_field,
};
use super::login::{View, login_page_with, safe_next, signed_in};
use super::{UiResult, confirmed, field, parse_form, see_other};
use crate::AppState;
use crate::access::Caller;
use crate::auth;
use crate::error::ApiError;
use crate::sso::{self, SsoChange};

/// The sign-in page with a refusal on it (the state cookie is cleared).
async fn refused_page(state: &AppState, next: &str, error: &ApiError) -> Response {
    let view = View::of(state).await;
    // Errors are written to be read after "error:"; on the sign-in page they stand alone.
    let mut chars = error.message.chars();
    let message = match chars.next() {
        Some(first) => format!(
            "{}{}.",
            first.to_uppercase(),
            chars.as_str().trim_end_matches('.')
        ),
        None => String::new(),
    };
    let mut page = login_page_with(next, &auth::random_token(24), &message, view, error.status());
    if let Ok(v) =
        header::HeaderValue::from_str(&auth::set_cookie(sso::STATE_COOKIE, "", 0, state.secure_cookies))
    {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
    page
}

/// `GET /auth/sso/start?next=…`: to Microsoft, with this browser bound to the sign-in.
pub(super) async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let next = safe_next(field(&q, "next"));
    match sso::begin(&state, &headers, next).await {
        Ok((url, sign_in_state)) => {
            let mut response = see_other(&url);
            let cookie = auth::set_cookie(sso::STATE_COOKIE, &sign_in_state, 600, state.secure_cookies);
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(e) => refused_page(&state, next, &e).await,
    }
}

/// `GET /auth/sso/callback?code=…&state=…`: signed in, or the sign-in page saying why not.
pub(super) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let browser_state = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, sso::STATE_COOKIE));
    match sso::finish(&state, &headers, query.as_deref().unwrap_or(""), browser_state).await {
        Ok((account, next)) => match signed_in(&state, &account, safe_next(&next).to_owned()).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        },
        Err(e) => refused_page(&state, "/connections", &e).await,
    }
}

async fn sso_view(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    flash: &str,
    error: &str,
) -> UiResult {
    let redirect_uri = sso::callback_uri(state, headers)
        .unwrap_or_else(|_| format!("https://<this site>{}", sso::CALLBACK_PATH));
    let view = sso::view(state, redirect_uri).await?;
    let mut page = Page::new(caller, "Single sign-on");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let settings = Section::titled("Microsoft sign-in")
        .text(format!(
            "Agents and administrators sign in with their Microsoft work accounts. Register a web app in your \
             Microsoft Entra tenant (supported account types: accounts in any organisational directory), add \
             the redirect URI {} (platform Web), create a client secret, and enter them here. Only tenants in \
             the list below may sign in. State: {}.",
            view.redirect_uri,
            if view.enabled { "on" } else { "off" }
        ))
        .form(form(
            "sso-settings",
            "/admin/sso",
            "Save",
            vec![
                hidden("action", "settings"),
                checkbox("enabled", "Single sign-on is on", view.enabled),
                Field {
                    help: "The app registration's Application (client) ID.".into(),
                    ..text_field("client_id", "Client id", view.client_id)
                },
                password_field(
                    "client_secret",
                    "Client secret",
                    if view.client_secret_set {
                        "A secret is saved; leave empty to keep it."
                    } else {
                        "No secret is saved yet."
                    },
                ),
                Field {
                    help: "The sign-in host: https://login.microsoftonline.com, or a national cloud's.".into(),
                    ..text_field("authority", "Authority", view.authority)
                },
            ],
        ));
    let rows = view
        .allowed_tenants
        .iter()
        .map(|t| vec![cell(&t.tenant_id), cell(&t.note), cell(&t.origin)])
        .collect();
    let mut tenants = Section::titled("Allowed tenants")
        .text(
            "A person signs in only from these tenants. Tenants a CSP connection maps to a desk customer are \
             listed here automatically and leave the list when unmapped on the connection's Tenants tab; add \
             your own tenant (and any other) by its tenant id.",
        )
        .table(&["Tenant id", "Name or note", "Added by"], rows)
        .form(form(
            "sso-allow",
            "/admin/sso",
            "Allow tenant",
            vec![
                hidden("action", "allow"),
                Field {
                    required: true,
                    ..text_field("tenant_id", "Tenant id", "")
                },
                text_field("note", "Note", ""),
            ],
        ));
    for t in view.allowed_tenants.iter().filter(|t| t.manual) {
        let label = if t.note.is_empty() {
            t.tenant_id.clone()
        } else {
            format!("{} ({})", t.note, t.tenant_id)
        };
        let mut remove = destructive(
            form(
                &format!("sso-disallow-{}", t.tenant_id),
                "/admin/sso",
                &format!("Remove {label}"),
                vec![hidden("action", "disallow"), hidden("tenant_id", &t.tenant_id)],
            ),
            &format!("Yes, people of {label} can no longer sign in with Microsoft"),
        );
        remove.class = "inline";
        tenants = tenants.form(remove);
    }
    Ok(page.section(settings).section(tenants).render())
}

/// `GET /admin/sso`.
pub(super) async fn sso_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> UiResult {
    sso_view(&state, &caller, &headers, "", "").await
}

/// `POST /admin/sso`: action=settings, allow or disallow.
pub(super) async fn save_sso(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let outcome = match field(&f, "action") {
        "settings" => sso::save(
            &state,
            SsoChange {
                enabled: Some(field(&f, "enabled") == "on"),
                client_id: Some(field(&f, "client_id").to_owned()),
                client_secret: Some(field(&f, "client_secret").to_owned()),
                authority: Some(field(&f, "authority").to_owned()),
            },
        )
        .await
        .map(|s| {
            format!(
                "Saved: single sign-on is {}.",
                if s.enabled { "on" } else { "off" }
            )
        }),
        "allow" => sso::allow(&state.store, field(&f, "tenant_id"), field(&f, "note"))
            .await
            .map(|id| format!("Tenant {id} may sign in.")),
        "disallow" => match confirmed(&f, "removing the tenant") {
            Ok(()) => sso::disallow(&state.store, field(&f, "tenant_id")).await,
            Err(e) => Err(e),
        }
        .map(|()| format!("Tenant {} may no longer sign in.", field(&f, "tenant_id").trim())),
        other => Err(ApiError::invalid(format!("unknown action {other:?}"))),
    };
    match outcome {
        Ok(flash) => sso_view(&state, &caller, &headers, &flash, "").await,
        Err(e) => sso_view(&state, &caller, &headers, "", &e.message).await,
    }
}
