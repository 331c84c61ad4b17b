use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deskbridge_core::SharedClock;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::{AuthError, Authority, ClientCredential, MicrosoftAuthError};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A bearer token and the instant it stops being valid. Debug output never shows the token.
#[derive(Clone)]
pub struct AccessToken {
    token: SecretString,
    expires_at: Timestamp,
}

impl AccessToken {
    pub fn new(token: SecretString, expires_at: Timestamp) -> Self {
        AccessToken { token, expires_at }
    }

    /// The raw token, for the `Authorization: Bearer` header only.
    pub fn bearer(&self) -> &str {
        self.token.expose_secret()
    }

    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }

    /// Whether the token is still good for at least `margin` at `now`.
    pub fn is_fresh(&self, now: Timestamp, margin: SignedDuration) -> bool {
        now.saturating_add(margin)
            .is_ok_and(|deadline| deadline < self.expires_at)
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A successful token endpoint answer.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    /// Present for delegated flows with `offline_access`; Microsoft rotates it on every refresh.
    pub refresh_token: Option<SecretString>,
    pub scope: Option<String>,
    pub id_token: Option<SecretString>,
}

/// The identity of a registered application and how it authenticates.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub client_id: String,
    /// `None` for public clients (delegated sign-in without a secret).
    pub credential: Option<ClientCredential>,
}

/// Talks to `{authority}/{tenant}/oauth2/v2.0/token`. Stateless apart from the HTTP connection pool;
/// caching lives in [`crate::TokenCache`].
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    authority: Authority,
    clock: SharedClock,
}

impl TokenClient {
    pub fn new(http: reqwest::Client, authority: Authority, clock: SharedClock) -> Self {
        TokenClient {
            http,
            authority,
            clock,
        }
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Client credentials grant (app-only). `scope` is `{resource}/.default`.
    pub async fn client_credentials(
        &self,
        tenant: &str,
        app: &AppCredentials,
        scope: &str,
    ) -> Result<TokenResponse, AuthError> {
        if app.credential.is_none() {
            return Err(AuthError::Configuration(
                "client credentials need a secret or a certificate".into(),
            ));
        }
        let params = vec![
            ("grant_type", "client_credentials".to_string()),
            ("scope", scope.to_string()),
        ];
        self.request(tenant, app, params).await
    }

    /// Redeems an authorization code (with its PKCE verifier) for tokens.
    pub async fn redeem_code(
        &self,
        tenant: &str,
        app: &AppCredentials,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
        scope: &str,
    ) -> Result<TokenResponse, AuthError> {
        let params = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.expose_secret().to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", code_verifier.expose_secret().to_string()),
            ("scope", scope.to_string()),
        ];
        self.request(tenant, app, params).await
    }

    /// Refresh token grant. The response carries a new refresh token that replaces the old one.
    pub async fn refresh(
        &self,
        tenant: &str,
        app: &AppCredentials,
        refresh_token: &SecretString,
        scope: &str,
    ) -> Result<TokenResponse, AuthError> {
        let params = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.expose_secret().to_string()),
            ("scope", scope.to_string()),
        ];
        self.request(tenant, app, params).await
    }

    async fn request(
        &self,
        tenant: &str,
        app: &AppCredentials,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, AuthError> {
        let endpoint = self.authority.token_endpoint(tenant)?;
        let url = endpoint.to_string();
        let sent_at = self.clock.now();
        params.push(("client_id", app.client_id.clone()));
        let mut basic_auth = None;
        match &app.credential {
            None => {}
            Some(ClientCredential::Secret(secret)) => {
                params.push(("client_secret", secret.expose_secret().into()))
            }
            Some(ClientCredential::SecretBasic(secret)) => {
                // RFC 6749 §2.3.1: both parts are form-encoded before being joined and base64-encoded.
                let user = form_encode(&app.client_id);
                let password = form_encode(secret.expose_secret());
                basic_auth = Some(format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))));
            }
            Some(ClientCredential::Certificate(certificate)) => {
                let assertion = certificate.assertion(&app.client_id, &url, sent_at)?;
                params.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_string()));
                params.push(("client_assertion", assertion));
            }
        }
        let mut request = self.http.post(endpoint).form(&params);
        if let Some(header) = basic_auth {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request.send().await.map_err(|e| AuthError::Transport {
            url: deskbridge_core::redact::url(&url),
            reason: describe_transport_error(&e),
        })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| AuthError::Transport {
            url: deskbridge_core::redact::url(&url),
            reason: describe_transport_error(&e),
        })?;
        if (200..300).contains(&status) {
            parse_success(&url, &body, sent_at)
        } else {
            Err(parse_failure(&url, status, &body))
        }
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// reqwest's messages name the URL but never the body, so they are safe to show.
fn describe_transport_error(error: &reqwest::Error) -> String {
    deskbridge_core::transport_words(error)
}

