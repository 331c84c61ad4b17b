//! The mapping configuration an administrator edits, stored as JSON per connection.
//!
//! Every field has a serde default so that an older, smaller document still loads; `version`
//! says which shape wrote it.

use std::collections::BTreeMap;

use deskbridge_core::RecordId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The configuration format this crate writes. Older versions are upgraded on load.
pub const CONFIG_VERSION: u32 = 1;

/// Everything that decides who lands where with what rights, for one connection. The same
/// configuration is applied to every tenant the connection reads (CSP: one per customer
/// tenant; a site mapping may be restricted to one tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingConfig {
    pub version: u32,
    /// Source user property → desk user field. Each desk field at most once.
    pub user_fields: Vec<FieldMapping>,
    /// Source user property → desk agent field. Each desk field at most once.
    pub agent_fields: Vec<FieldMapping>,
    /// Evaluated in (sequence, id) order; the first matching user mapping decides the user's
    /// site, and separately the first matching agent mapping decides whether they are an agent.
    pub site_mappings: Vec<SiteMapping>,
    pub advanced: AdvancedMappings,
    pub licence_management: LicenceManagement,
    pub service_accounts: Option<ServiceAccounts>,
    pub imports: ImportOptions,
    pub followers: FollowerOptions,
    pub circuit_breaker: CircuitBreaker,
    /// Fields never overwritten on any record of this connection.
    pub field_locks: Vec<FieldLock>,
    /// Locks on single records, by Azure object id. Locks an administrator sets on the desk
    /// record itself ([`crate::RecordLocks`]) apply as well.
    pub record_locks: Vec<RecordLock>,
    /// How managed devices become desk assets; `None`: devices are not imported.
    pub assets: Option<crate::assets::AssetMappings>,
    /// Custom table syncs: source tables into desk custom tables (a `custom_tables` run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_tables: Vec<crate::rows::CustomTableMapping>,
    /// How the source's organisations (Dynamics 365: accounts) become desk customers (a
    /// `customers` run); `None`: no customers are imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<crate::customers::CustomerMappings>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            user_fields: Vec::new(),
            agent_fields: Vec::new(),
            site_mappings: Vec::new(),
            advanced: AdvancedMappings::default(),
            licence_management: LicenceManagement::default(),
            service_accounts: None,
            imports: ImportOptions::default(),
            followers: FollowerOptions::default(),
            circuit_breaker: CircuitBreaker::default(),
            field_locks: Vec::new(),
            record_locks: Vec::new(),
            assets: None,
            custom_tables: Vec::new(),
            customers: None,
        }
    }
}

impl MappingConfig {
    /// What a new connection starts with, like the guides' "generate mappings": the usual field
    /// mappings and one catch-all mapping that imports every member user to `main_site`.
    pub fn generated(main_site: RecordId) -> Self {
        let user = |source: &str, target: &str| FieldMapping::property(source, target);
        Self {
            user_fields: vec![
                user("displayName", "name"),
                user("givenName", "first_name"),
                user("surname", "last_name"),
                user("mail", "email"),
                user("userPrincipalName", "network_login"),
                user("businessPhones", "phone"),
                user("mobilePhone", "mobile"),
                user("jobTitle", "job_title"),
                user("department", "department"),
                user("employeeId", "employee_id"),
            ],
            agent_fields: vec![
                user("displayName", "name"),
                user("mail", "email"),
                user("userPrincipalName", "network_login"),
                user("businessPhones", "phone"),
                user("jobTitle", "job_title"),
                user("department", "department"),
            ],
            site_mappings: vec![SiteMapping {
                id: 1,
                name: "All users".into(),
                sequence: 50,
                target: SiteTarget::ExistingSite { site_id: main_site },
                ..SiteMapping::default()
            }],
            ..Self::default()
        }
    }
}

impl MappingConfig {
    /// Adds the line manager (`manager` → `line_manager_id`) to the user and agent fields, as a
    /// directory source's new connection has it: users link to users and agents to agents.
    pub fn with_line_managers(mut self) -> Self {
        let manager = FieldMapping::property("manager", "line_manager_id");
        for fields in [&mut self.user_fields, &mut self.agent_fields] {
            if !fields.iter().any(|f| f.target == manager.target) {
                fields.push(manager.clone());
            }
        }
        self
    }

    /// Every Azure group the configuration names: site-mapping filters, group → role / team /
    /// CAB mappings and the service-account group.
    pub fn group_names(&self) -> std::collections::BTreeSet<String> {
        let advanced = &self.advanced;
        let records = advanced
            .agent_roles
            .iter()
            .chain(&advanced.user_roles)
            .chain(&advanced.teams);
        self.site_mappings
            .iter()
            .filter_map(|m| m.group.as_ref().map(|g| g.name.clone()))
            .chain(records.map(|r| r.group.clone()))
            .chain(advanced.cabs.iter().map(|c| c.group.clone()))
            .chain(self.service_accounts.iter().filter_map(|s| s.group.clone()))
            .collect()
    }

