//! Applying a plan to the store: the same plan the preview showed, written in transactions of
//! bounded size. Each change runs under a savepoint, so one bad record is recorded as an error
//! against the run and the rest of its transaction still commits. References to records the plan
//! creates (a new site, a manager imported later in the run) are resolved when their target
//! exists, in a second pass if need be. Delta cursors are written in the last transaction only:
//! a crash before it means the next run reads the same changes again, which is harmless.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId, RunId};
use deskbridge_mapping::{Action, Change, Entity as PlanEntity, Plan, Reference};
use deskbridge_store::{
    CursorKey, Entity, Fields, InboundEntry, IntegrationError, RunCounts, SourceKey, Store, StoreError,
    StoreTx, WriteContext,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::SyncError;

/// Changes per transaction.
pub const CHANGES_PER_TRANSACTION: usize = 500;

/// What apply did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    pub counts: RunCounts,
    pub errors: Vec<IntegrationError>,
}

fn store_entity(entity: PlanEntity) -> Entity {
    match entity {
        PlanEntity::Site => Entity::Site,
        PlanEntity::User => Entity::User,
        PlanEntity::Agent => Entity::Agent,
        PlanEntity::Ticket => Entity::Ticket,
        PlanEntity::Licence => Entity::Licence,
    }
}

/// A field whose value names a record that does not exist yet.
struct Deferred {
    entity: Entity,
    external_id: String,
    field: String,
    value: Value,
}

struct Applier<'a> {
    connection: ConnectionId,
    tenant: &'a str,
    plan: &'a Plan,
    sites: BTreeMap<(i64, String), RecordId>,
    deferred: Vec<Deferred>,
    report: ApplyReport,
}

