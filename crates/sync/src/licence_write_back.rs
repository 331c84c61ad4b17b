//! Licence management from the desk: assigning a licence to a desk user, or removing it, is asked
//! of the source that imported the user (Entra's `assignLicense`), and recorded as it goes.
//!
//! Each change is a row of `licence_changes` — who asked, which user and licence, assign or
//! remove, and what the source answered — written before the source is called, so a crash or a
//! lost answer leaves an open change that asking again re-sends. The desk's `user_licences` link
//! changes only once the source has made the change, through the store's journalled update (the
//! audit trail shows it, attributed to the connection), with the licence's unit counts as the
//! source now has them.
//!
//! Only the connection that imported the user changes its licences, and a tenant's directory is
//! read by one connection, so two integrations never manage one tenant's licences.

use deskbridge_core::{RecordId, SharedClock};
use deskbridge_source::{LicenceAssignment, SourceContext, SourceRegistry, SyncError};
use deskbridge_store::{
    ChangeStatus, Entity, Fields, LicenceAction, LicenceChange, NewLicenceChange, Record, Store, WriteContext,
};
use serde_json::{Value, json};

use crate::write_back::failure;

/// What asking for a licence change did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LicenceOutcome {
    /// The change sent and applied; none when the user already was as asked (nothing was sent).
    pub change: Option<LicenceChange>,
    /// What happened, in words.
    pub message: String,
}

/// A desk record's name for messages: its name, email, or id.
fn label(record: &Record) -> String {
    record
        .text("name")
        .or_else(|| record.text("friendly_name"))
        .or_else(|| record.text("email"))
        .map_or_else(
            || format!("{} {}", record.entity.spec().name, record.id),
            str::to_owned,
        )
}

