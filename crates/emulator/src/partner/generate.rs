//! Generates the Partner Center side of a world: the two CSP apps (the Partner Center app and
//! the multi-tenant GDAP app), customers, subscriptions consistent with the directory's SKUs,
//! prices for the GB and US markets, and Azure usage.
//!
//! It draws from its own random stream (derived from the seed), so the directory side of a world
//! is the same with or without it.
use jiff::{SignedDuration, Timestamp, ToSpan};

use super::model::*;
use crate::EmulatorError;
use crate::generate::{GRAPH_APP_PERMISSIONS, GenerateOptions, Rng};
use crate::world::{App, AppKind, ClientSecret, World};

/// Delegated scope of the Partner Center app on Partner Center (`user_impersonation`).
pub(crate) const PC_USER_IMPERSONATION: &str = "https://api.partnercenter.microsoft.com/user_impersonation";
/// Delegated scope of the Partner Center app on the partner API (price sheets).
pub(crate) const PARTNER_API_USER_IMPERSONATION: &str =
    "https://api.partner.microsoft.com/user_impersonation";

struct Product {
    part: &'static str,
    product_id: &'static str,
    sku_id: &'static str,
    title: &'static str,
    /// Monthly price per licence on a monthly term, GBP and USD (annual terms are 20 % less).
    gbp: f64,
    usd: f64,
}

const PRODUCTS: &[Product] = &[
    Product {
        part: "ENTERPRISEPACK",
        product_id: "CFQ7TTC0LF8Q",
        sku_id: "0001",
        title: "Office 365 E3",
        gbp: 22.8,
        usd: 27.6,
    },
    Product {
        part: "SPE_E3",
        product_id: "CFQ7TTC0LFLZ",
        sku_id: "0001",
        title: "Microsoft 365 E3",
        gbp: 36.0,
        usd: 43.2,
    },
    Product {
        part: "O365_BUSINESS_PREMIUM",
        product_id: "CFQ7TTC0LCHC",
        sku_id: "0002",
        title: "Microsoft 365 Business Premium",
        gbp: 21.6,
        usd: 26.4,
    },
    Product {
        part: "POWER_BI_STANDARD",
        product_id: "CFQ7TTC0L3PB",
        sku_id: "0001",
        title: "Power BI Pro",
        gbp: 10.1,
        usd: 12.0,
    },
    Product {
        part: "FLOW_FREE",
        product_id: "CFQ7TTC0LSGZ",
        sku_id: "0003",
        title: "Power Automate Premium",
        gbp: 12.0,
        usd: 18.0,
    },
];

const AZURE_PLAN_PRODUCT: &str = "DZH318Z0BPS6";

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn midnight(t: Timestamp) -> Timestamp {
    let secs = t.as_second();
    Timestamp::from_second(secs - secs.rem_euclid(86_400)).unwrap_or(t)
}

