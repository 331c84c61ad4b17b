//! Passwords (argon2id), random tokens (sessions, API tokens, CSRF, one-time passwords) and the
//! cookies that carry a session. Only hashes of passwords and tokens reach the store.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use deskbridge_core::ErrorCode;
use deskbridge_store::{
    Account, NewAccount, Role, SignInFailures, SignInPolicy, SignInSubject, Store, WriteContext,
};
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "deskbridge_session";
/// The cookie the sign-in form's double-submit token travels in (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "deskbridge_login_csrf";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;
/// API tokens start with this, so a leaked one is recognisable in a scan.
pub const API_TOKEN_PREFIX: &str = "dbt_";
/// Shortest password an administrator may choose.
pub const MIN_PASSWORD_LEN: usize = 12;

/// `n` random bytes, URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0_u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The hex SHA-256 the store keeps of a session or API token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("password hashing: {e}")))
}

static PASSWORD_CHECKS: AtomicU64 = AtomicU64::new(0);

/// Whether `password` matches the stored hash (a malformed hash matches nothing).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        PASSWORD_CHECKS.fetch_add(1, Ordering::Relaxed);
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// How many argon2 verifications this process has run (tests use it to show that an unknown
/// username costs the same work as a known one).
pub fn password_checks() -> u64 {
    PASSWORD_CHECKS.load(Ordering::Relaxed)
}

/// A hash made with the same parameters as every account's, checked when the username is
/// unknown so that an unknown username takes as long to refuse as a wrong password.
pub fn unknown_user_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_token(18)).unwrap_or_default())
}

/// Checks a sign-in's password off the async workers: against the account's hash, or against
/// [`unknown_user_hash`] when there is no account, so both cost one argon2 verification.
pub async fn verify_sign_in(password: &str, hash: Option<String>) -> bool {
    let password = password.to_owned();
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| unknown_user_hash().to_owned());
    tokio::task::spawn_blocking(move || verify_password(&password, &hash) && known)
        .await
        .unwrap_or(false)
}

/// Failed sign-ins per username: five in a row are free; the fifth blocks the username for a
/// minute, each further one twice as long, up to half an hour; a day without failures forgets
/// them. An administrator can lift a block at once.
pub const ACCOUNT_POLICY: SignInPolicy = SignInPolicy {
    free: 5,
    first_block: jiff::SignedDuration::from_secs(60),
    max_block: jiff::SignedDuration::from_secs(30 * 60),
    forget_after: jiff::SignedDuration::from_secs(24 * 3600),
};

/// Failed sign-ins per client address (any usernames): twenty are free (an office shares one
/// address), then the same doubling blocks; an hour without failures forgets them.
pub const ADDRESS_POLICY: SignInPolicy = SignInPolicy {
    free: 20,
    first_block: jiff::SignedDuration::from_secs(60),
    max_block: jiff::SignedDuration::from_secs(30 * 60),
    forget_after: jiff::SignedDuration::from_secs(3600),
};

/// The key failures of a username are counted under (as typed; long input is cut).
pub fn account_key(username: &str) -> String {
    username.trim().chars().take(128).collect()
}

/// The key failures from an address are counted under: the IPv4 address, or an IPv6
/// address's /64 (one host usually has a whole /64).
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// "4 minutes": a wait rounded up to whole minutes.
pub fn wait_text(wait: jiff::SignedDuration) -> String {
    let minutes = (wait.as_secs().max(1) + 59) / 60;
    if minutes == 1 {
        "1 minute".into()
    } else {
        format!("{minutes} minutes")
    }
}

/// The error of a sign-in refused because its username or address is blocked.
pub fn blocked_error(subject: SignInSubject, wait: jiff::SignedDuration) -> ApiError {
    let wait = wait_text(wait);
    match subject {
        SignInSubject::Account => ApiError::new(
            ErrorCode::TooManyAttempts,
            format!(
                "Too many failed sign-ins for this account; try again in {wait}, or ask an administrator to unlock the account."
            ),
        )
        .with_remedy("An administrator can unlock it on the Accounts page, with POST /api/v1/accounts/{id}/unlock or `deskbridge admin unlock --username NAME`."),
        SignInSubject::Address => ApiError::new(
            ErrorCode::TooManyAttempts,
            format!("Too many failed sign-ins from your network address; try again in {wait}."),
        )
        .with_remedy("An administrator can lift it at once with `deskbridge admin unlock --address IP`."),
    }
}

/// Lifts a username's sign-in block and forgets its failures; true when there were some.
pub async fn unlock_account(store: &Store, username: &str) -> Result<bool, ApiError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let cleared = tx
        .clear_sign_in_failures(SignInSubject::Account, &account_key(username))
        .await?;
    tx.commit().await?;
    Ok(cleared)
}

/// Lifts an address's sign-in block; true when there was one.
pub async fn unlock_address(store: &Store, address: std::net::IpAddr) -> Result<bool, ApiError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let cleared = tx
        .clear_sign_in_failures(SignInSubject::Address, &address_key(address))
        .await?;
    tx.commit().await?;
    Ok(cleared)
}

pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ApiError::invalid(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

pub fn check_username(username: &str) -> Result<(), ApiError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{username:?} is not a valid username: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

/// An account created with a one-time password, which it must change at its first sign-in.
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: Account,
    /// Shown once; only its hash is stored.
    pub one_time_password: String,
}

