//! A synthetic Dataverse organisation: `account`, `contact`, `systemuser`, `transactioncurrency`
//! and the custom table
//! `cr7a1_contract` (publisher prefix `cr7a1`), with option sets, a multi-select column per
//! table, polymorphic customer lookups, contacts without an account and contract → contact →
//! account chains (grandchild lookups). Deterministic for a seed.
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::model::{ApplicationUser, Column, ColumnKind, LookupTarget, OptionValue, Org, Row, Table};
use crate::generate::Rng;
use crate::world::{App, AppKind, Tenant};

const FIRST: &[&str] = &[
    "Amara", "Bastian", "Céline", "Dmitri", "Elif", "Farid", "Greta", "Hamish", "Ines", "Jarrah", "Kofi",
    "Linnea", "Mateus", "Noor", "Orla", "Pavel", "Rosa", "Sanjay", "Tove", "Umar",
];
const LAST: &[&str] = &[
    "Abernethy",
    "Brandt",
    "Castellanos",
    "Dijkstra",
    "Eriksen",
    "Fontaine",
    "Gallagher",
    "Horvat",
    "Ishikawa",
    "Jankowski",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "O'Connell",
    "Petrov",
];
const COMPANY: &[&str] = &[
    "Northwind",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Litware",
    "Adatum",
    "Proseware",
    "Lucerne",
    "Margie's",
    "Trey",
    "Alpine",
    "Coho",
    "Woodgrove",
    "Humongous",
    "Wide World",
    "Fourth Coffee",
];
const SUFFIX: &[&str] = &[
    "Traders",
    "Holdings",
    "Logistics",
    "Studio",
    "Partners",
    "Group",
    "Labs",
];
const CITIES: &[(&str, &str)] = &[
    ("Seattle", "United States"),
    ("Dublin", "Ireland"),
    ("München", "Germany"),
    ("Lyon", "France"),
    ("Kraków", "Poland"),
    ("Osaka", "Japan"),
    ("Leeds", "United Kingdom"),
];

fn opts(pairs: &[(i32, &str)]) -> Vec<OptionValue> {
    pairs
        .iter()
        .map(|(value, label)| OptionValue {
            value: *value,
            label: (*label).to_owned(),
        })
        .collect()
}

struct Cols<'r> {
    rng: &'r mut Rng,
    out: Vec<Column>,
}

