//! The demo's account of every user of every tenant: users in the tenant = imported + skipped,
//! each skip counted by its reason as the preview words it (a full preview of the connection
//! after the import plans the same skips, each with the rule that decided it), or the whole
//! tenant not read and why. A user neither on the desk nor skipped is named, and the demo fails:
//! its numbers must add up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deskbridge_core::{ConnectionId, SharedClock};
use deskbridge_emulator::Emulator;
use deskbridge_mapping::{Action, Entity as PlanEntity};
use deskbridge_source::SourceRegistry;
use deskbridge_store::{Entity, RecordScope, Store};
use deskbridge_sync::{SyncOptions, skip_reason, sync};

use super::SCOPE_LIMIT;

/// Why users were not imported, from a full preview of connection `name`: user id (lower case)
/// → the preview's reason.
pub(super) async fn skip_reasons(
    store: &Store,
    sources: &SourceRegistry,
    name: &str,
    clock: &SharedClock,
) -> anyhow::Result<HashMap<String, String>> {
    let options = SyncOptions {
        full: true,
        plan_only: true,
        ..SyncOptions::default()
    };
    let preview = sync(store, sources, name, &options, clock).await?;
    let mut reasons: HashMap<String, String> = preview
        .changes
        .unwrap_or_default()
        .iter()
        .filter(|c| c.entity == PlanEntity::User && c.action == Action::Skip)
        .map(|c| (c.external_id.to_lowercase(), skip_reason(c)))
        .collect();
    for error in preview.errors {
        if let Some(id) = error.external_id {
            reasons
                .entry(id.to_lowercase())
                .or_insert_with(|| format!("an error: {}", error.message));
        }
    }
    Ok(reasons)
}

/// One tenant's users, accounted for.
#[derive(Debug, Default)]
pub(super) struct TenantCount {
    /// `Name (domain)`.
    pub label: String,
    /// Users in the tenant now (deleted ones not counted).
    pub users: usize,
    pub imported: usize,
    /// Of the imported, those the desk holds as inactive (a disabled account).
    pub inactive: usize,
    /// Skipped users per reason.
    pub skipped: BTreeMap<String, usize>,
    /// Users neither imported nor skipped: their names.
    pub unaccounted: Vec<String>,
    /// Desk users of the tenant no longer in it.
    pub gone: usize,
}

impl TenantCount {
    /// `users = imported + skipped (reason) + …`: the sums agree by construction unless some
    /// user is unaccounted for, which the line says with the names.
    pub fn line(&self) -> String {
        let mut parts = vec![format!(
            "{} imported{}",
            self.imported,
            if self.inactive > 0 {
                format!(" ({} of them inactive: a disabled account)", self.inactive)
            } else {
                String::new()
            }
        )];
        for (reason, n) in &self.skipped {
            parts.push(format!("{n} skipped ({reason})"));
        }
        if !self.unaccounted.is_empty() {
            parts.push(format!(
                "{} UNACCOUNTED FOR ({})",
                self.unaccounted.len(),
                self.unaccounted.join(", ")
            ));
        }
        let mut line = format!("{}: {} users = {}", self.label, self.users, parts.join(" + "));
        if self.gone > 0 {
            line.push_str(&format!(
                "; the desk also holds {} user(s) no longer in the tenant (left or replaced since an import; \
                 kept as the connection's mappings say)",
                self.gone
            ));
        }
        line
    }

    pub fn reconciles(&self) -> bool {
        self.unaccounted.is_empty() && self.users == self.imported + self.skipped.values().sum::<usize>()
    }
}

/// Counts tenant `tenant`'s users as connection `connection` left them: on the desk, skipped
/// by the preview (`reasons`), or in a tenant not read (`not_read`, why).
pub(super) async fn count_tenant(
    store: &Store,
    emu: &Emulator,
    connection: ConnectionId,
    tenant: &deskbridge_emulator::TenantSummary,
    reasons: &HashMap<String, String>,
    not_read: Option<String>,
) -> anyhow::Result<TenantCount> {
    let people: Vec<(String, String, bool)> = emu.with_world(|w| {
        w.tenant(&tenant.id)
            .map(|t| {
                t.live_users()
                    .map(|u| {
                        (
                            u.id.to_lowercase(),
                            u.display_name
                                .clone()
                                .unwrap_or_else(|| u.user_principal_name.clone()),
                            super::is_guest(u),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let mut tx = store.read().await?;
    let scope = RecordScope::OfConnectionTenant {
        connection,
        tenant_id: tenant.id.clone(),
        external_ids: Vec::new(),
    };
    let desk: HashMap<String, bool> = tx
        .list_scoped(Entity::User, &scope, None, SCOPE_LIMIT)
        .await?
        .iter()
        .filter_map(|u| {
            let id = u.source.as_ref()?.external_id.to_lowercase();
            Some((id, u.get("active").as_bool() != Some(false)))
        })
        .collect();
    tx.commit().await?;

    let mut count = TenantCount {
        label: format!("{} ({})", tenant.display_name, tenant.domain),
        users: people.len(),
        ..TenantCount::default()
    };
    let in_tenant: BTreeSet<&str> = people.iter().map(|(id, _, _)| id.as_str()).collect();
    count.gone = desk.keys().filter(|id| !in_tenant.contains(id.as_str())).count();
    for (id, name, guest) in &people {
        if let Some(active) = desk.get(id) {
            count.imported += 1;
            if !active {
                count.inactive += 1;
            }
            continue;
        }
        let reason = match (reasons.get(id), &not_read) {
            (Some(reason), _) if *guest => Some(format!("{reason}: a guest, whom the mappings leave out")),
            (Some(reason), _) => Some(reason.clone()),
            (None, Some(why)) => Some(format!("the tenant was not read: {why}")),
            (None, None) => None,
        };
        match reason {
            Some(reason) => *count.skipped.entry(reason).or_default() += 1,
            None => count.unaccounted.push(name.clone()),
        }
    }
    Ok(count)
}

/// Fails the demo when some tenant's users do not add up, naming the tenant and the users.
pub(super) fn check(counts: &[TenantCount]) -> anyhow::Result<()> {
    let wrong: Vec<String> = counts
        .iter()
        .filter(|c| !c.reconciles())
        .map(TenantCount::line)
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the demo's numbers do not add up: {} (every user should be imported or skipped with a reason: please \
         report this with the demo's output)",
        wrong.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_adds_up_and_says_who_is_unaccounted_for() {
        let mut count = TenantCount {
            label: "Contoso (contoso.test)".into(),
            users: 10,
            imported: 7,
            inactive: 1,
            skipped: BTreeMap::from([("matched no site mapping".to_owned(), 3)]),
            ..TenantCount::default()
        };
        assert!(count.reconciles());
        assert_eq!(
            count.line(),
            "Contoso (contoso.test): 10 users = 7 imported (1 of them inactive: a disabled account) + 3 skipped \
             (matched no site mapping)"
        );
        count.users = 11;
        count.unaccounted.push("Ann Lee".into());
        assert!(!count.reconciles());
        assert!(
            count.line().ends_with("+ 1 UNACCOUNTED FOR (Ann Lee)"),
            "{}",
            count.line()
        );
    }
}
