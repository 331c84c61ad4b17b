//! The JSON API under `/api/v1`. Access is already checked when a handler runs (see
//! [`crate::access`]); handlers find the caller and the connection in the request's extensions.
//! Bodies and queries are parsed here so that a bad one gets the API's error shape.
//!
//! This file owns the route table, the parsing of bodies, queries and ids that every handler
//! uses, and the two endpoints about the API itself (`openapi.json` and `me`). Each resource has
//! its own file.

mod accounts;
mod agent;
mod connections;
mod directory;
mod export;
mod followers;
mod grants;
mod health;
mod licences;
mod logs;
mod mappings;
mod runs;
mod schedules;
mod sso;
mod subscriptions;
mod tenants;
mod tokens;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::Caller;
use crate::error::{ApiError, ApiResult};

// What the UI pages share with the JSON handlers: a page and an API call that do the same
// thing go through the same code.
pub(crate) use accounts::accounts_with_sign_in_state;
pub(crate) use agent::{clear_cursors, cursor_report, run_check, take_latest_cursors};
pub(crate) use connections::{
    Created, begin_sign_in, callback_uri, complete_sign_in, connection_view, create, delete, edit,
    may_create, site_uri, source_of, test, visible_connections,
};
pub(crate) use directory::{
    DIRECTORY_KINDS, DirectoryQuery, connection_customers, directory_entity, directory_page,
};
pub(crate) use followers::save_follower_settings;
pub(crate) use grants::grant;
pub(crate) use health::{HealthQuery, HistoryQuery, listing_json, visible_health, visible_history};
pub(crate) use licences::{change_licence, user_licences};
pub(crate) use logs::{LogQuery, log_kind, log_page};
pub(crate) use mappings::{DeltaLinksQuery, save_mappings};
pub(crate) use runs::{approve, run_preview, run_request, run_view};
pub(crate) use schedules::{ScheduleBody, add_schedule, remove_schedule, schedules_of};
pub(crate) use subscriptions::adjust_quantity;
pub(crate) use tenants::{
    CONSENT_CALLBACK, begin_consent, change_tenant, complete_consent, consent_callback_uri,
    consent_connection, reset_tenant_deltas, table_of, tenants_of,
};
pub(crate) use tokens::mint_token;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sso", get(sso::get_sso).patch(sso::patch_sso))
        .route("/api/v1/sso/tenants", post(sso::allow_tenant))
        .route(
            "/api/v1/sso/tenants/{tenant_id}",
            axum::routing::delete(sso::disallow_tenant),
        )
        .route(
            "/api/v1/accounts/{account_id}/microsoft-identity",
            put(sso::link_identity).delete(sso::unlink_identity),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route(
            "/api/v1/connections",
            get(connections::list_connections).post(connections::create_connection),
        )
        .route(
            "/api/v1/connections/{id}",
            get(connections::get_connection)
                .patch(connections::edit_connection)
                .delete(connections::delete_connection),
        )
        .route(
            "/api/v1/connections/{id}/test",
            post(connections::test_connection),
        )
        .route("/api/v1/connections/{id}/authorize", post(connections::authorize))
        .route(
            "/api/v1/connections/{id}/mappings",
            get(mappings::get_mappings).put(mappings::put_mappings),
        )
        .route("/api/v1/connections/{id}/preview", post(runs::preview))
        .route("/api/v1/connections/{id}/check", get(agent::check))
        .route(
            "/api/v1/connections/{id}/schedules",
            get(schedules::list_schedules).post(schedules::add_schedule_route),
        )
        .route(
            "/api/v1/connections/{id}/schedules/{schedule}",
            axum::routing::delete(schedules::remove_schedule_route),
        )
        .route(
            "/api/v1/connections/{id}/runs",
            get(runs::list_runs).post(runs::start_run),
        )
        .route(
            "/api/v1/connections/{id}/cursors/reset",
            post(agent::reset_cursors),
        )
        .route(
            "/api/v1/connections/{id}/cursors/latest",
            post(agent::latest_cursors),
        )
        .route("/api/v1/connections/{id}/logs/{log}", get(logs::connection_log))
        .route(
            "/api/v1/connections/{id}/directory/{kind}",
            get(directory::connection_directory),
        )
        .route(
            "/api/v1/connections/{id}/subscriptions/{subscription}/quantity",
            post(subscriptions::set_quantity),
        )
        .route(
            "/api/v1/connections/{id}/subscriptions/{subscription}/changes",
            get(subscriptions::list_changes),
        )
        .route(
            "/api/v1/users/{user_id}/licences",
            get(licences::list).post(licences::assign),
        )
        .route(
            "/api/v1/users/{user_id}/licences/{licence_id}",
            axum::routing::delete(licences::remove),
        )
        .route("/api/v1/connections/{id}/usage.csv", get(directory::usage_csv))
        .route("/api/v1/connections/{id}/tenants", get(tenants::list_tenants))
        .route(
            "/api/v1/connections/{id}/tenants/{tenant}",
            axum::routing::patch(tenants::set_tenant),
        )
        .route(
            "/api/v1/connections/{id}/tenants/{tenant}/consent",
            post(tenants::consent),
        )
        .route(
            "/api/v1/connections/{id}/tenants/{tenant}/reset",
            post(tenants::reset_route),
        )
        .route(
            "/api/v1/connections/{id}/tenants/mappings",
            post(tenants::generate_route),
        )
        .route("/api/v1/connections/{id}/export", get(export::export))
        .route("/api/v1/connections/{id}/import", post(export::import))
        .route("/api/v1/connections/{id}/grants", get(grants::list_grants))
        .route(
            "/api/v1/connections/{id}/grants/{account_id}",
            put(grants::set_grant),
        )
        .route("/api/v1/runs", get(health::list_all_runs))
        .route("/api/v1/runs/{run_id}", get(runs::get_run))
        .route("/api/v1/runs/{run_id}/cancel", post(runs::cancel_run))
        .route("/api/v1/runs/{run_id}/approve", post(runs::approve_run))
        .route("/api/v1/logs/{log}", get(logs::any_log))
        .route("/api/v1/directory/{kind}", get(directory::directory))
        .route(
            "/api/v1/accounts",
            get(accounts::list_accounts).post(accounts::create_account),
        )
        .route(
            "/api/v1/accounts/{account_id}",
            axum::routing::patch(accounts::edit_account).delete(accounts::delete_account),
        )
        .route(
            "/api/v1/accounts/{account_id}/unlock",
            post(accounts::unlock_account),
        )
        .route(
            "/api/v1/accounts/{account_id}/reset-password",
            post(accounts::reset_password),
        )
        .route(
            "/api/v1/settings/followers",
            get(followers::get_settings).put(followers::put_settings),
        )
        .route(
            "/api/v1/tickets/{ticket_id}/followers",
            post(followers::add_followers),
        )
        .route(
            "/api/v1/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route(
            "/api/v1/tokens/{token_id}",
            axum::routing::delete(tokens::delete_token),
        )
}

// ---------------------------------------------------------------------- parsing helpers

pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.is_empty() {
        return deskbridge_core::parse_json(b"{}")
            .map_err(|e| ApiError::invalid(format!("the request needs a JSON body: {e}")));
    }
    deskbridge_core::parse_json(bytes).map_err(|e| ApiError::invalid(format!("the request's JSON body: {e}")))
}

pub(crate) fn parse_query<T: DeserializeOwned>(raw: Option<String>) -> ApiResult<T> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| {
        ApiError::invalid(format!(
            "the query is not valid: {}",
            deskbridge_core::plain_words(&e.to_string())
        ))
    })
}

fn parse_id(text: &str, what: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("{text:?} is not a {what} id")))
}

// ---------------------------------------------------------------------- the API itself

async fn openapi(State(state): State<AppState>) -> Response {
    Json(crate::openapi::document(&state.sources)).into_response()
}

async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> ApiResult<Json<Value>> {
    let mut tx = state.store.read().await?;
    let grants = tx.grants_of_account(caller.account.id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "account": caller.account, "grants": grants })))
}
