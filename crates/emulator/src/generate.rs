//! The deterministic world generator.
//!
//! The same seed and options give the same tenants, objects and ids (a small SplitMix64 stream
//! drives every choice). Only the certificate key pairs are fresh on every run: RSA keys cannot
//! be derived from a seed with the crypto backend we use, and nothing keys on them.
use jiff::{SignedDuration, Timestamp};

use crate::EmulatorError;
use crate::crypto;
use crate::world::*;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub seed: u64,
    /// Customer tenants (a partner tenant is added on top).
    pub tenants: usize,
    /// Users in every customer tenant; `None` gives a realistic spread of sizes.
    pub users_per_tenant: Option<usize>,
    /// Reference instant for generated dates (creation, sign-in, enrolment).
    pub reference_time: Timestamp,
    /// Dataverse organisations, one for each of the first N customer tenants.
    pub dataverse_orgs: usize,
    /// Contacts in each organisation (accounts are a quarter of that); default 120.
    pub dataverse_contacts: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        let reference_time = "2026-11-01T00:00:00Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        Self {
            seed: 1,
            tenants: 3,
            users_per_tenant: None,
            reference_time,
            dataverse_orgs: 1,
            dataverse_contacts: None,
        }
    }
}

/// SplitMix64: tiny, fast, and stable across library versions (so datasets stay reproducible).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; returns 0 for 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next_u64() % (n as u64)).unwrap_or(0)
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub(crate) fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
        (0..len)
            .map(|_| char::from(ALPHABET[self.below(ALPHABET.len())]))
            .collect()
    }
}

const GIVEN: &[&str] = &[
    "Adele",
    "Alex",
    "Ben",
    "Chloé",
    "Diego",
    "Emma",
    "Finn",
    "Grace",
    "Hiro",
    "Isabel",
    "Jonas",
    "Katarzyna",
    "Lars",
    "Léa",
    "Mohammed",
    "Nadia",
    "Oskar",
    "Priya",
    "Quinn",
    "Rafael",
    "Søren",
    "Tomasz",
    "Ursula",
    "Viktor",
    "Wei",
    "Xavier",
    "Yuki",
    "Zoë",
    "Åsa",
    "Łukasz",
    "José",
    "Ingrid",
];
const SURNAMES: &[&str] = &[
    "Andersen",
    "Brown",
    "Costa",
    "Dvořák",
    "Evans",
    "Fischer",
    "García",
    "Hansen",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Müller",
    "Nguyễn",
    "O'Brien",
    "Petrović",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Uddin",
    "Vargas",
    "Weiß",
    "Xu",
    "Yılmaz",
    "Zimmermann",
    "van der Berg",
    "Öztürk",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Finance",
    "Support",
    "Marketing",
    "Operations",
    "Legal",
];
const TITLES: &[&str] = &[
    "Account Manager",
    "Software Engineer",
    "Accountant",
    "Support Engineer",
    "Designer",
    "Analyst",
    "Consultant",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Seattle", "United States", "US"),
    ("Berlin", "Germany", "DE"),
    ("London", "United Kingdom", "GB"),
    ("Paris", "France", "FR"),
    ("Copenhagen", "Denmark", "DK"),
    ("Warsaw", "Poland", "PL"),
    ("Tokyo", "Japan", "JP"),
];
const COMPANY_WORDS: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Tailspin",
    "Woodgrove",
    "Litware",
    "Adatum",
    "Proseware",
    "Lamna",
    "Relecloud",
    "Wingtip",
    "Alpine",
    "Bellows",
    "Coho",
    "Humongous",
    "Margie",
    "Trey",
    "Wide World",
];

struct SkuTemplate {
    part: &'static str,
    applies_to: &'static str,
    plans: &'static [&'static str],
}

