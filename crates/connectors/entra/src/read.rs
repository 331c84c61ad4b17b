//! Reading one tenant through Graph into the mapping engine's input.
//!
//! A full read lists users (with `$expand=manager`), groups with their direct members (nested
//! membership is worked out here), and subscribed SKUs, after first taking delta starting points
//! (`$deltatoken=latest`) so that changes made during the read are seen by the next delta round
//! (a replay is harmless). A delta round follows the stored deltaLinks and uses what they report
//! as a trigger: every user that changed, or whose membership changed, is fetched afresh, so a
//! partial `manager@delta` or a property left out of a delta page never wipes a desk field.

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_graph::{GraphError, GraphTenant, Group, MembershipChanges, Page};
use deskbridge_mapping::{
    Completeness, ReadMode, Removal, RemovalReason, SourceUser, SubscribedSku, TenantRead,
};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Map, Value};

use crate::error::from_graph;
use deskbridge_source::{Emitter, PartitionEnd, PartitionStart, ReadEvent, SourceRecord, SyncError};
use deskbridge_store::IntegrationError;

pub const USERS_DELTA: &str = "users/delta";
pub const GROUPS_DELTA: &str = "groups/delta";
/// What the stored delta links track (see [`DeltaTracking::fingerprint`]): links taken under other
/// settings are not followed.
pub const DELTA_TRACKING: &str = "delta/tracking";
/// The groups the mappings name, id → display name, as of the last read: a delta round that
/// renames one of them (or gives another group a mapped name) re-plans its members.
pub const MAPPED_GROUPS: &str = "groups/mapped";

/// User properties a delta query cannot track, and why. In "mapped fields only" mode they are
/// left out of the delta's `$select`; their values still arrive whenever a tracked property of
/// the user changes, because each changed user is fetched afresh with every mapped property.
pub const UNTRACKABLE: &[(&str, &str)] = &[
    (
        "signInActivity",
        "sign-in activity is not returned by delta queries",
    ),
    (
        "licenseAssignmentStates",
        "Graph does not track changes to licenseAssignmentStates",
    ),
    (
        "aboutMe",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "birthday",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "hireDate",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "interests",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "mySite",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "pastProjects",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "preferredName",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "responsibilities",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "schools",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "skills",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "mailboxSettings",
        "returned only when one user is read, never by lists or delta queries",
    ),
];

/// A mapped property a "mapped fields only" delta cannot listen to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UntrackedField {
    pub property: String,
    pub reason: String,
    /// Where the mappings use it.
    pub used_by: Vec<String>,
}

/// What the users and groups delta queries listen to under a connection's sync method.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeltaTracking {
    /// The users delta `$select`; `None` listens to every change ("all changes").
    pub users_select: Option<String>,
    /// The groups delta `$select`; `None` listens to every change.
    pub groups_select: Option<String>,
    pub untracked: Vec<UntrackedField>,
    /// A digest of the mappings the links were taken under: after a mapping change the next
    /// run reads in full, so every user is planned under the new rules, not only those that
    /// happen to change.
    pub mappings_digest: String,
}

impl DeltaTracking {
    /// "All changes": no `$select`, every property and relationship is tracked.
    pub fn all_changes() -> Self {
        Self {
            users_select: None,
            groups_select: None,
            untracked: Vec::new(),
            mappings_digest: String::new(),
        }
    }

    /// "Mapped fields only": the system fields deskbridge always needs plus every property the
    /// field and site mappings read (the manager relationship included when mapped); groups by
    /// name and members only, as the guides describe.
    pub fn mapped_fields_only(property_uses: &BTreeMap<String, Vec<String>>) -> Self {
        let mut select: BTreeSet<&str> = ALWAYS.iter().copied().collect();
        let mut untracked = Vec::new();
        for (property, used_by) in property_uses {
            match UNTRACKABLE.iter().find(|(p, _)| p.eq_ignore_ascii_case(property)) {
                Some((_, reason)) => untracked.push(UntrackedField {
                    property: property.clone(),
                    reason: (*reason).to_owned(),
                    used_by: used_by.clone(),
                }),
                None => {
                    select.insert(property.as_str());
                }
            }
        }
        Self {
            users_select: Some(select.into_iter().collect::<Vec<_>>().join(",")),
            groups_select: Some("displayName,members".into()),
            untracked,
            mappings_digest: String::new(),
        }
    }

