//! `users/delta` and `groups/delta`: rounds over the tenant's change log.
//!
//! A round is either the initial full sync (`from` = None) or the changes in log positions
//! `from..to`; every page's token carries the whole round, so the server keeps no per-client
//! state. The last page carries a deltaLink whose round starts at the previous round's `to`.
use std::collections::HashMap;
use std::sync::PoisonError;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::render::{GROUP_PROPS, USER_PROPS, render_group, render_user};
use super::resources::{metadata, ok_json};
use super::*;
use crate::limits::Faults;
use crate::world::{Change, MemberRef, Tenant};

const USERS_PAGE: usize = 200;
const GROUPS_PAGE: usize = 50;
/// Members per `members@delta` entry: a large group spans several entries (and pages).
const MEMBER_CHUNK: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Round {
    /// Resource: "u" users, "g" groups.
    r: String,
    t: String,
    s: Option<String>,
    f: Option<Vec<String>>,
    from: Option<u64>,
    to: u64,
    o: usize,
    /// When the round's token was issued (epoch seconds).
    i: i64,
}

enum Entry {
    /// A user, with the managers removed from it during the round.
    User(usize, Vec<String>),
    Removed {
        id: String,
        hard: bool,
    },
    Group {
        index: usize,
        members: Vec<(MemberRef, bool)>,
        with_members: bool,
    },
    /// Initial sync: a window of the group's current members, read at render time (no copies).
    GroupSlice {
        index: usize,
        start: usize,
        end: usize,
    },
}

/// A 410 asking for a resync, with the `Location` of a fresh round (an empty `$deltatoken`)
/// unless the fault `resync_without_location` leaves it out.
fn resync(state: &AppState, faults: &Faults, users: bool, code: &'static str, message: &str) -> GraphError {
    let mut e = err(StatusCode::GONE, code, message);
    if faults.resync_without_location {
        return e;
    }
    let resource = if users { "users" } else { "groups" };
    // An unreadable token: following it is refused in turn.
    let token = if faults.resync_location_refused {
        "bm90LWEtdG9rZW4"
    } else {
        ""
    };
    e.headers.push((
        "Location".into(),
        format!("{}/v1.0/{resource}/delta?$deltatoken={token}", state.base_url),
    ));
    e
}