    /// The source properties (their first path segment) that the field mappings and the site
    /// mappings' filters and targets read: what a source must know the types of before the
    /// configuration is validated. A filter that does not parse names none (validation says why).
    pub fn properties_read(&self) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut add = |path: &str| {
            if let Some(root) = path.split('/').next().filter(|r| !r.is_empty()) {
                out.insert(root.to_owned());
            }
        };
        for field in self.user_fields.iter().chain(&self.agent_fields) {
            match &field.source {
                FieldSource::Property(path) => add(path),
                FieldSource::Template(template) => crate::fields::template_properties(template)
                    .into_iter()
                    .for_each(&mut add),
            }
        }
        for mapping in &self.site_mappings {
            if let Some(expr) = mapping
                .filter
                .as_deref()
                .and_then(|f| deskbridge_odata::parse(f).ok())
            {
                expr.root_properties().iter().for_each(|p| add(p));
            }
            match &mapping.target {
                SiteTarget::CustomerByField { field, .. } => add(field),
                SiteTarget::ImportedCustomer { property, .. } => add(property),
                _ => {}
            }
        }
        out
    }
}

impl MappingConfig {
    /// CSP's "generate mappings" for one tenant: a catch-all mapping of the tenant's member
    /// users to its customer's main site, added unless one for that tenant already exists.
    /// Returns the mapping's id.
    pub fn add_tenant_mapping(&mut self, tenant_id: &str, customer_name: &str, main_site: RecordId) -> u32 {
        if let Some(existing) = self.site_mappings.iter().find(|m| {
            m.tenant_id
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(tenant_id))
                && m.target == SiteTarget::ExistingSite { site_id: main_site }
        }) {
            return existing.id;
        }
        let id = self.site_mappings.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        self.site_mappings.push(SiteMapping {
            id,
            name: format!("{customer_name} (all users)"),
            sequence: 50,
            tenant_id: Some(tenant_id.to_owned()),
            target: SiteTarget::ExistingSite { site_id: main_site },
            ..SiteMapping::default()
        });
        id
    }
}

/// One field mapping: where the value comes from and which desk field receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub source: FieldSource,
    /// A desk field name (`email`, `line_manager_id`, …) or `custom:<name>`. For agents, `team`
    /// is accepted as another name for `default_team_id`.
    pub target: String,
}

impl FieldMapping {
    pub fn property(path: &str, target: &str) -> Self {
        Self {
            source: FieldSource::Property(path.into()),
            target: target.into(),
        }
    }
}

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    /// A source user property, `/` for nested ones (`onPremisesExtensionAttributes/extensionAttribute1`).
    /// `manager` is the user's manager (only for `line_manager_id`). A collection gives its first
    /// element to a text field.
    Property(String),
    /// Text with `{property}` placeholders, e.g. `"{givenName} {surname}"`. Missing properties
    /// read as empty; a result that is empty after trimming is null.
    Template(String),
}

/// A site mapping: which users it selects, and where it puts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteMapping {
    /// Stable id, unique within the configuration; breaks ties between equal sequences.
    pub id: u32,
    pub name: String,
    /// Lower first.
    pub sequence: i32,
    pub target: SiteTarget,
    /// Only users of this tenant (CSP: a customer with several tenants). None: every tenant.
    pub tenant_id: Option<String>,
    pub group: Option<GroupFilter>,
    /// An OData `$filter` over the user's source properties, e.g. `officeLocation eq 'London'`.
    pub filter: Option<String>,
    pub external_users: ExternalUsers,
    /// A user role given to users this mapping imports.
    pub user_role_id: Option<RecordId>,
    /// Desk user field → value, applied to users this mapping imports (after field mappings).
    pub values: BTreeMap<String, Value>,
}

impl Default for SiteMapping {
    fn default() -> Self {
        Self {
            id: 0,
            name: String::new(),
            sequence: 50,
            target: SiteTarget::ExistingSite { site_id: RecordId(0) },
            tenant_id: None,
            group: None,
            filter: None,
            external_users: ExternalUsers::Exclude,
            user_role_id: None,
            values: BTreeMap::new(),
        }
    }
}

