//! Partner Center's event deliveries, as the web receives them: verified here, routed there.
//!
//! Every delivery is verified before anything acts on it ([`deskbridge_partner::WebhookVerifier`]):
//! the certificate URL's host is an allowed one, the certificate chains to a configured root and
//! names the required organisation, the signature covers the exact body, and the event's date lies
//! in the accepted window. What comes out is a [`Delivery`]: the keys that make it acted on once,
//! how long they must be remembered, and the customer tenant it names — which CSP connections'
//! tenants get a licences job is [`licences_tenant`]'s to say. The web owns the route, the store
//! and the jobs; it never speaks Partner Center.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use deskbridge_partner::{WebhookError, WebhookEvent, WebhookVerifier, fetch_certificate};
use deskbridge_store::Connection;
use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::CSP_KIND;

/// How long a fetched certificate is reused (Microsoft rotates it rarely; every delivery is still
/// verified against it).
const CERTIFICATE_TTL: SignedDuration = SignedDuration::from_hours(1);

/// A verified delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub event_name: String,
    /// Its signature's and its event's keys: a delivery with either already recorded is a replay.
    pub keys: Vec<String>,
    /// How long the keys must be remembered: older events are refused as stale anyway.
    pub remember_for: SignedDuration,
    /// The customer tenant its `ResourceUri` names (lower-cased), if any.
    pub customer: Option<String>,
}

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The certificate host could not be reached: Partner Center should deliver again later.
    Unreachable,
    /// Not a Partner Center event (not JSON, no event name, no date).
    Malformed,
    /// Not signed by Partner Center as configured.
    Unauthenticated,
}

/// A refused delivery: what kind, and the verifier's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

impl From<WebhookError> for Refusal {
    fn from(e: WebhookError) -> Self {
        let kind = match e {
            WebhookError::Fetch(_) => RefusalKind::Unreachable,
            WebhookError::Body(_) => RefusalKind::Malformed,
            _ => RefusalKind::Unauthenticated,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

/// How this instance verifies Partner Center webhooks.
#[derive(Debug)]
pub struct PartnerWebhooks {
    verifier: WebhookVerifier,
    http: reqwest::Client,
    /// Certificates by URL with when they were fetched.
    certificates: Mutex<HashMap<Url, (Vec<u8>, Timestamp)>>,
}

impl PartnerWebhooks {
    /// Verifies deliveries signed by certificates chaining to `roots_pem`, fetched from
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

    /// Verifies one delivery (cheap checks first: garbage is refused before any certificate is
    /// fetched).
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Delivery, Refusal> {
        let shape: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::Body(format!("not JSON: {e}")))?;
        if !shape.get("EventName").is_some_and(Value::is_string) {
            return Err(WebhookError::Body("no EventName".into()).into());
        }
        let url = self.verifier.certificate_url(headers)?;
        let certificate = self.certificate(&url, now).await?;
        let event = self.verifier.verify(headers, body, &certificate, now)?;
        // The window is what bounds replays once the remembered keys are pruned: an undated event
        // could be replayed forever.
        let Some(date) = event.resource_change_utc_date.as_deref() else {
            return Err(WebhookError::Body("no ResourceChangeUtcDate".into()).into());
        };
        let signature = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let keys = vec![
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
        Ok(Delivery {
            customer: customer_of(&event),
            event_name: event.event_name,
            keys,
            remember_for: self.memory(),
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

/// The customer tenant an event's `ResourceUri` names (`…/customers/{id}[/…]`).
fn customer_of(event: &WebhookEvent) -> Option<String> {
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

/// The tenant (as the connection spells it) whose licences a delivery naming `customer` should
/// refresh through `connection`: a CSP connection whose tenant entry for that customer is imported
/// to a desk customer. Other kinds, and a tenant set to "do not import", get none.
pub fn licences_tenant(connection: &Connection, customer: &str) -> Option<String> {
    if connection.kind != CSP_KIND {
        return None;
    }
    connection
        .config
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
    use serde_json::json;

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
        let connection = |kind: &str, config: Value| Connection {
            id: deskbridge_core::ConnectionId(1),
            name: "c".into(),
            kind: kind.into(),
            config,
            enabled_instances: "production".into(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let config = json!({"tenants": [
            {"tenant_id": "A", "customer_id": 4},
            {"tenant_id": "B", "customer_id": null},
        ]});
        assert_eq!(
            licences_tenant(&connection(CSP_KIND, config.clone()), "a").as_deref(),
            Some("A")
        );
        assert_eq!(licences_tenant(&connection(CSP_KIND, config.clone()), "b"), None);
        assert_eq!(licences_tenant(&connection(CSP_KIND, json!({})), "a"), None);
        assert_eq!(licences_tenant(&connection("entra", config), "a"), None);
    }
}