pub(crate) fn handle(
    state: &AppState,
    req: &Req<'_>,
    caller: &Caller,
    faults: &Faults,
    users: bool,
) -> GResult<Resp> {
    caller.require(if users { READ_USERS } else { READ_GROUPS })?;
    for opt in ["$expand", "$top", "$orderby", "$search", "$skip"] {
        if req.param(opt).is_some() {
            return Err(unsupported(format!(
                "The query option '{opt}' is not supported with delta query."
            )));
        }
    }
    let now = state.clock.now().as_second();
    let skip = req.param("$skiptoken");
    // An empty `$deltatoken` (the 410's `Location`) starts a fresh round, as no token does.
    let delta = req.param("$deltatoken").filter(|d| !d.is_empty());
    if delta == Some("latest") && faults.refuse_latest_delta_token {
        return Err(unsupported(
            "$deltatoken=latest is not supported for this resource.",
        ));
    }
    // `$deltatoken=latest` starts a token, so it takes the $select / $filter the token will carry.
    if (skip.is_some() || delta.is_some_and(|d| d != "latest"))
        && (req.param("$select").is_some() || req.param("$filter").is_some())
    {
        return Err(bad_request(
            "$select and $filter cannot be combined with a $skiptoken or $deltatoken; they are part of the token.",
        ));
    }
    let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
    let t = world
        .tenant(&caller.tenant_id)
        .ok_or_else(|| not_found(&caller.tenant_id))?;
    let head = t.changes.head();
    let resource = if users { "u" } else { "g" };
    let round = match skip.or(delta) {
        Some("latest") if delta.is_some() => {
            // The token carries the $select of this request: what it tracks from now on.
            let allowed: &[&str] = if users { USER_PROPS.as_slice() } else { GROUP_PROPS };
            let extra: &[&str] = if users { &["manager"] } else { &["members"] };
            Selection::parse(
                req.param("$select"),
                allowed,
                extra,
                if users { "user" } else { "group" },
            )?;
            let r = Round {
                r: resource.into(),
                t: t.id.clone(),
                s: req.param("$select").map(str::to_owned),
                f: None,
                from: Some(head),
                to: head,
                o: 0,
                i: now,
            };
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(metadata(state, &format!("{}/$delta", name(users)))),
            );
            body.insert(
                "@odata.deltaLink".into(),
                json!(link(state, users, "$deltatoken", &r)),
            );
            body.insert("value".into(), json!([]));
            return Ok(ok_json(Value::Object(body)));
        }
        Some(tok) => {
            let r: Round = decode_token(tok).ok_or_else(|| {
                resync(
                    state,
                    faults,
                    users,
                    "syncStateNotFound",
                    "The sync state could not be found.",
                )
            })?;
            if r.r != resource || r.t != t.id {
                return Err(resync(
                    state,
                    faults,
                    users,
                    "syncStateNotFound",
                    "The sync state could not be found.",
                ));
            }
            let too_old =
                now.saturating_sub(r.i) > i64::try_from(faults.max_delta_token_age_secs).unwrap_or(i64::MAX);
            let declared = faults
                .delta_tokens_expired_before
                .is_some_and(|b| r.i <= b.as_second());
            if too_old || declared {
                return Err(resync(
                    state,
                    faults,
                    users,
                    "resyncRequired",
                    "Resync required. Replace any local cached data with data from a new delta query without a \
                     token, then apply changes from the delta query.",
                ));
            }
            if delta.is_some() {
                Round {
                    to: head,
                    o: 0,
                    i: now,
                    ..r
                }
            } else {
                r
            }
        }
        None => {
            let allowed: &[&str] = if users { USER_PROPS.as_slice() } else { GROUP_PROPS };
            let extra: &[&str] = if users { &["manager"] } else { &["members"] };
            Selection::parse(
                req.param("$select"),
                allowed,
                extra,
                if users { "user" } else { "group" },
            )?;
            let ids = match req.param("$filter") {
                None => None,
                Some(raw) => {
                    let ids = crate::filter::parse(raw)
                        .ok()
                        .and_then(|e| e.id_list())
                        .ok_or_else(|| {
                            unsupported("Delta query supports only $filter=id eq '…' (combined with 'or').")
                        })?;
                    if ids.len() > 50 {
                        return Err(unsupported("Delta query $filter supports at most 50 ids."));
                    }
                    Some(ids)
                }
            };
            Round {
                r: resource.into(),
                t: t.id.clone(),
                s: req.param("$select").map(str::to_owned),
                f: ids,
                from: None,
                to: head,
                o: 0,
                i: now,
            }
        }
    };
    let allowed: &[&str] = if users { USER_PROPS.as_slice() } else { GROUP_PROPS };
    let extra: &[&str] = if users { &["manager"] } else { &["members"] };
    let sel = Selection::parse(
        round.s.as_deref(),
        allowed,
        extra,
        if users { "user" } else { "group" },
    )?;
    let track_relationship = match &sel.0 {
        None => true,
        Some(_) => sel.contains(if users { "manager" } else { "members" }),
    };
    let page_size = req
        .header("prefer")
        .and_then(|p| {
            p.split(',')
                .find_map(|x| x.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(if users { USERS_PAGE } else { GROUPS_PAGE });
    let mut entries = build_entries(t, &round, users, track_relationship);
    if faults.delta_replays && round.from.is_some() && !entries.is_empty() {
        let replay = match &entries[0] {
            Entry::User(i, removed) => Entry::User(*i, removed.clone()),
            Entry::Removed { id, hard } => Entry::Removed {
                id: id.clone(),
                hard: *hard,
            },
            Entry::Group {
                index,
                members,
                with_members,
            } => Entry::Group {
                index: *index,
                members: members.clone(),
                with_members: *with_members,
            },
            Entry::GroupSlice { index, start, end } => Entry::GroupSlice {
                index: *index,
                start: *start,
                end: *end,
            },
        };
        entries.push(replay);
    }
    let end = round.o.saturating_add(page_size).min(entries.len());
    let user_sel = Selection(
        sel.0
            .as_ref()
            .map(|p| p.iter().filter(|x| *x != "manager").cloned().collect()),
    );
    let group_sel = Selection(
        sel.0
            .as_ref()
            .map(|p| p.iter().filter(|x| *x != "members").cloned().collect()),
    );
    let values: Vec<Value> = entries
        .get(round.o..end)
        .unwrap_or_default()
        .iter()
        .map(|e| render_entry(t, e, &user_sel, &group_sel, track_relationship))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(metadata(
            state,
            &format!("{}{}/$delta", name(users), sel.context_suffix())
        )),
    );
    if end < entries.len() {
        body.insert(
            "@odata.nextLink".into(),
            json!(link(state, users, "$skiptoken", &Round { o: end, ..round })),
        );
    } else {
        let next_round = Round {
            from: Some(round.to),
            o: 0,
            i: now,
            ..round
        };
        body.insert(
            "@odata.deltaLink".into(),
            json!(link(state, users, "$deltatoken", &next_round)),
        );
    }
    body.insert("value".into(), Value::Array(values));
    Ok(ok_json(Value::Object(body)))
}

fn name(users: bool) -> &'static str {
    if users { "users" } else { "groups" }
}