    /// Identifies the tracking settings the stored delta links were taken with.
    pub fn fingerprint(&self) -> String {
        format!(
            "users:{};groups:{};mappings:{}",
            self.users_select.as_deref().unwrap_or("*"),
            self.groups_select.as_deref().unwrap_or("*"),
            self.mappings_digest
        )
    }

    fn start(select: Option<&str>, resource: &str) -> String {
        match select {
            Some(select) => format!("/{resource}/delta?$select={select}&$deltatoken=latest"),
            None => format!("/{resource}/delta?$deltatoken=latest"),
        }
    }
}

/// Delta links that start tracking from now (`$deltatoken=latest`) with the given settings, as
/// cursors to store: the users and groups links and the tracking fingerprint.
pub async fn latest_links(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    requests: &mut u64,
) -> Result<Vec<(String, String)>, GraphError> {
    let users = DeltaTracking::start(tracking.users_select.as_deref(), "users");
    let groups = DeltaTracking::start(tracking.groups_select.as_deref(), "groups");
    let (_, users_link) = delta_chain::<Map<String, Value>>(tenant, &users, requests).await?;
    let (_, groups_link) = delta_chain::<Group>(tenant, &groups, requests).await?;
    Ok(vec![
        (USERS_DELTA.into(), users_link),
        (GROUPS_DELTA.into(), groups_link),
        (DELTA_TRACKING.into(), tracking.fingerprint()),
    ])
}

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

/// Why a tenant's sign-in dates could not be read: the run goes on without them.
#[derive(Debug, Clone)]
pub struct SignInUnavailable {
    pub code: String,
    pub message: String,
    pub remedy: String,
}

/// Every user's `signInActivity`, by user id, read in its own pass of 500-user pages before the
/// users are (so each page of users gets its dates as it is read). A tenant without the
/// permission or a premium licence yields [`SignInUnavailable`] and the users keep no sign-in
/// data (so nothing is overwritten).
pub async fn read_sign_ins(
    tenant: &GraphTenant,
    requests: &mut u64,
) -> Result<Result<SignIns, SignInUnavailable>, GraphError> {
    let mut activity = SignIns::new();
    let mut pager = tenant.pager::<Map<String, Value>>("/users?$select=id,signInActivity&$top=500");
    loop {
        let page = match pager.next_page().await {
            Ok(Some(page)) => page,
            Ok(None) => return Ok(Ok(activity)),
            Err(e)
                if matches!(
                    e.class(),
                    Some(
                        deskbridge_graph::GraphErrorClass::NonPremiumTenant
                            | deskbridge_graph::GraphErrorClass::PermissionDenied
                    )
                ) =>
            {
                let (code, remedy) = match e.api() {
                    Some(api) => (api.code.clone(), api.class.remedy().to_owned()),
                    None => (e.code().to_string(), String::new()),
                };
                return Ok(Err(SignInUnavailable {
                    code,
                    message: e.to_string(),
                    remedy,
                }));
            }
            Err(e) => return Err(e),
        };
        *requests += 1;
        for mut user in page.value {
            if let (Some(Value::String(id)), Some(sign_in)) =
                (user.remove("id"), user.remove("signInActivity"))
            {
                activity.insert(id, sign_in);
            }
        }
    }
}

/// Users' `signInActivity` by user id.
pub type SignIns = std::collections::HashMap<String, Value>;

/// Gives each user their sign-in activity, when it was read.
pub fn add_sign_ins(users: &mut [SourceUser], sign_ins: &SignIns) {
    for user in users {
        if let Some(sign_in) = sign_ins.get(&user.external_id) {
            user.properties.insert("signInActivity".into(), sign_in.clone());
        }
    }
}

/// Whether Entra properties describe a guest: `userType` Guest, or `#EXT#` in the user principal
/// name (guests invited from other tenants carry it).
fn looks_external(properties: &Map<String, Value>) -> bool {
    let guest = properties
        .get("userType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("guest"));
    let ext = properties
        .get("userPrincipalName")
        .and_then(Value::as_str)
        .is_some_and(|upn| upn.to_ascii_uppercase().contains("#EXT#"));
    guest || ext
}

/// The longest text a property of a user may hold. Graph's own limits are far below it (a display
/// name holds 256 characters): a longer value is a corrupt response, never a person's data.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// A user Graph returned that cannot be imported as it is: what is wrong, said once, and which
/// user (when its id could be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedUser {
    pub id: Option<String>,
    pub message: String,
}

