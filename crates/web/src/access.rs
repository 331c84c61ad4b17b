//! Who may call what. Every route is listed once in [`ENDPOINTS`] with its requirement; the
//! [`enforce`] middleware runs before every handler: it finds the caller (session cookie or
//! Bearer token), checks the CSRF token of unsafe requests made with a cookie, and checks the
//! route's requirement, resolving the connection a route names (directly or through a run). A
//! route missing from the table is refused, so a new handler cannot go unguarded.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts as _, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use deskbridge_core::{ConnectionId, ErrorCode, RunId};
use deskbridge_store::{Access, Account, Connection, Role};

use crate::AppState;
use crate::auth::{self, API_TOKEN_PREFIX, SESSION_COOKIE};
use crate::error::ApiError;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (sign-in page, static assets, the OpenAPI document).
    Public,
    /// Any signed-in account.
    Signed,
    /// An administrator.
    Admin,
    /// An administrator, or an agent with "can configure Entra connections".
    CreateConnection,
    /// This access to the connection in the `id` path parameter.
    Connection(Access),
    /// This access to the connection of the run in the `run_id` path parameter.
    Run(Access),
    /// This access to the connection that imported the desk user in the `user_id` path parameter.
    User(Access),
}

/// Whether a route answers JSON or HTML (and so how a refusal looks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Api,
    Page,
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
    pub surface: Surface,
    /// For the OpenAPI document (API routes).
    pub tag: &'static str,
    pub summary: &'static str,
}

const fn api(
    method: &'static str,
    path: &'static str,
    need: Need,
    tag: &'static str,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        need,
        surface: Surface::Api,
        tag,
        summary,
    }
}

const fn page(method: &'static str, path: &'static str, need: Need, summary: &'static str) -> Endpoint {
    Endpoint {
        method,
        path,
        need,
        surface: Surface::Page,
        tag: "ui",
        summary,
    }
}

const READ: Need = Need::Connection(Access::Read);
const MODIFY: Need = Need::Connection(Access::Modify);
const RUN_READ: Need = Need::Run(Access::Read);
const RUN_MODIFY: Need = Need::Run(Access::Modify);
const USER_READ: Need = Need::User(Access::Read);
const USER_MODIFY: Need = Need::User(Access::Modify);

