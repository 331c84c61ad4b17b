//! Graph change notifications for Entra connections: the subscriber, and how a notification is
//! verified.
//!
//! [`maintain`] is one pass of the subscriber `serve` runs when a public notification URL is
//! configured: every Entra connection of the instance with delta queries on gets a subscription
//! to `users` and one to `groups` in its tenant, each with its own random `clientState` (only its
//! SHA-256 is stored); a subscription is renewed before it expires, reauthorized or created again
//! when a lifecycle notification asked for it, and created again when Graph no longer lists it
//! (expired while deskbridge was down, removed). A delta round a notification could not queue (one
//! was running) is queued here. Failures are recorded against the connection's row, in people's
//! words, with what to do; nothing is retried inline: the next pass tries again.
//!
//! Notifications are triggers only (Graph's own advice): the delta round reads what changed.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deskbridge_core::SharedClock;
use deskbridge_graph::{GraphClient, GraphConfig, GraphError, GraphErrorClass, GraphRequest, GraphTenant};
use deskbridge_source::{SyncEntity, SyncError};
use deskbridge_store::{Connection, GraphSubscriptionRow, NewJob, Store, SubscriptionAction, WriteContext};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::ENTRA_KIND;
use crate::settings::EntraSettings;

/// What each Entra tenant is subscribed to.
pub const RESOURCES: [&str; 2] = ["users", "groups"];
/// The origin of the delta rounds notifications queue.
pub const NOTIFICATION_ORIGIN: &str = "notification";

/// Where Graph delivers, and how long subscriptions live.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// The public URL of `POST /webhooks/graph`.
    pub notification_url: String,
    /// The public URL of `POST /webhooks/graph/lifecycle`.
    pub lifecycle_url: String,
    /// How long a subscription is asked for (Graph allows users and groups 41,760 minutes).
    pub lifetime: SignedDuration,
    /// Renewed when less than this is left.
    pub renew_before: SignedDuration,
    /// The instance whose connections are subscribed (a connection enabled elsewhere is not).
    pub instance: String,
    pub graph: GraphConfig,
}

