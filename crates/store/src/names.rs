//! The names of the desk's records for listings people read: each record's `name`, looked up
//! once per listing, and a record gone from the desk said as such rather than left as a bare id.

use std::collections::HashMap;

use deskbridge_core::RecordId;
use serde_json::{Map, Value};

use crate::{Entity, Result, StoreTx};

/// Names looked up while one listing is built, each once.
#[derive(Debug, Default)]
pub struct RecordNames(HashMap<(Entity, i64), String>);

impl RecordNames {
    /// The name of `entity`'s record `id`, or "#id (gone)" when the desk no longer has it.
    pub async fn name(&mut self, tx: &mut StoreTx, entity: Entity, id: i64) -> Result<String> {
        if let Some(name) = self.0.get(&(entity, id)) {
            return Ok(name.clone());
        }
        let name = tx
            .get(entity, RecordId(id))
            .await?
            .and_then(|r| r.text("name").map(str::to_owned))
            .unwrap_or_else(|| format!("#{id} (gone)"));
        self.0.insert((entity, id), name.clone());
        Ok(name)
    }

    /// The names of the records a link list of `record` holds (its `field`: ids, or objects
    /// whose `key` is the id, as an agent's `roles` and `teams` are), in the list's order.
    pub async fn of_links(
        &mut self,
        tx: &mut StoreTx,
        record: &Map<String, Value>,
        field: &str,
        key: Option<&str>,
        entity: Entity,
    ) -> Result<Vec<Value>> {
        let ids: Vec<i64> = record
            .get(field)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|v| key.map_or(Some(v), |k| v.get(k)).and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        let mut names = Vec::with_capacity(ids.len());
        for id in ids {
            names.push(Value::String(self.name(tx, entity, id).await?));
        }
        Ok(names)
    }
}