/// Every route of the application.
pub const ENDPOINTS: &[Endpoint] = &[
    // ---------------------------------------------------------------- API
    api(
        "GET",
        "/api/v1/openapi.json",
        Need::Public,
        "meta",
        "This OpenAPI document",
    ),
    // Partner Center cannot sign in: public here, every delivery verified by its signature.
    api(
        "POST",
        "/webhooks/partner-center",
        Need::Public,
        "webhooks",
        "Receive a Partner Center event (verified by its signature; 404 unless configured)",
    ),
    // Graph cannot sign in either: public, every notification verified by its subscription's
    // clientState and tenant.
    api(
        "POST",
        "/webhooks/graph",
        Need::Public,
        "webhooks",
        "Receive Microsoft Graph change notifications (verified by clientState; 404 unless configured)",
    ),
    api(
        "POST",
        "/webhooks/graph/lifecycle",
        Need::Public,
        "webhooks",
        "Receive Microsoft Graph lifecycle notifications (verified by clientState; 404 unless configured)",
    ),
    api(
        "GET",
        "/api/v1/me",
        Need::Signed,
        "accounts",
        "The calling account and its grants",
    ),
    api(
        "GET",
        "/api/v1/connections",
        Need::Signed,
        "connections",
        "Connections the caller may read",
    ),
    api(
        "POST",
        "/api/v1/connections",
        Need::CreateConnection,
        "connections",
        "Create an Entra connection",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}",
        READ,
        "connections",
        "A connection (never its secrets)",
    ),
    api(
        "PATCH",
        "/api/v1/connections/{id}",
        MODIFY,
        "connections",
        "Edit a connection; secrets are write-only",
    ),
    api(
        "DELETE",
        "/api/v1/connections/{id}",
        MODIFY,
        "connections",
        "Delete a connection, and the desk customer it created when that holds nothing else",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/test",
        READ,
        "connections",
        "Test the connection's credentials and permissions",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/authorize",
        MODIFY,
        "connections",
        "Start Microsoft's sign-in for delegated permissions: the URL to open",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/mappings",
        READ,
        "mappings",
        "The mapping configuration",
    ),
    api(
        "PUT",
        "/api/v1/connections/{id}/mappings",
        MODIFY,
        "mappings",
        "Replace the mapping configuration (validated)",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/schedules",
        READ,
        "runs",
        "The connection's sync schedules",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/schedules",
        MODIFY,
        "runs",
        "Add a schedule: an interval or a cron expression, a time zone, an optional window",
    ),
    api(
        "DELETE",
        "/api/v1/connections/{id}/schedules/{schedule}",
        MODIFY,
        "runs",
        "Remove a schedule",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/usage.csv",
        READ,
        "directory",
        "The connection's consumption (usage) lines as CSV, for a spreadsheet; ?customer= narrows",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/tenants/{tenant}/reset",
        MODIFY,
        "connections",
        "Reset one tenant's deltas: its next run reads it whole",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/tenants/mappings",
        MODIFY,
        "connections",
        "Generate the catch-all site mapping of every assigned tenant that has none",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/tenants",
        READ,
        "connections",
        "A CSP connection's customer tenants: desk customer (or do not import) and overrides",
    ),
    api(
        "PATCH",
        "/api/v1/connections/{id}/tenants/{tenant}",
        MODIFY,
        "connections",
        "Change a tenant: {\"customer\": id | null} (administrators), {\"licence_import\": type | null}, \
         {\"relationship_type\": \"gdap\" | \"dap\" | null}",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/tenants/{tenant}/consent",
        MODIFY,
        "connections",
        "Start a tenant's admin consent of the GDAP app: {\"url\"} to send its administrator to",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/subscriptions/{subscription}/quantity",
        MODIFY,
        "subscriptions",
        "Adjust a subscription's quantity at its source (CSP: Partner Center); body {\"quantity\": n}",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/subscriptions/{subscription}/changes",
        READ,
        "subscriptions",
        "The quantity changes asked of a subscription, with what the source answered",
    ),
    api(
        "GET",
        "/api/v1/users/{user_id}/licences",
        USER_READ,
        "licences",
        "A desk user's licences, the licences of their tenant with free units, and the licence changes asked",
    ),
    api(
        "POST",
        "/api/v1/users/{user_id}/licences",
        USER_MODIFY,
        "licences",
        "Assign a licence to the user at their source (Entra assignLicense); body {\"licence_id\": n}",
    ),
    api(
        "DELETE",
        "/api/v1/users/{user_id}/licences/{licence_id}",
        USER_MODIFY,
        "licences",
        "Remove a licence from the user at their source (Entra assignLicense)",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/check",
        READ,
        "connections",
        "Configuration check: each point with name, ok, detail and remedy",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/preview",
        READ,
        "runs",
        "Preview: what a sync of the directory or of the assets would change",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/runs",
        READ,
        "runs",
        "Run history, newest first",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/runs",
        MODIFY,
        "runs",
        "Start a sync of the directory or of the assets",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/cursors/reset",
        MODIFY,
        "runs",
        "Forget delta cursors: the next sync reads everything",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/cursors/latest",
        MODIFY,
        "runs",
        "Get latest delta links: the next sync sees only changes made from now on",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/logs/{log}",
        READ,
        "logs",
        "Inbound, outbound or error log, filtered and paged",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/directory/{kind}",
        READ,
        "directory",
        "Directory records of this connection",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/export",
        READ,
        "connections",
        "The connection's configuration as a file (no secrets)",
    ),
    api(
        "POST",
        "/api/v1/connections/{id}/import",
        MODIFY,
        "connections",
        "Apply an exported configuration",
    ),
    api(
        "GET",
        "/api/v1/connections/{id}/grants",
        Need::Admin,
        "accounts",
        "Who has access to the connection",
    ),
    api(
        "PUT",
        "/api/v1/connections/{id}/grants/{account_id}",
        Need::Admin,
        "accounts",
        "Grant or revoke an account's access",
    ),
    api(
        "GET",
        "/api/v1/settings/followers",
        Need::Signed,
        "followers",
        "Whether distribution groups may follow tickets, and the default connection",
    ),
    api(
        "PUT",
        "/api/v1/settings/followers",
        Need::Admin,
        "followers",
        "Allow distribution groups as ticket followers; set the default connection",
    ),
    // The handler checks read access to the connection the group is read through.
    api(
        "POST",
        "/api/v1/tickets/{ticket_id}/followers",
        Need::Signed,
        "followers",
        "Add a distribution group as followers of a ticket",
    ),
    // Every run of the connections the caller may read (the handler filters by grants).
    api(
        "GET",
        "/api/v1/runs",
        Need::Signed,
        "runs",
        "Run history of every connection the caller may read, newest first",
    ),
    api(
        "GET",
        "/api/v1/runs/{run_id}",
        RUN_READ,
        "runs",
        "A run with its live counts",
    ),
    api(
        "POST",
        "/api/v1/runs/{run_id}/cancel",
        RUN_MODIFY,
        "runs",
        "Cancel a running sync",
    ),
    api(
        "POST",
        "/api/v1/runs/{run_id}/approve",
        RUN_MODIFY,
        "runs",
        "Approve a held run: start a sync that lets its held changes through",
    ),
    api(
        "GET",
        "/api/v1/logs/{log}",
        Need::Admin,
        "logs",
        "Any connection's log",
    ),
    api(
        "GET",
        "/api/v1/directory/{kind}",
        Need::Admin,
        "directory",
        "The whole directory",
    ),
    api("GET", "/api/v1/accounts", Need::Admin, "accounts", "Accounts"),
    api(
        "POST",
        "/api/v1/accounts",
        Need::Admin,
        "accounts",
        "Create an account (returns a one-time password)",
    ),
    api(
        "PATCH",
        "/api/v1/accounts/{account_id}",
        Need::Admin,
        "accounts",
        "Change an account's role, permission or state ({\"disabled\": true} signs it out and refuses its API tokens)",
    ),
    api(
        "POST",
        "/api/v1/accounts/{account_id}/unlock",
        Need::Admin,
        "accounts",
        "Lift the account's sign-in block after failed sign-ins",
    ),
    api(
        "POST",
        "/api/v1/accounts/{account_id}/reset-password",
        Need::Admin,
        "accounts",
        "Give the account a new one-time password (returned once) and end its sessions",
    ),
    api(
        "DELETE",
        "/api/v1/accounts/{account_id}",
        Need::Admin,
        "accounts",
        "Delete an account",
    ),
    api(
        "GET",
        "/api/v1/tokens",
        Need::Signed,
        "accounts",
        "The caller's API tokens",
    ),
    api(
        "POST",
        "/api/v1/tokens",
        Need::Signed,
        "accounts",
        "Create an API token (shown once)",
    ),
    api(
        "DELETE",
        "/api/v1/tokens/{token_id}",
        Need::Signed,
        "accounts",
        "Revoke one of the caller's API tokens",
    ),
    api(
        "GET",
        "/api/v1/sso",
        Need::Admin,
        "sso",
        "Single sign-on: configuration (never the secret), redirect URI and allowed tenants with their origin",
    ),
    api(
        "PATCH",
        "/api/v1/sso",
        Need::Admin,
        "sso",
        "Change single sign-on: enabled, client_id, client_secret (write-only), authority",
    ),
    api(
        "POST",
        "/api/v1/sso/tenants",
        Need::Admin,
        "sso",
        "Allow a tenant to sign in: {\"tenant_id\": GUID, \"note\": text}",
    ),
    api(
        "DELETE",
        "/api/v1/sso/tenants/{tenant_id}",
        Need::Admin,
        "sso",
        "Remove a tenant allowed by hand",
    ),
    api(
        "PUT",
        "/api/v1/accounts/{account_id}/microsoft-identity",
        Need::Admin,
        "accounts",
        "Link an account to a Microsoft identity: {\"tenant_id\", \"object_id\"}",
    ),
    api(
        "DELETE",
        "/api/v1/accounts/{account_id}/microsoft-identity",
        Need::Admin,
        "accounts",
        "Unlink an account's Microsoft identity",
    ),
    // ---------------------------------------------------------------- pages
    page("GET", "/static/{file}", Need::Public, "Embedded CSS and script"),
    page("GET", "/login", Need::Public, "Sign-in form"),
    page("POST", "/login", Need::Public, "Sign in"),
    page("POST", "/logout", Need::Signed, "Sign out"),
    page(
        "GET",
        "/account",
        Need::Signed,
        "Own account: password and API tokens",
    ),
    page("POST", "/account/password", Need::Signed, "Change own password"),
    page("POST", "/account/tokens", Need::Signed, "Create an API token"),
    page("GET", "/", Need::Signed, "Home"),
    page("GET", "/connections", Need::Signed, "Connection list"),
    page(
        "GET",
        "/connections/new",
        Need::CreateConnection,
        "New connection form",
    ),
    page(
        "POST",
        "/connections",
        Need::CreateConnection,
        "Create a connection",
    ),
    page("GET", "/connections/{id}", READ, "Details and authorisation"),
    page("POST", "/connections/{id}", MODIFY, "Save details"),
    page(
        "POST",
        "/connections/{id}/delete",
        MODIFY,
        "Delete the connection",
    ),
    page("POST", "/connections/{id}/test", READ, "Test the connection"),
    page(
        "POST",
        "/connections/{id}/authorize",
        MODIFY,
        "Sign in with Microsoft (delegated permissions)",
    ),
    page(
        "GET",
        "/auth/microsoft/callback",
        Need::Signed,
        "Where Microsoft's sign-in comes back",
    ),
    page(
        "GET",
        "/auth/microsoft/consent",
        Need::Signed,
        "Where Microsoft's admin consent comes back (checked against its pending state)",
    ),
    page(
        "GET",
        "/connections/{id}/mappings/{section}",
        READ,
        "Field, site, asset and advanced mappings",
    ),
    page(
        "POST",
        "/connections/{id}/mappings/{section}",
        MODIFY,
        "Save a mapping section",
    ),
    page(
        "GET",
        "/connections/{id}/imports",
        READ,
        "Imports: matching, options, preview",
    ),
    page("POST", "/connections/{id}/preview", READ, "Import preview"),
    page(
        "POST",
        "/connections/{id}/runs",
        MODIFY,
        "Start a sync (directory or assets)",
    ),
    page(
        "GET",
        "/connections/{id}/agent",
        READ,
        "Sync agent: delta settings and reset",
    ),
    page(
        "POST",
        "/connections/{id}/agent",
        MODIFY,
        "Save sync agent settings",
    ),
    page("POST", "/connections/{id}/schedules", MODIFY, "Add a schedule"),
    page(
        "POST",
        "/connections/{id}/schedules/{schedule}/remove",
        MODIFY,
        "Remove a schedule",
    ),
    page(
        "POST",
        "/connections/{id}/cursors/reset",
        MODIFY,
        "Reset delta cursors",
    ),
    page(
        "POST",
        "/connections/{id}/cursors/latest",
        MODIFY,
        "Get latest delta links",
    ),
    page("GET", "/connections/{id}/check", READ, "Configuration check"),
    page("GET", "/connections/{id}/logs", READ, "Logs"),
    page("GET", "/connections/{id}/runs", READ, "Run history"),
    page(
        "GET",
        "/connections/{id}/directory/{kind}",
        READ,
        "Directory of this connection",
    ),
    page(
        "POST",
        "/connections/{id}/access",
        Need::Admin,
        "Grant access to the connection",
    ),
    // Every run of the connections the caller may read (the handler filters by grants).
    page("GET", "/runs", Need::Signed, "Run history of every connection"),
    page("GET", "/runs/{run_id}", RUN_READ, "A run with live progress"),
    page("POST", "/runs/{run_id}/cancel", RUN_MODIFY, "Cancel a run"),
    page("POST", "/runs/{run_id}/approve", RUN_MODIFY, "Approve a held run"),
    page("GET", "/directory/{kind}", Need::Admin, "Directory"),
    page("GET", "/connections/{id}/tenants", READ, "Tenants"),
    page(
        "POST",
        "/connections/{id}/tenants/reset",
        MODIFY,
        "Reset one tenant's deltas, or every tenant's",
    ),
    page(
        "POST",
        "/connections/{id}/tenants/mappings",
        MODIFY,
        "Generate the missing catch-all site mappings",
    ),
    page(
        "POST",
        "/connections/{id}/tenants",
        MODIFY,
        "Change a tenant: desk customer (administrators) and licence import type",
    ),
    page(
        "POST",
        "/connections/{id}/tenants/consent",
        MODIFY,
        "Grant a tenant's admin consent (sends the browser to Microsoft)",
    ),
    page(
        "POST",
        "/connections/{id}/subscriptions/quantity",
        MODIFY,
        "Adjust a subscription's quantity at its source",
    ),
    page(
        "GET",
        "/users/{user_id}",
        USER_READ,
        "A desk user and their licences",
    ),
    page(
        "POST",
        "/users/{user_id}/licences",
        USER_MODIFY,
        "Assign a licence to the user at their source",
    ),
    page(
        "POST",
        "/users/{user_id}/licences/remove",
        USER_MODIFY,
        "Remove a licence from the user at their source",
    ),
    page("GET", "/admin/accounts", Need::Admin, "Accounts"),
    page("GET", "/admin/settings", Need::Admin, "Desk settings"),
    page("POST", "/admin/settings", Need::Admin, "Change the desk settings"),
    page(
        "POST",
        "/admin/accounts",
        Need::Admin,
        "Create an account, or act on one: action=unlock, reset, disable, enable or link",
    ),
    page("GET", "/admin/sso", Need::Admin, "Single sign-on settings"),
    page(
        "POST",
        "/admin/sso",
        Need::Admin,
        "Change single sign-on: action=settings, allow or disallow (a tenant)",
    ),
    // Signing in: public, as the password form is; the callback checks everything itself.
    page(
        "GET",
        "/auth/sso/start",
        Need::Public,
        "Sign in with Microsoft (sends the browser to the identity platform)",
    ),
    page(
        "GET",
        "/auth/sso/callback",
        Need::Public,
        "Where the Microsoft sign-in comes back to",
    ),
];

