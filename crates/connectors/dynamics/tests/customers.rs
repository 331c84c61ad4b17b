//! Accounts → desk customers, and contacts → users on their account's customer's main site,
//! against the emulator on SQLite and PostgreSQL: a preview that writes nothing, a customer
//! linked by name, an inactive account, custom fields typed, a renamed and a deleted account,
//! contacts without an imported account on the default site, and a second run that changes
//! nothing.

use std::collections::BTreeMap;

use deskbridge_core::{Clock as _, RecordId, SystemClock};
use deskbridge_emulator::Emulator;
use deskbridge_mapping::{SiteTarget, UnmatchedSite};
use deskbridge_source::SyncEntity;
use deskbridge_store::{Entity, Store, WriteContext};
use deskbridge_testkit::store_test;
use serde_json::{Map, Value, json};

use crate::{add, clock, emulator, org, service_principal, sources};

/// The emulator's accounts: id → name, every one active.
fn accounts(emu: &Emulator, org_name: &str) -> BTreeMap<String, String> {
    emu.with_world_mut(|w| {
        let org = w.dataverse_org_mut(org_name).unwrap();
        let table = org
            .tables
            .iter_mut()
            .find(|t| t.logical_name == "account")
            .unwrap();
        for row in &mut table.rows {
            row.values.insert("statecode".into(), json!(0));
        }
        table
            .rows
            .iter()
            .map(|r| (r.id.clone(), r.values["name"].as_str().unwrap().to_owned()))
            .collect()
    })
}

/// The contacts' parent accounts: contact id → account id (none for contacts without one, or
/// whose parent is a contact).
fn parents(emu: &Emulator, org_name: &str) -> BTreeMap<String, Option<String>> {
    emu.with_world(|w| {
        let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
        org.table("contact")
            .unwrap()
            .rows
            .iter()
            .map(|r| {
                let parent = r
                    .values
                    .get("parentcustomerid")
                    .filter(|p| p["table"] == "account");
                (
                    r.id.clone(),
                    parent.and_then(|p| p["id"].as_str()).map(str::to_owned),
                )
            })
            .collect()
    })
}

