//! The configuration check's CSP points, after the generic ones: both apps' tokens, Partner
//! Center reachable with the partner admin's sign-in, the GDAP relationships, and each assigned
//! customer tenant readable by the GDAP app (consent and GDAP access) — each failure with the
//! guide's remedy.

use deskbridge_connector_entra::{from_auth, from_graph};
use deskbridge_msauth::TokenProvider as _;
use deskbridge_source::{CheckPoint, SourceContext, SyncError};
use deskbridge_store::Connection;
use serde_json::{Map, Value};

use crate::log::Shared;
use crate::settings::{CspSettings, RelationshipType};
use crate::tenants::{access_failure, list};

fn failed(name: &str, e: &SyncError, fallback: &str) -> CheckPoint {
    CheckPoint::fail(
        name,
        e.to_string(),
        e.remedy().unwrap_or_else(|| fallback.to_owned()),
    )
}

pub(crate) async fn check(
    cx: &SourceContext,
    shared: &Shared,
    connection: &Connection,
    instance: &str,
) -> Vec<CheckPoint> {
    let mut points = Vec::new();
    let settings = match CspSettings::of(connection) {
        Ok(s) => s,
        Err(e) => {
            points.push(failed(
                "connection",
                &e,
                "Add the connection again with valid settings.",
            ));
            return points;
        }
    };
    points.push(CheckPoint::pass(
        "connection",
        format!(
            "CSP connection of partner tenant {} (Partner Center app {}, GDAP app {})",
            settings.partner_tenant_id, settings.partner_client_id, settings.gdap_client_id
        ),
    ));
    points.push(CheckPoint::instance(connection, instance));
    let http = match deskbridge_source::http_client(&connection.name) {
        Ok(h) => h,
        Err(e) => {
            points.push(failed("connection", &e, ""));
            return points;
        }
    };
    let tokens = match crate::auth::tokens(&cx.store, connection, &settings, &http, &cx.clock).await {
        Ok(t) => t,
        Err(e) => {
            points.push(failed(
                "gdap app token",
                &e,
                "Give the GDAP app's client secret or certificate again.",
            ));
            return points;
        }
    };
    // The Partner Center app: the partner admin's sign-in, exchanged for a Partner Center token.
    let partner_ok = match &tokens.partner {
        Err(e) => {
            points.push(failed("partner center app token", e, ""));
            false
        }
        Ok(provider) => match provider
            .access_token(&settings.partner_tenant_id, &shared.partner_config.scope)
            .await
        {
            Ok(_) => {
                points.push(CheckPoint::pass(
                    "partner center app token",
                    "the partner admin's sign-in gives Partner Center tokens",
                ));
                true
            }
            Err(e) => {
                points.push(failed(
                    "partner center app token",
                    &from_auth(&e),
                    "Sign in again: deskbridge connection authorize --name <connection>.",
                ));
                false
            }
        },
    };
    // The GDAP app in the partner tenant (it lists the GDAP relationships there).
    let scope = deskbridge_connector_entra::scope_for(&settings.graph_url);
    let gdap_ok = match tokens
        .gdap
        .access_token(&settings.partner_tenant_id, &scope)
        .await
    {
        Ok(_) => {
            points.push(CheckPoint::pass(
                "gdap app token",
                format!(
                    "the GDAP app signs in to the partner tenant {}",
                    settings.partner_tenant_id
                ),
            ));
            true
        }
        Err(e) => {
            points.push(failed("gdap app token", &from_auth(&e), ""));
            false
        }
    };
    if !partner_ok || !gdap_ok {
        let by = if partner_ok {
            "gdap app token"
        } else {
            "partner center app token"
        };
        points.push(CheckPoint::blocked("partner center", by));
        return points;
    }
    let found = match list(cx, shared, connection, &settings, &tokens, &http).await {
        Ok(found) => found,
        Err(e) => {
            points.push(failed("partner center", &e, ""));
            return points;
        }
    };
    let listed = found.readable.len() + found.without_gdap.len();
    let with_gdap = found
        .readable
        .iter()
        .chain(&found.without_gdap)
        .filter(|(t, _)| found.gdap_active.contains(t))
        .count();
    points.push(CheckPoint::pass(
        "partner center",
        format!(
            "{listed} customers listed: {with_gdap} with an active GDAP relationship, {} without{}",
            listed - with_gdap,
            match &found.dap {
                Some(dap) if !dap.is_empty() => format!("; {} with DAP", dap.len()),
                _ => String::new(),
            }
        ),
    ));
    points.extend(module_points(cx, shared, connection, &settings, &tokens, &http).await);
    // Every customer tenant the connection reads (or would read once assigned).
    for (tenant_id, name) in &found.readable {
        if settings
            .tenant(tenant_id)
            .is_some_and(|t| t.customer_id.is_none())
        {
            continue;
        }
        let point = format!("tenant {name}");
        let graph = match shared.tenant(
            connection,
            &settings,
            &http,
            &cx.clock,
            tenant_id,
            tokens.gdap.clone(),
            &cx.requests,
        ) {
            Ok(g) => g,
            Err(e) => {
                points.push(failed(&point, &e, ""));
                continue;
            }
        };
        match graph
            .get_page::<Map<String, Value>>("/organization?$select=id")
            .await
        {
            Ok(_) => {
                points.push(CheckPoint::pass(
                    &point,
                    match settings.relationship_type_of(tenant_id) {
                        RelationshipType::Gdap => format!("the GDAP app reads the users of {name} ({tenant_id})"),
                        RelationshipType::Dap => format!(
                            "the GDAP app reads the users of {name} ({tenant_id}) through DAP (no consent needed)"
                        ),
                    },
                ));
                if settings.mapping.assets.is_some() {
                    points.push(devices_point(&graph, name, tenant_id).await);
                }
            }
            Err(e) => {
                let error = from_graph(&e);
                match access_failure(tenant_id, name, &error, settings.relationship_type_of(tenant_id)) {
                    Some((_, message, remedy)) => points.push(CheckPoint::fail(&point, message, remedy)),
                    None => points.push(failed(
                        &point,
                        &error,
                        "Run the check again; report it if it repeats.",
                    )),
                }
            }
        }
    }
    for stored in &settings.tenants {
        let gone = !found
            .readable
            .iter()
            .any(|(t, _)| t.eq_ignore_ascii_case(&stored.tenant_id));
        if stored.customer_id.is_some() && gone {
            let point = format!("tenant {}", stored.name);
            points.push(match settings.relationship_type_of(&stored.tenant_id) {
                RelationshipType::Gdap => CheckPoint::fail(
                    &point,
                    format!(
                        "{} ({}) is assigned to a desk customer but has no active GDAP relationship or is no longer \
                         a Partner Center customer",
                        stored.name, stored.tenant_id
                    ),
                    "Renew the GDAP relationship (and the reseller relationship) with this customer in Partner \
                     Center.",
                ),
                RelationshipType::Dap => CheckPoint::fail(
                    &point,
                    format!(
                        "{} ({}) is read through DAP but the partner has no DAP with it, or it is no longer a \
                         Partner Center customer",
                        stored.name, stored.tenant_id
                    ),
                    "Microsoft has retired DAP: set the tenant's relationship type to GDAP (deskbridge tenants set \
                     --relationship-type gdap), establish a GDAP relationship and grant admin consent.",
                ),
            });
        }
    }
    points
}