fn parse_success(url: &str, body: &[u8], sent_at: Timestamp) -> Result<TokenResponse, AuthError> {
    // The body holds tokens: errors below describe it, never quote it.
    let malformed = |reason: &str| AuthError::MalformedResponse {
        url: deskbridge_core::redact::url(url),
        reason: reason.to_string(),
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
    let access_token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no access_token"))?;
    if let Some(kind) = value.get("token_type").and_then(Value::as_str)
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(malformed(&format!("token_type is {kind:?}, expected Bearer")));
    }
    // v2 sends integers; the v1 endpoint sends strings. Accept both.
    let expires_in = match value.get("expires_in") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .filter(|seconds| *seconds > 0)
    .ok_or_else(|| malformed("expires_in is missing or not a positive number of seconds"))?;
    let expires_at = sent_at
        .checked_add(SignedDuration::from_secs(expires_in))
        .map_err(|_| malformed("expires_in is out of range"))?;
    let secret = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_string()))
    };
    Ok(TokenResponse {
        access_token: AccessToken::new(access_token.to_string().into(), expires_at),
        refresh_token: secret("refresh_token"),
        scope: value.get("scope").and_then(Value::as_str).map(str::to_string),
        id_token: secret("id_token"),
    })
}

fn parse_failure(url: &str, status: u16, body: &[u8]) -> AuthError {
    match serde_json::from_slice::<MicrosoftAuthError>(body) {
        Ok(mut error) => {
            error.status = status;
            AuthError::Microsoft(Box::new(error))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.chars().take(200).collect();
            AuthError::UnexpectedResponse {
                url: deskbridge_core::redact::url(url),
                status,
                body_excerpt: excerpt,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token errors redact URLs with the shared rules (deskbridge_core::redact).
    #[tokio::test]
    async fn token_errors_redact_credentials_in_urls() {
        let url =
            "http://127.0.0.1:1/t/oauth2/v2.0/token?client_secret=s3cr3t&refresh_token=r3fr3sh&code=c0de";
        let refused = reqwest::Client::new().post(url).send().await.unwrap_err();
        let transport = AuthError::Transport {
            url: deskbridge_core::redact::url(url),
            reason: describe_transport_error(&refused),
        }
        .to_string();
        let malformed = parse_success(url, b"{}", at("2026-01-01T00:00:00Z"))
            .unwrap_err()
            .to_string();
        let unexpected = parse_failure(url, 502, b"<html>Bad Gateway</html>").to_string();
        for text in [&transport, &malformed, &unexpected] {
            for secret in ["s3cr3t", "r3fr3sh", "c0de"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains("client_secret=REDACTED"), "{text}");
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn success_accepts_numbers_and_strings_for_expires_in() {
        let sent = at("2026-01-01T00:00:00Z");
        let v2 = parse_success(
            "u",
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"a"}"#,
            sent,
        )
        .unwrap();
        assert_eq!(v2.access_token.expires_at(), at("2026-01-01T00:59:59Z"));
        let v1 = parse_success(
            "u",
            br#"{"token_type":"Bearer","expires_in":"3600","access_token":"a"}"#,
            sent,
        )
        .unwrap();
        assert_eq!(v1.access_token.expires_at(), at("2026-01-01T01:00:00Z"));
    }

    #[test]
    fn malformed_success_never_echoes_the_body() {
        let sent = at("2026-01-01T00:00:00Z");
        let err = parse_success("u", br#"{"access_token":"SECRET-TOKEN"}"#, sent).unwrap_err();
        assert!(matches!(err, AuthError::MalformedResponse { .. }));
        assert!(!err.to_string().contains("SECRET-TOKEN"));
        assert!(parse_success("u", b"<html>", sent).is_err());
        let err = parse_success(
            "u",
            br#"{"access_token":"x","expires_in":5,"token_type":"mac"}"#,
            sent,
        );
        assert!(err.is_err());
    }

    #[test]
    fn freshness_uses_the_margin() {
        let token = AccessToken::new("t".to_string().into(), at("2026-01-01T01:00:00Z"));
        assert!(token.is_fresh(at("2026-01-01T00:54:00Z"), SignedDuration::from_mins(5)));
        assert!(!token.is_fresh(at("2026-01-01T00:56:00Z"), SignedDuration::from_mins(5)));
        assert!(!format!("{token:?}").contains("\"t\""));
    }

    #[test]
    fn non_json_failure_is_unexpected_response() {
        let err = parse_failure("u", 502, b"<html>bad gateway</html>");
        assert!(matches!(err, AuthError::UnexpectedResponse { status: 502, .. }));
        assert!(err.is_transient());
    }
}
