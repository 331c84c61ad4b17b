//! The desk's data model, described once. The generic record operations read these
//! descriptions to validate values, build SQL and journal changes, so adding a column means
//! adding it here and in both migrations (a test checks they agree).

use serde::Serialize;

/// The kinds of desk record deskbridge reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    TopLevel,
    Customer,
    Site,
    User,
    Agent,
    UserRole,
    AgentRole,
    Team,
    Cab,
    CabRole,
    Licence,
    Subscription,
    /// A customer's metered usage for a period (consumption billing).
    UsageLine,
    AssetType,
    Asset,
    Ticket,
}

/// The type of a column, as the store validates and binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    Bool,
    Float,
    /// RFC 3339 in, fixed-width UTC stored.
    Timestamp,
    /// The id of another record.
    Ref(Entity),
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    /// NOT NULL without a default: an insert must give it.
    pub required: bool,
}

/// A many-valued field kept in a link table: `roles`, `teams`, `licences`, …
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// The field name records use.
    pub field: &'static str,
    pub table: &'static str,
    /// The column holding the owner's id.
    pub owner: &'static str,
    /// The column holding the linked value.
    pub target: &'static str,
    pub target_ty: ColumnType,
    /// Further columns of the link (flags or a role), given per element.
    pub extra: &'static [Column],
}

/// Everything the store knows about one entity.
#[derive(Debug, Clone, Copy)]
pub struct EntitySpec {
    pub entity: Entity,
    pub name: &'static str,
    pub table: &'static str,
    pub columns: &'static [Column],
    pub links: &'static [Link],
    /// Whether custom fields ("custom:<name>") may be set on this entity.
    pub custom_fields: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        required: false,
    }
}

const fn req(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        required: true,
    }
}

use ColumnType::{Bool, Float, Int, Ref, Text, Timestamp};

const NAMED: &[Column] = &[req("name", Text)];

const TOP_LEVEL: EntitySpec = EntitySpec {
    entity: Entity::TopLevel,
    name: "top_level",
    table: "top_levels",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};

const CUSTOMER: EntitySpec = EntitySpec {
    entity: Entity::Customer,
    name: "customer",
    table: "customers",
    columns: &[
        req("name", Text),
        col("top_level_id", Ref(Entity::TopLevel)),
        col("active", Bool),
    ],
    links: &[Link {
        field: "tenant_ids",
        table: "customer_tenants",
        owner: "customer_id",
        target: "tenant_id",
        target_ty: Text,
        extra: &[],
    }],
    custom_fields: true,
};

const SITE: EntitySpec = EntitySpec {
    entity: Entity::Site,
    name: "site",
    table: "sites",
    columns: &[
        req("customer_id", Ref(Entity::Customer)),
        req("name", Text),
        col("is_main", Bool),
        col("active", Bool),
    ],
    links: &[],
    custom_fields: true,
};

const USER: EntitySpec = EntitySpec {
    entity: Entity::User,
    name: "user",
    table: "users",
    columns: &[
        req("site_id", Ref(Entity::Site)),
        col("first_name", Text),
        col("last_name", Text),
        req("name", Text),
        col("email", Text),
        col("network_login", Text),
        col("azure_object_id", Text),
        col("azure_tenant_id", Text),
        col("phone", Text),
        col("mobile", Text),
        col("job_title", Text),
        col("department", Text),
        col("employee_id", Text),
        col("creation_type", Text),
        col("active", Bool),
        col("is_service_account", Bool),
        col("line_manager_id", Ref(Entity::User)),
        col("last_sign_in", Timestamp),
    ],
    links: &[
        Link {
            field: "roles",
            table: "user_role_assignments",
            owner: "user_id",
            target: "role_id",
            target_ty: Ref(Entity::UserRole),
            extra: &[],
        },
        Link {
            field: "licences",
            table: "user_licences",
            owner: "user_id",
            target: "licence_id",
            target_ty: Ref(Entity::Licence),
            extra: &[],
        },
        Link {
            field: "cabs",
            table: "cab_user_members",
            owner: "user_id",
            target: "cab_id",
            target_ty: Ref(Entity::Cab),
            extra: &[col("cab_role_id", Ref(Entity::CabRole))],
        },
    ],
    custom_fields: true,
};

const AGENT: EntitySpec = EntitySpec {
    entity: Entity::Agent,
    name: "agent",
    table: "agents",
    columns: &[
        col("user_id", Ref(Entity::User)),
        req("name", Text),
        col("email", Text),
        col("network_login", Text),
        col("azure_object_id", Text),
        col("azure_tenant_id", Text),
        col("phone", Text),
        col("job_title", Text),
        col("department", Text),
        col("active", Bool),
        col("licence_type", Text),
        col("creation_type", Text),
        col("line_manager_id", Ref(Entity::Agent)),
        col("default_team_id", Ref(Entity::Team)),
    ],
    links: &[
        Link {
            field: "roles",
            table: "agent_role_assignments",
            owner: "agent_id",
            target: "role_id",
            target_ty: Ref(Entity::AgentRole),
            extra: &[],
        },
        Link {
            field: "teams",
            table: "agent_teams",
            owner: "agent_id",
            target: "team_id",
            target_ty: Ref(Entity::Team),
            extra: &[
                col("can_be_assigned", Bool),
                col("can_see_unassigned", Bool),
                col("can_see_others_tickets", Bool),
            ],
        },
        Link {
            field: "cabs",
            table: "cab_agent_members",
            owner: "agent_id",
            target: "cab_id",
            target_ty: Ref(Entity::Cab),
            extra: &[col("cab_role_id", Ref(Entity::CabRole))],
        },
    ],
    custom_fields: true,
};