/// Checks a user's properties before anything is read from them: the id is text, the properties
/// the pipeline reads itself have Graph's types, and no text is longer than [`MAX_TEXT_BYTES`].
/// Nothing is coerced into a default: a wrong type would otherwise become, say, an enabled
/// account.
fn check_user(properties: &Map<String, Value>) -> Result<String, RejectedUser> {
    let id = match properties.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        other => {
            return Err(RejectedUser {
                id: None,
                message: format!("a user has no id (Graph sent {})", describe(other)),
            });
        }
    };
    let reject = |message: String| RejectedUser {
        id: Some(id.clone()),
        message,
    };
    let expect = |property: &str, ok: fn(&Value) -> bool, what: &str| -> Result<(), RejectedUser> {
        match properties.get(property) {
            Some(value) if !value.is_null() && !ok(value) => Err(reject(format!(
                "user {id}: {property} must be {what}, but Graph sent {}",
                describe(Some(value))
            ))),
            _ => Ok(()),
        }
    };
    expect("accountEnabled", Value::is_boolean, "true or false")?;
    for text in [
        "userPrincipalName",
        "displayName",
        "mail",
        "userType",
        "givenName",
        "surname",
    ] {
        expect(text, Value::is_string, "text")?;
    }
    expect("assignedLicenses", Value::is_array, "a list")?;
    for (property, value) in properties {
        if let Some(len) = longest_text(value).filter(|len| *len > MAX_TEXT_BYTES) {
            return Err(reject(format!(
                "user {id}: {property} holds a text of {len} bytes, more than the {MAX_TEXT_BYTES} a property may hold"
            )));
        }
    }
    Ok(id)
}

/// The longest text anywhere in a value.
fn longest_text(value: &Value) -> Option<usize> {
    match value {
        Value::String(s) => Some(s.len()),
        Value::Array(items) => items.iter().filter_map(longest_text).max(),
        Value::Object(map) => map.values().filter_map(longest_text).max(),
        _ => None,
    }
}

/// A value's type for messages (never the value itself: it may be huge or personal).
fn describe(value: Option<&Value>) -> &'static str {
    match value {
        None => "nothing",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "text",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "an object",
    }
}

fn source_user(mut properties: Map<String, Value>) -> Result<SourceUser, RejectedUser> {
    let external_id = check_user(&properties)?;
    let manager_id = properties
        .remove("manager")
        .and_then(|m| m.get("id").and_then(Value::as_str).map(str::to_owned));
    properties.retain(|k, _| !k.starts_with('@') && !k.contains("@odata"));
    let sku_ids = properties
        .get("assignedLicenses")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|a| a.get("skuId")?.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    // Checked above: a boolean, or absent (Graph leaves out what was not selected).
    let account_enabled = properties
        .get("accountEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(SourceUser {
        external_id,
        manager_id,
        groups: BTreeSet::new(),
        transitive_groups: BTreeSet::new(),
        sku_ids,
        account_enabled,
        external: looks_external(&properties),
        properties,
    })
}

/// A rejected user as the error recorded against the run.
pub fn rejected_error(tenant: &str, rejected: RejectedUser) -> IntegrationError {
    IntegrationError {
        tenant_id: Some(tenant.to_owned()),
        entity: Some("user".into()),
        external_id: rejected.id,
        code: deskbridge_core::ErrorCode::UpstreamMalformedResponse.to_string(),
        message: format!("{}; the user was not imported", rejected.message),
        remedy: Some(
            "Nothing was changed for this user, and nobody is deactivated for being absent from this read. \
             If the value is right in Entra ID, report the response to Microsoft; the next sync reads it again."
                .into(),
        ),
    }
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
                    url: link,
                    json_path: "$".into(),
                    message: "a delta page has neither @odata.nextLink nor @odata.deltaLink".into(),
                });
            }
        }
    }
}

/// One group's members as listed, and the requests it took.
type MemberListing = (String, Vec<(String, bool)>, u64);

/// A group's members as (id, is a group), each page made compact as it arrives: a tenant's
/// memberships are held as ids, never as Graph's objects.
async fn member_ids(
    tenant: &GraphTenant,
    group: &str,
    requests: &mut u64,
) -> Result<Vec<(String, bool)>, GraphError> {
    let mut pager =
        tenant.pager::<Map<String, Value>>(format!("/groups/{group}/members?$select=id&$top=999"));
    let mut out = Vec::new();
    while let Some(page) = pager.next_page().await? {
        *requests += 1;
        out.extend(
            page.value
                .iter()
                .filter_map(|m| Some((m.get("id")?.as_str()?.to_owned(), is_group_type(m)))),
        );
    }
    Ok(out)
}

