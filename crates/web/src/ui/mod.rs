//! The admin UI: server-rendered pages built from a few generic parts (tables, forms, notices)
//! on two askama templates compiled into the binary, with the stylesheet and the one small
//! script (live run progress) embedded. Every form posts the session's CSRF token; access is
//! checked by [`crate::access`] before a handler runs.
//!
//! This file owns the page routes, the static files, how a page handler fails (as an error
//! page) and the small helpers the pages share: reading a submitted form, showing a JSON value,
//! building a link with a query. The page parts are in [`html`]; each page, or group of pages
//! on one subject, has its own file.

mod account;
mod accounts;
mod advanced_forms;
mod agent;
mod asset_mappings;
mod check;
mod connections;
mod customer_mappings;
mod details;
mod directory;
mod group_mappings;
mod html;
mod imports;
mod licence_roles;
mod locks;
mod login;
mod logs;
mod mappings;
mod runs;
mod settings;
mod settings_form;
mod site_mappings;
mod sso;
mod table_mappings;
mod tenants;
mod user;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::AppState;
use crate::access::Scope;
use crate::api;
use crate::error::ApiError;
use html::{Nav, PageT, Section};

const STYLE: &str = include_str!("../../assets/style.css");
const SCRIPT: &str = include_str!("../../assets/app.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .route("/login", get(login::login_form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/account", get(account::account_page))
        .route("/account/password", post(account::change_password))
        .route("/account/tokens", post(account::create_token))
        .route("/", get(connections::home))
        .route(
            "/connections",
            get(connections::connections).post(connections::create_connection),
        )
        .route("/connections/new", get(connections::new_connection))
        .route(
            "/connections/{id}",
            get(details::details).post(details::save_details),
        )
        .route("/connections/{id}/delete", post(details::delete_connection))
        .route("/connections/{id}/test", post(details::test_connection))
        .route("/connections/{id}/authorize", post(details::authorize))
        .route("/auth/microsoft/callback", get(details::microsoft_callback))
        .route(
            "/connections/{id}/mappings/{section}",
            get(mappings::mappings).post(mappings::save_mapping_section),
        )
        .route("/connections/{id}/imports", get(imports::imports))
        .route(
            "/connections/{id}/tenants",
            get(tenants::tenants).post(tenants::save_tenant),
        )
        .route("/connections/{id}/tenants/consent", post(tenants::grant_consent))
        .route("/connections/{id}/tenants/reset", post(tenants::reset_deltas))
        .route(
            "/connections/{id}/tenants/mappings",
            post(tenants::generate_mappings),
        )
        .route("/auth/microsoft/consent", get(tenants::consent_callback))
        .route("/connections/{id}/preview", post(imports::preview))
        .route(
            "/connections/{id}/runs",
            get(runs::run_history).post(imports::start_run),
        )
        .route(
            "/connections/{id}/agent",
            get(agent::agent).post(agent::save_agent),
        )
        .route("/connections/{id}/cursors/reset", post(agent::reset_cursors))
        .route("/connections/{id}/cursors/latest", post(agent::latest_cursors))
        .route("/connections/{id}/schedules", post(agent::add_schedule))
        .route(
            "/connections/{id}/schedules/{schedule}/remove",
            post(agent::remove_schedule),
        )
        .route("/connections/{id}/check", get(check::check))
        .route("/connections/{id}/logs", get(logs::logs))
        .route(
            "/connections/{id}/directory/{kind}",
            get(directory::connection_directory),
        )
        .route("/connections/{id}/access", post(details::set_access))
        .route("/runs", get(runs::all_runs))
        .route("/runs/{run_id}", get(runs::run_page))
        .route("/runs/{run_id}/cancel", post(runs::cancel_run))
        .route("/runs/{run_id}/approve", post(runs::approve_run))
        .route("/directory/{kind}", get(directory::directory))
        .route(
            "/connections/{id}/subscriptions/quantity",
            post(directory::adjust_quantity),
        )
        .route("/users/{user_id}", get(user::user_page))
        .route("/users/{user_id}/licences", post(user::assign_licence))
        .route("/users/{user_id}/licences/remove", post(user::remove_licence))
        .route(
            "/admin/accounts",
            get(accounts::accounts).post(accounts::create_account),
        )
        .route(
            "/admin/settings",
            get(settings::settings).post(settings::save_settings),
        )
        .route("/admin/sso", get(sso::sso_page).post(sso::save_sso))
        .route("/auth/sso/start", get(sso::start))
        .route("/auth/sso/callback", get(sso::callback))
}

// ---------------------------------------------------------------------- errors as pages

/// An error as a page (no navigation: the caller may not be known).
pub fn error_page(error: &ApiError) -> Response {
    let page = PageT {
        title: match error.status() {
            StatusCode::FORBIDDEN => "Not allowed".into(),
            StatusCode::NOT_FOUND => "Not found".into(),
            _ => "Something went wrong".into(),
        },
        heading: String::new(),
        nav: Nav::default(),
        tabs: Vec::new(),
        flash: String::new(),
        error: format!(
            "{} ({}){}",
            error.message,
            error.shown_code(),
            error
                .remedy
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ),
        sections: vec![Section::default().link("Back to the connections", "/connections")],
        run_id: String::new(),
    };
    let body = page.render().unwrap_or_else(|_| error.message.clone());
    (error.status(), Html(body)).into_response()
}

/// Page handlers' error: shown as a page.
pub struct UiError(ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<deskbridge_store::StoreError> for UiError {
    fn from(e: deskbridge_store::StoreError) -> Self {
        Self(e.into())
    }
}

impl From<deskbridge_sync::SyncError> for UiError {
    fn from(e: deskbridge_sync::SyncError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

type UiResult = Result<Response, UiError>;

// ---------------------------------------------------------------------- helpers the pages share

/// A submitted form's fields (the last value of a repeated name wins).
fn parse_form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map_or("", String::as_str)
}

/// The server's side of a destructive form's tick box (see `html::destructive`): without it
/// nothing changes, and the refusal says why. `what` names the change ("the reset of the deltas").
fn confirmed(form: &HashMap<String, String>, what: &str) -> Result<(), ApiError> {
    if field(form, "confirm") == "on" {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Nothing was changed: tick the box to confirm {what}."
        )))
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    if q.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{q}")
    }
}

/// The connection's mapping configuration, as its connector reads it.
fn mapping_of(state: &AppState, scope: &Scope) -> Result<deskbridge_mapping::MappingConfig, UiError> {
    let opened = api::source_of(state, &scope.connection)?.open(&scope.connection)?;
    Ok(opened.mapping().clone())
}

/// The connection as stored now, after this request changed it; the caller's access is unchanged.
async fn reload(state: &AppState, scope: &Scope) -> Result<Scope, UiError> {
    let mut tx = state.store.read().await?;
    let connection = tx
        .connection(scope.connection.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the connection was deleted meanwhile"))?;
    tx.commit().await?;
    Ok(Scope {
        connection,
        access: scope.access,
    })
}

// ---------------------------------------------------------------------- static files

async fn static_file(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "style.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response(),
        "app.js" => ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response(),
        _ => error_page(&ApiError::not_found(format!("no static file {file:?}"))),
    }
}
