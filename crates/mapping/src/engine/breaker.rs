//! The circuit breaker's verdict on a tenant at its end: it weighs the deactivations, and the
//! updates of existing records — records moved to another site (and so, perhaps, another
//! customer) and, field by field, records whose field changes — against the tenant's active
//! records before the run. More than the floor *and* more than the configured share of either
//! kind holds the tenant for an administrator's approval, with a reason that names what tripped.

use std::collections::BTreeMap;

use super::HoldScope;
use crate::config::CircuitBreaker;
use crate::plan::{BreakerVerdict, Change};

/// The field whose change moves a record: a site belongs to one customer, so a move to another
/// customer changes it too.
const MOVE_FIELD: &str = "site_id";

/// What the breaker decided for one tenant, and which of its deferred changes it holds.
pub(crate) struct Weighed {
    pub(crate) verdict: BreakerVerdict,
    /// Hold the deactivations (and the ticket re-assignments depending on them).
    pub(crate) hold_deactivations: bool,
    /// Hold the updates of existing records.
    pub(crate) hold_updates: bool,
}

/// What one tenant's run would do, as the breaker counts it.
pub(crate) struct Counted<'a> {
    pub(crate) tenant_id: &'a str,
    /// Active desk users and agents of the tenant from this connection before the run.
    pub(crate) active_records: usize,
    pub(crate) deactivations: usize,
    /// The updates of existing users and agents active before the run (each a record's change,
    /// or its line manager linked at the end: their fields never overlap).
    pub(crate) updates: &'a [Change],
}

/// Weighs a tenant's changes. `approved`: an administrator approved the tenant's held plan, so
/// nothing is held whatever the counts. `scope`: what the caller can still hold (for the reason).
pub(crate) fn weigh(
    breaker: &CircuitBreaker,
    counted: &Counted<'_>,
    approved: bool,
    scope: HoldScope,
) -> Weighed {
    let active = counted.active_records;
    let floor = breaker.floor as usize;
    let share = |n: usize| {
        if active == 0 {
            0.0
        } else {
            n as f64 * 100.0 / active as f64
        }
    };
    let over = |n: usize, percent: f64| n > floor && share(n) > percent;

    let mut moves = 0;
    let mut field_changes: BTreeMap<String, usize> = BTreeMap::new();
    for change in counted.updates {
        for field in change.fields.keys() {
            if field == MOVE_FIELD {
                moves += 1;
            } else {
                *field_changes.entry(field.clone()).or_default() += 1;
            }
        }
    }

    let deactivations = counted.deactivations;
    let max_deactivate = breaker.max_deactivate_percent;
    let max_change = breaker.max_change_percent;
    let deactivations_trip = over(deactivations, max_deactivate);
    let moves_trip = over(moves, max_change);
    // The fields over the limit, the most changed first.
    let mut fields_over: Vec<(&str, usize)> = field_changes
        .iter()
        .filter(|(_, n)| over(**n, max_change))
        .map(|(field, n)| (field.as_str(), *n))
        .collect();
    fields_over.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let changes_trip = moves_trip || !fields_over.is_empty();

    let mut tripped = Vec::new();
    if deactivations_trip {
        tripped.push(format!(
            "this run would deactivate {deactivations} of {active} active records ({:.1} %), more than the {max_deactivate} % allowed",
            share(deactivations)
        ));
    }
    if moves_trip {
        tripped.push(format!(
            "this run would move {moves} of {active} active records ({:.1} %) to another site, more than the {max_change} % allowed",
            share(moves)
        ));
    }
    for (field, n) in &fields_over {
        tripped.push(format!(
            "this run would change `{field}` on {n} of {active} active records ({:.1} %), more than the {max_change} % allowed",
            share(*n)
        ));
    }
    let reason = if tripped.is_empty() {
        let mut reason = if deactivations <= floor {
            format!(
                "{deactivations} deactivation(s) of {active} active records ({:.1} %): not more than the floor of {floor}, so the breaker does not trip",
                share(deactivations)
            )
        } else {
            format!(
                "{deactivations} deactivation(s) of {active} active records ({:.1} %): within the {max_deactivate} % allowed",
                share(deactivations)
            )
        };
        if let Some(largest) = largest_change(moves, &field_changes) {
            reason.push_str(&format!(
                "; {moves} move(s) to another site and at most {largest} change(s) of one field: {}",
                if moves.max(largest) <= floor {
                    format!("not more than the floor of {floor}")
                } else {
                    format!("within the {max_change} % allowed")
                }
            ));
        }
        reason
    } else {
        let held = match (deactivations_trip, changes_trip) {
            (true, true) => {
                "its updates of existing records and its deactivations (and the tickets they re-assign)"
            }
            (false, true) => "its updates of existing records",
            _ => "its deactivations (and the tickets they re-assign)",
        };
        let outcome = match (approved, scope) {
            (true, _) => "approved by an administrator".to_owned(),
            (false, HoldScope::WholeTenant) => {
                "held for approval, nothing of this tenant is applied".to_owned()
            }
            (false, HoldScope::Deactivations) => {
                format!("{held} are held for approval, the rest of the tenant is applied")
            }
        };
        format!("{}; {outcome}", tripped.join("; "))
    };
    let held = (deactivations_trip || changes_trip) && !approved;
    Weighed {
        verdict: BreakerVerdict {
            tenant_id: counted.tenant_id.to_owned(),
            held,
            deactivations,
            active_records: active,
            reason,
            moves,
            field_changes,
        },
        hold_deactivations: held && deactivations_trip,
        hold_updates: held && changes_trip,
    }
}

/// The most records any one count changes (moves or one field), if the run changes any.
fn largest_change(moves: usize, field_changes: &BTreeMap<String, usize>) -> Option<usize> {
    let largest = field_changes.values().copied().max().unwrap_or(0).max(moves);
    (largest > 0).then_some(largest)
}