/// A tenant's group memberships, compactly: each group name once, and per user the indices of
/// the groups they are a direct member of and of all they belong to (nested included).
#[derive(Debug, Default)]
pub struct Memberships {
    names: Vec<String>,
    /// Per user, in one allocation: the number of direct groups, the direct groups' indices,
    /// then the indices of all the user's groups (a large tenant holds one of these per user).
    by_user: std::collections::HashMap<Box<str>, Box<[u32]>>,
}

impl Memberships {
    /// The memberships of `groups` (id → name) with their member lists (member id, is a group).
    fn of(groups: &BTreeMap<String, String>, members: &BTreeMap<String, Vec<(String, bool)>>) -> Self {
        let index: BTreeMap<&str, u32> = groups
            .keys()
            .enumerate()
            .filter_map(|(i, id)| Some((id.as_str(), u32::try_from(i).ok()?)))
            .collect();
        // parent groups of each group, for walking up nested membership
        let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (group, list) in members {
            for (member, is_group) in list {
                if *is_group {
                    parents.entry(member.as_str()).or_default().push(group.as_str());
                }
            }
        }
        let mut sets: std::collections::HashMap<String, (BTreeSet<u32>, BTreeSet<u32>)> =
            std::collections::HashMap::new();
        for (group, list) in members {
            for (member, _) in list.iter().filter(|(_, is_group)| !is_group) {
                let entry = sets.entry(member.clone()).or_default();
                if let Some(i) = index.get(group.as_str()) {
                    entry.0.insert(*i);
                }
                // every ancestor, guarding against membership cycles
                let mut seen: BTreeSet<&str> = BTreeSet::new();
                let mut stack = vec![group.as_str()];
                while let Some(g) = stack.pop() {
                    if !seen.insert(g) {
                        continue;
                    }
                    if let Some(i) = index.get(g) {
                        entry.1.insert(*i);
                    }
                    stack.extend(parents.get(g).into_iter().flatten().copied());
                }
            }
        }
        let by_user = sets
            .into_iter()
            .map(|(user, (direct, nested))| {
                let mut packed = Vec::with_capacity(1 + direct.len() + nested.len());
                packed.push(u32::try_from(direct.len()).unwrap_or(u32::MAX));
                packed.extend(direct);
                packed.extend(nested);
                (user.into_boxed_str(), packed.into_boxed_slice())
            })
            .collect();
        Self {
            names: groups.values().cloned().collect(),
            by_user,
        }
    }

    /// The names of the groups `user` is a direct member of, and of all they belong to.
    fn of_user(&self, user: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let names = |indices: &[u32]| -> BTreeSet<String> {
            indices
                .iter()
                .filter_map(|i| self.names.get(*i as usize).cloned())
                .collect()
        };
        match self.by_user.get(user) {
            Some(packed) => {
                let direct = packed.first().map_or(0, |n| *n as usize);
                let rest = packed.get(1..).unwrap_or_default();
                let (direct, nested) = rest.split_at(direct.min(rest.len()));
                (names(direct), names(nested))
            }
            None => (BTreeSet::new(), BTreeSet::new()),
        }
    }
}

fn subscribed_sku(sku: &Map<String, Value>) -> Option<SubscribedSku> {
    let text = |k: &str| sku.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(SubscribedSku {
        sku_id: text("skuId")?.to_lowercase(),
        sku_part_number: text("skuPartNumber").unwrap_or_default(),
        friendly_name: None,
        enabled_units: sku
            .get("prepaidUnits")
            .and_then(|p| p.get("enabled"))
            .and_then(Value::as_i64),
        consumed_units: sku.get("consumedUnits").and_then(Value::as_i64),
        capability_status: text("capabilityStatus"),
    })
}

fn is_group_type(member: &Map<String, Value>) -> bool {
    member
        .get("@odata.type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(".group"))
}

/// What a full read needs besides the tenant.
pub struct FullRead<'a> {
    /// The users `$select`.
    pub select: &'a str,
    /// Whether the mappings use groups (members are listed only then).
    pub with_groups: bool,
    pub customer: deskbridge_core::RecordId,
    pub tracking: &'a DeltaTracking,
    /// The group names the mappings use.
    pub mapped_names: &'a BTreeSet<String>,
    /// Sign-in activity to add to the users, when read.
    pub sign_ins: Option<&'a SignIns>,
}

