//! Webhooks: registration (`/webhooks/v1/registration`), the supported events, validation
//! (test) events, and signed delivery. A delivery is a POST of the event's JSON with
//! `Authorization: Signature <base64 RSA-SHA256 of the body>`, `X-MS-Certificate-Url` (served at
//! `{base}/pc/certificates/webhook-signing.cer`, DER) and `X-MS-Signature-Algorithm: rsa-sha256`;
//! up to 10 attempts. The signing certificate is issued by a root generated at start-up
//! (`Emulator::webhook_root_pem`), so receivers can validate the chain.
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Method, StatusCode};
use jiff::Timestamp;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde::Serialize;
use serde_json::{Value, json};

use super::model::WebhookRegistration;
use super::*;

const ATTEMPTS: u32 = 10;
/// Validation events allowed per minute.
const VALIDATIONS_PER_MINUTE: usize = 2;

pub(crate) const EVENTS: &[&str] = &[
    "test-created",
    "subscription-updated",
    "usagerecords-thresholdExceeded",
    "referral-created",
    "referral-updated",
    "invoice-ready",
    "dap-admin-relationship-approved",
    "dap-admin-relationship-terminated",
    "granular-admin-relationship-approved",
    "granular-admin-access-assignment-activated",
    "create-transfer",
];

/// The key and certificate deliveries are signed with, and the root that issued it.
pub(crate) struct WebhookKeys {
    encoding: jsonwebtoken::EncodingKey,
    pub cert_der: Vec<u8>,
    pub root_pem: String,
}

fn crypto(what: &str, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Crypto(format!("{what}: {e}"))
}

impl WebhookKeys {
    pub(crate) fn generate() -> Result<Self, EmulatorError> {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| crypto("root key", e))?;
        let mut root = CertificateParams::new(Vec::<String>::new()).map_err(|e| crypto("root", e))?;
        root.distinguished_name
            .push(DnType::CommonName, "deskbridge emulator notifications root");
        root.distinguished_name
            .push(DnType::OrganizationName, "deskbridge emulator");
        root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = rcgen::date_time_ymd(2020, 1, 1);
        root.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let root_cert = root
            .self_signed(&root_key)
            .map_err(|e| crypto("root certificate", e))?;
        let issuer = Issuer::new(root, root_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| crypto("signing key", e))?;
        let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(|e| crypto("certificate", e))?;
        leaf.distinguished_name
            .push(DnType::CommonName, "emulated partner notifications");
        // What receivers check on the real certificate's subject.
        leaf.distinguished_name
            .push(DnType::OrganizationName, "Microsoft Corporation");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = leaf
            .signed_by(&key, &issuer)
            .map_err(|e| crypto("certificate", e))?;
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())
            .map_err(|e| crypto("signing key", e))?;
        Ok(Self {
            encoding,
            cert_der: cert.der().as_ref().to_vec(),
            root_pem: root_cert.pem(),
        })
    }

    /// Standard base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of `body`.
    pub(crate) fn sign(&self, body: &[u8]) -> Result<String, EmulatorError> {
        let url_safe = jsonwebtoken::crypto::sign(body, &self.encoding, jsonwebtoken::Algorithm::RS256)
            .map_err(|e| crypto("signing", e))?;
        let raw = URL_SAFE_NO_PAD
            .decode(url_safe)
            .map_err(|e| crypto("signature", e))?;
        Ok(STANDARD.encode(raw))
    }
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub name: String,
    pub resource_name: String,
    pub resource_uri: String,
    pub date: Timestamp,
    /// Set for validation (test) events.
    pub correlation_id: Option<String>,
}

impl Event {
    pub(crate) fn new(name: &str, resource_name: &str, resource_uri: String, date: Timestamp) -> Self {
        Self {
            name: name.to_owned(),
            resource_name: resource_name.to_owned(),
            resource_uri,
            date,
            correlation_id: None,
        }
    }