/// The points of the modules the connection uses beyond users: subscriptions (a customer's list
/// read, when a tenant's licence import type takes them) and prices (the marketplace's price
/// sheet, when subscription pricing is on).
async fn module_points(
    cx: &SourceContext,
    shared: &Shared,
    connection: &Connection,
    settings: &CspSettings,
    tokens: &crate::auth::Tokens,
    http: &reqwest::Client,
) -> Vec<CheckPoint> {
    let mut points = Vec::new();
    let Ok(partner_tokens) = &tokens.partner else {
        return points;
    };
    let partner = match shared.partner(
        connection,
        settings,
        http,
        &cx.clock,
        partner_tokens.clone(),
        &cx.requests,
    ) {
        Ok(p) => p,
        Err(e) => return vec![failed("subscriptions", &e, "")],
    };
    let with_subscriptions = settings
        .tenants
        .iter()
        .find(|t| t.customer_id.is_some() && settings.licence_import_of(&t.tenant_id).subscriptions());
    if let Some(tenant) = with_subscriptions {
        points.push(match partner.subscriptions(&tenant.tenant_id).await {
            Ok(list) => CheckPoint::pass(
                "subscriptions",
                format!(
                    "Partner Center lists {} subscription(s) of {}",
                    list.len(),
                    tenant.name
                ),
            ),
            Err(e) => failed("subscriptions", &crate::tenants::from_partner(&e), ""),
        });
    }
    if let Some(market) = &settings.subscription_pricing {
        points.push(match partner.price_sheet(market).await {
            Ok(rows) => CheckPoint::pass(
                "subscription prices",
                format!("the {market} price sheet has {} row(s)", rows.len()),
            ),
            Err(e) => failed(
                "subscription prices",
                &crate::tenants::from_partner(&e),
                "Prices need a tier 1 (direct) partner and the Partner Center app's delegated permission for the \
                 partner API (price sheets); turn subscription pricing off otherwise.",
            ),
        });
    }
    points
}

/// Whether the GDAP app can list the tenant's managed devices (asset imports need
/// DeviceManagementManagedDevices.Read.All and an Intune licence in the tenant).
async fn devices_point(graph: &deskbridge_graph::GraphTenant, name: &str, tenant_id: &str) -> CheckPoint {
    let point = format!("tenant {name} devices");
    match graph
        .get_page::<Map<String, Value>>("/deviceManagement/managedDevices?$select=id&$top=1")
        .await
    {
        Ok(_) => CheckPoint::pass(
            &point,
            format!("the GDAP app reads the managed devices of {name} ({tenant_id})"),
        ),
        Err(e) => failed(
            &point,
            &deskbridge_connector_entra::read::device_error(&e),
            "Run the check again; report it if it repeats.",
        ),
    }
}