/// Reads the whole tenant and hands it to the pipeline as it goes: the partition begins with the
/// tenant's licences and groups (memberships are worked out first, kept compactly), then each
/// page of users Graph returns is a page of the read, and the partition ends with the delta links
/// taken before the read began. Only one page of users is held at a time.
pub async fn read_full(tenant: &GraphTenant, read: FullRead<'_>, out: &mut Emitter) -> Result<(), SyncError> {
    let mut requests = 0;
    let wrap = |e: GraphError| from_graph(&e);
    // Delta starting points first: whatever changes during the read is reported next time.
    // Each changed user is fetched afresh with the mapped properties, whatever the delta tracks.
    let mut cursors = latest_links(tenant, read.tracking, &mut requests)
        .await
        .map_err(wrap)?;
    let groups_raw = all_pages(
        tenant,
        "/groups?$select=id,displayName&$top=999".into(),
        &mut requests,
    )
    .await
    .map_err(wrap)?;
    let groups: BTreeMap<String, String> = groups_raw
        .iter()
        .filter_map(|g| {
            Some((
                g.get("id")?.as_str()?.to_owned(),
                g.get("displayName")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    drop(groups_raw);
    let mut members: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    if read.with_groups {
        let listings: Vec<MemberListing> = futures::stream::iter(groups.keys().cloned())
            .map(|id| async move {
                let mut n = 0;
                let list = member_ids(tenant, &id, &mut n).await?;
                Ok::<_, GraphError>((id, list, n))
            })
            .buffer_unordered(FAN_OUT)
            .try_collect()
            .await
            .map_err(wrap)?;
        for (id, list, n) in listings {
            requests += n;
            members.insert(id, list);
        }
    }
    let memberships = Memberships::of(&groups, &members);
    drop(members);
    let skus = tenant
        .get_page::<Map<String, Value>>("/subscribedSkus")
        .await
        .map_err(wrap)?
        .value;
    requests += 1;
    let mapped: BTreeMap<String, String> = groups
        .iter()
        .filter(|(_, name)| read.mapped_names.contains(*name))
        .map(|(id, name)| (id.clone(), name.clone()))
        .collect();
    cursors.push((MAPPED_GROUPS.into(), mapped_groups_cursor(&mapped)));
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: tenant.tenant_id().to_owned(),
        customer_id: Some(read.customer),
        mode: ReadMode::Full,
        subscribed_skus: Some(skus.iter().filter_map(subscribed_sku).collect()),
        groups: Some(groups.into_values().collect()),
    }))
    .await?;
    let users_url = format!(
        "/users?$select={}&$top=999&$expand=manager($select=id)",
        read.select
    );
    let mut pager = tenant.pager::<Map<String, Value>>(users_url);
    let mut completeness = Completeness::Complete;
    while let Some(page) = pager.next_page().await.map_err(wrap)? {
        requests += 1;
        let mut users = Vec::with_capacity(page.value.len());
        for raw in page.value {
            match source_user(raw) {
                Ok(user) => users.push(user),
                Err(rejected) => {
                    // Someone was not read: absence from this read proves nothing.
                    completeness = Completeness::Partial;
                    out.emit(ReadEvent::Warning(rejected_error(tenant.tenant_id(), rejected)))
                        .await?;
                }
            }
        }
        for user in &mut users {
            (user.groups, user.transitive_groups) = memberships.of_user(&user.external_id);
        }
        if let Some(sign_ins) = read.sign_ins {
            add_sign_ins(&mut users, sign_ins);
        }
        out.emit(ReadEvent::Page(deskbridge_source::Page {
            tenant_id: tenant.tenant_id().to_owned(),
            records: users.into_iter().map(SourceRecord::User).collect(),
            removed: Vec::new(),
            cursors: Vec::new(),
        }))
        .await?;
    }
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id: tenant.tenant_id().to_owned(),
        completeness,
        cursors,
        requests,
    }))
    .await
}

/// What a delta round starts from: the stored links and the mapped groups as last seen.
#[derive(Debug, Clone, Copy)]
pub struct DeltaState<'a> {
    pub users_link: &'a str,
    pub groups_link: &'a str,
    /// The [`MAPPED_GROUPS`] cursor, if stored.
    pub mapped_groups: Option<&'a str>,
}

