//! A custom-table run's steps: rows of source tables → rows of desk custom tables. The source
//! reads one partition per table mapping (named by [`ReadEvent::CustomTable`] right after its
//! `Begin`); each page loads only the desk rows of its ids, and the table's end loads the rows
//! the connection imported into the table, so that a complete full read removes (as the mapping
//! says) those it did not find.
//!
//! Applying: one transaction per step (a page, a table's end), the step's cursors committed in
//! it; each change under a savepoint, so a row the store refuses is an error against the run and
//! the rest of the page still commits. A removed row is deleted from the desk table, and the
//! journal keeps every value it held. Removals for absence (a complete full read not finding a
//! row) are held by the connection's circuit breaker like deactivations of people.
//!
//! [`ReadEvent::CustomTable`]: deskbridge_source::ReadEvent::CustomTable

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, HasErrorCode, RunId};
use deskbridge_mapping::{
    Action, Change, CircuitBreaker, Completeness, DeskColumns, DeskRow, Plan, ReadMode, Removal, RowPlanner,
    SourceRow, split_row_key,
};
use deskbridge_store::{
    CursorKey, CustomRow, InboundEntry, IntegrationError, RunCounts, SourceKey, Store, StoreTx, WriteContext,
};
use serde_json::{Map, Value, json};

use crate::SyncError;
use crate::apply::ApplyReport;

/// The custom-row side of a run's steps.
pub(crate) struct RowRun {
    planner: RowPlanner,
    connection: ConnectionId,
    breaker: CircuitBreaker,
    /// Partitions an administrator approved: the breaker lets their removals through.
    approved: BTreeSet<String>,
    /// The desk tables' columns, loaded when their table begins.
    columns: BTreeMap<String, Option<DeskColumns>>,
    tenant: Option<String>,
    mode: ReadMode,
}

impl RowRun {
    pub(crate) fn new(
        planner: RowPlanner,
        connection: ConnectionId,
        breaker: CircuitBreaker,
        approved: BTreeSet<String>,
    ) -> Self {
        Self {
            planner,
            connection,
            breaker,
            approved,
            columns: BTreeMap::new(),
            tenant: None,
            mode: ReadMode::Full,
        }
    }

    /// A partition begins; its table is named next.
    pub(crate) fn begin(&mut self, tenant: &str, mode: ReadMode) {
        self.tenant = Some(tenant.to_owned());
        self.mode = mode;
    }

    /// The partition reads `desk_table`'s mapping: its desk table is loaded and checked.
    pub(crate) async fn table(&mut self, tx: &mut StoreTx, desk_table: &str) -> Result<(), SyncError> {
        let tenant = self.tenant.clone().ok_or_else(|| {
            SyncError::Internal(format!("the source named table {desk_table} outside a partition"))
        })?;
        let columns = tx.custom_table_columns(desk_table).await?;
        self.columns.insert(desk_table.to_owned(), columns.clone());
        self.planner
            .begin_table(&tenant, desk_table, self.mode, columns.as_ref())
            .map_err(|message| SyncError::BadSettings("custom table mapping".into(), message))
    }

    fn open_table(&self) -> Result<String, SyncError> {
        self.planner
            .open_table()
            .map(str::to_owned)
            .ok_or_else(|| SyncError::Internal("the source sent rows before naming their table".into()))
    }

    /// Plans a page of rows against the desk rows of its ids.
    pub(crate) async fn page(
        &mut self,
        tx: &mut StoreTx,
        rows: &[SourceRow],
        removed: &[Removal],
    ) -> Result<Plan, SyncError> {
        let table = self.open_table()?;
        let lookups = self.planner.lookups(rows, removed);
        let desk = tx
            .custom_rows_by_source(&table, self.connection, &lookups.external_ids)
            .await?;
        let desk: Vec<DeskRow> = desk.into_iter().filter_map(desk_row).collect();
        Ok(self.planner.plan_page(rows, removed, &desk))
    }

