//! The plan as text for a terminal: what `sync --plan` shows without `--json`. One line per
//! change, then its fields as `before → after`, then the verdicts, locks, errors and counts.

use std::fmt::Write;

use serde_json::Value;

use crate::plan::{Action, Plan};

/// Longest value shown in full; longer ones are cut so one field stays on one line.
const MAX_VALUE: usize = 60;

impl Plan {
    /// A human-readable preview. `with_reasons` adds each change's reason under it.
    pub fn to_text(&self, with_reasons: bool) -> String {
        let mut out = String::new();
        let write = &mut out;
        for change in &self.changes {
            let _ = writeln!(
                write,
                "{:<10} {:<6} {}  [{}]",
                action_word(change.action),
                change.entity.as_str(),
                change.external_id,
                change.rule
            );
            if with_reasons || matches!(change.action, Action::Skip | Action::Conflict) {
                let _ = writeln!(write, "           {}", change.reason);
            }
            for (field, values) in &change.fields {
                let (before, after) = match field.as_str() {
                    "teams" => (teams(&values.before), teams(&values.after)),
                    "cabs" => (cabs(&values.before), cabs(&values.after)),
                    _ => (short(&values.before), short(&values.after)),
                };
                let _ = writeln!(write, "           {field}: {before} → {after}");
            }
        }
        for held in &self.held {
            let _ = writeln!(
                write,
                "HELD       tenant {}: {} ({} changes not applied)",
                held.tenant_id,
                held.reason,
                held.changes.len()
            );
        }
        for locked in &self.locked {
            let _ = writeln!(
                write,
                "LOCKED     {} {} {}: kept {} instead of {} ({})",
                locked.entity.as_str(),
                locked.external_id,
                locked.field,
                short(&locked.current),
                short(&locked.wanted),
                locked.lock
            );
        }
        for error in &self.errors {
            let _ = writeln!(
                write,
                "ERROR      tenant {} {}: {}",
                error.tenant_id, error.external_id, error.message
            );
        }
        for note in &self.notes {
            let _ = writeln!(write, "NOTE       {note}");
        }
        for verdict in self.circuit_breaker.iter().filter(|v| !v.held) {
            let _ = writeln!(
                write,
                "BREAKER    tenant {}: {}",
                verdict.tenant_id, verdict.reason
            );
        }
        let counts = &self.counts;
        let _ = writeln!(
            write,
            "{} created, {} updated, {} deactivated, {} unchanged, {} conflicts, {} errors",
            counts.created,
            counts.updated,
            counts.deactivated,
            counts.unchanged,
            counts.conflicts,
            counts.errors
        );
        out
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Create => "CREATE",
        Action::Update => "UPDATE",
        Action::Deactivate => "DEACTIVATE",
        Action::Reactivate => "REACTIVATE",
        Action::Link => "LINK",
        Action::Conflict => "CONFLICT",
        Action::Skip => "SKIP",
    }
}

fn short(value: &Value) -> String {
    let text = match value {
        Value::Null => "—".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_VALUE {
        format!("{}…", text.chars().take(MAX_VALUE - 1).collect::<String>())
    } else {
        text
    }
}

/// `team 1 (assign, unassigned, others); team 3 (assign)`.
fn teams(value: &Value) -> String {
    let Some(items) = value.as_array() else {
        return short(value);
    };
    if items.is_empty() {
        return "none".into();
    }
    let flag_words = [
        ("can_be_assigned", "assign"),
        ("can_see_unassigned", "unassigned"),
        ("can_see_others_tickets", "others"),
    ];
    items
        .iter()
        .map(|item| {
            let flags: Vec<&str> = flag_words
                .iter()
                .filter(|(key, _)| item.get(*key).and_then(Value::as_bool).unwrap_or(false))
                .map(|(_, word)| *word)
                .collect();
            format!(
                "team {} ({})",
                short(item.get("team_id").unwrap_or(&Value::Null)),
                flags.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `CAB 1 (role 2); CAB 4`.
fn cabs(value: &Value) -> String {
    let Some(items) = value.as_array() else {
        return short(value);
    };
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|item| {
            let cab = short(item.get("cab_id").unwrap_or(&Value::Null));
            match item.get("cab_role_id").filter(|role| !role.is_null()) {
                Some(role) => format!("CAB {cab} (role {})", short(role)),
                None => format!("CAB {cab}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