impl Applier<'_> {
    /// The id a reference names, if that record exists by now.
    async fn resolve(
        &mut self,
        tx: &mut StoreTx,
        reference: &Reference,
    ) -> Result<Option<RecordId>, StoreError> {
        Ok(match reference {
            Reference::Id(id) => Some(*id),
            Reference::NewSite { customer_id, name } => {
                if let Some(id) = self.sites.get(&(customer_id.0, name.to_lowercase())) {
                    return Ok(Some(*id));
                }
                tx.find_by_text(Entity::Site, "name", name)
                    .await?
                    .into_iter()
                    .find(|s| s.get("customer_id").as_i64() == Some(customer_id.0))
                    .map(|s| s.id)
            }
            Reference::NewUser(external) => tx
                .find_by_source(Entity::User, &SourceKey::new(self.connection, external.clone()))
                .await?
                .map(|r| r.id),
            Reference::NewAgent(external) => tx
                .find_by_source(Entity::Agent, &SourceKey::new(self.connection, external.clone()))
                .await?
                .map(|r| r.id),
            Reference::NewLicence { customer_id, sku_id } => tx
                .find_by_text(Entity::Licence, "sku_id", sku_id)
                .await?
                .into_iter()
                .find(|l| l.get("customer_id").as_i64() == customer_id.map(|c| c.0))
                .map(|l| l.id),
        })
    }

    /// A field value with every reference in it (also inside lists) replaced by the id it names;
    /// `None` while any of them names a record that does not exist yet.
    async fn resolve_value(&mut self, tx: &mut StoreTx, value: &Value) -> Result<Option<Value>, StoreError> {
        match value {
            Value::Object(_) => match Reference::from_value(value) {
                Some(reference) => Ok(self.resolve(tx, &reference).await?.map(|id| json!(id.0))),
                None => Ok(Some(value.clone())),
            },
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match Box::pin(self.resolve_value(tx, item)).await? {
                        Some(v) => out.push(v),
                        None => return Ok(None),
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    /// The fields to write for a change, references resolved or deferred.
    async fn fields(
        &mut self,
        tx: &mut StoreTx,
        change: &Change,
        entity: Entity,
    ) -> Result<Fields, StoreError> {
        let mut out = Fields::new();
        for (name, field) in &change.fields {
            match self.resolve_value(tx, &field.after).await? {
                Some(value) => {
                    out.insert(name.clone(), value);
                }
                None => self.deferred.push(Deferred {
                    entity,
                    external_id: change.external_id.clone(),
                    field: name.clone(),
                    value: field.after.clone(),
                }),
            }
        }
        Ok(out)
    }

    async fn apply_change(&mut self, tx: &mut StoreTx, change: &Change) -> Result<String, StoreError> {
        let entity = store_entity(change.entity);
        let source = SourceKey::new(self.connection, change.external_id.clone());
        match change.action {
            Action::Skip | Action::Conflict => return Ok(change.reason.clone()),
            Action::Create => {
                let mut fields = self.fields(tx, change, entity).await?;
                fields.retain(|_, v| !v.is_null());
                let outcome = tx.upsert_by_source(entity, &source, &fields).await?;
                if entity == Entity::Site
                    && let (Some(customer), Some(name)) = (
                        fields.get("customer_id").and_then(Value::as_i64),
                        fields.get("name").and_then(Value::as_str),
                    )
                {
                    self.sites.insert((customer, name.to_lowercase()), outcome.id());
                }
                self.report.counts.created += 1;
                return Ok(format!("created {} {}", entity, outcome.id()));
            }
            Action::Update | Action::Deactivate | Action::Reactivate | Action::Link => {}
        }
        let target = self
            .plan
            .target_of(change)
            .ok_or_else(|| StoreError::InvalidValue {
                entity: "plan",
                field: change.external_id.clone(),
                message: format!("the {} change names no desk record", change.action.as_str()),
            })?;
        if change.action == Action::Link {
            tx.link_source(entity, target, &source).await?;
        }
        let fields = self.fields(tx, change, entity).await?;
        let written = tx.update(entity, target, &fields).await?;
        match change.action {
            Action::Deactivate => self.report.counts.deactivated += 1,
            _ => self.report.counts.updated += 1,
        }
        Ok(format!(
            "{} {} {}: {} field(s) written",
            change.action.as_str(),
            entity,
            target,
            written.len()
        ))
    }
}

/// Applies `plan` (one tenant's, not held) and saves `cursors` with the last transaction.
pub async fn apply_plan(
    store: &Store,
    connection: ConnectionId,
    run: RunId,
    tenant: &str,
    plan: &Plan,
    cursors: &[(CursorKey, String)],
) -> Result<ApplyReport, SyncError> {
    let mut applier = Applier {
        connection,
        tenant,
        plan,
        sites: BTreeMap::new(),
        deferred: Vec::new(),
        report: ApplyReport::default(),
    };
    // Sites and licences first, so users find what was created for them.
    let first = |c: &&Change| matches!(c.entity, PlanEntity::Site | PlanEntity::Licence);
    let mut ordered: Vec<&Change> = plan.changes.iter().filter(first).collect();
    ordered.extend(plan.changes.iter().filter(|c| !first(c)));
    let mut chunks = ordered.chunks(CHANGES_PER_TRANSACTION).peekable();
    if chunks.peek().is_none() {
        return finish(store, connection, run, &mut applier, cursors)
            .await
            .map(|()| applier.report);
    }
    while let Some(chunk) = chunks.next() {
        let before = applier.report.counts;
        let errors_before = applier.report.errors.len();
        let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
        for change in chunk {
            tx.savepoint().await?;
            let (action, result) = match applier.apply_change(&mut tx, change).await {
                Ok(result) => {
                    tx.release_savepoint().await?;
                    (change.action.as_str().to_owned(), result)
                }
                Err(e) => {
                    tx.rollback_to_savepoint().await?;
                    let error = IntegrationError {
                        tenant_id: Some(tenant.to_owned()),
                        entity: Some(change.entity.as_str().to_owned()),
                        external_id: Some(change.external_id.clone()),
                        code: e.code().to_string(),
                        message: format!(
                            "{} {} failed: {e}",
                            change.action.as_str(),
                            change.entity.as_str()
                        ),
                        remedy: Some(
                            "Check the mapping that produced this value (see the rule in the preview)."
                                .into(),
                        ),
                    };
                    tx.record_error(&error).await?;
                    applier.report.errors.push(error);
                    applier.report.counts.errors += 1;
                    ("error".to_owned(), e.to_string())
                }
            };
            tx.log_inbound(&InboundEntry {
                tenant_id: Some(tenant.to_owned()),
                entity: change.entity.as_str().to_owned(),
                external_id: Some(change.external_id.clone()),
                payload: Some(json!({"fields": change.fields, "reason": change.reason})),
                rule: Some(change.rule.clone()),
                action,
                result,
            })
            .await?;
        }
        let delta = RunCounts {
            created: applier.report.counts.created - before.created,
            updated: applier.report.counts.updated - before.updated,
            deactivated: applier.report.counts.deactivated - before.deactivated,
            errors: (applier.report.errors.len() - errors_before) as i64,
            ..RunCounts::default()
        };
        tx.add_run_counts(run, &delta).await?;
        if chunks.peek().is_none() {
            resolve_deferred(&mut tx, &mut applier).await?;
            finish_in(&mut tx, run, &applier, cursors).await?;
        }
        tx.commit().await?;
    }
    Ok(applier.report)
}

async fn resolve_deferred(tx: &mut StoreTx, applier: &mut Applier<'_>) -> Result<(), SyncError> {
    for item in std::mem::take(&mut applier.deferred) {
        let owner = tx
            .find_by_source(
                item.entity,
                &SourceKey::new(applier.connection, item.external_id.clone()),
            )
            .await?;
        let value = applier.resolve_value(tx, &item.value).await?;
        match (owner, value) {
            (Some(owner), Some(value)) => {
                let fields: Fields = [(item.field.clone(), value)].into_iter().collect();
                tx.update(item.entity, owner.id, &fields).await?;
            }
            (owner, _) => {
                let error = IntegrationError {
                    tenant_id: Some(applier.tenant.to_owned()),
                    entity: Some(item.entity.name().to_owned()),
                    external_id: Some(item.external_id.clone()),
                    code: "unresolved_reference".into(),
                    message: format!(
                        "{} of {} {} names {:?}, which was not created",
                        item.field,
                        item.entity,
                        owner.map_or_else(|| item.external_id.clone(), |o| o.id.to_string()),
                        item.value
                    ),
                    remedy: None,
                };
                tx.record_error(&error).await?;
                applier.report.errors.push(error);
            }
        }
    }
    Ok(())
}

/// Unchanged and conflict counts and the cursors, in the last transaction.
async fn finish_in(
    tx: &mut StoreTx,
    run: RunId,
    applier: &Applier<'_>,
    cursors: &[(CursorKey, String)],
) -> Result<(), SyncError> {
    let counts = &applier.plan.counts;
    tx.add_run_counts(
        run,
        &RunCounts {
            unchanged: counts.unchanged as i64,
            conflicts: counts.conflicts as i64,
            ..RunCounts::default()
        },
    )
    .await?;
    for (key, value) in cursors {
        tx.set_cursor(key, value).await?;
    }
    Ok(())
}

async fn finish(
    store: &Store,
    connection: ConnectionId,
    run: RunId,
    applier: &mut Applier<'_>,
    cursors: &[(CursorKey, String)],
) -> Result<(), SyncError> {
    let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
    finish_in(&mut tx, run, applier, cursors).await?;
    tx.commit().await?;
    Ok(())
}
