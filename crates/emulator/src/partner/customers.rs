//! `/v1/customers…`: customers (paged with a continuation token), a customer's subscriptions
//! (PATCH of the quantity under the new-commerce rules), subscribed SKUs, Azure utilisation
//! records and application consents.
use std::sync::PoisonError;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{PcCustomer, PcSubscription, UsageRecord};
use super::webhooks::Event;
use super::*;
use crate::world::Tenant;

const DEFAULT_PAGE: usize = 40;
const MAX_PAGE: usize = 500;

#[derive(Serialize, Deserialize)]
struct Continuation {
    /// Offset of the next item.
    o: usize,
    /// Page size.
    s: usize,
    /// Filter (field, value), lower-cased value.
    #[serde(default)]
    f: Option<(String, String)>,
    /// Usage: start and end of the range.
    #[serde(default)]
    r: Option<(i64, i64)>,
}

fn encode(c: &Continuation) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

fn decode(token: &str) -> PcResult<Continuation> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad_request("The continuation token is invalid or has expired."))
}

pub(crate) fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn iso_fraction(t: Timestamp) -> String {
    let ms = t.subsec_millisecond();
    if ms == 0 {
        iso(t)
    } else {
        format!("{}.{:02}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), ms / 10)
    }
}

fn link(uri: String) -> Value {
    json!({"uri": uri, "method": "GET", "headers": []})
}

fn collection(items: Vec<Value>, self_uri: String, next: Option<(String, String)>, total: usize) -> Value {
    let mut links = json!({"self": link(self_uri)});
    let mut body =
        json!({"totalCount": total, "items": items, "links": {}, "attributes": {"objectType": "Collection"}});
    if let Some((uri, token)) = next {
        links["next"] = json!({"uri": uri, "method": "GET",
                               "headers": [{"key": "MS-ContinuationToken", "value": token}]});
        body["continuationToken"] = json!(token);
    }
    body["links"] = links;
    body
}

pub(crate) fn customer_json(c: &PcCustomer) -> Value {
    json!({
        "id": c.id,
        "commerceId": c.id,
        "companyProfile": {
            "tenantId": c.tenant_id,
            "domain": c.domain,
            "companyName": c.company_name,
            "links": {"self": link(format!("/customers/{}/profiles/company", c.id))},
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "billingProfile": {"defaultAddress": {"country": c.country}, "attributes": {"objectType": "CustomerBillingProfile"}},
        "relationshipToPartner": c.relationship_to_partner,
        "allowDelegatedAccess": true,
        "links": {"self": link(format!("/customers/{}", c.id))},
        "attributes": {"objectType": "Customer"},
    })
}

pub(crate) fn subscription_json(s: &PcSubscription) -> Value {
    let mut v = json!({
        "id": s.id,
        "entitlementId": s.entitlement_id,
        "offerId": s.offer_id,
        "offerName": s.offer_name,
        "friendlyName": s.friendly_name,
        "quantity": s.quantity,
        "unitType": s.unit_type,
        "hasPurchasableAddons": false,
        "creationDate": iso_fraction(s.creation_date),
        "effectiveStartDate": iso(s.effective_start_date),
        "commitmentEndDate": iso(s.commitment_end_date),
        "status": s.status,
        "autoRenewEnabled": s.auto_renew_enabled,
        "isTrial": s.is_trial,
        "billingType": s.billing_type,
        "billingCycle": s.billing_cycle,
        "contractType": "subscription",
        "orderId": s.order_id,
        "partnerId": "",
        "suspensionReasons": [],
        "actions": if s.status == "active" { json!(["Cancel", "Edit"]) } else { json!([]) },
        "links": {
            "offer": link(format!("/offers/{}", s.offer_id)),
            "self": link(format!("/customers/{}/subscriptions/{}", s.customer_id, s.id)),
        },
        "attributes": {"etag": s.etag, "objectType": "Subscription"},
    });
    if let Some(term) = &s.term_duration {
        v["termDuration"] = json!(term);
    }
    if s.new_commerce {
        v["commitmentEndDateTime"] = json!(iso(s.commitment_end_date));
        if let Some(until) = s.cancellation_allowed_until_date {
            v["cancellationAllowedUntilDate"] = json!(iso(until));
            v["refundOptions"] = json!([{"type": "Full", "expiresAt": iso(until)}]);
        }
    }
    v
}

pub(crate) fn route(ctx: &mut Ctx<'_>, rest: &[&str]) -> PcResult<Reply> {
    let get = ctx.method == Method::GET;
    match rest {
        [] if get => list(ctx),
        [cid] if get => {
            let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
            Ok(Reply::ok(customer_json(find_customer(
                &world.partner_center.customers,
                cid,
            )?)))
        }
        [cid, "subscriptions"] if get => subscriptions(ctx, cid),
        [cid, "subscriptions", sid] if get => {
            let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
            find_customer(&world.partner_center.customers, cid)?;
            Ok(Reply::ok(subscription_json(find_subscription(
                &world.partner_center.subscriptions,
                cid,
                sid,
            )?)))
        }
        [cid, "subscriptions", sid] if ctx.method == Method::PATCH => patch_subscription(ctx, cid, sid),
        [cid, "subscriptions", sid, "utilizations", "azure"] if get => utilization(ctx, cid, sid),
        [cid, "subscribedskus"] if get => subscribed_skus(ctx, cid),
        [cid, "applicationconsents"] if get => consents(ctx, cid),
        [cid, "applicationconsents"] if ctx.method == Method::POST => consent(ctx, cid),
        [cid, "applicationconsents", app] if ctx.method == Method::DELETE => revoke(ctx, cid, app),
        _ => Err(pc_err(
            StatusCode::METHOD_NOT_ALLOWED,
            2000,
            format!(
                "{} is not supported on /v1/customers/{}.",
                ctx.method,
                rest.join("/")
            ),
        )),
    }
}

fn find_customer<'a>(customers: &'a [PcCustomer], id: &str) -> PcResult<&'a PcCustomer> {
    customers
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| not_found(&format!("Customer {id}")))
}

