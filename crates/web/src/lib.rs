//! deskbridge-web: the administrators' web UI (server-rendered, everything embedded in the
//! binary) and the JSON API under `/api/v1`, with accounts, sessions, API tokens and
//! per-connection access control.
//!
//! What it owns:
//! - the router ([`router`]) and one table of every route with what it requires
//!   ([`access::ENDPOINTS`]); a single middleware resolves the caller (session cookie or Bearer
//!   token), checks CSRF on every unsafe request made with a cookie, and enforces the route's
//!   requirement before any handler runs, so no handler can forget to;
//! - password hashing (argon2id) and token minting ([`auth`]); the store keeps only hashes;
//! - the OpenAPI 3 document, generated from the same route table;
//! - starting and cancelling runs from the UI and API ([`runs`]);
//! - receiving Partner Center's signed webhook deliveries ([`webhooks`]) and Microsoft Graph's
//!   change notifications ([`graph_notifications`]);
//! - single sign-on with Microsoft work accounts ([`sso`]).
//!
//! Invariants: a secret (client secret, certificate, password, token) goes in and never comes
//! out of any page or response; every error is `{"error": {"code", "message"}}` with a stable
//! code; an agent sees only the connections granted to it.

pub mod access;
mod api;
pub mod auth;
mod error;
pub mod graph_notifications;
mod openapi;
pub mod runs;
pub mod sso;
mod ui;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use deskbridge_core::SharedClock;
use deskbridge_store::Store;

pub use error::ApiError;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The connectors of this build: every connection is read, checked and saved through them.
    pub sources: deskbridge_source::SourceRegistry,
    pub clock: SharedClock,
    /// Mark cookies `Secure` (served over https, directly or behind a proxy).
    pub secure_cookies: bool,
    /// How syncs started from the UI and API run (the instance kind).
    pub sync_options: deskbridge_sync::SyncOptions,
    pub runs: Arc<runs::Runs>,
    /// Take the client's address for sign-in limits from the last `X-Forwarded-For` entry (set
    /// when a reverse proxy that writes it is in front); otherwise the connection's address.
    pub trust_forwarded_for: bool,
    /// Runs go through the sync agent's job queue (`deskbridge serve` has a worker); otherwise
    /// they run on a task of this process (an embedded router without workers, as in tests).
    pub job_queue: bool,
    /// Partner Center webhooks (`POST /webhooks/partner-center`); `None`: not configured, the
    /// route answers 404.
    pub partner_webhooks: Option<Arc<webhooks::PartnerWebhooks>>,
    /// Graph change notifications (`POST /webhooks/graph[/lifecycle]`); `None`: not configured,
    /// the routes answer 404.
    pub graph_notifications: Option<Arc<graph_notifications::GraphNotifications>>,
}

impl AppState {
    pub fn new(store: Store, sources: deskbridge_source::SourceRegistry, clock: SharedClock) -> Self {
        Self {
            store,
            sources,
            clock,
            secure_cookies: false,
            trust_forwarded_for: false,
            sync_options: deskbridge_sync::SyncOptions::default(),
            runs: Arc::new(runs::Runs::default()),
            job_queue: false,
            partner_webhooks: None,
            graph_notifications: None,
        }
    }

    /// What a connector works with outside a run.
    pub fn source_context(&self) -> deskbridge_source::SourceContext {
        deskbridge_source::SourceContext::detached(self.store.clone(), self.clock.clone())
    }
}

/// The whole application: UI pages, static assets and the JSON API.
pub fn router(state: AppState) -> Router {
    let api = api::routes();
    let ui = ui::routes();
    Router::new()
        .merge(api)
        .merge(ui)
        .route("/webhooks/partner-center", axum::routing::post(webhooks::receive))
        .route(
            "/webhooks/graph",
            axum::routing::post(graph_notifications::changes),
        )
        .route(
            "/webhooks/graph/lifecycle",
            axum::routing::post(graph_notifications::lifecycle),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::enforce,
        ))
        // The access middleware reads bodies up to the limit itself; handlers may take as much.
        .layer(axum::extract::DefaultBodyLimit::max(access::BODY_LIMIT))
        .fallback(access::not_found)
        .with_state(state)
}
