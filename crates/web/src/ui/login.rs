//! Signing in and out. The sign-in form has no session yet, so it is protected by a
//! double-submit token (a cookie set with the form must equal the form's field); a session
//! cookie is set on success and removed on sign-out.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use deskbridge_store::WriteContext;

use super::html::{Field, Nav, PageT, Section, form, hidden, password_field, text_field};
use super::{UiResult, field, parse_form, see_other};
use crate::AppState;
use crate::auth::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_HOURS};
use crate::error::ApiError;

fn login_page(next: &str, csrf: &str, error: &str, secure: bool) -> Response {
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
    let page = PageT {
        title: "Sign in".into(),
        heading: String::new(),
        nav,
        tabs: Vec::new(),
        flash: String::new(),
        error: error.into(),
        sections: vec![Section::default().form(sign_in)],
        run_id: String::new(),
    };
    let cookie = auth::set_cookie(LOGIN_CSRF_COOKIE, csrf, 3600, secure);
    match page.render() {
        Ok(html) => {
            let status = if error.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            (status, [(header::SET_COOKIE, cookie)], Html(html)).into_response()
        }
        Err(e) => ApiError::internal(format!("page rendering: {e}")).into_response(),
    }
}

/// Only paths on this site may be gone to after signing in.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/connections"
    }
}

pub(super) async fn login_form(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = parse_form(query.as_deref().unwrap_or("").as_bytes());
    login_page(
        safe_next(field(&q, "next")),
        &auth::random_token(24),
        "",
        state.secure_cookies,
    )
}

pub(super) async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> UiResult {
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
            state.secure_cookies,
        ));
    }
    let mut tx = state.store.read().await?;
    let found = tx.account_for_sign_in(field(&form, "username").trim()).await?;
    tx.commit().await?;
    let account = match found {
        Some((account, hash))
            if !account.disabled && auth::verify_password(field(&form, "password"), &hash) =>
        {
            account
        }
        _ => {
            return Ok(login_page(
                &next,
                &fresh,
                "Wrong username or password.",
                state.secure_cookies,
            ));
        }
    };
    let token = auth::random_token(32);
    let csrf = auth::random_token(32);
    let expires = state.clock.now() + jiff::SignedDuration::from_hours(SESSION_HOURS);
    let mut tx = state.store.begin(WriteContext::manual()).await?;
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