fn link(state: &AppState, users: bool, key: &str, round: &Round) -> String {
    format!(
        "{}/v1.0/{}/delta?{key}={}",
        state.base_url,
        name(users),
        encode_token(round)
    )
}

fn wanted(round: &Round, id: &str) -> bool {
    round
        .f
        .as_ref()
        .is_none_or(|ids| ids.iter().any(|x| x.eq_ignore_ascii_case(id)))
}

fn build_entries(t: &Tenant, round: &Round, users: bool, track: bool) -> Vec<Entry> {
    let mut entries = Vec::new();
    match round.from {
        None if users => {
            for (i, u) in t.users.iter().enumerate() {
                if u.deleted_date_time.is_none() && wanted(round, &u.id) {
                    entries.push(Entry::User(i, vec![]));
                }
            }
        }
        None => {
            for (i, g) in t.groups.iter().enumerate() {
                if g.deleted_date_time.is_some() || !wanted(round, &g.id) {
                    continue;
                }
                if !track || g.members.is_empty() {
                    entries.push(Entry::Group {
                        index: i,
                        members: vec![],
                        with_members: track,
                    });
                    continue;
                }
                for start in (0..g.members.len()).step_by(MEMBER_CHUNK) {
                    let end = (start + MEMBER_CHUNK).min(g.members.len());
                    entries.push(Entry::GroupSlice { index: i, start, end });
                }
            }
        }
        Some(from) => {
            let end = usize::try_from(round.to).unwrap_or(usize::MAX);
            let start = usize::try_from(from).unwrap_or(usize::MAX);
            let log = t
                .changes
                .entries
                .get(start.min(end)..end.min(t.changes.entries.len()))
                .unwrap_or_default();
            // Objects in order of first change; membership changes netted per group.
            let mut order: Vec<String> = Vec::new();
            let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
            let mut memberships: HashMap<String, Vec<(MemberRef, bool)>> = HashMap::new();
            let mut removed_managers: HashMap<&str, Vec<String>> = HashMap::new();
            // With $select, a user is reported only when a selected property changed.
            let tracked: Option<Vec<String>> = round
                .s
                .as_ref()
                .map(|s| s.split(',').map(|p| p.trim().to_ascii_lowercase()).collect());
            let is_tracked = |properties: &Option<Vec<String>>| match (&tracked, properties) {
                (None, _) | (_, None) => true,
                (Some(tracked), Some(changed)) => {
                    changed.iter().any(|p| tracked.contains(&p.to_ascii_lowercase()))
                }
            };
            for change in log {
                let id = match (change, users) {
                    (Change::User { id, properties }, true) if is_tracked(properties) => id,
                    (Change::UserRemoved { id, .. }, true) => id,
                    (Change::ManagerRemoved { user_id, manager_id }, true)
                        if is_tracked(&Some(vec!["manager".to_owned()])) =>
                    {
                        removed_managers
                            .entry(user_id.as_str())
                            .or_default()
                            .push(manager_id.clone());
                        user_id
                    }
                    (Change::Group { id } | Change::GroupRemoved { id, .. }, false) => id,
                    (
                        Change::Membership {
                            group_id,
                            member,
                            removed,
                        },
                        false,
                    ) => {
                        let list = memberships.entry(group_id.clone()).or_default();
                        list.retain(|(m, _)| m.id != member.id);
                        list.push((member.clone(), *removed));
                        group_id
                    }
                    _ => continue,
                };
                if wanted(round, id) && seen.insert(id.as_str()) {
                    order.push(id.clone());
                }
            }
            for id in order {
                if users {
                    match t.user_index(&id) {
                        Some(i) if t.users[i].deleted_date_time.is_none() => {
                            let removed = removed_managers.remove(id.as_str()).unwrap_or_default();
                            entries.push(Entry::User(i, removed));
                        }
                        Some(_) => entries.push(Entry::Removed { id, hard: false }),
                        None => entries.push(Entry::Removed { id, hard: true }),
                    }
                } else {
                    match t.group_index(&id) {
                        Some(i) if t.groups[i].deleted_date_time.is_none() => {
                            let members = memberships.remove(&id).unwrap_or_default();
                            push_group(&mut entries, i, members, track);
                        }
                        Some(_) => entries.push(Entry::Removed { id, hard: false }),
                        None => entries.push(Entry::Removed { id, hard: true }),
                    }
                }
            }
        }
    }
    entries
}