fn find_subscription<'a>(subs: &'a [PcSubscription], cid: &str, sid: &str) -> PcResult<&'a PcSubscription> {
    subs.iter()
        .find(|s| s.customer_id.eq_ignore_ascii_case(cid) && s.id.eq_ignore_ascii_case(sid))
        .ok_or_else(|| not_found(&format!("Subscription {sid}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    field: String,
    value: String,
    operator: String,
}

fn list(ctx: &Ctx<'_>) -> PcResult<Reply> {
    let cont = match ctx.param("seekOperation") {
        Some(op) if op.eq_ignore_ascii_case("next") => {
            let token = ctx.header("MS-ContinuationToken").ok_or_else(|| {
                bad_request("The MS-ContinuationToken header is required with seekOperation=Next.")
            })?;
            decode(token)?
        }
        Some(op) => return Err(bad_request(format!("Unsupported seekOperation {op}."))),
        None => {
            let s = match ctx.param("size") {
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| bad_request(format!("size must be between 1 and {MAX_PAGE}.")))?,
                None => DEFAULT_PAGE,
            };
            let f = match ctx.param("filter") {
                Some(raw) => {
                    let f: Filter =
                        serde_json::from_str(raw).map_err(|e| bad_request(format!("Invalid filter: {e}")))?;
                    if !f.operator.eq_ignore_ascii_case("starts_with")
                        || !["companyname", "domain"].contains(&f.field.to_ascii_lowercase().as_str())
                    {
                        return Err(bad_request(
                            "The filter supports Field CompanyName or Domain with Operator starts_with.",
                        ));
                    }
                    Some((f.field.to_ascii_lowercase(), f.value.to_lowercase()))
                }
                None => None,
            };
            Continuation { o: 0, s, f, r: None }
        }
    };
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    let matching: Vec<&PcCustomer> = world
        .partner_center
        .customers
        .iter()
        .filter(|c| match &cont.f {
            Some((field, value)) if field == "domain" => c.domain.to_lowercase().starts_with(value),
            Some((_, value)) => c.company_name.to_lowercase().starts_with(value),
            None => true,
        })
        .collect();
    let end = cont.o.saturating_add(cont.s).min(matching.len());
    let items = matching
        .get(cont.o.min(end)..end)
        .unwrap_or_default()
        .iter()
        .map(|c| customer_json(c))
        .collect();
    let next = (end < matching.len()).then(|| {
        let token = encode(&Continuation {
            o: end,
            s: cont.s,
            f: cont.f.clone(),
            r: None,
        });
        ("/v1/customers?seekOperation=Next".to_owned(), token)
    });
    Ok(Reply::ok(collection(
        items,
        format!("/v1/customers?size={}", cont.s),
        next,
        end - cont.o.min(end),
    )))
}

fn subscriptions(ctx: &Ctx<'_>, cid: &str) -> PcResult<Reply> {
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    let c = find_customer(&world.partner_center.customers, cid)?;
    let forbidden = lock(&ctx.state.partner.faults)
        .forbidden_subscriptions
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&c.id));
    if forbidden {
        return Err(pc_err(
            StatusCode::FORBIDDEN,
            2003,
            format!(
                "The signed-in user is not authorized to read the subscriptions of customer {}.",
                c.id
            ),
        ));
    }
    let items: Vec<Value> = world
        .partner_center
        .subscriptions
        .iter()
        .filter(|s| s.customer_id.eq_ignore_ascii_case(&c.id))
        .map(subscription_json)
        .collect();
    let total = items.len();
    Ok(Reply::ok(collection(
        items,
        format!("/customers/{}/subscriptions", c.id),
        None,
        total,
    )))
}

