//! Administering accounts (administrators only): the list of accounts, adding one (it gets a
//! one-time password shown once), unlocking one, resetting a password (a new one-time password,
//! shown once) and disabling or enabling one. Each change is confirmed with a tick box, and no
//! one can disable their own account here.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_store::{Account, Role};

use super::html::{
    Field, Page, Section, cell, checkbox, form, hidden, phrase, select, text_field, when, when_or,
};
use super::{UiError, UiResult, field, parse_form};
use crate::AppState;
use crate::access::Caller;
use crate::{api, auth};

/// A submitted form.
type Fields = std::collections::HashMap<String, String>;

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
                match failures {
                    Some(f) => match &f.blocked_until {
                        Some(until) => phrase(
                            "locked until ",
                            until,
                            format!(" ({} failed in a row)", f.failures),
                        ),
                        None => cell(format!("{} failed in a row", f.failures)),
                    },
                    None => cell(""),
                },
                when_or(a.last_sign_in_at.as_deref(), "never"),
                cell(match (&a.linked_tenant_id, &a.linked_object_id) {
                    (Some(tenant), Some(object)) => format!("{object} in tenant {tenant}"),
                    _ => String::new(),
                }),
                when(&a.created_at),
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
    let usernames = |keep: &dyn Fn(&Account) -> bool| -> Vec<(String, String)> {
        accounts
            .iter()
            .filter(|(a, _)| keep(a))
            .map(|(a, _)| (a.id.to_string(), a.username.clone()))
            .collect()
    };
    // One's own password is changed on the account page, with the current one.
    let others = usernames(&|a| a.id != caller.account.id);
    let mut manage = Section::titled("Reset a password or disable an account").text(
        "A reset gives the account a new one-time password, shown once here; its sessions end and it \
         must choose its own password at its next sign-in. A disabled account cannot sign in, its \
         sessions end and its API tokens are refused until it is enabled again. You change your own \
         password on your account page, and cannot disable your own account, nor the last enabled \
         administrator.",
    );
    if !others.is_empty() {
        let mut reset = form(
            "reset-password",
            "/admin/accounts",
            "Reset password",
            vec![
                hidden("action", "reset"),
                choose("account_id", "Account", &others),
                checkbox(
                    "confirm",
                    "Yes, replace its password and sign it out everywhere",
                    false,
                ),
            ],
        );
        reset.danger = true;
        manage = manage.form(reset);
    }
    let can_disable = usernames(&|a| !a.disabled && a.id != caller.account.id);
    if !can_disable.is_empty() {
        let mut disable = form(
            "disable-account",
            "/admin/accounts",
            "Disable account",
            vec![
                hidden("action", "disable"),
                choose("account_id", "Account", &can_disable),
                checkbox("confirm", "Yes, disable it and sign it out", false),
            ],
        );
        disable.danger = true;
        manage = manage.form(disable);
    }
    let disabled = usernames(&|a| a.disabled);
    if !disabled.is_empty() {
        manage = manage.form(form(
            "enable-account",
            "/admin/accounts",
            "Enable account",
            vec![
                hidden("action", "enable"),
                choose("account_id", "Disabled account", &disabled),
            ],
        ));
    }
    let all = usernames(&|_| true);
    let link_identity = Section::titled("Link a Microsoft identity")
        .text(
            "With single sign-on on, an account signs in with the Microsoft work account linked to it: its \
             tenant id and object id (Microsoft Entra admin center, Users, the person's Object ID). An agent's \
             account is linked when the imported desk agent first signs in; link an administrator's here. \
             Leave both empty to unlink.",
        )
        .form(form(
            "link-identity",
            "/admin/accounts",
            "Save identity",
            vec![
                hidden("action", "link"),
                choose("account_id", "Account", &all),
                text_field("tenant_id", "Tenant id", ""),
                text_field("object_id", "Object id", ""),
            ],
        ));
    Ok(page
        .section(Section::default().table(
            &[
                "Username",
                "Role",
                "Can configure connections",
                "State",
                "Sign-in",
                "Last signed in",
                "Microsoft identity",
                "Created",
            ],
            rows,
        ))
        .section(if locked.forms.is_empty() {
            Section::default()
        } else {
            locked
        })
        .section(if manage.forms.is_empty() {
            Section::default()
        } else {
            manage
        })
        .section(create)
        .section(link_identity)
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
    match field(&f, "action") {
        "unlock" => return unlock(&state, &caller, field(&f, "account_id")).await,
        "reset" => return reset(&state, &caller, &f).await,
        "disable" => return set_disabled(&state, &caller, &f, true).await,
        "enable" => return set_disabled(&state, &caller, &f, false).await,
        "link" => return link_identity(&state, &caller, &f).await,
        _ => {}
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

/// A select of accounts, by username (the value is the id).
fn choose(name: &'static str, label: &str, accounts: &[(String, String)]) -> super::html::Field {
    let options: Vec<(&str, &str)> = accounts
        .iter()
        .map(|(id, username)| (id.as_str(), username.as_str()))
        .collect();
    select(name, label, "", &options)
}

/// The account a form names: `Ok(Err(what is wrong))` to show on the page again.
async fn chosen(state: &AppState, f: &Fields) -> Result<Result<Account, String>, UiError> {
    let Ok(id) = field(f, "account_id").parse::<i64>() else {
        return Ok(Err("Choose an account.".into()));
    };
    let mut tx = state.store.read().await?;
    let account = tx.account(id).await?;
    tx.commit().await?;
    Ok(account.ok_or_else(|| format!("There is no account {id} any more.")))
}

async fn reset(state: &AppState, caller: &Caller, f: &Fields) -> UiResult {
    let account = match chosen(state, f).await? {
        Ok(account) => account,
        Err(e) => return accounts_view(state, caller, "", &e, "").await,
    };
    if account.id == caller.account.id {
        return accounts_view(
            state,
            caller,
            "",
            "Change your own password on your account page, with your current one.",
            "",
        )
        .await;
    }
    if field(f, "confirm") != "on" {
        let error = format!(
            "Tick the box to confirm the reset of {}'s password.",
            account.username
        );
        return accounts_view(state, caller, "", &error, "").await;
    }
    match auth::reset_password(&state.store, account.id).await {
        Ok(reset) => {
            tracing::info!(account = %account.username, "an administrator reset a password");
            let flash = format!(
                "{}'s password was reset and its sessions ended. Give it the one-time password below; it \
                 chooses its own at its next sign-in.",
                account.username
            );
            accounts_view(state, caller, &flash, "", &reset.one_time_password).await
        }
        Err(e) => accounts_view(state, caller, "", &e.message, "").await,
    }
}

async fn set_disabled(state: &AppState, caller: &Caller, f: &Fields, disabled: bool) -> UiResult {
    let account = match chosen(state, f).await? {
        Ok(account) => account,
        Err(e) => return accounts_view(state, caller, "", &e, "").await,
    };
    if disabled && account.id == caller.account.id {
        return accounts_view(
            state,
            caller,
            "",
            "You cannot disable your own account; another administrator can.",
            "",
        )
        .await;
    }
    if disabled && field(f, "confirm") != "on" {
        let error = format!("Tick the box to confirm disabling {}.", account.username);
        return accounts_view(state, caller, "", &error, "").await;
    }
    let change = auth::AccountChange {
        disabled: Some(disabled),
        ..auth::AccountChange::default()
    };
    match auth::change_account(&state.store, account.id, change).await {
        Ok(changed) => {
            tracing::info!(account = %changed.username, disabled, "an administrator changed an account's state");
            let flash = if disabled {
                format!(
                    "{} is disabled: it is signed out, cannot sign in and its API tokens are refused.",
                    changed.username
                )
            } else {
                format!("{} is enabled: it can sign in again.", changed.username)
            };
            accounts_view(state, caller, &flash, "", "").await
        }
        Err(e) => accounts_view(state, caller, "", &e.message, "").await,
    }
}

async fn link_identity(state: &AppState, caller: &Caller, f: &Fields) -> UiResult {
    let account = match chosen(state, f).await? {
        Ok(account) => account,
        Err(e) => return accounts_view(state, caller, "", &e, "").await,
    };
    let (tenant, object) = (field(f, "tenant_id").trim(), field(f, "object_id").trim());
    let identity = (!tenant.is_empty() || !object.is_empty()).then_some((tenant, object));
    match crate::sso::link(&state.store, account.id, identity).await {
        Ok(linked) => {
            tracing::info!(account = %linked.username, linked = identity.is_some(), "an administrator changed an account's Microsoft identity");
            let flash = match identity {
                Some(_) => format!("{} now signs in with that Microsoft identity.", linked.username),
                None => format!("{} has no Microsoft identity any more.", linked.username),
            };
            accounts_view(state, caller, &flash, "", "").await
        }
        Err(e) => accounts_view(state, caller, "", &e.message, "").await,
    }
}
