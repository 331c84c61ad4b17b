//! Deliveries of Graph change notifications: a watcher compares each subscription's position in
//! its tenant's change log with the log's head and posts what changed since, batched per
//! notification URL, retrying a failed delivery a few times; lifecycle notifications on demand.
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use serde_json::{Value, json};

use super::subscriptions::{
    GraphSubscription, LIFECYCLE_EVENTS, NotificationDelivery, SubscribedResource, iso, lock,
};
use crate::EmulatorError;
use crate::server::AppState;
use crate::world::Change;

/// Delivery attempts of one batch (Graph retries for up to 4 hours; the emulator briefly).
const ATTEMPTS: u32 = 5;
/// How often the watcher compares the change logs with the subscriptions.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// The notification a change makes for a subscription to `resource`: (changeType, id).
fn notified(change: &Change, resource: SubscribedResource) -> Option<(&'static str, &str)> {
    match (change, resource) {
        // Graph reports a created user as `updated` more often than not, and a soft delete as
        // `updated` too (MICROSOFT-APIS.md B8): the emulator always does.
        (Change::User { id, .. }, SubscribedResource::Users) => Some(("updated", id)),
        (Change::ManagerRemoved { user_id, .. }, SubscribedResource::Users) => Some(("updated", user_id)),
        (Change::UserRemoved { id, hard }, SubscribedResource::Users) => {
            Some((if *hard { "deleted" } else { "updated" }, id))
        }
        (Change::Group { id }, SubscribedResource::Groups) => Some(("updated", id)),
        (Change::Membership { group_id, .. }, SubscribedResource::Groups) => Some(("updated", group_id)),
        (Change::GroupRemoved { id, hard }, SubscribedResource::Groups) => {
            Some((if *hard { "deleted" } else { "updated" }, id))
        }
        _ => None,
    }
}

fn item(s: &GraphSubscription, change_type: &str, id: &str) -> Value {
    let (kind, odata) = match s.resource {
        SubscribedResource::Users => ("Users", "#Microsoft.Graph.User"),
        SubscribedResource::Groups => ("Groups", "#Microsoft.Graph.Group"),
    };
    json!({
        "subscriptionId": s.id,
        "subscriptionExpirationDateTime": iso(s.expiration),
        "changeType": change_type,
        "resource": format!("{kind}/{id}"),
        "resourceData": {"@odata.type": odata, "@odata.id": format!("{kind}/{id}"), "id": id,
                         "organizationId": s.tenant_id},
        "clientState": s.client_state,
        "tenantId": s.tenant_id,
    })
}

/// What one POST to a notification URL carries.
#[derive(Default)]
struct Batch {
    subscription_ids: Vec<String>,
    resources: Vec<String>,
    items: Vec<Value>,
}

/// One pass of the watcher: expired subscriptions are dropped; each live one gets the changes
/// since its position, batched per notification URL.
fn tick(state: &Arc<AppState>) {
    let now = state.clock.now();
    let mut batches: HashMap<String, Batch> = HashMap::new();
    {
        let world = state.world.read().unwrap_or_else(PoisonError::into_inner);
        let mut subs = lock(&state.notifications.subs);
        // Graph deletes a subscription that was not renewed in time.
        subs.retain(|s| s.expiration > now);
        for s in subs.iter_mut() {
            let Some(tenant) = world.tenant(&s.tenant_id) else {
                continue;
            };
            let head = tenant.changes.head();
            if head <= s.seen {
                continue;
            }
            let changes = tenant.changes.since(s.seen);
            s.seen = head;
            if s.paused {
                continue;
            }
            let mut named: Vec<(&str, &str)> = Vec::new();
            for change in changes {
                if let Some(n) = notified(change, s.resource)
                    && s.change_types.iter().any(|c| c == n.0)
                    && !named.contains(&n)
                {
                    named.push(n);
                }
            }
            if named.is_empty() {
                continue;
            }
            let batch = batches.entry(s.notification_url.clone()).or_default();
            if !batch.subscription_ids.contains(&s.id) {
                batch.subscription_ids.push(s.id.clone());
            }
            for (change_type, id) in named {
                batch.resources.push(id.to_owned());
                batch.items.push(item(s, change_type, id));
            }
        }
    }
    for (url, batch) in batches {
        tokio::spawn(deliver(
            state.clone(),
            url,
            batch.subscription_ids,
            None,
            batch.resources,
            json!({ "value": batch.items }),
        ));
    }
}

/// POSTs one batch, retrying a failed delivery a few times.
async fn deliver(
    state: Arc<AppState>,
    url: String,
    subscription_ids: Vec<String>,
    lifecycle_event: Option<String>,
    resources: Vec<String>,
    body: Value,
) {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    for attempt in 1..=ATTEMPTS {
        let sent = state
            .notifications
            .http
            .post(&url)
            .header("Content-Type", "application/json; charset=utf-8")
            .timeout(Duration::from_secs(3))
            .body(bytes.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) => (Some(r.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        lock(&state.notifications.log).push(NotificationDelivery {
            url: url.clone(),
            subscription_ids: subscription_ids.clone(),
            lifecycle_event: lifecycle_event.clone(),
            resources: resources.clone(),
            attempt,
            status,
            error,
            time: state.clock.now(),
        });
        if status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        let pause = *lock(&state.notifications.retry_pause);
        tokio::time::sleep(pause).await;
    }
}

/// Sends a lifecycle notification for a subscription to its lifecycle URL:
/// `reauthorizationRequired` pauses its deliveries until it is reauthorized or renewed,
/// `subscriptionRemoved` deletes it, `missed` only tells.
pub(crate) fn lifecycle(state: &Arc<AppState>, id: &str, event: &str) -> Result<(), EmulatorError> {
    let Some(event) = LIFECYCLE_EVENTS.iter().find(|e| e.eq_ignore_ascii_case(event)) else {
        return Err(EmulatorError::BadRequest(format!(
            "unknown lifecycle event {event:?}: use {}",
            LIFECYCLE_EVENTS.join(", ")
        )));
    };
    let (url, body) = {
        let mut subs = lock(&state.notifications.subs);
        let Some(s) = subs.iter_mut().find(|s| s.id.eq_ignore_ascii_case(id)) else {
            return Err(EmulatorError::NotFound(format!("subscription {id}")));
        };
        let Some(url) = s.lifecycle_notification_url.clone() else {
            return Err(EmulatorError::BadRequest(format!(
                "subscription {id} has no lifecycleNotificationUrl: Graph sends it no lifecycle notification"
            )));
        };
        if *event == "reauthorizationRequired" {
            s.paused = true;
        }
        let body = json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": iso(s.expiration),
            "tenantId": s.tenant_id,
            "clientState": s.client_state,
            "lifecycleEvent": event,
        }]});
        (url, body)
    };
    if *event == "subscriptionRemoved" {
        lock(&state.notifications.subs).retain(|s| !s.id.eq_ignore_ascii_case(id));
    }
    tokio::spawn(deliver(
        state.clone(),
        url,
        vec![id.to_owned()],
        Some((*event).to_owned()),
        vec![],
        body,
    ));
    Ok(())
}

/// Runs the watcher until `stop` says so.
pub(crate) async fn watch(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(WATCH_EVERY) => tick(&state),
        }
    }
}
