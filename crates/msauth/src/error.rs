use deskbridge_core::{ErrorCode, HasErrorCode};
use serde::Deserialize;

/// Everything that can go wrong while obtaining a token. No variant ever carries a secret:
/// secrets, assertions and tokens are kept out of messages by construction.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint answered with Microsoft's error body.
    #[error("{0}")]
    Microsoft(Box<MicrosoftAuthError>),
    /// The endpoint answered with a status and a body that is not Microsoft's error shape.
    #[error("token endpoint {url} answered HTTP {status} with an unrecognised body: {body_excerpt}")]
    UnexpectedResponse {
        url: String,
        status: u16,
        body_excerpt: String,
    },
    /// A 2xx body that lacks what a token response must have.
    #[error("token endpoint {url} sent a malformed token response: {reason}")]
    MalformedResponse { url: String, reason: String },
    #[error("cannot reach token endpoint {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The OpenID configuration or the signing keys could not be read.
    #[error("cannot read the identity platform's {what} at {url}: {reason}")]
    Metadata {
        what: &'static str,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("invalid authentication configuration: {0}")]
    Configuration(String),
    /// The caller's store refused the rotated refresh token; the new token is lost, so this is fatal.
    #[error("could not store the rotated refresh token: {0}")]
    RefreshTokenStore(String),
}

/// Microsoft's own code (`invalid_client`, AADSTS…) stays in [`MicrosoftAuthError`]; the
/// catalogue code says which kind of upstream failure it is.
impl HasErrorCode for AuthError {
    fn error_code(&self) -> ErrorCode {
        match self {
            AuthError::Microsoft(e) => match e.class() {
                AuthErrorClass::Throttled => ErrorCode::UpstreamThrottled,
                AuthErrorClass::ServiceUnavailable => ErrorCode::UpstreamUnavailable,
                _ => ErrorCode::UpstreamAuthentication,
            },
            AuthError::UnexpectedResponse { status, .. } if *status >= 500 => ErrorCode::UpstreamUnavailable,
            AuthError::UnexpectedResponse { status: 429, .. } => ErrorCode::UpstreamThrottled,
            AuthError::UnexpectedResponse { .. } | AuthError::MalformedResponse { .. } => {
                ErrorCode::UpstreamMalformedResponse
            }
            AuthError::Transport { .. } | AuthError::Metadata { .. } => ErrorCode::UpstreamUnavailable,
            AuthError::Credential(_) | AuthError::Configuration(_) => ErrorCode::InvalidConfiguration,
            AuthError::RefreshTokenStore(_) => ErrorCode::Internal,
        }
    }
}

impl AuthError {
    /// The AADSTS number, when Microsoft sent one.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            AuthError::Microsoft(e) => e.aadsts(),
            _ => None,
        }
    }

    /// The Microsoft error, when the failure came from the token endpoint's error body.
    pub fn microsoft(&self) -> Option<&MicrosoftAuthError> {
        match self {
            AuthError::Microsoft(e) => Some(e),
            _ => None,
        }
    }

    /// Whether trying again later, unchanged, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.error_code(),
            ErrorCode::UpstreamThrottled | ErrorCode::UpstreamUnavailable
        )
    }
}

/// Problems with a configured credential (certificate, key, PFX), found before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no certificate found in the PEM data")]
    NoCertificate,
    #[error("no private key found in the PEM data")]
    NoPrivateKey,
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("the private key is not a usable RSA key: {0}")]
    BadPrivateKey(String),
    #[error("the private key does not belong to the certificate")]
    KeyDoesNotMatchCertificate,
    #[error("the PFX file cannot be opened (wrong password or damaged file): {0}")]
    BadPfx(String),
    #[error("the PFX file holds no private key with a certificate")]
    PfxWithoutKey,
    #[error("cannot sign the client assertion: {0}")]
    Signing(String),
}

/// A credential that cannot be used is a configuration problem.
impl HasErrorCode for CredentialError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidConfiguration
    }
}

/// Microsoft's token endpoint error body (identity platform v2), with the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MicrosoftAuthError {
    #[serde(skip)]
    pub status: u16,
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
}

