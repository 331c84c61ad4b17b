//! The two apps' tokens, and the Partner Center app's sign-in.
//!
//! - The Partner Center app signs in once as a partner admin (authorization code with PKCE,
//!   `user_impersonation` on the Partner Center API and `offline_access`); its refresh token is
//!   sealed, and replaced, sealed again, whenever Microsoft rotates it. Partner Center calls use
//!   app+user tokens from it.
//! - The GDAP app uses client credentials (a secret or a certificate) against each customer
//!   tenant, and against the partner tenant to list GDAP relationships.
//!
//! The sign-in is two steps with a browser in between, so what the second step needs (state,
//! PKCE verifier, redirect URI) is sealed beside the connection for a few minutes: the CLI's
//! loopback listener and the web's callback finish it the same way, whichever process began it.

use std::sync::Arc;

use deskbridge_connector_entra::from_auth;
use deskbridge_core::{ErrorCode, SharedClock};
use deskbridge_msauth::{
    AppCredentials, AppTokenProvider, Authority, AuthorizationRequest, BoxFuture, CertificateCredential,
    ClientCredential, DelegatedTokenProvider, ExposeSecret as _, RefreshTokenSink, SecretString, TokenClient,
};
use deskbridge_source::sign_in::{PendingSignIn, Redirect, parse_redirect};
use deskbridge_source::{ConnectionSecrets, SyncError, http_client};
use deskbridge_store::{Connection, Store, StoreTx};

use crate::settings::{
    CspSettings, GdapAuth, SECRET_GDAP_CERTIFICATE, SECRET_GDAP_SECRET, SECRET_PARTNER_REFRESH_TOKEN,
    SECRET_PARTNER_SECRET,
};

/// The Partner Center API's delegated permission the guide's app registration has.
pub const PARTNER_CENTER_USER_IMPERSONATION: &str =
    "https://api.partnercenter.microsoft.com/user_impersonation";
/// The sealed state of a sign-in that has been started and not finished.
const SECRET_PENDING: &str = "partner_pending_authorization";

fn authority(connection: &Connection, settings: &CspSettings) -> Result<Authority, SyncError> {
    Authority::new(&settings.authority_host)
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))
}

/// The Partner Center app's credentials (a public client has no secret).
async fn partner_app(
    tx: &mut StoreTx,
    connection: &Connection,
    settings: &CspSettings,
) -> Result<AppCredentials, SyncError> {
    let secret = ConnectionSecrets(connection.id)
        .get(tx, SECRET_PARTNER_SECRET)
        .await?;
    Ok(AppCredentials {
        client_id: settings.partner_client_id.clone(),
        credential: secret.map(|s| ClientCredential::Secret(SecretString::from(s.as_str().to_owned()))),
    })
}

/// The GDAP app's credentials, as sealed.
async fn gdap_app(
    tx: &mut StoreTx,
    connection: &Connection,
    settings: &CspSettings,
) -> Result<AppCredentials, SyncError> {
    let secrets = ConnectionSecrets(connection.id);
    let missing = |what: &str| {
        SyncError::Credential(format!(
            "connection {:?} has no GDAP app {what} stored: give it again (deskbridge connection add csp, or the \
             connection's details)",
            connection.name
        ))
    };
    let credential = match settings.gdap_auth {
        GdapAuth::ClientSecret => {
            let secret = secrets
                .get(tx, SECRET_GDAP_SECRET)
                .await?
                .ok_or_else(|| missing("client secret"))?;
            ClientCredential::Secret(SecretString::from(secret.as_str().to_owned()))
        }
        GdapAuth::Certificate => {
            let pem = secrets
                .get(tx, SECRET_GDAP_CERTIFICATE)
                .await?
                .ok_or_else(|| missing("certificate"))?;
            let cert = CertificateCredential::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                SyncError::Credential(format!("the GDAP app's stored certificate cannot be used: {e}"))
            })?;
            ClientCredential::Certificate(Arc::new(cert))
        }
    };
    Ok(AppCredentials {
        client_id: settings.gdap_client_id.clone(),
        credential: Some(credential),
    })
}

/// Both apps' token providers for one operation.
pub(crate) struct Tokens {
    /// App+user tokens for Partner Center (partner tenant), from the sealed refresh token.
    pub partner: Result<Arc<DelegatedTokenProvider>, SyncError>,
    /// App-only tokens of the GDAP app, for any tenant it is consented in.
    pub gdap: Arc<AppTokenProvider>,
}

/// The connection's token providers. The GDAP app's credential must be there; the Partner Center
/// app's sign-in may be missing (reported when Partner Center is called).
pub(crate) async fn tokens(
    store: &Store,
    connection: &Connection,
    settings: &CspSettings,
    http: &reqwest::Client,
    clock: &SharedClock,
) -> Result<Tokens, SyncError> {
    let mut tx = store.read().await?;
    let partner = partner_app(&mut tx, connection, settings).await?;
    let gdap = gdap_app(&mut tx, connection, settings).await?;
    let refresh = ConnectionSecrets(connection.id)
        .get(&mut tx, SECRET_PARTNER_REFRESH_TOKEN)
        .await?;
    tx.commit().await?;
    let authority = authority(connection, settings)?;
    let token_client = TokenClient::new(http.clone(), authority, clock.clone());
    let partner = match refresh {
        Some(refresh) => Ok(Arc::new(DelegatedTokenProvider::new(
            token_client.clone(),
            partner,
            SecretString::from(refresh.as_str().to_owned()),
            Arc::new(StoreRefreshTokens {
                store: store.clone(),
                connection: connection.id,
            }),
        ))),
        None => Err(not_signed_in(connection)),
    };
    Ok(Tokens {
        partner,
        gdap: Arc::new(AppTokenProvider::new(token_client, gdap)),
    })
}

