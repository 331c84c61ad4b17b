//! Matching a device to a desk asset: this connection's device id first, then the matching
//! field against the customer's assets no device of this connection is linked to — never
//! guessing between several, and never linking one asset to two devices. Across pages it trusts
//! the run's claims over the page's desk (a sync shows them linked, a preview does not).

use std::collections::BTreeMap;

use deskbridge_core::RecordId;
use serde_json::Value;

use super::input::present;
use super::page::{Decision, Page, of_customer};
use super::planner::Claim;
use crate::engine::external_key;

/// How a device's matching-field value compares: trimmed and lower-cased; `None` for values
/// that never match (empty, placeholders, lists).
pub(crate) fn match_key(value: &Value) -> Option<String> {
    if !present(value) {
        return None;
    }
    let text = match value {
        Value::String(text) => text.trim().to_lowercase(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

pub(super) enum Match {
    New,
    BySource(usize),
    ByField { index: usize, value: String },
    Conflict { rule: String, reason: String },
}

impl Page<'_, '_> {
    /// Matches every decided device of the page. A desk asset several devices of the page fit
    /// links none of them (each is a conflict); one claimed earlier in the run stays claimed.
    pub(crate) fn match_all(&mut self, decided: &mut [Decision<'_>]) {
        let mut fits: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for decision in decided.iter_mut() {
            decision.matched = self.find(decision);
            if let Match::ByField { index, .. } = decision.matched {
                fits.entry(index)
                    .or_default()
                    .push(decision.device.external_id.clone());
            }
        }
        let field = &self.settings.match_field;
        for decision in decided.iter_mut() {
            let Match::ByField { index, value } = &decision.matched else {
                continue;
            };
            let Some(devices) = fits.get(index).filter(|d| d.len() > 1) else {
                continue;
            };
            decision.matched = Match::Conflict {
                rule: format!("asset matching field '{field}'"),
                reason: format!(
                    "desk asset {} fits {} devices on {field} '{value}' ({}); not linked, resolve by hand",
                    self.desk.assets[*index].id,
                    devices.len(),
                    devices.join(", ")
                ),
            };
        }
        for (index, devices) in fits {
            let asset = &self.desk.assets[index];
            let claim = Claim {
                customer_id: asset.customer_id,
                linked_to: match devices.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                },
            };
            if let Some(key) = asset.fields.get(field).and_then(match_key) {
                self.run.claimed_values.entry(key).or_default().push(asset.id);
            }
            self.run.claims.insert(asset.id, claim);
        }
    }

    fn find(&self, decision: &Decision<'_>) -> Match {
        let device = decision.device;
        match self
            .by_source
            .get(&external_key(&device.external_id))
            .map_or(&[][..], Vec::as_slice)
        {
            [] => {}
            [only] => return Match::BySource(*only),
            several => {
                return Match::Conflict {
                    rule: "asset matching (device id)".into(),
                    reason: format!(
                        "{} desk assets carry device id {} from this connection (ids {}); not linked, resolve by hand",
                        several.len(),
                        device.external_id,
                        several
                            .iter()
                            .map(|i| self.desk.assets[*i].id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            }
        }
        let field = &self.settings.match_field;
        let Some((value, key)) = decision.fields.get(field).and_then(|(value, _)| {
            let shown = value
                .as_str()
                .map_or_else(|| value.to_string(), |text| text.trim().to_owned());
            Some((shown, match_key(value)?))
        }) else {
            return Match::New;
        };
        let rule = format!("asset matching field '{field}'");
        let on_desk: &[usize] = self.unlinked.get(&key).map_or(&[], Vec::as_slice);
        let claimed: Vec<RecordId> = self
            .run
            .claimed_values
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.run
                    .claims
                    .get(id)
                    .is_some_and(|claim| of_customer(claim.customer_id, self.customer_id))
            })
            .copied()
            .collect();
        match (on_desk, claimed.as_slice()) {
            ([], []) => Match::New,
            ([index], []) => Match::ByField { index: *index, value },
            ([], [id]) => {
                let reason = match self.run.claims.get(id).and_then(|c| c.linked_to.as_deref()) {
                    Some(earlier) => format!(
                        "desk asset {id} was linked earlier in this run to device {earlier} and also fits on {field} '{value}'; not linked, resolve by hand"
                    ),
                    None => format!(
                        "desk asset {id} fits several devices of this run, this one on {field} '{value}'; not linked, resolve by hand"
                    ),
                };
                Match::Conflict { rule, reason }
            }
            (desk, run) => {
                let ids: Vec<String> = desk
                    .iter()
                    .map(|i| self.desk.assets[*i].id.to_string())
                    .chain(run.iter().map(ToString::to_string))
                    .collect();
                Match::Conflict {
                    rule,
                    reason: format!(
                        "{} desk assets have {field} '{value}' (ids {}); not linked, resolve by hand",
                        ids.len(),
                        ids.join(", ")
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matching_keys_ignore_case_and_blanks_and_never_come_from_no_value() {
        assert_eq!(match_key(&json!("  AB12 ")), Some("ab12".into()));
        assert_eq!(match_key(&json!(42)), Some("42".into()));
        for nothing in [
            json!(""),
            json!("   "),
            json!(null),
            json!("0001-01-01T00:00:00Z"),
            json!("9999-12-31T23:59:59Z"),
            json!(["AB12"]),
        ] {
            assert_eq!(match_key(&nothing), None, "{nothing}");
        }
    }
}