impl SubscriberConfig {
    /// Subscriptions of three days renewed a day before they end, on the public URL `base`
    /// (`https://desk.example.com`): its `/webhooks/graph` and `/webhooks/graph/lifecycle`.
    pub fn new(base: &str, instance: &str) -> Self {
        let base = base.trim_end_matches('/');
        Self {
            notification_url: format!("{base}/webhooks/graph"),
            lifecycle_url: format!("{base}/webhooks/graph/lifecycle"),
            lifetime: SignedDuration::from_hours(72),
            renew_before: SignedDuration::from_hours(24),
            instance: instance.to_owned(),
            graph: GraphConfig::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    pub created: usize,
    pub renewed: usize,
    pub reauthorized: usize,
    pub removed: usize,
    pub rounds_queued: usize,
    /// Subscriptions that could not be made or kept (recorded on their rows).
    pub failed: usize,
}

/// Hex SHA-256 of a clientState: what the store keeps.
pub fn client_state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// Whether a notification's clientState is the one a subscription was made with (compared in
/// constant time over the hashes).
pub fn client_state_matches(stored_hash: &str, given: &str) -> bool {
    let given = client_state_hash(given);
    let (a, b) = (stored_hash.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The delta round a notification asks for: the connection's directory from its delta links. An
/// Entra connection reads one tenant, so the round names no tenant: it then also coincides with
/// a scheduled round pending for the connection instead of running beside it on the same links.
pub fn delta_round(connection: &Connection) -> NewJob {
    NewJob {
        connection_id: connection.id,
        entity: SyncEntity::Directory.as_str().into(),
        full: false,
        origin: NOTIFICATION_ORIGIN.into(),
        schedule_id: None,
        due_at: None,
        tenant_id: None,
    }
}

/// Graph's date and time form, to the second.
fn graph_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_client_state() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Deserialize)]
struct Listed {
    id: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(rename = "expirationDateTime")]
    expiration: String,
}

/// One failure, in people's words.
struct Failure {
    error: String,
    remedy: String,
}

fn failure(what: &str, resource: &str, url: &str, e: &GraphError) -> Failure {
    let needed = if resource == "groups" {
        "Group.Read.All"
    } else {
        "User.Read.All"
    };
    match e.class() {
        Some(GraphErrorClass::PermissionDenied) => Failure {
            error: format!("Graph refused to {what} the subscription to changes of {resource}: the app may not read {resource}"),
            remedy: format!("Grant the app the {needed} application permission with admin consent in the tenant."),
        },
        Some(GraphErrorClass::BadRequest) if e.to_string().to_ascii_lowercase().contains("validation") => Failure {
            error: format!("Graph could not reach the notification URL {url} to {what} the subscription to {resource}"),
            remedy: "Make sure the notification URL is reachable from the internet over https and leads to this \
                     deskbridge serve (check the reverse proxy and the firewall)."
                .into(),
        },
        _ => {
            let e = crate::error::from_graph(e);
            Failure {
                error: format!("cannot {what} the subscription to changes of {resource}: {e}"),
                remedy: e
                    .remedy()
                    .unwrap_or_else(|| "deskbridge tries again on its next pass; check the connection if this persists.".into()),
            }
        }
    }
}

/// The connections of `instance` that are subscribed: Entra, delta queries on.
fn subscribed(connections: Vec<Connection>, instance: &str) -> Vec<(Connection, EntraSettings)> {
    connections
        .into_iter()
        .filter(|c| c.kind == ENTRA_KIND)
        .filter(|c| c.enabled_instances.split(',').any(|i| i.trim() == instance))
        .filter_map(|c| EntraSettings::of(&c).ok().map(|s| (c, s)))
        .filter(|(_, s)| s.delta)
        .collect()
}

async fn graph_tenant(
    store: &Store,
    connection: &Connection,
    settings: &EntraSettings,
    config: &SubscriberConfig,
    clock: &SharedClock,
) -> Result<GraphTenant, SyncError> {
    let http = deskbridge_source::http_client(&connection.name)?;
    let tokens = crate::client::token_provider(store, connection, settings, &http, clock).await?;
    let mut graph = config.graph.clone().with_base_url(settings.graph_url.clone());
    graph.scope = crate::client::scope_for(&settings.graph_url);
    let client = GraphClient::new(http, graph, clock.clone())
        .map_err(|e| SyncError::BadSettings(connection.name.clone(), e.to_string()))?;
    Ok(client.tenant(&settings.tenant_id, tokens))
}

fn request(method: reqwest::Method, url: String, body: Option<serde_json::Value>) -> GraphRequest {
    GraphRequest {
        idempotent: method != reqwest::Method::POST,
        method,
        url,
        body,
        eventual_consistency: false,
    }
}

/// One pass of the subscriber (see the module documentation).
pub async fn maintain(
    store: &Store,
    clock: &SharedClock,
    config: &SubscriberConfig,
) -> Result<Pass, SyncError> {
    let mut pass = Pass::default();
    let mut tx = store.read().await?;
    let connections = subscribed(tx.connections().await?, &config.instance);
    let rows = tx.graph_subscriptions(None).await?;
    tx.commit().await?;
    let wanted: HashSet<_> = connections.iter().map(|(c, _)| c.id).collect();
    // Rows of connections no longer subscribed (delta turned off, enabled elsewhere): their
    // subscriptions are deleted at Graph when it can still be asked, and forgotten.
    let mut all = store.read().await?;
    let every = all.connections().await?;
    all.commit().await?;
    for row in rows.iter().filter(|r| !wanted.contains(&r.connection_id)) {
        if let (Some(id), Some(connection)) = (
            &row.subscription_id,
            every.iter().find(|c| c.id == row.connection_id),
        ) && let Ok(settings) = EntraSettings::of(connection)
            && let Ok(tenant) = graph_tenant(store, connection, &settings, config, clock).await
        {
            let _ = tenant
                .send(request(
                    reqwest::Method::DELETE,
                    format!("/subscriptions/{id}"),
                    None,
                ))
                .await;
        }
        let mut tx = store.begin(WriteContext::manual()).await?;
        tx.delete_graph_subscription(row.connection_id, &row.tenant_id, &row.resource)
            .await?;
        tx.commit().await?;
        pass.removed += 1;
    }
    for (connection, settings) in &connections {
        let tenant = match graph_tenant(store, connection, settings, config, clock).await {
            Ok(t) => t,
            Err(e) => {
                for resource in RESOURCES {
                    let mut tx = store.begin(WriteContext::manual()).await?;
                    tx.graph_subscription_failed(
                        connection.id,
                        &settings.tenant_id,
                        resource,
                        &format!("cannot sign in to subscribe to changes of {resource}: {e}"),
                        &e.remedy()
                            .unwrap_or_else(|| "Check the connection's credential.".into()),
                    )
                    .await?;
                    tx.commit().await?;
                }
                pass.failed += RESOURCES.len();
                continue;
            }
        };
        // What Graph still has: a subscription it no longer lists expired or was removed.
        let listed: Option<HashSet<String>> = match tenant.get_page::<Listed>("/subscriptions").await {
            Ok(page) => Some(
                page.value
                    .into_iter()
                    .map(|s| s.id.to_ascii_lowercase())
                    .collect(),
            ),
            Err(_) => None,
        };
        for resource in RESOURCES {
            let row = rows.iter().find(|r| {
                r.connection_id == connection.id
                    && r.tenant_id == settings.tenant_id
                    && r.resource == resource
            });
            let outcome = keep(
                store,
                clock,
                config,
                &tenant,
                connection,
                settings,
                resource,
                row,
                listed.as_ref(),
                &mut pass,
            )
            .await?;
            if let Err(f) = outcome {
                let mut tx = store.begin(WriteContext::manual()).await?;
                tx.graph_subscription_failed(
                    connection.id,
                    &settings.tenant_id,
                    resource,
                    &f.error,
                    &f.remedy,
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(connection = %connection.name, resource, error = %f.error, "a Graph subscription could not be kept");
                pass.failed += 1;
            }
        }
    }
    pass.rounds_queued = queue_pending(store).await?;
    Ok(pass)
}

/// Queues the delta rounds notifications asked for while a round was running (cheap: the store
/// only), and returns how many.
pub async fn queue_pending(store: &Store) -> Result<usize, SyncError> {
    let mut tx = store.begin(WriteContext::manual()).await?;
    let pending: Vec<GraphSubscriptionRow> = tx
        .graph_subscriptions(None)
        .await?
        .into_iter()
        .filter(|r| r.pending_round)
        .collect();
    let mut queued = 0;
    let mut done = HashSet::new();
    for row in pending {
        if !done.insert((row.connection_id, row.tenant_id.clone())) {
            continue;
        }
        let Some(connection) = tx.connection(row.connection_id).await? else {
            continue;
        };
        if tx.enqueue_job(&delta_round(&connection)).await?.is_some() {
            tx.graph_round_queued(connection.id, &row.tenant_id).await?;
            queued += 1;
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// Makes sure one subscription exists and will not lapse.
#[allow(clippy::too_many_arguments)]
async fn keep(
    store: &Store,
    clock: &SharedClock,
    config: &SubscriberConfig,
    tenant: &GraphTenant,
    connection: &Connection,
    settings: &EntraSettings,
    resource: &str,
    row: Option<&GraphSubscriptionRow>,
    listed: Option<&HashSet<String>>,
    pass: &mut Pass,
) -> Result<Result<(), Failure>, SyncError> {
    let now = clock.now();
    let expires = now.saturating_add(config.lifetime).unwrap_or(now);
    if let Some(row) = row
        && let Some(id) = &row.subscription_id
    {
        let gone = row.expires_at.is_none_or(|at| at <= now)
            || listed.is_some_and(|l| !l.contains(&id.to_ascii_lowercase()))
            || row.action == Some(SubscriptionAction::Resubscribe);
        if !gone {
            let due = row
                .expires_at
                .is_none_or(|at| at.duration_since(now) < config.renew_before);
            let reauthorize = row.action == Some(SubscriptionAction::Reauthorize);
            if !due && !reauthorize {
                return Ok(Ok(()));
            }
            // Renewing reauthorizes as well: one call does both.
            let answer = if due {
                tenant
                    .send(request(
                        reqwest::Method::PATCH,
                        format!("/subscriptions/{id}"),
                        Some(json!({ "expirationDateTime": graph_time(expires) })),
                    ))
                    .await
            } else {
                tenant
                    .send(request(
                        reqwest::Method::POST,
                        format!("/subscriptions/{id}/reauthorize"),
                        None,
                    ))
                    .await
            };
            match answer {
                Ok(_) => {
                    let kept = if due {
                        expires
                    } else {
                        row.expires_at.unwrap_or(expires)
                    };
                    let mut tx = store.begin(WriteContext::manual()).await?;
                    tx.renewed_graph_subscription(id, kept).await?;
                    tx.commit().await?;
                    if due {
                        pass.renewed += 1;
                    } else {
                        pass.reauthorized += 1;
                    }
                    return Ok(Ok(()));
                }
                // Gone at Graph: made again below.
                Err(e) if e.class() == Some(GraphErrorClass::NotFound) => {}
                Err(e) => {
                    return Ok(Err(failure(
                        if due { "renew" } else { "reauthorize" },
                        resource,
                        &config.notification_url,
                        &e,
                    )));
                }
            }
        } else if listed.is_some_and(|l| l.contains(&id.to_ascii_lowercase())) {
            // Removed by a lifecycle notification but still listed: delete it before making another.
            let _ = tenant
                .send(request(
                    reqwest::Method::DELETE,
                    format!("/subscriptions/{id}"),
                    None,
                ))
                .await;
        }
        let mut tx = store.begin(WriteContext::manual()).await?;
        tx.forget_graph_subscription(connection.id, &settings.tenant_id, resource)
            .await?;
        tx.commit().await?;
    }
    let state = new_client_state();
    let body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": config.notification_url,
        "lifecycleNotificationUrl": config.lifecycle_url,
        "resource": resource,
        "expirationDateTime": graph_time(expires),
        "clientState": state,
    });
    let created = match tenant
        .send(request(
            reqwest::Method::POST,
            "/subscriptions".into(),
            Some(body),
        ))
        .await
    {
        Ok(response) => response,
        Err(e) => return Ok(Err(failure("create", resource, &config.notification_url, &e))),
    };
    let created: Created = match serde_json::from_slice(&created.body) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(Failure {
                error: format!(
                    "Graph's answer to a new subscription to {resource} is not a subscription: {e}"
                ),
                remedy: "deskbridge tries again on its next pass; if this persists, report it.".into(),
            }));
        }
    };
    let expires_at: Timestamp = created.expiration.parse().unwrap_or(expires);
    let mut tx = store.begin(WriteContext::manual()).await?;
    tx.save_graph_subscription(
        connection.id,
        &settings.tenant_id,
        resource,
        &created.id,
        &client_state_hash(&state),
        expires_at,
    )
    .await?;
    tx.commit().await?;
    pass.created += 1;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_state_matches_its_hash_only() {
        let state = new_client_state();
        assert!(state.len() <= 128);
        let hash = client_state_hash(&state);
        assert!(client_state_matches(&hash, &state));
        assert!(!client_state_matches(&hash, "forged"));
        assert!(!client_state_matches(&hash, ""));
        assert!(!client_state_matches("", &state));
        assert_ne!(new_client_state(), state, "each subscription has its own");
    }
}
