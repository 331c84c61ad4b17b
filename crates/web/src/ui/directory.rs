//! The imported directory (customers, sites, users, agents, teams, licences, subscriptions,
//! assets), for one connection or across all of them, searchable and a page at a time; and, on a
//! connection's subscriptions, "adjust quantity" (write-back to the source).

use axum::Extension;
use axum::extract::{Path, RawQuery, State};

use deskbridge_store::{DirectoryFilter, Entity};

use super::html::{Cell, Field, Opt, Page, Section, cell, form, link, select, text_field, when};
use super::{UiResult, field, parse_form, show, with_query};
use crate::AppState;
use crate::access::{Caller, Scope};
use crate::api::{self, DirectoryQuery};
use crate::error::ApiError;

/// The customers the listing may be narrowed to, by name: through a connection, those it
/// imports into; the whole directory (administrators only), every customer.
async fn customer_options(state: &AppState, scope: Option<&Scope>) -> Result<Vec<Opt>, ApiError> {
    let mut tx = state.store.read().await?;
    let customers = match scope {
        Some(s) => {
            let mut out = Vec::new();
            for id in api::connection_customers(state, &s.connection)? {
                if let Some(c) = tx.get(Entity::Customer, id).await? {
                    out.push(c);
                }
            }
            out
        }
        None => {
            tx.directory_page(
                Entity::Customer,
                &DirectoryFilter {
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?
        }
    };
    tx.commit().await?;
    let mut options = vec![Opt {
        value: String::new(),
        label: "Every customer".into(),
    }];
    options.extend(customers.iter().map(|c| Opt {
        value: c.id.0.to_string(),
        label: c.text("name").unwrap_or_default().to_owned(),
    }));
    Ok(options)
}

/// Each kind's columns: heading and the listed item's key. Names, not ids: the API adds the
/// names of the records an item refers to beside their ids (a user's site as "Site — Customer",
/// a site's, licence's or subscription's customer, an asset's type, user, site and customer).
fn directory_columns(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "customers" => &[
            ("#", "id"),
            ("Name", "name"),
            ("Tenant ids", "tenant_ids"),
            ("Active", "active"),
        ],
        "sites" => &[
            ("#", "id"),
            ("Name", "name"),
            ("Customer", "customer"),
            ("Main site", "is_main"),
            ("Active", "active"),
        ],
        "agents" => &[
            ("#", "id"),
            ("Name", "name"),
            ("Email", "email"),
            ("Licence", "licence_type"),
            ("Active", "active"),
            ("Roles", "role_names"),
            ("Teams", "team_names"),
        ],
        "teams" => &[("#", "id"), ("Name", "name")],
        "licences" => &[
            ("#", "id"),
            ("Licence", "friendly_name"),
            ("Customer", "customer"),
            ("Part number", "part_number"),
            ("Consumed", "consumed_units"),
            ("Total", "total_units"),
        ],
        "usage" => &[
            ("#", "id"),
            ("Customer", "customer"),
            ("From", "usage_start"),
            ("Resource", "resource_name"),
            ("Category", "category"),
            ("Quantity", "quantity"),
            ("Unit", "unit"),
        ],
        "subscriptions" => &[
            ("#", "id"),
            ("Customer", "customer"),
            ("Subscription", "friendly_name"),
            ("Quantity", "quantity"),
            ("Status", "status"),
            ("Billing cycle", "billing_cycle"),
            ("Term", "term_duration"),
            ("Ends", "end_date"),
            ("Unit price", "unit_price"),
            ("Currency", "currency"),
        ],
        "assets" => &[
            ("#", "id"),
            ("Name", "name"),
            ("Serial number", "serial_number"),
            ("Status", "status"),
            ("Asset type", "asset_type"),
            ("User", "user"),
            ("Site", "site"),
            ("Customer", "customer"),
        ],
        _ => &[
            ("#", "id"),
            ("Name", "name"),
            ("Email", "email"),
            ("Site", "site"),
            ("Active", "active"),
            ("Service account", "is_service_account"),
        ],
    }
}

async fn directory_view(
    state: &AppState,
    caller: &Caller,
    scope: Option<&Scope>,
    kind: &str,
    query: Option<String>,
    flash: &str,
) -> UiResult {
    let entity = api::directory_entity(kind)?;
    let raw = parse_form(query.as_deref().unwrap_or("").as_bytes());
    let customer_text = field(&raw, "customer").trim().to_owned();
    let q = DirectoryQuery {
        q: Some(field(&raw, "q").to_owned()).filter(|s| !s.is_empty()),
        after: field(&raw, "after").parse().ok(),
        limit: Some(50),
        customer: if customer_text.is_empty() {
            None
        } else {
            Some(customer_text.parse().map_err(|_| {
                ApiError::invalid(format!("customer: {customer_text:?} is not a customer id"))
            })?)
        },
    };
    let search_text = q.q.clone().unwrap_or_default();
    let by_customer = entity == Entity::Customer || entity.spec().column("customer_id").is_some();
    let data = api::directory_page(state, entity, q, scope.map(|s| &s.connection)).await?;
    let columns = directory_columns(kind);
    let rows: Vec<Vec<Cell>> = data["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|it| {
                    columns
                        .iter()
                        .map(|(_, c)| match (*c, kind, it["source_connection_id"].as_i64()) {
                            // An imported user opens their page (licences).
                            ("name", "users", Some(_)) => {
                                link(show(&it["name"]), format!("/users/{}", show(&it["id"])))
                            }
                            (_, _, _) if c.ends_with("_start") || c.ends_with("_date") => {
                                it[*c].as_str().map_or_else(|| cell(show(&it[*c])), when)
                            }
                            (_, _, _) if it[*c].is_boolean() => {
                                cell(if it[*c] == true { "yes" } else { "no" })
                            }
                            _ => cell(show(&it[*c])),
                        })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let (base, mut page) = match scope {
        Some(s) => (
            format!("/connections/{}/directory/{kind}", s.connection.id),
            Page::connection(caller, s, "directory/users"),
        ),
        None => (format!("/directory/{kind}"), Page::new(caller, "Directory")),
    };
    page.inner.title = format!("Directory: {kind}");
    if !flash.is_empty() {
        page = page.flash(flash);
    }
    let mut fields = vec![text_field("q", "Name or email contains", search_text.clone())];
    if by_customer && entity != Entity::Customer {
        let mut choose = select("customer", "Customer", &customer_text, &[]);
        choose.options = customer_options(state, scope).await?;
        fields.push(choose);
    }
    let mut search = form("directory-search", &base, "Search", fields);
    search.method = "get";
    let mut top = Section::default().form(search);
    for (k, _) in api::DIRECTORY_KINDS {
        let href = match scope {
            Some(s) => format!("/connections/{}/directory/{k}", s.connection.id),
            None => format!("/directory/{k}"),
        };
        top = top.link(k, href);
    }
    let headings: Vec<&str> = columns.iter().map(|(heading, _)| *heading).collect();
    let mut table = Section::default().table(&headings, rows);
    table.id = "directory".into();
    if let Some(next) = data["next_after"].as_i64() {
        table = table.link(
            "Next page",
            with_query(
                &base,
                &[
                    ("q", search_text),
                    ("customer", customer_text),
                    ("after", next.to_string()),
                ],
            ),
        );
    }
    if let Some(scope) = scope
        && kind == "usage"
    {
        table = table.link(
            "Export as CSV (for a spreadsheet)",
            format!("/api/v1/connections/{}/usage.csv", scope.connection.id),
        );
    }
    let mut page = page.section(top).section(table);
    if let Some(scope) = scope
        && kind == "subscriptions"
        && scope.access == deskbridge_store::Access::Modify
        && api::source_of(state, &scope.connection)?
            .subscription_writer()
            .is_some()
        && let Some(items) = data["items"].as_array()
        && !items.is_empty()
    {
        page = page.section(adjust_section(scope, items));
    }
    Ok(page.render())
}

/// "Adjust quantity": a subscription of this page (by name, customer and seats) and its new
/// seat count, sent to the source.
fn adjust_section(scope: &Scope, items: &[serde_json::Value]) -> Section {
    let mut choose = select("subscription", "Subscription", "", &[]);
    choose.options = items
        .iter()
        .filter(|it| it["unit_type"] != "Usage-based")
        .filter_map(|it| {
            let id = it["id"].as_i64()?;
            let name = it["friendly_name"]
                .as_str()
                .or(it["offer_name"].as_str())
                .unwrap_or("subscription");
            let customer = it["customer"].as_str().unwrap_or("no customer");
            let seats = it["quantity"]
                .as_i64()
                .map_or_else(|| "?".to_owned(), |q| q.to_string());
            Some(Opt {
                value: id.to_string(),
                label: format!("{name} — {customer} ({seats} seats)"),
            })
        })
        .collect();
    let quantity = Field {
        kind: "number",
        name: "quantity",
        label: "New quantity (seats)".into(),
        help: "Sent to the source now. New-commerce seats may be reduced only within 7 days of purchase or \
               renewal; increases are allowed any time."
            .into(),
        required: true,
        ..Field::default()
    };
    Section::titled("Adjust quantity").form(form(
        "adjust-quantity",
        format!("/connections/{}/subscriptions/quantity", scope.connection.id),
        "Adjust quantity",
        vec![choose, quantity],
    ))
}

/// Sends the new quantity, then shows the subscriptions again with what the source answered.
pub(super) async fn adjust_quantity(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    body: axum::body::Bytes,
) -> UiResult {
    let f = parse_form(&body);
    let subscription = field(&f, "subscription").trim().to_owned();
    let quantity = field(&f, "quantity").trim().to_owned();
    let flash = match quantity.parse::<i64>() {
        Err(_) => format!("The quantity was not changed: {quantity:?} is not a whole number of seats."),
        Ok(quantity) => {
            match api::adjust_quantity(
                &state,
                &scope.connection,
                &subscription,
                quantity,
                &caller.account.username,
            )
            .await
            {
                Ok(change) => format!(
                    "Subscription {subscription}: {} → {} seats ({}).",
                    change
                        .quantity_before
                        .map_or_else(|| "?".to_owned(), |q| q.to_string()),
                    change.quantity_after,
                    change.message.as_deref().unwrap_or("applied")
                ),
                Err(e) => format!(
                    "The quantity was not changed: {}{}",
                    e.message,
                    e.remedy.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
                ),
            }
        }
    };
    directory_view(&state, &caller, Some(&scope), "subscriptions", None, &flash).await
}

pub(super) async fn connection_directory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(scope): Extension<Scope>,
    Path((_, kind)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> UiResult {
    directory_view(&state, &caller, Some(&scope), &kind, query, "").await
}

pub(super) async fn directory(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> UiResult {
    directory_view(&state, &caller, None, &kind, query, "").await
}