/// The licence ids the user holds on the desk.
fn held_licences(user: &Record) -> Vec<i64> {
    user.get("licences")
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// Assigns (or removes) desk licence `licence` to (from) desk user `user` at the user's source, on
/// behalf of `requested_by`. A change the source refuses or cannot make is recorded (refused, or
/// failed and open to a retry) and returned as the error; nothing changes on the desk then.
pub async fn change_user_licence(
    store: &Store,
    sources: &SourceRegistry,
    user: RecordId,
    licence: RecordId,
    action: LicenceAction,
    requested_by: &str,
    clock: &SharedClock,
) -> Result<LicenceOutcome, SyncError> {
    let mut tx = store.read().await?;
    let user_record = tx
        .get(Entity::User, user)
        .await?
        .ok_or_else(|| SyncError::InvalidSettings(format!("there is no user {user}")))?;
    let licence_record = tx
        .get(Entity::Licence, licence)
        .await?
        .ok_or_else(|| SyncError::InvalidSettings(format!("there is no licence {licence}")))?;
    let (user_name, licence_name) = (label(&user_record), label(&licence_record));
    let Some(user_key) = user_record.source.clone() else {
        return Err(SyncError::Conflict(format!(
            "{user_name} was not imported from a connection, so their licences are the desk's own: there is no \
             account at Microsoft to change"
        )));
    };
    let connection = tx.connection(user_key.connection_id).await?.ok_or_else(|| {
        SyncError::Conflict(format!(
            "{user_name} came from a connection that no longer exists"
        ))
    })?;
    let last = tx
        .licence_changes(user, 100)
        .await?
        .into_iter()
        .find(|c| c.licence_id == licence);
    tx.commit().await?;

    let source = sources.source_of(&connection)?;
    let writer = source.licence_writer().ok_or_else(|| {
        SyncError::Conflict(format!(
            "a {} connection cannot manage licences at its source",
            connection.kind
        ))
    })?;
    if !writer.manages_licences(&connection)? {
        return Err(SyncError::Conflict(format!(
            "connection {:?} does not allow licences to be managed from the desk: turn on \"Manage licences from \
             the desk\" in its settings (it needs the LicenseAssignment.ReadWrite.All permission, granted with \
             admin consent)",
            connection.name
        )));
    }
    // The licence must be one the user's tenant subscribes to: imported, under the customer the
    // connection imports that tenant into.
    let licence_customer = licence_record.get("customer_id").as_i64();
    let partition = source
        .open(&connection)?
        .partitions()
        .into_iter()
        .find(|p| Some(p.customer_id.0) == licence_customer);
    let (Some(partition), Some(sku_id), Some(_)) = (
        partition,
        licence_record.text("sku_id").map(str::to_owned),
        licence_record.source.as_ref(),
    ) else {
        return Err(SyncError::Conflict(format!(
            "{licence_name} is not a licence imported from the tenant of connection {:?}, which {user_name} \
             comes from: choose one of that tenant's licences",
            connection.name
        )));
    };

    let holds = held_licences(&user_record).contains(&licence.0);
    let assign = action == LicenceAction::Assign;
    let change = match last {
        // The same change asked again while open: sent again (assignLicense is idempotent).
        Some(open) if open.status.is_open() && open.action == action => open,
        _ => {
            if holds == assign {
                let message = if assign {
                    format!("{user_name} already has {licence_name}: nothing was sent to Microsoft")
                } else {
                    format!("{user_name} does not have {licence_name}: nothing was sent to Microsoft")
                };
                return Ok(LicenceOutcome {
                    change: None,
                    message,
                });
            }
            let mut tx = store.begin(WriteContext::manual()).await?;
            let change = tx
                .add_licence_change(&NewLicenceChange {
                    user_id: user,
                    licence_id: licence,
                    connection_id: connection.id,
                    tenant_id: partition.tenant_id.clone(),
                    user_external_id: user_key.external_id.clone(),
                    sku_id: sku_id.clone(),
                    action,
                    requested_by: requested_by.to_owned(),
                })
                .await?;
            tx.commit().await?;
            change
        }
    };

    let cx = SourceContext::detached(store.clone(), clock.clone());
    let asked = LicenceAssignment {
        tenant_id: change.tenant_id.clone(),
        user_id: change.user_external_id.clone(),
        sku_id: change.sku_id.clone(),
        assign,
    };
    let answer = writer.assign(&cx, &connection, &asked).await;
    let mut tx = store
        .begin(WriteContext {
            connection_id: Some(connection.id),
            ..WriteContext::manual()
        })
        .await?;
    match answer {
        Ok(units) => {
            // Read again in this transaction: a sync may have changed the user meanwhile.
            let now_held = match tx.get(Entity::User, user).await? {
                Some(current) => held_licences(&current),
                None => Vec::new(),
            };
            let mut wanted: Vec<i64> = now_held.into_iter().filter(|id| *id != licence.0).collect();
            if assign {
                wanted.push(licence.0);
            }
            let fields: Fields = [("licences".to_owned(), json!(wanted))].into_iter().collect();
            tx.update(Entity::User, user, &fields).await?;
            let counts = match units {
                Some(units) => {
                    let fields: Fields = [
                        ("total_units".to_owned(), json!(units.total)),
                        ("consumed_units".to_owned(), json!(units.consumed)),
                    ]
                    .into_iter()
                    .collect();
                    tx.update(Entity::Licence, licence, &fields).await?;
                    format!(" ({} of {} units now assigned)", units.consumed, units.total)
                }
                None => " (the unit counts refresh with the next sync)".to_owned(),
            };
            let message = format!(
                "{} {} {user_name} in {}{counts}",
                licence_name,
                if assign { "assigned to" } else { "removed from" },
                connection.kind,
            );
            tx.finish_licence_change(change.id, ChangeStatus::Applied, Some(&message))
                .await?;
            let done = tx.licence_change(change.id).await?;
            tx.commit().await?;
            Ok(LicenceOutcome {
                change: Some(done.ok_or_else(|| SyncError::Internal("the change's row is gone".into()))?),
                message,
            })
        }
        Err(error) => {
            let (status, message) = failure(&error);
            tx.finish_licence_change(change.id, status, Some(&message))
                .await?;
            tx.commit().await?;
            Err(error)
        }
    }
}
