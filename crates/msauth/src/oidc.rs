//! OpenID Connect sign-in of people with their Microsoft work accounts (single sign-on to
//! deskbridge itself): the authorize request (authorization code with PKCE, `openid profile
//! email`, a `nonce`), the identity platform's signing keys (read from the `jwks_uri` of its
//! OpenID configuration, only on the authority's own host), and the checks an id token must pass
//! before anyone is let in: RS256 only, signed by one of those keys, `aud` the app, `iss` the
//! issuer of the token's own tenant, `exp`/`nbf` against the [`deskbridge_core::Clock`], and the
//! `nonce` of this sign-in. Which tenants may sign in is the caller's decision.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use url::Url;

use crate::{AuthError, Authority, AuthorizationRequest};

/// The multi-tenant endpoint: any work or school account; the caller allows tenants itself.
pub const ORGANIZATIONS: &str = "organizations";

/// The scopes of a sign-in: who the person is, nothing to call an API with.
pub const SIGN_IN_SCOPES: &str = "openid profile email";

/// How far the identity platform's clock may be from ours (as Microsoft's own libraries allow).
const CLOCK_SKEW_SECS: i64 = 300;

/// A sign-in to start: send the browser to `authorization.url`; keep `authorization.state`,
/// `authorization.code_verifier` and `nonce` until it comes back.
#[derive(Debug)]
pub struct OidcSignIn {
    pub authorization: AuthorizationRequest,
    pub nonce: String,
}

/// The authorize request of a sign-in at the `organizations` endpoint.
pub fn sign_in_request(
    authority: &Authority,
    client_id: &str,
    redirect_uri: &str,
) -> Result<OidcSignIn, AuthError> {
    let scopes: Vec<&str> = SIGN_IN_SCOPES.split(' ').collect();
    let mut authorization =
        AuthorizationRequest::new(authority, ORGANIZATIONS, client_id, redirect_uri, &scopes)?;
    let nonce = crate::random_state("");
    authorization.url.query_pairs_mut().append_pair("nonce", &nonce);
    Ok(OidcSignIn { authorization, nonce })
}

/// Why an id token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the id token is not a signed JWT: {0}")]
    Malformed(String),
    #[error("the id token is signed with {0}, not RS256")]
    Algorithm(String),
    #[error("the id token is signed by a key the identity platform does not publish (kid {0:?})")]
    UnknownKey(String),
    #[error("the id token's signature is not valid")]
    Signature,
    #[error("the id token is for another application (aud {0:?})")]
    Audience(String),
    #[error("the id token has expired or is not valid yet")]
    Expired,
    #[error("the id token does not answer this sign-in (nonce mismatch): it may be replayed")]
    Nonce,
    #[error("the id token's issuer {issuer:?} is not the identity platform's issuer for tenant {tenant}")]
    Issuer { issuer: String, tenant: String },
    #[error("the id token lacks the {0} claim")]
    MissingClaim(&'static str),
}

/// Who signed in, from a verified id token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenClaims {
    /// `tid`: the tenant of the account (lower case).
    pub tenant_id: String,
    /// `oid`: the account's object id in that tenant (lower case).
    pub object_id: String,
    pub issuer: String,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    aud: Option<String>,
    iss: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    nonce: Option<String>,
    tid: Option<String>,
    oid: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
    email: Option<String>,
}

/// The identity platform's published signing keys.
#[derive(Debug, Clone)]
pub struct SigningKeys(JwkSet);

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    what: &'static str,
) -> Result<T, AuthError> {
    let failed = |reason: String| AuthError::Metadata {
        what,
        url: url.to_string(),
        reason,
    };
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    response
        .json::<T>()
        .await
        .map_err(|e| failed(format!("not the document the identity platform publishes: {e}")))
}