pub(crate) fn not_signed_in(connection: &Connection) -> SyncError {
    SyncError::Upstream {
        error_code: ErrorCode::UpstreamAuthentication,
        code: "partner_center_not_authorised".into(),
        message: format!(
            "connection {:?} is not authorised yet: the Partner Center app has not been signed in",
            connection.name
        ),
        remedy: format!(
            "Sign in as a partner admin with access to the Partner Center customer list: deskbridge connection \
             authorize --name {}",
            connection.name
        ),
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
            deskbridge_source::sign_in::seal_refresh_token(
                &self.store,
                self.connection,
                SECRET_PARTNER_REFRESH_TOKEN,
                refresh_token.expose_secret(),
            )
            .await
            .map_err(|e| e.to_string())
        })
    }
}

fn scopes() -> [&'static str; 2] {
    [PARTNER_CENTER_USER_IMPERSONATION, "offline_access"]
}

/// Starts the Partner Center app's sign-in: the authorize URL.
async fn begin(
    store: &Store,
    connection: &Connection,
    redirect_uri: &str,
    clock: &SharedClock,
) -> Result<String, SyncError> {
    let settings = CspSettings::of(connection)?;
    let name = connection.name.as_str();
    let request = AuthorizationRequest::with_state_prefix(
        &authority(connection, &settings)?,
        &settings.partner_tenant_id,
        &settings.partner_client_id,
        redirect_uri,
        &scopes(),
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
    Ok(request.url.to_string())
}

/// Finishes the sign-in from the whole redirect: redeems the code and seals the refresh token.
async fn complete(
    store: &Store,
    connection: &Connection,
    redirect: &str,
    clock: &SharedClock,
) -> Result<(), SyncError> {
    let (state, code) = match parse_redirect(redirect)? {
        Redirect::Code { state, code } => (state, code),
        Redirect::Refused(refusal) => {
            let remedy = if refusal.aadsts.as_deref() == Some("AADSTS50011") {
                "The redirect URI does not match one configured on the Partner Center app registration: add it \
                 (for the CLI, http://localhost/callback) and sign in again."
                    .into()
            } else {
                "Check that the Partner Center app has the Partner Center API's delegated user_impersonation \
                 permission (API fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd, \"Access Partner Center\"), and sign in \
                 with a partner admin who can open the customer list."
                    .into()
            };
            return Err(refusal.into_error("the Partner Center sign-in", remedy));
        }
    };
    let settings = CspSettings::of(connection)?;
    let mut tx = store.read().await?;
    let app = partner_app(&mut tx, connection, &settings).await?;
    tx.commit().await?;
    let pending = PendingSignIn::take(store, connection.id, SECRET_PENDING, &state, clock).await?;
    let client = TokenClient::new(
        http_client(&connection.name)?,
        authority(connection, &settings)?,
        clock.clone(),
    );
    let response = client
        .redeem_code(
            &settings.partner_tenant_id,
            &app,
            &SecretString::from(code),
            &pending.redirect_uri,
            &SecretString::from(pending.code_verifier),
            &scopes().join(" "),
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
        SECRET_PARTNER_REFRESH_TOKEN,
        refresh.expose_secret(),
    )
    .await?;
    Ok(())
}

/// The Partner Center app's sign-in as the web and the CLI reach it. Once signed in, the
/// connection's customer tenants are discovered (see [`crate::refresh_tenants`]) so the first
/// sync imports them all; if that fails the sign-in still stands and the next sync discovers them.
pub(crate) struct PartnerSignIn {
    pub(crate) shared: Arc<crate::log::Shared>,
}

impl deskbridge_source::SignIn for PartnerSignIn {
    fn authorised<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
    ) -> deskbridge_source::BoxFuture<'a, Result<Option<bool>, SyncError>> {
        Box::pin(async move {
            CspSettings::of(connection)?;
            Ok(Some(
                ConnectionSecrets(connection.id)
                    .is_sealed(store, SECRET_PARTNER_REFRESH_TOKEN)
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

    fn complete<'a>(
        &'a self,
        store: &'a Store,
        connection: &'a Connection,
        redirect: &'a str,
        clock: &'a SharedClock,
    ) -> deskbridge_source::BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            if deskbridge_source::sign_in_connection(redirect)? != connection.id {
                return Err(SyncError::Credential(
                    "the sign-in belongs to another connection: start the authorisation again".into(),
                ));
            }
            complete(store, connection, redirect, clock).await?;
            let cx = deskbridge_source::SourceContext::detached(store.clone(), clock.clone());
            if let Err(e) = crate::tenants::refresh_with(&cx, &self.shared, &connection.name).await {
                tracing::warn!(connection = %connection.name, error = %e,
                    "signed in; the customer tenants could not be listed yet (the next sync lists them)");
            }
            Ok(())
        })
    }
}
