//! deskbridge-msauth: the client of Microsoft's identity platform v2 token endpoint.
//!
//! It owns how deskbridge proves its identity to Microsoft: client secrets (form body or HTTP Basic),
//! certificates (PEM or PFX, signing PS256 client assertions with `x5t#S256`, or RS256 with `x5t` for
//! old setups), and delegated sign-in (authorization code with PKCE, rotating refresh tokens handed to
//! a caller-supplied [`RefreshTokenSink`]). It caches access tokens per (tenant, scope), renews them
//! before expiry and lets concurrent callers share one request. Microsoft's error bodies become a
//! typed [`MicrosoftAuthError`] with the AADSTS code, a classification and a remedy.
//!
//! Invariants:
//! - Only the authority host is configurable; paths are always `/{tenant}/oauth2/v2.0/{token,authorize}`.
//! - Secrets, private keys, assertions and tokens never appear in `Debug` output, logs or errors.
//! - Time comes from a [`deskbridge_core::Clock`]; nothing reads the system time.

mod authority;
mod cache;
mod client;
mod credential;
mod error;
pub mod oidc;
mod pkce;
mod provider;

pub use authority::{Authority, GRAPH_DEFAULT_SCOPE, PUBLIC_CLOUD_AUTHORITY};
pub use cache::{DEFAULT_REFRESH_MARGIN, TokenCache};
pub use client::{AccessToken, AppCredentials, TokenClient, TokenResponse};
pub use credential::{AssertionAlgorithm, AssertionClaims, CertificateCredential, ClientCredential};
pub use error::{AuthError, AuthErrorClass, CredentialError, MicrosoftAuthError};
pub use pkce::{AuthorizationRequest, code_challenge, random_state};
pub use provider::{AppTokenProvider, BoxFuture, DelegatedTokenProvider, RefreshTokenSink, TokenProvider};
pub use secrecy::{ExposeSecret, SecretString};
