//! Write-back of a subscription's quantity ("adjust quantity"): the desk asks the subscription's
//! source for a new seat count, and records the change as it goes.
//!
//! Each change is a row of `subscription_changes` — who asked, from what to what, the request id,
//! and what the source answered — written before the source is called, so a crash or a lost answer
//! leaves an open change. Asking again for the same quantity while a change is open sends it again
//! with the same request id (the source applies it once); a new quantity is a new change. The
//! desk's subscription takes the source's answer only once the source has made the change.

use deskbridge_core::{ErrorCode, HasErrorCode as _, RecordId, SharedClock};
use deskbridge_source::{QuantityChange, SourceContext, SourceRegistry, SyncError};
use deskbridge_store::{
    ChangeStatus, Entity, Fields, NewSubscriptionChange, Store, SubscriptionChange, WriteContext,
};
use serde_json::{Value, json};

/// Asks the source of desk subscription `subscription` for `quantity` seats, on behalf of
/// `requested_by`. Returns the change, applied; a change the source refuses or cannot make is
/// recorded (refused, or failed and open to a retry) and returned as the error.
pub async fn set_subscription_quantity(
    store: &Store,
    sources: &SourceRegistry,
    subscription: RecordId,
    quantity: i64,
    requested_by: &str,
    clock: &SharedClock,
) -> Result<SubscriptionChange, SyncError> {
    if quantity < 1 {
        return Err(SyncError::InvalidSettings(format!(
            "quantity: {quantity} is not a seat count; give 1 or more (to end a subscription, turn off its \
             auto-renew or cancel it at the source)"
        )));
    }
    let mut tx = store.read().await?;
    let record = tx
        .get(Entity::Subscription, subscription)
        .await?
        .ok_or_else(|| SyncError::InvalidSettings(format!("there is no subscription {subscription}")))?;
    let Some(source_key) = record.source.clone() else {
        return Err(SyncError::Conflict(format!(
            "subscription {subscription} was not imported from a source, so there is nothing to write back to: \
             change its quantity on the desk"
        )));
    };
    let connection = tx.connection(source_key.connection_id).await?.ok_or_else(|| {
        SyncError::Conflict(format!(
            "subscription {subscription} came from a connection that no longer exists"
        ))
    })?;
    let open = tx
        .subscription_changes(subscription, 1)
        .await?
        .into_iter()
        .next()
        .filter(|c| c.status.is_open() && c.quantity_after == quantity);
    tx.commit().await?;
    let source = sources.source_of(&connection)?;
    let writer = source.subscription_writer().ok_or_else(|| {
        SyncError::Conflict(format!(
            "a {} connection cannot change subscriptions at its source",
            connection.kind
        ))
    })?;
    let tenant_id = record.text("tenant_id").map(str::to_owned).ok_or_else(|| {
        SyncError::Conflict(format!(
            "subscription {subscription} does not say which customer tenant it belongs to: run a sync of \
                 connection {:?} first",
            connection.name
        ))
    })?;
    let before = record.get("quantity").as_i64();
    let change = match open {
        // The same change asked again: sent again with its request id.
        Some(open) => open,
        None => {
            if before == Some(quantity) {
                return Err(SyncError::Conflict(format!(
                    "subscription {subscription} already has {quantity} seats"
                )));
            }
            let mut tx = store.begin(WriteContext::manual()).await?;
            let change = tx
                .add_subscription_change(&NewSubscriptionChange {
                    subscription_id: subscription,
                    connection_id: connection.id,
                    tenant_id: tenant_id.clone(),
                    external_id: source_key.external_id.clone(),
                    quantity_before: before,
                    quantity_after: quantity,
                    request_id: uuid::Uuid::new_v4().to_string(),
                    requested_by: requested_by.to_owned(),
                })
                .await?;
            tx.commit().await?;
            change
        }
    };
    let cx = SourceContext::detached(store.clone(), clock.clone());
    let asked = QuantityChange {
        tenant_id,
        subscription_id: source_key.external_id.clone(),
        quantity,
        request_id: change.request_id.clone(),
    };
    let answer = writer.set_quantity(&cx, &connection, &asked).await;
    let mut tx = store
        .begin(WriteContext {
            connection_id: Some(connection.id),
            ..WriteContext::manual()
        })
        .await?;
    match answer {
        Ok(now) => {
            let fields: Fields = [("quantity".to_owned(), json!(now.quantity))]
                .into_iter()
                .chain(now.status.map(|s| ("status".to_owned(), Value::from(s))))
                .collect();
            tx.update(Entity::Subscription, subscription, &fields).await?;
            let message = format!("{} now has {} seats", connection.kind, now.quantity);
            tx.finish_subscription_change(change.id, ChangeStatus::Applied, Some(&message))
                .await?;
            let done = tx.subscription_change(change.id).await?;
            tx.commit().await?;
            done.ok_or_else(|| SyncError::Internal("the change's row is gone".into()))
        }
        Err(error) => {
            let (status, message) = failure(&error);
            tx.finish_subscription_change(change.id, status, Some(&message))
                .await?;
            tx.commit().await?;
            Err(error)
        }
    }
}

/// How a change the source did not make is recorded: refused by the source's rules (final), or
/// failed (open to a retry); the message with its remedy.
pub(crate) fn failure(error: &SyncError) -> (ChangeStatus, String) {
    let status = if error.error_code() == ErrorCode::ChangeRefused {
        ChangeStatus::Refused
    } else {
        ChangeStatus::Failed
    };
    let message = match error.remedy() {
        Some(remedy) => format!("{error} — {remedy}"),
        None => error.to_string(),
    };
    (status, message)
}