fn push_group(entries: &mut Vec<Entry>, index: usize, members: Vec<(MemberRef, bool)>, track: bool) {
    if !track || members.is_empty() {
        entries.push(Entry::Group {
            index,
            members: vec![],
            with_members: track,
        });
        return;
    }
    for chunk in members.chunks(MEMBER_CHUNK) {
        entries.push(Entry::Group {
            index,
            members: chunk.to_vec(),
            with_members: true,
        });
    }
}

fn render_entry(t: &Tenant, e: &Entry, user_sel: &Selection, group_sel: &Selection, track: bool) -> Value {
    match e {
        Entry::User(i, removed) => {
            let u = &t.users[*i];
            let mut map = render_user(u, user_sel);
            map.insert("id".into(), json!(u.id));
            if track {
                let mut list: Vec<Value> = removed
                    .iter()
                    .filter(|m| u.manager_id.as_deref() != Some(m.as_str()))
                    .map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m, "@removed": {"reason": "deleted"}}))
                    .collect();
                if let Some(m) = &u.manager_id {
                    list.push(json!({"@odata.type": "#microsoft.graph.user", "id": m}));
                }
                if !list.is_empty() {
                    map.insert("manager@delta".into(), Value::Array(list));
                }
            }
            Value::Object(map)
        }
        Entry::Removed { id, hard } => {
            json!({"id": id, "@removed": {"reason": if *hard { "deleted" } else { "changed" }}})
        }
        Entry::GroupSlice { index, start, end } => {
            let g = &t.groups[*index];
            let mut map = render_group(g, group_sel);
            map.insert("id".into(), json!(g.id));
            let list: Vec<Value> = g
                .members
                .get(*start..*end)
                .unwrap_or_default()
                .iter()
                .filter(|m| t.member_is_live(m))
                .map(|m| json!({"@odata.type": m.kind.odata_type(), "id": m.id}))
                .collect();
            map.insert("members@delta".into(), Value::Array(list));
            Value::Object(map)
        }
        Entry::Group {
            index,
            members,
            with_members,
        } => {
            let g = &t.groups[*index];
            let mut map = render_group(g, group_sel);
            map.insert("id".into(), json!(g.id));
            if *with_members {
                let list: Vec<Value> = members
                    .iter()
                    .map(|(m, removed)| {
                        if *removed {
                            json!({"@odata.type": m.kind.odata_type(), "id": m.id, "@removed": {"reason": "deleted"}})
                        } else {
                            json!({"@odata.type": m.kind.odata_type(), "id": m.id})
                        }
                    })
                    .collect();
                map.insert("members@delta".into(), Value::Array(list));
            }
            Value::Object(map)
        }
    }
}