impl SigningKeys {
    /// Reads the keys from the `jwks_uri` of `{authority}/organizations/v2.0/.well-known/openid-configuration`.
    /// A `jwks_uri` on another host than the authority's is refused: keys come only from the
    /// configured identity platform.
    pub async fn fetch(http: &reqwest::Client, authority: &Authority) -> Result<Self, AuthError> {
        let base = Url::parse(authority.as_str())
            .map_err(|e| AuthError::Configuration(format!("authority {}: {e}", authority.as_str())))?;
        let discovery_url = Url::parse(&format!(
            "{}/{ORGANIZATIONS}/v2.0/.well-known/openid-configuration",
            authority.as_str()
        ))
        .map_err(|e| AuthError::Configuration(format!("authority {}: {e}", authority.as_str())))?;
        let discovery: Discovery = get_json(http, discovery_url, "the OpenID configuration").await?;
        let jwks_uri = Url::parse(&discovery.jwks_uri).map_err(|e| {
            AuthError::Configuration(format!("the OpenID configuration's jwks_uri is not a URL: {e}"))
        })?;
        if !same_origin(&base, &jwks_uri) {
            return Err(AuthError::Configuration(format!(
                "the OpenID configuration sends for signing keys to {jwks_uri}, not to the authority {}: refused",
                authority.as_str()
            )));
        }
        Ok(Self(get_json(http, jwks_uri, "the signing keys").await?))
    }

    /// Keys from a JWKS document (tests, or keys kept from an earlier fetch).
    pub fn from_jwks(jwks: JwkSet) -> Self {
        Self(jwks)
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.0
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .find_map(|k| match &k.algorithm {
                AlgorithmParameters::RSA(rsa) => DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok(),
                _ => None,
            })
    }
}

/// What an id token must answer.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub authority: &'a Authority,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: jiff::Timestamp,
}

/// Checks an id token and returns who signed in (see the module's doc for what is checked).
pub fn verify_id_token(
    token: &str,
    keys: &SigningKeys,
    expected: &Expected<'_>,
) -> Result<IdTokenClaims, IdTokenError> {
    // `alg: none` and unknown algorithms fail here already (no such `Algorithm`).
    let header = jsonwebtoken::decode_header(token).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::RS256 {
        return Err(IdTokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let kid = header.kid.unwrap_or_default();
    let key = keys
        .key(&kid)
        .ok_or_else(|| IdTokenError::UnknownKey(kid.clone()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // Audience, issuer and times are checked below, with our clock and clearer errors.
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    let raw = jsonwebtoken::decode::<RawClaims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::Signature,
            _ => IdTokenError::Malformed(e.to_string()),
        })?
        .claims;
    let aud = raw.aud.ok_or(IdTokenError::MissingClaim("aud"))?;
    if aud != expected.client_id {
        return Err(IdTokenError::Audience(aud));
    }
    let now = expected.now.as_second();
    let exp = raw.exp.ok_or(IdTokenError::MissingClaim("exp"))?;
    if exp + CLOCK_SKEW_SECS <= now || raw.nbf.is_some_and(|nbf| nbf - CLOCK_SKEW_SECS > now) {
        return Err(IdTokenError::Expired);
    }
    let nonce = raw.nonce.ok_or(IdTokenError::MissingClaim("nonce"))?;
    if !crate::pkce::constant_time_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(IdTokenError::Nonce);
    }
    let tenant_id = raw.tid.ok_or(IdTokenError::MissingClaim("tid"))?.to_lowercase();
    let object_id = raw.oid.ok_or(IdTokenError::MissingClaim("oid"))?.to_lowercase();
    let issuer = raw.iss.ok_or(IdTokenError::MissingClaim("iss"))?;
    // The v2.0 issuer of a work account is `{authority}/{tid}/v2.0`, with the token's own tenant.
    let tenant_issuer = format!("{}/{tenant_id}/v2.0", expected.authority.as_str());
    if !issuer.eq_ignore_ascii_case(&tenant_issuer) {
        return Err(IdTokenError::Issuer {
            issuer,
            tenant: tenant_id,
        });
    }
    Ok(IdTokenClaims {
        tenant_id,
        object_id,
        issuer,
        preferred_username: raw.preferred_username,
        name: raw.name,
        email: raw.email,
    })
}
