//! Reading one tenant through Graph into the mapping engine's input: [`full`] reads, [`delta`]
//! rounds, [`devices`] (Intune managed devices, for asset runs), [`users`] (what a user must look like to be read, sign-in dates), [`tracking`] (what
//! delta queries listen to); here, what they share (paging, delta chains, cursor names).
//!
//! A full read lists users (with `$expand=manager`), groups with their direct members (nested
//! membership is worked out here), and subscribed SKUs, after first taking delta starting points
//! (`$deltatoken=latest`) so that changes made during the read are seen by the next delta round
//! (a replay is harmless); a service that refuses `latest` gets a round without a token instead.
//! A delta round follows the stored deltaLinks and uses what they report as a trigger: every user
//! that changed, or whose membership changed, is fetched afresh, so a partial `manager@delta` or a
//! property left out of a delta page never wipes a desk field. When Graph refuses the links (410,
//! `resyncRequired`, `syncStateNotFound`, `syncStateInvalid`) the round restarts as Microsoft
//! documents — from the `Location` Graph gives (on the connection's Graph host only), else a delta
//! query without a token — as a full read ([`DeltaStart::Resync`]).

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_graph::{GraphError, GraphErrorClass, GraphTenant, Group, MembershipChanges, Page};
use deskbridge_mapping::{
    Completeness, ReadMode, Removal, RemovalReason, SourceUser, SubscribedSku, TenantRead,
};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Map, Value};

use crate::error::from_graph;
use deskbridge_source::{Emitter, PartitionEnd, PartitionStart, ReadEvent, SourceRecord, SyncError};
use deskbridge_store::IntegrationError;

mod delta;
mod devices;
mod followers;
mod full;
mod tracking;
mod users;

pub use delta::{DeltaState, read_delta};
pub use devices::{DEVICE_PERMISSION, device_error, device_properties, read_devices};
pub use followers::{GroupLookup, distribution_group};
pub(crate) use full::subscribed_sku;
pub use full::{FullRead, Memberships, read_full, read_licences};
pub use tracking::{DeltaStart, DeltaTracking, UNTRACKABLE, UntrackedField, latest_links, start_links};
use users::source_user;
pub use users::{
    MAX_TEXT_BYTES, RejectedUser, SignInUnavailable, SignIns, add_sign_ins, read_sign_ins, rejected_error,
};

pub const USERS_DELTA: &str = "users/delta";
pub const GROUPS_DELTA: &str = "groups/delta";
/// What the stored delta links track (see [`DeltaTracking::fingerprint`]): links taken under other
/// settings are not followed.
pub const DELTA_TRACKING: &str = "delta/tracking";
/// The groups the mappings name, id → display name, as of the last read: a delta round that
/// renames one of them (or gives another group a mapped name) re-plans its members.
pub const MAPPED_GROUPS: &str = "groups/mapped";

/// Properties always read, whatever the mappings use.
const ALWAYS: &[&str] = &[
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "accountEnabled",
    "userType",
    "assignedLicenses",
];

/// How many member listings or user fetches of one tenant run at once.
const FAN_OUT: usize = 8;

/// What a delta round produced: the changed users (a round's changes are few, so they are held
/// together), the removals and the new links.
#[derive(Debug, Clone)]
pub struct TenantData {
    pub read: TenantRead,
    /// Users read but not importable as Graph sent them.
    pub rejected: Vec<RejectedUser>,
    /// Delta links to store (stream → link) once the read has been applied.
    pub cursors: Vec<(String, String)>,
    /// Requests made.
    pub requests: u64,
}

/// The `$select` of user reads: the mapped properties plus what every sync needs.
/// `manager` is read with `$expand`; `signInActivity` is read on its own (see
/// [`read_sign_ins`]): it needs AuditLog.Read.All and a premium tenant, and caps pages at 500,
/// so it must never fail or slow down the main listing.
pub fn user_select(mapped: &BTreeSet<String>) -> String {
    let mut all: BTreeSet<&str> = ALWAYS.iter().copied().collect();
    all.extend(mapped.iter().map(|p| p.split('/').next().unwrap_or(p.as_str())));
    all.remove("manager");
    all.remove("signInActivity");
    all.into_iter().collect::<Vec<_>>().join(",")
}

async fn all_pages(
    tenant: &GraphTenant,
    first: String,
    requests: &mut u64,
) -> Result<Vec<Map<String, Value>>, GraphError> {
    let mut pager = tenant.pager::<Map<String, Value>>(first);
    let mut out = Vec::new();
    while let Some(page) = pager.next_page().await? {
        *requests += 1;
        out.extend(page.value);
    }
    Ok(out)
}

fn mapped_groups_cursor(mapped: &BTreeMap<String, String>) -> String {
    serde_json::to_string(mapped).unwrap_or_else(|_| "{}".into())
}

/// The stored map of mapped groups; a missing or unreadable one is empty, which re-plans the
/// members of every mapped group the round reports (more work, never a missed change).
fn parse_mapped_groups(stored: Option<&str>) -> BTreeMap<String, String> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// Follows a delta chain to its deltaLink.
async fn delta_chain<T: serde::de::DeserializeOwned>(
    tenant: &GraphTenant,
    first: &str,
    requests: &mut u64,
) -> Result<(Vec<Page<T>>, String), GraphError> {
    let mut pages = Vec::new();
    let mut link = first.to_owned();
    loop {
        let page: Page<T> = tenant.get_page(&link).await?;
        *requests += 1;
        match (&page.next_link, &page.delta_link) {
            (Some(next), _) => {
                link = next.clone();
                pages.push(page);
            }
            (None, Some(delta)) => {
                let delta = delta.clone();
                pages.push(page);
                return Ok((pages, delta));
            }
            (None, None) => {
                return Err(GraphError::Malformed {
                    url: deskbridge_core::redact::url(&link),
                    json_path: "$".into(),
                    message: "a delta page has neither @odata.nextLink nor @odata.deltaLink".into(),
                });
            }
        }
    }
}

/// Follows a delta chain to its deltaLink without keeping its pages (a fresh round lists the
/// whole tenant).
async fn delta_link_of(tenant: &GraphTenant, first: &str, requests: &mut u64) -> Result<String, GraphError> {
    let mut link = first.to_owned();
    loop {
        let page: Page<serde::de::IgnoredAny> = tenant.get_page(&link).await?;
        *requests += 1;
        match (page.next_link, page.delta_link) {
            (Some(next), _) => link = next,
            (None, Some(delta)) => return Ok(delta),
            (None, None) => {
                return Err(GraphError::Malformed {
                    url: deskbridge_core::redact::url(&link),
                    json_path: "$".into(),
                    message: "a delta page has neither @odata.nextLink nor @odata.deltaLink".into(),
                });
            }
        }
    }
}

fn is_group_type(member: &Map<String, Value>) -> bool {
    member
        .get("@odata.type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(".group"))
}