/// The guides' three kinds of site mapping, plus the `*agent*` site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SiteTarget {
    /// Kind 1: every selected user goes to this site.
    ExistingSite { site_id: RecordId },
    /// Kind 2: one site per distinct value of `field` (a source property) under the customer,
    /// created when missing (matched by name, ignoring case). A user without a value does not
    /// match this mapping.
    CustomerByField { customer_id: RecordId, field: String },
    /// Kind 3: the site whose `site_field` (`name` or `custom:<name>`) equals the user's desk
    /// field `user_field` (ignoring case), among the customer's sites (or all sites).
    MatchSiteField {
        customer_id: Option<RecordId>,
        site_field: String,
        user_field: String,
        unmatched: UnmatchedSite,
    },
    /// The main site of the desk customer this connection imported (a `customers` run) from the
    /// source row whose id is the person's `property` (Dynamics 365: `_parentcustomerid_value`,
    /// the contact's parent account). People without one, or whose row was not imported, go as
    /// `unmatched` says (the guide's default site).
    ImportedCustomer {
        property: String,
        unmatched: UnmatchedSite,
    },
    /// The `*agent*` site: selected users are imported as agents.
    Agent {
        licence_type: LicenceTypeChoice,
        /// Written to the agent's `creation_type` when set.
        creation_type: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum UnmatchedSite {
    DefaultSite { site_id: RecordId },
    DoNotImport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceTypeChoice {
    Named,
    Concurrent,
    /// New agents are concurrent; existing agents keep theirs.
    NoChange,
}

/// Membership of an Azure group by its exact display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFilter {
    pub name: String,
    /// Also accept members of groups nested inside it (transitive membership).
    #[serde(default)]
    pub nested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalUsers {
    /// Guests (`userType` Guest or `#EXT#` in the user principal name) never match.
    #[default]
    Exclude,
    Include,
    /// Guests match only when they hold at least one licence.
    IncludeIfLicensed,
}

/// Group-driven roles, teams and CABs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvancedMappings {
    pub agent_roles: Vec<GroupToRecord>,
    pub user_roles: Vec<GroupToRecord>,
    pub teams: Vec<GroupToRecord>,
    /// Remove an agent from a team of `teams` when none of that team's groups holds them
    /// (and from all of them when the agent is not found on a complete full read).
    pub remove_agents_from_unmapped_teams: bool,
    pub cabs: Vec<GroupToCab>,
    /// Agents' roles become exactly the mapped ones; an agent left with none is made inactive.
    pub full_role_management: bool,
    pub role_for_users_without_manager: Option<RecordId>,
    /// Count nested-group membership for these group mappings.
    pub nested_groups: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupToRecord {
    pub group: String,
    pub id: RecordId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupToCab {
    pub group: String,
    pub cab_id: RecordId,
    #[serde(default)]
    pub cab_role_id: Option<RecordId>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LicenceManagement {
    pub enabled: bool,
    /// Agent roles that give a named licence; every other agent is concurrent.
    pub named_licence_roles: Vec<RecordId>,
    /// Agent roles that make an agent inactive.
    pub inactive_roles: Vec<RecordId>,
}

/// Users outside `group` become service accounts; with `required_skus`, so do users holding
/// none of those SKUs. Both conditions apply when both are set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceAccounts {
    pub group: Option<String>,
    pub required_skus: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchField {
    Email,
    NetworkLogin,
    Name,
}

impl MatchField {
    pub fn desk_field(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::NetworkLogin => "network_login",
            Self::Name => "name",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// After the Azure object id, the fields that match an unlinked desk record, in order.
    pub match_order: Vec<MatchField>,
    /// Deactivate records not found on a complete full read, and records deleted per delta.
    pub deactivate_not_found: bool,
    /// Desk `active` follows `accountEnabled`.
    pub sync_account_enabled: bool,
    /// Tickets of agents this run makes inactive go back to unassigned.
    pub reassign_tickets_of_inactive_agents: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            match_order: vec![MatchField::Email, MatchField::NetworkLogin],
            deactivate_not_found: false,
            sync_account_enabled: true,
            reassign_tickets_of_inactive_agents: false,
        }
    }
}

/// Distribution groups as ticket followers (see [`crate::followers_for_group`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowerOptions {
    pub enabled: bool,
    pub mode: FollowerMode,
    /// The most members added in `members` mode.
    pub member_cap: u32,
}

impl Default for FollowerOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: FollowerMode::GroupAddress,
            member_cap: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowerMode {
    /// The list's own address follows; membership changes apply immediately, no ticket access.
    GroupAddress,
    /// Each member follows: imported users as users, others by email; not kept in step.
    Members,
}

/// Holds a tenant's plan for approval when it would deactivate, move or change too much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Largest share (percent) of a tenant's active records one run may deactivate.
    pub max_deactivate_percent: f64,
    /// Largest share (percent) of a tenant's active records one run may move to another site
    /// (and so, perhaps, customer), or change in any one field. Configurations stored before it
    /// existed get the default.
    pub max_change_percent: f64,
    /// Never trips for this many deactivations (or moves, or changes of one field) or fewer.
    pub floor: u32,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            max_deactivate_percent: 20.0,
            max_change_percent: 30.0,
            floor: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    User,
    Agent,
}

/// "Never overwrite this field" for every record of a kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldLock {
    pub entity: RecordKind,
    pub field: String,
}

/// "Keep this user active" / "never overwrite these fields of this user".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLock {
    pub entity: RecordKind,
    /// The Azure object id.
    pub external_id: String,
    #[serde(default)]
    pub keep_active: bool,
    #[serde(default)]
    pub fields: Vec<String>,
}