/// The desk's customers: (id, source id, name, active, employees).
async fn customers(store: &Store) -> Vec<(RecordId, Option<String>, String, bool, Value)> {
    let mut tx = store.read().await.unwrap();
    let records = tx.list(Entity::Customer, None, 10_000).await.unwrap();
    tx.commit().await.unwrap();
    records
        .into_iter()
        .map(|c| {
            (
                c.id,
                c.source.as_ref().map(|s| s.external_id.clone()),
                c.text("name").unwrap_or_default().to_owned(),
                c.get("active").as_bool().unwrap_or(true),
                c.fields.get("custom:employees").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

async fn run(
    store: &Store,
    name: &str,
    entity: SyncEntity,
    plan_only: bool,
    full: bool,
) -> deskbridge_sync::SyncOutcome {
    let options = deskbridge_sync::SyncOptions {
        entity,
        plan_only,
        full,
        ..deskbridge_sync::SyncOptions::default()
    };
    deskbridge_sync::sync(store, &sources(7), name, &options, &clock())
        .await
        .unwrap()
}

store_test! {
    async fn accounts_become_customers_and_contacts_land_on_their_accounts_main_site(db: &TestDb) {
        let emu = emulator(61, 40).await;
        let (_, _, org_name) = org(&emu);
        let accounts = accounts(&emu, &org_name);
        assert!(accounts.len() >= 5, "{accounts:?}");
        let ids: Vec<String> = accounts.keys().cloned().collect();
        // One account is inactive; one has a desk customer of its name already.
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut values = Map::new();
            values.insert("statecode".into(), json!(1));
            org.update_row("account", &ids[1], values, SystemClock.now()).unwrap();
        });
        let linked_name = accounts[&ids[0]].clone();
        let existing = {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            tx.define_custom_field(Entity::Customer, "employees", "number", &[]).await.unwrap();
            let fields = [("name".to_owned(), json!(format!("  {}  ", linked_name.to_uppercase())))].into_iter().collect();
            let id = tx.insert(Entity::Customer, None, &fields).await.unwrap();
            tx.commit().await.unwrap();
            id
        };
        let crm = add(&db.store, "crm", service_principal(&emu)).await.unwrap();
        let own_customer = RecordId(crm.config["customer_id"].as_i64().unwrap());
        let default_site = {
            let mut tx = db.store.read().await.unwrap();
            let site = tx.main_site(own_customer).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            site
        };

        // A customer mapping naming a field the desk does not have is refused when saved.
        let mut mapping = deskbridge_sync::open_connection(&db.store, &sources(7), "crm").await.unwrap().mapping().clone();
        mapping.customers = Some(serde_json::from_value(json!({
            "fields": [{"source": "name", "target": "name"}, {"source": "numberofemployees", "target": "custom:headcount"}],
        })).unwrap());
        let refused = deskbridge_sync::save_mappings(&db.store, &sources(7), "crm", mapping.clone(), &clock()).await.unwrap_err();
        assert!(refused.to_string().contains("no customer custom field \"headcount\" (it has employees)"), "{refused}");

        mapping.customers = Some(serde_json::from_value(json!({
            "fields": [{"source": "name", "target": "name"}, {"source": "numberofemployees", "target": "custom:employees"}],
            "match_fields": ["name"],
            "removed": "deactivate",
        })).unwrap());
        mapping.site_mappings[0].target = SiteTarget::ImportedCustomer {
            property: "_parentcustomerid_value".into(),
            unmatched: UnmatchedSite::DefaultSite { site_id: default_site },
        };
        deskbridge_sync::save_mappings(&db.store, &sources(7), "crm", mapping, &clock()).await.unwrap();
        // The check covers the customer import's columns.
        let points = crate::check(&db.store, "crm").await;
        let point = crate::point(&points, "customers (account)");
        assert!(point.ok && point.detail.contains("the account columns of the 2 customer field mapping(s) exist"), "{point:?}");

        // Contacts first: no account is imported yet, so every contact goes to the default site.
        let before = run(&db.store, "crm", SyncEntity::Directory, true, false).await;
        assert!(before.errors.is_empty(), "{:?}", before.errors);

        // The preview writes nothing.
        let preview = run(&db.store, "crm", SyncEntity::Customers, true, false).await;
        assert_eq!((preview.counts.created as usize, preview.counts.updated), (ids.len() - 1, 1), "{preview:?}");
        assert_eq!(customers(&db.store).await.len(), 2, "the preview wrote nothing");

        let first = run(&db.store, "crm", SyncEntity::Customers, false, false).await;
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!((first.counts.created as usize, first.counts.updated), (ids.len() - 1, 1), "{first:?}");
        let desk = customers(&db.store).await;
        let by_source: BTreeMap<String, _> = desk.iter().filter_map(|c| Some((c.1.clone()?, c.clone()))).collect();
        assert_eq!(by_source.len(), ids.len());
        for (id, name) in &accounts {
            let customer = &by_source[id];
            assert_eq!(&customer.2, name);
            assert!(customer.4.is_number(), "employees: {customer:?}");
            assert_eq!(customer.3, *id != ids[1], "only the inactive account's customer is inactive");
        }
        assert_eq!(by_source[&ids[0]].0, existing, "linked by name, not doubled");
        // Every new customer has its main site.
        let mut tx = db.store.read().await.unwrap();
        let mut main_sites = BTreeMap::new();
        for (id, customer) in &by_source {
            main_sites.insert(id.clone(), tx.main_site(customer.0).await.unwrap().expect("a main site"));
        }
        tx.commit().await.unwrap();

        // Contacts: on their account's customer's main site, or on the default site.
        let people = run(&db.store, "crm", SyncEntity::Directory, false, false).await;
        assert!(people.errors.is_empty(), "{:?}", people.errors);
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 10_000).await.unwrap();
        tx.commit().await.unwrap();
        let parents = parents(&emu, &org_name);
        let (mut on_accounts, mut on_default) = (0, 0);
        for user in users.iter().filter(|u| u.source.is_some()) {
            let contact = &user.source.as_ref().unwrap().external_id;
            let site = RecordId(user.get("site_id").as_i64().unwrap());
            match parents.get(contact).cloned().flatten() {
                Some(account) => {
                    assert_eq!(site, main_sites[&account], "contact {contact} of account {account}");
                    on_accounts += 1;
                }
                None => {
                    assert_eq!(site, default_site, "contact {contact} without an imported account");
                    on_default += 1;
                }
            }
        }
        assert!(on_accounts > 0 && on_default > 0, "{on_accounts} / {on_default}");

        // Nothing changed: nothing to do.
        let again = run(&db.store, "crm", SyncEntity::Customers, false, false).await;
        assert_eq!((again.counts.created, again.counts.updated, again.counts.deactivated), (0, 0, 0), "{again:?}");

        // A renamed account renames its customer; a deleted one deactivates its customer (a full
        // read sees what is gone).
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut values = Map::new();
            values.insert("name".into(), json!("Renamed Holdings"));
            org.update_row("account", &ids[2], values, SystemClock.now()).unwrap();
            org.delete_row("account", &ids[3], SystemClock.now()).unwrap();
        });
        let full = run(&db.store, "crm", SyncEntity::Customers, false, true).await;
        assert_eq!(full.status, "succeeded", "{:?}", full.errors);
        assert_eq!((full.counts.created, full.counts.updated, full.counts.deactivated), (0, 1, 1), "{full:?}");
        let desk = customers(&db.store).await;
        let by_source: BTreeMap<String, _> = desk.iter().filter_map(|c| Some((c.1.clone()?, c.clone()))).collect();
        assert_eq!(by_source[&ids[2]].2, "Renamed Holdings");
        assert!(!by_source[&ids[3]].3, "the deleted account's customer is inactive, not deleted");
    }
}