pub fn endpoint(method: &Method, path: &str) -> Option<&'static Endpoint> {
    ENDPOINTS
        .iter()
        .find(|e| e.path == path && e.method == method.as_str())
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
}

/// The signed-in account of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
    pub via: Via,
    /// The session's CSRF token, for the forms a page renders.
    pub csrf: String,
    /// The session's id (none for an API token).
    pub session_id: Option<i64>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Administrator
    }

    pub fn can_create_connections(&self) -> bool {
        self.is_admin() || self.account.can_configure_connections
    }
}

/// The connection a route names and the caller's access to it (administrators: modify).
#[derive(Debug, Clone)]
pub struct Scope {
    pub connection: Connection,
    pub access: Access,
}

/// Finds the caller from a Bearer token or the session cookie.
pub async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(API_TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "the Authorization header is not `Bearer dbt_…`",
                )
            })?;
        let mut tx = state
            .store
            .begin(deskbridge_store::WriteContext::manual())
            .await?;
        let found = tx.use_api_token(&auth::token_hash(token)).await?;
        tx.commit().await?;
        return match found {
            Some((_, account)) => Ok(Some(Caller {
                account,
                via: Via::Token,
                csrf: String::new(),
                session_id: None,
            })),
            None => Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "the API token is unknown, revoked or expired",
            )),
        };
    }
    let Some(token) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, SESSION_COOKIE))
    else {
        return Ok(None);
    };
    let mut tx = state.store.read().await?;
    let found = tx.session_by_token_hash(&auth::token_hash(token)).await?;
    tx.commit().await?;
    Ok(found.map(|(session, account)| Caller {
        account,
        via: Via::Session,
        csrf: session.csrf_token,
        session_id: Some(session.id),
    }))
}