fn patch_subscription(ctx: &mut Ctx<'_>, cid: &str, sid: &str) -> PcResult<Reply> {
    let body: Value = serde_json::from_slice(ctx.body)
        .map_err(|e| bad_request(format!("The request body is not valid JSON: {e}")))?;
    let if_match = ctx
        .header("If-Match")
        .map(|s| s.trim().trim_matches('"').to_owned());
    let now = ctx.now();
    let mut world = ctx.state.world.write().unwrap_or_else(PoisonError::into_inner);
    find_customer(&world.partner_center.customers, cid)?;
    let index = world
        .partner_center
        .subscriptions
        .iter()
        .position(|s| s.customer_id.eq_ignore_ascii_case(cid) && s.id.eq_ignore_ascii_case(sid))
        .ok_or_else(|| not_found(&format!("Subscription {sid}")))?;
    let current = world.partner_center.subscriptions[index].clone();
    if let Some(tag) = &if_match
        && tag != "*"
        && *tag != current.etag
    {
        return Err(pc_err(
            StatusCode::PRECONDITION_FAILED,
            2001,
            "The subscription was changed since it was read (If-Match does not match its etag). Read it again and retry.",
        ));
    }
    let quantity = match body.get("quantity") {
        Some(q) => q
            .as_i64()
            .ok_or_else(|| bad_request("quantity must be an integer."))?,
        None => current.quantity,
    };
    let auto_renew = match body.get("autoRenewEnabled") {
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad_request("autoRenewEnabled must be a boolean."))?,
        None => current.auto_renew_enabled,
    };
    if quantity != current.quantity {
        if current.status != "active" {
            return Err(bad_request(format!(
                "The quantity of a subscription in status {} cannot be changed.",
                current.status
            )));
        }
        if current.unit_type != "Licenses" {
            return Err(bad_request(
                "The quantity of a usage-based subscription cannot be changed.",
            ));
        }
        if !(1..=10_000).contains(&quantity) {
            return Err(bad_request("quantity must be between 1 and 10000."));
        }
        if quantity < current.quantity
            && current.new_commerce
            && current
                .cancellation_allowed_until_date
                .is_none_or(|until| now > until)
        {
            return Err(pc_err(
                StatusCode::BAD_REQUEST,
                800002,
                "Seat count reductions are only allowed within the cancellation window (7 days after purchase \
                 or renewal) of a new commerce subscription. Increase the quantity, or reduce it at renewal.",
            ));
        }
    }
    let etag = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
    let sub = &mut world.partner_center.subscriptions[index];
    let changed = sub.quantity != quantity || sub.auto_renew_enabled != auto_renew;
    sub.quantity = quantity;
    sub.auto_renew_enabled = auto_renew;
    if changed {
        sub.etag = etag;
    }
    let updated = sub.clone();
    if let Some(sku_id) = &updated.sku_id
        && let Some(ti) = world.tenant_index(cid)
    {
        let total: i64 = world
            .partner_center
            .subscriptions
            .iter()
            .filter(|s| {
                s.customer_id.eq_ignore_ascii_case(cid)
                    && s.sku_id.as_deref() == Some(sku_id)
                    && s.status == "active"
            })
            .map(|s| s.quantity)
            .sum();
        if let Some(sku) = world.tenants[ti].skus.iter_mut().find(|k| k.sku_id == *sku_id) {
            sku.prepaid_enabled = i32::try_from(total).unwrap_or(i32::MAX);
        }
    }
    drop(world);
    if changed {
        ctx.events.push(Event::new(
            "subscription-updated",
            "subscription",
            format!(
                "{}/webhooks/v1/customers/{}/subscriptions/{}",
                ctx.pc_url(),
                updated.customer_id,
                updated.id
            ),
            now,
        ));
    }
    Ok(Reply::ok(subscription_json(&updated)))
}