    fn body(&self) -> Vec<u8> {
        // Up to 7 fractional digits and a `+00:00` offset, as deliveries carry them.
        let date = format!(
            "{}.{:07}+00:00",
            self.date.strftime("%Y-%m-%dT%H:%M:%S"),
            self.date.subsec_nanosecond() / 100
        );
        serde_json::to_vec(&json!({
            "EventName": self.name,
            "ResourceUri": self.resource_uri,
            "ResourceName": self.resource_name,
            "AuditUri": format!("https://api.partnercenter.microsoft.com/auditactivity/v1/auditrecords/{}", uuid::Uuid::new_v4()),
            "ResourceChangeUtcDate": date,
        }))
        .unwrap_or_default()
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    pub event_name: String,
    pub correlation_id: Option<String>,
    pub url: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub time: Timestamp,
}

#[derive(Debug, Default)]
pub(crate) struct WebhookLog {
    pub attempts: Mutex<Vec<DeliveryAttempt>>,
    validations: Mutex<Vec<Timestamp>>,
}

/// Delivers an event to the registered URL in the background (if registered for it).
pub(crate) fn deliver(state: Arc<AppState>, event: Event) {
    let registration = {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        world.partner_center.webhook.clone()
    };
    let Some(registration) = registration else { return };
    let wanted = event.correlation_id.is_some()
        || registration
            .webhook_events
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&event.name));
    if !wanted {
        return;
    }
    tokio::spawn(async move {
        let body = event.body();
        let signature = match state.partner.keys.sign(&body) {
            Ok(s) => s,
            Err(_) => return,
        };
        let cert_url = format!("{}/pc/certificates/webhook-signing.cer", state.base_url);
        for attempt in 1..=ATTEMPTS {
            let sent = state
                .partner
                .http
                .post(&registration.webhook_url)
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Authorization", format!("Signature {signature}"))
                .header("X-MS-Certificate-Url", &cert_url)
                .header("X-MS-Signature-Algorithm", "rsa-sha256")
                .body(body.clone())
                .send()
                .await;
            let (status, error) = match sent {
                Ok(r) => (Some(r.status().as_u16()), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            lock(&state.partner.webhooks.attempts).push(DeliveryAttempt {
                event_name: event.name.clone(),
                correlation_id: event.correlation_id.clone(),
                url: registration.webhook_url.clone(),
                attempt,
                status,
                error,
                time: state.clock.now(),
            });
            if ok {
                return;
            }
            let pause = lock(&state.partner.faults).delivery_retry_ms;
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    });
}

fn registration_json(r: &WebhookRegistration) -> Value {
    json!({"SubscriberId": r.subscriber_id, "WebhookUrl": r.webhook_url, "WebhookEvents": r.webhook_events})
}

fn parse_registration(ctx: &Ctx<'_>) -> PcResult<(String, Vec<String>)> {
    let body: Value = serde_json::from_slice(ctx.body)
        .map_err(|e| bad_request(format!("The request body is not valid JSON: {e}")))?;
    let field = |name: &str| {
        body.as_object()
            .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.clone())
    };
    let url = field("WebhookUrl")
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| bad_request("WebhookUrl is required."))?;
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {}
        _ => {
            return Err(bad_request(format!(
                "WebhookUrl {url} is not an absolute http(s) URL."
            )));
        }
    }
    let events: Vec<String> = field("WebhookEvents")
        .and_then(|v| v.as_array().cloned())
        .ok_or_else(|| bad_request("WebhookEvents is required."))?
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad_request("WebhookEvents must be strings."))
        })
        .collect::<PcResult<_>>()?;
    if events.is_empty() {
        return Err(bad_request("WebhookEvents must name at least one event."));
    }
    if let Some(unknown) = events
        .iter()
        .find(|e| !EVENTS.iter().any(|k| k.eq_ignore_ascii_case(e)))
    {
        return Err(bad_request(format!("Unknown webhook event {unknown}.")));
    }
    Ok((url, events))
}