/// The largest request body any route accepts (mapping configurations are the big ones). A
/// larger one is answered 413 `payload_too_large`, as JSON on the API and as a page elsewhere.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the request body is larger than the {} MiB this server accepts",
            BODY_LIMIT / (1024 * 1024)
        ),
    )
    .with_remedy("Send a smaller body; split a large configuration into several requests.")
}

/// Reads the whole body, up to [`BODY_LIMIT`].
async fn limited_body(headers: &HeaderMap, body: Body) -> Result<Body, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    match to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => Ok(Body::from(bytes)),
        Err(e) if is_length_limit(&e) => Err(too_large()),
        Err(e) => Err(ApiError::invalid(format!(
            "the request body could not be read: {e}"
        ))),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        source = err.source();
    }
    false
}

fn refuse(surface: Surface, error: ApiError, path_and_query: &str) -> Response {
    match surface {
        Surface::Api => error.into_response(),
        Surface::Page if error.status() == StatusCode::UNAUTHORIZED => {
            let next = url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>();
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Surface::Page => crate::ui::error_page(&error),
    }
}

/// The fallback: an unknown path.
pub async fn not_found(req: Request) -> Response {
    let error = ApiError::not_found(format!("no such page or endpoint: {}", req.uri().path()));
    if req.uri().path().starts_with("/api/") {
        error.into_response()
    } else {
        crate::ui::error_page(&error)
    }
}

/// The access middleware (see the module doc).
pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let Some(matched) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return ApiError::internal("a route without a matched path").into_response();
    };
    let Some(ep) = endpoint(req.method(), &matched) else {
        return ApiError::internal(format!("{} {matched} has no access rule", req.method())).into_response();
    };
    // Every body is read here, within one limit, so an oversized one gets this application's
    // error (before any handler, and before the CSRF check reads a form).
    let req = if matches!(*req.method(), Method::GET | Method::HEAD) {
        req
    } else {
        let (parts, body) = req.into_parts();
        match limited_body(&parts.headers, body).await {
            Ok(body) => Request::from_parts(parts, body),
            Err(error) => return refuse(ep.surface, error, &path_and_query),
        }
    };
    if ep.need == Need::Public {
        return next.run(req).await;
    }
    match check(&state, ep, &matched, req).await {
        Ok(req) => next.run(req).await,
        Err(error) => refuse(ep.surface, error, &path_and_query),
    }
}