    /// The table's end: removals for what a complete full read did not find.
    pub(crate) async fn end(
        &mut self,
        tx: &mut StoreTx,
        completeness: Completeness,
    ) -> Result<Plan, SyncError> {
        let Some(table) = self.planner.open_table().map(str::to_owned) else {
            // A partition that named no table (nothing was read): nothing to decide.
            return Ok(Plan {
                generated_at: jiff::Timestamp::UNIX_EPOCH,
                changes: Vec::new(),
                targets: BTreeMap::new(),
                locked: Vec::new(),
                circuit_breaker: Vec::new(),
                held: Vec::new(),
                errors: Vec::new(),
                notes: Vec::new(),
                counts: Default::default(),
            });
        };
        let imported: Vec<DeskRow> = tx
            .custom_rows_of_connection(&table, self.connection)
            .await?
            .into_iter()
            .filter_map(desk_row)
            .collect();
        let tenant = self.tenant.take().unwrap_or_default();
        let mut plan = self.planner.finish_table(completeness, &imported);
        if !self.approved.contains(&tenant) {
            hold_if_tripped(&mut plan, &self.breaker, &tenant, &table, imported.len());
        }
        Ok(plan)
    }
}

/// Holds a table's removals for absence beyond the breaker's share of the rows the connection
/// imported into it: a filter changed by mistake must not empty a desk table. The run an
/// administrator approves (`--approve`) applies them.
fn hold_if_tripped(plan: &mut Plan, breaker: &CircuitBreaker, tenant: &str, table: &str, imported: usize) {
    crate::breaker::hold_removals(plan, breaker, tenant, imported, |removals| {
        format!(
            "{removals} of the {imported} rows of desk table {table} would be removed, more than {}% (and more than \
             {}): approve the run to apply them",
            breaker.max_deactivate_percent, breaker.floor
        )
    });
}

fn desk_row(row: CustomRow) -> Option<DeskRow> {
    Some(DeskRow {
        id: row.id,
        external_id: row.source?.external_id,
        data: row.data,
    })
}

/// Applies a step's row changes and its cursors in one transaction.
pub(crate) async fn apply_rows(
    store: &Store,
    connection: ConnectionId,
    run: RunId,
    tenant: &str,
    plan: &Plan,
    cursors: &[(CursorKey, String)],
) -> Result<ApplyReport, SyncError> {
    let mut report = ApplyReport::default();
    let mut tx = store.begin(WriteContext::for_run(connection, run)).await?;
    for change in plan.changes.iter().filter(|c| c.action.writes()) {
        tx.savepoint().await?;
        let (action, result) = match apply_change(&mut tx, connection, change, &mut report).await {
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
                    code: e.error_code().as_str().into(),
                    message: format!("{} custom row failed: {e}", change.action.as_str()),
                    remedy: Some(
                        "Check the desk custom table's columns against the table mapping (see the rule in the preview)."
                            .into(),
                    ),
                };
                tx.record_error(&error).await?;
                report.errors.push(error);
                report.counts.errors += 1;
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
    tx.add_run_counts(
        run,
        &RunCounts {
            unchanged: plan.counts.unchanged as i64,
            ..report.counts
        },
    )
    .await?;
    for (key, value) in cursors {
        tx.set_cursor(key, value).await?;
    }
    tx.commit().await?;
    Ok(report)
}

async fn apply_change(
    tx: &mut StoreTx,
    connection: ConnectionId,
    change: &Change,
    report: &mut ApplyReport,
) -> Result<String, deskbridge_store::StoreError> {
    let Some((table, external)) = split_row_key(&change.external_id) else {
        return Err(deskbridge_store::StoreError::InvalidValue {
            entity: "plan",
            field: change.external_id.clone(),
            message: "a custom row change must name <desk table>/<source id>".into(),
        });
    };
    match change.action {
        Action::Create | Action::Update => {
            let data: Map<String, Value> = change
                .fields
                .iter()
                .map(|(k, f)| (k.clone(), f.after.clone()))
                .collect();
            let source = SourceKey::new(connection, external.to_owned());
            let outcome = tx.upsert_custom_row(table, &source, &data).await?;
            match outcome {
                deskbridge_store::UpsertOutcome::Created(id) => {
                    report.counts.created += 1;
                    Ok(format!("created row {id} of {table}"))
                }
                deskbridge_store::UpsertOutcome::Updated(id, changes) => {
                    report.counts.updated += 1;
                    Ok(format!(
                        "updated row {id} of {table}: {} column(s)",
                        changes.len()
                    ))
                }
                deskbridge_store::UpsertOutcome::Unchanged(id) => {
                    Ok(format!("row {id} of {table} unchanged"))
                }
            }
        }
        Action::Deactivate => match tx.delete_custom_row(table, connection, external).await? {
            Some(id) => {
                report.counts.deactivated += 1;
                Ok(format!("deleted row {id} of {table} (journaled)"))
            }
            None => Ok(format!("row {external} of {table} was already gone")),
        },
        other => Ok(format!("{} planned; nothing written", other.as_str())),
    }
}
