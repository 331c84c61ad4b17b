//! `POST /webhooks/graph` and `POST /webhooks/graph/lifecycle`: Microsoft Graph's change and
//! lifecycle notifications for the Entra connections' subscriptions.
//!
//! Graph cannot sign in, so both routes are public in the access table; instead every
//! notification is verified against the subscription it names: the subscription must be one this
//! instance made, the `clientState` must hash to the one stored for it (compared in constant
//! time), and the tenant must be its tenant. A notification that fails is refused and counted
//! (on the subscription's row when it names one), and enqueues nothing. Graph's basic
//! notifications carry no signature (only rich ones with encrypted data do): the clientState is
//! the check.
//!
//! The validation handshake (`?validationToken=…`) is answered with the token as `text/plain`.
//! A verified change enqueues a delta round of the connection (a pending one absorbs further
//! notifications: that is the debounce; one that is running leaves a mark the subscriber turns
//! into the next round); `missed` and `subscriptionRemoved` do the same, and ask the subscriber to
//! make the subscription again; `reauthorizationRequired` asks it to reauthorize. Nothing runs
//! inline: the answer is 202 at once, whatever the notifications were, so a caller learns
//! nothing about the subscriptions.
//!
//! Off unless configured (`serve --graph-notification-url`): the routes then answer 404.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use deskbridge_connectors::entra::{client_state_matches, delta_round};
use deskbridge_store::{SubscriptionAction, WriteContext};
use serde_json::Value;
use tokio::sync::Notify;

use crate::AppState;
use crate::error::ApiError;

/// Graph's validation tokens are a sentence with a request id; anything far longer is not one.
const MAX_TOKEN: usize = 4_096;
/// Notifications acted on per delivery (Graph batches a few; a flood is cut short).
const MAX_ITEMS: usize = 1_000;

/// The receiver's shared state: counters, and how it wakes the subscriber.
#[derive(Debug, Default)]
pub struct GraphNotifications {
    /// Notifications refused (unknown subscription, wrong clientState or tenant).
    pub refused: AtomicU64,
    /// Notifications verified.
    pub accepted: AtomicU64,
    /// Woken when a lifecycle notification asks the subscriber for something.
    pub wake: Notify,
}

/// `POST /webhooks/graph`.
pub async fn changes(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    receive(&state, &query, &body).await
}

/// `POST /webhooks/graph/lifecycle`.
pub async fn lifecycle(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    receive(&state, &query, &body).await
}

async fn receive(state: &AppState, query: &HashMap<String, String>, body: &[u8]) -> Response {
    let Some(receiver) = &state.graph_notifications else {
        return ApiError::not_found("Graph change notifications are not enabled on this instance")
            .with_remedy("Start serve with --graph-notification-url https://… (this instance's public URL).")
            .into_response();
    };
    // The handshake: the token, URL-decoded (the query extractor did), back as plain text.
    if let Some(token) = query.get("validationToken") {
        if token.len() > MAX_TOKEN {
            return ApiError::invalid("the validation token is too long to be Graph's").into_response();
        }
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            token.clone(),
        )
            .into_response();
    }
    match handle(state, receiver, body).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => {
            tracing::info!(code = e.code.as_str(), message = %e.message, "a Graph notification delivery was refused");
            e.into_response()
        }
    }
}

fn text<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    item.get(key).and_then(Value::as_str)
}

async fn handle(state: &AppState, receiver: &GraphNotifications, body: &[u8]) -> Result<(), ApiError> {
    let shape: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::invalid("the delivery is not JSON")
            .with_remedy("Send Graph's change notification collection: {\"value\": [ … ]}.")
    })?;
    let Some(items) = shape.get("value").and_then(Value::as_array) else {
        return Err(ApiError::invalid("the delivery has no \"value\" list")
            .with_remedy("Send Graph's change notification collection: {\"value\": [ … ]}."));
    };
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    let mut wake = false;
    let (mut accepted, mut refused, mut rounds) = (0u64, 0u64, 0u64);
    for item in items.iter().take(MAX_ITEMS) {
        let Some(id) = text(item, "subscriptionId") else {
            refused += 1;
            continue;
        };
        let row = tx.graph_subscription(id).await?;
        let verified = row.as_ref().is_some_and(|row| {
            let state_ok = match (&row.client_state_hash, text(item, "clientState")) {
                (Some(hash), Some(given)) => client_state_matches(hash, given),
                _ => false,
            };
            let tenant_ok = text(item, "tenantId").is_some_and(|t| t.eq_ignore_ascii_case(&row.tenant_id));
            state_ok && tenant_ok
        });
        let Some(row) = row.filter(|_| verified) else {
            refused += 1;
            // Counted on the subscription it names, when it names one of ours.
            tx.graph_notification_refused(id).await?;
            continue;
        };
        accepted += 1;
        let lifecycle = text(item, "lifecycleEvent");
        let round = match lifecycle {
            Some("reauthorizationRequired") => {
                tx.mark_graph_subscription(id, SubscriptionAction::Reauthorize)
                    .await?;
                wake = true;
                false
            }
            Some("subscriptionRemoved") => {
                tx.mark_graph_subscription(id, SubscriptionAction::Resubscribe)
                    .await?;
                wake = true;
                true
            }
            // `missed`, and every change: read what changed.
            Some("missed") | None => true,
            Some(other) => {
                tracing::info!(event = other, "an unknown Graph lifecycle event was ignored");
                false
            }
        };
        if !round {
            continue;
        }
        let Some(connection) = tx.connection(row.connection_id).await? else {
            continue;
        };
        let queued = tx.enqueue_job(&delta_round(&connection)).await?.is_some();
        // Not queued: one is pending (it will read the change) or running (it may not have):
        // the subscriber queues the next round once none is active.
        tx.graph_notified(id, !queued).await?;
        if queued {
            rounds += 1;
        }
    }
    tx.commit().await?;
    receiver.accepted.fetch_add(accepted, Ordering::Relaxed);
    receiver.refused.fetch_add(refused, Ordering::Relaxed);
    if refused > 0 {
        tracing::warn!(
            refused,
            "Graph notifications with an unknown subscription, clientState or tenant were refused"
        );
    }
    if wake || (rounds == 0 && accepted > 0) {
        receiver.wake.notify_one();
    }
    tracing::info!(accepted, rounds, "accepted Graph notifications");
    Ok(())
}
