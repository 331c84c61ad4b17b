//! Splitting a plan into pages for applying one transaction at a time, so that every symbolic
//! reference points to a record created in the same page or an earlier one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde_json::Value;

use crate::plan::{Action, Change, Entity, Plan, Reference};

impl Plan {
    /// The writing changes in pages of at most `max_changes` (at least one), in plan order
    /// except where a change refers to a record created later: then the creating change moves
    /// first. Records that refer to each other in a cycle (two new agents managing each other)
    /// share one page, which may then be larger than `max_changes`; apply resolves references
    /// at the end of a page, as [`crate::apply_to_snapshot`] does.
    pub fn pages(&self, max_changes: usize) -> Vec<Vec<Change>> {
        let max_changes = max_changes.max(1);
        let writes: Vec<&Change> = self.changes.iter().filter(|c| c.action.writes()).collect();
        let created: BTreeMap<(Entity, String), usize> = writes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.action == Action::Create)
            .map(|(index, c)| ((c.entity, c.external_id.to_lowercase()), index))
            .collect();
        let mut waiting_on = vec![0usize; writes.len()];
        let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); writes.len()];
        for (index, change) in writes.iter().enumerate() {
            // An update of a record the same plan creates (a line manager linked at a tenant's
            // end) waits for the create.
            if change.action != Action::Create
                && let Some(&creator) = created.get(&(change.entity, change.external_id.to_lowercase()))
            {
                waiting_on[index] += 1;
                unblocks[creator].push(index);
            }
            let values = change.fields.values().map(|f| &f.after);
            let nested = values.flat_map(|value| match value {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            });
            for value in nested {
                let Some(key) = created_key(value) else { continue };
                if let Some(&creator) = created.get(&key)
                    && creator != index
                {
                    waiting_on[index] += 1;
                    unblocks[creator].push(index);
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> = (0..writes.len())
            .filter(|i| waiting_on[*i] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(writes.len());
        let mut placed = vec![false; writes.len()];
        while let Some(Reverse(index)) = ready.pop() {
            order.push(index);
            placed[index] = true;
            for &next in &unblocks[index] {
                waiting_on[next] -= 1;
                if waiting_on[next] == 0 {
                    ready.push(Reverse(next));
                }
            }
        }
        let mut pages: Vec<Vec<Change>> = order
            .chunks(max_changes)
            .map(|chunk| chunk.iter().map(|i| writes[*i].clone()).collect())
            .collect();
        let cycle: Vec<Change> = (0..writes.len())
            .filter(|i| !placed[*i])
            .map(|i| writes[i].clone())
            .collect();
        if !cycle.is_empty() {
            pages.push(cycle);
        }
        pages
    }
}

/// The create a symbolic reference waits for, keyed like the creating change.
fn created_key(value: &Value) -> Option<(Entity, String)> {
    if !value.is_object() {
        return None;
    }
    match Reference::from_value(value)? {
        Reference::Id(_) => None,
        Reference::NewSite { customer_id, name } => {
            Some((Entity::Site, format!("{customer_id}/{name}").to_lowercase()))
        }
        Reference::NewUser(object_id) => Some((Entity::User, object_id.to_lowercase())),
        Reference::NewAgent(object_id) => Some((Entity::Agent, object_id.to_lowercase())),
        Reference::NewLicence { customer_id, sku_id } => {
            let customer = customer_id.map_or_else(|| "-".to_owned(), |c| c.to_string());
            Some((Entity::Licence, format!("{customer}/{sku_id}").to_lowercase()))
        }
        Reference::NewAssetType(name) => Some((Entity::AssetType, name.to_lowercase())),
    }
}
