//! Distribution groups as ticket followers, end to end: the desk-wide setting allows it, the
//! connection (named, or the desk's default) allows it in its mappings, the group is read from
//! the source, [`deskbridge_mapping::followers_for_group`] decides who follows in the
//! connection's mode, and the ticket's followers gain them (none is removed; one already
//! following is not added twice).

use deskbridge_core::{ConnectionId, RecordId, SharedClock};
use deskbridge_mapping::{DeskRecord, DeskSnapshot, SourceIdentity, followers_for_group};
use deskbridge_source::{SourceContext, SourceRegistry, SyncError};
use deskbridge_store::{Entity, Fields, Store, WriteContext};
use serde::Serialize;
use serde_json::Value;

use crate::open_connection;

/// What adding a group as followers did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowersAdded {
    pub ticket_id: RecordId,
    pub group: String,
    /// The connection the group was read through.
    pub connection: String,
    /// Followers added: `user:<desk id>` or `email:<address>`.
    pub added: Vec<String>,
    /// Followers the group gave that already followed the ticket.
    pub already_following: usize,
    /// Members left out by the connection's member cap.
    pub over_cap: usize,
    /// Members with neither a desk user nor an email address.
    pub unreachable: usize,
}

/// Adds the group named `group` as followers of desk ticket `ticket`, read through the
/// connection named `connection` or, without one, the desk's default connection for followers.
pub async fn add_group_followers(
    store: &Store,
    sources: &SourceRegistry,
    ticket: RecordId,
    group: &str,
    connection: Option<&str>,
    clock: &SharedClock,
) -> Result<FollowersAdded, SyncError> {
    let mut tx = store.read().await?;
    let settings = tx.follower_settings().await?;
    if !settings.enabled {
        return Err(SyncError::Conflict(
            "distribution groups are not allowed as ticket followers on this desk: an administrator turns it on \
             (deskbridge followers settings --enable, or Settings in the admin UI)"
                .into(),
        ));
    }
    if tx.get(Entity::Ticket, ticket).await?.is_none() {
        return Err(SyncError::InvalidSettings(format!("there is no ticket {ticket}")));
    }
    let name = match connection {
        Some(name) => name.to_owned(),
        None => {
            let id = settings.default_connection.ok_or_else(|| {
                SyncError::InvalidSettings(
                    "no connection was named and the desk has no default connection for followers: name one, \
                     or set the default (deskbridge followers settings --default-connection NAME)"
                        .into(),
                )
            })?;
            tx.connection(id)
                .await?
                .ok_or_else(|| {
                    SyncError::InvalidSettings(format!(
                        "the default connection for followers (id {id}) was removed: set another \
                         (deskbridge followers settings --default-connection NAME)"
                    ))
                })?
                .name
        }
    };
    tx.commit().await?;
    let source = open_connection(store, sources, &name).await?;
    let options = source.mapping().followers.clone();
    let connection_id = source.connection().id;
    if !options.enabled {
        return Err(SyncError::Conflict(format!(
            "connection {name:?} does not allow its groups as ticket followers: turn it on in its mappings \
             (\"followers\": {{\"enabled\": true}})"
        )));
    }
    let cx = SourceContext::detached(store.clone(), clock.clone());
    let read = source.distribution_group(&cx, group).await?;
    let snapshot = DeskSnapshot {
        users: member_users(store, connection_id, &read).await?,
        ..DeskSnapshot::default()
    };
    let plan = followers_for_group(&options, &read, &snapshot, connection_id)
        .map_err(|e| SyncError::Conflict(format!("{e} (connection {name:?})")))?;

    let mut tx = store.begin(WriteContext::manual()).await?;
    let current = tx.get(Entity::Ticket, ticket).await?.ok_or_else(|| {
        SyncError::Conflict(format!(
            "ticket {ticket} was deleted meanwhile; nothing was added"
        ))
    })?;
    let mut followers: Vec<String> = match current.get("followers") {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let offered = plan.followers.len();
    let mut added = Vec::new();
    for follower in plan.followers {
        if followers.iter().any(|f| f.eq_ignore_ascii_case(&follower)) {
            continue;
        }
        followers.push(follower.clone());
        added.push(follower);
    }
    let already_following = offered - added.len();
    if !added.is_empty() {
        let fields: Fields = [("followers".to_owned(), Value::from(followers))]
            .into_iter()
            .collect();
        tx.update(Entity::Ticket, ticket, &fields).await?;
    }
    tx.commit().await?;
    Ok(FollowersAdded {
        ticket_id: ticket,
        group: read.name,
        connection: name,
        added,
        already_following,
        over_cap: plan.over_cap,
        unreachable: plan.unreachable,
    })
}

/// The desk users this connection imported that are members of `group`, as the follower rule
/// looks them up (by the connection and the member's id at the source).
async fn member_users(
    store: &Store,
    connection: ConnectionId,
    group: &deskbridge_mapping::DistributionGroup,
) -> Result<Vec<DeskRecord>, SyncError> {
    let ids: Vec<&str> = group.members.iter().map(|m| m.external_id.as_str()).collect();
    let mut tx = store.read().await?;
    let found = tx.ids_by_source(Entity::User, connection, &ids).await?;
    tx.commit().await?;
    Ok(found
        .into_iter()
        .map(|(external_id, id)| DeskRecord {
            id,
            source: Some(SourceIdentity {
                connection_id: connection,
                external_id,
            }),
            fields: serde_json::Map::new(),
            locks: deskbridge_mapping::RecordLocks::default(),
        })
        .collect())
}
