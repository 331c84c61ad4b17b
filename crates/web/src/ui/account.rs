//! "Your account": changing one's own password (also forced after a one-time password) and
//! creating API tokens, whose value is shown once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_store::WriteContext;

use super::html::{Field, Page, Section, cell, form, password_field, select, text_field, when, when_or};
use super::{UiResult, field, parse_form};
use crate::AppState;
use crate::access::Caller;
use crate::api;
use crate::auth;
use crate::error::ApiError;

async fn account_view(state: &AppState, caller: &Caller, flash: &str, error: &str, token: &str) -> UiResult {
    let mut tx = state.store.read().await?;
    let tokens = tx.api_tokens(caller.account.id).await?;
    tx.commit().await?;
    let mut page = Page::new(caller, "Your account");
    if !error.is_empty() {
        page = page.error(error);
    } else if caller.account.must_change_password {
        page = page.error("You signed in with a one-time password: choose your own password to continue.");
    }
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let mut password_fields = vec![
        password_field("current", "Current password", ""),
        password_field(
            "new",
            "New password",
            &format!("At least {} characters.", auth::MIN_PASSWORD_LEN),
        ),
        password_field("confirm", "New password again", ""),
    ];
    if !tokens.is_empty() {
        password_fields.push(Field {
            help:
                "A token acts as you: if the old password may be known to someone else, so may your tokens."
                    .into(),
            ..select(
                "tokens",
                &format!("Your {} API token(s)", tokens.len()),
                "revoke",
                &[("revoke", "Revoke them (recommended)"), ("keep", "Keep them")],
            )
        });
    }
    let password = Section::titled("Password")
        .text("Changing your password signs out your other sessions.")
        .form(form(
            "password",
            "/account/password",
            "Change password",
            password_fields,
        ));
    let mut tokens_section = Section::titled("API tokens")
        .text("Scripts send a token as `Authorization: Bearer …`. A token acts as you.")
        .table(
            &["Name", "Created", "Last used", "Expires"],
            tokens
                .iter()
                .map(|t| {
                    vec![
                        cell(&t.name),
                        when(&t.created_at),
                        when_or(t.last_used_at.as_deref(), "never"),
                        when_or(t.expires_at.as_deref(), "never"),
                    ]
                })
                .collect(),
        )
        .form(form(
            "token",
            "/account/tokens",
            "Create token",
            vec![
                text_field("name", "Token name", ""),
                Field {
                    kind: "number",
                    help: "Leave empty for a token that does not expire.".into(),
                    ..text_field("days", "Expires after (days)", "")
                },
            ],
        ));
    tokens_section.secret = token.to_owned();
    Ok(page.section(password).section(tokens_section).render())
}

pub(super) async fn account_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> UiResult {
    account_view(&state, &caller, "", "", "").await
}

pub(super) async fn change_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let mut tx = state.store.read().await?;
    let found = tx.account_for_sign_in(&caller.account.username).await?;
    tx.commit().await?;
    let Some((_, hash)) = found else {
        return Err(ApiError::not_found("your account no longer exists").into());
    };
    if !auth::verify_password(field(&f, "current"), &hash) {
        return account_view(&state, &caller, "", "The current password is wrong.", "").await;
    }
    if field(&f, "new") != field(&f, "confirm") {
        return account_view(&state, &caller, "", "The two new passwords differ.", "").await;
    }
    if let Err(e) = auth::check_new_password(field(&f, "new")) {
        return account_view(&state, &caller, "", &e.message, "").await;
    }
    let new_hash = auth::hash_password(field(&f, "new"))?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    tx.set_account_password(caller.account.id, &new_hash, false)
        .await?;
    // Other sessions (say, one opened with a leaked one-time password) end; this one stays.
    let sessions = tx
        .delete_sessions_of(caller.account.id, caller.session_id)
        .await?;
    // So do the API tokens, unless the form said to keep them (a form without the choice, or a
    // client that does not know it, revokes them).
    let tokens = if field(&f, "tokens") == "keep" {
        0
    } else {
        tx.delete_api_tokens_of(caller.account.id).await?
    };
    let mut keep = caller.clone();
    keep.account.must_change_password = false;
    tx.commit().await?;
    let mut flash = String::from("Your password was changed.");
    if sessions > 0 {
        flash.push_str(&format!(" {sessions} other session(s) were signed out."));
    }
    if tokens > 0 {
        flash.push_str(&format!(
            " {tokens} API token(s) were revoked: create new ones for your scripts."
        ));
    }
    account_view(&state, &keep, &flash, "", "").await
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let days = match field(&f, "days").trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => return account_view(&state, &caller, "", "Days must be a whole number.", "").await,
        },
    };
    match api::mint_token(&state, &caller, field(&f, "name"), days).await {
        Ok(minted) => {
            let token = minted["token"].as_str().unwrap_or_default().to_owned();
            account_view(&state, &caller, "Token created.", "", &token).await
        }
        Err(e) => account_view(&state, &caller, "", &e.message, "").await,
    }
}