fn subscribed_skus(ctx: &Ctx<'_>, cid: &str) -> PcResult<Reply> {
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    let c = find_customer(&world.partner_center.customers, cid)?;
    let tenant: &Tenant = world
        .tenant(&c.tenant_id)
        .ok_or_else(|| not_found(&format!("Customer {cid}")))?;
    if let Some(groups) = ctx.param("licenseGroupIds")
        && !groups.split(',').any(|g| g.trim().eq_ignore_ascii_case("Group1"))
    {
        let self_uri = format!("/customers/{}/subscribedskus", c.id);
        return Ok(Reply::ok(collection(vec![], self_uri, None, 0)));
    }
    let items: Vec<Value> = tenant
        .skus
        .iter()
        .map(|sku| {
            let consumed = i64::try_from(tenant.consumed_units(&sku.sku_id)).unwrap_or(0);
            let active = i64::from(sku.prepaid_enabled);
            let target = if sku.applies_to == "User" {
                "User"
            } else {
                "Tenant"
            };
            json!({
                "availableUnits": (active - consumed).max(0),
                "activeUnits": active,
                "consumedUnits": consumed,
                "suspendedUnits": sku.prepaid_suspended,
                "totalUnits": active + i64::from(sku.prepaid_suspended) + i64::from(sku.prepaid_warning),
                "warningUnits": sku.prepaid_warning,
                "productSku": {
                    "id": sku.sku_id,
                    "name": sku.sku_part_number,
                    "skuPartNumber": sku.sku_part_number,
                    "targetType": target,
                    "licenseGroupId": "Group1",
                },
                "servicePlans": sku.service_plans.iter().map(|p| json!({
                    "displayName": p.service_plan_name,
                    "serviceName": p.service_plan_name,
                    "id": p.service_plan_id,
                    "capabilityStatus": "Enabled",
                    "targetType": target,
                })).collect::<Vec<_>>(),
                "capabilityStatus": sku.capability_status,
                "attributes": {"objectType": "SubscribedSku"},
            })
        })
        .collect();
    let total = items.len();
    Ok(Reply::ok(collection(
        items,
        format!("/customers/{}/subscribedskus", c.id),
        None,
        total,
    )))
}

fn parse_time(raw: &str, name: &str) -> PcResult<Timestamp> {
    raw.parse::<Timestamp>()
        .or_else(|_| raw.replace(' ', "+").parse::<Timestamp>())
        .or_else(|_| format!("{raw}T00:00:00Z").parse::<Timestamp>())
        .map_err(|_| {
            bad_request(format!(
                "{name} must be a date-time with an offset, e.g. 2026-11-01T00:00:00Z."
            ))
        })
}

