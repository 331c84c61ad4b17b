//! The Tenants tab of a many-tenant connection (CSP): each customer tenant with its desk customer
//! (or "do not import") and licence import type, and a form to change one. Choosing a tenant's
//! desk customer is offered to administrators only (it attaches the tenant's data to that
//! customer); the customer list is theirs to see. Each tenant's admin consent of the GDAP app can
//! be started here: the browser goes to Microsoft's admin-consent page and comes back to
//! `/auth/microsoft/consent`, which records the grant (checked against its pending state).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use deskbridge_store::Access;
use deskbridge_store::{DirectoryFilter, Entity};
use serde_json::{Map, Value, json};

use super::html::{Cell, Opt, Page, Section, cell, destructive, form, phrase, select};
use super::{UiResult, confirmed, field, parse_form, reload, see_other};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api;

/// What "leave it as it is" is sent as by the form's selects.
const UNCHANGED: &str = "";
const DO_NOT_IMPORT: &str = "none";
const CONNECTIONS: &str = "connection";

async fn tenants_view(state: &AppState, caller: &Caller, scope: &Scope, flash: &str) -> UiResult {
    tenants_page(state, caller, scope, flash, "").await
}

async fn tenants_page(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    flash: &str,
    error: &str,
) -> UiResult {
    let mut page = Page::connection(caller, scope, "tenants");
    if !error.is_empty() {
        page = page.error(error);
    }
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let Ok(table) = api::table_of(state, &scope.connection) else {
        return Ok(page
            .section(Section::titled("Tenants").text(format!(
                "A {} connection reads one tenant, set on its details page.",
                scope.connection.kind
            )))
            .render());
    };
    let tenants = api::tenants_of(state, &scope.connection).await?;
    // A column and a field per setting a tenant may override (licence import type, relationship
    // type), as the connector describes them.
    let overridable = table.overridable();
    let rows = tenants
        .iter()
        .map(|t| {
            let mut row = vec![
                cell(t.name.clone()),
                cell(t.tenant_id.clone()),
                cell(t.customer_name.clone().unwrap_or_else(|| "Do not import".into())),
                cell(t.relationship.clone().unwrap_or_else(|| "Not known yet".into())),
            ];
            row.extend(overridable.iter().map(|setting| {
                cell(
                    t.overrides
                        .get(setting.key)
                        .map(|value| choice_label(setting, value))
                        .unwrap_or_else(|| "The connection's".into()),
                )
            }));
            row.push(consent_status(t));
            row
        })
        .collect();
    let mut headings = vec!["Tenant", "Tenant id", "Desk customer", "Relationship"];
    headings.extend(overridable.iter().map(|s| s.label));
    headings.push("Admin consent");
    let mut listing = Section::titled("Customer tenants").table(&headings, rows);
    listing.id = "tenants".into();
    if tenants.is_empty() {
        listing = listing
            .text("No customer tenant found yet: a sync (or a preview) lists the partner's customers.");
    }
    page = page.section(listing);
    if scope.access == deskbridge_store::Access::Modify && !tenants.is_empty() {
        let mut which = select("tenant", "Tenant", "", &[]);
        which.options = tenants
            .iter()
            .map(|t| Opt {
                value: t.tenant_id.clone(),
                label: format!("{} ({})", t.name, t.tenant_id),
            })
            .collect();
        let mut fields = vec![which.clone()];
        page = page.section(
            Section::titled("Grant admin consent")
                .text(
                    "Sends you to Microsoft's admin-consent page for the GDAP app in the chosen tenant: sign in there \
                     as an administrator of that customer tenant and accept. Coming back here records the grant; the \
                     connection's check then says whether the app can read the tenant.",
                )
                .form(form(
                    "grant-consent",
                    format!("/connections/{}/tenants/consent", scope.connection.id),
                    "Grant admin consent",
                    vec![which],
                )),
        );
        if caller.is_admin() {
            let mut customer = select("customer", "Desk customer", UNCHANGED, &[]);
            customer.options = vec![
                Opt {
                    value: UNCHANGED.into(),
                    label: "(leave as it is)".into(),
                },
                Opt {
                    value: DO_NOT_IMPORT.into(),
                    label: "Do not import".into(),
                },
            ];
            let mut tx = state.store.read().await?;
            let customers = tx
                .directory_page(
                    Entity::Customer,
                    &DirectoryFilter {
                        limit: 500,
                        ..Default::default()
                    },
                )
                .await?;
            tx.commit().await?;
            customer.options.extend(customers.iter().map(|c| Opt {
                value: c.id.0.to_string(),
                label: c.text("name").unwrap_or_default().to_owned(),
            }));
            fields.push(customer);
        }
        for setting in overridable {
            let deskbridge_source::settings::SettingKind::Choice { options } = setting.kind else {
                continue;
            };
            let mut own = select(setting.key, setting.label, UNCHANGED, &[]);
            own.options = vec![
                Opt {
                    value: UNCHANGED.into(),
                    label: "(leave as it is)".into(),
                },
                Opt {
                    value: CONNECTIONS.into(),
                    label: "The connection's".into(),
                },
            ];
            own.options.extend(options.iter().map(|o| Opt {
                value: o.value.into(),
                label: o.label.into(),
            }));
            fields.push(own);
        }
        page = page.section(Section::titled("Change a tenant").form(form(
            "change-tenant",
            format!("/connections/{}/tenants", scope.connection.id),
            "Save tenant",
            fields,
        )));
        let mut reset_which = select("tenant", "Tenant", "", &[]);
        reset_which.options = std::iter::once(Opt {
            value: String::new(),
            label: "Every tenant".into(),
        })
        .chain(tenants.iter().map(|t| Opt {
            value: t.tenant_id.clone(),
            label: format!("{} ({})", t.name, t.tenant_id),
        }))
        .collect();
        let reset = destructive(
            form(
                "reset-deltas",
                format!("/connections/{}/tenants/reset", scope.connection.id),
                "Reset deltas",
                vec![reset_which],
            ),
            "Yes, forget the delta links: the next run reads the chosen tenant(s) whole",
        );
        page = page.section(
            Section::titled("Reset deltas")
                .text(
                    "The tenant's delta links are forgotten: the next run reads the tenant whole, as a first import \
                     does (slower, and every user is compared again). Nothing in the desk changes until then.",
                )
                .form(reset),
        );
        page = page.section(
            Section::titled("Generate mappings")
                .text("Every tenant assigned to a desk customer without a site mapping of its own gets the customer's catch-all mapping.")
                .form(form(
                    "generate-mappings",
                    format!("/connections/{}/tenants/mappings", scope.connection.id),
                    "Generate mappings",
                    Vec::new(),
                )),
        );
    }
    Ok(page.render())
}

