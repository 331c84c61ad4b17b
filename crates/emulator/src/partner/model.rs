//! What the emulated Partner Center holds (part of the dataset: `World::partner_center`).
//!
//! Values are stored as Partner Center sends them: subscription ids in upper case, the
//! `9999-12-14T00:00:00Z` commitment-end sentinel of usage-based subscriptions, prices per
//! market. Customer ids equal the customer tenant ids of the directory side.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The commitment end date Partner Center reports for usage-based (Azure) subscriptions.
pub const NO_COMMITMENT_END: &str = "9999-12-14T00:00:00Z";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartnerCenterData {
    /// Customers the partner has a reseller (or advisor) relationship with.
    pub customers: Vec<PcCustomer>,
    pub subscriptions: Vec<PcSubscription>,
    /// Price sheet rows of the licence-based (new commerce) view, per market.
    pub prices: Vec<PriceRow>,
    /// Azure utilisation records of usage-based subscriptions.
    pub usage: Vec<UsageRecord>,
    pub webhook: Option<WebhookRegistration>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PcCustomer {
    /// Equals the tenant id.
    pub id: String,
    pub tenant_id: String,
    pub company_name: String,
    pub domain: String,
    /// `reseller`, `advisor`, `none`…
    pub relationship_to_partner: String,
    /// Two-letter country (the customer's market).
    pub country: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PcSubscription {
    /// Upper-case GUID.
    pub id: String,
    pub customer_id: String,
    pub offer_id: String,
    pub offer_name: String,
    pub friendly_name: String,
    pub quantity: i64,
    /// `Licenses` or `Usage-based`.
    pub unit_type: String,
    /// `active`, `suspended`, `deleted`, `expired`…
    pub status: String,
    pub auto_renew_enabled: bool,
    /// `monthly`, `annual`, `none`.
    pub billing_cycle: String,
    /// `P1M`, `P1Y`, `P3Y`; none for usage-based.
    pub term_duration: Option<String>,
    /// `license` or `usage`.
    pub billing_type: String,
    pub creation_date: Timestamp,
    pub effective_start_date: Timestamp,
    /// `9999-12-14T00:00:00Z` for usage-based subscriptions.
    pub commitment_end_date: Timestamp,
    /// New commerce: seats can be reduced (or the subscription cancelled) until then.
    pub cancellation_allowed_until_date: Option<Timestamp>,
    pub is_trial: bool,
    /// New commerce (`true`) or legacy licence-based.
    pub new_commerce: bool,
    pub order_id: String,
    pub entitlement_id: String,
    /// The directory SKU whose prepaid units follow the quantity.
    pub sku_id: Option<String>,
    /// Product and SKU ids of the price sheet (`CFQ7TTC0LH18`, `0001`).
    pub product_id: Option<String>,
    pub price_sku_id: Option<String>,
    pub etag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceRow {
    pub market: String,
    pub currency: String,
    pub product_id: String,
    pub sku_id: String,
    pub availability_id: String,
    pub product_title: String,
    pub sku_title: String,
    pub publisher: String,
    pub unit_of_measure: String,
    pub term_duration: String,
    /// `Monthly` or `Annual`.
    pub billing_plan: String,
    pub unit_price: String,
    pub erp_price: String,
    pub effective_start_date: Timestamp,
    pub effective_end_date: Timestamp,
    pub segment: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub customer_id: String,
    pub subscription_id: String,
    pub usage_start_time: Timestamp,
    pub usage_end_time: Timestamp,
    pub resource_id: String,
    pub resource_name: String,
    pub category: String,
    pub subcategory: String,
    pub region: String,
    pub quantity: f64,
    pub unit: String,
    pub resource_uri: String,
    pub location: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookRegistration {
    pub subscriber_id: String,
    pub webhook_url: String,
    pub webhook_events: Vec<String>,
}
