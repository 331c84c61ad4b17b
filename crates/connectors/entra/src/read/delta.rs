//! A delta round from the stored links, in named steps: follow both chains, gather the users they
//! report, widen to the members of groups whose mapping or nesting changed, fetch each changed
//! user afresh, and settle who is current, gone or unreadable.

use super::*;

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
/// resync error is returned as is: the caller restarts the round from it as a full read
/// ([`super::DeltaStart::after_resync`]).
pub async fn read_delta(
    tenant: &GraphTenant,
    select: &str,
    with_groups: bool,
    customer: deskbridge_core::RecordId,
    state: DeltaState<'_>,
    mapped_names: &BTreeSet<String>,
) -> Result<TenantData, GraphError> {
    let mut requests = 0;
    // Licence counts (consumed units) change without any user changing: they are read every
    // round, beside the delta chains (one round trip of latency, not two), so the desk's counts
    // stay true between full reads.
    let (round, skus) = futures::join!(
        follow_delta_links(tenant, &state, &mut requests),
        tenant.get_page::<Map<String, Value>>("/subscribedSkus")
    );
    let round = round?;
    requests += 1;
    // Without Organization.Read.All (optional) the desk's licences are left as they are, as a
    // full read leaves them.
    let subscribed_skus = match skus {
        Ok(page) => Some(
            page.value
                .iter()
                .filter_map(super::full::subscribed_sku)
                .collect(),
        ),
        Err(e) if e.class() == Some(GraphErrorClass::PermissionDenied) => None,
        Err(e) => return Err(e),
    };
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
            subscribed_skus,
            subscriptions: None,
            usage: None,
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
