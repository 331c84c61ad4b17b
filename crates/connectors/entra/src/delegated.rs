//! Delegated authorisation of an Entra connection: an administrator signs in through the
//! identity platform's authorize endpoint (authorization code with PKCE); the refresh token that
//! comes back is sealed in the store and replaced, sealed again, every time Microsoft rotates it.
//!
//! The sign-in is two steps with a browser in between, so what the second step needs (the PKCE
//! verifier, the state and the redirect URI) is sealed in the store beside the connection for a
//! few minutes rather than kept in one process's memory: the CLI's loopback listener and the web
//! UI's callback both finish a sign-in the same way, whichever process started it.

use std::sync::Arc;

use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_msauth::{
    AppCredentials, Authority, AuthorizationRequest, BoxFuture, ExposeSecret as _, RefreshTokenSink,
    SecretString, TokenClient,
};
use deskbridge_source::sign_in::{PendingSignIn, Redirect, parse_redirect, unknown_sign_in};
use deskbridge_store::{Connection, Store};
use serde::Serialize;

use deskbridge_source::{ConnectionSecrets, SyncError, http_client};

use crate::ENTRA_KIND;
use crate::client::{app_credential, scope_for};
use crate::error::from_auth;
use crate::settings::{AuthMethod, EntraSettings, SECRET_REFRESH_TOKEN};

/// The sealed state of a sign-in that has been started and not yet finished.
const SECRET_PENDING: &str = "pending_authorization";

/// A sign-in to send the administrator's browser to.
#[derive(Debug, Clone, Serialize)]
pub struct PendingAuthorization {
    /// The connection being authorised.
    pub connection: String,
    /// The authorize endpoint URL, with the PKCE challenge and the state.
    pub url: String,
    /// The state the redirect must carry back (also inside `url`).
    pub state: String,
}

/// The scopes a delegated connection asks for: the app's configured Graph permissions
/// (`.default`) and `offline_access`, without which no refresh token is issued.
fn delegated_scopes(settings: &EntraSettings) -> [String; 2] {
    [scope_for(&settings.graph_url), "offline_access".to_owned()]
}

fn delegated_connection(connection: &Connection) -> Result<EntraSettings, SyncError> {
    if connection.kind != ENTRA_KIND {
        return Err(SyncError::WrongKind {
            name: connection.name.clone(),
            kind: connection.kind.clone(),
            expected: "an Entra connection".into(),
        });
    }
    let settings: EntraSettings = serde_json::from_value(connection.config.clone())
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    if settings.auth != AuthMethod::Delegated {
        return Err(SyncError::BadSettings(
            connection.name.clone(),
            "the connection uses application permissions; only a delegated connection is authorised by signing in"
                .into(),
        ));
    }
    Ok(settings)
}

/// Starts a sign-in for the delegated connection `name`. `redirect_uri` must be registered on
/// the app (Microsoft accepts any port on `http://localhost` and `http://127.0.0.1` redirect
/// URIs; the emulator's apps register `/callback` and `/auth/microsoft/callback` on both).
pub async fn begin_delegated_authorization(
    store: &Store,
    name: &str,
    redirect_uri: &str,
    clock: &SharedClock,
) -> Result<PendingAuthorization, SyncError> {
    let mut tx = store.read().await?;
    let connection = tx
        .connection_by_name(name)
        .await?
        .ok_or_else(|| SyncError::UnknownConnection(name.into()))?;
    tx.commit().await?;
    let settings = delegated_connection(&connection)?;
    let authority = Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(name.into(), e.to_string()))?;
    let scopes = delegated_scopes(&settings);
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let request = AuthorizationRequest::with_state_prefix(
        &authority,
        &settings.tenant_id,
        &settings.client_id,
        redirect_uri,
        &scopes,
        &format!("{}.", connection.id.0),
    )
    .map_err(|e| SyncError::BadSettings(name.into(), e.to_string()))?;
    PendingSignIn {
        state: request.state.clone(),
        code_verifier: request.code_verifier.expose_secret().to_owned(),
        redirect_uri: redirect_uri.to_owned(),
    }
    .seal(store, connection.id, SECRET_PENDING, clock)
    .await?;
    Ok(PendingAuthorization {
        connection: connection.name,
        url: request.url.to_string(),
        state: request.state,
    })
}

