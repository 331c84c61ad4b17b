//! Applying a plan to the store: the same plan the preview showed, written in transactions of
//! bounded size. Each change runs under a savepoint, so one bad record is recorded as an error
//! against the run and the rest of its transaction still commits. References to records the plan
//! creates (a new site, a manager imported later in the run) are resolved when their target
//! exists, in a second pass if need be. Delta cursors are written in the last transaction only:
//! a crash before it means the next run reads the same changes again, which is harmless.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, ErrorCode, HasErrorCode, RecordId, RunId};
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

/// The desk entity of a plan entity; `None` for custom rows (applied by `crate::rows`).
pub(crate) fn store_entity(entity: PlanEntity) -> Option<Entity> {
    Some(match entity {
        PlanEntity::Site => Entity::Site,
        PlanEntity::User => Entity::User,
        PlanEntity::Agent => Entity::Agent,
        PlanEntity::Ticket => Entity::Ticket,
        PlanEntity::Licence => Entity::Licence,
        PlanEntity::AssetType => Entity::AssetType,
        PlanEntity::Asset => Entity::Asset,
        PlanEntity::Subscription => Entity::Subscription,
        PlanEntity::UsageLine => Entity::UsageLine,
        PlanEntity::Customer => Entity::Customer,
        PlanEntity::CustomRow => return None,
    })
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
    /// Licences found by (customer, lower-cased SKU id): most users name one of a few.
    licences: BTreeMap<(Option<i64>, String), RecordId>,
    /// Records this connection imported, by entity and external id: loaded for a transaction's
    /// creates in one query, and added to as records are created (a manager named later in the
    /// run resolves without a query).
    by_source: BTreeMap<Entity, BTreeMap<String, RecordId>>,
    /// Keys added to `by_source` by the open transaction: gone if it is rolled back.
    added_in_transaction: Vec<(Entity, String)>,
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
            Reference::NewAssetType(name) => match self.source_id(tx, Entity::AssetType, name).await? {
                Some(id) => Some(id),
                // Created by another connection's run since this plan was made.
                None => tx
                    .find_by_text(Entity::AssetType, "name", name)
                    .await?
                    .into_iter()
                    .next()
                    .map(|t| t.id),
            },
            Reference::NewUser(external) => self.source_id(tx, Entity::User, external).await?,
            Reference::NewAgent(external) => self.source_id(tx, Entity::Agent, external).await?,
            Reference::NewLicence { customer_id, sku_id } => {
                let key = (customer_id.map(|c| c.0), sku_id.to_lowercase());
                if let Some(id) = self.licences.get(&key) {
                    return Ok(Some(*id));
                }
                let found = tx
                    .find_by_text(Entity::Licence, "sku_id", sku_id)
                    .await?
                    .into_iter()
                    .find(|l| l.get("customer_id").as_i64() == customer_id.map(|c| c.0))
                    .map(|l| l.id);
                if let Some(id) = found {
                    self.licences.insert(key, id);
                }
                found
            }
        })
    }

    /// The record this connection imported as `external`, if it exists by now.
    async fn source_id(
        &mut self,
        tx: &mut StoreTx,
        entity: Entity,
        external: &str,
    ) -> Result<Option<RecordId>, StoreError> {
        if let Some(id) = self.known_source(entity, external) {
            return Ok(Some(id));
        }
        let id = tx
            .id_by_source(entity, &SourceKey::new(self.connection, external.to_owned()))
            .await?;
        if let Some(id) = id {
            self.remember_source(entity, external, id);
        }
        Ok(id)
    }

    /// The record this connection imported as `external`, if this run knows it.
    fn known_source(&self, entity: Entity, external: &str) -> Option<RecordId> {
        self.by_source.get(&entity)?.get(external).copied()
    }

    fn remember_source(&mut self, entity: Entity, external: &str, id: RecordId) {
        let ids = self.by_source.entry(entity).or_default();
        if ids.insert(external.to_owned(), id).is_none() {
            self.added_in_transaction.push((entity, external.to_owned()));
        }
    }

    /// A create the fast pass can batch: a new user or agent (sites and licences are few, and
    /// users look them up as they are created).
    fn batchable(&self, change: &Change) -> bool {
        let Some(entity) = store_entity(change.entity) else {
            return false;
        };
        change.action == Action::Create
            && matches!(entity, Entity::User | Entity::Agent)
            && self.known_source(entity, &change.external_id).is_none()
    }

    /// Loads, in one query per entity, which of the transaction's creates already exist (a
    /// run taken over after a crash re-applies what was committed).
    async fn load_sources(&mut self, tx: &mut StoreTx, chunk: &[&Change]) -> Result<(), StoreError> {
        let mut wanted: BTreeMap<Entity, Vec<&str>> = BTreeMap::new();
        for change in chunk.iter().filter(|c| c.action == Action::Create) {
            let Some(entity) = store_entity(change.entity) else {
                continue;
            };
            if self.known_source(entity, &change.external_id).is_none() {
                wanted.entry(entity).or_default().push(&change.external_id);
            }
        }
        for (entity, externals) in wanted {
            for (external, id) in tx.ids_by_source(entity, self.connection, &externals).await? {
                self.remember_source(entity, &external, id);
            }
        }
        Ok(())
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
        let Some(entity) = store_entity(change.entity) else {
            return Err(StoreError::InvalidValue {
                entity: "plan",
                field: change.external_id.clone(),
                message: format!(
                    "a {} change is applied with its custom table, not here",
                    change.entity.as_str()
                ),
            });
        };
        let source = SourceKey::new(self.connection, change.external_id.clone());
        match change.action {
            Action::Skip | Action::Conflict => return Ok(change.reason.clone()),
            Action::Create => {
                if entity == Entity::AssetType
                    && self.known_source(entity, &change.external_id).is_none()
                    && let Some(existing) = tx
                        .find_by_text(entity, "name", &change.external_id)
                        .await?
                        .into_iter()
                        .next()
                {
                    // Another run (a connection syncing alongside) created the type since this
                    // plan was made: asset types are one per name, so it is used, not doubled.
                    self.remember_source(entity, &change.external_id, existing.id);
                    return Ok(format!("asset type {} exists already; used it", existing.id));
                }
                let mut fields = self.fields(tx, change, entity).await?;
                fields.retain(|_, v| !v.is_null());
                let id = match self.known_source(entity, &change.external_id) {
                    // Created by an earlier, interrupted run of this plan: brought up to date.
                    Some(id) => {
                        tx.update(entity, id, &fields).await?;
                        id
                    }
                    None => {
                        let id = tx.insert(entity, Some(&source), &fields).await?;
                        self.remember_source(entity, &change.external_id, id);
                        id
                    }
                };
                if entity == Entity::Site
                    && let (Some(customer), Some(name)) = (
                        fields.get("customer_id").and_then(Value::as_i64),
                        fields.get("name").and_then(Value::as_str),
                    )
                {
                    self.sites.insert((customer, name.to_lowercase()), id);
                }
                self.report.counts.created += 1;
                return Ok(format!("created {entity} {id}"));
            }
            Action::Update | Action::Deactivate | Action::Reactivate | Action::Link => {}
        }
        // A change to a record an earlier step of the run created (a line manager linked once the
        // whole tenant was read) names no desk id: it is the record this connection imported.
        let target = match self.plan.target_of(change) {
            Some(target) => Some(target),
            None => self.source_id(tx, entity, &change.external_id).await?,
        };
        let target = target.ok_or_else(|| StoreError::InvalidValue {
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
        licences: BTreeMap::new(),
        by_source: BTreeMap::new(),
        added_in_transaction: Vec::new(),
        deferred: Vec::new(),
        report: ApplyReport::default(),
    };
    // Sites, licences and asset types first, so users and assets find what was created for them.
    let first = |c: &&Change| {
        matches!(
            c.entity,
            PlanEntity::Site | PlanEntity::Licence | PlanEntity::AssetType
        )
    };
    let mut ordered: Vec<&Change> = plan.changes.iter().filter(first).collect();
    ordered.extend(plan.changes.iter().filter(|c| !first(c)));
    let mut chunks = ordered.chunks(CHANGES_PER_TRANSACTION).peekable();
    if chunks.peek().is_none() {
        return finish(store, connection, run, &mut applier, cursors)
            .await
            .map(|()| applier.report);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let checkpoint = applier.checkpoint();
        if !apply_chunk(store, &mut applier, chunk, Pass::Fast, last, run, cursors).await? {
            // A change failed: its transaction was rolled back whole. Redo it with each change
            // under its own savepoint, so the failure is recorded and the rest commits.
            applier.restore(checkpoint);
            apply_chunk(store, &mut applier, chunk, Pass::Careful, last, run, cursors).await?;
        }
    }
    Ok(applier.report)
}

/// New users or agents of the fast pass, created together by one multi-row insert per hundred.
#[derive(Default)]
struct CreateBatch<'c> {
    entity: Option<Entity>,
    rows: Vec<(&'c Change, Fields)>,
}

impl CreateBatch<'_> {
    const ROWS: usize = 100;

    /// Creates the batched records and logs each; false when the insert failed (the fast pass
    /// is then abandoned).
    async fn insert(&mut self, tx: &mut StoreTx, applier: &mut Applier<'_>) -> Result<bool, SyncError> {
        let Some(entity) = self.entity.take() else {
            return Ok(true);
        };
        let rows = std::mem::take(&mut self.rows);
        if rows.is_empty() {
            return Ok(true);
        }
        let refs: Vec<(&str, &Fields)> = rows
            .iter()
            .map(|(change, fields)| (change.external_id.as_str(), fields))
            .collect();
        let Ok(ids) = tx.insert_many(entity, applier.connection, &refs).await else {
            return Ok(false);
        };
        for ((change, _), id) in rows.iter().zip(ids) {
            applier.remember_source(entity, &change.external_id, id);
            applier.report.counts.created += 1;
            tx.log_inbound(&inbound_entry(
                applier.tenant,
                change,
                change.action.as_str().to_owned(),
                format!("created {entity} {id}"),
            ))
            .await?;
        }
        Ok(true)
    }
}

