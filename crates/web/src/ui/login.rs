//! Signing in and out. The sign-in form has no session yet, so it is protected by a
//! double-submit token (a cookie set with the form must equal the form's field); a session
//! cookie is set on success and removed on sign-out.

use askama::Template;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use deskbridge_store::{Account, SignInSubject, WriteContext};

use super::html::{Field, Nav, PageT, Section, form, hidden, password_field, text_field};
use super::{UiResult, field, parse_form, see_other};
use crate::AppState;
use crate::auth::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_HOURS};
use crate::error::ApiError;

/// How the sign-in page is shown: cookies marked `Secure`, and whether single sign-on is offered.
#[derive(Debug, Clone, Copy)]
pub(super) struct View {
    pub(super) secure: bool,
    pub(super) sso: bool,
}

impl View {
    pub(super) async fn of(state: &AppState) -> Self {
        Self {
            secure: state.secure_cookies,
            sso: crate::sso::enabled(&state.store).await,
        }
    }
}

pub(super) fn login_page(next: &str, csrf: &str, error: &str, view: View) -> Response {
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    login_page_with(next, csrf, error, view, status)
}

pub(super) fn login_page_with(
    next: &str,
    csrf: &str,
    error: &str,
    view: View,
    status: StatusCode,
) -> Response {
    let nav = Nav {
        csrf: csrf.to_owned(),
        ..Nav::default()
    };
    let mut sign_in = form(
        "login",
        "/login",
        "Sign in",
        vec![
            Field {
                required: true,
                ..text_field("username", "Username", "")
            },
            Field {
                required: true,
                ..password_field("password", "Password", "")
            },
            hidden("next", next),
        ],
    );
    sign_in.class = "narrow";
    let mut section = Section::default().form(sign_in);
    if view.sso {
        section = section.link(
            "Sign in with Microsoft",
            super::with_query(crate::sso::START_PATH, &[("next", next.to_owned())]),
        );
    }
    let page = PageT {
        title: "Sign in".into(),
        heading: String::new(),
        nav,
        tabs: Vec::new(),
        flash: String::new(),
        error: error.into(),
        sections: vec![section],
        run_id: String::new(),
    };
    let cookie = auth::set_cookie(LOGIN_CSRF_COOKIE, csrf, 3600, view.secure);
    match page.render() {
        Ok(html) => (status, [(header::SET_COOKIE, cookie)], Html(html)).into_response(),
        Err(e) => ApiError::internal(format!("page rendering: {e}")).into_response(),
    }
}

/// Only paths on this site may be gone to after signing in: a relative path starting with one
/// `/`, without backslashes (browsers read `/\host` as `//host`) or control characters (a tab
/// or newline inside `//` is dropped by browsers, and would split a header), and not too long.
pub(super) fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.len() <= 2048
        && !next.chars().any(|c| c == '\\' || c.is_control());
    if ok { next } else { "/connections" }
}