/// What kind of failure an AADSTS code means for someone setting up a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorClass {
    /// AADSTS7000215: the secret is wrong (often its ID was pasted instead of its value).
    InvalidClientSecret,
    /// AADSTS7000222: the secret has expired.
    ExpiredClientSecret,
    /// AADSTS700016: the app is unknown in the tenant or was never consented to.
    AppNotFoundInTenant,
    /// AADSTS7000229: the app has no service principal in the tenant.
    MissingServicePrincipal,
    /// AADSTS70011: bad scope.
    InvalidScope,
    /// AADSTS90002: no such tenant in this cloud.
    TenantNotFound,
    /// AADSTS700027 / 500133 / 7000218 / 700024: the client assertion (certificate) was rejected.
    InvalidClientAssertion,
    /// AADSTS700082 / 700084 / 70008: the refresh token or authorization code has expired.
    ExpiredGrant,
    /// AADSTS50011 / 500113: the redirect URI of a sign-in is not one the app registration lists.
    RedirectUriMismatch,
    /// AADSTS65001 / 65004: nobody (or not an administrator) consented to the permissions asked.
    ConsentRequired,
    /// AADSTS650057 / 650052 / 650056: the sign-in asks for a permission of an API the app
    /// registration does not list (for CSP, often the wrong "user_impersonation").
    PermissionNotListed,
    /// AADSTS90055 or HTTP 429.
    Throttled,
    /// HTTP 5xx from the token endpoint.
    ServiceUnavailable,
    /// AADSTS50012 and everything else.
    Other,
}

