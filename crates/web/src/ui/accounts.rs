//! Administering accounts (administrators only): the list of accounts and adding one, which
//! gets a one-time password shown once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_store::Role;

use super::html::{Field, Page, Section, cell, checkbox, form, hidden, select, text_field};
use super::{UiResult, field, parse_form};
use crate::AppState;
use crate::access::Caller;
use crate::{api, auth};

async fn accounts_view(
    state: &AppState,
    caller: &Caller,
    flash: &str,
    error: &str,
    secret: &str,
) -> UiResult {
    let accounts = api::accounts_with_sign_in_state(state).await?;
    let mut page = Page::new(caller, "Accounts");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let rows = accounts
        .iter()
        .map(|(a, failures)| {
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
                cell(match failures {
                    Some(f) => match &f.blocked_until {
                        Some(until) => format!("locked until {until} ({} failed in a row)", f.failures),
                        None => format!("{} failed in a row", f.failures),
                    },
                    None => String::new(),
                }),
                cell(&a.created_at),
            ]
        })
        .collect();
    let mut locked = Section::titled("Locked accounts").text(
        "After five failed sign-ins in a row an account is locked for a minute, then twice as long after each \
         further failure (up to 30 minutes). Unlock it once its owner is known to be the one signing in.",
    );
    for (a, failures) in &accounts {
        if failures.as_ref().is_some_and(|f| f.blocked_until.is_some()) {
            let mut unlock = form(
                &format!("unlock-{}", a.id),
                "/admin/accounts",
                &format!("Unlock {}", a.username),
                vec![hidden("action", "unlock"), hidden("account_id", a.id.to_string())],
            );
            unlock.class = "inline";
            locked = locked.form(unlock);
        }
    }
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
                "Sign-in",
                "Created",
            ],
            rows,
        ))
        .section(if locked.forms.is_empty() {
            Section::default()
        } else {
            locked
        })
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
    if field(&f, "action") == "unlock" {
        return unlock(&state, &caller, field(&f, "account_id")).await;
    }
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

async fn unlock(state: &AppState, caller: &Caller, account_id: &str) -> UiResult {
    let Ok(id) = account_id.parse::<i64>() else {
        return accounts_view(state, caller, "", "Choose an account to unlock.", "").await;
    };
    let mut tx = state.store.read().await?;
    let account = tx.account(id).await?;
    tx.commit().await?;
    let Some(account) = account else {
        return accounts_view(state, caller, "", &format!("There is no account {id}."), "").await;
    };
    let flash = if auth::unlock_account(&state.store, &account.username).await? {
        format!("{} is unlocked: it can sign in again now.", account.username)
    } else {
        format!("{} was not locked.", account.username)
    };
    accounts_view(state, caller, &flash, "", "").await
}