async fn check(state: &AppState, ep: &Endpoint, matched: &str, req: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = req.into_parts();
    let caller = caller(state, &parts.headers)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let body = if caller.via == Via::Session && !matches!(parts.method, Method::GET | Method::HEAD) {
        csrf_checked(&caller.csrf, &parts.headers, body).await?
    } else {
        body
    };
    if caller.account.must_change_password && !matches!(matched, "/account" | "/account/password" | "/logout")
    {
        return Err(ApiError::forbidden(
            "this account signed in with a one-time password and must choose a new one first",
        )
        .with_code(ErrorCode::PasswordChangeRequired)
        .with_remedy("Choose a new password on the account page (/account)."));
    }
    let params = RawPathParams::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| ApiError::invalid(format!("bad path: {e}")))?;
    let param = |name: &str| -> Result<i64, ApiError> {
        let value = params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| ApiError::internal(format!("route {matched} lacks the {name} parameter")))?;
        value
            .parse::<i64>()
            .map_err(|_| ApiError::not_found(format!("{value:?} is not an id")))
    };
    match ep.need {
        Need::Public | Need::Signed => {}
        Need::Admin => {
            if !caller.is_admin() {
                return Err(ApiError::forbidden("only an administrator may do this"));
            }
            // Administrators' routes about one connection get it resolved like the others.
            if params.iter().any(|(k, _)| k == "id") {
                let scope = scope_for(state, &caller, ConnectionId(param("id")?), Access::Modify).await?;
                parts.extensions.insert(scope);
            }
        }
        Need::CreateConnection => {
            if !caller.can_create_connections() {
                return Err(ApiError::forbidden(
                    "creating connections needs an administrator or the \"can configure Entra connections\" permission",
                ));
            }
        }
        Need::Connection(need) => {
            let scope = scope_for(state, &caller, ConnectionId(param("id")?), need).await?;
            parts.extensions.insert(scope);
        }
        Need::Run(need) => {
            let run_id = RunId(param("run_id")?);
            let mut tx = state.store.read().await?;
            let run = tx.run(run_id).await?;
            tx.commit().await?;
            let connection = match run {
                Some(run) => run.connection_id,
                None if caller.is_admin() => return Err(ApiError::not_found(format!("no run {run_id}"))),
                None => None,
            };
            match connection {
                Some(c) => {
                    let scope = scope_for(state, &caller, c, need).await?;
                    parts.extensions.insert(scope);
                }
                None if caller.is_admin() => {}
                None => return Err(ApiError::forbidden(format!("you have no access to run {run_id}"))),
            }
        }
        Need::User(need) => {
            let user = deskbridge_core::RecordId(param("user_id")?);
            let mut tx = state.store.read().await?;
            let record = tx.get(deskbridge_store::Entity::User, user).await?;
            tx.commit().await?;
            // A user is reached through the connection that imported it; agents are told
            // "forbidden" whether or not the user exists, as for connections.
            match record.and_then(|r| r.source).map(|s| s.connection_id) {
                Some(c) => {
                    let scope = scope_for(state, &caller, c, need).await?;
                    parts.extensions.insert(scope);
                }
                None if caller.is_admin() => {
                    return Err(ApiError::not_found(format!(
                        "there is no user {user} imported from a connection"
                    )));
                }
                None => return Err(ApiError::forbidden(format!("you have no access to user {user}"))),
            }
        }
    }
    parts.extensions.insert(caller);
    Ok(Request::from_parts(parts, body))
}

