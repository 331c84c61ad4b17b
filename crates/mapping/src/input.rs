//! What planning reads: the source users of each tenant as the pipeline normalised them, and
//! the desk as it is now.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One planning run of one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    pub connection_id: ConnectionId,
    pub tenants: Vec<TenantRead>,
    /// Tenants whose held plan an administrator approved: the circuit breaker lets them through.
    #[serde(default)]
    pub approved_tenants: BTreeSet<String>,
}

/// What was read from one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRead {
    pub tenant_id: String,
    /// The customer the tenant belongs to (CSP). Licences are linked only from this customer's
    /// licences (or licences without a customer) when set.
    #[serde(default)]
    pub customer_id: Option<RecordId>,
    pub mode: ReadMode,
    pub completeness: Completeness,
    /// Each user's full current state (a delta read's pipeline merges the change into what it
    /// stored before), with group memberships resolved to names.
    pub users: Vec<SourceUser>,
    /// Delta `@removed` entries.
    #[serde(default)]
    pub removed: Vec<Removal>,
    /// The tenant's `subscribedSkus` when licences were read this run: missing desk licences
    /// are created (per customer and SKU) and existing ones updated. `None`: licences were not
    /// read, and users are linked to the desk licences that exist.
    #[serde(default)]
    pub subscribed_skus: Option<Vec<SubscribedSku>>,
    /// The customer's subscriptions when read this run (CSP): created and updated on the desk,
    /// and those of the tenant no longer listed marked deleted. `None`: not read, nothing changes.
    #[serde(default)]
    pub subscriptions: Option<Vec<SourceSubscription>>,
    /// The customer's usage lines, when read this run (consumption billing).
    #[serde(default)]
    pub usage: Option<Vec<SourceUsageLine>>,
}

/// A subscription the partner sells to the tenant's customer (CSP: one of Partner Center's
/// subscriptions of the customer). Dates are RFC 3339; a date the source marks as "none" (Partner
/// Center's `9999-…` sentinels) is `None`, never a date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSubscription {
    /// The subscription's id, lower-cased (Partner Center sends upper-case GUIDs).
    pub external_id: String,
    #[serde(default)]
    pub offer_id: Option<String>,
    #[serde(default)]
    pub offer_name: Option<String>,
    #[serde(default)]
    pub friendly_name: Option<String>,
    pub quantity: i64,
    /// `active`, `suspended`, `deleted`, `expired`, `disabled`, `pending`.
    #[serde(default)]
    pub status: Option<String>,
    /// `monthly`, `annual`, `triennial`, `none`, `oneTime`.
    #[serde(default)]
    pub billing_cycle: Option<String>,
    /// ISO 8601 duration: `P1M`, `P1Y`, `P3Y`.
    #[serde(default)]
    pub term_duration: Option<String>,
    /// `Licenses`, `Usage-based`, `Benefit`.
    #[serde(default)]
    pub unit_type: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    /// The end of the commitment (the term's end).
    #[serde(default)]
    pub end_date: Option<String>,
    /// New commerce: the end of the window in which seats may still be reduced.
    #[serde(default)]
    pub cancellation_allowed_until: Option<String>,
    #[serde(default)]
    pub auto_renew: Option<bool>,
    #[serde(default)]
    pub is_trial: Option<bool>,
    /// The price, when prices were read this run and the price list has the subscription's
    /// offer, term and billing plan. `None` leaves the desk's price as it is.
    #[serde(default)]
    pub price: Option<SubscriptionPrice>,
}

/// A subscription's price per unit for its billing period, from a marketplace's price list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionPrice {
    pub unit_price: f64,
    pub currency: String,
    /// The marketplace the price list is for (`GB`, `US`).
    pub market: String,
}

/// A customer's metered usage for a period (CSP: one Azure utilisation record of a usage-based
/// subscription, daily), for consumption billing. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceUsageLine {
    /// Stable for the same usage read again (the source's record identity), lower-cased.
    pub external_id: String,
    /// The subscription the usage is billed under (its source id, lower-cased).
    #[serde(default)]
    pub subscription_external_id: Option<String>,
    #[serde(default)]
    pub usage_start: Option<String>,
    #[serde(default)]
    pub usage_end: Option<String>,
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub subcategory: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub quantity: f64,
    #[serde(default)]
    pub unit: Option<String>,
    /// The Azure resource the usage is of, when the source details it.
    #[serde(default)]
    pub resource_uri: Option<String>,
}

/// A record on the desk that is a source's own (a subscription, a usage line), as this
/// connection imported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskSourceRecord {
    pub id: RecordId,
    /// The source's id, lower-cased.
    pub external_id: String,
    /// The desk's columns (`quantity`, `status`, `unit_price`, …) as stored.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

/// A licence the tenant subscribes to (Entra: one of `subscribedSkus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedSku {
    pub sku_id: String,
    pub sku_part_number: String,
    /// A display name, when the pipeline knows one; the part number otherwise.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// `prepaidUnits.enabled`.
    #[serde(default)]
    pub enabled_units: Option<i64>,
    #[serde(default)]
    pub consumed_units: Option<i64>,
    #[serde(default)]
    pub capability_status: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Every user of the tenant was requested: absence means "not in Entra" — if complete.
    Full,
    /// Only changes since the last token.
    Delta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completeness {
    /// Every page was read.
    Complete,
    /// Some pages were read; the rest failed. Absence proves nothing.
    Partial,
    /// Nothing usable was read.
    Failed,
}

