use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::SecretString;

use crate::{AccessToken, AppCredentials, AuthError, TokenCache, TokenClient};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hands out access tokens for a tenant and scope. The Graph client holds one per connection and
/// never sees credentials, only tokens.
pub trait TokenProvider: Send + Sync + std::fmt::Debug {
    fn access_token<'a>(
        &'a self,
        tenant: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>>;

    /// Drops the cached token, e.g. after the resource server rejected it with 401.
    fn invalidate<'a>(&'a self, tenant: &'a str, scope: &'a str) -> BoxFuture<'a, ()>;
}

/// App-only tokens (client credentials) for any tenant the app is consented in, cached per
/// (tenant, scope).
#[derive(Debug)]
pub struct AppTokenProvider {
    client: TokenClient,
    app: AppCredentials,
    cache: TokenCache,
}

impl AppTokenProvider {
    pub fn new(client: TokenClient, app: AppCredentials) -> Self {
        let cache = TokenCache::new(client.clock().clone());
        AppTokenProvider { client, app, cache }
    }

    pub fn with_cache(client: TokenClient, app: AppCredentials, cache: TokenCache) -> Self {
        AppTokenProvider { client, app, cache }
    }
}

impl TokenProvider for AppTokenProvider {
    fn access_token<'a>(
        &'a self,
        tenant: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            self.cache
                .get_or_fetch(tenant, scope, || async {
                    let response = self.client.client_credentials(tenant, &self.app, scope).await?;
                    Ok(response.access_token)
                })
                .await
        })
    }

    fn invalidate<'a>(&'a self, tenant: &'a str, scope: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.cache.invalidate(tenant, scope))
    }
}

/// Receives every rotated refresh token so the caller can persist it (encrypted) before it is used.
pub trait RefreshTokenSink: Send + Sync {
    fn store<'a>(
        &'a self,
        tenant: &'a str,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Delegated tokens obtained with a refresh token (authorization code flow, or a partner's
/// refresh token exchanged for customer tenants). Microsoft rotates the refresh token on each use:
/// the new one is handed to the sink first and only then replaces the old one in memory.
pub struct DelegatedTokenProvider {
    client: TokenClient,
    app: AppCredentials,
    refresh_token: tokio::sync::Mutex<SecretString>,
    sink: Arc<dyn RefreshTokenSink>,
    cache: TokenCache,
}

impl std::fmt::Debug for DelegatedTokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedTokenProvider")
            .field("client_id", &self.app.client_id)
            .field("refresh_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl DelegatedTokenProvider {
    pub fn new(
        client: TokenClient,
        app: AppCredentials,
        refresh_token: SecretString,
        sink: Arc<dyn RefreshTokenSink>,
    ) -> Self {
        let cache = TokenCache::new(client.clock().clone());
        DelegatedTokenProvider {
            client,
            app,
            refresh_token: tokio::sync::Mutex::new(refresh_token),
            sink,
            cache,
        }
    }

    /// Redeems the authorization code of a sign-in, stores the first refresh token through `sink`
    /// and returns a provider primed with the access token.
    #[allow(clippy::too_many_arguments)] // each is a distinct part of the OAuth redemption
    pub async fn from_authorization_code(
        client: TokenClient,
        app: AppCredentials,
        tenant: &str,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: &SecretString,
        scope: &str,
        sink: Arc<dyn RefreshTokenSink>,
    ) -> Result<Self, AuthError> {
        let response = client
            .redeem_code(tenant, &app, code, redirect_uri, code_verifier, scope)
            .await?;
        let refresh_token = response.refresh_token.ok_or_else(|| {
            AuthError::Configuration("no refresh token was issued: request the offline_access scope".into())
        })?;
        sink.store(tenant, &refresh_token)
            .await
            .map_err(AuthError::RefreshTokenStore)?;
        let provider = Self::new(client, app, refresh_token, sink);
        let first = response.access_token;
        provider
            .cache
            .get_or_fetch(tenant, scope, || async { Ok(first) })
            .await?;
        Ok(provider)
    }
}

impl TokenProvider for DelegatedTokenProvider {
    fn access_token<'a>(
        &'a self,
        tenant: &'a str,
        scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            self.cache
                .get_or_fetch(tenant, scope, || async {
                    // Held across the request: two refreshes must not race with the same rotating token.
                    let mut current = self.refresh_token.lock().await;
                    let response = self.client.refresh(tenant, &self.app, &current, scope).await?;
                    if let Some(rotated) = response.refresh_token {
                        self.sink
                            .store(tenant, &rotated)
                            .await
                            .map_err(AuthError::RefreshTokenStore)?;
                        *current = rotated;
                    }
                    Ok(response.access_token)
                })
                .await
        })
    }

    fn invalidate<'a>(&'a self, tenant: &'a str, scope: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.cache.invalidate(tenant, scope))
    }
}
