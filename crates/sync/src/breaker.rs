//! The circuit breaker for the record kinds planned apart from people (assets, custom rows,
//! customers): a step whose removals exceed the breaker's share of the records the connection
//! imported (and its floor) is held whole, its removals moved to `plan.held` for an
//! administrator to approve; its cursors stay where they were.

use deskbridge_mapping::{Action, CircuitBreaker, HeldTenant, Plan};

/// Holds `plan`'s deactivations when there are more than `breaker` allows of `imported` records;
/// `reason` says why, given the number of deactivations.
pub(crate) fn hold_removals(
    plan: &mut Plan,
    breaker: &CircuitBreaker,
    tenant: &str,
    imported: usize,
    reason: impl FnOnce(usize) -> String,
) {
    let removals = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Deactivate)
        .count();
    let allowed = (imported as f64) * breaker.max_deactivate_percent / 100.0;
    if removals <= breaker.floor as usize || (removals as f64) <= allowed {
        return;
    }
    let reason = reason(removals);
    let (held, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.changes)
        .into_iter()
        .partition(|c| c.action == Action::Deactivate);
    plan.changes = kept;
    plan.counts.deactivated = plan.counts.deactivated.saturating_sub(held.len());
    plan.held.push(HeldTenant {
        tenant_id: tenant.to_owned(),
        reason,
        changes: held,
    });
}