fn add_term(t: Timestamp, term: &str) -> Timestamp {
    let span = match term {
        "P1M" => 1.month(),
        "P3Y" => 3.years(),
        _ => 1.year(),
    };
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .unwrap_or(t)
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// A fresh entity tag.
pub(crate) fn new_etag(rng: &mut Rng) -> String {
    format!("{:016x}", rng.next_u64())
}

/// Adds the CSP apps and the Partner Center data to a generated world.
pub(crate) fn extend(world: &mut World, options: &GenerateOptions) -> Result<(), EmulatorError> {
    let mut rng = Rng::new(options.seed ^ 0x5043_0000_5043);
    let now = options.reference_time;
    let Some(partner_id) = world.partner_tenant_id.clone() else {
        return Ok(());
    };
    let far_future: Timestamp = "2099-01-01T00:00:00Z".parse().unwrap_or(Timestamp::MAX);
    let redirects = vec![
        "http://localhost/callback".to_owned(),
        "http://127.0.0.1/callback".to_owned(),
        "http://localhost/auth/microsoft/callback".to_owned(),
        "http://127.0.0.1/auth/microsoft/callback".to_owned(),
        "http://localhost/auth/microsoft/consent".to_owned(),
        "http://127.0.0.1/auth/microsoft/consent".to_owned(),
    ];
    let secret = |rng: &mut Rng| ClientSecret {
        key_id: rng.uuid(),
        value: format!("pc{}~{}", rng.next_u64() % 1000, rng.uuid().replace('-', "")),
        end_date_time: far_future,
    };
    world.apps.push(App {
        client_id: rng.uuid(),
        display_name: "deskbridge partner center".into(),
        kind: AppKind::PartnerCenter,
        home_tenant_id: partner_id.clone(),
        multi_tenant: false,
        secrets: vec![secret(&mut rng)],
        certificates: vec![],
        application_permissions: vec!["DelegatedAdminRelationship.Read.All".into()],
        delegated_scopes: [
            "openid",
            "profile",
            "offline_access",
            "User.Read",
            PC_USER_IMPERSONATION,
            PARTNER_API_USER_IMPERSONATION,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        redirect_uris: redirects.clone(),
        consented_tenants: vec![partner_id.clone()],
    });
    // Consent (a service principal) where the GDAP relationship is or was active; not where it
    // still waits for approval.
    let partner = world.tenant(&partner_id);
    let mut consented = vec![partner_id.clone()];
    if let Some(p) = partner {
        for r in &p.gdap_relationships {
            if r.status != "approvalPending" && !consented.contains(&r.customer_tenant_id) {
                consented.push(r.customer_tenant_id.clone());
            }
        }
    }
    world.apps.push(App {
        client_id: rng.uuid(),
        display_name: "deskbridge service sync (GDAP)".into(),
        kind: AppKind::Gdap,
        home_tenant_id: partner_id.clone(),
        multi_tenant: true,
        secrets: vec![secret(&mut rng)],
        certificates: vec![],
        application_permissions: GRAPH_APP_PERMISSIONS.iter().map(|s| (*s).to_owned()).collect(),
        delegated_scopes: vec![],
        redirect_uris: redirects,
        consented_tenants: consented,
    });

    // The partner's AdminAgents group: GDAP access assignments grant their roles to it, and
    // the multi-tenant app's service principal is a member.
    let gdap_app = world
        .apps
        .last()
        .map(|a| (a.client_id.clone(), a.display_name.clone()));
    if let Some(pi) = world.tenant_index(&partner_id) {
        let group_id = rng.uuid();
        world.tenants[pi].groups.push(crate::world::Group {
            id: group_id,
            display_name: "AdminAgents".into(),
            description: Some("Members of this group can administer customer tenants.".into()),
            mail_nickname: "AdminAgents".into(),
            security_enabled: true,
            created_date_time: Some(now),
            members: gdap_app
                .into_iter()
                .map(|(id, name)| crate::world::MemberRef {
                    kind: crate::world::ObjectKind::ServicePrincipal,
                    id,
                    display_name: Some(name),
                })
                .collect(),
            ..Default::default()
        });
    }
    let mut data = PartnerCenterData::default();
    let customers: Vec<_> = world.customer_tenants().collect();
    let gdap_only = customers.len() >= 4;
    for (index, tenant) in customers.iter().enumerate() {
        if gdap_only && index == customers.len() - 1 {
            // The last customer is managed through GDAP only: no reseller relationship.
            continue;
        }
        let country = if tenant.country_letter_code == "GB" {
            "GB"
        } else {
            "US"
        };
        data.customers.push(PcCustomer {
            id: tenant.id.clone(),
            tenant_id: tenant.id.clone(),
            company_name: tenant.display_name.clone(),
            domain: tenant.domain.clone(),
            relationship_to_partner: "reseller".into(),
            country: country.into(),
        });
        for (k, sku) in tenant.skus.iter().enumerate() {
            let product = PRODUCTS.iter().find(|p| p.part == sku.sku_part_number);
            let new_commerce = k != 3;
            let (term, cycle) = match rng.below(3) {
                0 => ("P1M", "monthly"),
                1 => ("P1Y", "monthly"),
                _ => ("P1Y", "annual"),
            };
            // The first subscription of each customer was bought two days ago: inside the
            // seven-day window in which seats may be reduced.
            let age = if k == 0 {
                2
            } else {
                30 + i64::try_from(rng.below(700)).unwrap_or(0)
            };
            let created = now
                .checked_sub(days(age))
                .unwrap_or(now)
                .checked_add(SignedDuration::from_millis(
                    i64::try_from(rng.below(86_000_000)).unwrap_or(0),
                ))
                .unwrap_or(now);
            let start = midnight(created);
            let mut term_start = start;
            let mut end = add_term(term_start, term);
            while end <= now {
                term_start = end;
                end = add_term(term_start, term);
            }
            let title = product.map_or(sku.sku_part_number.as_str(), |p| p.title);
            data.subscriptions.push(PcSubscription {
                id: rng.uuid().to_uppercase(),
                customer_id: tenant.id.clone(),
                offer_id: match product {
                    Some(p) if new_commerce => format!("{}:{}:{}", p.product_id, p.sku_id, term),
                    _ => rng.uuid().to_uppercase(),
                },
                offer_name: title.to_owned(),
                friendly_name: title.to_owned(),
                quantity: i64::from(sku.prepaid_enabled),
                unit_type: "Licenses".into(),
                status: "active".into(),
                auto_renew_enabled: rng.chance(80),
                billing_cycle: if new_commerce {
                    cycle.into()
                } else {
                    "monthly".into()
                },
                term_duration: Some(if new_commerce { term.into() } else { "P1Y".into() }),
                billing_type: "license".into(),
                creation_date: created,
                effective_start_date: start,
                commitment_end_date: end,
                cancellation_allowed_until_date: new_commerce
                    .then(|| term_start.checked_add(days(7)).unwrap_or(term_start)),
                is_trial: false,
                new_commerce,
                order_id: rng.uuid().to_uppercase(),
                entitlement_id: sku
                    .subscription_ids
                    .first()
                    .map_or_else(|| rng.uuid(), Clone::clone)
                    .to_uppercase(),
                sku_id: Some(sku.sku_id.clone()),
                product_id: product.map(|p| p.product_id.to_owned()),
                price_sku_id: product.map(|p| p.sku_id.to_owned()),
                etag: new_etag(&mut rng),
            });
        }
        if index % 2 == 0 {
            let created = now.checked_sub(days(200)).unwrap_or(now);
            let id = rng.uuid().to_uppercase();
            data.subscriptions.push(PcSubscription {
                id: id.clone(),
                customer_id: tenant.id.clone(),
                offer_id: format!("{AZURE_PLAN_PRODUCT}:0001"),
                offer_name: "Azure plan".into(),
                friendly_name: "Azure plan".into(),
                quantity: 1,
                unit_type: "Usage-based".into(),
                status: "active".into(),
                auto_renew_enabled: false,
                billing_cycle: "none".into(),
                term_duration: None,
                billing_type: "usage".into(),
                creation_date: created,
                effective_start_date: midnight(created),
                commitment_end_date: NO_COMMITMENT_END.parse().unwrap_or(Timestamp::MAX),
                cancellation_allowed_until_date: None,
                is_trial: false,
                new_commerce: false,
                order_id: rng.uuid().to_uppercase(),
                entitlement_id: rng.uuid().to_uppercase(),
                sku_id: None,
                product_id: Some(AZURE_PLAN_PRODUCT.into()),
                price_sku_id: Some("0001".into()),
                etag: new_etag(&mut rng),
            });
            usage_for(&mut rng, &mut data.usage, &tenant.id, &id, now);
        }
    }
    prices(&mut data.prices, now);
    world.partner_center = data;
    Ok(())
}

const METERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "Virtual Machines",
        "Dv5 Series",
        "D2s v5",
        "1 Hour",
        "virtualMachines/vm-app01",
    ),
    (
        "Storage",
        "Standard SSD Managed Disks",
        "E10 LRS Disk",
        "1/Month",
        "disks/vm-app01-os",
    ),
    (
        "Bandwidth",
        "Rtn Preference: MGN",
        "Data Transfer Out",
        "1 GB",
        "publicIPAddresses/pip-app01",
    ),
];

