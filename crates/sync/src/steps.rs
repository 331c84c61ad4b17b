//! A run's read, step by step: each partition (tenant) begins with its reference data, goes on a
//! page of users at a time, and ends with what only the whole read can decide. Every step is
//! planned against the part of the desk it needs and — unless the run is a preview — applied in
//! its own transactions with the cursors it advances, before the next page is read. A sync
//! therefore holds one page of source records and one page of desk records at a time, whatever
//! the tenant's size; what it keeps between pages is the planner's compact run state.
//!
//! A preview takes the same steps and applies none: the planner's plans do not depend on whether
//! earlier steps were applied, so the preview is exactly what the sync does.

use std::sync::Arc;
use std::time::Instant;

use deskbridge_core::RunId;
use deskbridge_core::{ErrorCode, RecordId};
use deskbridge_mapping::{
    ConnectionRecords, DeskSnapshot, LockedChange, MappingConfig, Plan, ReadMode, RunPlanner, SourceUser,
    TenantHeader, TenantReference,
};
use deskbridge_source::desk::{SourceProperties, validated};
use deskbridge_source::{Page, PartitionEnd, PartitionStart, ReadEvent, SourceRecord};

use crate::progress::{ProgressTracker, Stage};
use deskbridge_store::{Connection, CursorKey, IntegrationError, RunCounts, Store, WriteContext};
use tokio::sync::Semaphore;

use crate::assets::AssetRun;
use crate::customers::CustomerRun;
use crate::desk::{SnapshotScope, load_connection_records, load_page_records, load_reference, load_tickets};
use crate::rows::RowRun;
use crate::run::Timings;
use crate::{SyncError, apply_plan};

/// What a run is given to take its steps with.
pub(crate) struct StepContext<'r> {
    pub store: &'r Store,
    pub connection: &'r Connection,
    pub mapping: &'r MappingConfig,
    pub properties: &'r SourceProperties,
    /// The customer of partitions that name none.
    pub default_customer: Option<RecordId>,
    /// The run applying the steps; `None`: a preview.
    pub run: Option<RunId>,
    /// Turns at the CPU-bound stages, shared by concurrent syncs.
    pub turns: Option<&'r Arc<Semaphore>>,
    /// The run's live progress, updated step by step.
    pub progress: &'r ProgressTracker,
}

/// What a run plans: the directory's people, or managed devices as assets.
pub(crate) enum StepPlanner<'r> {
    Directory(Box<RunPlanner<'r>>),
    Assets(Box<AssetRun<'r>>),
    /// Rows of source tables into desk custom tables.
    Rows(Box<RowRun>),
    /// Rows of the source's organisations table into desk customers.
    Customers(Box<CustomerRun>),
}

/// What the steps of a run did, gathered as they go.
pub(crate) struct Steps<'r> {
    cx: StepContext<'r>,
    planner: StepPlanner<'r>,
    /// The open partition: its id and the sites and licences its steps plan against.
    open: Option<(String, DeskSnapshot)>,
    /// A preview's plan so far: every step's plan absorbed (`None` before the first step, and
    /// always when the steps are applied).
    pub preview: Option<Plan>,
    /// The mode of the first partition read.
    pub mode: Option<ReadMode>,
    pub notes: Vec<String>,
    pub locked: Vec<LockedChange>,
    /// Records that could not be planned, and parts of the read that failed without failing the
    /// run; in a run, each is recorded against it as it happens.
    pub errors: Vec<IntegrationError>,
    /// Changes that failed when applied.
    pub apply_errors: Vec<IntegrationError>,
    /// Why the circuit breaker held a partition's deactivations or updates, when it did.
    pub held: Option<String>,
    /// Records of the partition being read (since the last one ended) not applied: unreadable,
    /// not planned, or their change failed. While there are any, its cursors stay where they
    /// were, so the next round reads them again.
    unapplied: usize,
    pub requests: u64,
    pub timings: Timings,
}

