//! A full read, streamed: memberships first (kept compactly), licences and groups to begin the
//! partition, then each page of users Graph returns, then the delta links taken before the read.

use super::*;

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

pub(crate) fn subscribed_sku(sku: &Map<String, Value>) -> Option<SubscribedSku> {
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
    /// Whether the tenant's subscribed SKUs become desk licences (CSP's licence import type may
    /// take subscriptions instead).
    pub licences: bool,
    /// The customer's subscriptions, when the connector read them (CSP), for the partition's start.
    pub subscriptions: Option<&'a [deskbridge_mapping::SourceSubscription]>,
    /// Where the delta links stored with the read start: from now, or a fresh round after Graph
    /// asked for a resync.
    pub delta_start: &'a DeltaStart,
}

/// Reads the whole tenant and hands it to the pipeline as it goes: the partition begins with the
/// tenant's licences and groups (memberships are worked out first, kept compactly), then each
/// page of users Graph returns is a page of the read, and the partition ends with the delta links
/// taken before the read began. Only one page of users is held at a time.
pub async fn read_full(tenant: &GraphTenant, read: FullRead<'_>, out: &mut Emitter) -> Result<(), SyncError> {
    out.emit(ReadEvent::Mode(ReadMode::Full)).await?;
    let mut requests = 0;
    let wrap = |e: GraphError| from_graph(&e);
    // Delta starting points first: whatever changes during the read is reported next time.
    // Each changed user is fetched afresh with the mapped properties, whatever the delta tracks.
    let mut cursors = start_links(tenant, read.tracking, read.delta_start, &mut requests)
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
    let skus = if !read.licences {
        None
    } else {
        requests += 1;
        read_licences(tenant, out).await?
    };
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
        subscribed_skus: skus,
        subscriptions: read.subscriptions.map(<[_]>::to_vec),
        usage: None,
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

/// The tenant's subscribed SKUs (one request). Licences need Organization.Read.All, which the
/// guide makes optional: without it the users are imported and the licences left as they are,
/// with a warning that says what to grant (`None`).
pub async fn read_licences(
    tenant: &GraphTenant,
    out: &mut Emitter,
) -> Result<Option<Vec<SubscribedSku>>, SyncError> {
    let wrap = |e: GraphError| from_graph(&e);
    Ok(
        match tenant.get_page::<Map<String, Value>>("/subscribedSkus").await {
            Ok(page) => Some(page.value.iter().filter_map(subscribed_sku).collect()),
            Err(e) if e.class() == Some(GraphErrorClass::PermissionDenied) => {
                let error = wrap(e);
                out.emit(ReadEvent::Warning(IntegrationError {
                tenant_id: Some(tenant.tenant_id().to_owned()),
                entity: Some("licence".into()),
                external_id: None,
                code: error.code(),
                message: format!("licences were not imported: {error}"),
                remedy: Some(
                    "Licences (subscribed SKUs) need the Organization.Read.All application permission with admin \
                     consent; users are imported without it, linked to the licences already on the desk."
                        .into(),
                ),
            }))
            .await?;
                None
            }
            Err(e) => return Err(wrap(e)),
        },
    )
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
}
