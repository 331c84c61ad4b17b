//! Matching source people to desk records: by external id first, then on the configured fields
//! against records not linked to any source person yet — never guessing between several — and
//! resolving line managers. Across pages it trusts the run's memory (outcomes and claims) over
//! the page's desk, which differs between a sync (earlier pages applied) and a preview (not).

use std::collections::{BTreeMap, BTreeSet};

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::Value;

use super::page::PagePlanner;
use super::select::Decision;
use super::{Claim, Claims, Outcome, external_key};
use crate::config::{MappingConfig, MatchField, RecordKind};
use crate::input::DeskRecord;
use crate::plan::Reference;

/// Lookups over the page desk's users or agents.
pub(crate) struct RecordIndex<'s> {
    pub(crate) records: &'s [DeskRecord],
    /// Lower-cased external id → records carrying it (as this connection's source id or in
    /// `azure_object_id`).
    by_external_id: BTreeMap<String, Vec<usize>>,
    /// (match field, trimmed lower-cased value) → records not linked to any source person yet.
    unlinked: BTreeMap<(MatchField, String), Vec<usize>>,
}

impl<'s> RecordIndex<'s> {
    pub(crate) fn new(records: &'s [DeskRecord], connection: ConnectionId, config: &MappingConfig) -> Self {
        let mut by_external_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut unlinked: BTreeMap<(MatchField, String), Vec<usize>> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            let mut keys = BTreeSet::new();
            if let Some(source) = record.source.as_ref().filter(|s| s.connection_id == connection) {
                keys.insert(external_key(&source.external_id));
            }
            if let Some(external_id) = record.text("azure_object_id") {
                keys.insert(external_key(external_id));
            }
            if keys.is_empty() {
                for (field, value) in match_values(record, config) {
                    unlinked.entry((field, value)).or_default().push(index);
                }
            }
            for key in keys {
                by_external_id.entry(key).or_default().push(index);
            }
        }
        Self {
            records,
            by_external_id,
            unlinked,
        }
    }

    pub(crate) fn by_object_id(&self, external_id: &str) -> &[usize] {
        self.by_external_id
            .get(&external_key(external_id))
            .map_or(&[], Vec::as_slice)
    }
}

/// A record's values on the configured match fields, as matching compares them.
fn match_values(record: &DeskRecord, config: &MappingConfig) -> Vec<(MatchField, String)> {
    config
        .imports
        .match_order
        .iter()
        .filter_map(|field| Some((*field, record.text(field.desk_field())?.trim().to_lowercase())))
        .collect()
}

/// How a source user was matched to a desk record of the page.
#[derive(Debug, Clone)]
pub(crate) enum Match {
    New,
    ByObjectId(usize),
    /// Matched an unlinked record on a field: the plan links it.
    ByField {
        index: usize,
        field: MatchField,
        value: String,
    },
    Conflict {
        rule: String,
        reason: String,
    },
}

impl Match {
    /// What the run remembers of the match.
    pub(crate) fn outcome(&self, index: &RecordIndex<'_>) -> Outcome {
        match self {
            Self::New => Outcome::New,
            Self::ByObjectId(i) | Self::ByField { index: i, .. } => Outcome::Existing(index.records[*i].id),
            Self::Conflict { .. } => Outcome::Conflict,
        }
    }
}

/// A desk record a match field points at: on the page's desk, or claimed earlier in the run.
#[derive(Debug, Clone, Copy)]
enum Candidate {
    Desk(usize),
    Claimed(RecordId),
}

/// Where a line manager reference stands when its report is planned.
pub(crate) enum ManagerRef {
    Resolved(Option<Reference>),
    /// Neither planned by this run yet nor on the desk: perhaps in a later page.
    Later,
}

impl PagePlanner<'_, '_> {
    fn index(&self, kind: RecordKind) -> &RecordIndex<'_> {
        match kind {
            RecordKind::User => &self.users,
            RecordKind::Agent => &self.agents,
        }
    }

    /// Matches every decided person of the page to a desk record. A desk record that fits
    /// several source users of the page links none of them: each is a conflict, so no run
    /// guesses and the next run sees the same ambiguity. A record claimed in an earlier page
    /// keeps its claim: a later user fitting it is a conflict.
    pub(crate) fn match_page(&mut self, decided: &mut [Decision<'_, '_>]) {
        let order = &self.settings.imports.match_order;
        let mut user_claims: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut agent_claims: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for decision in decided.iter_mut() {
            let external_id = &decision.user.external_id;
            if let Some(side) = decision.user_side.as_mut() {
                side.matched = find_match(
                    &self.users,
                    &self.run.user_claims,
                    "user",
                    external_id,
                    &side.fields,
                    order,
                );
                if let Match::ByField { index, .. } = side.matched {
                    user_claims.entry(index).or_default().push(external_id.clone());
                }
            }
            if let Some(side) = decision.agent_side.as_mut() {
                side.matched = find_match(
                    &self.agents,
                    &self.run.agent_claims,
                    "agent",
                    external_id,
                    &side.fields,
                    order,
                );
                if let Match::ByField { index, .. } = side.matched {
                    agent_claims.entry(index).or_default().push(external_id.clone());
                }
            }
        }
        for decision in decided.iter_mut() {
            if let Some(side) = decision.user_side.as_mut() {
                contest(&mut side.matched, &self.users, "user", &user_claims);
            }
            if let Some(side) = decision.agent_side.as_mut() {
                contest(&mut side.matched, &self.agents, "agent", &agent_claims);
            }
        }
        for decision in decided.iter() {
            self.record_outcome(decision);
        }
        self.remember_claims(RecordKind::User, &user_claims);
        self.remember_claims(RecordKind::Agent, &agent_claims);
    }

    /// Remembers the page's field matches for later pages, with the values the records had
    /// before this run.
    fn remember_claims(&mut self, kind: RecordKind, claims: &BTreeMap<usize, Vec<String>>) {
        let settings = self.settings;
        for (index, claimants) in claims {
            let record = &self.index(kind).records[*index];
            let (id, values) = (record.id, match_values(record, settings));
            let claim = Claim {
                label: record.label(),
                linked_to: match claimants.as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                },
            };
            let run = self.run.claims_mut(kind);
            for value in values {
                run.by_value.entry(value).or_default().push(id);
            }
            run.records.insert(id, claim);
        }
    }

    /// The line manager reference: only a person imported from the source (in this run, or
    /// before). What this run decided for the manager wins over the page's desk.
    pub(crate) fn manager_reference(&self, manager_id: Option<&str>, kind: RecordKind) -> ManagerRef {
        let Some(manager_id) = manager_id else {
            return ManagerRef::Resolved(None);
        };
        if let Some(outcome) = self.run.outcome(manager_id, kind) {
            return ManagerRef::Resolved(reference_to(outcome, manager_id, kind));
        }
        let index = self.index(kind);
        match index.by_object_id(manager_id) {
            [only] => ManagerRef::Resolved(Some(Reference::Id(index.records[*only].id))),
            [] if !self.run.people.contains(manager_id) => ManagerRef::Later,
            _ => ManagerRef::Resolved(None),
        }
    }
}