/// One delta round from the stored links, in named steps: follow both chains, gather the users
/// they report changed or removed, widen to the members of groups whose mapping or nesting
/// changed, fetch each changed user afresh, and settle who is current, gone or unreadable. A
/// resync error is returned as is (the caller falls back to a full read).
pub async fn read_delta(
    tenant: &GraphTenant,
    select: &str,
    with_groups: bool,
    customer: deskbridge_core::RecordId,
    state: DeltaState<'_>,
    mapped_names: &BTreeSet<String>,
) -> Result<TenantData, GraphError> {
    let mut requests = 0;
    let round = follow_delta_links(tenant, &state, &mut requests).await?;
    let (mut changed, mut removed) = users_in_round(&round.user_pages);
    let mut mapped = parse_mapped_groups(state.mapped_groups);
    if with_groups {
        let regroup = groups_to_replan(&round.group_pages, &mut mapped, mapped_names, &mut changed);
        changed.extend(users_of_groups(tenant, regroup, &mut requests).await?);
    }
    let fetched = fetch_changed_users(tenant, changed, select, with_groups, &mut requests).await?;
    let (users, rejected) = settle(fetched, &mut removed);
    Ok(TenantData {
        read: TenantRead {
            tenant_id: tenant.tenant_id().to_owned(),
            customer_id: Some(customer),
            mode: ReadMode::Delta,
            completeness: Completeness::Complete,
            users,
            removed: removed
                .into_iter()
                .map(|(external_id, reason)| Removal { external_id, reason })
                .collect(),
            subscribed_skus: None,
        },
        rejected,
        cursors: vec![
            (USERS_DELTA.into(), round.users_link),
            (GROUPS_DELTA.into(), round.groups_link),
            (MAPPED_GROUPS.into(), mapped_groups_cursor(&mapped)),
        ],
        requests,
    })
}

/// What both delta chains reported, and the links to take next time.
struct DeltaRound {
    user_pages: Vec<Page<Map<String, Value>>>,
    group_pages: Vec<Page<Group>>,
    users_link: String,
    groups_link: String,
}

/// Follows the users and the groups chains to their delta links, both at once: a quiet round
/// costs one round trip per tenant, not two.
async fn follow_delta_links(
    tenant: &GraphTenant,
    state: &DeltaState<'_>,
    requests: &mut u64,
) -> Result<DeltaRound, GraphError> {
    let (mut user_requests, mut group_requests) = (0, 0);
    let (users, groups) = futures::join!(
        delta_chain::<Map<String, Value>>(tenant, state.users_link, &mut user_requests),
        delta_chain::<Group>(tenant, state.groups_link, &mut group_requests),
    );
    *requests += user_requests + group_requests;
    let ((user_pages, users_link), (group_pages, groups_link)) = (users?, groups?);
    Ok(DeltaRound {
        user_pages,
        group_pages,
        users_link,
        groups_link,
    })
}

/// The users a round reports changed (to fetch afresh) and removed (with Graph's reason).
fn users_in_round(pages: &[Page<Map<String, Value>>]) -> (BTreeSet<String>, BTreeMap<String, RemovalReason>) {
    let mut removed: BTreeMap<String, RemovalReason> = BTreeMap::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for page in pages {
        for r in &page.removed {
            let reason = match r.reason {
                deskbridge_graph::RemovedReason::Deleted => RemovalReason::Deleted,
                _ => RemovalReason::Changed,
            };
            removed.insert(r.id.clone(), reason);
        }
        for user in &page.value {
            if let Some(id) = user.get("id").and_then(Value::as_str) {
                changed.insert(id.to_owned());
            }
        }
    }
    (changed, removed)
}

/// The groups whose users must be re-planned in full: a mapped group renamed, or another group
/// given a mapped name; and groups added to or removed from a group, whose users' nested
/// membership changed with them. Users added to or removed from a group join `changed`;
/// `mapped` (the mapped groups, id → name) is brought up to date.
fn groups_to_replan(
    pages: &[Page<Group>],
    mapped: &mut BTreeMap<String, String>,
    mapped_names: &BTreeSet<String>,
    changed: &mut BTreeSet<String>,
) -> BTreeSet<String> {
    let mut membership = MembershipChanges::default();
    let mut regroup: BTreeSet<String> = BTreeSet::new();
    for page in pages {
        for r in &page.removed {
            mapped.remove(&r.id);
        }
        for group in &page.value {
            membership.merge_group(group);
            let Some(name) = &group.display_name else { continue };
            let was = mapped.get(&group.id);
            let is_mapped = mapped_names.contains(name);
            if was.is_some_and(|old| old != name) || (was.is_none() && is_mapped) {
                regroup.insert(group.id.clone());
            }
            if is_mapped {
                mapped.insert(group.id.clone(), name.clone());
            } else {
                mapped.remove(&group.id);
            }
        }
    }
    for group in membership.group_ids().map(str::to_owned).collect::<Vec<_>>() {
        for member in membership
            .added(&group)
            .into_iter()
            .chain(membership.removed(&group))
        {
            match membership.member_type(member) {
                Some(t) if t.ends_with("group") => {
                    regroup.insert(member.to_owned());
                }
                Some(t) if !t.ends_with("user") => {}
                _ => {
                    changed.insert(member.to_owned());
                }
            }
        }
    }
    regroup
}