fn usage_for(rng: &mut Rng, out: &mut Vec<UsageRecord>, customer: &str, subscription: &str, now: Timestamp) {
    let azure_sub = rng.uuid();
    let meter_ids: Vec<String> = METERS.iter().map(|_| rng.uuid()).collect();
    let today = midnight(now);
    for day in (1..=30).rev() {
        let start = today.checked_sub(days(day)).unwrap_or(today);
        let end = start.checked_add(days(1)).unwrap_or(start);
        for (m, (category, subcategory, name, unit, resource)) in METERS.iter().enumerate() {
            let quantity = match m {
                0 => 24.0,
                1 => 1.0 / 30.0,
                _ => f64::from(u32::try_from(rng.below(5_000)).unwrap_or(0)) / 1000.0,
            };
            out.push(UsageRecord {
                customer_id: customer.to_owned(),
                subscription_id: subscription.to_owned(),
                usage_start_time: start,
                usage_end_time: end,
                resource_id: meter_ids[m].clone(),
                resource_name: (*name).to_owned(),
                category: (*category).to_owned(),
                subcategory: (*subcategory).to_owned(),
                region: "UK South".into(),
                quantity,
                unit: (*unit).to_owned(),
                resource_uri: format!(
                    "/subscriptions/{azure_sub}/resourceGroups/rg-app01/providers/Microsoft.Compute/{resource}"
                ),
                location: "uksouth".into(),
            });
        }
    }
}

fn prices(out: &mut Vec<PriceRow>, now: Timestamp) {
    let month_start = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .first_of_month()
        .ok()
        .and_then(|z| z.start_of_day().ok())
        .map_or(now, |z| z.timestamp());
    let month_end = add_term(month_start, "P1M")
        .checked_sub(SignedDuration::from_secs(1))
        .unwrap_or(month_start);
    for (market, currency) in [("GB", "GBP"), ("US", "USD")] {
        for p in PRODUCTS {
            let monthly = if market == "GB" { p.gbp } else { p.usd };
            for (term, plan, price) in [
                ("P1M", "Monthly", monthly * 1.2),
                ("P1Y", "Monthly", monthly),
                ("P1Y", "Annual", monthly * 12.0),
                ("P3Y", "Annual", monthly * 36.0),
            ] {
                out.push(PriceRow {
                    market: market.into(),
                    currency: currency.into(),
                    product_id: p.product_id.into(),
                    sku_id: p.sku_id.into(),
                    availability_id: format!("CFQ7TTC0{}", p.product_id.get(8..).unwrap_or_default()),
                    product_title: p.title.into(),
                    sku_title: p.title.into(),
                    publisher: "Microsoft Corporation".into(),
                    unit_of_measure: "1 License".into(),
                    term_duration: term.into(),
                    billing_plan: plan.into(),
                    unit_price: money(price * 0.85),
                    erp_price: money(price),
                    effective_start_date: month_start,
                    effective_end_date: month_end,
                    segment: "Commercial".into(),
                });
            }
        }
    }
}