const USER_ROLE: EntitySpec = EntitySpec {
    entity: Entity::UserRole,
    name: "user_role",
    table: "user_roles",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};
const AGENT_ROLE: EntitySpec = EntitySpec {
    entity: Entity::AgentRole,
    name: "agent_role",
    table: "agent_roles",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};
const TEAM: EntitySpec = EntitySpec {
    entity: Entity::Team,
    name: "team",
    table: "teams",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};
const CAB: EntitySpec = EntitySpec {
    entity: Entity::Cab,
    name: "cab",
    table: "cabs",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};
const CAB_ROLE: EntitySpec = EntitySpec {
    entity: Entity::CabRole,
    name: "cab_role",
    table: "cab_roles",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};

const LICENCE: EntitySpec = EntitySpec {
    entity: Entity::Licence,
    name: "licence",
    table: "licences",
    columns: &[
        col("customer_id", Ref(Entity::Customer)),
        col("sku_id", Text),
        col("part_number", Text),
        req("friendly_name", Text),
        col("total_units", Int),
        col("consumed_units", Int),
        col("capability_status", Text),
    ],
    links: &[],
    custom_fields: false,
};

const SUBSCRIPTION: EntitySpec = EntitySpec {
    entity: Entity::Subscription,
    name: "subscription",
    table: "subscriptions",
    columns: &[
        col("customer_id", Ref(Entity::Customer)),
        col("licence_id", Ref(Entity::Licence)),
        col("offer_id", Text),
        col("offer_name", Text),
        col("friendly_name", Text),
        col("quantity", Int),
        col("status", Text),
        col("billing_cycle", Text),
        col("term_duration", Text),
        col("start_date", Timestamp),
        col("end_date", Timestamp),
        col("auto_renew", Bool),
        col("unit_price", Float),
        col("currency", Text),
        col("tenant_id", Text),
        col("cancellation_allowed_until", Timestamp),
        col("is_trial", Bool),
        col("unit_type", Text),
        col("market", Text),
    ],
    links: &[],
    custom_fields: false,
};

const USAGE_LINE: EntitySpec = EntitySpec {
    entity: Entity::UsageLine,
    name: "usage_line",
    table: "usage_lines",
    columns: &[
        col("customer_id", Ref(Entity::Customer)),
        col("subscription_id", Ref(Entity::Subscription)),
        col("tenant_id", Text),
        col("usage_start", Timestamp),
        col("usage_end", Timestamp),
        col("resource_id", Text),
        col("resource_name", Text),
        col("category", Text),
        col("subcategory", Text),
        col("region", Text),
        col("quantity", Float),
        col("unit", Text),
        col("resource_uri", Text),
    ],
    links: &[],
    custom_fields: false,
};

const ASSET_TYPE: EntitySpec = EntitySpec {
    entity: Entity::AssetType,
    name: "asset_type",
    table: "asset_types",
    columns: NAMED,
    links: &[],
    custom_fields: false,
};

const ASSET: EntitySpec = EntitySpec {
    entity: Entity::Asset,
    name: "asset",
    table: "assets",
    columns: &[
        col("customer_id", Ref(Entity::Customer)),
        col("site_id", Ref(Entity::Site)),
        col("user_id", Ref(Entity::User)),
        col("asset_type_id", Ref(Entity::AssetType)),
        col("name", Text),
        col("serial_number", Text),
        col("status", Text),
        col("tenant_id", Text),
    ],
    links: &[],
    custom_fields: true,
};

const TICKET: EntitySpec = EntitySpec {
    entity: Entity::Ticket,
    name: "ticket",
    table: "tickets",
    columns: &[
        req("summary", Text),
        col("status", Text),
        col("agent_id", Ref(Entity::Agent)),
        col("team_id", Ref(Entity::Team)),
    ],
    // A follower is "user:<id>" for a desk user or "email:<address>" for someone outside it.
    links: &[Link {
        field: "followers",
        table: "ticket_followers",
        owner: "ticket_id",
        target: "follower",
        target_ty: Text,
        extra: &[],
    }],
    custom_fields: false,
};

impl Entity {
    pub const ALL: [Entity; 16] = [
        Entity::TopLevel,
        Entity::Customer,
        Entity::Site,
        Entity::User,
        Entity::Agent,
        Entity::UserRole,
        Entity::AgentRole,
        Entity::Team,
        Entity::Cab,
        Entity::CabRole,
        Entity::Licence,
        Entity::Subscription,
        Entity::UsageLine,
        Entity::AssetType,
        Entity::Asset,
        Entity::Ticket,
    ];

    pub fn spec(self) -> &'static EntitySpec {
        match self {
            Entity::TopLevel => &TOP_LEVEL,
            Entity::Customer => &CUSTOMER,
            Entity::Site => &SITE,
            Entity::User => &USER,
            Entity::Agent => &AGENT,
            Entity::UserRole => &USER_ROLE,
            Entity::AgentRole => &AGENT_ROLE,
            Entity::Team => &TEAM,
            Entity::Cab => &CAB,
            Entity::CabRole => &CAB_ROLE,
            Entity::Licence => &LICENCE,
            Entity::Subscription => &SUBSCRIPTION,
            Entity::UsageLine => &USAGE_LINE,
            Entity::AssetType => &ASSET_TYPE,
            Entity::Asset => &ASSET,
            Entity::Ticket => &TICKET,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl EntitySpec {
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn link(&self, field: &str) -> Option<&'static Link> {
        self.links.iter().find(|l| l.field == field)
    }
}
