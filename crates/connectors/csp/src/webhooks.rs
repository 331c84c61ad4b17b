//! Registering this instance's webhook receiver with Partner Center, with the partner admin's
//! sign-in of a CSP connection: register (or move) the URL with the subscription events, read the
//! registration, remove it, and ask for a test delivery.
//!
//! The registration is the partner tenant's (one per partner, whichever connection registers it);
//! the receiver (`deskbridge serve --partner-webhook-roots`) enqueues a licences job for every
//! connection that imports the event's customer tenant.

use std::sync::Arc;
use std::time::Duration;

use deskbridge_partner::{PartnerClient, WebhookRegistration};
use deskbridge_source::{MemoryRequests, RequestSink, SourceContext, SyncError};

use crate::log::Shared;
use crate::settings::CspSettings;
use crate::tenants::from_partner;

/// The events a desk wants: a subscription's quantity or term changed (documented:
/// `subscription-updated`; the others only where Partner Center lists them), and test deliveries.
pub const SUBSCRIPTION_EVENTS: &[&str] = &[
    "subscription-updated",
    "subscription-renewed",
    "subscription-created",
    "create-subscription",
    "update-subscription",
    "test-created",
];

/// What a registration call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStatus {
    /// The partner's registration, if any.
    pub registration: Option<WebhookRegistration>,
    /// The event names Partner Center can deliver.
    pub supported_events: Vec<String>,
}

/// A Partner Center client with the partner admin's sign-in of the CSP connection `name`.
async fn client(cx: &SourceContext, name: &str) -> Result<PartnerClient, SyncError> {
    let mut tx = cx.store.read().await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(name.into()))?;
    tx.commit().await?;
    let settings = CspSettings::of(&connection)?;
    let http = deskbridge_source::http_client(&connection.name)?;
    let tokens = crate::auth::tokens(&cx.store, &connection, &settings, &http, &cx.clock).await?;
    let partner = tokens.partner?;
    // These calls are the administrator's, not a run's: nothing records them.
    let sink: Arc<dyn RequestSink> = Arc::new(MemoryRequests::default());
    Shared::new(Default::default(), Default::default()).partner(
        &connection,
        &settings,
        &http,
        &cx.clock,
        partner,
        &sink,
    )
}

/// Registers `url` (or moves the registration there) for the [`SUBSCRIPTION_EVENTS`] Partner
/// Center supports.
pub async fn register_webhook(
    cx: &SourceContext,
    name: &str,
    url: &str,
) -> Result<WebhookRegistration, SyncError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| SyncError::InvalidSettings(format!("the webhook URL {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(SyncError::InvalidSettings(format!(
            "the webhook URL {url:?} must be https://…/webhooks/partner-center"
        )));
    }
    let client = client(cx, name).await?;
    let supported = client.webhook_events().await.map_err(|e| from_partner(&e))?;
    let events: Vec<&str> = SUBSCRIPTION_EVENTS
        .iter()
        .copied()
        .filter(|e| supported.iter().any(|s| s.eq_ignore_ascii_case(e)))
        .collect();
    if !events.iter().any(|e| *e != "test-created") {
        return Err(SyncError::InvalidSettings(format!(
            "Partner Center delivers none of the subscription events ({}); it lists: {}",
            SUBSCRIPTION_EVENTS.join(", "),
            supported.join(", ")
        )));
    }
    client
        .register_webhook(url, &events)
        .await
        .map_err(|e| from_partner(&e))
}

/// The partner's registration and the events Partner Center can deliver.
pub async fn webhook_status(cx: &SourceContext, name: &str) -> Result<WebhookStatus, SyncError> {
    let client = client(cx, name).await?;
    let registration = client
        .webhook_registration()
        .await
        .map_err(|e| from_partner(&e))?;
    let supported_events = client.webhook_events().await.map_err(|e| from_partner(&e))?;
    Ok(WebhookStatus {
        registration,
        supported_events,
    })
}

/// Removes the registration; `false` when there was none.
pub async fn unregister_webhook(cx: &SourceContext, name: &str) -> Result<bool, SyncError> {
    let client = client(cx, name).await?;
    if client
        .webhook_registration()
        .await
        .map_err(|e| from_partner(&e))?
        .is_none()
    {
        return Ok(false);
    }
    client.delete_webhook().await.map_err(|e| from_partner(&e))?;
    Ok(true)
}

/// Asks Partner Center for a test (`test-created`) delivery and waits up to `wait` for its
/// outcome; returns the correlation id and the last status (`completed`, `failed`, `inProgress`).
pub async fn send_test_webhook(
    cx: &SourceContext,
    name: &str,
    wait: Duration,
) -> Result<(String, String), SyncError> {
    let client = client(cx, name).await?;
    let id = client
        .send_validation_event()
        .await
        .map_err(|e| from_partner(&e))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let status = client
            .validation_event_status(&id)
            .await
            .map_err(|e| from_partner(&e))?;
        if !status.eq_ignore_ascii_case("inProgress") || tokio::time::Instant::now() >= deadline {
            return Ok((id, status));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