impl MicrosoftAuthError {
    /// The AADSTS number: the first of `error_codes`, else the number in the description.
    pub fn aadsts(&self) -> Option<u32> {
        self.error_codes.first().copied().or_else(|| {
            let rest = self.error_description.split("AADSTS").nth(1)?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
    }

    /// The first line of the description (Microsoft appends trace and correlation ids on later lines).
    pub fn message(&self) -> &str {
        self.error_description.lines().next().unwrap_or_default().trim()
    }

    pub fn class(&self) -> AuthErrorClass {
        match self.aadsts() {
            Some(7_000_215) => AuthErrorClass::InvalidClientSecret,
            Some(7_000_222) => AuthErrorClass::ExpiredClientSecret,
            Some(700_016) => AuthErrorClass::AppNotFoundInTenant,
            Some(7_000_229) => AuthErrorClass::MissingServicePrincipal,
            Some(70_011) => AuthErrorClass::InvalidScope,
            Some(90_002) => AuthErrorClass::TenantNotFound,
            Some(700_027 | 500_133 | 7_000_218 | 700_024) => AuthErrorClass::InvalidClientAssertion,
            Some(700_082 | 700_084 | 70_008) => AuthErrorClass::ExpiredGrant,
            Some(50_011 | 500_113) => AuthErrorClass::RedirectUriMismatch,
            Some(65_001 | 65_004) => AuthErrorClass::ConsentRequired,
            Some(650_057 | 650_052 | 650_056) => AuthErrorClass::PermissionNotListed,
            Some(90_055) => AuthErrorClass::Throttled,
            _ if self.status == 429 => AuthErrorClass::Throttled,
            _ if self.status >= 500 => AuthErrorClass::ServiceUnavailable,
            _ => AuthErrorClass::Other,
        }
    }

    /// What the person configuring the connection should do about it.
    pub fn remedy(&self) -> &'static str {
        match (self.class(), self.aadsts()) {
            (AuthErrorClass::InvalidClientSecret, _) => {
                "The client secret is wrong. Paste the secret's Value (shown only once, when the secret is \
                 created), not its Secret ID, or create a new secret."
            }
            (AuthErrorClass::ExpiredClientSecret, _) => {
                "The client secret has expired. Create a new secret in the app registration and update the \
                 connection."
            }
            (AuthErrorClass::AppNotFoundInTenant, _) => {
                "The application is not known in this tenant. Check the tenant id and the client id, and have \
                 an administrator of the tenant grant admin consent to the app."
            }
            (AuthErrorClass::MissingServicePrincipal, _) => {
                "The app has no service principal in this tenant. Grant admin consent in the tenant (for a \
                 customer tenant, through the partner's application consent)."
            }
            (AuthErrorClass::InvalidScope, _) => {
                "The scope is invalid. App-only tokens take exactly one resource ending in /.default, e.g. \
                 https://graph.microsoft.com/.default."
            }
            (AuthErrorClass::TenantNotFound, _) => {
                "No tenant with this id or domain exists in this cloud. Check the tenant id and the authority \
                 host."
            }
            (AuthErrorClass::InvalidClientAssertion, Some(500_133 | 700_024)) => {
                "The certificate assertion is outside its validity window. Check this machine's clock."
            }
            (AuthErrorClass::InvalidClientAssertion, Some(7_000_218)) => {
                "The request carried no credential. Configure a client secret or a certificate."
            }
            (AuthErrorClass::InvalidClientAssertion, _) => {
                "The certificate assertion was rejected. Upload this certificate (public part) to the app \
                 registration, and check that the private key belongs to it."
            }
            (AuthErrorClass::ExpiredGrant, _) => {
                "The sign-in has expired. Sign in again to re-authorise the connection."
            }
            (AuthErrorClass::RedirectUriMismatch, _) => {
                "The redirect URI this sign-in used (named in Microsoft's message) is not registered on the app. \
                 Add it, exactly as written, under the app registration's Authentication > Redirect URIs (the \
                 connection's page lists the URIs to register), then sign in again."
            }
            (AuthErrorClass::ConsentRequired, _) => {
                "The permissions the app asks for have not been consented to. Sign in with an administrator of \
                 the tenant and accept them (grant admin consent), then authorise the connection again."
            }
            (AuthErrorClass::PermissionNotListed, _) => {
                "The app registration does not list the permission this sign-in asks for. Under API permissions \
                 add it from the right API — for Partner Center, search 'APIs my organisation uses' for \
                 fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd (Microsoft Partner Center, 'Access Partner Center') and \
                 add its delegated user_impersonation — grant admin consent, then authorise again."
            }
            (AuthErrorClass::Throttled, _) => {
                "Too many token requests. deskbridge will retry later; no action is needed unless it persists."
            }
            (AuthErrorClass::ServiceUnavailable, _) => {
                "The Microsoft sign-in service is unavailable. deskbridge will retry later."
            }
            (AuthErrorClass::Other, _) => {
                "Microsoft rejected the sign-in. Look the AADSTS code up in Microsoft's error reference and \
                 check the connection's tenant, client id and credential."
            }
        }
    }
}

impl std::fmt::Display for MicrosoftAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token request failed (HTTP {}, {}", self.status, self.error)?;
        if let Some(code) = self.aadsts() {
            write!(f, ", AADSTS{code}")?;
        }
        write!(f, "): {}", self.message())?;
        if let Some(trace) = &self.trace_id {
            write!(f, " [trace id {trace}")?;
            if let Some(correlation) = &self.correlation_id {
                write!(f, ", correlation id {correlation}")?;
            }
            write!(f, "]")?;
        }
        write!(f, ". {}", self.remedy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_with(status: u16, codes: Vec<u32>, description: &str) -> MicrosoftAuthError {
        MicrosoftAuthError {
            status,
            error: "invalid_client".into(),
            error_description: description.into(),
            error_codes: codes,
            timestamp: None,
            trace_id: Some("t".into()),
            correlation_id: Some("c".into()),
            error_uri: None,
        }
    }

    #[test]
    fn code_comes_from_error_codes_or_description() {
        assert_eq!(error_with(401, vec![7_000_215], "x").aadsts(), Some(7_000_215));
        let from_text = error_with(400, vec![], "AADSTS90002: Tenant 'x' not found.\r\nTrace ID: t");
        assert_eq!(from_text.aadsts(), Some(90_002));
        assert_eq!(from_text.class(), AuthErrorClass::TenantNotFound);
        assert_eq!(from_text.message(), "AADSTS90002: Tenant 'x' not found.");
        assert_eq!(error_with(400, vec![], "no code").aadsts(), None);
    }

    #[test]
    fn assertion_remedies_depend_on_the_code() {
        let clock = error_with(401, vec![500_133], "x");
        let unknown_cert = error_with(401, vec![700_027], "x");
        assert_eq!(clock.class(), unknown_cert.class());
        assert!(clock.remedy().contains("clock"));
        assert!(unknown_cert.remedy().contains("Upload"));
    }

    #[test]
    fn a_redirect_uri_mismatch_says_to_register_the_uri() {
        let mismatch = error_with(
            400,
            vec![],
            "AADSTS50011: The redirect URI 'https://desk.example/auth/microsoft/callback' specified in the request \
             does not match the redirect URIs configured for the application.",
        );
        assert_eq!(mismatch.class(), AuthErrorClass::RedirectUriMismatch);
        assert!(
            mismatch
                .message()
                .contains("https://desk.example/auth/microsoft/callback")
        );
        assert!(
            mismatch.remedy().contains("Redirect URIs"),
            "{}",
            mismatch.remedy()
        );
    }

    #[test]
    fn status_decides_when_no_code_is_known() {
        assert_eq!(error_with(429, vec![], "").class(), AuthErrorClass::Throttled);
        assert_eq!(
            error_with(503, vec![], "").class(),
            AuthErrorClass::ServiceUnavailable
        );
        assert_eq!(error_with(401, vec![50_012], "").class(), AuthErrorClass::Other);
        let err = AuthError::Microsoft(Box::new(error_with(429, vec![], "")));
        assert!(err.is_transient());
    }
}