impl Cols<'_> {
    fn add(&mut self, name: &str, kind: ColumnKind, display: &str) -> &mut Column {
        let custom = name.starts_with("cr7a1_");
        self.out.push(Column {
            logical_name: name.to_owned(),
            kind,
            display_name: display.to_owned(),
            is_custom: custom,
            options: vec![],
            global_option_set: None,
            targets: vec![],
            metadata_id: self.rng.uuid(),
        });
        let last = self.out.len() - 1;
        &mut self.out[last]
    }

    fn options(&mut self, name: &str, kind: ColumnKind, display: &str, options: &[(i32, &str)]) {
        self.add(name, kind, display).options = opts(options);
    }

    fn lookup(&mut self, name: &str, kind: ColumnKind, display: &str, targets: &[(&str, &str)]) {
        self.add(name, kind, display).targets = targets
            .iter()
            .map(|(table, relationship)| LookupTarget {
                table: (*table).to_owned(),
                relationship: (*relationship).to_owned(),
            })
            .collect();
    }

    /// Columns every table has: owner, created/modified by and on, state and status.
    fn common(&mut self, table: &str) {
        self.add("createdon", ColumnKind::DateTime, "Created On");
        self.add("modifiedon", ColumnKind::DateTime, "Modified On");
        self.lookup(
            "createdby",
            ColumnKind::Lookup,
            "Created By",
            &[("systemuser", &format!("lk_{table}_createdby"))],
        );
        self.lookup(
            "modifiedby",
            ColumnKind::Lookup,
            "Modified By",
            &[("systemuser", &format!("lk_{table}_modifiedby"))],
        );
        self.lookup(
            "ownerid",
            ColumnKind::Owner,
            "Owner",
            &[("systemuser", &format!("user_{table}"))],
        );
        self.options(
            "statecode",
            ColumnKind::State,
            "Status",
            &[(0, "Active"), (1, "Inactive")],
        );
        self.options(
            "statuscode",
            ColumnKind::Status,
            "Status Reason",
            &[(1, "Active"), (2, "Inactive")],
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn table(
    rng: &mut Rng,
    logical: &str,
    set: &str,
    display: (&str, &str),
    primary: (&str, &str),
    otc: i32,
    change_tracking: bool,
    columns: Vec<Column>,
) -> Table {
    Table {
        logical_name: logical.to_owned(),
        entity_set_name: set.to_owned(),
        display_name: display.0.to_owned(),
        display_collection_name: display.1.to_owned(),
        primary_id: primary.0.to_owned(),
        primary_name: primary.1.to_owned(),
        object_type_code: otc,
        is_custom: logical.starts_with("cr7a1_"),
        change_tracking,
        metadata_id: rng.uuid(),
        columns,
        rows: vec![],
        tombstones: vec![],
        index: Default::default(),
    }
}

fn schema(rng: &mut Rng) -> Vec<Table> {
    let mut c = Cols { rng, out: vec![] };
    c.add("accountid", ColumnKind::Uniqueidentifier, "Account");
    c.add("name", ColumnKind::String, "Account Name");
    c.add("accountnumber", ColumnKind::String, "Account Number");
    c.add("telephone1", ColumnKind::String, "Main Phone");
    c.add("emailaddress1", ColumnKind::String, "Email");
    c.add("websiteurl", ColumnKind::String, "Website");
    c.add("address1_city", ColumnKind::String, "Address 1: City");
    c.add(
        "address1_country",
        ColumnKind::String,
        "Address 1: Country/Region",
    );
    c.add("description", ColumnKind::Memo, "Description");
    c.options(
        "industrycode",
        ColumnKind::Picklist,
        "Industry",
        &[
            (1, "Accounting"),
            (2, "Agriculture"),
            (3, "Broadcasting"),
            (6, "Business Services"),
            (7, "Consulting"),
            (12, "Education"),
            (19, "Legal Services"),
            (25, "Retail"),
        ],
    );
    c.options(
        "customertypecode",
        ColumnKind::Picklist,
        "Relationship Type",
        &[
            (1, "Competitor"),
            (2, "Consultant"),
            (3, "Customer"),
            (5, "Partner"),
            (6, "Prospect"),
        ],
    );
    c.options(
        "cr7a1_services",
        ColumnKind::MultiSelectPicklist,
        "Managed Services",
        &[
            (100_000_000, "Managed Desktop"),
            (100_000_001, "Cloud Backup"),
            (100_000_002, "Security Monitoring"),
            (100_000_003, "Network Support"),
            (100_000_004, "Licensing"),
        ],
    );
    c.add("revenue", ColumnKind::Money, "Annual Revenue");
    c.lookup(
        "transactioncurrencyid",
        ColumnKind::Lookup,
        "Currency",
        &[("transactioncurrency", "TransactionCurrency_Account")],
    );
    c.add("numberofemployees", ColumnKind::Integer, "Number of Employees");
    c.options(
        "creditonhold",
        ColumnKind::Boolean,
        "Credit Hold",
        &[(0, "No"), (1, "Yes")],
    );
    c.lookup(
        "primarycontactid",
        ColumnKind::Lookup,
        "Primary Contact",
        &[("contact", "account_primary_contact")],
    );
    c.lookup(
        "parentaccountid",
        ColumnKind::Lookup,
        "Parent Account",
        &[("account", "account_parent_account")],
    );
    c.common("account");
    let account_cols = std::mem::take(&mut c.out);

    c.add("contactid", ColumnKind::Uniqueidentifier, "Contact");
    c.add("firstname", ColumnKind::String, "First Name");
    c.add("lastname", ColumnKind::String, "Last Name");
    c.add("fullname", ColumnKind::String, "Full Name");
    c.add("emailaddress1", ColumnKind::String, "Email");
    c.add("telephone1", ColumnKind::String, "Business Phone");
    c.add("mobilephone", ColumnKind::String, "Mobile Phone");
    c.add("jobtitle", ColumnKind::String, "Job Title");
    c.add("birthdate", ColumnKind::Date, "Birthday");
    c.options(
        "gendercode",
        ColumnKind::Picklist,
        "Gender",
        &[(1, "Male"), (2, "Female")],
    );
    c.options(
        "cr7a1_hobbies",
        ColumnKind::MultiSelectPicklist,
        "Hobbies",
        &[
            (1, "Reading"),
            (2, "Cycling"),
            (3, "Chess"),
            (4, "Gardening"),
            (5, "Photography"),
            (6, "Climbing"),
            (7, "Cooking"),
            (8, "Music"),
            (9, "Swimming"),
            (10, "Travel"),
        ],
    );
    c.options(
        "donotemail",
        ColumnKind::Boolean,
        "Do not allow Emails",
        &[(0, "Allow"), (1, "Do Not Allow")],
    );
    c.lookup(
        "parentcustomerid",
        ColumnKind::Customer,
        "Company Name",
        &[
            ("account", "contact_customer_accounts"),
            ("contact", "contact_customer_contacts"),
        ],
    );
    c.common("contact");
    let contact_cols = std::mem::take(&mut c.out);

    c.add("systemuserid", ColumnKind::Uniqueidentifier, "User");
    c.add("fullname", ColumnKind::String, "Full Name");
    c.add("domainname", ColumnKind::String, "User Name");
    c.add("internalemailaddress", ColumnKind::String, "Primary Email");
    c.add("applicationid", ColumnKind::Uniqueidentifier, "Application ID");
    c.add(
        "azureactivedirectoryobjectid",
        ColumnKind::Uniqueidentifier,
        "Azure AD Object ID",
    );
    c.options(
        "isdisabled",
        ColumnKind::Boolean,
        "Status",
        &[(0, "Enabled"), (1, "Disabled")],
    );
    c.add("createdon", ColumnKind::DateTime, "Created On");
    c.add("modifiedon", ColumnKind::DateTime, "Modified On");
    let user_cols = std::mem::take(&mut c.out);

    c.add("cr7a1_contractid", ColumnKind::Uniqueidentifier, "Contract");
    c.add("cr7a1_name", ColumnKind::String, "Name");
    c.add("cr7a1_contractnumber", ColumnKind::String, "Contract Number");
    c.lookup(
        "cr7a1_accountid",
        ColumnKind::Lookup,
        "Account",
        &[("account", "cr7a1_account_cr7a1_contract")],
    );
    c.lookup(
        "cr7a1_contactid",
        ColumnKind::Lookup,
        "Signed By",
        &[("contact", "cr7a1_contact_cr7a1_contract")],
    );
    c.options(
        "cr7a1_tier",
        ColumnKind::Picklist,
        "Tier",
        &[
            (100_000_000, "Bronze"),
            (100_000_001, "Silver"),
            (100_000_002, "Gold"),
        ],
    );
    if let Some(tier) = c.out.last_mut() {
        tier.global_option_set = Some("cr7a1_tier".to_owned());
    }
    c.add("cr7a1_startdate", ColumnKind::Date, "Start Date");
    c.add("cr7a1_enddate", ColumnKind::Date, "End Date");
    c.add("cr7a1_value", ColumnKind::Money, "Contract Value");
    c.lookup(
        "transactioncurrencyid",
        ColumnKind::Lookup,
        "Currency",
        &[("transactioncurrency", "TransactionCurrency_cr7a1_contract")],
    );
    c.add("cr7a1_seats", ColumnKind::Integer, "Seats");
    c.common("cr7a1_contract");
    let contract_cols = std::mem::take(&mut c.out);

    c.add("transactioncurrencyid", ColumnKind::Uniqueidentifier, "Currency");
    c.add("currencyname", ColumnKind::String, "Currency Name");
    c.add("isocurrencycode", ColumnKind::String, "Currency Code");
    c.add("currencysymbol", ColumnKind::String, "Currency Symbol");
    c.add("createdon", ColumnKind::DateTime, "Created On");
    c.add("modifiedon", ColumnKind::DateTime, "Modified On");
    let currency_cols = std::mem::take(&mut c.out);

    let rng = c.rng;
    vec![
        table(
            rng,
            "account",
            "accounts",
            ("Account", "Accounts"),
            ("accountid", "name"),
            1,
            true,
            account_cols,
        ),
        table(
            rng,
            "contact",
            "contacts",
            ("Contact", "Contacts"),
            ("contactid", "fullname"),
            2,
            true,
            contact_cols,
        ),
        table(
            rng,
            "systemuser",
            "systemusers",
            ("User", "Users"),
            ("systemuserid", "fullname"),
            8,
            true,
            user_cols,
        ),
        table(
            rng,
            "transactioncurrency",
            "transactioncurrencies",
            ("Currency", "Currencies"),
            ("transactioncurrencyid", "currencyname"),
            9105,
            false,
            currency_cols,
        ),
        table(
            rng,
            "cr7a1_contract",
            "cr7a1_contracts",
            ("Contract", "Contracts"),
            ("cr7a1_contractid", "cr7a1_name"),
            10_042,
            false,
            contract_cols,
        ),
    ]
}

fn lookup(id: &str, table: &str) -> Value {
    json!({"id": id, "table": table})
}

fn minus_days(t: Timestamp, days: usize) -> Timestamp {
    let hours = i64::try_from(days.saturating_mul(24)).unwrap_or(0);
    t.checked_sub(SignedDuration::from_hours(hours)).unwrap_or(t)
}

/// Generates the organisation of `tenant`: `contacts` contacts, a quarter as many accounts.
pub(crate) fn generate_org(
    seed: u64,
    index: usize,
    tenant: &Tenant,
    apps: &[App],
    contacts: usize,
    now: Timestamp,
) -> Org {
    let mut rng = Rng::new(seed ^ 0xD47A_5E27_0000_0000 ^ index as u64);
    let rng = &mut rng;
    let mut tables = schema(rng);
    let name = tenant
        .domain
        .split('.')
        .next()
        .unwrap_or("org")
        .to_ascii_lowercase();
    let mut org = Org {
        name: name.clone(),
        friendly_name: format!("{} (Dataverse)", tenant.display_name),
        tenant_id: tenant.id.clone(),
        organization_id: rng.uuid(),
        business_unit_id: rng.uuid(),
        application_users: vec![],
        excluded_users: vec![],
        expire_change_tracking_in_days: 7,
        change_tokens_expired_before: None,
        version: 0,
        tables: vec![],
    };
    // Application users: the full apps read and write everything, the single-tenant reader
    // only accounts (so "missing privilege" can be seen); the unconsented, Partner Center and GDAP
    // apps are none.
    let mut users: Vec<(String, Map<String, Value>)> = Vec::new();
    for app in apps {
        let (read_tables, write) = match app.kind {
            AppKind::MultiTenantSecret | AppKind::Certificate | AppKind::ExpiredSecret => (None, true),
            AppKind::SingleTenant => (Some(vec!["account".to_owned()]), false),
            AppKind::Unconsented | AppKind::PartnerCenter | AppKind::Gdap => continue,
        };
        let user_id = rng.uuid();
        org.application_users.push(ApplicationUser {
            client_id: app.client_id.clone(),
            user_id: user_id.clone(),
            read_tables,
            write,
        });
        let mut values = Map::new();
        values.insert("fullname".into(), json!(format!("# {}", app.display_name)));
        values.insert(
            "domainname".into(),
            json!(format!("{}@{}", app.client_id, tenant.domain)),
        );
        values.insert("applicationid".into(), json!(app.client_id));
        values.insert("isdisabled".into(), json!(false));
        users.push((user_id, values));
    }
    for user in tenant.users.iter().filter(|u| u.account_enabled).take(5) {
        let mut values = Map::new();
        values.insert(
            "fullname".into(),
            json!(
                user.display_name
                    .clone()
                    .unwrap_or_else(|| user.user_principal_name.clone())
            ),
        );
        values.insert("domainname".into(), json!(user.user_principal_name));
        values.insert("internalemailaddress".into(), json!(user.mail));
        values.insert("azureactivedirectoryobjectid".into(), json!(user.id));
        values.insert("isdisabled".into(), json!(false));
        users.push((user.id.clone(), values));
    }
    if users.is_empty() {
        let mut values = Map::new();
        values.insert("fullname".into(), json!("SYSTEM"));
        values.insert("isdisabled".into(), json!(false));
        users.push((rng.uuid(), values));
    }
    let owner_ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
    let mut version = 0u64;
    let mut push = |table: &mut Table,
                    id: String,
                    values: Map<String, Value>,
                    created: Timestamp,
                    modified: Timestamp| {
        version += 1;
        table.rows.push(Row {
            id,
            version,
            created_on: created,
            modified_on: modified,
            values,
        });
    };
    let created = minus_days(now, 900);
    let [accounts_t, contacts_t, users_t, currencies_t, contracts_t] = &mut tables[..] else {
        return org;
    };
    let currency = rng.uuid();
    let mut values = Map::new();
    values.insert("currencyname".into(), json!("US Dollar"));
    values.insert("isocurrencycode".into(), json!("USD"));
    values.insert("currencysymbol".into(), json!("$"));
    push(currencies_t, currency.clone(), values, created, created);
    for (id, values) in users {
        push(users_t, id, values, created, created);
    }
    let stamp = |rng: &mut Rng, values: &mut Map<String, Value>| {
        let owner = rng.pick(owner_ids.as_slice()).clone();
        values.insert("ownerid".into(), lookup(&owner, "systemuser"));
        values.insert("createdby".into(), lookup(&owner, "systemuser"));
        values.insert(
            "modifiedby".into(),
            lookup(rng.pick(owner_ids.as_slice()).as_str(), "systemuser"),
        );
        let active = rng.chance(92);
        values.insert("statecode".into(), json!(if active { 0 } else { 1 }));
        values.insert("statuscode".into(), json!(if active { 1 } else { 2 }));
        let created = minus_days(now, 30 + rng.below(1000));
        let modified = minus_days(now, rng.below(30));
        (created, modified)
    };

    let account_count = (contacts / 4).max(3);
    let mut account_ids: Vec<String> = Vec::with_capacity(account_count);
    for i in 0..account_count {
        let id = rng.uuid();
        let word = COMPANY[i % COMPANY.len()];
        let name = if i < COMPANY.len() {
            format!("{word} {}", rng.pick(SUFFIX))
        } else {
            format!("{word} {} {}", rng.pick(SUFFIX), i / COMPANY.len() + 1)
        };
        let (city, country) = *rng.pick(CITIES);
        let slug: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        let mut v = Map::new();
        v.insert("name".into(), json!(name));
        v.insert("accountnumber".into(), json!(format!("AC-{:05}", 1000 + i)));
        v.insert("telephone1".into(), json!(format!("+1 555 01{:02}", i % 100)));
        v.insert("emailaddress1".into(), json!(format!("info@{slug}.example")));
        v.insert("websiteurl".into(), json!(format!("https://{slug}.example")));
        v.insert("address1_city".into(), json!(city));
        v.insert("address1_country".into(), json!(country));
        if rng.chance(70) {
            v.insert(
                "industrycode".into(),
                json!(*rng.pick(&[1, 2, 3, 6, 7, 12, 19, 25])),
            );
        }
        v.insert(
            "customertypecode".into(),
            json!(*rng.pick(&[1, 2, 3, 3, 3, 5, 6])),
        );
        if rng.chance(60) {
            let mut chosen: Vec<i32> = (0..5)
                .filter(|_| rng.chance(40))
                .map(|k| 100_000_000 + k)
                .collect();
            if chosen.is_empty() {
                chosen.push(100_000_000);
            }
            let text: Vec<String> = chosen.iter().map(i32::to_string).collect();
            v.insert("cr7a1_services".into(), json!(text.join(",")));
        }
        v.insert("revenue".into(), json!((rng.below(5_000) as f64) * 1000.0 + 0.5));
        v.insert(
            "transactioncurrencyid".into(),
            lookup(&currency, "transactioncurrency"),
        );
        v.insert("numberofemployees".into(), json!(5 + rng.below(2000)));
        v.insert("creditonhold".into(), json!(rng.chance(10)));
        if i > 0 && rng.chance(10) {
            v.insert(
                "parentaccountid".into(),
                lookup(&account_ids[rng.below(i)], "account"),
            );
        }
        if i % 7 == 3 {
            v.insert(
                "description".into(),
                json!("Key account.\nRenewal handled by the partner team; see the contract."),
            );
        }
        let (c, m) = stamp(rng, &mut v);
        push(accounts_t, id.clone(), v, c, m);
        account_ids.push(id);
    }

    let mut contact_ids: Vec<(String, Option<String>)> = Vec::with_capacity(contacts);
    for i in 0..contacts {
        let id = rng.uuid();
        let first = *rng.pick(FIRST);
        let last = *rng.pick(LAST);
        let mut v = Map::new();
        v.insert("firstname".into(), json!(first));
        v.insert("lastname".into(), json!(last));
        v.insert("fullname".into(), json!(format!("{first} {last}")));
        let ascii: String = format!("{first}.{last}{i}")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect::<String>()
            .to_ascii_lowercase();
        if rng.chance(95) {
            v.insert("emailaddress1".into(), json!(format!("{ascii}@mail.example")));
        }
        v.insert("telephone1".into(), json!(format!("+1 555 02{:02}", i % 100)));
        if rng.chance(50) {
            v.insert("mobilephone".into(), json!(format!("+1 555 03{:02}", i % 100)));
        }
        v.insert(
            "jobtitle".into(),
            json!(*rng.pick(&["Office Manager", "IT Lead", "CFO", "Engineer", "Buyer"])),
        );
        if rng.chance(60) {
            let year = 1960 + rng.below(40);
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(28);
            v.insert("birthdate".into(), json!(format!("{year}-{month:02}-{day:02}")));
        }
        if rng.chance(80) {
            v.insert("gendercode".into(), json!(1 + rng.below(2)));
        }
        if rng.chance(50) {
            let mut chosen: Vec<usize> = (1..=10).filter(|_| rng.chance(25)).collect();
            if chosen.is_empty() {
                chosen.push(1 + rng.below(10));
            }
            let text: Vec<String> = chosen.iter().map(usize::to_string).collect();
            v.insert("cr7a1_hobbies".into(), json!(text.join(",")));
        }
        v.insert("donotemail".into(), json!(rng.chance(15)));
        let roll = rng.below(100);
        let account = if roll < 85 {
            let a = account_ids[i % account_ids.len()].clone();
            v.insert("parentcustomerid".into(), lookup(&a, "account"));
            Some(a)
        } else if roll < 90 && !contact_ids.is_empty() {
            let other = contact_ids[rng.below(contact_ids.len())].0.clone();
            v.insert("parentcustomerid".into(), lookup(&other, "contact"));
            None
        } else {
            None
        };
        let (c, m) = stamp(rng, &mut v);
        push(contacts_t, id.clone(), v, c, m);
        contact_ids.push((id, account));
    }
    // Each account's first contact is its primary contact.
    for row in &mut accounts_t.rows {
        if let Some((contact, _)) = contact_ids
            .iter()
            .find(|(_, a)| a.as_deref() == Some(row.id.as_str()))
        {
            row.values
                .insert("primarycontactid".into(), lookup(contact, "contact"));
        }
    }

    let contracts = account_count + account_count / 2;
    for i in 0..contracts {
        let account = account_ids[i % account_ids.len()].clone();
        let signer = contact_ids
            .iter()
            .find(|(_, a)| a.as_deref() == Some(account.as_str()))
            .map(|(c, _)| c.clone());
        let mut v = Map::new();
        v.insert("cr7a1_name".into(), json!(format!("Support agreement {}", i + 1)));
        v.insert("cr7a1_contractnumber".into(), json!(format!("CT-{:06}", 500 + i)));
        v.insert("cr7a1_accountid".into(), lookup(&account, "account"));
        if let Some(signer) = signer {
            v.insert("cr7a1_contactid".into(), lookup(&signer, "contact"));
        }
        v.insert("cr7a1_tier".into(), json!(100_000_000 + rng.below(3)));
        let start_year = 2023 + rng.below(3);
        v.insert(
            "cr7a1_startdate".into(),
            json!(format!("{start_year}-{:02}-01", 1 + rng.below(12))),
        );
        v.insert(
            "cr7a1_enddate".into(),
            json!(format!("{}-12-31", start_year + 1 + rng.below(2))),
        );
        v.insert("cr7a1_value".into(), json!((1 + rng.below(500)) as f64 * 100.0));
        v.insert(
            "transactioncurrencyid".into(),
            lookup(&currency, "transactioncurrency"),
        );
        v.insert("cr7a1_seats".into(), json!(1 + rng.below(300)));
        let (c, m) = stamp(rng, &mut v);
        push(contracts_t, rng.uuid(), v, c, m);
    }
    org.version = version;
    org.tables = tables;
    org
}
