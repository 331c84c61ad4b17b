//! deskbridge-connectors: the connectors this build ships, in one [`SourceRegistry`].
//!
//! The binary (and the benchmarks and tests that drive it as the binary does) take their registry
//! from [`registry`]; nothing else names a connector crate. A new connector is one line here
//! once its crate exists under `crates/connectors/`.

use std::sync::Arc;

pub mod sign_in;

use deskbridge_source::SourceRegistry;

/// Every connector, with its default settings.
pub fn registry() -> SourceRegistry {
    SourceRegistry::new()
        .with(Arc::new(deskbridge_connector_entra::EntraSource::default()))
        .with(Arc::new(deskbridge_connector_csp::CspSource::default()))
        .with(Arc::new(deskbridge_connector_dynamics::DynamicsSource::default()))
}

/// What only the CSP connector does outside a run: its Partner Center webhook registration, and
/// verifying the deliveries (the web routes them; it never speaks Partner Center).
pub mod csp {
    pub use deskbridge_connector_csp::{
        Delivery, PartnerWebhooks, Refusal, RefusalKind, SUBSCRIPTION_EVENTS, WebhookRegistration,
        WebhookStatus, licences_tenant, register_webhook, send_test_webhook, unregister_webhook,
        webhook_status,
    };
}

/// What only the Entra connector does outside a run: Graph change notification subscriptions,
/// and how a notification's clientState is checked (the web receives them; it never speaks Graph).
pub mod entra {
    pub use deskbridge_connector_entra::notifications::{
        NOTIFICATION_ORIGIN, Pass, RESOURCES, SubscriberConfig, client_state_hash, client_state_matches,
        delta_round, maintain, queue_pending,
    };
}

/// What only the Dynamics 365 connector can read: its connection strings (`Key=Value;…`), which
/// the CLI and the web import into the kind's settings; and the `Prefer` of its contacts read,
/// which the Dataverse benchmark replays.
pub mod dynamics {
    pub use deskbridge_connector_dynamics::connection_string::{
        ConnectionString, parse as parse_connection_string,
    };
    pub use deskbridge_connector_dynamics::read::contacts_prefer;
}