fn usage_json(u: &UsageRecord, details: bool) -> Value {
    let mut v = json!({
        "usageStartTime": iso(u.usage_start_time).replace('Z', "+00:00"),
        "usageEndTime": iso(u.usage_end_time).replace('Z', "+00:00"),
        "resource": {"id": u.resource_id, "name": u.resource_name, "category": u.category,
                     "subcategory": u.subcategory, "region": u.region},
        "quantity": u.quantity,
        "unit": u.unit,
        "infoFields": {},
        "attributes": {"objectType": "AzureUtilizationRecord"},
    });
    if details {
        v["instanceData"] = json!({"resourceUri": u.resource_uri, "location": u.location, "partNumber": "",
                                   "orderNumber": "", "additionalInfo": {}});
    }
    v
}

fn utilization(ctx: &Ctx<'_>, cid: &str, sid: &str) -> PcResult<Reply> {
    let cont = match ctx.param("seekOperation") {
        Some(_) => decode(ctx.header("MS-ContinuationToken").ok_or_else(|| {
            bad_request("The MS-ContinuationToken header is required with seekOperation=Next.")
        })?)?,
        None => {
            let start = parse_time(
                ctx.param("start_time")
                    .ok_or_else(|| bad_request("start_time is required."))?,
                "start_time",
            )?;
            let end = match ctx.param("end_time") {
                Some(e) => parse_time(e, "end_time")?,
                None => ctx.now(),
            };
            if end <= start {
                return Err(bad_request("end_time must be after start_time."));
            }
            let size = match ctx.param("size") {
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad_request("size must be between 1 and 1000."))?,
                None => 1000,
            };
            if let Some(g) = ctx.param("granularity")
                && !g.eq_ignore_ascii_case("daily")
                && !g.eq_ignore_ascii_case("hourly")
            {
                return Err(bad_request("granularity must be daily or hourly."));
            }
            Continuation {
                o: 0,
                s: size,
                f: None,
                r: Some((start.as_second(), end.as_second())),
            }
        }
    };
    let details = ctx
        .param("show_details")
        .is_none_or(|d| !d.eq_ignore_ascii_case("false"));
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    find_customer(&world.partner_center.customers, cid)?;
    let sub = find_subscription(&world.partner_center.subscriptions, cid, sid)?;
    if sub.unit_type != "Usage-based" {
        return Err(bad_request(
            "Utilization records exist only for usage-based (Azure) subscriptions.",
        ));
    }
    let (start, end) = cont.r.unwrap_or((i64::MIN, i64::MAX));
    let records: Vec<&UsageRecord> = world
        .partner_center
        .usage
        .iter()
        .filter(|u| u.subscription_id.eq_ignore_ascii_case(&sub.id))
        .filter(|u| (start..end).contains(&u.usage_start_time.as_second()))
        .collect();
    let stop = cont.o.saturating_add(cont.s).min(records.len());
    let items: Vec<Value> = records
        .get(cont.o.min(stop)..stop)
        .unwrap_or_default()
        .iter()
        .map(|u| usage_json(u, details))
        .collect();
    let base = format!("/customers/{}/subscriptions/{}/utilizations/azure", cid, sub.id);
    let next = (stop < records.len()).then(|| {
        let token = encode(&Continuation {
            o: stop,
            s: cont.s,
            f: None,
            r: cont.r,
        });
        (format!("{base}?seekOperation=Next"), token)
    });
    let count = items.len();
    Ok(Reply::ok(collection(items, base, next, count)))
}

// ---- application consents (the multi-tenant app gains a service principal in the customer tenant) ----

fn consent_json(cid: &str, app_id: &str, name: &str) -> Value {
    json!({
        "applicationId": app_id,
        "displayName": name,
        "customerId": cid,
        "applicationGrants": [{"enterpriseApplicationId": "00000003-0000-0000-c000-000000000000",
                               "scope": "Directory.Read.All,User.Read.All,Group.Read.All"}],
        "attributes": {"objectType": "ApplicationConsent"},
    })
}