/// Every user (nested membership included) of `groups`, a few groups at once.
async fn users_of_groups(
    tenant: &GraphTenant,
    groups: BTreeSet<String>,
    requests: &mut u64,
) -> Result<Vec<String>, GraphError> {
    let members: Vec<(Vec<Map<String, Value>>, u64)> = futures::stream::iter(groups)
        .map(|id| async move {
            let mut n = 0;
            let url = format!("/groups/{id}/transitiveMembers/microsoft.graph.user?$select=id&$top=999");
            match all_pages(tenant, url, &mut n).await {
                Ok(list) => Ok((list, n)),
                // Deleted since the delta page was written: its members are re-planned when
                // their own memberships change.
                Err(e) if e.class() == Some(deskbridge_graph::GraphErrorClass::NotFound) => {
                    Ok((Vec::new(), n))
                }
                Err(e) => Err(e),
            }
        })
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await?;
    let mut users = Vec::new();
    for (list, n) in members {
        *requests += n;
        users.extend(
            list.iter()
                .filter_map(|m| m.get("id")?.as_str().map(str::to_owned)),
        );
    }
    Ok(users)
}

/// A changed user fetched afresh: current (`Some`), gone since the round was written (`None`), or
/// read but not importable.
type Fetched = (String, Result<Option<SourceUser>, RejectedUser>);

/// Fetches each changed user afresh with its memberships, a few users at once.
async fn fetch_changed_users(
    tenant: &GraphTenant,
    changed: BTreeSet<String>,
    select: &str,
    with_groups: bool,
    requests: &mut u64,
) -> Result<Vec<Fetched>, GraphError> {
    let fetches: Vec<(Fetched, u64)> = futures::stream::iter(changed)
        .map(|id| fetch_user(tenant, id, select, with_groups))
        .buffer_unordered(FAN_OUT)
        .try_collect()
        .await?;
    Ok(fetches
        .into_iter()
        .map(|(fetched, n)| {
            *requests += n;
            fetched
        })
        .collect())
}

/// One user and both membership lists at once: three round trips in the time of one.
async fn fetch_user(
    tenant: &GraphTenant,
    id: String,
    select: &str,
    with_groups: bool,
) -> Result<(Fetched, u64), GraphError> {
    let url = format!("/users/{id}?$select={select}&$expand=manager($select=id)");
    let (mut direct_n, mut nested_n) = (0, 0);
    let memberships = async {
        if !with_groups {
            return Ok((Vec::new(), Vec::new()));
        }
        futures::try_join!(
            all_pages(
                tenant,
                format!("/users/{id}/memberOf?$select=id,displayName&$top=999"),
                &mut direct_n,
            ),
            all_pages(
                tenant,
                format!("/users/{id}/transitiveMemberOf?$select=id,displayName&$top=999"),
                &mut nested_n,
            ),
        )
    };
    let (user, memberships) = futures::join!(tenant.get_json::<Map<String, Value>>(&url), memberships);
    let n = 1 + direct_n + nested_n;
    let mut user = match user {
        Ok(raw) => match source_user(raw) {
            Ok(user) => user,
            Err(rejected) => return Ok(((id, Err(rejected)), n)),
        },
        Err(e) if e.class() == Some(deskbridge_graph::GraphErrorClass::NotFound) => {
            return Ok(((id, Ok(None)), n));
        }
        Err(e) => return Err(e),
    };
    if with_groups {
        // A user deleted meanwhile has no memberships to read: that NotFound is the user's,
        // reported above; any other failure stops the round.
        let (direct, nested) = memberships?;
        let names = |list: Vec<Map<String, Value>>| -> BTreeSet<String> {
            list.into_iter()
                .filter(is_group_type)
                .filter_map(|g| g.get("displayName")?.as_str().map(str::to_owned))
                .collect()
        };
        user.groups = names(direct);
        user.transitive_groups = names(nested);
    }
    Ok(((id, Ok(Some(user))), n))
}

