//! Tokens for the organisation, and the `AzureAD` sign-in.
//!
//! - `AzureServicePrincipal`: client credentials (a secret or a certificate) for
//!   `{org}/.default`; the app must be an application user of the organisation.
//! - `AzureAD`: a user signs in once (authorization code with PKCE, Dataverse's delegated
//!   `user_impersonation` and `offline_access`) through the mechanics every connector shares
//!   ([`deskbridge_source::sign_in`]); the refresh token is sealed, and sealed again whenever
//!   Microsoft rotates it.
//!
//! Every token is asked of the connection's own identity platform host, which the endpoint
//! policy checked: a credential only goes to its own Microsoft authority.

use std::sync::Arc;

use deskbridge_connector_entra::from_auth;
use deskbridge_core::{ErrorCode, SharedClock};
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, Authority, AuthorizationRequest, BoxFuture, CertificateCredential,
    ClientCredential, DelegatedTokenProvider, ExposeSecret as _, RefreshTokenSink, SecretString, TokenClient,
    TokenProvider,
};
use deskbridge_source::sign_in::{PendingSignIn, Redirect, parse_redirect, seal_refresh_token};
use deskbridge_source::{ConnectionSecrets, SyncError, http_client, sign_in_connection};
use deskbridge_store::{Connection, Store};

use crate::settings::{
    AuthScheme, Credential, DynamicsSettings, SECRET_CERTIFICATE, SECRET_CLIENT_SECRET, SECRET_REFRESH_TOKEN,
};

/// The sealed state of a sign-in that has been started and not finished.
const SECRET_PENDING: &str = "pending_authorization";

fn authority(connection: &Connection, settings: &DynamicsSettings) -> Result<Authority, SyncError> {
    Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), format!("Authority host: {e}")))
}

/// The app's credentials as sealed (none for an `AzureAD` public client).
async fn app(
    store: &Store,
    connection: &Connection,
    settings: &DynamicsSettings,
) -> Result<AppCredentials, SyncError> {
    let secrets = ConnectionSecrets(connection.id);
    let missing = |what: &str| {
        SyncError::Credential(format!(
            "connection {:?} has no {what} stored: give it again on the connection's details (its URL or \
             authority host changed, or it was never given)",
            connection.name
        ))
    };
    let mut tx = store.read().await?;
    let credential = match settings.credential {
        Credential::ClientSecret => {
            let secret = secrets
                .get(&mut tx, SECRET_CLIENT_SECRET)
                .await?
                .ok_or_else(|| missing("client secret"))?;
            Some(ClientCredential::Secret(SecretString::from(
                secret.as_str().to_owned(),
            )))
        }
        Credential::Certificate => {
            let pem = secrets
                .get(&mut tx, SECRET_CERTIFICATE)
                .await?
                .ok_or_else(|| missing("certificate"))?;
            let cert = CertificateCredential::from_pem_bundle(pem.as_bytes())
                .map_err(|e| SyncError::Credential(format!("the stored certificate cannot be used: {e}")))?;
            Some(ClientCredential::Certificate(Arc::new(cert)))
        }
        Credential::None => None,
    };
    tx.commit().await?;
    Ok(AppCredentials {
        client_id: settings.client_id.clone(),
        credential,
    })
}

/// An `AzureAD` connection nobody has signed in to yet.
pub(crate) fn not_signed_in(connection: &Connection) -> SyncError {
    SyncError::Upstream {
        error_code: ErrorCode::UpstreamAuthentication,
        code: "not_authorised".into(),
        message: format!(
            "connection {:?} is not authorised yet: nobody has signed in (AuthScheme AzureAD)",
            connection.name
        ),
        remedy: format!(
            "Sign in with a user of the organisation: deskbridge connection authorize --name {}",
            connection.name
        ),
    }
}

/// Where the connection's access tokens come from: client credentials, or the sealed (and
/// rotated) refresh token of the user who signed in. The check uses this too, so it tests what
/// a sync will use.
pub(crate) async fn token_provider(
    store: &Store,
    connection: &Connection,
    settings: &DynamicsSettings,
    http: &reqwest::Client,
    clock: &SharedClock,
) -> Result<Arc<dyn TokenProvider>, SyncError> {
    let app = app(store, connection, settings).await?;
    let client = TokenClient::new(http.clone(), authority(connection, settings)?, clock.clone());
    match settings.auth_scheme {
        AuthScheme::AzureServicePrincipal => Ok(Arc::new(AppTokenProvider::new(client, app))),
        AuthScheme::AzureAd => {
            let mut tx = store.read().await?;
            let refresh = ConnectionSecrets(connection.id)
                .get(&mut tx, SECRET_REFRESH_TOKEN)
                .await?;
            tx.commit().await?;
            let refresh = refresh.ok_or_else(|| not_signed_in(connection))?;
            Ok(Arc::new(DelegatedTokenProvider::new(
                client,
                app,
                SecretString::from(refresh.as_str().to_owned()),
                Arc::new(StoreRefreshTokens {
                    store: store.clone(),
                    connection: connection.id,
                }),
            )))
        }
    }
}

/// Seals every refresh token Microsoft rotates in, before it is used.
struct StoreRefreshTokens {
    store: Store,
    connection: deskbridge_core::ConnectionId,
}

impl RefreshTokenSink for StoreRefreshTokens {
    fn store<'a>(
        &'a self,
        _tenant: &'a str,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            seal_refresh_token(
                &self.store,
                self.connection,
                SECRET_REFRESH_TOKEN,
                refresh_token.expose_secret(),
            )
            .await
            .map_err(|e| e.to_string())
        })
    }
}