impl<'r> Steps<'r> {
    pub(crate) fn new(cx: StepContext<'r>, planner: StepPlanner<'r>) -> Self {
        Self {
            cx,
            planner,
            open: None,
            preview: None,
            mode: None,
            notes: Vec::new(),
            locked: Vec::new(),
            errors: Vec::new(),
            apply_errors: Vec::new(),
            held: None,
            unapplied: 0,
            requests: 0,
            timings: Timings::default(),
        }
    }

    /// Takes one step of the read. An error ends the run: what earlier steps applied stays, and
    /// is what a crash at this point would have left (each step converges when run again).
    pub(crate) async fn take(&mut self, event: ReadEvent) -> Result<(), SyncError> {
        match event {
            ReadEvent::Note(note) => self.notes.push(note),
            // The run keeps it (see run.rs): a partition's `Begin` sets the mode it plans under.
            ReadEvent::Mode(_) => {}
            ReadEvent::Warning(warning) => {
                // A record the source could not read is a record not applied: its partition's
                // cursors must not move past it.
                if warning.external_id.is_some() {
                    self.unapplied += 1;
                }
                self.record(vec![warning]).await?;
            }
            ReadEvent::Begin(start) => self.begin(start).await?,
            ReadEvent::Page(page) => self.page(page).await?,
            ReadEvent::End(end) => self.end(end).await?,
            ReadEvent::CustomTable(table) => match &mut self.planner {
                StepPlanner::Rows(rows) => {
                    let mut tx = self.cx.store.read().await?;
                    rows.table(&mut tx, &table).await?;
                    tx.commit().await?;
                }
                // The customers' read names its table too; the run knows what it plans.
                StepPlanner::Customers(_) => {}
                _ => {
                    return Err(SyncError::Internal(format!(
                        "the source read custom table {table} in a run that imports no custom tables"
                    )));
                }
            },
        }
        Ok(())
    }

    /// Whether a partition was begun and not ended.
    pub(crate) fn open_partition(&self) -> Option<&str> {
        self.open.as_ref().map(|(tenant, _)| tenant.as_str())
    }

