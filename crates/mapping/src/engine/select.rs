//! Deciding: which site mappings select a source user (the first user mapping and the first
//! agent mapping, in evaluation order), on which site, and with which mapped field values.

use std::collections::BTreeMap;

use deskbridge_odata::EvalOptions;
use serde_json::{Value, json};

use super::NewSite;
use super::matching::Match;
use super::page::PagePlanner;
use crate::config::{ExternalUsers, SiteTarget, UnmatchedSite};
use crate::fields::{FieldKind, convert, read_path, read_source};
use crate::input::SourceUser;
use crate::plan::{Action, Change, Entity, Reference};
use crate::validate::{CompiledField, CompiledMapping};

/// The user record a person becomes.
pub(crate) struct UserSide<'c> {
    pub(crate) mapping: &'c CompiledMapping,
    pub(crate) site: Reference,
    pub(crate) why: String,
    pub(crate) fields: BTreeMap<String, (Value, String)>,
    pub(crate) matched: Match,
}

/// The agent record a person becomes.
pub(crate) struct AgentSide<'c> {
    pub(crate) mapping: &'c CompiledMapping,
    pub(crate) why: String,
    pub(crate) fields: BTreeMap<String, (Value, String)>,
    pub(crate) matched: Match,
}

/// What the mappings decided for one person of a page.
pub(crate) struct Decision<'u, 'c> {
    pub(crate) user: &'u SourceUser,
    pub(crate) user_side: Option<UserSide<'c>>,
    pub(crate) agent_side: Option<AgentSide<'c>>,
    /// An agent this connection imported that no agent mapping selects any more: under full
    /// role management its roles still follow its groups (and none left makes it inactive).
    pub(crate) orphan_agent: Option<usize>,
}

/// Why a mapping did or did not select a user.
enum Selection {
    Selected(String),
    NotSelected(String),
}

pub(crate) enum SiteMiss {
    /// The mapping does not apply; try the next one.
    TryNext(String),
    /// The mapping applies and says not to import.
    Skip(String),
}