/// The scopes a user signs in with: the organisation's delegated permission, and
/// `offline_access`, without which no refresh token is issued.
fn sign_in_scopes(settings: &DynamicsSettings) -> [String; 2] {
    [settings.scope(), "offline_access".to_owned()]
}

fn signing_in(connection: &Connection) -> Result<DynamicsSettings, SyncError> {
    let settings = DynamicsSettings::of(connection)?;
    if settings.auth_scheme != AuthScheme::AzureAd {
        return Err(SyncError::BadSettings(
            connection.name.clone(),
            "the connection's AuthScheme is AzureServicePrincipal (the app signs in as itself); only an AzureAD \
             connection is authorised by a user signing in"
                .into(),
        ));
    }
    Ok(settings)
}

async fn begin(
    store: &Store,
    connection: &Connection,
    redirect_uri: &str,
    clock: &SharedClock,
) -> Result<String, SyncError> {
    let settings = signing_in(connection)?;
    let scopes = sign_in_scopes(&settings);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let request = AuthorizationRequest::with_state_prefix(
        &authority(connection, &settings)?,
        &settings.tenant_id,
        &settings.client_id,
        redirect_uri,
        &scopes,
        &format!("{}.", connection.id.0),
    )
    .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    PendingSignIn {
        state: request.state.clone(),
        code_verifier: request.code_verifier.expose_secret().to_owned(),
        redirect_uri: redirect_uri.to_owned(),
    }
    .seal(store, connection.id, SECRET_PENDING, clock)
    .await?;
    Ok(request.url.to_string())
}

async fn complete(
    store: &Store,
    connection: &Connection,
    redirect: &str,
    clock: &SharedClock,
) -> Result<(), SyncError> {
    let settings = signing_in(connection)?;
    let (state, code) = match parse_redirect(redirect)? {
        Redirect::Code { state, code } => (state, code),
        Redirect::Refused(refusal) => {
            let remedy = match (refusal.error.as_str(), refusal.aadsts.as_deref()) {
                (_, Some("AADSTS50011")) => format!(
                    "The redirect URI is not one of the app registration's: add it (the connection's callback URL is \
                     {}; the CLI uses http://127.0.0.1/callback on any port) and sign in again.",
                    settings.callback_url
                ),
                ("access_denied" | "consent_required", _) => {
                    "Sign in again and accept the permissions the app requests; an administrator may have to grant \
                     consent to Dynamics CRM's user_impersonation permission for the organisation."
                        .into()
                }
                _ => "Check the app registration's redirect URIs and its delegated permission (Dynamics CRM, \
                      user_impersonation), then sign in again."
                    .into(),
            };
            return Err(refusal.into_error("the sign-in", remedy));
        }
    };
    if sign_in_connection(redirect)? != connection.id {
        return Err(SyncError::Credential(
            "the sign-in belongs to another connection: start the authorisation again".into(),
        ));
    }
    let app = app(store, connection, &settings).await?;
    let pending = PendingSignIn::take(store, connection.id, SECRET_PENDING, &state, clock).await?;
    let client = TokenClient::new(
        http_client(&connection.name)?,
        authority(connection, &settings)?,
        clock.clone(),
    );
    let response = client
        .redeem_code(
            &settings.tenant_id,
            &app,
            &SecretString::from(code),
            &pending.redirect_uri,
            &SecretString::from(pending.code_verifier),
            &sign_in_scopes(&settings).join(" "),
        )
        .await
        .map_err(|e| from_auth(&e))?;
    let refresh = response.refresh_token.ok_or_else(|| {
        SyncError::Credential(
            "Microsoft issued no refresh token: the app must allow the offline_access scope".into(),
        )
    })?;
    PendingSignIn::finish(
        store,
        connection.id,
        SECRET_PENDING,
        SECRET_REFRESH_TOKEN,
        refresh.expose_secret(),
    )
    .await
}

/// The `AzureAD` sign-in as the web and the CLI reach it.
pub(crate) struct DynamicsSignIn;

impl deskbridge_source::SignIn for DynamicsSignIn {
    fn authorised<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> deskbridge_source::BoxFuture<'a, Result<Option<bool>, SyncError>> {
        Box::pin(async move {
            if DynamicsSettings::of(connection)?.auth_scheme != AuthScheme::AzureAd {
                return Ok(None);
            }
            Ok(Some(
                ConnectionSecrets(connection.id)
                    .is_sealed(store, SECRET_REFRESH_TOKEN)
                    .await?,
            ))
        })
    }

    fn begin<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect_uri: &'a str,
        clock: &'a SharedClock,
    ) -> deskbridge_source::BoxFuture<'a, Result<String, SyncError>> {
        Box::pin(begin(store, connection, redirect_uri, clock))
    }

    /// The connection's callback URL, when it is a loopback one with a port: registered on the
    /// app as it is, so the CLI listens there rather than on a port of its own choosing.
    fn native_redirect(&self, connection: &Connection) -> Option<String> {
        let settings = DynamicsSettings::of(connection).ok()?;
        let url = url::Url::parse(&settings.callback_url).ok()?;
        (url.scheme() == "http"
            && matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
            && url.port().is_some())
        .then(|| settings.callback_url.clone())
    }

    fn complete<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> deskbridge_source::BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(complete(store, connection, redirect, clock))
    }
}
