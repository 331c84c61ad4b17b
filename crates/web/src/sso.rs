//! Single sign-on to the admin UI with Microsoft work accounts (OpenID Connect, authorization
//! code with PKCE, at the identity platform's multi-tenant `organizations` endpoint).
//!
//! What it owns: the configuration administrators change (client id, sealed client secret,
//! authority, on/off) and the allowed-tenant list (tenants added by hand, plus the tenants CSP
//! connections map to desk customers, computed through the source registry so that unmapping a
//! tenant or deleting its connection stops it at once); starting a sign-in; and finishing one:
//! the state must be the one this browser started (cookie) and is used once, the code is
//! redeemed with the verifier and the secret at the configured authority only, the id token is
//! verified ([`deskbridge_connectors::sign_in`]), its tenant must be allowed, and the (tenant, object
//! id) must be an account's linked identity or an active imported desk agent. An agent signing
//! in for the first time gets a *disabled* Agent account with no grants, which an administrator
//! enables: an identity never gives itself access. SSO never creates an administrator.

use axum::http::HeaderMap;
use deskbridge_connectors::sign_in::{self, IdTokenClaims, SignInError, SignInFinish};
use deskbridge_source::settings::is_guid;
use deskbridge_store::{
    Account, AllowedTenant, NewAccount, PendingSsoSignIn, Role, SsoSettings, Store, WriteContext, sso_secret,
};
use serde::Serialize;

use crate::AppState;
use crate::auth;
use crate::error::ApiError;

/// Where the sign-in button goes: it sends the browser to Microsoft.
pub const START_PATH: &str = "/auth/sso/start";
/// Where Microsoft sends the browser back: the redirect URI to register on the app.
pub const CALLBACK_PATH: &str = "/auth/sso/callback";
/// Binds a started sign-in to the browser that started it (holds its state).
pub const STATE_COOKIE: &str = "deskbridge_sso";
/// How long a started sign-in waits for its redirect (Microsoft's codes live about 10 minutes).
const SIGN_IN_MINUTES: i64 = 10;

/// What an administrator changes; `None` keeps the current value.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoChange {
    pub enabled: Option<bool>,
    pub client_id: Option<String>,
    /// Write-only; an empty one keeps the current secret.
    pub client_secret: Option<String>,
    pub authority: Option<String>,
}

/// An allowed tenant and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowedEntry {
    pub tenant_id: String,
    /// "added by an administrator" or "CSP connection NAME (customer NAME)".
    pub origin: String,
    /// The administrator's note, or the tenant's name at the source.
    pub note: String,
    /// Whether it was added by hand (and so can be removed here; a mapped one is removed by
    /// unmapping the tenant on its connection).
    pub manual: bool,
}

/// The configuration as shown (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct SsoView {
    pub enabled: bool,
    pub client_id: String,
    pub authority: String,
    pub client_secret_set: bool,
    pub redirect_uri: String,
    pub updated_at: Option<String>,
    pub allowed_tenants: Vec<AllowedEntry>,
}

fn default_settings() -> SsoSettings {
    SsoSettings {
        enabled: false,
        client_id: String::new(),
        authority: sign_in::PUBLIC_CLOUD_AUTHORITY.to_owned(),
        updated_at: String::new(),
    }
}

/// The configuration and whether its secret is set.
async fn load(store: &Store) -> Result<(SsoSettings, Option<zeroize::Zeroizing<String>>), ApiError> {
    let mut tx = store.read().await?;
    let settings = tx.sso_settings().await?;
    let secret = match &settings {
        Some(_) => tx.get_secret(&sso_secret()).await?,
        None => None,
    };
    tx.commit().await?;
    Ok((settings.unwrap_or_else(default_settings), secret))
}

/// Whether the sign-in page offers "Sign in with Microsoft".
pub async fn enabled(store: &Store) -> bool {
    let mut tx = match store.read().await {
        Ok(tx) => tx,
        Err(_) => return false,
    };
    let on = tx.sso_settings().await.ok().flatten().is_some_and(|s| s.enabled);
    let _ = tx.commit().await;
    on
}

/// The authority, checked against the instance's endpoint policy: the client secret goes to it.
fn authority_of(state: &AppState, authority: &str) -> Result<String, ApiError> {
    let parsed = sign_in::authority(authority).map_err(|e| ApiError::invalid(e.to_string()))?;
    state
        .sources
        .endpoint_policy()
        .check(&parsed)
        .map_err(|why| ApiError::invalid(format!("the single sign-on authority is refused: {why}")))?;
    Ok(parsed)
}

