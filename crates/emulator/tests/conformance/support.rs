use std::sync::Arc;

use deskbridge_core::ManualClock;
use deskbridge_emulator::{AppSummary, Emulator, EmulatorConfig, GenerateOptions, Summary, World};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const START: &str = "2026-11-01T00:00:00Z";

pub struct Env {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub summary: Summary,
    pub clock: Arc<ManualClock>,
}

/// A small world: tenant 0 premium (60 users), tenant 1 not premium (40 users), plus the partner.
pub async fn start() -> Env {
    start_with(|_| {}).await
}

pub async fn start_with(configure: impl FnOnce(&mut EmulatorConfig)) -> Env {
    let mut world = World::generate(&GenerateOptions {
        seed: 7,
        tenants: 2,
        users_per_tenant: Some(60),
        ..GenerateOptions::default()
    })
    .unwrap();
    world.tenants[0].premium = true;
    world.tenants[1].premium = false;
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let mut config = EmulatorConfig::new(world);
    config.clock = clock.clone();
    configure(&mut config);
    let emu = Emulator::start(config).await.unwrap();
    let summary = emu.summary();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env {
        emu,
        http,
        summary,
        clock,
    }
}

impl Env {
    pub fn app(&self, kind: &str) -> &AppSummary {
        self.summary.apps.iter().find(|a| a.kind == kind).unwrap()
    }

    pub fn tenant(&self, i: usize) -> String {
        self.summary.tenants[i].id.clone()
    }

    pub fn partner(&self) -> String {
        self.summary.partner_tenant_id.clone().unwrap()
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub fn now(&self) -> Timestamp {
        use deskbridge_core::Clock;
        self.clock.now()
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.emu.base_url())
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
        let resp = self.http.post(url).form(form).send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap())
    }

    /// An app-only Graph token obtained over HTTP with the app's secret.
    pub async fn token(&self, kind: &str, tenant: &str) -> String {
        let app = self.app(kind);
        let (status, _, body) = self
            .post_form(
                &self.token_url(tenant),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &app.client_id),
                    ("client_secret", app.client_secret.as_deref().unwrap()),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn main_token(&self, tenant_index: usize) -> String {
        self.token("multi_tenant_secret", &self.tenant(tenant_index))
            .await
    }

    pub fn graph(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/v1.0{path}", self.emu.base_url())
        }
    }

    pub async fn get_with(
        &self,
        token: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.get(self.graph(path)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, HeaderMap, Value) {
        self.get_with(token, path, &[]).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
        let resp = self
            .http
            .post(self.graph(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Calls the admin API; returns status and JSON (Null for empty bodies).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.emu.admin_url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Follows nextLinks to the end; returns all items and the final page.
    pub async fn collect(&self, token: &str, first: &str) -> (Vec<Value>, Value) {
        let mut items = Vec::new();
        let mut url = first.to_owned();
        loop {
            let (status, _, body) = self.get(token, &url).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            match body["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return (items, body),
            }
        }
    }

    pub async fn stop(self) {
        self.emu.shutdown().await;
    }
}

/// Graph's error envelope: returns (code, message) after checking innerError's shape.
pub fn graph_error(body: &Value) -> (String, String) {
    let e = &body["error"];
    let inner = &e["innerError"];
    assert!(inner["date"].is_string(), "innerError.date missing in {body}");
    assert!(
        inner["request-id"].is_string(),
        "innerError.request-id missing in {body}"
    );
    (
        e["code"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

/// Entra's error envelope: returns (error, AADSTS code) after checking every field's shape.
pub fn aad_error(body: &Value) -> (String, u64) {
    let code = body["error_codes"][0].as_u64().unwrap();
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(
        description.contains("\r\nTrace ID: ") && description.contains("\r\nCorrelation ID: "),
        "{description}"
    );
    assert!(description.contains("\r\nTimestamp: "), "{description}");
    let ts = body["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20, "timestamp {ts}");
    assert_eq!(&ts[10..11], " ");
    assert!(ts.ends_with('Z'));
    assert!(body["trace_id"].as_str().unwrap().len() == 36);
    assert!(body["correlation_id"].as_str().unwrap().len() == 36);
    assert!(
        body["error_uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("code={code}"))
    );
    (body["error"].as_str().unwrap().to_owned(), code)
}

/// Decodes a JWT's claims without verifying it.
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