impl<'c> PagePlanner<'_, 'c> {
    /// Which user mapping and which agent mapping select the person (the first of each, in
    /// evaluation order), with their fields; a person no user mapping imports is reported as a
    /// `skip`. `None` when there is nothing to plan for the person.
    pub(crate) fn decide<'u>(
        &mut self,
        user: &'u SourceUser,
        applicable: &[&'c CompiledMapping],
    ) -> Option<Decision<'u, 'c>> {
        let user_fields = self.mapped_fields(user, &self.config.user_fields);
        let mut explanations = Vec::new();
        let mut user_side = None;
        let mut skip: Option<(String, String)> = None;
        let mut agent_side = None;
        let config = self.config;
        for compiled in applicable.iter().copied() {
            let done_user = user_side.is_some() || skip.is_some();
            if (compiled.is_agent() && agent_side.is_some()) || (!compiled.is_agent() && done_user) {
                continue;
            }
            let selection = match self.selects(compiled, user) {
                Ok(selection) => selection,
                Err(message) => {
                    self.error(&user.external_id, message);
                    return None;
                }
            };
            let why = match selection {
                Selection::Selected(why) => why,
                Selection::NotSelected(why_not) => {
                    if !compiled.is_agent() {
                        explanations.push(format!("{}: {why_not}", compiled.rule()));
                    }
                    continue;
                }
            };
            if let SiteTarget::Agent { creation_type, .. } = &compiled.mapping.target {
                let mut fields = self.mapped_fields(user, &config.agent_fields);
                if let Some(creation_type) = creation_type {
                    fields.insert(
                        "creation_type".into(),
                        (json!(creation_type), format!("{} creation type", compiled.rule())),
                    );
                }
                agent_side = Some(AgentSide {
                    mapping: compiled,
                    why,
                    fields,
                    matched: Match::New,
                });
                continue;
            }
            let mut fields = user_fields.clone();
            for (field, value) in &compiled.values {
                fields.insert(
                    field.clone(),
                    (value.clone(), format!("value applied by {}", compiled.rule())),
                );
            }
            match self.resolve_site(compiled, user, &fields) {
                Ok((site, site_why)) => {
                    user_side = Some(UserSide {
                        mapping: compiled,
                        site,
                        why: format!("{why}; {site_why}"),
                        fields,
                        matched: Match::New,
                    });
                }
                Err(SiteMiss::TryNext(why_not)) => {
                    explanations.push(format!("{}: {why_not}", compiled.rule()))
                }
                Err(SiteMiss::Skip(reason)) => skip = Some((compiled.rule(), format!("{why}, but {reason}"))),
            }
        }
        // The `*agent*` site imports people as agents *and* users (the guide): an agent that no
        // user mapping selects becomes a user on the main site of the tenant's customer. A user
        // mapping that selected the person and said "do not import" is reported either way.
        if user_side.is_none()
            && skip.is_none()
            && let Some(agent) = &agent_side
        {
            match self.main_site() {
                Some(site) => {
                    user_side = Some(UserSide {
                        mapping: agent.mapping,
                        site: Reference::Id(site.0),
                        why: format!(
                            "{}; a user too, as the agent site imports agents as users: no user mapping selects \
                             them, so the main site '{}' ({}) of the tenant's customer",
                            agent.why, site.1, site.0
                        ),
                        fields: user_fields,
                        matched: Match::New,
                    });
                }
                None => explanations.push(format!(
                    "{}: the agent site imports agents as users too, but the tenant's customer has no main site",
                    agent.mapping.rule()
                )),
            }
        }
        if user_side.is_none() && (agent_side.is_none() || skip.is_some()) {
            let (rule, reason) = skip.unwrap_or_else(|| {
                let detail = if explanations.is_empty() {
                    format!("no site mapping applies to tenant {}", self.tenant_id)
                } else {
                    explanations.join("; ")
                };
                (
                    "site mappings".to_owned(),
                    format!("{} matched no site mapping ({detail})", user.label()),
                )
            });
            let existing = self
                .users
                .by_object_id(&user.external_id)
                .first()
                .map(|i| self.users.records[*i].label());
            let reason = match existing {
                Some(label) => {
                    format!("{reason}. Not imported; the existing desk user {label} is left as it is.")
                }
                None => format!("{reason}. Not imported."),
            };
            let change = Change {
                entity: Entity::User,
                external_id: user.external_id.clone(),
                name: Some(user.label()),
                action: Action::Skip,
                fields: BTreeMap::new(),
                rule,
                reason,
            };
            self.push(change);
        }
        let orphan_agent = if agent_side.is_none() && self.settings.advanced.full_role_management {
            match self.agents.by_object_id(&user.external_id) {
                [only] => Some(*only),
                _ => None,
            }
        } else {
            None
        };
        if user_side.is_none() && agent_side.is_none() && orphan_agent.is_none() {
            return None;
        }
        Some(Decision {
            user,
            user_side,
            agent_side,
            orphan_agent,
        })
    }

    /// The main site of the tenant's customer (id and name), where the agent site's people go as
    /// users when no user mapping selects them.
    fn main_site(&self) -> Option<(deskbridge_core::RecordId, String)> {
        let customer = self.customer_id?;
        self.snapshot
            .sites
            .iter()
            .find(|s| s.customer_id == customer && s.is_main)
            .map(|s| (s.id, s.name.clone()))
    }

    fn selects(&self, compiled: &CompiledMapping, user: &SourceUser) -> Result<Selection, String> {
        let mapping = &compiled.mapping;
        let mut because = Vec::new();
        if let Some(only) = &mapping.tenant_id {
            if !only.eq_ignore_ascii_case(&self.tenant_id) {
                return Ok(Selection::NotSelected(format!("only for tenant {only}")));
            }
            because.push(format!("tenant {only}"));
        }
        if user.is_external() {
            match mapping.external_users {
                ExternalUsers::Exclude => {
                    return Ok(Selection::NotSelected("external users are not included".into()));
                }
                ExternalUsers::IncludeIfLicensed if user.sku_ids.is_empty() => {
                    return Ok(Selection::NotSelected(
                        "external users need a licence and this one has none".into(),
                    ));
                }
                ExternalUsers::IncludeIfLicensed => because.push("licensed external user".into()),
                ExternalUsers::Include => because.push("external users included".into()),
            }
        }
        if let Some(group) = &mapping.group {
            if !user.in_group(&group.name, group.nested) {
                let how = if group.nested {
                    "a member (directly or nested) of"
                } else {
                    "a direct member of"
                };
                return Ok(Selection::NotSelected(format!(
                    "not {how} group '{}'",
                    group.name
                )));
            }
            because.push(format!("member of group '{}'", group.name));
        }
        if let Some(filter) = &compiled.filter {
            let matched = deskbridge_odata::evaluate_object(filter, &user.properties, &EvalOptions::graph())
                .map_err(|error| {
                    format!(
                        "{}: the filter `{filter}` cannot be evaluated: {error}",
                        compiled.rule()
                    )
                })?;
            if !matched {
                return Ok(Selection::NotSelected(format!(
                    "filter `{filter}` does not match"
                )));
            }
            because.push(format!("filter `{filter}` matches"));
        }
        let conditions = if because.is_empty() {
            "no conditions (catch-all)".to_owned()
        } else {
            because.join(", ")
        };
        Ok(Selection::Selected(format!(
            "selected by {} ({conditions})",
            compiled.rule()
        )))
    }

    fn resolve_site(
        &mut self,
        compiled: &CompiledMapping,
        user: &SourceUser,
        fields: &BTreeMap<String, (Value, String)>,
    ) -> Result<(Reference, String), SiteMiss> {
        match &compiled.mapping.target {
            SiteTarget::ExistingSite { site_id } => Ok((Reference::Id(*site_id), format!("site {site_id}"))),
            SiteTarget::CustomerByField { customer_id, field } => {
                let value = read_path(&user.properties, field)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SiteMiss::TryNext(format!("no value in '{field}' to name a site")))?;
                let key = (*customer_id, value.to_lowercase());
                // A site this run creates is named by reference even once a page created it:
                // the desk of a later page shows it in a sync and not in a preview.
                let planned = self.run.new_sites.contains_key(&key);
                if let Some(site) = self.sites_by_name.get(&key).filter(|_| !planned) {
                    return Ok((
                        Reference::Id(site.id),
                        format!("site '{}' ({}) from {field}", site.name, site.id),
                    ));
                }
                let name = self
                    .run
                    .new_sites
                    .entry(key)
                    .or_insert_with(|| NewSite {
                        name: value.to_owned(),
                        rule: compiled.rule(),
                        emitted: false,
                    })
                    .name
                    .clone();
                Ok((
                    Reference::NewSite {
                        customer_id: *customer_id,
                        name: name.clone(),
                    },
                    format!("new site '{name}' under customer {customer_id} from {field}"),
                ))
            }
            SiteTarget::MatchSiteField {
                customer_id,
                site_field,
                user_field,
                unmatched,
            } => {
                let wanted = fields
                    .get(user_field)
                    .and_then(|(value, _)| value.as_str())
                    .map(str::trim);
                let candidates: Vec<_> = match wanted.filter(|v| !v.is_empty()) {
                    None => Vec::new(),
                    Some(wanted) => self
                        .snapshot
                        .sites
                        .iter()
                        .filter(|site| customer_id.is_none_or(|c| c == site.customer_id))
                        // Sites this run creates were not there before it: the same in a sync
                        // (where a later page's desk shows them) and in a preview.
                        .filter(|site| {
                            !self
                                .run
                                .new_sites
                                .contains_key(&(site.customer_id, site.name.to_lowercase()))
                        })
                        .filter(|site| {
                            let value = if site_field == "name" {
                                Some(site.name.as_str())
                            } else {
                                site.fields.get(site_field).and_then(Value::as_str)
                            };
                            value.is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
                        })
                        .collect(),
                };
                let shown = wanted.unwrap_or("(empty)");
                match candidates.as_slice() {
                    [site] => Ok((
                        Reference::Id(site.id),
                        format!(
                            "site '{}' ({}) whose {site_field} equals {user_field} '{shown}'",
                            site.name, site.id
                        ),
                    )),
                    [] => match unmatched {
                        UnmatchedSite::DefaultSite { site_id } => Ok((
                            Reference::Id(*site_id),
                            format!(
                                "no site's {site_field} equals {user_field} '{shown}', so the default site {site_id}"
                            ),
                        )),
                        UnmatchedSite::DoNotImport => Err(SiteMiss::Skip(format!(
                            "no site's {site_field} equals {user_field} '{shown}' and the mapping says do not import"
                        ))),
                    },
                    several => Err(SiteMiss::Skip(format!(
                        "{} sites have {site_field} '{shown}' (ids {}); the site is not guessed",
                        several.len(),
                        several
                            .iter()
                            .map(|s| s.id.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
            SiteTarget::ImportedCustomer { property, unmatched } => {
                let parent = read_path(&user.properties, property)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty());
                let imported = parent.and_then(|id| self.snapshot.imported_customers.get(&id.to_lowercase()));
                let why_not = match (parent, imported) {
                    (_, Some(customer)) => match customer.main_site {
                        Some(site) => {
                            return Ok((
                                Reference::Id(site),
                                format!(
                                    "the main site ({site}) of customer '{}' ({}), imported from {property} {}",
                                    customer.name,
                                    customer.customer_id,
                                    parent.unwrap_or_default()
                                ),
                            ));
                        }
                        None => format!(
                            "customer '{}' ({}), imported from {property}, has no main site",
                            customer.name, customer.customer_id
                        ),
                    },
                    (Some(id), None) => format!("no customer was imported from {property} {id}"),
                    (None, None) => format!("no {property}"),
                };
                match unmatched {
                    UnmatchedSite::DefaultSite { site_id } => Ok((
                        Reference::Id(*site_id),
                        format!("{why_not}, so the default site {site_id}"),
                    )),
                    UnmatchedSite::DoNotImport => Err(SiteMiss::Skip(format!(
                        "{why_not} and the mapping says do not import"
                    ))),
                }
            }
            SiteTarget::Agent { .. } => Err(SiteMiss::TryNext("the agent site".into())),
        }
    }

    /// Field mappings evaluated for one user: desk field → (value, where it came from). The
    /// manager and team fields are resolved later; conversion problems become plan errors.
    pub(crate) fn mapped_fields(
        &mut self,
        user: &SourceUser,
        mappings: &[CompiledField],
    ) -> BTreeMap<String, (Value, String)> {
        let mut fields = BTreeMap::new();
        for field in mappings {
            if field.kind == FieldKind::Manager {
                continue;
            }
            let origin = match &field.source {
                crate::config::FieldSource::Property(path) => {
                    format!("field mapping #{} ({path})", field.number)
                }
                crate::config::FieldSource::Template(template) => {
                    format!("field mapping #{} (\"{template}\")", field.number)
                }
            };
            let raw = read_source(&field.source, &user.properties);
            match convert(&field.kind, &raw) {
                Ok(value) => {
                    fields.insert(field.target.clone(), (value, origin));
                }
                Err(problem) => self.error(
                    &user.external_id,
                    format!("{}: {origin}: {problem}; field left as it is", field.target),
                ),
            }
        }
        fields
    }
}