/// The inbound-log entry of a change.
fn inbound_entry(tenant: &str, change: &Change, action: String, result: String) -> InboundEntry {
    InboundEntry {
        tenant_id: Some(tenant.to_owned()),
        entity: change.entity.as_str().to_owned(),
        external_id: Some(change.external_id.clone()),
        payload: Some(json!({"fields": change.fields, "reason": change.reason})),
        rule: Some(change.rule.clone()),
        action,
        result,
    }
}

/// How a transaction's changes are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// No savepoints (two statements per change saved); the first failing change abandons the
    /// transaction. Almost every transaction of an import succeeds this way.
    Fast,
    /// Each change under a savepoint: a failing change is rolled back alone and recorded.
    Careful,
}

/// The applier's state before a transaction, to start it again from.
struct Checkpoint {
    sites: BTreeMap<(i64, String), RecordId>,
    licences: BTreeMap<(Option<i64>, String), RecordId>,
    deferred: usize,
    report: ApplyReport,
}

impl Applier<'_> {
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            sites: self.sites.clone(),
            licences: self.licences.clone(),
            deferred: self.deferred.len(),
            report: self.report.clone(),
        }
    }

    fn restore(&mut self, checkpoint: Checkpoint) {
        for (entity, external) in std::mem::take(&mut self.added_in_transaction) {
            if let Some(ids) = self.by_source.get_mut(&entity) {
                ids.remove(&external);
            }
        }
        self.sites = checkpoint.sites;
        self.licences = checkpoint.licences;
        self.deferred.truncate(checkpoint.deferred);
        self.report = checkpoint.report;
    }
}