/// A failed sign-in as the API says it; Microsoft's failures are logged too.
fn sign_in_failed(e: SignInError) -> ApiError {
    match e {
        SignInError::Invalid { code, message } => ApiError::new(code, message),
        SignInError::Upstream { code, message } => {
            let error = ApiError::new(code, message);
            tracing::warn!(reason = %error.message, "a single sign-on failed");
            error
        }
        SignInError::Refused(message) => refused(message),
    }
}

/// Every allowed tenant: those added by hand, then those connections map to desk customers.
pub async fn allowed_tenants(state: &AppState) -> Result<Vec<AllowedEntry>, ApiError> {
    let mut tx = state.store.read().await?;
    let manual: Vec<AllowedTenant> = tx.sso_allowed_tenants().await?;
    tx.commit().await?;
    let mut out: Vec<AllowedEntry> = manual
        .into_iter()
        .map(|t| AllowedEntry {
            tenant_id: t.tenant_id,
            origin: "added by an administrator".into(),
            note: t.note,
            manual: true,
        })
        .collect();
    for mapped in state.sources.mapped_tenants(&state.store).await? {
        out.push(AllowedEntry {
            tenant_id: mapped.tenant_id,
            origin: format!(
                "CSP connection {} (customer {})",
                mapped.connection_name,
                mapped.customer_name.as_deref().unwrap_or("?")
            ),
            note: mapped.tenant_name,
            manual: false,
        });
    }
    Ok(out)
}

/// The configuration as the page, the API and the CLI show it.
pub async fn view(state: &AppState, redirect_uri: String) -> Result<SsoView, ApiError> {
    let (settings, secret) = load(&state.store).await?;
    Ok(SsoView {
        enabled: settings.enabled,
        client_id: settings.client_id,
        authority: settings.authority,
        client_secret_set: secret.is_some(),
        redirect_uri,
        updated_at: Some(settings.updated_at).filter(|u| !u.is_empty()),
        allowed_tenants: allowed_tenants(state).await?,
    })
}

/// Saves a change of the configuration. Turning it on needs the client id and a secret.
pub async fn save(state: &AppState, change: SsoChange) -> Result<SsoSettings, ApiError> {
    let (current, secret) = load(&state.store).await?;
    let client_id = change
        .client_id
        .map(|c| c.trim().to_lowercase())
        .unwrap_or(current.client_id);
    if !client_id.is_empty() && !is_guid(&client_id) {
        return Err(ApiError::invalid(format!(
            "the client id {client_id:?} is not a GUID: copy the app registration's Application (client) ID"
        )));
    }
    let authority = change
        .authority
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .unwrap_or(current.authority);
    let authority = authority_of(state, &authority)?;
    let new_secret = change
        .client_secret
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let enabled = change.enabled.unwrap_or(current.enabled);
    if enabled && (client_id.is_empty() || (secret.is_none() && new_secret.is_none())) {
        return Err(ApiError::invalid(
            "single sign-on needs the app registration's client id and a client secret before it is turned on",
        ));
    }
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.put_sso_settings(enabled, &client_id, authority.as_str())
        .await?;
    if let Some(secret) = &new_secret {
        tx.put_secret(&sso_secret(), secret, None).await?;
    }
    let saved = tx.sso_settings().await?.unwrap_or_else(default_settings);
    tx.commit().await?;
    tracing::info!(enabled, client_id = %client_id, authority = authority.as_str(), "the single sign-on configuration was changed");
    Ok(saved)
}

/// A tenant id as typed: a GUID, lower-cased.
fn tenant_id(text: &str) -> Result<String, ApiError> {
    let id = text.trim().to_lowercase();
    if is_guid(&id) {
        Ok(id)
    } else {
        Err(ApiError::invalid(format!(
            "{:?} is not a tenant id: use the tenant's GUID (Microsoft Entra admin center, Overview, Tenant ID)",
            text.trim()
        )))
    }
}

/// Allows a tenant by hand.
pub async fn allow(store: &Store, tenant: &str, note: &str) -> Result<String, ApiError> {
    let id = tenant_id(tenant)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.allow_sso_tenant(&id, note.trim()).await?;
    tx.commit().await?;
    tracing::info!(tenant = %id, "a tenant was allowed to sign in");
    Ok(id)
}

/// Removes a tenant allowed by hand.
pub async fn disallow(store: &Store, tenant: &str) -> Result<(), ApiError> {
    let id = tenant_id(tenant)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let removed = tx.disallow_sso_tenant(&id).await?;
    tx.commit().await?;
    if removed {
        tracing::info!(tenant = %id, "a tenant was removed from the single sign-on list");
        Ok(())
    } else {
        Err(ApiError::not_found(format!("tenant {id} was not added by hand to the allowed list"))
            .with_remedy("A tenant a CSP connection maps to a customer leaves the list when it is unmapped on the connection's Tenants tab."))
    }
}

