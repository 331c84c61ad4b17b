//! The imported directory listings (customers, sites, users, agents, teams, licences, assets),
//! of one connection or of all, a page at a time.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use deskbridge_core::RecordId;
use deskbridge_store::{Connection, DirectoryFilter, Entity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_query;
use crate::AppState;
use crate::access::Scope;
use crate::error::{ApiError, ApiResult};

/// The directory listings, by their plural name.
pub(crate) const DIRECTORY_KINDS: &[(&str, Entity)] = &[
    ("customers", Entity::Customer),
    ("sites", Entity::Site),
    ("users", Entity::User),
    ("agents", Entity::Agent),
    ("teams", Entity::Team),
    ("licences", Entity::Licence),
    ("subscriptions", Entity::Subscription),
    ("usage", Entity::UsageLine),
    ("assets", Entity::Asset),
];

pub(crate) fn directory_entity(kind: &str) -> ApiResult<Entity> {
    DIRECTORY_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no directory listing {kind:?}: use customers, sites, users, agents, teams, licences, subscriptions, usage or assets"
            ))
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectoryQuery {
    pub q: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<u32>,
    /// Only records of this desk customer.
    pub customer: Option<i64>,
}

/// The desk customers a connection imports into (one per tenant it reads).
pub(crate) fn connection_customers(state: &AppState, connection: &Connection) -> ApiResult<Vec<RecordId>> {
    let mut out: Vec<RecordId> = super::source_of(state, connection)?
        .open(connection)?
        .partitions()
        .into_iter()
        .map(|p| p.customer_id)
        .collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// How many store pages one listing page may scan for records of the asked customer before it
/// hands back a short page with `next_after` (a bound on the work one request does).
const MAX_SCANNED_PAGES: usize = 20;

pub(crate) async fn directory_page(
    state: &AppState,
    entity: Entity,
    q: DirectoryQuery,
    connection: Option<&Connection>,
) -> ApiResult<Value> {
    // A connection that imports into one customer says which in its settings.
    let own_customer = connection.and_then(|c| deskbridge_source::desk::id_of(&c.config["customer_id"]));
    let wanted = match q.customer {
        None => None,
        Some(id) => {
            let id = RecordId(id);
            if entity != Entity::Customer && entity.spec().column("customer_id").is_none() {
                return Err(ApiError::invalid(format!(
                    "customer: {} records belong to no customer; list them without it",
                    entity.name()
                )));
            }
            // Through a connection, only the customers it imports into: its reader may see
            // those and no other (the whole directory is an administrator's).
            if let Some(c) = connection
                && !connection_customers(state, c)?.contains(&id)
            {
                return Err(ApiError::not_found(format!(
                    "connection {:?} imports into no customer {id}",
                    c.name
                )));
            }
            Some(id)
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let mut filter = DirectoryFilter {
        connection: connection.map(|c| c.id),
        customer: wanted.or(own_customer),
        search: q.q,
        after: q.after.map(RecordId),
        limit,
    };
    // The store's connection filter widens to the customer (records of the connection or of its
    // customer); a chosen customer narrows it to exactly that customer's records, here.
    let keep = |r: &deskbridge_store::Record| match wanted {
        None => true,
        Some(id) if entity == Entity::Customer => r.id == id,
        Some(id) => r.get("customer_id").as_i64() == Some(id.0),
    };
    let mut tx = state.store.read().await?;
    let mut records = Vec::new();
    let mut next = None;
    'scan: for _ in 0..MAX_SCANNED_PAGES {
        let page = tx.directory_page(entity, &filter).await?;
        let more = page.len() == limit as usize;
        for r in page {
            filter.after = Some(r.id);
            if keep(&r) {
                records.push(r);
                if records.len() == limit as usize {
                    next = filter.after;
                    break 'scan;
                }
            }
        }
        if !more {
            next = None;
            break;
        }
        next = filter.after;
    }
    let mut items: Vec<Value> = records.iter().map(deskbridge_store::Record::to_json).collect();
    match entity {
        Entity::Asset => name_references(&mut tx, &mut items, ASSET_REFERENCES).await?,
        Entity::User => name_references(&mut tx, &mut items, &[SITE_REFERENCE]).await?,
        Entity::Agent => name_links(&mut tx, &mut items, AGENT_LINKS).await?,
        Entity::Subscription | Entity::UsageLine | Entity::Site | Entity::Licence => {
            name_references(&mut tx, &mut items, &[CUSTOMER_REFERENCE]).await?;
        }
        _ => {}
    }
    tx.commit().await?;
    Ok(json!({ "items": items, "next_after": next.map(|r| r.0) }))
}

/// A reference column, the entity it names, and the field its name is added as.
type Reference = (&'static str, Entity, &'static str);

const CUSTOMER_REFERENCE: Reference = ("customer_id", Entity::Customer, "customer");

/// A site is named with its customer: "London — Contoso".
const SITE_REFERENCE: Reference = ("site_id", Entity::Site, "site");

/// An asset's type, user, site and customer.
const ASSET_REFERENCES: &[Reference] = &[
    ("asset_type_id", Entity::AssetType, "asset_type"),
    ("user_id", Entity::User, "user"),
    SITE_REFERENCE,
    CUSTOMER_REFERENCE,
];

/// A link list of a record (a field holding ids, or objects whose `key` is the id), the entity
/// it names, and the field the names are added as.
type LinkReference = (&'static str, Option<&'static str>, Entity, &'static str);

/// An agent's roles and teams.
const AGENT_LINKS: &[LinkReference] = &[
    ("roles", None, Entity::AgentRole, "role_names"),
    ("teams", Some("team_id"), Entity::Team, "team_names"),
];

/// Adds, beside each link list the `links` name, the list of the linked records' names (an
/// agent's `role_names` and `team_names`): people read names, scripts keep the ids.
async fn name_links(
    tx: &mut deskbridge_store::StoreTx,
    items: &mut [Value],
    links: &[LinkReference],
) -> ApiResult<()> {
    let mut names = deskbridge_store::RecordNames::default();
    for item in items.iter_mut() {
        let Value::Object(record) = item else { continue };
        for &(field, key, entity, label) in links {
            let named = names.of_links(tx, record, field, key, entity).await?;
            record.insert(label.into(), Value::Array(named));
        }
    }
    Ok(())
}

/// Adds the names of the records the `references` name beside their ids (an asset's
/// `asset_type`, `user`, `site`, `customer`; a user's `site`; a subscription's, site's or
/// licence's `customer`): people read names; a reference to a deleted record says so. A site
/// is named "Site — Customer", as sites are everywhere people pick or read them.
async fn name_references(
    tx: &mut deskbridge_store::StoreTx,
    items: &mut [Value],
    references: &[Reference],
) -> ApiResult<()> {
    let mut names: HashMap<(Entity, i64), String> = HashMap::new();
    for item in items.iter_mut() {
        let Value::Object(asset) = item else { continue };
        for &(field, entity, label) in references {
            let Some(id) = asset.get(field).and_then(Value::as_i64) else {
                asset.insert(label.into(), Value::Null);
                continue;
            };
            let name = match names.get(&(entity, id)) {
                Some(name) => name.clone(),
                None => {
                    let record = tx.get(entity, RecordId(id)).await?;
                    let mut name = record
                        .as_ref()
                        .and_then(|r| r.text("name").map(str::to_owned))
                        .unwrap_or_else(|| format!("#{id} (deleted)"));
                    if entity == Entity::Site
                        && let Some(customer) = record.as_ref().and_then(|r| r.get("customer_id").as_i64())
                        && let Some(c) = tx.get(Entity::Customer, RecordId(customer)).await?
                    {
                        name = format!("{name} — {}", c.text("name").unwrap_or_default());
                    }
                    names.insert((entity, id), name.clone());
                    name
                }
            };
            asset.insert(label.into(), Value::String(name));
        }
    }
    Ok(())
}

pub(super) async fn connection_directory(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    Path((_, kind)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(
        directory_page(&state, entity, q, Some(&scope.connection)).await?,
    ))
}

pub(super) async fn directory(
    State(state): State<AppState>,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let entity = directory_entity(&kind)?;
    let q: DirectoryQuery = parse_query(query)?;
    Ok(Json(directory_page(&state, entity, q, None).await?))
}

/// The columns of the consumption export, in a finance user's order.
const USAGE_CSV: &[&str] = &[
    "customer",
    "usage_start",
    "usage_end",
    "resource_name",
    "resource_id",
    "category",
    "subcategory",
    "region",
    "quantity",
    "unit",
    "resource_uri",
];

/// At most this many lines in one export (a bound on one request's work).
const MAX_EXPORTED_LINES: usize = 100_000;

/// The connection's consumption lines as CSV (`?customer=` narrows to one of its customers), for a
/// spreadsheet.
pub(super) async fn usage_csv(
    State(state): State<AppState>,
    Extension(scope): Extension<Scope>,
    RawQuery(query): RawQuery,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let mut q: DirectoryQuery = parse_query(query)?;
    q.limit = Some(500);
    let mut rows: Vec<Value> = Vec::new();
    loop {
        let page = directory_page(
            &state,
            Entity::UsageLine,
            DirectoryQuery { q: None, ..q },
            Some(&scope.connection),
        )
        .await?;
        rows.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_i64() {
            Some(next) if rows.len() < MAX_EXPORTED_LINES => q.after = Some(next),
            _ => break,
        }
    }
    let body = deskbridge_core::csv::to_csv(USAGE_CSV, &rows);
    let file = format!(
        "attachment; filename=\"usage-{}.csv\"",
        scope
            .connection
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}
