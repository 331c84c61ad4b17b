//! Administering accounts (administrators only): the list of accounts and adding one, which
//! gets a one-time password shown once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_store::Role;

use super::html::{Field, Page, Section, cell, checkbox, form, select, text_field};
use super::{UiResult, field, parse_form};
use crate::AppState;
use crate::access::Caller;
use crate::auth;

async fn accounts_view(
    state: &AppState,
    caller: &Caller,
    flash: &str,
    error: &str,
    secret: &str,
) -> UiResult {
    let mut tx = state.store.read().await?;
    let accounts = tx.accounts().await?;
    tx.commit().await?;
    let mut page = Page::new(caller, "Accounts");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let rows = accounts
        .iter()
        .map(|a| {
            vec![
                cell(&a.username),
                cell(a.role.as_str()),
                cell(if a.can_configure_connections { "yes" } else { "no" }),
                cell(if a.disabled {
                    "disabled"
                } else if a.must_change_password {
                    "must set a password"
                } else {
                    "active"
                }),
                cell(&a.created_at),
            ]
        })
        .collect();
    let mut create = Section::titled("Add an account")
        .text("The new account gets a one-time password; it chooses its own at first sign-in. Give agents access per connection on the connection's page.")
        .form(form(
            "new-account",
            "/admin/accounts",
            "Add account",
            vec![
                Field { required: true, ..text_field("username", "Username", "") },
                select("role", "Role", "agent", &[("agent", "Agent"), ("administrator", "Administrator")]),
                checkbox("can_configure", "Can configure Entra connections (create connections)", false),
            ],
        ));
    create.secret = secret.to_owned();
    Ok(page
        .section(Section::default().table(
            &[
                "Username",
                "Role",
                "Can configure connections",
                "State",
                "Created",
            ],
            rows,
        ))
        .section(create)
        .render())
}

pub(super) async fn accounts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> UiResult {
    accounts_view(&state, &caller, "", "", "").await
}

pub(super) async fn create_account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let role = Role::parse(field(&f, "role")).unwrap_or(Role::Agent);
    match auth::create_account(
        &state.store,
        field(&f, "username").trim(),
        role,
        field(&f, "can_configure") == "on",
    )
    .await
    {
        Ok(created) => {
            let flash = format!(
                "Account {} created with a one-time password.",
                created.account.username
            );
            accounts_view(&state, &caller, &flash, "", &created.one_time_password).await
        }
        Err(e) => accounts_view(&state, &caller, "", &e.message, "").await,
    }
}