/// Links an account to a Microsoft identity (or unlinks it with `None`).
pub async fn link(
    store: &Store,
    account_id: i64,
    identity: Option<(&str, &str)>,
) -> Result<Account, ApiError> {
    let identity = match identity {
        Some((tenant, object)) => {
            let tenant = tenant_id(tenant)?;
            let object = object.trim().to_lowercase();
            if !is_guid(&object) {
                return Err(ApiError::invalid(format!(
                    "{object:?} is not an object id: use the person's Object ID (a GUID) from Microsoft Entra"
                )));
            }
            Some((tenant, object))
        }
        None => None,
    };
    let mut tx = store.begin(WriteContext::manual()).await?;
    let account = tx
        .account(account_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {account_id}")))?;
    tx.link_account_identity(
        account.id,
        identity.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
    )
    .await?;
    let linked = tx.account(account.id).await?.unwrap_or(account);
    tx.commit().await?;
    Ok(linked)
}

/// The redirect URI of this site (what the app registration must list).
pub fn callback_uri(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    crate::api::site_uri(state, headers, CALLBACK_PATH)
}

/// Starts a sign-in: the URL to send the browser to and the state to bind to it (cookie).
pub async fn begin(state: &AppState, headers: &HeaderMap, next: &str) -> Result<(String, String), ApiError> {
    let (settings, secret) = load(&state.store).await?;
    if !settings.enabled || secret.is_none() {
        return Err(off());
    }
    let authority = authority_of(state, &settings.authority)?;
    let redirect_uri = callback_uri(state, headers)?;
    let started = sign_in::start(&authority, &settings.client_id, &redirect_uri).map_err(sign_in_failed)?;
    let expires_at = state.clock.now() + jiff::SignedDuration::from_mins(SIGN_IN_MINUTES);
    let pending = PendingSsoSignIn {
        nonce: started.nonce,
        code_verifier: started.code_verifier,
        next: next.to_owned(),
        expires_at,
    };
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.start_sso_sign_in(&auth::token_hash(&started.state), &pending)
        .await?;
    tx.commit().await?;
    Ok((started.url, started.state))
}

fn off() -> ApiError {
    ApiError::new(
        deskbridge_core::ErrorCode::Unauthenticated,
        "single sign-on is turned off: sign in with your username and password",
    )
}

/// A refused sign-in: what the person sees, said once, with what to do.
/// 401, as a wrong password: the sign-in page is public and answers nobody 403.
fn refused(message: impl Into<String>) -> ApiError {
    let error = ApiError::new(deskbridge_core::ErrorCode::Unauthenticated, message);
    tracing::warn!(reason = %error.message, "a single sign-on was refused");
    error
}

/// Finishes a sign-in from Microsoft's redirect (`query` is the callback's query string) and
/// `browser_state` (the state cookie): the account signed in, and where to go.
pub async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
    browser_state: Option<&str>,
) -> Result<(Account, String), ApiError> {
    let (settings, secret) = load(&state.store).await?;
    let Some(secret) = secret.filter(|_| settings.enabled) else {
        return Err(refused(off().message));
    };
    let (returned_state, code) =
        match deskbridge_source::sign_in::parse_redirect(&format!("{CALLBACK_PATH}?{query}")) {
            Ok(deskbridge_source::sign_in::Redirect::Code { state, code }) => (state, code),
            Ok(deskbridge_source::sign_in::Redirect::Refused(r)) => {
                return Err(refused(format!(
                    "Microsoft refused the sign-in ({}): {}",
                    r.error, r.description
                )));
            }
            Err(e) => return Err(refused(e.to_string())),
        };
    // The state must be the one this browser started (a link with someone else's code and state
    // would sign the victim in as the attacker), and is used once.
    if !browser_state.is_some_and(|s| auth::same_secret(s, &returned_state)) {
        return Err(refused(
            "this sign-in was not started in this browser: start it again from the sign-in page",
        ));
    }
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let pending = tx.take_sso_sign_in(&auth::token_hash(&returned_state)).await?;
    tx.commit().await?;
    let pending = pending.ok_or_else(|| {
        refused("this sign-in was already used or took longer than 10 minutes: start it again from the sign-in page")
    })?;
    let claims = verified_claims(state, headers, &settings, &secret, &pending, &code).await?;
    let allowed = allowed_tenants(state).await?;
    if !allowed.iter().any(|t| t.tenant_id == claims.tenant_id) {
        return Err(refused(format!(
            "your organisation's tenant {} is not allowed to sign in here{}: an administrator adds it on the Single sign-on page",
            claims.tenant_id,
            who(&claims)
        )));
    }
    let account = account_for(&state.store, &claims).await?;
    Ok((account, pending.next))
}