/// The contacts' hobbies as the emulator holds them: contact id → option values.
fn hobbies(emu: &Emulator, org_name: &str) -> BTreeMap<String, Vec<String>> {
    emu.with_world(|w| {
        let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
        org.table("contact")
            .unwrap()
            .rows
            .iter()
            .filter_map(|r| {
                let text = r.values.get("cr7a1_hobbies")?.as_str()?;
                Some((
                    r.id.clone(),
                    text.split(',').map(|v| v.trim().to_owned()).collect(),
                ))
            })
            .collect()
    })
}

store_test! {
    async fn option_sets_fill_desk_selects_value_by_value_and_an_unmapped_value_is_that_contacts_error(db: &TestDb) {
        let emu = emulator(62, 40).await;
        let (_, _, org_name) = org(&emu);
        let names = ["Reading", "Cycling", "Chess", "Gardening", "Photography", "Climbing", "Cooking", "Music", "Swimming"];
        {
            let mut tx = db.store.begin(WriteContext::manual()).await.unwrap();
            // The desk's option names differ from Dataverse's labels: the external id decides.
            let options: Vec<(String, Option<String>, Option<String>)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{n} (desk)"), None, Some((i + 1).to_string())))
                .collect();
            tx.define_custom_field(Entity::User, "hobbies", "multi_select", &options).await.unwrap();
            let genders = [("M".to_owned(), None, Some("1".to_owned())), ("F".to_owned(), None, Some("2".to_owned()))];
            tx.define_custom_field(Entity::User, "gender", "single_select", &genders).await.unwrap();
            tx.commit().await.unwrap();
        }
        add(&db.store, "crm", service_principal(&emu)).await.unwrap();
        let mut mapping = deskbridge_sync::open_connection(&db.store, &sources(7), "crm").await.unwrap().mapping().clone();

        // An option set fills a select only: mapped to a text field it is refused when saved.
        let mut wrong = mapping.clone();
        wrong.user_fields.push(deskbridge_mapping::FieldMapping::property("cr7a1_hobbies", "department"));
        let refused = deskbridge_sync::save_mappings(&db.store, &sources(7), "crm", wrong, &clock()).await.unwrap_err();
        assert!(refused.to_string().contains("type mismatch: source property 'cr7a1_hobbies' is multi-select option set, the user field 'department' is text"), "{refused}");

        mapping.user_fields.push(deskbridge_mapping::FieldMapping::property("cr7a1_hobbies", "custom:hobbies"));
        mapping.user_fields.push(deskbridge_mapping::FieldMapping::property("gendercode", "custom:gender"));
        deskbridge_sync::save_mappings(&db.store, &sources(7), "crm", mapping, &clock()).await.unwrap();

        let outcome = run(&db.store, "crm", SyncEntity::Directory, false, false).await;
        let hobbies = hobbies(&emu, &org_name);
        let unmapped: Vec<&String> = hobbies.iter().filter(|(_, v)| v.iter().any(|h| h == "10")).map(|(id, _)| id).collect();
        assert!(!unmapped.is_empty() && unmapped.len() < hobbies.len(), "the seed gives both: {hobbies:?}");
        // Each contact with an unmapped value is an error naming the value and what to do.
        let errors: Vec<_> = outcome.errors.iter().filter(|e| e.message.contains("custom:hobbies")).collect();
        assert_eq!(errors.len(), unmapped.len(), "{:#?}", outcome.errors);
        for error in &errors {
            assert!(unmapped.contains(&error.external_id.as_ref().unwrap()), "{error:?}");
            assert!(error.message.contains("option value 10 has no desk option: give one of the options of custom field 'hobbies'"), "{error:?}");
            assert!(error.message.contains("the external id 10"), "{error:?}");
        }
        let mut tx = db.store.read().await.unwrap();
        let users = tx.list(Entity::User, None, 10_000).await.unwrap();
        tx.commit().await.unwrap();
        let genders: BTreeMap<String, Value> = emu.with_world(|w| {
            let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
            org.table("contact").unwrap().rows.iter().map(|r| (r.id.clone(), r.values.get("gendercode").cloned().unwrap_or(Value::Null))).collect()
        });
        let mut checked = 0;
        for user in users.iter().filter(|u| u.source.is_some()) {
            let contact = &user.source.as_ref().unwrap().external_id;
            let desk = user.fields.get("custom:hobbies").cloned().unwrap_or(Value::Null);
            match hobbies.get(contact) {
                // Left as it is (nothing yet): never a blank that looks like "no hobbies".
                Some(values) if values.iter().any(|h| h == "10") => assert_eq!(desk, Value::Null, "{contact}"),
                Some(values) => {
                    let mut wanted: Vec<String> = values.iter().map(|v| format!("{} (desk)", names[v.parse::<usize>().unwrap() - 1])).collect();
                    wanted.sort();
                    wanted.dedup();
                    assert_eq!(desk, json!(wanted), "{contact}");
                    checked += 1;
                }
                None => assert_eq!(desk, Value::Null, "{contact}"),
            }
            let gender = user.fields.get("custom:gender").cloned().unwrap_or(Value::Null);
            match genders[contact].as_i64() {
                Some(1) => assert_eq!(gender, json!("M")),
                Some(2) => assert_eq!(gender, json!("F")),
                _ => assert_eq!(gender, Value::Null),
            }
        }
        assert!(checked > 0);
        // The columns were asked for by name, no more.
        let asked: Vec<String> = emu.request_log().into_iter().map(|e| e.path).filter(|p| p.contains("/contacts?")).collect();
        assert!(asked.iter().all(|p| p.contains("cr7a1_hobbies") && p.contains("gendercode") && !p.contains("birthdate")), "{asked:#?}");
    }
}
