//! A customer run's steps: rows of the source's organisations table (Dynamics 365: accounts) →
//! desk customers. The desk's customers are a small table, loaded once when the read begins, so
//! every page plans against the same desk in a preview and in a sync; changes are applied by the
//! common applier (a created customer gets its main site from the store).
//!
//! The circuit breaker applies as it does to people: a read's end that would deactivate more
//! than the configured share of the customers the connection imported (and more than the floor)
//! is held until an administrator approves the run.

use std::collections::BTreeSet;

use deskbridge_core::ConnectionId;
use deskbridge_mapping::{
    CircuitBreaker, Completeness, CustomerPlanner, DeskCustomer, Plan, ReadMode, Removal, SourceIdentity,
    SourceRow,
};
use deskbridge_source::desk::listed;
use deskbridge_store::{Entity, StoreTx};
use serde_json::Value;

use crate::SyncError;

/// The customer side of a run's steps.
pub(crate) struct CustomerRun {
    planner: CustomerPlanner,
    breaker: CircuitBreaker,
    /// Partitions an administrator approved: the breaker lets their deactivations through.
    approved: BTreeSet<String>,
    /// The desk's customers when the read began.
    desk: Vec<DeskCustomer>,
}

impl CustomerRun {
    pub(crate) fn new(planner: CustomerPlanner, breaker: CircuitBreaker, approved: BTreeSet<String>) -> Self {
        Self {
            planner,
            breaker,
            approved,
            desk: Vec::new(),
        }
    }

    /// The read begins: the desk's customers are loaded.
    pub(crate) async fn begin(
        &mut self,
        tx: &mut StoreTx,
        tenant: &str,
        mode: ReadMode,
    ) -> Result<(), SyncError> {
        self.desk = load_customers(tx).await?;
        self.planner.begin(tenant, mode);
        Ok(())
    }

    pub(crate) fn page(&mut self, rows: &[SourceRow], removed: &[Removal]) -> Plan {
        self.planner.plan_page(rows, removed, &self.desk)
    }

    /// The read's end: deactivations for what a complete full read did not find, held by the
    /// circuit breaker when there are too many.
    pub(crate) fn end(&mut self, tenant: &str, completeness: Completeness, connection: ConnectionId) -> Plan {
        let mut plan = self.planner.finish(completeness, &self.desk);
        if !self.approved.contains(tenant) {
            let active = self
                .desk
                .iter()
                .filter(|c| c.active && c.source.as_ref().is_some_and(|s| s.connection_id == connection))
                .count();
            hold_if_tripped(&mut plan, &self.breaker, tenant, active);
        }
        self.desk = Vec::new();
        plan
    }
}

/// Holds the read's deactivations beyond the breaker's share of the connection's active
/// customers: a filter changed by mistake must not deactivate every customer.
fn hold_if_tripped(plan: &mut Plan, breaker: &CircuitBreaker, tenant: &str, active: usize) {
    crate::breaker::hold_removals(plan, breaker, tenant, active, |deactivations| {
        format!(
            "{deactivations} of the {active} active customers this connection imported would be deactivated, more \
             than {}% (and more than {}): approve the run to apply them",
            breaker.max_deactivate_percent, breaker.floor
        )
    });
}

/// Every desk customer, as the customer planner reads it.
async fn load_customers(tx: &mut StoreTx) -> Result<Vec<DeskCustomer>, SyncError> {
    Ok(listed(tx, Entity::Customer, None)
        .await?
        .into_iter()
        .map(|record| DeskCustomer {
            id: record.id,
            source: record.source.map(|s| SourceIdentity {
                connection_id: s.connection_id,
                external_id: s.external_id,
            }),
            // A customer without the flag is active, as the desk shows it.
            active: record
                .fields
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            fields: record
                .fields
                .into_iter()
                .filter(|(k, _)| k == "name" || k.starts_with("custom:"))
                .collect(),
        })
        .collect())
}