/// A person read from the source directory, as its connector normalised it. The engine reads
/// only these fields; what they mean in the source (Entra: the object id, `userType`, …) is the
/// connector's business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceUser {
    /// The person's stable id in the source (Entra: the object id). Compared ignoring ASCII case.
    #[serde(alias = "object_id")]
    pub external_id: String,
    /// The source's properties as received (`displayName`, `mail`, `onPremisesExtensionAttributes`, …):
    /// what field mappings and filters read.
    pub properties: Map<String, Value>,
    #[serde(default)]
    pub manager_id: Option<String>,
    /// Names of the groups the user is a direct member of.
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Names of all groups the user belongs to, nested membership included.
    #[serde(default)]
    pub transitive_groups: BTreeSet<String>,
    #[serde(default)]
    pub sku_ids: BTreeSet<String>,
    pub account_enabled: bool,
    /// A guest from outside the organisation, as the connector decided (Entra: `userType` Guest
    /// or `#EXT#` in the user principal name). Site mappings include or exclude such users.
    #[serde(default)]
    pub external: bool,
}

impl SourceUser {
    /// A guest from outside the organisation ([`SourceUser::external`]).
    pub fn is_external(&self) -> bool {
        self.external
    }

    pub fn in_group(&self, name: &str, nested: bool) -> bool {
        self.groups.contains(name) || (nested && self.transitive_groups.contains(name))
    }

    /// A name for messages: display name, then user principal name, then the external id.
    pub fn label(&self) -> String {
        ["displayName", "userPrincipalName"]
            .iter()
            .find_map(|key| {
                self.properties
                    .get(*key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
            })
            .map_or_else(|| self.external_id.clone(), str::to_owned)
    }
}

/// A person the source reports as removed since the last read (Entra: a delta `@removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    #[serde(alias = "object_id")]
    pub external_id: String,
    pub reason: RemovalReason,
}

/// Why the source removed the person (Entra: `@removed.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// Soft-deleted: in the recycle bin, restorable for 30 days.
    Changed,
    /// Hard-deleted: gone for good.
    Deleted,
}

/// The desk as planning sees it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeskSnapshot {
    pub users: Vec<DeskRecord>,
    pub agents: Vec<DeskRecord>,
    pub sites: Vec<DeskSite>,
    pub licences: Vec<DeskLicence>,
    pub tickets: Vec<DeskTicket>,
    /// The subscriptions this connection imported from the tenant being planned (loaded only when
    /// the tenant's subscriptions are read).
    #[serde(default)]
    pub subscriptions: Vec<DeskSourceRecord>,
    /// The usage lines this connection imported that the tenant's read names again (loaded only
    /// when usage is read).
    #[serde(default)]
    pub usage_lines: Vec<DeskSourceRecord>,
    /// The customers this connection imported (a `customers` run), by lower-cased source id:
    /// what [`crate::SiteTarget::ImportedCustomer`] places people under (loaded only when a
    /// mapping has that target).
    #[serde(default)]
    pub imported_customers: BTreeMap<String, ImportedCustomer>,
}

/// A desk customer this connection imported, with its main site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedCustomer {
    pub customer_id: RecordId,
    pub name: String,
    /// `None`: the customer has no main site (nobody can be placed under it).
    pub main_site: Option<RecordId>,
}

/// A desk user or agent.
///
/// `fields` uses the desk field names. Canonical shapes: ids are numbers; `roles` and
/// `licences` are ascending arrays of ids; `teams` is an array of `{team_id, can_be_assigned,
/// can_see_unassigned, can_see_others_tickets}` ascending by team; `cabs` is an array of
/// `{cab_id, cab_role_id}` ascending by CAB; a missing `active` means active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskRecord {
    pub id: RecordId,
    /// Which connection created or linked it, and its id there (the source's external id).
    #[serde(default)]
    pub source: Option<SourceIdentity>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub locks: RecordLocks,
}

impl DeskRecord {
    pub fn is_active(&self) -> bool {
        self.fields.get("active").and_then(Value::as_bool).unwrap_or(true)
    }

    pub(crate) fn text(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn label(&self) -> String {
        match self.text("name") {
            Some(name) => format!("{} (id {})", name, self.id),
            None => format!("id {}", self.id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceIdentity {
    pub connection_id: ConnectionId,
    pub external_id: String,
}

/// Per-record locks set by an administrator on the desk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordLocks {
    /// Fields never overwritten on this record.
    pub fields: BTreeSet<String>,
    /// Never made inactive by a sync.
    pub keep_active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskSite {
    pub id: RecordId,
    pub customer_id: RecordId,
    pub name: String,
    #[serde(default)]
    pub is_main: bool,
    /// Site fields by desk name (`custom:<name>` for custom fields).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeskLicence {
    pub id: RecordId,
    pub sku_id: String,
    #[serde(default)]
    pub customer_id: Option<RecordId>,
    /// `part_number`, `friendly_name`, `total_units`, `consumed_units`, `capability_status`.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskTicket {
    pub id: RecordId,
    #[serde(default)]
    pub agent_id: Option<RecordId>,
    #[serde(default)]
    pub team_id: Option<RecordId>,
    /// `user:<id>` or `email:<address>`.
    #[serde(default)]
    pub followers: Vec<String>,
}