pub(crate) fn route(ctx: &mut Ctx<'_>, rest: &[&str]) -> PcResult<Reply> {
    let method = ctx.method.clone();
    match (rest, &method) {
        ([], &Method::GET) => {
            let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
            let r = world
                .partner_center
                .webhook
                .as_ref()
                .ok_or_else(|| not_found("The webhook registration"))?;
            Ok(Reply::ok(registration_json(r)))
        }
        ([], &Method::POST) | ([], &Method::PUT) => {
            let (url, events) = parse_registration(ctx)?;
            let mut world = ctx.state.world.write().unwrap_or_else(PoisonError::into_inner);
            let existing = world.partner_center.webhook.clone();
            let subscriber_id = match (&existing, method == Method::POST) {
                (Some(_), true) => {
                    return Err(pc_err(
                        StatusCode::CONFLICT,
                        2002,
                        "A webhook registration exists: update it with PUT.",
                    ));
                }
                (None, false) => return Err(not_found("The webhook registration")),
                (Some(r), false) => r.subscriber_id.clone(),
                (None, true) => ctx.caller.tenant_id.clone(),
            };
            let r = WebhookRegistration {
                subscriber_id,
                webhook_url: url,
                webhook_events: events,
            };
            world.partner_center.webhook = Some(r.clone());
            Ok(Reply::ok(registration_json(&r)))
        }
        ([], &Method::DELETE) => {
            let mut world = ctx.state.world.write().unwrap_or_else(PoisonError::into_inner);
            world
                .partner_center
                .webhook
                .take()
                .ok_or_else(|| not_found("The webhook registration"))?;
            Ok(Reply {
                status: StatusCode::NO_CONTENT,
                payload: Payload::Empty,
                headers: vec![],
            })
        }
        (["events"], &Method::GET) => Ok(Reply::ok(json!(EVENTS))),
        (["validationEvents"], &Method::POST) => {
            let now = ctx.now();
            {
                let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
                if world.partner_center.webhook.is_none() {
                    return Err(not_found("The webhook registration"));
                }
            }
            {
                let mut times = lock(&ctx.state.partner.webhooks.validations);
                times.retain(|t| now.duration_since(*t).as_secs() < 60);
                if times.len() >= VALIDATIONS_PER_MINUTE {
                    let wait = times
                        .first()
                        .map_or(60, |t| 60 - now.duration_since(*t).as_secs().clamp(0, 59));
                    return Ok(Reply {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        payload: Payload::Json(json!({"statusCode": 429,
                            "message": format!("Rate limit is exceeded. Try again in {wait} seconds.")})),
                        headers: vec![("Retry-After".into(), wait.to_string())],
                    });
                }
                times.push(now);
            }
            let correlation = uuid::Uuid::new_v4().to_string();
            let mut event = Event::new(
                "test-created",
                "test",
                format!(
                    "{}/webhooks/v1/registration/validationEvents/{correlation}",
                    ctx.pc_url()
                ),
                now,
            );
            event.correlation_id = Some(correlation.clone());
            ctx.events.push(event);
            Ok(Reply::ok(json!({"correlationId": correlation})))
        }
        (["validationEvents", id], &Method::GET) => {
            let attempts: Vec<DeliveryAttempt> = lock(&ctx.state.partner.webhooks.attempts)
                .iter()
                .filter(|a| a.correlation_id.as_deref() == Some(*id))
                .cloned()
                .collect();
            let asked = ctx.now();
            let Some(last) = attempts.last() else {
                return Ok(Reply::ok(
                    json!({"partnerId": ctx.caller.tenant_id, "status": "inProgress", "events": []}),
                ));
            };
            let ok = last.status.is_some_and(|s| (200..300).contains(&s));
            let status = if ok {
                "completed"
            } else if last.attempt >= ATTEMPTS {
                "failed"
            } else {
                "inProgress"
            };
            let _ = asked;
            Ok(Reply::ok(json!({
                "partnerId": ctx.caller.tenant_id,
                "status": status,
                "events": [{
                    "correlationId": id,
                    "eventName": last.event_name,
                    "status": status,
                    "resultCode": last.status.map(|s| s.to_string()),
                    "resultMessage": last.error.clone().unwrap_or_default(),
                    "responseUri": last.url,
                    "responseTime": customers::iso(last.time),
                }],
            })))
        }
        _ => Err(pc_err(
            StatusCode::METHOD_NOT_ALLOWED,
            2000,
            format!(
                "{method} is not supported on /webhooks/v1/registration/{}.",
                rest.join("/")
            ),
        )),
    }
}
