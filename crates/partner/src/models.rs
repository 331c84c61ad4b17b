//! Partner Center's resources as deskbridge reads them. Unknown properties are ignored; dates
//! that are sentinels (`9999-12-14T00:00:00Z` for "no commitment end", `0001-01-01…`) become
//! `None`.
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Parses a Partner Center date; sentinels (year 9999 or later, year 1) are `None`.
pub fn parse_date(raw: &str) -> Result<Option<Timestamp>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let parsed = raw
        .parse::<Timestamp>()
        .or_else(|_| format!("{raw}Z").parse::<Timestamp>())
        .or_else(|_| format!("{raw}T00:00:00Z").parse::<Timestamp>());
    match parsed {
        Ok(t) => {
            let year = t.to_zoned(jiff::tz::TimeZone::UTC).year();
            Ok((2..9999).contains(&year).then_some(t))
        }
        // jiff refuses some far-future forms; the sentinels start with these.
        Err(_) if raw.starts_with("9999-") || raw.starts_with("0001-") => Ok(None),
        Err(e) => Err(format!("{raw:?} is not a date: {e}")),
    }
}

fn opt_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_date(&s).map_err(serde::de::Error::custom),
    }
}

/// `attributes` of every Partner Center resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attributes {
    pub etag: Option<String>,
    pub object_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CompanyProfile {
    pub tenant_id: Option<String>,
    pub domain: Option<String>,
    pub company_name: Option<String>,
}

/// A customer (`/v1/customers`). Its id is the customer's tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub company_profile: CompanyProfile,
    /// `reseller`, `advisor`, `none`, `syndication`, `microsoft_support`.
    #[serde(default)]
    pub relationship_to_partner: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
}

impl Customer {
    /// The tenant id (`companyProfile.tenantId`, else the customer id).
    pub fn tenant_id(&self) -> &str {
        self.company_profile.tenant_id.as_deref().unwrap_or(&self.id)
    }
}

/// A customer's subscription. `raw` keeps the object as received, because a change is sent back
/// as the full object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Upper-case GUID in Partner Center: compare ids case-insensitively.
    pub id: String,
    #[serde(default)]
    pub entitlement_id: Option<String>,
    #[serde(default)]
    pub offer_id: Option<String>,
    #[serde(default)]
    pub offer_name: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
    pub quantity: i64,
    /// `Licenses`, `Usage-based`, `Benefit`.
    #[serde(default)]
    pub unit_type: Option<String>,
    /// `active`, `suspended`, `deleted`, `expired`, `disabled`, `pending`, `none`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub auto_renew_enabled: Option<bool>,
    #[serde(default)]
    pub is_trial: Option<bool>,
    /// `monthly`, `annual`, `triennial`, `none`, `oneTime`.
    #[serde(default)]
    pub billing_cycle: Option<String>,
    /// ISO 8601 duration: `P1M`, `P1Y`, `P3Y`.
    #[serde(default)]
    pub term_duration: Option<String>,
    /// `license`, `usage`, `none`.
    #[serde(default)]
    pub billing_type: Option<String>,
    #[serde(default, deserialize_with = "opt_date")]
    pub creation_date: Option<Timestamp>,
    #[serde(default, deserialize_with = "opt_date")]
    pub effective_start_date: Option<Timestamp>,
    /// `None` for usage-based subscriptions (Partner Center sends `9999-12-14T00:00:00Z`).
    #[serde(default, deserialize_with = "opt_date")]
    pub commitment_end_date: Option<Timestamp>,
    /// New commerce: the end of the window in which seats may be reduced.
    #[serde(default, deserialize_with = "opt_date")]
    pub cancellation_allowed_until_date: Option<Timestamp>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(skip)]
    pub raw: Value,
}

impl Subscription {
    pub fn etag(&self) -> Option<&str> {
        self.attributes.etag.as_deref()
    }

    /// Whether the seats may be reduced at `now` (always for legacy subscriptions; for new
    /// commerce, inside the cancellation window).
    pub fn can_reduce_at(&self, now: Timestamp) -> bool {
        let new_commerce = self.offer_id.as_deref().is_some_and(|o| o.contains(':'));
        !new_commerce
            || self
                .cancellation_allowed_until_date
                .is_some_and(|until| now <= until)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProductSku {
    pub id: String,
    pub name: Option<String>,
    pub sku_part_number: Option<String>,
    /// `User` or `Tenant`.
    pub target_type: Option<String>,
    pub license_group_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SkuServicePlan {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub service_name: Option<String>,
    pub capability_status: Option<String>,
    pub target_type: Option<String>,
}

/// A licence a customer holds (`/v1/customers/{id}/subscribedskus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    pub product_sku: ProductSku,
    #[serde(default)]
    pub available_units: i64,
    #[serde(default)]
    pub active_units: i64,
    #[serde(default)]
    pub consumed_units: i64,
    #[serde(default)]
    pub suspended_units: i64,
    #[serde(default)]
    pub total_units: i64,
    #[serde(default)]
    pub warning_units: i64,
    #[serde(default)]
    pub service_plans: Vec<SkuServicePlan>,
    #[serde(default)]
    pub capability_status: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UtilizationResource {
    pub id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    pub region: Option<String>,
}

/// One Azure utilisation (consumption) record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UtilizationRecord {
    #[serde(deserialize_with = "opt_date")]
    pub usage_start_time: Option<Timestamp>,
    #[serde(deserialize_with = "opt_date")]
    pub usage_end_time: Option<Timestamp>,
    #[serde(default)]
    pub resource: UtilizationResource,
    pub quantity: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub instance_data: Option<Value>,
}

/// The partner's webhook registration (PascalCase on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookRegistration {
    #[serde(default)]
    pub subscriber_id: Option<String>,
    pub webhook_url: String,
    pub webhook_events: Vec<String>,
}

/// A consent of an application in a customer tenant (`applicationconsents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationConsent {
    pub application_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub application_grants: Vec<ApplicationGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationGrant {
    /// The resource application (Graph: `00000003-0000-0000-c000-000000000000`).
    pub enterprise_application_id: String,
    /// Comma-separated permissions, e.g. `User.Read.All,Group.Read.All`.
    pub scope: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sentinels_are_none_and_dates_parse() {
        assert_eq!(parse_date("9999-12-14T00:00:00Z").unwrap(), None);
        assert_eq!(parse_date("0001-01-01T00:00:00").unwrap(), None);
        assert!(parse_date("2018-04-04T17:08:20.71Z").unwrap().is_some());
        assert!(parse_date("2017-06-07T17:00:00-07:00").unwrap().is_some());
        assert!(parse_date("2024-12-12T14:44:18.627854+00:00").unwrap().is_some());
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn a_subscription_with_the_usage_sentinel_has_no_commitment_end() {
        let s: Subscription = serde_json::from_value(serde_json::json!({
            "id": "ABC", "quantity": 1, "commitmentEndDate": "9999-12-14T00:00:00Z", "unitType": "Usage-based",
            "attributes": {"etag": "x", "objectType": "Subscription"}
        }))
        .unwrap();
        assert_eq!(s.commitment_end_date, None);
        assert_eq!(s.etag(), Some("x"));
    }
}