/// Resets one tenant's deltas, or every tenant's.
pub(super) async fn reset_deltas(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let tenant = field(&f, "tenant").trim().to_owned();
    if let Err(e) = confirmed(&f, "the reset of the deltas") {
        return tenants_page(&state, &caller, &scope, "", &e.message).await;
    }
    let flash = match api::reset_tenant_deltas(
        &state,
        &scope.connection,
        Some(tenant.as_str()).filter(|t| !t.is_empty()),
    )
    .await
    {
        Ok(cleared) => format!(
            "{cleared} cursor(s) forgotten: the next run reads {} whole.",
            if tenant.is_empty() {
                "every tenant"
            } else {
                tenant.as_str()
            }
        ),
        Err(e) => format!("The deltas were not reset: {}", e.message),
    };
    tenants_view(&state, &caller, &scope, &flash).await
}

/// Generates the missing catch-all site mappings.
pub(super) async fn generate_mappings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    let flash = match api::table_of(&state, &scope.connection) {
        Ok(table) => match table.generate_mappings(&state.store, &scope.connection).await {
            Ok(added) => format!("{added} catch-all site mapping(s) added."),
            Err(e) => format!("No mapping was generated: {e}"),
        },
        Err(e) => e.message,
    };
    tenants_view(&state, &caller, &scope, &flash).await
}

pub(super) async fn tenants(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
) -> UiResult {
    tenants_view(&state, &caller, &scope, "").await
}