/// Who is current, gone or unreadable after the fetches. A user both changed and removed in the
/// round is removed only if fetching them found nothing; restored users come back as changes;
/// a user read but not importable is neither changed nor removed (it exists).
fn settle(
    fetched: Vec<Fetched>,
    removed: &mut BTreeMap<String, RemovalReason>,
) -> (Vec<SourceUser>, Vec<RejectedUser>) {
    let mut users = Vec::new();
    let mut rejected = Vec::new();
    for (id, user) in fetched {
        match user {
            Ok(Some(user)) => {
                removed.remove(&user.external_id);
                users.push(user);
            }
            // Gone since the delta page was written: a soft delete at least.
            Ok(None) => {
                removed.entry(id).or_insert(RemovalReason::Changed);
            }
            Err(user) => {
                removed.remove(&id);
                rejected.push(user);
            }
        }
    }
    users.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    (users, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_membership_walks_up_and_survives_cycles() {
        let groups: BTreeMap<String, String> = [("g1", "Staff"), ("g2", "London"), ("g3", "Everyone")]
            .into_iter()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        let members: BTreeMap<String, Vec<(String, bool)>> = [
            (
                "g1".to_owned(),
                vec![("u1".to_owned(), false), ("g2".to_owned(), true)],
            ),
            (
                "g2".to_owned(),
                vec![("u2".to_owned(), false), ("g3".to_owned(), true)],
            ),
            ("g3".to_owned(), vec![("g1".to_owned(), true)]),
        ]
        .into_iter()
        .collect();
        let by_user = Memberships::of(&groups, &members);
        let (direct, nested) = by_user.of_user("u2");
        assert_eq!(direct.iter().collect::<Vec<_>>(), ["London"]);
        assert_eq!(
            nested.len(),
            3,
            "London, and through the cycle Staff and Everyone"
        );
        assert_eq!(by_user.of_user("u1").0.iter().collect::<Vec<_>>(), ["Staff"]);
    }

    #[test]
    fn users_keep_their_properties_manager_and_licences() {
        let raw = serde_json::json!({
            "id": "u1", "displayName": "Ada", "accountEnabled": false,
            "assignedLicenses": [{"skuId": "6FD2C87F-B296-42F0-B197-1E91E994B900", "disabledPlans": []}],
            "manager": {"@odata.type": "#microsoft.graph.user", "id": "m1"},
            "manager@odata.context": "x"
        });
        let user = source_user(raw.as_object().unwrap().clone()).unwrap();
        assert!(!user.is_external());
        assert_eq!(user.manager_id.as_deref(), Some("m1"));
        assert!(!user.account_enabled);
        assert!(user.sku_ids.contains("6fd2c87f-b296-42f0-b197-1e91e994b900"));
        assert!(!user.properties.contains_key("manager"));
        assert!(!user.properties.contains_key("manager@odata.context"));
    }

    fn user(raw: serde_json::Value) -> Result<SourceUser, RejectedUser> {
        source_user(raw.as_object().unwrap().clone())
    }

    #[test]
    fn guests_are_external_by_type_or_principal_name() {
        let guest = user(serde_json::json!({"id": "g1", "userType": "Guest"})).unwrap();
        assert!(guest.is_external());
        let invited =
            user(serde_json::json!({"id": "g2", "userPrincipalName": "ada_x.com#EXT#@t.onmicrosoft.com"}))
                .unwrap();
        assert!(invited.is_external());
    }

    #[test]
    fn users_graph_could_not_have_sent_are_rejected_not_coerced() {
        let no_id = user(serde_json::json!({"displayName": "Ada"})).unwrap_err();
        assert_eq!(no_id.id, None);
        assert!(no_id.message.contains("no id"), "{}", no_id.message);
        let wrong = user(serde_json::json!({"id": "u1", "accountEnabled": "yes"})).unwrap_err();
        assert_eq!(wrong.id.as_deref(), Some("u1"));
        assert!(
            wrong.message.contains("accountEnabled must be true or false"),
            "{}",
            wrong.message
        );
        assert!(wrong.message.contains("sent text"), "{}", wrong.message);
        let licences = user(serde_json::json!({"id": "u1", "assignedLicenses": {"skuId": "x"}})).unwrap_err();
        assert!(
            licences.message.contains("assignedLicenses must be a list"),
            "{}",
            licences.message
        );
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let oversize = user(serde_json::json!({"id": "u1", "department": long})).unwrap_err();
        assert!(
            oversize.message.contains("department holds a text of"),
            "{}",
            oversize.message
        );
        // A null is "no value", as Graph sends for empty properties.
        assert!(user(serde_json::json!({"id": "u1", "accountEnabled": null, "mail": null})).is_ok());
    }
}
