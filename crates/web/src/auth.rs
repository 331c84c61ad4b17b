//! Passwords (argon2id), random tokens (sessions, API tokens, CSRF, one-time passwords) and the
//! cookies that carry a session. Only hashes of passwords and tokens reach the store.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deskbridge_store::{Account, NewAccount, Role, Store, WriteContext};
use rand::RngCore as _;
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

/// Whether `password` matches the stored hash (a malformed hash matches nothing).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
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