/// The caller's access to a connection, if it is at least `need`. Agents are told "forbidden"
/// whether or not the connection exists, so they learn nothing about others' connections.
pub async fn scope_for(
    state: &AppState,
    caller: &Caller,
    id: ConnectionId,
    need: Access,
) -> Result<Scope, ApiError> {
    let mut tx = state.store.read().await?;
    let access = if caller.is_admin() {
        Some(Access::Modify)
    } else {
        tx.grant(caller.account.id, id).await?
    };
    let connection = tx.connection(id).await?;
    tx.commit().await?;
    match (access, connection) {
        (Some(access), Some(connection)) if access >= need => Ok(Scope { connection, access }),
        (_, None) if caller.is_admin() => Err(ApiError::not_found(format!("no connection {id}"))),
        (Some(Access::Read), Some(_)) => Err(ApiError::forbidden(format!(
            "you may read connection {id} but not change it"
        ))),
        _ => Err(ApiError::forbidden(format!(
            "you have no access to connection {id}"
        ))),
    }
}

async fn csrf_checked(expected: &str, headers: &HeaderMap, body: Body) -> Result<Body, ApiError> {
    if let Some(sent) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
        return if auth::same_secret(sent, expected) {
            Ok(body)
        } else {
            Err(ApiError::csrf())
        };
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(ApiError::csrf());
    }
    let bytes = to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| ApiError::invalid(format!("the form could not be read: {e}")))?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    match sent {
        Some(sent) if auth::same_secret(&sent, expected) => Ok(Body::from(bytes)),
        _ => Err(ApiError::csrf()),
    }
}