/// Customer tenants that may be consented: in the customers list, or related through GDAP.
fn known_tenant(world: &crate::world::World, cid: &str) -> PcResult<String> {
    if let Some(c) = world
        .partner_center
        .customers
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(cid))
    {
        return Ok(c.tenant_id.clone());
    }
    let related = world
        .partner_tenant_id
        .as_deref()
        .and_then(|p| world.tenant(p))
        .is_some_and(|p| {
            p.gdap_relationships
                .iter()
                .any(|r| r.customer_tenant_id.eq_ignore_ascii_case(cid))
        });
    match world.tenant(cid) {
        Some(t) if related => Ok(t.id.clone()),
        _ => Err(not_found(&format!("Customer {cid}"))),
    }
}

fn consents(ctx: &Ctx<'_>, cid: &str) -> PcResult<Reply> {
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    let tid = known_tenant(&world, cid)?;
    let items: Vec<Value> = world
        .apps
        .iter()
        .filter(|a| a.multi_tenant && a.consented_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tid)))
        .map(|a| consent_json(&tid, &a.client_id, &a.display_name))
        .collect();
    let total = items.len();
    Ok(Reply::ok(collection(
        items,
        format!("/customers/{tid}/applicationconsents"),
        None,
        total,
    )))
}

fn consent(ctx: &Ctx<'_>, cid: &str) -> PcResult<Reply> {
    ctx.require_user()?;
    let body: Value = serde_json::from_slice(ctx.body)
        .map_err(|e| bad_request(format!("The request body is not valid JSON: {e}")))?;
    let app_id = body
        .get("applicationId")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request("applicationId is required."))?
        .to_owned();
    if !body.get("applicationGrants").is_some_and(Value::is_array) {
        return Err(bad_request("applicationGrants is required."));
    }
    let mut world = ctx.state.world.write().unwrap_or_else(PoisonError::into_inner);
    let tid = known_tenant(&world, cid)?;
    if !active_gdap(&world, &tid) {
        return Err(pc_err(
            StatusCode::FORBIDDEN,
            2003,
            format!(
                "The partner has no active GDAP relationship with customer {tid}: consent cannot be granted on its behalf."
            ),
        ));
    }
    let app = world
        .apps
        .iter_mut()
        .find(|a| a.client_id.eq_ignore_ascii_case(&app_id))
        .ok_or_else(|| bad_request(format!("Application {app_id} was not found.")))?;
    if !app.multi_tenant {
        return Err(bad_request(format!("Application {app_id} is not multi-tenant.")));
    }
    if app.consented_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tid)) {
        return Err(pc_err(
            StatusCode::CONFLICT,
            2002,
            format!("Application {app_id} is already consented in customer {tid}."),
        ));
    }
    app.consented_tenants.push(tid.clone());
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .unwrap_or(&app.display_name)
        .to_owned();
    Ok(Reply::with(
        StatusCode::CREATED,
        consent_json(&tid, &app_id, &name),
    ))
}

fn revoke(ctx: &Ctx<'_>, cid: &str, app_id: &str) -> PcResult<Reply> {
    ctx.require_user()?;
    let mut world = ctx.state.world.write().unwrap_or_else(PoisonError::into_inner);
    let tid = known_tenant(&world, cid)?;
    let app = world
        .apps
        .iter_mut()
        .find(|a| a.client_id.eq_ignore_ascii_case(app_id))
        .ok_or_else(|| not_found(&format!("Application {app_id}")))?;
    let before = app.consented_tenants.len();
    app.consented_tenants.retain(|t| !t.eq_ignore_ascii_case(&tid));
    if app.consented_tenants.len() == before {
        return Err(not_found(&format!(
            "Consent of application {app_id} in customer {tid}"
        )));
    }
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        payload: Payload::Empty,
        headers: vec![],
    })
}