/// Applies one transaction's changes (the run's last also resolves deferred references and saves
/// the cursors). False when a change failed in the fast pass: nothing of it was committed.
async fn apply_chunk(
    store: &Store,
    applier: &mut Applier<'_>,
    chunk: &[&Change],
    pass: Pass,
    last: bool,
    run: RunId,
    cursors: &[(CursorKey, String)],
) -> Result<bool, SyncError> {
    let mut tx = store
        .begin(WriteContext::for_run(applier.connection, run))
        .await?;
    let written = write_chunk(&mut tx, applier, chunk, pass, last, run, cursors).await;
    match (written, pass) {
        (Ok(true), _) => match tx.commit().await {
            Ok(()) => Ok(true),
            // Queued rows are sent at commit: one that fails is retried change by change.
            Err(_) if pass == Pass::Fast => Ok(false),
            Err(e) => Err(e.into()),
        },
        (Ok(false), _) => {
            tx.rollback().await?;
            Ok(false)
        }
        (Err(_), Pass::Fast) => {
            // Whatever failed is met again, and attributed, by the careful pass.
            let _ = tx.rollback().await;
            Ok(false)
        }
        (Err(e), Pass::Careful) => Err(e),
    }
}

/// The writes of [`apply_chunk`], without the commit. False when a change failed in the fast pass.
async fn write_chunk(
    tx: &mut StoreTx,
    applier: &mut Applier<'_>,
    chunk: &[&Change],
    pass: Pass,
    last: bool,
    run: RunId,
    cursors: &[(CursorKey, String)],
) -> Result<bool, SyncError> {
    let tenant = applier.tenant;
    let before = applier.report.counts;
    let errors_before = applier.report.errors.len();
    applier.added_in_transaction.clear();
    applier.load_sources(tx, chunk).await?;
    let mut batch = CreateBatch::default();
    for change in chunk {
        if pass == Pass::Fast
            && applier.batchable(change)
            && let Some(entity) = store_entity(change.entity)
        {
            if batch.entity.is_some_and(|e| e != entity) && !batch.insert(tx, applier).await? {
                return Ok(false);
            }
            let Ok(mut fields) = applier.fields(tx, change, entity).await else {
                return Ok(false);
            };
            fields.retain(|_, v| !v.is_null());
            batch.entity = Some(entity);
            batch.rows.push((change, fields));
            if batch.rows.len() >= CreateBatch::ROWS && !batch.insert(tx, applier).await? {
                return Ok(false);
            }
            continue;
        }
        // Skips and conflicts write nothing, so they need not wait for the batch.
        if change.action.writes() && !batch.insert(tx, applier).await? {
            return Ok(false);
        }
        if pass == Pass::Careful {
            tx.savepoint().await?;
        }
        let (action, result) = match applier.apply_change(tx, change).await {
            Ok(result) => {
                if pass == Pass::Careful {
                    tx.release_savepoint().await?;
                }
                (change.action.as_str().to_owned(), result)
            }
            Err(_) if pass == Pass::Fast => return Ok(false),
            Err(e) => {
                tx.rollback_to_savepoint().await?;
                let error = IntegrationError {
                    tenant_id: Some(tenant.to_owned()),
                    entity: Some(change.entity.as_str().to_owned()),
                    external_id: Some(change.external_id.clone()),
                    code: e.error_code().as_str().into(),
                    message: format!(
                        "{} {} failed: {e}",
                        change.action.as_str(),
                        change.entity.as_str()
                    ),
                    remedy: Some(
                        "Check the mapping that produced this value (see the rule in the preview).".into(),
                    ),
                };
                tx.record_error(&error).await?;
                applier.report.errors.push(error);
                applier.report.counts.errors += 1;
                ("error".to_owned(), e.to_string())
            }
        };
        tx.log_inbound(&inbound_entry(tenant, change, action, result))
            .await?;
    }
    if !batch.insert(tx, applier).await? {
        return Ok(false);
    }
    let delta = RunCounts {
        created: applier.report.counts.created - before.created,
        updated: applier.report.counts.updated - before.updated,
        deactivated: applier.report.counts.deactivated - before.deactivated,
        errors: (applier.report.errors.len() - errors_before) as i64,
        ..RunCounts::default()
    };
    tx.add_run_counts(run, &delta).await?;
    if last {
        resolve_deferred(tx, applier).await?;
        finish_in(tx, run, applier, cursors).await?;
    }
    Ok(true)
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
                    code: ErrorCode::UnresolvedReference.as_str().into(),
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
    // A change that failed leaves its record unapplied: the cursors stay where they were, so the
    // next round reads it again rather than moving past it (the rest is applied and converges).
    if applier.report.errors.is_empty() {
        for (key, value) in cursors {
            tx.set_cursor(key, value).await?;
        }
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