const SKUS: &[SkuTemplate] = &[
    SkuTemplate {
        part: "ENTERPRISEPACK",
        applies_to: "User",
        plans: &[
            "EXCHANGE_S_ENTERPRISE",
            "SHAREPOINTENTERPRISE",
            "TEAMS1",
            "OFFICESUBSCRIPTION",
            "MCOSTANDARD",
        ],
    },
    SkuTemplate {
        part: "SPE_E3",
        applies_to: "User",
        plans: &[
            "EXCHANGE_S_ENTERPRISE",
            "INTUNE_A",
            "AAD_PREMIUM",
            "TEAMS1",
            "MFA_PREMIUM",
        ],
    },
    SkuTemplate {
        part: "O365_BUSINESS_PREMIUM",
        applies_to: "User",
        plans: &["EXCHANGE_S_STANDARD", "TEAMS1"],
    },
    SkuTemplate {
        part: "POWER_BI_STANDARD",
        applies_to: "User",
        plans: &["BI_AZURE_P0"],
    },
    SkuTemplate {
        part: "FLOW_FREE",
        applies_to: "User",
        plans: &["FLOW_P2_VIRAL"],
    },
];

/// Well-known ids of Graph permissions and roles are not needed: the emulator works with names.
pub(crate) const GRAPH_APP_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Organization.Read.All",
    "AuditLog.Read.All",
    "DeviceManagementManagedDevices.Read.All",
    "DelegatedAdminRelationship.Read.All",
    "RoleManagement.Read.Directory",
];

/// Stable pseudo-GUID for a name (so SKU and plan ids agree across tenants and runs).
fn named_guid(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Rng::new(h).uuid()
}

fn days(n: usize) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::try_from(n).unwrap_or(0))
}

fn ts_minus(base: Timestamp, d: SignedDuration) -> Timestamp {
    base.checked_sub(d).unwrap_or(base)
}

fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' | 'è' | 'ê' => Some('e'),
            'ø' | 'ö' | 'ó' | 'Ö' => Some('o'),
            'å' | 'ä' | 'Å' => Some('a'),
            'ü' | 'ễ' | 'ý' => Some('u'),
            'ł' | 'Ł' => Some('l'),
            'ř' => Some('r'),
            'í' | 'ı' => Some('i'),
            'ß' => Some('s'),
            'ë' => Some('e'),
            'á' => Some('a'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

impl World {
    /// Generates a world. Deterministic for the same options, certificates aside.
    pub fn generate(options: &GenerateOptions) -> Result<World, EmulatorError> {
        let mut rng = Rng::new(options.seed);
        let now = options.reference_time;
        let mut tenants = Vec::with_capacity(options.tenants + 1);
        for index in 0..options.tenants {
            let size = match options.users_per_tenant {
                Some(n) => n,
                None => match rng.below(10) {
                    0..=3 => 5 + rng.below(45),
                    4..=7 => 50 + rng.below(451),
                    _ => 501 + rng.below(2500),
                },
            };
            tenants.push(generate_tenant(&mut rng, index, size, false, now));
        }
        let mut partner = generate_tenant(&mut rng, options.tenants, 8, true, now);
        for customer in &tenants {
            partner.gdap_relationships.push(gdap_for(&mut rng, customer, now));
        }
        let partner_id = partner.id.clone();
        tenants.push(partner);
        let all_tenants: Vec<String> = tenants.iter().map(|t| t.id.clone()).collect();
        let first_customer = tenants
            .first()
            .map_or_else(|| partner_id.clone(), |t| t.id.clone());

        let far_future: Timestamp = "2099-01-01T00:00:00Z".parse().unwrap_or(Timestamp::MAX);
        let expired: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        let secret = |rng: &mut Rng, end: Timestamp| ClientSecret {
            key_id: rng.uuid(),
            value: format!("{}~{}", rng.token(3), rng.token(36)),
            end_date_time: end,
        };
        let all_permissions: Vec<String> = GRAPH_APP_PERMISSIONS.iter().map(|s| (*s).to_owned()).collect();
        let delegated: Vec<String> = [
            "openid",
            "profile",
            "offline_access",
            "email",
            "User.Read",
            "User.Read.All",
            "Directory.Read.All",
            // Devices as assets through a delegated connection (a signed-in Intune reader).
            "DeviceManagementManagedDevices.Read.All",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Loopback redirects match on any port, as Microsoft's do: the CLI's listener uses
        // `/callback`, the admin UI `/auth/microsoft/callback`, its single sign-on `/auth/sso/callback`.
        let redirects = vec![
            "http://localhost/callback".to_owned(),
            "http://127.0.0.1/callback".to_owned(),
            "http://localhost/auth/microsoft/callback".to_owned(),
            "http://127.0.0.1/auth/microsoft/callback".to_owned(),
            "http://localhost/auth/sso/callback".to_owned(),
            "http://127.0.0.1/auth/sso/callback".to_owned(),
        ];
        let mut apps = Vec::new();
        apps.push(App {
            client_id: rng.uuid(),
            display_name: "deskbridge sync (secret)".into(),
            kind: AppKind::MultiTenantSecret,
            home_tenant_id: partner_id.clone(),
            multi_tenant: true,
            secrets: vec![secret(&mut rng, far_future)],
            certificates: vec![],
            application_permissions: all_permissions.clone(),
            delegated_scopes: delegated.clone(),
            redirect_uris: redirects.clone(),
            consented_tenants: all_tenants.clone(),
        });
        let cert = crypto::generate_app_certificate("deskbridge sync (certificate)", rng.uuid())?;
        apps.push(App {
            client_id: rng.uuid(),
            display_name: "deskbridge sync (certificate)".into(),
            kind: AppKind::Certificate,
            home_tenant_id: partner_id.clone(),
            multi_tenant: true,
            secrets: vec![],
            certificates: vec![cert],
            application_permissions: all_permissions.clone(),
            delegated_scopes: delegated.clone(),
            redirect_uris: redirects.clone(),
            consented_tenants: all_tenants.clone(),
        });
        apps.push(App {
            client_id: rng.uuid(),
            display_name: "single-tenant reader".into(),
            kind: AppKind::SingleTenant,
            home_tenant_id: first_customer.clone(),
            multi_tenant: false,
            secrets: vec![secret(&mut rng, far_future)],
            certificates: vec![],
            application_permissions: vec!["User.Read.All".into(), "Group.Read.All".into()],
            delegated_scopes: vec!["User.Read".into()],
            redirect_uris: vec![],
            consented_tenants: vec![first_customer],
        });
        apps.push(App {
            client_id: rng.uuid(),
            display_name: "app with an expired secret".into(),
            kind: AppKind::ExpiredSecret,
            home_tenant_id: partner_id.clone(),
            multi_tenant: true,
            secrets: vec![secret(&mut rng, expired)],
            certificates: vec![],
            application_permissions: all_permissions.clone(),
            delegated_scopes: vec![],
            redirect_uris: vec![],
            consented_tenants: all_tenants,
        });
        apps.push(App {
            client_id: rng.uuid(),
            display_name: "app not consented by customers".into(),
            kind: AppKind::Unconsented,
            home_tenant_id: partner_id.clone(),
            multi_tenant: true,
            secrets: vec![secret(&mut rng, far_future)],
            certificates: vec![],
            application_permissions: all_permissions,
            delegated_scopes: vec![],
            redirect_uris: vec![],
            consented_tenants: vec![partner_id.clone()],
        });
        let dataverse_orgs = tenants
            .iter()
            .filter(|t| !t.is_partner)
            .take(options.dataverse_orgs)
            .enumerate()
            .map(|(i, t)| {
                let contacts = options.dataverse_contacts.unwrap_or(120);
                crate::dataverse::generate::generate_org(options.seed, i, t, &apps, contacts, now)
            })
            .collect();
        let mut world = World {
            tenants,
            apps,
            partner_tenant_id: Some(partner_id),
            sign_in_password: default_password_value(),
            dataverse_orgs,
            partner_center: Default::default(),
        };
        crate::partner::generate::extend(&mut world, options)?;
        world.rebuild_indexes();
        Ok(world)
    }
}

fn default_password_value() -> String {
    "emulator".to_owned()
}

fn gdap_for(rng: &mut Rng, customer: &Tenant, now: Timestamp) -> GdapRelationship {
    let created = ts_minus(now, days(30 + rng.below(600)));
    let status = *rng.pick(&[
        "active",
        "active",
        "active",
        "active",
        "expired",
        "approvalPending",
    ]);
    let activated = (status != "approvalPending").then(|| created.checked_add(days(1)).unwrap_or(created));
    let end = activated.map(|a| a.checked_add(days(730)).unwrap_or(a));
    GdapRelationship {
        id: format!("{}-{}", rng.uuid(), rng.uuid()),
        display_name: format!(
            "deskbridge-{}",
            &customer.domain[..customer.domain.find('.').unwrap_or(0)]
        ),
        customer_tenant_id: customer.id.clone(),
        customer_display_name: customer.display_name.clone(),
        status: status.to_owned(),
        duration: "P730D".into(),
        auto_extend_duration: if rng.chance(50) {
            "P180D".into()
        } else {
            "PT0S".into()
        },
        role_definition_ids: vec![
            "88d8e3e3-8f55-4a1e-953a-9b9898b8876b".into(), // Directory Readers
            "729827e3-9c14-49f7-bb1b-9608f156bbb8".into(), // Helpdesk Administrator
        ],
        created_date_time: created,
        last_modified_date_time: created,
        activated_date_time: activated,
        end_date_time: end,
    }
}

fn generate_tenant(rng: &mut Rng, index: usize, size: usize, is_partner: bool, now: Timestamp) -> Tenant {
    let word = COMPANY_WORDS[index % COMPANY_WORDS.len()];
    let display_name = if is_partner {
        "Bridgeway Partners".to_owned()
    } else if index < COMPANY_WORDS.len() {
        format!("{word} Ltd")
    } else {
        format!("{word} {} Ltd", index / COMPANY_WORDS.len() + 1)
    };
    let slug = ascii_fold(&display_name).replace("ltd", "");
    let domain = format!("{slug}{index}.onmicrosoft.com");
    let (_, _, country_code) = *rng.pick(CITIES);
    let premium = is_partner || rng.chance(60);
    let hybrid = !is_partner && rng.chance(30);
    let mut tenant = Tenant {
        id: rng.uuid(),
        display_name,
        domain: domain.clone(),
        extra_domains: if rng.chance(50) {
            vec![format!("{slug}{index}.example.com")]
        } else {
            vec![]
        },
        premium,
        is_partner,
        country_letter_code: country_code.to_owned(),
        created_date_time: ts_minus(now, days(400 + rng.below(3000))),
        users: Vec::with_capacity(size),
        groups: vec![],
        directory_roles: vec![],
        skus: vec![],
        devices: vec![],
        gdap_relationships: vec![],
        contracts: vec![],
        index: Default::default(),
        changes: Default::default(),
    };
    let mail_domain = tenant
        .extra_domains
        .first()
        .cloned()
        .unwrap_or_else(|| domain.clone());

    // SKUs first so users can be licensed.
    let mut sku_count = 2 + rng.below(3);
    if premium {
        sku_count = sku_count.max(2);
    }
    for template in SKUS.iter().take(sku_count) {
        tenant.skus.push(Sku {
            sku_id: named_guid(template.part),
            sku_part_number: template.part.to_owned(),
            applies_to: template.applies_to.to_owned(),
            capability_status: "Enabled".into(),
            prepaid_enabled: i32::try_from(size + size / 10 + 5).unwrap_or(i32::MAX),
            prepaid_suspended: 0,
            prepaid_warning: 0,
            subscription_ids: vec![rng.uuid()],
            service_plans: template
                .plans
                .iter()
                .map(|p| ServicePlan {
                    service_plan_id: named_guid(p),
                    service_plan_name: (*p).to_owned(),
                    applies_to: template.applies_to.to_owned(),
                })
                .collect(),
        });
    }

    let mut strings = Interner::default();
    for i in 0..size {
        tenant.users.push(generate_user(
            rng,
            &mut strings,
            &tenant,
            i,
            size,
            &mail_domain,
            hybrid,
            now,
        ));
    }
    wire_managers(rng, &mut tenant.users);
    generate_groups(rng, &mut tenant, &mail_domain, now);
    generate_roles(rng, &mut tenant);
    generate_devices(rng, &mut tenant, now);
    tenant.rebuild_index();
    tenant
}

#[allow(clippy::too_many_arguments)] // private helper of generate_tenant
fn generate_user(
    rng: &mut Rng,
    strings: &mut Interner,
    tenant: &Tenant,
    i: usize,
    size: usize,
    mail_domain: &str,
    hybrid: bool,
    now: Timestamp,
) -> User {
    let given = *rng.pick(GIVEN);
    let surname = *rng.pick(SURNAMES);
    let alias = format!("{}.{}{}", ascii_fold(given), ascii_fold(surname), i);
    let (city, country, usage) = *rng.pick(CITIES);
    let created = ts_minus(now, days(rng.below(1500)));
    let mut user = User {
        id: rng.uuid(),
        user_principal_name: format!("{alias}@{}", tenant.domain),
        display_name: Some(format!("{given} {surname}")),
        given_name: Some(given.to_owned()),
        surname: Some(surname.to_owned()),
        mail: Some(format!("{alias}@{mail_domain}")),
        mail_nickname: Some(alias.clone()),
        job_title: Some(strings.get(rng.pick::<&str>(TITLES))),
        mobile_phone: rng.chance(60).then(|| format!("+1 555 {:04}", rng.below(10_000))),
        business_phones: if rng.chance(70) {
            vec![format!("+1 425 555 {:04}", rng.below(10_000))]
        } else {
            vec![]
        },
        office_location: Some(strings.get(&format!("{city} {}", 1 + rng.below(9)))),
        preferred_language: Some(strings.get("en-US")),
        account_enabled: true,
        user_type: "Member".into(),
        department: Some(strings.get(rng.pick::<&str>(DEPARTMENTS))),
        company_name: Some(strings.get(&tenant.display_name)),
        employee_id: Some(format!("E{:06}", i + 1)),
        city: Some(strings.get(city)),
        country: Some(strings.get(country)),
        usage_location: (!rng.chance(10)).then(|| strings.get(usage)),
        created_date_time: Some(created),
        on_premises_sync_enabled: hybrid.then_some(true),
        on_premises_immutable_id: hybrid.then(|| format!("{:016x}", rng.next_u64())),
        on_premises_sam_account_name: hybrid.then(|| alias.chars().take(20).collect()),
        assigned_licenses: vec![],
        manager_id: None,
        sign_in_activity: None,
        deleted_date_time: None,
    };
    if i == 0 {
        user.job_title = Some(strings.get("Chief Executive Officer"));
        user.department = Some(strings.get("Management"));
        user.usage_location = Some(strings.get(usage));
    }
    // A spread of the shapes real directories contain.
    let roll = rng.below(100);
    if i > 0 && roll < 8 {
        let home = *rng.pick(&["gmail.com", "outlook.com", "partner.example"]);
        let ext = format!("{}.{}_{}", ascii_fold(given), ascii_fold(surname), home).replace('.', "_");
        user.user_principal_name = format!("{ext}{i}#EXT#@{}", tenant.domain);
        user.user_type = "Guest".into();
        user.mail = Some(format!("{}.{}{i}@{home}", ascii_fold(given), ascii_fold(surname)));
        user.employee_id = None;
        user.company_name = None;
        user.department = None;
        user.job_title = None;
        user.on_premises_sync_enabled = None;
        user.on_premises_immutable_id = None;
        user.on_premises_sam_account_name = None;
    } else if i > 0 && roll < 13 {
        user.account_enabled = false;
    } else if i > 0 && roll < 28 {
        user.job_title = None;
        user.department = None;
        user.mobile_phone = None;
        user.office_location = None;
        user.preferred_language = None;
        user.given_name = None;
        user.employee_id = None;
        user.business_phones.clear();
    }
    if size >= 20 && (i == size - 4 || i == size - 5) {
        let name = if i == size - 4 { "info" } else { "svc-backup" };
        user.display_name = Some(if i == size - 4 {
            "Shared Mailbox: Info".into()
        } else {
            "Backup Service".into()
        });
        user.given_name = None;
        user.surname = None;
        user.job_title = None;
        user.department = None;
        user.mail = Some(format!("{name}@{mail_domain}"));
        user.mail_nickname = Some(name.to_owned());
        user.user_principal_name = format!("{name}@{}", tenant.domain);
        user.account_enabled = false;
        user.user_type = "Member".into();
    }
    if size >= 10 && i == size / 2 {
        let long: String = "Maximilian-Alexander Ölçek-Þórsdóttir Nguyễn 山田太郎 ".repeat(4);
        user.display_name = Some(long.trim_end().chars().take(256).collect());
    }
    if user.account_enabled && user.user_type == "Member" && user.usage_location.is_some() {
        let main = &tenant.skus[rng.below(2.min(tenant.skus.len()))];
        if rng.chance(85) {
            let disabled = if rng.chance(20) {
                vec![main.service_plans[0].service_plan_id.clone()]
            } else {
                vec![]
            };
            user.assigned_licenses.push(AssignedLicense {
                sku_id: main.sku_id.clone(),
                disabled_plans: disabled,
            });
        }
        if tenant.skus.len() > 3 && rng.chance(30) {
            user.assigned_licenses.push(AssignedLicense {
                sku_id: tenant.skus[3].sku_id.clone(),
                disabled_plans: vec![],
            });
        }
    }
    if rng.chance(90) {
        let last = ts_minus(
            now,
            SignedDuration::from_mins(i64::try_from(rng.below(60 * 24 * 90)).unwrap_or(0)),
        );
        user.sign_in_activity = Some(SignInActivity {
            last_sign_in_date_time: Some(last),
            last_non_interactive_sign_in_date_time: Some(last),
            last_successful_sign_in_date_time: rng.chance(95).then_some(last),
        });
    }
    user
}

/// A tree under user 0 (the root, who has no manager) plus, in larger tenants, three users who
/// manage each other in a cycle: a client walking managers must stop at the root or detect it.
fn wire_managers(rng: &mut Rng, users: &mut [User]) {
    let n = users.len();
    for i in 1..n {
        if users[i].user_type == "Guest" || rng.chance(5) {
            continue;
        }
        let boss = rng.below(i.min(1 + i / 3).max(1));
        users[i].manager_id = Some(users[boss].id.clone());
    }
    if n >= 12 {
        let (a, b, c) = (n - 8, n - 7, n - 6);
        users[a].manager_id = Some(users[c].id.clone());
        users[b].manager_id = Some(users[a].id.clone());
        users[c].manager_id = Some(users[b].id.clone());
    }
}

fn user_member(u: &User) -> MemberRef {
    MemberRef {
        kind: ObjectKind::User,
        id: u.id.clone(),
        display_name: None,
    }
}

fn generate_groups(rng: &mut Rng, tenant: &mut Tenant, mail_domain: &str, now: Timestamp) {
    let created = |rng: &mut Rng| Some(ts_minus(now, days(rng.below(1000))));
    let base = |rng: &mut Rng, name: &str, created: Option<Timestamp>| Group {
        id: rng.uuid(),
        display_name: name.to_owned(),
        description: Some(format!("{name} ({})", tenant.display_name)),
        mail: None,
        mail_enabled: false,
        mail_nickname: ascii_fold(name),
        security_enabled: true,
        group_types: vec![],
        membership_rule: None,
        membership_rule_processing_state: None,
        visibility: None,
        created_date_time: created,
        on_premises_sync_enabled: None,
        members: vec![],
        deleted_date_time: None,
    };
    let members_all: Vec<MemberRef> = tenant
        .users
        .iter()
        .filter(|u| u.user_type == "Member")
        .map(user_member)
        .collect();
    let c = created(rng);
    let mut all = base(rng, "All Staff", c);
    all.group_types = vec!["Unified".into()];
    all.mail_enabled = true;
    all.security_enabled = false;
    all.mail = Some(format!("allstaff@{mail_domain}"));
    all.visibility = Some("Public".into());
    all.members = members_all;
    tenant.groups.push(all);

    let mut dept_ids = Vec::new();
    for dept in DEPARTMENTS {
        let c = created(rng);
        let mut g = base(rng, &format!("{dept} Team"), c);
        g.members = tenant
            .users
            .iter()
            .filter(|u| u.department.as_deref() == Some(dept))
            .map(user_member)
            .collect();
        dept_ids.push(g.id.clone());
        tenant.groups.push(g);
    }
    // Nested: a parent security group whose members are department groups (and one user).
    let c = created(rng);
    let mut parent = base(rng, "All Departments", c);
    parent.members = dept_ids
        .iter()
        .take(3)
        .map(|id| MemberRef {
            kind: ObjectKind::Group,
            id: id.clone(),
            display_name: None,
        })
        .collect();
    if let Some(first) = tenant.users.first() {
        parent.members.push(user_member(first));
    }
    parent.members.push(MemberRef {
        kind: ObjectKind::ServicePrincipal,
        id: rng.uuid(),
        display_name: Some("Backup Agent".into()),
    });
    parent.members.push(MemberRef {
        kind: ObjectKind::OrgContact,
        id: rng.uuid(),
        display_name: Some("External Auditor".into()),
    });
    parent.members.push(MemberRef {
        kind: ObjectKind::Device,
        id: rng.uuid(),
        display_name: Some("KIOSK-01".into()),
    });
    tenant.groups.push(parent);
    // Dynamic membership.
    let c = created(rng);
    let mut dynamic = base(rng, "Sales (dynamic)", c);
    dynamic.group_types = vec!["DynamicMembership".into()];
    dynamic.membership_rule = Some("(user.department -eq \"Sales\")".into());
    dynamic.membership_rule_processing_state = Some("On".into());
    dynamic.members = tenant
        .users
        .iter()
        .filter(|u| u.department.as_deref() == Some("Sales"))
        .map(user_member)
        .collect();
    tenant.groups.push(dynamic);
    // Distribution list and mail-enabled security group.
    let c = created(rng);
    let mut dl = base(rng, "Newsletter", c);
    dl.security_enabled = false;
    dl.mail_enabled = true;
    dl.mail = Some(format!("newsletter@{mail_domain}"));
    dl.members = tenant
        .users
        .iter()
        .filter(|_| rng.chance(20))
        .map(user_member)
        .collect();
    tenant.groups.push(dl);
    let c = created(rng);
    let mut mesg = base(rng, "Helpdesk Escalation", c);
    mesg.mail_enabled = true;
    mesg.mail = Some(format!("escalation@{mail_domain}"));
    mesg.members = tenant.users.iter().take(5).map(user_member).collect();
    tenant.groups.push(mesg);
    // Project groups scale with the tenant.
    let extra = (tenant.users.len() / 25).min(400);
    for p in 0..extra {
        let c = created(rng);
        let mut g = base(rng, &format!("Project {p:03}"), c);
        if rng.chance(50) {
            g.group_types = vec!["Unified".into()];
            g.mail_enabled = true;
            g.security_enabled = false;
            g.mail = Some(format!("project{p:03}@{mail_domain}"));
            g.visibility = Some((*rng.pick(&["Private", "Public"])).to_owned());
        }
        let count = 3 + rng.below(20);
        for _ in 0..count {
            let u = &tenant.users[rng.below(tenant.users.len())];
            if !g.members.iter().any(|m| m.id == u.id) {
                g.members.push(user_member(u));
            }
        }
        tenant.groups.push(g);
    }
    if tenant.groups.len() > 1 && tenant.users.len() > 20 {
        // An empty group: a page with members@delta absent must be handled too.
        let c = created(rng);
        let g = base(rng, "Empty Group", c);
        tenant.groups.push(g);
    }
}

fn generate_roles(rng: &mut Rng, tenant: &mut Tenant) {
    let roles = [
        ("Global Administrator", "62e90394-69f5-4237-9190-012177145e10"),
        ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
        ("Helpdesk Administrator", "729827e3-9c14-49f7-bb1b-9608f156bbb8"),
    ];
    for (k, (name, template)) in roles.iter().enumerate() {
        let members: Vec<String> = tenant
            .users
            .iter()
            .skip(k)
            .step_by(7 + k)
            .take(2)
            .map(|u| u.id.clone())
            .collect();
        tenant.directory_roles.push(DirectoryRole {
            id: rng.uuid(),
            display_name: (*name).to_owned(),
            description: format!("Can manage {} of the directory.", name.to_lowercase()),
            role_template_id: (*template).to_owned(),
            member_ids: members,
        });
    }
}

fn generate_devices(rng: &mut Rng, tenant: &mut Tenant, now: Timestamp) {
    let count = (tenant.users.len() / 2).min(5_000);
    let mut devices = Vec::with_capacity(count);
    let mut windows = 0usize;
    for d in 0..count {
        let owner = &tenant.users[rng.below(tenant.users.len())];
        let os = *rng.pick(&["Windows", "Windows", "iOS", "Android", "macOS"]);
        // Every 40th Windows device, the first included, is managed by Defender for Endpoint's
        // security settings management (`msSense`) rather than by Intune's own agent. Chosen by
        // counting, not by the rng, so the rest of a seed's world is what it was before.
        let defender = if os == "Windows" {
            windows += 1;
            windows % 40 == 1
        } else {
            false
        };
        let (model, manufacturer, version) = match os {
            "Windows" => ("Latitude 7440", "Dell Inc.", "10.0.22631.4460"),
            "iOS" => ("iPhone 15", "Apple", "17.6.1"),
            "Android" => ("Pixel 8", "Google", "14"),
            _ => ("MacBook Pro", "Apple", "14.6.1"),
        };
        let never_synced = rng.chance(5);
        let enrolled = ts_minus(now, days(rng.below(700)));
        let compliance = *rng.pick(&[
            "compliant",
            "compliant",
            "compliant",
            "noncompliant",
            "unknown",
            "inGracePeriod",
        ]);
        let mobile = os == "iOS" || os == "Android";
        let personal = rng.chance(20);
        let no_user = rng.chance(5);
        devices.push(ManagedDevice {
            id: rng.uuid(),
            user_id: if no_user { String::new() } else { owner.id.clone() },
            device_name: format!("{}-{:05}", &os[..3].to_uppercase(), d),
            managed_device_owner_type: if personal {
                "personal".into()
            } else {
                "company".into()
            },
            enrolled_date_time: enrolled.to_string(),
            last_sync_date_time: if never_synced {
                UNSET_DATE.into()
            } else {
                ts_minus(
                    now,
                    SignedDuration::from_mins(i64::try_from(rng.below(60 * 24 * 30)).unwrap_or(0)),
                )
                .to_string()
            },
            operating_system: os.to_owned(),
            os_version: version.to_owned(),
            compliance_state: compliance.to_owned(),
            management_agent: if defender {
                "msSense".into()
            } else if mobile {
                "mdm".into()
            } else {
                "intuneClient".into()
            },
            azure_ad_device_id: if rng.chance(10) { String::new() } else { rng.uuid() },
            azure_ad_registered: if rng.chance(10) { None } else { Some(true) },
            device_enrollment_type: if os == "Windows" {
                "windowsAzureADJoin".into()
            } else {
                "userEnrollment".into()
            },
            device_registration_state: "registered".into(),
            is_encrypted: rng.chance(85),
            is_supervised: os == "iOS" && rng.chance(50),
            jail_broken: if mobile {
                (*rng.pick(&["False", "False", "Unknown"])).to_owned()
            } else {
                "Unknown".into()
            },
            user_principal_name: if no_user {
                String::new()
            } else {
                owner.user_principal_name.clone()
            },
            user_display_name: if no_user {
                String::new()
            } else {
                owner.display_name.clone().unwrap_or_default()
            },
            email_address: if no_user {
                String::new()
            } else {
                owner.mail.clone().unwrap_or_default()
            },
            model: model.to_owned(),
            manufacturer: manufacturer.to_owned(),
            serial_number: if rng.chance(15) {
                String::new()
            } else {
                format!("SN{:010}", rng.next_u64() % 10_000_000_000)
            },
            imei: if mobile && rng.chance(70) {
                format!("35{:013}", rng.next_u64() % 10_000_000_000_000)
            } else {
                String::new()
            },
            meid: String::new(),
            wi_fi_mac_address: if rng.chance(30) {
                String::new()
            } else {
                format!("{:012x}", rng.next_u64() & 0xFFFF_FFFF_FFFF)
            },
            phone_number: if mobile && rng.chance(40) {
                format!("+1555{:07}", rng.below(10_000_000))
            } else {
                String::new()
            },
            total_storage_space_in_bytes: 256 * 1024 * 1024 * 1024,
            free_storage_space_in_bytes: i64::try_from(rng.below(200)).unwrap_or(0) * 1024 * 1024 * 1024,
            compliance_grace_period_expiration_date_time: if compliance == "inGracePeriod" {
                now.checked_add(days(3)).unwrap_or(now).to_string()
            } else {
                "9999-12-31T23:59:59Z".into()
            },
            partner_reported_threat_state: "unknown".into(),
            device_category_display_name: if rng.chance(50) {
                "Unknown Category".into()
            } else {
                String::new()
            },
            exchange_access_state: "none".into(),
            exchange_last_successful_sync_date_time: UNSET_DATE.into(),
            eas_activated: false,
            eas_device_id: String::new(),
            managed_device_name: format!("{}_{}", owner.mail_nickname.clone().unwrap_or_default(), os),
        });
    }
    // A larger tenant holds one machine enrolled twice: two records with the same serial number
    // (Intune keeps the stale record until its clean-up rule removes it), which a client matching
    // devices by serial has to cope with. Chosen without the rng, as above.
    if devices.len() >= 100
        && let Some(first) = devices.iter().position(|d| !d.serial_number.is_empty())
        && let Some(last) = devices.iter().rposition(|d| {
            d.operating_system == devices[first].operating_system && !d.serial_number.is_empty()
        })
        && last != first
    {
        devices[last].serial_number = devices[first].serial_number.clone();
    }
    tenant.devices = devices;
}
