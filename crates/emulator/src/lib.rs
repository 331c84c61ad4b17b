//! deskbridge-emulator: Microsoft's identity platform (v2 token endpoint), Microsoft Graph v1.0
//! and Partner Center REST v1, emulated on one listener, faithful enough for Microsoft's own SDKs.
//!
//! # API overview
//! ```no_run
//! # async fn demo() -> Result<(), deskbridge_emulator::EmulatorError> {
//! use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
//! let world = World::generate(&GenerateOptions { seed: 7, tenants: 3, users_per_tenant: Some(200),
//!     ..GenerateOptions::default() })?;
//! let emu = Emulator::start(EmulatorConfig::new(world)).await?;
//! println!("{}", serde_json::to_string(&emu.summary()).unwrap_or_default()); // the CLI's JSON line
//! let graph = format!("{}/v1.0", emu.base_url());
//! emu.set_faults(deskbridge_emulator::Faults { throttling: true, ..Default::default() });
//! let log = emu.request_log(); // every request: time, method, path, tenant, app, status, retry-after
//! emu.shutdown().await;
//! # let _ = (graph, log); Ok(()) }
//! ```
//! URL layout: identity at `{base}/{tenant}/oauth2/v2.0/token|authorize`,
//! `{base}/{tenant}/v2.0/.well-known/openid-configuration`, `{base}/{tenant}/discovery/v2.0/keys`;
//! Graph at `{base}/v1.0/…`; Partner Center at `{base}/pc/…` and the partner API (price sheets)
//! at `{base}/pc-api/…`; Dataverse orgs at `{base}/org/{name}/api/data/v9.2/…`; the admin API at
//! `{base}/_admin/…` (see the crate README).
//!
//! Invariants: the world changes only through [`World`]'s mutation methods (admin API, Graph
//! writes), each of which appends to the tenant's change log, so delta queries see every change;
//! paging and delta tokens are self-contained (no per-client server state); time comes only from
//! the injected clock; throttling and every fault are off unless configured.
mod admin;
pub mod cli;
pub mod crypto;
pub mod dataverse;
mod filter;
mod generate;
mod graph;
mod identity;
mod limits;
pub mod partner;
mod server;
pub mod world;

pub use dataverse::{DataverseLoad, OrgSummary, ServiceLimits};
pub use generate::GenerateOptions;
pub use graph::subscriptions::{GraphSubscription, NotificationDelivery, SubscribedResource};
pub use limits::Faults;
pub use partner::PartnerFaults;
pub use partner::webhooks::DeliveryAttempt;
pub use server::{
    AppSummary, Emulator, EmulatorConfig, RequestLogEntry, Summary, TenantSummary, follow_approved_sign_in,
};
pub use world::World;

/// What can go wrong building or running the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("License assignment cannot be done for user with invalid usage location.")]
    InvalidUsageLocation,
}