pub(super) async fn save_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let tenant = field(&f, "tenant").trim().to_owned();
    let mut change = Map::new();
    match field(&f, "customer").trim() {
        UNCHANGED => {}
        DO_NOT_IMPORT => {
            change.insert("customer".into(), Value::Null);
        }
        id => {
            change.insert(
                "customer".into(),
                id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n)),
            );
        }
    }
    let overridable = api::table_of(&state, &scope.connection)
        .map(|t| t.overridable())
        .unwrap_or_default();
    for setting in overridable {
        match field(&f, setting.key).trim() {
            UNCHANGED => {}
            CONNECTIONS => {
                change.insert(setting.key.into(), Value::Null);
            }
            value => {
                change.insert(setting.key.into(), json!(value));
            }
        }
    }
    let flash = if change.is_empty() {
        "Nothing to change: choose a desk customer or a setting of the tenant's own.".to_owned()
    } else {
        match api::change_tenant(&state, &caller, &scope.connection, &tenant, &change).await {
            Ok(entry) => format!(
                "Tenant {} saved: {}{}.",
                entry.name,
                entry
                    .customer_name
                    .clone()
                    .map_or_else(|| "not imported".to_owned(), |c| format!("imported into {c}")),
                overridable
                    .iter()
                    .map(|s| format!(
                        ", {} {}",
                        s.label.to_lowercase(),
                        entry
                            .overrides
                            .get(s.key)
                            .map_or_else(|| "as the connection's".to_owned(), |v| choice_label(s, v))
                    ))
                    .collect::<String>()
            ),
            Err(e) => format!(
                "The tenant was not changed: {}{}",
                e.message,
                e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
            ),
        }
    };
    // The grant changed the connection's settings: show them as they are now.
    let scope = reload(&state, &scope).await?;
    tenants_view(&state, &caller, &scope, &flash).await
}

/// A choice's label for people (its value when the setting has no such choice).
fn choice_label(setting: &deskbridge_source::settings::Setting, value: &str) -> String {
    match setting.kind {
        deskbridge_source::settings::SettingKind::Choice { options } => options
            .iter()
            .find(|o| o.value == value)
            .map_or_else(|| value.to_owned(), |o| o.label.to_owned()),
        _ => value.to_owned(),
    }
}

/// "granted <time>" when the grant came back through this service; otherwise unknown here.
fn consent_status(tenant: &deskbridge_source::TenantEntry) -> Cell {
    tenant.consented_at.as_ref().map_or_else(
        || cell("Unknown (run the check)"),
        |at| phrase("Granted ", at, ""),
    )
}

pub(super) async fn grant_consent(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    headers: HeaderMap,
    body: Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let tenant = field(&f, "tenant").trim().to_owned();
    let started = match api::consent_callback_uri(&state, &headers) {
        Ok(redirect) => api::begin_consent(&state, &scope.connection, &tenant, &redirect).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(url) => Ok(see_other(&url)),
        Err(e) => {
            let flash = format!(
                "The admin consent could not start: {}{}",
                e.message,
                e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
            );
            tenants_view(&state, &caller, &scope, &flash).await
        }
    }
}

pub(super) async fn consent_callback(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> UiResult {
    let redirect = format!("{}?{}", api::CONSENT_CALLBACK, query.as_deref().unwrap_or(""));
    // The state names the connection; recording a grant on it is a change to it.
    let connection = api::consent_connection(&state, &redirect).await?;
    let scope = crate::access::scope_for(&state, &caller, connection.id, Access::Modify).await?;
    let flash = match api::complete_consent(&state, &scope.connection, &redirect).await {
        Ok(entry) => format!(
            "Admin consent granted in {} ({}). Run the connection's check to confirm the GDAP app can read it.",
            entry.name, entry.tenant_id
        ),
        // A state not pending here is the browser's doing, not Microsoft's: no page of a connection.
        Err(e) if e.code == deskbridge_core::ErrorCode::InvalidSignIn => return Err(e.into()),
        Err(e) => format!(
            "Admin consent was not granted: {}{}{}",
            e.message,
            e.upstream_code
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
        ),
    };
    // The grant changed the connection's settings: show them as they are now.
    let scope = reload(&state, &scope).await?;
    tenants_view(&state, &caller, &scope, &flash).await
}