/// The client's address: the last `X-Forwarded-For` entry when a trusted proxy writes it, else
/// the connection's peer.
fn client_address(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<std::net::IpAddr> {
    if state.trust_forwarded_for {
        // Only the last entry: the proxy wrote it; the ones before came with the request.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse::<std::net::IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.ip())
}

/// A sign-in refused before its password is looked at (the username or address is blocked).
fn blocked_page(
    next: &str,
    csrf: &str,
    error: &ApiError,
    wait: jiff::SignedDuration,
    view: View,
) -> Response {
    let mut page = login_page_with(next, csrf, &error.message, view, StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        page.headers_mut().insert(header::RETRY_AFTER, v);
    }
    page
}

pub(super) async fn login_form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let view = View::of(&state).await;
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    login_page(safe_next(field(&q, "next")), &auth::random_token(24), "", view)
}

pub(super) async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let view = View::of(&state).await;
    let form = parse_form(&body);
    let next = safe_next(field(&form, "next")).to_owned();
    // Double-submit: the form's token must equal the cookie set with the form.
    let cookie_token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, LOGIN_CSRF_COOKIE))
        .unwrap_or("");
    let fresh = auth::random_token(24);
    if cookie_token.is_empty() || !auth::same_secret(cookie_token, field(&form, "csrf")) {
        return Ok(login_page(
            &next,
            &fresh,
            "The sign-in form expired or did not come from this site. Please try again.",
            view,
        ));
    }
    let username = field(&form, "username").trim();
    let account_key = auth::account_key(username);
    let address =
        client_address(&state, &headers, peer.map(|Extension(ConnectInfo(p))| p)).map(auth::address_key);
    let now = state.store.now();
    let mut tx = state.store.read().await?;
    // A blocked username or address is refused without looking at the password, whether or not
    // the account exists.
    let mut blocks = Vec::new();
    if let Some(f) = tx.sign_in_failures(SignInSubject::Account, &account_key).await? {
        blocks.extend(f.blocked_at(now).map(|until| (SignInSubject::Account, until)));
    }
    if let Some(address) = &address
        && let Some(f) = tx.sign_in_failures(SignInSubject::Address, address).await?
    {
        blocks.extend(f.blocked_at(now).map(|until| (SignInSubject::Address, until)));
    }
    let found = if blocks.is_empty() {
        tx.account_for_sign_in(username).await?
    } else {
        None
    };
    tx.commit().await?;
    if let Some((subject, until)) = blocks.into_iter().max_by_key(|(_, until)| *until) {
        let wait = until.duration_since(now);
        tracing::warn!(
            subject = subject.as_str(),
            "a sign-in was refused: too many failed attempts"
        );
        return Ok(blocked_page(
            &next,
            &fresh,
            &auth::blocked_error(subject, wait),
            wait,
            view,
        ));
    }
    // One argon2 verification whatever the case: unknown, disabled or active account, so the time
    // taken tells nothing either.
    let (account, hash) = match found {
        Some((account, hash)) => (Some(account), Some(hash)),
        None => (None, None),
    };
    let verified = auth::verify_sign_in(field(&form, "password"), hash).await;
    // A disabled account gets the same answer whatever the password, so it tells nothing about
    // the password; and as no answer rewards a right guess, it is not counted as a failure.
    if account.as_ref().is_some_and(|a| a.disabled) {
        tracing::warn!("a sign-in to a disabled account was refused");
        return Ok(login_page_with(
            &next,
            &fresh,
            "This account is disabled. Ask an administrator to enable it again.",
            view,
            StatusCode::FORBIDDEN,
        ));
    }
    let account = match account {
        Some(account) if verified && !account.disabled => account,
        _ => {
            let mut tx = state.store.begin(WriteContext::manual()).await?;
            let mut failures = vec![
                tx.record_sign_in_failure(SignInSubject::Account, &account_key, &auth::ACCOUNT_POLICY)
                    .await?,
            ];
            if let Some(address) = &address {
                failures.push(
                    tx.record_sign_in_failure(SignInSubject::Address, address, &auth::ADDRESS_POLICY)
                        .await?,
                );
            }
            tx.commit().await?;
            // The failure that starts a block says so at once.
            if let Some((subject, until)) = failures
                .iter()
                .filter_map(|f| f.blocked_at(now).map(|until| (f.subject, until)))
                .max_by_key(|(_, until)| *until)
            {
                let wait = until.duration_since(now);
                let error = auth::blocked_error(subject, wait);
                let text = format!("Wrong username or password. {}", error.message);
                let error = ApiError {
                    message: text,
                    ..error
                };
                return Ok(blocked_page(&next, &fresh, &error, wait, view));
            }
            return Ok(login_page(&next, &fresh, "Wrong username or password.", view));
        }
    };
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.clear_sign_in_failures(SignInSubject::Account, &account_key)
        .await?;
    tx.commit().await?;
    signed_in(&state, &account, next).await
}

/// Opens a session for `account` (a password or a single sign-on checked it) and goes to
/// `next`, or to the account page while it must choose a password.
pub(super) async fn signed_in(state: &AppState, account: &Account, next: String) -> UiResult {
    let token = auth::random_token(32);
    let csrf = auth::random_token(32);
    let expires = state.clock.now() + jiff::SignedDuration::from_hours(SESSION_HOURS);
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.record_sign_in(account.id).await?;
    tx.delete_expired_sessions().await?;
    tx.create_session(account.id, &auth::token_hash(&token), &csrf, expires)
        .await?;
    tx.commit().await?;
    let to = if account.must_change_password {
        "/account".to_owned()
    } else {
        next
    };
    let mut response = see_other(&to);
    let headers = response.headers_mut();
    for value in [
        auth::set_cookie(SESSION_COOKIE, &token, SESSION_HOURS * 3600, state.secure_cookies),
        auth::set_cookie(LOGIN_CSRF_COOKIE, "", 0, state.secure_cookies),
        auth::set_cookie(crate::sso::STATE_COOKIE, "", 0, state.secure_cookies),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

pub(super) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> UiResult {
    if let Some(token) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, SESSION_COOKIE))
    {
        let mut tx = state.store.begin(WriteContext::manual()).await?;
        tx.delete_session(&auth::token_hash(token)).await?;
        tx.commit().await?;
    }
    let cookie = auth::set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_a_relative_path_on_this_site() {
        for ok in ["/connections", "/connections/3?tab=logs", "/runs/9#top", "/"] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "",
            "connections",
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "/a\\b",
            "/\t/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\u{7f}",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), "/connections", "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(3000))), "/connections");
    }
}