/// Finishes a sign-in from the redirect's `state` and `code`: redeems the code with its PKCE
/// verifier and seals the refresh token. Returns the connection's name.
pub async fn complete_delegated_authorization(
    store: &Store,
    state: &str,
    code: &str,
    clock: &SharedClock,
) -> Result<String, SyncError> {
    let id: i64 = state
        .split_once('.')
        .and_then(|(id, _)| id.parse().ok())
        .ok_or_else(unknown_sign_in)?;
    let id = ConnectionId(id);
    let mut tx = store.read().await?;
    let connection = tx.connection(id).await?.ok_or_else(unknown_sign_in)?;
    let credential = app_credential(&mut tx, &connection, delegated_connection(&connection)?.auth).await?;
    tx.commit().await?;
    let settings = delegated_connection(&connection)?;
    let pending = PendingSignIn::take(store, id, SECRET_PENDING, state, clock).await?;
    let authority = Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    let client = TokenClient::new(http_client(&connection.name)?, authority, clock.clone());
    let app = AppCredentials {
        client_id: settings.client_id.clone(),
        credential,
    };
    let scopes = delegated_scopes(&settings).join(" ");
    let response = client
        .redeem_code(
            &settings.tenant_id,
            &app,
            &SecretString::from(code.to_owned()),
            &pending.redirect_uri,
            &SecretString::from(pending.code_verifier),
            &scopes,
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
        id,
        SECRET_PENDING,
        SECRET_REFRESH_TOKEN,
        refresh.expose_secret(),
    )
    .await?;
    Ok(connection.name)
}

/// Finishes a sign-in from the whole redirect (`…?code=…&state=…`, or `…?error=…`), turning
/// a refusal (the administrator cancelled, consent was denied) into a specific error.
pub async fn complete_delegated_redirect(
    store: &Store,
    redirect: &str,
    clock: &SharedClock,
) -> Result<String, SyncError> {
    match parse_redirect(redirect)? {
        Redirect::Code { state, code } => complete_delegated_authorization(store, &state, &code, clock).await,
        Redirect::Refused(refusal) => {
            let remedy = match refusal.error.as_str() {
                "access_denied" => "Sign in again and accept the permissions the app requests (an administrator \
                                    may have to grant consent for the organisation)."
                    .into(),
                "invalid_scope" => "Add the Graph permissions deskbridge needs to the app registration's \
                                    delegated permissions."
                    .into(),
                _ => "Check the app registration's redirect URIs and delegated permissions, then sign in again."
                    .into(),
            };
            Err(refusal.into_error("the sign-in", remedy))
        }
    }
}

/// Seals every refresh token Microsoft rotates in, before it is used.
pub(crate) struct StoreRefreshTokens {
    pub store: Store,
    pub connection: ConnectionId,
}

impl RefreshTokenSink for StoreRefreshTokens {
    fn store<'a>(
        &'a self,
        _tenant: &'a str,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            deskbridge_source::sign_in::seal_refresh_token(
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

/// The token source of a delegated connection, primed with its sealed refresh token.
pub(crate) async fn delegated_provider(
    store: &Store,
    connection: &Connection,
    client: TokenClient,
    app: AppCredentials,
) -> Result<deskbridge_msauth::DelegatedTokenProvider, SyncError> {
    let mut tx = store.read().await?;
    let refresh = tx
        .get_secret(&ConnectionSecrets(connection.id).reference(SECRET_REFRESH_TOKEN))
        .await?;
    tx.commit().await?;
    let refresh = refresh.ok_or_else(|| {
        SyncError::Credential(format!(
            "connection {:?} is not authorised yet: sign in with `deskbridge connection authorize --name {}`",
            connection.name, connection.name
        ))
    })?;
    Ok(deskbridge_msauth::DelegatedTokenProvider::new(
        client,
        app,
        SecretString::from(refresh.as_str().to_owned()),
        Arc::new(StoreRefreshTokens {
            store: store.clone(),
            connection: connection.id,
        }),
    ))
}

/// Delegated sign-in as the pipeline, the web and the CLI reach it, through
/// [`deskbridge_source::SignIn`].
pub(crate) struct EntraSignIn;

impl deskbridge_source::SignIn for EntraSignIn {
    fn authorised<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> deskbridge_source::BoxFuture<'a, Result<Option<bool>, SyncError>> {
        Box::pin(async move {
            if EntraSettings::of(connection)?.auth != AuthMethod::Delegated {
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
        Box::pin(async move {
            Ok(
                begin_delegated_authorization(store, &connection.name, redirect_uri, clock)
                    .await?
                    .url,
            )
        })
    }

    fn complete<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> deskbridge_source::BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            let name = complete_delegated_redirect(store, redirect, clock).await?;
            if name != connection.name {
                return Err(SyncError::Credential(
                    "the sign-in belongs to another connection: start the authorisation again".into(),
                ));
            }
            Ok(())
        })
    }
}