fn who(claims: &IdTokenClaims) -> String {
    claims
        .preferred_username
        .as_deref()
        .map(|u| format!(" (signed in as {u})"))
        .unwrap_or_default()
}

/// Redeems the code at the configured authority and verifies the id token it brings.
async fn verified_claims(
    state: &AppState,
    headers: &HeaderMap,
    settings: &SsoSettings,
    secret: &str,
    pending: &PendingSsoSignIn,
    code: &str,
) -> Result<IdTokenClaims, ApiError> {
    let authority = authority_of(state, &settings.authority)?;
    let redirect_uri = callback_uri(state, headers)?;
    sign_in::finish(
        &SignInFinish {
            authority: &authority,
            client_id: &settings.client_id,
            client_secret: secret,
            redirect_uri: &redirect_uri,
            code,
            code_verifier: &pending.code_verifier,
            nonce: &pending.nonce,
        },
        &state.clock,
    )
    .await
    .map_err(sign_in_failed)
}

/// The account of a verified identity: the account linked to it, or, for an active imported
/// desk agent signing in for the first time, a new disabled Agent account linked to it.
async fn account_for(store: &Store, claims: &IdTokenClaims) -> Result<Account, ApiError> {
    let (tid, oid) = (claims.tenant_id.as_str(), claims.object_id.as_str());
    let mut tx = store.begin(WriteContext::manual()).await?;
    let agents = tx.agents_by_identity(tid, oid).await?;
    let active_agent = agents.iter().find(|a| a.active).cloned();
    if let Some(account) = tx.account_by_identity(tid, oid).await? {
        tx.commit().await?;
        if account.disabled {
            return Err(refused(format!(
                "your account {} is disabled: ask an administrator to enable it",
                account.username
            )));
        }
        // An agent's account lasts as long as the desk agent does (an administrator's was linked
        // by an administrator, who answers for it).
        if account.role == Role::Agent && active_agent.is_none() {
            return Err(refused(format!(
                "your account {} is linked to a desk agent who is no longer active{}: ask an administrator",
                account.username,
                who(claims)
            )));
        }
        return Ok(account);
    }
    let Some(agent) = active_agent else {
        let users = tx.users_by_identity(tid, oid).await?;
        tx.commit().await?;
        return Err(refused(if !agents.is_empty() {
            format!(
                "your desk agent record is inactive{}: ask an administrator",
                who(claims)
            )
        } else if !users.is_empty() {
            format!(
                "you are a user of the service desk, not an agent{}: only agents and administrators sign in here",
                who(claims)
            )
        } else {
            format!(
                "no desk agent was imported with your Microsoft account{} in tenant {tid}: ask an administrator to link your account",
                who(claims)
            )
        }));
    };
    let username = free_username(&mut tx, claims, agent.id).await?;
    let created = tx
        .create_account(&NewAccount {
            username: username.clone(),
            display_name: claims.name.clone().unwrap_or_else(|| agent.name.clone()),
            // Nobody knows it: this account signs in with Microsoft until an administrator
            // resets its password.
            password_hash: auth::hash_password(&auth::random_token(24))?,
            role: Role::Agent,
            can_configure_connections: false,
            must_change_password: false,
        })
        .await?;
    tx.update_account(created.id, Role::Agent, false, true).await?;
    tx.link_account_identity(created.id, Some((tid, oid))).await?;
    tx.commit().await?;
    tracing::info!(account = %username, agent = agent.id, "an account was created for a desk agent's first single sign-on, disabled");
    Err(refused(format!(
        "an account {username} was created for you (desk agent {}); an administrator must enable it before you can sign in",
        agent.name
    )))
}

/// A username for a new account: the Microsoft sign-in name when it is a valid, free username,
/// else `agent-{id}`.
async fn free_username(
    tx: &mut deskbridge_store::StoreTx,
    claims: &IdTokenClaims,
    agent_id: i64,
) -> Result<String, ApiError> {
    if let Some(name) = claims.preferred_username.as_deref().map(str::to_lowercase)
        && auth::check_username(&name).is_ok()
        && tx.account_named(&name).await?.is_none()
    {
        return Ok(name);
    }
    Ok(format!("agent-{agent_id}"))
}

#[cfg(test)]
mod tests {
    use super::tenant_id;

    #[test]
    fn tenant_ids_are_guids() {
        assert_eq!(
            tenant_id(" 72F988BF-86F1-41AF-91AB-2D7CD011DB47 ")
                .ok()
                .as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        for bad in ["", "contoso.com", "72f988bf-86f1-41af-91ab", "../x"] {
            assert!(tenant_id(bad).is_err(), "{bad}");
        }
    }
}