/// Creates an account with a one-time password.
pub async fn create_account(
    store: &Store,
    username: &str,
    role: Role,
    can_configure_connections: bool,
) -> Result<CreatedAccount, ApiError> {
    check_username(username)?;
    let one_time_password = random_token(15);
    let password_hash = hash_password(&one_time_password)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let account = tx
        .create_account(&NewAccount {
            username: username.to_owned(),
            display_name: username.to_owned(),
            password_hash,
            role,
            can_configure_connections,
            must_change_password: true,
        })
        .await?;
    tx.commit().await?;
    Ok(CreatedAccount {
        account,
        one_time_password,
    })
}

/// Every account with its sign-in state: the failures kept for its username, with
/// `blocked_until` only while the block lasts. The API's list, the Accounts page and
/// `deskbridge admin list` show this.
pub async fn accounts_with_sign_in_state(
    store: &Store,
) -> Result<Vec<(Account, Option<SignInFailures>)>, ApiError> {
    let now = store.now();
    let mut tx = store.read().await?;
    let accounts = tx.accounts().await?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        let failures = tx
            .sign_in_failures(SignInSubject::Account, &account_key(&account.username))
            .await?
            .map(|mut f| {
                f.blocked_until = f.blocked_at(now).map(deskbridge_store::format_timestamp);
                f
            });
        out.push((account, failures));
    }
    tx.commit().await?;
    Ok(out)
}

/// An account as the API shows it, with `locked_until` (RFC 3339, while failed sign-ins block
/// it) and `failed_sign_ins` (failures in a row).
pub fn account_json(account: &Account, failures: Option<&SignInFailures>) -> Value {
    let mut value = json!(account);
    value["locked_until"] = json!(failures.and_then(|f| f.blocked_until.clone()));
    value["failed_sign_ins"] = json!(failures.map_or(0, |f| f.failures));
    value
}

/// The account with this username, or a not-found error that names it.
pub async fn account_named(store: &Store, username: &str) -> Result<Account, ApiError> {
    let mut tx = store.read().await?;
    let account = tx.account_named(username.trim()).await?;
    tx.commit().await?;
    account.ok_or_else(|| {
        ApiError::not_found(format!("there is no account {:?}", username.trim()))
            .with_remedy("`deskbridge admin list` (or the Accounts page) shows every account.")
    })
}

/// Gives an account a new one-time password (it must choose its own at its next sign-in, as
/// after `create_account`), ends its sessions and lifts a sign-in block on it (the
/// administrator hands the password to its owner, who must be able to use it). Its API tokens
/// are refused until it has chosen the new password, and revoked then unless it keeps them.
pub async fn reset_password(store: &Store, account_id: i64) -> Result<CreatedAccount, ApiError> {
    let one_time_password = random_token(15);
    let password_hash = hash_password(&one_time_password)?;
    let mut tx = store.begin(WriteContext::manual()).await?;
    let account = tx
        .account(account_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {account_id}")))?;
    tx.set_account_password(account.id, &password_hash, true).await?;
    tx.delete_sessions_of(account.id, None).await?;
    tx.clear_sign_in_failures(SignInSubject::Account, &account_key(&account.username))
        .await?;
    let account = tx.account(account.id).await?.unwrap_or(account);
    tx.commit().await?;
    Ok(CreatedAccount {
        account,
        one_time_password,
    })
}

/// What an edit of an account changes; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountChange {
    pub role: Option<Role>,
    pub can_configure_connections: Option<bool>,
    pub disabled: Option<bool>,
}

/// Changes an account's role, permission or disabled state. Disabling ends its sessions, and
/// its API tokens are refused from then on. The last enabled administrator can be neither
/// disabled nor demoted: no one could administer the instance any more.
pub async fn change_account(
    store: &Store,
    account_id: i64,
    change: AccountChange,
) -> Result<Account, ApiError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let account = tx
        .account(account_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no account {account_id}")))?;
    let role = change.role.unwrap_or(account.role);
    let disabled = change.disabled.unwrap_or(account.disabled);
    let was_admin = account.role == Role::Administrator && !account.disabled;
    let stays_admin = role == Role::Administrator && !disabled;
    if was_admin && !stays_admin && tx.enabled_administrators_except(account.id).await? == 0 {
        return Err(ApiError::conflict(format!(
            "{:?} is the last enabled administrator; it cannot be {}",
            account.username,
            if disabled { "disabled" } else { "made an agent" }
        ))
        .with_remedy("Create or enable another administrator first."));
    }
    tx.update_account(
        account.id,
        role,
        change
            .can_configure_connections
            .unwrap_or(account.can_configure_connections),
        disabled,
    )
    .await?;
    let updated = tx.account(account.id).await?.unwrap_or(account);
    tx.commit().await?;
    Ok(updated)
}

/// The first administrator, when there is no account yet (`serve` on first start); `None` when
/// accounts exist.
pub async fn ensure_first_administrator(
    store: &Store,
    username: &str,
) -> Result<Option<CreatedAccount>, ApiError> {
    let mut tx = store.read().await?;
    let count = tx.account_count().await?;
    tx.commit().await?;
    if count > 0 {
        return Ok(None);
    }
    create_account(store, username, Role::Administrator, true)
        .await
        .map(Some)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax (the Microsoft sign-in comes back with a
/// top-level GET, which Strict would strip), Secure over https.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{}",
        if secure { "; Secure" } else { "" }
    )
}
