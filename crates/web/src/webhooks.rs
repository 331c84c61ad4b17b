//! `POST /webhooks/partner-center`: Partner Center's event deliveries.
//!
//! Partner Center cannot sign in, so the route is public in the access table; instead every
//! delivery is verified before it is acted on ([`deskbridge_partner::WebhookVerifier`]): the
//! certificate URL's host is an allowed one, the certificate chains to a configured root and
//! names the required organisation, the signature covers the exact body, and the event's date
//! lies in the accepted window. A delivery is acted on once: its keys (signature; event name,
//! resource and date) are recorded in the store in the transaction that enqueues its jobs.
//!
//! A verified event naming a customer (`…/customers/{id}/…`) enqueues one `licences` job per
//! CSP connection importing that customer tenant, for that tenant only; a pending one absorbs
//! further events. Nothing runs inline: the answer is immediate, and identical whether or not
//! any connection knows the customer, so a caller learns nothing about other customers.
//!
//! Off unless configured (`serve --partner-webhook-roots`): then the route answers 404, as a
//! route that does not exist would, with a message saying how to turn it on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use deskbridge_core::ErrorCode;
use deskbridge_partner::{WebhookError, WebhookEvent, WebhookVerifier, fetch_certificate};
use deskbridge_store::{NewJob, WriteContext};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::AppState;
use crate::error::ApiError;

/// The connection kind whose tenants webhook events name.
const CSP_KIND: &str = "csp";
/// The job a subscription event enqueues: licences and subscriptions of one tenant, no users.
const LICENCES: &str = "licences";
/// How long a fetched certificate is reused (Microsoft rotates it rarely; every delivery is still
/// verified against it).
const CERTIFICATE_TTL: SignedDuration = SignedDuration::from_hours(1);

/// How this instance receives Partner Center webhooks.
#[derive(Debug)]
pub struct PartnerWebhooks {
    verifier: WebhookVerifier,
    http: reqwest::Client,
    /// Certificates by URL with when they were fetched.
    certificates: Mutex<HashMap<Url, (Vec<u8>, Timestamp)>>,
}

impl PartnerWebhooks {
    /// Receives deliveries signed by certificates chaining to `roots_pem`, fetched from
    /// `certificate_hosts` (an exact host, or a suffix starting with `.`; empty: Microsoft's
    /// domains). `allow_http` accepts `http://` certificate URLs: an emulator only.
    pub fn new(
        roots_pem: &str,
        certificate_hosts: &[String],
        allow_http: bool,
    ) -> Result<Self, WebhookError> {
        let mut verifier = WebhookVerifier::new(roots_pem)?;
        if !certificate_hosts.is_empty() {
            verifier.allowed_certificate_hosts = certificate_hosts.to_vec();
        }
        verifier.allow_http_certificate_url = allow_http;
        // No redirects: a certificate host could otherwise send the fetch to any other host.
        let http = reqwest::Client::builder()
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| WebhookError::Fetch(e.to_string()))?;
        Ok(Self {
            verifier,
            http,
            certificates: Mutex::new(HashMap::new()),
        })
    }

    async fn certificate(&self, url: &Url, now: Timestamp) -> Result<Vec<u8>, WebhookError> {
        let cached = self
            .certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(url)
            .filter(|(_, at)| now.duration_since(*at) < CERTIFICATE_TTL)
            .map(|(der, _)| der.clone());
        if let Some(der) = cached {
            return Ok(der);
        }
        let der = fetch_certificate(&self.http, url).await?;
        let mut certificates = self
            .certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A handful of URLs at most; a flood of distinct allowed URLs cannot grow it without bound.
        if certificates.len() > 16 {
            certificates.clear();
        }
        certificates.insert(url.clone(), (der.clone(), now));
        Ok(der)
    }

    /// How far back a delivery's keys must be remembered: older events are refused as stale.
    fn memory(&self) -> SignedDuration {
        let age = SignedDuration::try_from(self.verifier.max_event_age).unwrap_or(SignedDuration::MAX);
        let skew = SignedDuration::try_from(self.verifier.max_clock_skew).unwrap_or(SignedDuration::ZERO);
        age.saturating_add(skew)
    }
}

fn refused(e: &WebhookError) -> ApiError {
    let (code, remedy) = match e {
        // The certificate host may be down: a 5xx makes Partner Center deliver again later.
        WebhookError::Fetch(_) => (
            ErrorCode::UpstreamUnavailable,
            "Partner Center delivers again; if this persists, check that deskbridge can reach the certificate host.",
        ),
        WebhookError::Body(_) => (
            ErrorCode::InvalidInput,
            "Send a Partner Center event: a JSON object with EventName, ResourceUri and ResourceChangeUtcDate.",
        ),
        _ => (
            ErrorCode::Unauthenticated,
            "Only deliveries signed by Partner Center are accepted; if these are genuine, check the \
             instance's --partner-webhook-roots and --partner-webhook-certificate-host.",
        ),
    };
    ApiError::new(code, format!("the delivery was refused: {e}")).with_remedy(remedy)
}

/// The customer tenant an event's `ResourceUri` names (`…/customers/{id}[/…]`).
pub fn customer_of(event: &WebhookEvent) -> Option<String> {
    let uri = event.resource_uri.as_deref()?;
    let path = Url::parse(uri).map_or_else(|_| uri.to_owned(), |u| u.path().to_owned());
    let mut segments = path.split('/');
    segments.find(|s| s.eq_ignore_ascii_case("customers"))?;
    let id = segments.next()?.trim();
    // Tenant ids are GUIDs; anything else cannot match a connection's tenant.
    deskbridge_source::settings::is_guid(id).then(|| id.to_ascii_lowercase())
}

fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(hash.finalize())
}

/// The handler (see the module documentation).
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &headers, &body).await {
        Ok(()) => Json(json!({ "accepted": true })).into_response(),
        Err(e) => {
            tracing::info!(code = e.code.as_str(), message = %e.message, "a Partner Center webhook delivery was refused");
            e.into_response()
        }
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(webhooks) = &state.partner_webhooks else {
        return Err(ApiError::not_found(
            "Partner Center webhooks are not enabled on this instance",
        )
        .with_remedy("Start serve with --partner-webhook-roots FILE (the roots Partner Center's certificate chains to)."));
    };
    // Cheap checks first: garbage is refused before any certificate is fetched.
    let shape: Value =
        serde_json::from_slice(body).map_err(|e| refused(&WebhookError::Body(format!("not JSON: {e}"))))?;
    if !shape.get("EventName").is_some_and(Value::is_string) {
        return Err(refused(&WebhookError::Body("no EventName".into())));
    }
    let now = state.clock.now();
    let url = webhooks
        .verifier
        .certificate_url(headers)
        .map_err(|e| refused(&e))?;
    let certificate = webhooks.certificate(&url, now).await.map_err(|e| refused(&e))?;
    let event = webhooks
        .verifier
        .verify(headers, body, &certificate, now)
        .map_err(|e| refused(&e))?;
    // The window is what bounds replays once the remembered keys are pruned: an undated event
    // could be replayed forever.
    let Some(date) = event.resource_change_utc_date.as_deref() else {
        return Err(refused(&WebhookError::Body("no ResourceChangeUtcDate".into())));
    };
    let signature = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let keys = [
        format!("sig:{}", digest(&[signature.trim()])),
        format!(
            "event:{}",
            digest(&[
                &event.event_name,
                event.resource_uri.as_deref().unwrap_or_default(),
                date
            ])
        ),
    ];
    let customer = customer_of(&event);
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    if !tx.record_webhook_delivery(&keys, webhooks.memory()).await? {
        return Err(
            ApiError::conflict("this delivery was already received; it is acted on once")
                .with_remedy("Nothing to do: the first delivery was accepted."),
        );
    }
    let mut enqueued = 0;
    if let Some(customer) = &customer {
        for connection in tx.connections().await? {
            // A connection that does not run on this instance would only fail its job.
            let here = connection
                .enabled_instances
                .split(',')
                .any(|i| i.trim() == state.sync_options.instance);
            if connection.kind != CSP_KIND || !here {
                continue;
            }
            let Some(tenant) = imported_tenant(&connection.config, customer) else {
                continue;
            };
            let job = NewJob {
                connection_id: connection.id,
                entity: LICENCES.into(),
                full: false,
                origin: "webhook".into(),
                schedule_id: None,
                due_at: None,
                tenant_id: Some(tenant),
            };
            // `None`: a licences job for this tenant is already pending and will read the change.
            if tx.enqueue_job(&job).await?.is_some() {
                enqueued += 1;
            }
        }
    }
    tx.commit().await?;
    tracing::info!(
        event = %event.event_name,
        customer = customer.as_deref().unwrap_or("-"),
        jobs = enqueued,
        "accepted a Partner Center webhook delivery"
    );
    Ok(())
}

/// The connection's tenant entry for `customer` (as the connection spells it) when its users are
/// imported to a desk customer; a tenant set to "do not import" gets no job.
fn imported_tenant(config: &Value, customer: &str) -> Option<String> {
    config
        .get("tenants")?
        .as_array()?
        .iter()
        .find(|t| {
            t.get("tenant_id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.eq_ignore_ascii_case(customer))
                && t.get("customer_id").is_some_and(|c| !c.is_null())
        })
        .and_then(|t| t.get("tenant_id")?.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uri: &str) -> WebhookEvent {
        WebhookEvent {
            event_name: "subscription-updated".into(),
            resource_uri: Some(uri.into()),
            resource_name: None,
            audit_uri: None,
            resource_change_utc_date: None,
        }
    }

    #[test]
    fn the_customer_comes_from_the_resource_uri() {
        let id = "0a1b2c3d-0000-4000-8000-00000000000A";
        let cases = [
            (
                format!("https://api.partnercenter.microsoft.com/webhooks/v1/customers/{id}/subscriptions/9"),
                true,
            ),
            (format!("/v1/customers/{id}"), true),
            (
                "https://x/webhooks/v1/customers/not-a-guid/subscriptions/9".to_owned(),
                false,
            ),
            ("https://x/webhooks/v1/referrals/1".to_owned(), false),
        ];
        for (uri, found) in cases {
            let expected = found.then(|| id.to_ascii_lowercase());
            assert_eq!(customer_of(&event(&uri)), expected, "{uri}");
        }
    }

    #[test]
    fn a_tenant_not_imported_gets_no_job() {
        let config = json!({"tenants": [
            {"tenant_id": "A", "customer_id": 4},
            {"tenant_id": "B", "customer_id": null},
        ]});
        assert_eq!(imported_tenant(&config, "a").as_deref(), Some("A"));
        assert_eq!(imported_tenant(&config, "b"), None);
        assert_eq!(imported_tenant(&json!({}), "a"), None);
    }
}
