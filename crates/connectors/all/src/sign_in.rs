//! Signing people in to the desk with their Microsoft work account: OpenID Connect with PKCE at
//! the identity platform's `organizations` endpoint. The protocol lives here, beside the
//! connectors that speak Microsoft's; the web only routes, keeps the pending sign-in and decides
//! whom a verified identity lets in.

use deskbridge_core::{ErrorCode, HasErrorCode as _, SharedClock};
use deskbridge_msauth::oidc::{self, Expected, SigningKeys};
use deskbridge_msauth::{
    AppCredentials, AuthError, Authority, ClientCredential, ExposeSecret as _, SecretString, TokenClient,
};

pub use deskbridge_msauth::PUBLIC_CLOUD_AUTHORITY;
pub use deskbridge_msauth::oidc::IdTokenClaims;

/// Why a sign-in could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The configuration or the request is not one Microsoft would take (a bad authority, …).
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    /// Microsoft (or the way to it) failed, or refused the code.
    #[error("{message}")]
    Upstream { code: ErrorCode, message: String },
    /// What Microsoft answered does not prove who signed in (no id token, a token that does not
    /// verify): the person is refused.
    #[error("{0}")]
    Refused(String),
}

fn invalid(e: &AuthError) -> SignInError {
    SignInError::Invalid {
        code: e.error_code(),
        message: e.to_string(),
    }
}

/// The authority as Microsoft's clients use it (normalised), or why it is not one.
pub fn authority(text: &str) -> Result<String, SignInError> {
    Authority::new(text)
        .map(|a| a.as_str().to_owned())
        .map_err(|e| invalid(&e))
}

/// A sign-in begun: where to send the browser, and what to keep until it comes back.
#[derive(Debug)]
pub struct SignInStart {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

/// Begins a sign-in of `client_id`'s users at `authority`, coming back to `redirect_uri`.
pub fn start(authority: &str, client_id: &str, redirect_uri: &str) -> Result<SignInStart, SignInError> {
    let authority = Authority::new(authority).map_err(|e| invalid(&e))?;
    let sign_in = oidc::sign_in_request(&authority, client_id, redirect_uri).map_err(|e| invalid(&e))?;
    Ok(SignInStart {
        url: sign_in.authorization.url.to_string(),
        code_verifier: sign_in.authorization.code_verifier.expose_secret().to_owned(),
        state: sign_in.authorization.state,
        nonce: sign_in.nonce,
    })
}

/// What finishing a sign-in needs: the app, and what the sign-in kept since it began.
#[derive(Debug)]
pub struct SignInFinish<'a> {
    pub authority: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub redirect_uri: &'a str,
    pub code: &'a str,
    pub code_verifier: &'a str,
    pub nonce: &'a str,
}

/// Redeems the code at the authority and verifies the id token it brings against the
/// authority's signing keys: the identity of who signed in.
pub async fn finish(finish: &SignInFinish<'_>, clock: &SharedClock) -> Result<IdTokenClaims, SignInError> {
    let authority = Authority::new(finish.authority).map_err(|e| invalid(&e))?;
    let http = deskbridge_source::http_client("single sign-on").map_err(|e| SignInError::Invalid {
        code: ErrorCode::Internal,
        message: e.to_string(),
    })?;
    let upstream = |e: AuthError| SignInError::Upstream {
        code: e.error_code(),
        message: format!("the sign-in could not be completed: {e}"),
    };
    let client = TokenClient::new(http.clone(), authority.clone(), clock.clone());
    let app = AppCredentials {
        client_id: finish.client_id.to_owned(),
        credential: Some(ClientCredential::Secret(SecretString::from(
            finish.client_secret.to_owned(),
        ))),
    };
    let tokens = client
        .redeem_code(
            oidc::ORGANIZATIONS,
            &app,
            &SecretString::from(finish.code.to_owned()),
            finish.redirect_uri,
            &SecretString::from(finish.code_verifier.to_owned()),
            oidc::SIGN_IN_SCOPES,
        )
        .await
        .map_err(upstream)?;
    let id_token = tokens.id_token.ok_or_else(|| {
        SignInError::Refused(
            "Microsoft answered without an id token: the sign-in cannot say who you are".into(),
        )
    })?;
    let keys = SigningKeys::fetch(&http, &authority).await.map_err(upstream)?;
    oidc::verify_id_token(
        id_token.expose_secret(),
        &keys,
        &Expected {
            authority: &authority,
            client_id: finish.client_id,
            nonce: finish.nonce,
            now: clock.now(),
        },
    )
    .map_err(|e| SignInError::Refused(format!("the sign-in was refused: {e}")))
}
