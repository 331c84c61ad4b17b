//! The desk's own settings (administrators only): whether distribution groups may be added as
//! ticket followers, and the connection a group is read through when none is named. Each
//! connection allows it too, in its mappings' Followers options.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use deskbridge_core::ConnectionId;
use deskbridge_store::FollowerSettings;

use super::html::{Page, Section, checkbox, form, select};
use super::{UiResult, field, parse_form};
use crate::AppState;
use crate::access::Caller;
use crate::api;

async fn settings_view(state: &AppState, caller: &Caller, flash: &str, error: &str) -> UiResult {
    let mut tx = state.store.read().await?;
    let current = tx.follower_settings().await?;
    let connections = tx.connections().await?;
    tx.commit().await?;
    let mut options: Vec<(String, String)> = vec![(String::new(), "None: name one with each group".into())];
    options.extend(connections.iter().map(|c| (c.id.0.to_string(), c.name.clone())));
    let options: Vec<(&str, &str)> = options.iter().map(|(v, l)| (v.as_str(), l.as_str())).collect();
    let chosen = current
        .default_connection
        .map(|id| id.0.to_string())
        .unwrap_or_default();
    let mut page = Page::new(caller, "Settings");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    if !error.is_empty() {
        page = page.error(error);
    }
    let followers = Section::titled("Distribution groups as ticket followers")
        .text(
            "Allow groups to be added as ticket followers: their list address follows (members join and leave \
             the email chain as the list changes; no access to tickets), or their members do, each as a desk \
             user where imported, else by address (up to the connection's member cap). A connection must \
             allow it as well, in its mappings' Followers options. The default connection reads the groups \
             when none is named.",
        )
        .form(form(
            "followers-settings",
            "/admin/settings",
            "Save",
            vec![
                checkbox("enabled", "Allow groups to be added as ticket followers", current.enabled),
                select("default_connection", "Default connection", &chosen, &options),
            ],
        ));
    Ok(page.section(followers).render())
}

pub(super) async fn settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> UiResult {
    settings_view(&state, &caller, "", "").await
}

pub(super) async fn save_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let default_connection = match field(&f, "default_connection").trim() {
        "" => None,
        id => match id.parse::<i64>() {
            Ok(id) => Some(ConnectionId(id)),
            Err(_) => return settings_view(&state, &caller, "", "Choose a connection from the list.").await,
        },
    };
    let settings = FollowerSettings {
        enabled: field(&f, "enabled") == "on",
        default_connection,
    };
    match api::save_follower_settings(&state, &caller, settings).await {
        Ok(()) => settings_view(&state, &caller, "Settings saved.", "").await,
        Err(e) => settings_view(&state, &caller, "", &format!("Not saved: {}", e.message)).await,
    }
}