/// The reference to a person this run planned.
pub(crate) fn reference_to(outcome: Outcome, external_id: &str, kind: RecordKind) -> Option<Reference> {
    match outcome {
        Outcome::New => Some(match kind {
            RecordKind::User => Reference::NewUser(external_id.to_owned()),
            RecordKind::Agent => Reference::NewAgent(external_id.to_owned()),
        }),
        Outcome::Existing(id) => Some(Reference::Id(id)),
        Outcome::Conflict => None,
    }
}

fn find_match(
    index: &RecordIndex<'_>,
    claims: &Claims,
    entity: &str,
    external_id: &str,
    fields: &BTreeMap<String, (Value, String)>,
    order: &[MatchField],
) -> Match {
    match index.by_object_id(external_id) {
        [] => {}
        [only] => return Match::ByObjectId(*only),
        several => {
            return Match::Conflict {
                rule: format!("{entity} matching (Azure object id)"),
                reason: format!(
                    "{} desk {entity}s carry Azure object id {external_id} (ids {}); not linked, resolve by hand",
                    several.len(),
                    ids_text(index, several)
                ),
            };
        }
    }
    for field in order {
        let Some(value) = fields
            .get(field.desk_field())
            .and_then(|(v, _)| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let key = (*field, value.to_lowercase());
        // Records claimed earlier in the run count as they were before it, whether or not the
        // page's desk shows them linked.
        let on_desk = index
            .unlinked
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|i| !claims.records.contains_key(&index.records[**i].id))
            .map(|i| Candidate::Desk(*i));
        let claimed = claims
            .by_value
            .get(&key)
            .into_iter()
            .flatten()
            .map(|id| Candidate::Claimed(*id));
        let candidates: Vec<Candidate> = on_desk.chain(claimed).collect();
        match candidates.as_slice() {
            [] => continue,
            [Candidate::Desk(only)] => {
                return Match::ByField {
                    index: *only,
                    field: *field,
                    value: value.to_owned(),
                };
            }
            [Candidate::Claimed(id)] => {
                let (label, earlier) = claims
                    .records
                    .get(id)
                    .map(|c| (c.label.clone(), c.linked_to.clone()))
                    .unwrap_or_else(|| (format!("id {id}"), None));
                let reason = match earlier {
                    Some(earlier) => format!(
                        "desk {entity} {label} was linked earlier in this run to {earlier} and also fits on {} '{value}'; not linked, resolve by hand",
                        field.desk_field()
                    ),
                    None => format!(
                        "desk {entity} {label} fits several source users of this run, this one on {} '{value}'; not linked, resolve by hand",
                        field.desk_field()
                    ),
                };
                return Match::Conflict {
                    rule: format!("{entity} matching ({})", field.desk_field()),
                    reason,
                };
            }
            several => {
                let ids = several
                    .iter()
                    .map(|candidate| match candidate {
                        Candidate::Desk(i) => index.records[*i].id.to_string(),
                        Candidate::Claimed(id) => id.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Match::Conflict {
                    rule: format!("{entity} matching ({})", field.desk_field()),
                    reason: format!(
                        "{} desk {entity}s have {} '{value}' (ids {ids}); not linked, resolve by hand",
                        several.len(),
                        field.desk_field(),
                    ),
                };
            }
        }
    }
    Match::New
}

/// Turns a field match into a conflict when other source users of the page fit the same record.
fn contest(
    matched: &mut Match,
    index: &RecordIndex<'_>,
    entity: &str,
    claims: &BTreeMap<usize, Vec<String>>,
) {
    let Match::ByField {
        index: record,
        field,
        value,
    } = matched
    else {
        return;
    };
    let Some(claimants) = claims.get(record).filter(|c| c.len() > 1) else {
        return;
    };
    *matched = Match::Conflict {
        rule: format!("{entity} matching ({})", field.desk_field()),
        reason: format!(
            "desk {entity} {} fits {} Azure users on {} '{value}' ({}); not linked, resolve by hand",
            index.records[*record].label(),
            claimants.len(),
            field.desk_field(),
            claimants.join(", ")
        ),
    };
}

fn ids_text(index: &RecordIndex<'_>, indices: &[usize]) -> String {
    indices
        .iter()
        .map(|i| index.records[*i].id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
