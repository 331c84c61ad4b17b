//! The identity platform's admin-consent endpoint (`/{tenant}/v2.0/adminconsent`): a customer's
//! administrator grants the CSP's multi-tenant app its application permissions, which gives the
//! app a service principal in that tenant. With auto-approve the first enabled member consents;
//! otherwise a sign-in form is shown. The redirect carries `admin_consent=True&tenant=…&state=…`
//! or `error=access_denied`.
// Handlers return axum responses as errors; they are built once per failed request.
#![allow(clippy::result_large_err)]
use std::sync::{Arc, PoisonError};

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::server::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    username: Option<String>,
    password: Option<String>,
    decision: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html><body><p id=\"error\">{}</p></body></html>",
            escape(text)
        )),
    )
        .into_response()
}

fn same_redirect(registered: &str, given: &str) -> bool {
    let norm = |u: &str| match url::Url::parse(u) {
        Ok(mut p) if matches!(p.host_str(), Some("localhost" | "127.0.0.1")) => {
            let _ = p.set_port(None);
            p.to_string()
        }
        _ => u.to_owned(),
    };
    registered == given || norm(registered) == norm(given)
}

fn redirect(uri: &str, params: &[(&str, &str)]) -> Response {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{uri}{sep}{query}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Checks the app, tenant and redirect; returns (tenant id, redirect uri).
fn check(state: &AppState, tenant: &str, p: &Params) -> Result<(String, String), Response> {
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let Some(t) = world.tenant(tenant) else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        ));
    };
    let client_id = p.client_id.clone().unwrap_or_default();
    let Some(app) = world.app(&client_id) else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    };
    if !app.multi_tenant && !app.home_tenant_id.eq_ignore_ascii_case(&t.id) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    }
    let uri = p.redirect_uri.clone().unwrap_or_default();
    if !app.redirect_uris.iter().any(|r| same_redirect(r, &uri)) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS50011: The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."
            ),
        ));
    }
    Ok((t.id.clone(), uri))
}

fn grant(state: &AppState, tenant_id: &str, p: &Params, uri: &str) -> Response {
    let client_id = p.client_id.clone().unwrap_or_default();
    {
        let mut world = state.world.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(app) = world
            .apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
            && !app
                .consented_tenants
                .iter()
                .any(|t| t.eq_ignore_ascii_case(tenant_id))
        {
            app.consented_tenants.push(tenant_id.to_owned());
        }
    }
    redirect(
        uri,
        &[
            ("admin_consent", "True"),
            ("tenant", tenant_id),
            ("state", p.state.as_deref().unwrap_or_default()),
            (
                "scope",
                p.scope
                    .as_deref()
                    .unwrap_or("https://graph.microsoft.com/.default"),
            ),
        ],
    )
}

fn form(p: &Params, error: Option<&str>) -> Response {
    let hidden: String = [
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("state", &p.state),
        ("scope", &p.scope),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref()
            .map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", escape(v)))
    })
    .collect();
    let error = error
        .map(|e| format!("<p id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html><head><title>Permissions requested</title></head><body><h1>Permissions requested \
         (accept for your organisation)</h1>{error}<form method=\"post\">{hidden}\
         <label>Administrator <input name=\"username\"></label><label>Password <input name=\"password\" type=\"password\"></label>\
         <button name=\"decision\" value=\"accept\">Accept</button><button name=\"decision\" value=\"cancel\">Cancel</button>\
         </form></body></html>"
    ))
    .into_response()
}

pub(crate) async fn admin_consent(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let (tid, uri) = match check(&state, &tenant, &p) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if state.auto_approve.load(std::sync::atomic::Ordering::Relaxed) {
        return grant(&state, &tid, &p, &uri);
    }
    form(&p, None)
}

pub(crate) async fn admin_consent_submit(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let p: Params = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (tid, uri) = match check(&state, &tenant, &p) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if p.decision.as_deref() == Some("cancel") {
        return redirect(
            &uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "AADSTS65004: User declined to consent to access the app.",
                ),
                ("state", p.state.as_deref().unwrap_or_default()),
            ],
        );
    }
    let signed_in = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        let password_ok = p.password.as_deref() == Some(world.sign_in_password.as_str());
        let user = world
            .tenant(&tid)
            .and_then(|t| t.user(p.username.as_deref().unwrap_or_default()));
        // The administrator must be native to the customer tenant (not a guest).
        password_ok && user.is_some_and(|u| u.account_enabled && u.user_type == "Member")
    };
    if !signed_in {
        return form(
            &p,
            Some("AADSTS50126: Error validating credentials due to invalid username or password."),
        );
    }
    grant(&state, &tid, &p, &uri)
}