    async fn turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // A closed semaphore never happens: it lives as long as the pool.
        match self.cx.turns {
            Some(turns) => turns.clone().acquire_owned().await.ok(),
            None => None,
        }
    }

    async fn begin(&mut self, start: PartitionStart) -> Result<(), SyncError> {
        if let Some((open, _)) = &self.open {
            return Err(SyncError::Internal(format!(
                "the source began tenant {} before ending tenant {open}",
                start.tenant_id
            )));
        }
        self.cx.progress.update(|p| {
            p.stage = Stage::Reading;
            p.tenant = Some(start.tenant_id.clone());
        });
        let _turn = self.turn().await;
        let started = Instant::now();
        let planner = match &mut self.planner {
            StepPlanner::Directory(planner) => planner,
            StepPlanner::Rows(rows) => {
                self.mode.get_or_insert(start.mode);
                rows.begin(&start.tenant_id, start.mode);
                self.open = Some((start.tenant_id, DeskSnapshot::default()));
                return Ok(());
            }
            StepPlanner::Customers(customers) => {
                self.mode.get_or_insert(start.mode);
                let mut tx = self.cx.store.read().await?;
                customers.begin(&mut tx, &start.tenant_id, start.mode).await?;
                tx.commit().await?;
                self.timings.plan_seconds += started.elapsed().as_secs_f64();
                self.open = Some((start.tenant_id, DeskSnapshot::default()));
                return Ok(());
            }
            StepPlanner::Assets(assets) => {
                self.mode.get_or_insert(start.mode);
                let customer = start.customer_id.or(self.cx.default_customer);
                let mut tx = self.cx.store.read().await?;
                assets.begin(&mut tx, &start.tenant_id, customer).await?;
                tx.commit().await?;
                self.timings.plan_seconds += started.elapsed().as_secs_f64();
                self.open = Some((start.tenant_id, DeskSnapshot::default()));
                return Ok(());
            }
        };
        let cx = &self.cx;
        // A full read lists the tenant's groups: mappings naming one that does not exist are
        // refused before anything is planned.
        if start.mode == ReadMode::Full && start.groups.is_some() {
            validated(cx.store, cx.mapping, start.groups.clone(), cx.properties).await?;
        }
        self.mode.get_or_insert(start.mode);
        let customer = start.customer_id.or(cx.default_customer);
        let mut tx = cx.store.read().await?;
        let reference = match customer {
            Some(customer) => {
                let scope = SnapshotScope::of(cx.connection.id, &start.tenant_id, customer, cx.mapping);
                load_reference(&mut tx, &scope).await?
            }
            None => DeskSnapshot::default(),
        };
        let mut reference = reference;
        // Usage lines link to their subscriptions, so those are loaded for either.
        if start.subscriptions.is_some() || start.usage.is_some() {
            reference.subscriptions =
                crate::desk::load_subscriptions(&mut tx, cx.connection.id, &start.tenant_id).await?;
        }
        if let Some(usage) = &start.usage {
            let wanted: Vec<String> = usage.iter().map(|l| l.external_id.to_lowercase()).collect();
            reference.usage_lines = crate::desk::load_usage_lines(&mut tx, cx.connection.id, &wanted).await?;
        }
        let active_records = tx.active_records_of(cx.connection.id, &start.tenant_id).await?;

        tx.commit().await?;
        let header = TenantHeader {
            tenant_id: start.tenant_id.clone(),
            customer_id: customer,
            mode: start.mode,
            active_records,
        };
        let lists = TenantReference {
            skus: start.subscribed_skus.as_deref(),
            subscriptions: start.subscriptions.as_deref(),
            usage: start.usage.as_deref(),
        };
        let plan = planner.begin_tenant(&header, lists, &reference);
        self.timings.plan_seconds += started.elapsed().as_secs_f64();
        self.open = Some((start.tenant_id.clone(), reference));
        self.step(&start.tenant_id, plan, &[]).await
    }

    async fn page(&mut self, page: Page) -> Result<(), SyncError> {
        if self.open_partition() != Some(page.tenant_id.as_str()) {
            return Err(SyncError::Internal(format!(
                "the source sent a page of tenant {} outside that tenant's read",
                page.tenant_id
            )));
        }
        let tenant = page.tenant_id.clone();
        let records = page.records.len() as u64;
        self.cx.progress.update(|p| {
            p.stage = Stage::Planning;
            p.pages += 1;
            p.records += records;
        });
        let _turn = self.turn().await;
        let started = Instant::now();
        let planner = match &mut self.planner {
            StepPlanner::Directory(planner) => planner,
            StepPlanner::Rows(run) => {
                let rows = records_of(page.records, &tenant, |r| match r {
                    SourceRecord::Row(row) => Ok(row),
                    SourceRecord::User(user) => Err(user.external_id),
                    SourceRecord::Device(device) => Err(device.external_id),
                })?;
                let mut tx = self.cx.store.read().await?;
                let plan = run.page(&mut tx, &rows, &page.removed).await?;
                tx.commit().await?;
                drop(rows);
                self.timings.plan_seconds += started.elapsed().as_secs_f64();
                let cursors = self.keys(&tenant, page.cursors);
                return self.step(&tenant, plan, &cursors).await;
            }
            StepPlanner::Customers(customers) => {
                let rows = records_of(page.records, &tenant, |r| match r {
                    SourceRecord::Row(row) => Ok(row),
                    SourceRecord::User(user) => Err(user.external_id),
                    SourceRecord::Device(device) => Err(device.external_id),
                })?;
                let plan = customers.page(&rows, &page.removed);
                drop(rows);
                self.timings.plan_seconds += started.elapsed().as_secs_f64();
                let cursors = self.keys(&tenant, page.cursors);
                return self.step(&tenant, plan, &cursors).await;
            }
            StepPlanner::Assets(assets) => {
                let devices = records_of(page.records, &tenant, |r| match r {
                    SourceRecord::Device(device) => Ok(device),
                    SourceRecord::User(user) => Err(user.external_id),
                    SourceRecord::Row(row) => Err(row.external_id),
                })?;
                let mut tx = self.cx.store.read().await?;
                let plan = assets.page(&mut tx, &tenant, &devices).await?;
                tx.commit().await?;
                drop(devices);
                self.timings.plan_seconds += started.elapsed().as_secs_f64();
                return self.step(&tenant, plan, &[]).await;
            }
        };
        let users: Vec<SourceUser> = records_of(page.records, &tenant, |r| match r {
            SourceRecord::User(user) => Ok(user),
            SourceRecord::Device(device) => Err(device.external_id),
            SourceRecord::Row(row) => Err(row.external_id),
        })?;
        let lookups = planner.lookups(&users);
        let mut tx = self.cx.store.read().await?;
        let (desk_users, desk_agents) =
            load_page_records(&mut tx, self.cx.connection.id, &tenant, &lookups).await?;
        tx.commit().await?;
        let Some((_, reference)) = self.open.as_mut() else {
            return Err(SyncError::Internal(format!(
                "tenant {tenant} ended during its page"
            )));
        };
        // The page's desk records join the tenant's sites and licences for this page only.
        reference.users = desk_users;
        reference.agents = desk_agents;
        let plan = planner.plan_page(&tenant, &users, &page.removed, reference);
        reference.users = Vec::new();
        reference.agents = Vec::new();
        drop(users);
        self.timings.plan_seconds += started.elapsed().as_secs_f64();
        let cursors = self.keys(&tenant, page.cursors);
        self.step(&tenant, plan, &cursors).await
    }

    async fn end(&mut self, end: PartitionEnd) -> Result<(), SyncError> {
        let open = self.open.take().filter(|(t, _)| *t == end.tenant_id);
        if open.is_none() {
            return Err(SyncError::Internal(format!(
                "the source ended tenant {} without beginning it",
                end.tenant_id
            )));
        }
        let _turn = self.turn().await;
        let started = Instant::now();
        let connection = self.cx.connection.id;
        let mut tx = self.cx.store.read().await?;
        let plan = match &mut self.planner {
            StepPlanner::Assets(assets) => assets.end(&mut tx, &end.tenant_id, end.completeness).await?,
            StepPlanner::Rows(rows) => rows.end(&mut tx, end.completeness).await?,
            StepPlanner::Customers(customers) => customers.end(&end.tenant_id, end.completeness, connection),
            StepPlanner::Directory(planner) => {
                let finish = planner.finish_lookups(&end.tenant_id);
                // Only the people this run did not read: the end decides about them alone.
                let records = load_connection_records(&mut tx, connection, &finish, |r| {
                    !planner.was_read(&r.external_id)
                })
                .await?;
                let agents = planner.ticket_agents(&end.tenant_id, &records);
                let tickets = load_tickets(&mut tx, connection, &agents).await?;
                planner.finish_tenant(
                    &end.tenant_id,
                    end.completeness,
                    &ConnectionRecords { records, tickets },
                )
            }
        };
        tx.commit().await?;
        self.timings.plan_seconds += started.elapsed().as_secs_f64();
        self.requests += end.requests;
        let held = plan.held.first().map(|h| h.reason.clone());
        // A held tenant keeps its cursors where they were: the run that approves it reads the
        // same changes again and applies the deactivations and updates held back now (the pages
        // applied none of them: they wait for the tenant's end).
        let end_cursors_empty = end.cursors.is_empty();
        let cursors = if held.is_some() {
            Vec::new()
        } else {
            self.keys(&end.tenant_id, end.cursors)
        };
        if held.is_some() {
            self.held = held;
        }
        self.step(&end.tenant_id, plan, &cursors).await?;
        self.cx.progress.update(|p| p.tenants_done += 1);
        if self.unapplied > 0 && !end_cursors_empty && self.cx.run.is_some() {
            self.notes.push(format!(
                "tenant {}: {} record(s) were not applied (see the errors), so its delta link and cursors stay \
                 where they were and the next round reads those records again",
                end.tenant_id, self.unapplied
            ));
        }
        self.unapplied = 0;
        Ok(())
    }

    /// Keeps errors for the outcome and, in a run, records them against it at once (with the
    /// run's error count): a failure later in the read must not lose them.
    async fn record(&mut self, errors: Vec<IntegrationError>) -> Result<(), SyncError> {
        if errors.is_empty() {
            return Ok(());
        }
        if let Some(run) = self.cx.run {
            let mut tx = self
                .cx
                .store
                .begin(WriteContext::for_run(self.cx.connection.id, run))
                .await?;
            for e in &errors {
                tx.record_error(e).await?;
            }
            tx.add_run_counts(
                run,
                &RunCounts {
                    errors: errors.len() as i64,
                    ..RunCounts::default()
                },
            )
            .await?;
            tx.commit().await?;
        }
        self.errors.extend(errors);
        Ok(())
    }

    fn keys(&self, tenant: &str, cursors: Vec<(String, String)>) -> Vec<(CursorKey, String)> {
        cursors
            .into_iter()
            .map(|(stream, value)| {
                let key = CursorKey {
                    connection_id: self.cx.connection.id,
                    tenant_id: tenant.to_owned(),
                    stream,
                };
                (key, value)
            })
            .collect()
    }

    /// Records a step's plan, and applies it with its cursors unless this is a preview.
    async fn step(
        &mut self,
        tenant: &str,
        plan: Plan,
        cursors: &[(CursorKey, String)],
    ) -> Result<(), SyncError> {
        self.unapplied += plan.errors.len();
        // The source's cursors say "read up to here": not past a record this round left unapplied.
        let cursors = if self.unapplied > 0 { &[] } else { cursors };
        self.notes.extend(plan.notes.iter().cloned());
        self.locked.extend(plan.locked.iter().cloned());
        let entity = match self.planner {
            StepPlanner::Directory(_) => "user",
            StepPlanner::Assets(_) => "asset",
            StepPlanner::Rows(_) => "custom_row",
            StepPlanner::Customers(_) => "customer",
        };
        let errors = plan_errors(&plan, entity);
        let Some(run) = self.cx.run else {
            let planned = u64::try_from(plan.counts.created + plan.counts.updated + plan.counts.deactivated)
                .unwrap_or(0);
            self.cx.progress.update(|p| {
                p.stage = Stage::Reading;
                p.changes += planned;
            });
            self.record(errors).await?;
            match &mut self.preview {
                Some(preview) => preview.absorb(plan),
                None => self.preview = Some(plan),
            }
            return Ok(());
        };
        self.cx.progress.update(|p| p.stage = Stage::Applying);
        let started = Instant::now();
        let report = match self.planner {
            StepPlanner::Rows(_) => {
                crate::rows::apply_rows(self.cx.store, self.cx.connection.id, run, tenant, &plan, cursors)
                    .await?
            }
            _ => apply_plan(self.cx.store, self.cx.connection.id, run, tenant, &plan, cursors).await?,
        };
        self.timings.apply_seconds += started.elapsed().as_secs_f64();
        self.record(errors).await?;
        self.unapplied += report.errors.len();
        self.apply_errors.extend(report.errors);
        let applied =
            u64::try_from(report.counts.created + report.counts.updated + report.counts.deactivated)
                .unwrap_or(0);
        self.cx.progress.update(|p| {
            p.stage = Stage::Reading;
            p.changes += applied;
        });
        self.cx.progress.save(self.cx.store, run).await
    }
}

/// A page's records of the kind this run plans; a record of another kind is the source's error
/// (`kind` gives its external id for the message).
fn records_of<T>(
    records: Vec<SourceRecord>,
    tenant: &str,
    kind: impl Fn(SourceRecord) -> Result<T, String>,
) -> Result<Vec<T>, SyncError> {
    records
        .into_iter()
        .map(|record| {
            kind(record).map_err(|external_id| {
                SyncError::Internal(format!(
                    "the source sent record {external_id} of tenant {tenant}, of another kind than this run reads"
                ))
            })
        })
        .collect()
}

/// A plan's records that could not be planned, as errors recorded against the run.
pub(crate) fn plan_errors(plan: &Plan, entity: &str) -> Vec<IntegrationError> {
    plan.errors
        .iter()
        .map(|e| IntegrationError {
            tenant_id: Some(e.tenant_id.clone()),
            entity: Some(entity.to_owned()),
            external_id: Some(e.external_id.clone()),
            code: ErrorCode::MappingFailed.as_str().into(),
            message: e.message.clone(),
            remedy: Some("Fix the mapping or the source value named in the message.".into()),
        })
        .collect()
}
