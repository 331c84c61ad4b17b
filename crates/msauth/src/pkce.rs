use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Digest as _;
use url::Url;

use crate::{AuthError, Authority};

/// Everything needed to start a delegated sign-in (authorization code flow with PKCE).
/// Keep `state` and `code_verifier` until the redirect comes back; send the user to `url`.
pub struct AuthorizationRequest {
    pub url: Url,
    /// Random value echoed by the redirect; compare it with [`AuthorizationRequest::state_matches`].
    pub state: String,
    /// The PKCE verifier to send when redeeming the code.
    pub code_verifier: SecretString,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url.as_str())
            .field("state", &self.state)
            .field("code_verifier", &"[redacted]")
            .finish()
    }
}

impl AuthorizationRequest {
    /// Builds the authorize URL with `response_type=code`, a fresh `state` and an S256 code challenge.
    /// `scopes` should include `offline_access` for a refresh token to be issued.
    pub fn new(
        authority: &Authority,
        tenant: &str,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Result<Self, AuthError> {
        Self::with_state_prefix(authority, tenant, client_id, redirect_uri, scopes, "")
    }

    /// As [`AuthorizationRequest::new`], with `state` = `prefix` followed by the random part, so
    /// that a server handling many sign-ins at one callback can tell from the state which one the
    /// redirect belongs to (the random part is what makes it unguessable).
    pub fn with_state_prefix(
        authority: &Authority,
        tenant: &str,
        client_id: &str,
        redirect_uri: &str,
        scopes: &[&str],
        prefix: &str,
    ) -> Result<Self, AuthError> {
        let state = format!("{prefix}{}", random_url_safe(24));
        let code_verifier: SecretString = random_url_safe(32).into();
        let challenge = code_challenge(code_verifier.expose_secret());
        let mut url = authority.authorize_endpoint(tenant)?;
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(AuthorizationRequest {
            url,
            state,
            code_verifier,
        })
    }

    /// Reads the redirect the browser was sent back with (`?code=…&state=…`, or `?error=…`): checks
    /// the state and returns the authorization code to redeem.
    pub fn code_from_redirect(&self, redirect: &str) -> Result<SecretString, AuthError> {
        let url = Url::parse(redirect)
            .or_else(|_| Url::parse("http://localhost/").and_then(|base| base.join(redirect)))
            .map_err(|e| AuthError::Configuration(format!("the redirect is not a URL: {e}")))?;
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut description = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "code" => code = Some(value.into_owned()),
                "state" => state = Some(value.into_owned()),
                "error" => error = Some(value.into_owned()),
                "error_description" => description = Some(value.into_owned()),
                _ => {}
            }
        }
        if let Some(error) = error {
            let description = description.unwrap_or_default();
            return Err(AuthError::Microsoft(Box::new(crate::MicrosoftAuthError {
                status: 400,
                error,
                error_description: description,
                error_codes: Vec::new(),
                timestamp: None,
                trace_id: None,
                correlation_id: None,
                error_uri: None,
            })));
        }
        if !state.as_deref().is_some_and(|s| self.state_matches(s)) {
            return Err(AuthError::Configuration(
                "the sign-in redirect's state does not match: ignored".into(),
            ));
        }
        code.filter(|c| !c.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| AuthError::Configuration("the sign-in redirect carries no code".into()))
    }

    /// Constant-time comparison of the `state` that came back with the redirect.
    pub fn state_matches(&self, returned: &str) -> bool {
        constant_time_eq(self.state.as_bytes(), returned.as_bytes())
    }
}

/// Compares two secrets in time that depends only on their length.
pub(crate) fn constant_time_eq(expected: &[u8], returned: &[u8]) -> bool {
    expected.len() == returned.len()
        && expected
            .iter()
            .zip(returned)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// RFC 7636 S256: base64url(SHA-256(verifier)).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// An unguessable `state` for a redirect flow without PKCE (admin consent): `prefix` followed by
/// 24 random bytes, base64url, as [`AuthorizationRequest`]'s.
pub fn random_state(prefix: &str) -> String {
    format!("{prefix}{}", random_url_safe(24))
}

fn random_url_safe(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorize_url_carries_state_and_challenge() {
        let authority = Authority::new("http://127.0.0.1:1").unwrap();
        let request = AuthorizationRequest::new(
            &authority,
            "organizations",
            "app-id",
            "http://localhost:8400/callback",
            &["offline_access", "https://graph.microsoft.com/.default"],
        )
        .unwrap();
        let pairs: std::collections::HashMap<_, _> = request.url.query_pairs().into_owned().collect();
        assert_eq!(request.url.path(), "/organizations/oauth2/v2.0/authorize");
        assert_eq!(pairs["state"], request.state);
        assert_eq!(
            pairs["code_challenge"],
            code_challenge(request.code_verifier.expose_secret())
        );
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(
            pairs["scope"],
            "offline_access https://graph.microsoft.com/.default"
        );
        assert!(request.code_verifier.expose_secret().len() >= 43);
        assert!(request.state_matches(&request.state.clone()));
        assert!(!request.state_matches("forged"));
        assert!(!format!("{request:?}").contains(request.code_verifier.expose_secret()));
        let other = AuthorizationRequest::new(&authority, "common", "app-id", "http://x", &[]).unwrap();
        assert_ne!(other.state, request.state);
    }

    #[test]
    fn redirects_yield_the_code_only_with_the_right_state() {
        let authority = Authority::new("http://127.0.0.1:1").unwrap();
        let request =
            AuthorizationRequest::new(&authority, "common", "app", "http://localhost:8400/cb", &[]).unwrap();
        let good = format!(
            "http://localhost:8400/cb?code=abc%2F1&state={}&session_state=x",
            request.state
        );
        assert_eq!(
            request.code_from_redirect(&good).unwrap().expose_secret(),
            "abc/1"
        );
        let relative = format!("/cb?code=abc&state={}", request.state);
        assert_eq!(
            request.code_from_redirect(&relative).unwrap().expose_secret(),
            "abc"
        );
        assert!(
            request
                .code_from_redirect("http://localhost:8400/cb?code=abc&state=forged")
                .is_err()
        );
        assert!(
            request
                .code_from_redirect(&format!("http://localhost/cb?state={}", request.state))
                .is_err()
        );
        let denied =
            "http://localhost:8400/cb?error=access_denied&error_description=AADSTS65004%3A+User+declined";
        let err = request.code_from_redirect(denied).unwrap_err();
        assert_eq!(err.aadsts(), Some(65_004));
        assert!(err.to_string().contains("access_denied"));
    }
}
