//! Custom table syncs against the emulator, on SQLite and PostgreSQL: the emulator's custom table
//! `cr7a1_contract` (a lookup to account, whose primary contact is two relationships away, and a
//! choice column) into a desk custom table, read with `$expand` and a `modifiedon` watermark, or
//! with change tracking and batched lookups; the last-sync variable in a filter across two runs;
//! an expired delta token; a wrong-typed value refused as a per-record error.

use deskbridge_core::{Clock as _, SystemClock};
use deskbridge_emulator::Emulator;
use deskbridge_source::SyncEntity;
use deskbridge_store::Store;
use deskbridge_testkit::store_test;
use serde_json::{Map, Value, json};

use crate::{add, clock, connection, emulator, org, service_principal, sources};

const CONTRACT: &str = "cr7a1_contract";

/// The desk table the tests fill.
async fn define_contracts(store: &Store) {
    let mut tx = store
        .begin(deskbridge_store::WriteContext::manual())
        .await
        .unwrap();
    tx.define_custom_table(
        "contracts",
        Some("Contracts"),
        &[
            ("name", "text"),
            ("number", "text"),
            ("seats", "number"),
            ("tier", "single_select"),
            ("starts", "date"),
            ("account", "text"),
            ("account_contact", "text"),
            ("account_id", "text"),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The table mapping: plain columns, a choice, the lookup's id, a child and a grandchild lookup.
fn table_mapping(filter: Option<&str>) -> Value {
    json!({
        "source_table": CONTRACT,
        "desk_table": "contracts",
        "filter": filter,
        "fields": [
            {"source": "cr7a1_name", "target": "name"},
            {"source": "cr7a1_contractnumber", "target": "number"},
            {"source": "cr7a1_seats", "target": "seats"},
            {"source": "cr7a1_tier", "target": "tier"},
            {"source": "cr7a1_startdate", "target": "starts"},
            {"source": "cr7a1_accountid", "target": "account_id"},
            {"source": "cr7a1_accountid/name", "target": "account"},
            {"source": "cr7a1_accountid/primarycontactid/fullname", "target": "account_contact"},
        ],
    })
}

/// A connection whose mappings hold the table mapping, saved as the API and the CLI save them.
async fn connect(store: &Store, emu: &Emulator, name: &str, filter: Option<&str>) {
    add(store, name, service_principal(emu)).await.unwrap();
    define_contracts(store).await;
    let mut mapping = current_mapping(store, name).await;
    mapping.custom_tables = vec![serde_json::from_value(table_mapping(filter)).unwrap()];
    deskbridge_sync::save_mappings(store, &sources(5_000), name, mapping, &clock())
        .await
        .unwrap();
}

/// The connection's mappings as they are (the people's, generated when it was added).
async fn current_mapping(store: &Store, name: &str) -> deskbridge_mapping::MappingConfig {
    deskbridge_sync::open_connection(store, &sources(5_000), name)
        .await
        .unwrap()
        .mapping()
        .clone()
}

async fn sync_tables(store: &Store, name: &str, page_size: u32, full: bool) -> deskbridge_sync::SyncOutcome {
    let options = deskbridge_sync::SyncOptions {
        entity: SyncEntity::CustomTables,
        full,
        ..deskbridge_sync::SyncOptions::default()
    };
    deskbridge_sync::sync(store, &sources(page_size), name, &options, &clock())
        .await
        .unwrap()
}

/// The desk rows of `contracts`, by source id.
async fn rows(store: &Store) -> std::collections::BTreeMap<String, Map<String, Value>> {
    let mut tx = store.read().await.unwrap();
    let rows = tx.custom_rows("contracts", None, 100_000).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter()
        .map(|r| (r.source.unwrap().external_id, r.data))
        .collect()
}

/// What the emulator holds for a contract: (name, seats, account's name, account's primary contact's name).
fn expected(emu: &Emulator, org_name: &str, id: &str) -> (String, Value, String, Option<String>) {
    emu.with_world(|w| {
        let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
        let contract = org.table(CONTRACT).unwrap().row(id).unwrap();
        let account_id = contract.values["cr7a1_accountid"]["id"].as_str().unwrap();
        let account = org.table("account").unwrap().row(account_id).unwrap();
        let contact = account
            .values
            .get("primarycontactid")
            .and_then(|p| p["id"].as_str())
            .map(|c| {
                org.table("contact").unwrap().row(c).unwrap().values["fullname"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            });
        (
            contract.values["cr7a1_name"].as_str().unwrap().to_owned(),
            contract.values["cr7a1_seats"].clone(),
            account.values["name"].as_str().unwrap().to_owned(),
            contact,
        )
    })
}

fn contract_ids(emu: &Emulator, org_name: &str) -> Vec<String> {
    emu.with_world(|w| {
        let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
        let mut ids: Vec<String> = org
            .table(CONTRACT)
            .unwrap()
            .rows
            .iter()
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    })
}

/// The emulator's logged paths of requests to the contracts' entity set, decoded enough to read.
fn contract_requests(emu: &Emulator) -> Vec<String> {
    emu.request_log()
        .into_iter()
        .map(|e| e.path.replace("%20", " ").replace("%27", "'"))
        .filter(|p| p.contains("/cr7a1_contracts"))
        .collect()
}

store_test! {
    async fn a_custom_table_is_imported_with_child_and_grandchild_lookups_and_a_wrong_type_is_refused_alone(db: &TestDb) {
        let emu = emulator(51, 40).await;
        let (_, _, org_name) = org(&emu);
        let ids = contract_ids(&emu, &org_name);
        assert!(ids.len() > 10, "{ids:?}");
        // One contract's seats arrive as text: that row is refused, the rest imported.
        let wrong = ids[3].clone();
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut values = Map::new();
            values.insert("cr7a1_seats".into(), json!("many"));
            org.update_row(CONTRACT, &wrong, values, SystemClock.now()).unwrap();
        });
        connect(&db.store, &emu, "tables", None).await;
        // The check covers the table: its columns, the privilege, how it is read.
        let points = crate::check(&db.store, "tables").await;
        assert!(crate::point(&points, "table cr7a1_contract → contracts").ok, "{points:#?}");
        assert!(crate::point(&points, "read cr7a1_contract").ok, "{points:#?}");
        let tracking = crate::point(&points, "change tracking cr7a1_contract");
        assert!(tracking.detail.starts_with("off: read with a modifiedon watermark"), "{tracking:?}");
        assert_eq!(crate::point(&points, "result").detail, deskbridge_connector_dynamics::CONNECTION_AVAILABLE);

        // A preview plans what the sync then does, and writes nothing.
        let options = deskbridge_sync::SyncOptions {
            entity: SyncEntity::CustomTables,
            plan_only: true,
            ..deskbridge_sync::SyncOptions::default()
        };
        let preview = deskbridge_sync::sync(&db.store, &sources(7), "tables", &options, &clock()).await.unwrap();
        assert_eq!(preview.counts.created as usize, ids.len() - 1, "{preview:?}");
        assert!(rows(&db.store).await.is_empty());

        // Seven rows a page: several pages, each with its paging cookie.
        let outcome = sync_tables(&db.store, "tables", 7, false).await;
        assert_eq!(outcome.status, "partial", "{:?}", outcome.errors);
        assert_eq!(outcome.mode, "full");
        assert_eq!(outcome.counts.created as usize, ids.len() - 1);
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        let error = &outcome.errors[0];
        assert_eq!(error.external_id.as_deref(), Some(format!("contracts/{wrong}").as_str()));
        assert!(error.message.contains("cr7a1_seats is text (\"many\")"), "{error:?}");
        assert!(error.message.contains("contracts.seats of type number"), "{error:?}");

        let imported = rows(&db.store).await;
        assert_eq!(imported.len(), ids.len() - 1);
        assert!(!imported.contains_key(&wrong));
        let mut grandchildren = 0;
        for id in ids.iter().filter(|id| **id != wrong) {
            let row = &imported[id];
            let (name, seats, account, contact) = expected(&emu, &org_name, id);
            assert_eq!(row["name"], json!(name));
            assert_eq!(row["seats"], seats);
            assert_eq!(row["account"], json!(account), "the child lookup");
            assert_eq!(row.get("account_contact").cloned().unwrap_or(Value::Null), json!(contact), "the grandchild lookup");
            grandchildren += usize::from(contact.is_some());
            assert!(row["tier"].as_str().is_some_and(|t| !t.is_empty() && t.parse::<i64>().is_err()), "a label: {row:?}");
            assert!(row["account_id"].as_str().is_some_and(|a| a.len() == 36));
            assert!(row["starts"].as_str().is_some());
        }
        assert!(grandchildren > 0, "some accounts have a primary contact");
        // Read with a nested $expand, not row by row.
        let requests = contract_requests(&emu);
        let expanded = "$expand=cr7a1_accountid($select=_primarycontactid_value,accountid,name;\
                        $expand=primarycontactid($select=contactid,fullname))";
        assert!(requests.iter().any(|p| p.contains(expanded)), "{requests:#?}");
        // The preview and the sync: each a first page and its paging cookies' pages.
        let pages = ids.len().div_ceil(7);
        assert_eq!(requests.iter().filter(|p| p.contains("skiptoken")).count(), 2 * (pages - 1), "{requests:#?}");

        // Corrected in Dynamics 365, the row comes in with the next run; nothing else changes.
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut values = Map::new();
            values.insert("cr7a1_seats".into(), json!(12));
            org.update_row(CONTRACT, &wrong, values, SystemClock.now()).unwrap();
        });
        let again = sync_tables(&db.store, "tables", 7, false).await;
        assert_eq!(again.status, "succeeded", "{:?}", again.errors);
        assert_eq!((again.counts.created, again.counts.updated, again.counts.deactivated), (1, 0, 0), "{again:?}");
        assert_eq!(rows(&db.store).await[&wrong]["seats"], json!(12));
    }
}

store_test! {
    async fn the_last_sync_variable_is_the_last_runs_start_as_a_date_literal(db: &TestDb) {
        let emu = emulator(52, 20).await;
        let (_, tenant, org_name) = org(&emu);
        let ids = contract_ids(&emu, &org_name);
        connect(&db.store, &emu, "since", Some("modifiedon ge $-INTEGRATORLASTSYNC")).await;

        let first = sync_tables(&db.store, "since", 5_000, false).await;
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!(first.mode, "full");
        assert_eq!(first.counts.created as usize, ids.len());
        let requests = contract_requests(&emu);
        assert!(requests[0].contains("$filter=modifiedon ge 1900-01-01T00:00:00Z"), "{requests:#?}");

        // The start of the first run, as the cursor keeps it.
        let since = {
            let mut tx = db.store.read().await.unwrap();
            let cursors = tx.cursors_of(connection(&db.store, "since").await.id).await.unwrap();
            tx.commit().await.unwrap();
            cursors
                .into_iter()
                .find(|(t, stream, _)| *t == tenant && stream == "table/cr7a1_contract/since")
                .map(|(_, _, value)| value)
                .expect("the since cursor")
        };
        assert!(since.ends_with('Z') && !since.contains('.'), "{since}");

        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut values = Map::new();
            values.insert("cr7a1_name".into(), json!("Renewed agreement"));
            org.update_row(CONTRACT, &ids[0], values, SystemClock.now()).unwrap();
        });
        let second = sync_tables(&db.store, "since", 5_000, false).await;
        assert_eq!(second.status, "succeeded", "{:?}", second.errors);
        assert_eq!(second.mode, "delta");
        assert_eq!((second.counts.created, second.counts.updated, second.counts.deactivated), (0, 1, 0), "{second:?}");
        assert_eq!(second.counts.unchanged, 0, "only the changed row was read");
        let requests = contract_requests(&emu);
        let last = requests.last().unwrap();
        // Unquoted, as Dataverse reads a date-time literal.
        assert!(last.contains(&format!("$filter=modifiedon ge {since}")), "{last} / {since}");
        assert_eq!(rows(&db.store).await[&ids[0]]["name"], json!("Renewed agreement"));
    }
}

store_test! {
    async fn change_tracking_reads_creates_updates_and_deletes_and_an_expired_token_reads_in_full(db: &TestDb) {
        let emu = emulator(53, 30).await;
        let (_, _, org_name) = org(&emu);
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            for table in org.tables.iter_mut().filter(|t| t.logical_name == CONTRACT) {
                table.change_tracking = true;
            }
        });
        let ids = contract_ids(&emu, &org_name);
        connect(&db.store, &emu, "tracked", None).await;

        let first = sync_tables(&db.store, "tracked", 5, false).await;
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!(first.mode, "full");
        assert_eq!(first.counts.created as usize, ids.len());
        // No $expand with change tracking: the lookups were read in batches from accounts.
        assert!(contract_requests(&emu).iter().all(|p| !p.contains("$expand")), "{:#?}", contract_requests(&emu));
        let batched: Vec<String> = emu
            .request_log()
            .into_iter()
            .map(|e| e.path.replace("%20", " ").replace("%27", "'"))
            .filter(|p| p.contains("/accounts?") && p.contains("Microsoft.Dynamics.CRM.In("))
            .collect();
        assert!(!batched.is_empty(), "batched lookups");
        assert!(batched.iter().all(|p| p.contains("$expand=primarycontactid")), "{batched:#?}");
        let imported = rows(&db.store).await;
        for id in &ids {
            let (_, _, account, contact) = expected(&emu, &org_name, id);
            assert_eq!(imported[id]["account"], json!(account));
            assert_eq!(imported[id].get("account_contact").cloned().unwrap_or(Value::Null), json!(contact));
        }

        // Two created, one updated, one deleted.
        let account = emu.with_world(|w| {
            let org = w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap();
            org.table(CONTRACT).unwrap().row(&ids[0]).unwrap().values["cr7a1_accountid"].clone()
        });
        let now = SystemClock.now();
        let created = emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut created = Vec::new();
            for name in ["New agreement A", "New agreement B"] {
                let mut values = Map::new();
                values.insert("cr7a1_name".into(), json!(name));
                values.insert("cr7a1_seats".into(), json!(3));
                values.insert("cr7a1_accountid".into(), account.clone());
                created.push(org.insert_row(CONTRACT, None, values, now).unwrap());
            }
            let mut values = Map::new();
            values.insert("cr7a1_seats".into(), json!(999));
            org.update_row(CONTRACT, &ids[1], values, now).unwrap();
            org.delete_row(CONTRACT, &ids[2], now).unwrap();
            created
        });
        let delta = sync_tables(&db.store, "tracked", 5, false).await;
        assert_eq!(delta.status, "succeeded", "{:?}", delta.errors);
        assert_eq!(delta.mode, "delta");
        assert_eq!((delta.counts.created, delta.counts.updated, delta.counts.deactivated), (2, 1, 1), "{delta:?}");
        let imported = rows(&db.store).await;
        assert_eq!(imported[&ids[1]]["seats"], json!(999));
        assert!(!imported.contains_key(&ids[2]), "the deleted row is removed");
        assert_eq!(imported[&created[0]]["name"], json!("New agreement A"));
        assert_eq!(imported[&created[0]]["account"], imported[&ids[0]]["account"], "the child lookup on a delta read");
        // The journal keeps the removed row's values.
        let journal = {
            let mut tx = db.store.read().await.unwrap();
            let entries = tx.journal_all().await.unwrap();
            tx.commit().await.unwrap();
            entries
        };
        assert!(
            journal.iter().any(|j| j.entity == "custom_table:contracts"
                && j.action == "delete"
                && j.before.to_string().contains(&ids[2])),
            "{journal:#?}"
        );

        // A delta with nothing to say writes nothing.
        let quiet = sync_tables(&db.store, "tracked", 5, false).await;
        assert_eq!(quiet.mode, "delta");
        assert_eq!((quiet.counts.created, quiet.counts.updated, quiet.counts.deactivated), (0, 0, 0));

        // The token expires while a row is deleted: a note, a full read, and only that row removed.
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            org.delete_row(CONTRACT, &ids[3], SystemClock.now()).unwrap();
            org.change_tokens_expired_before = Some(SystemClock.now());
        });
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let expired = sync_tables(&db.store, "tracked", 5, false).await;
        assert_eq!(expired.status, "succeeded", "{:?}", expired.errors);
        assert_eq!(expired.mode, "full", "{expired:?}");
        assert!(expired.notes.iter().any(|n| n.contains("change-tracking token of table cr7a1_contract has expired")), "{:?}", expired.notes);
        assert_eq!((expired.counts.created, expired.counts.updated, expired.counts.deactivated), (0, 0, 1), "{expired:?}");
        assert!(!rows(&db.store).await.contains_key(&ids[3]));
        assert_eq!(rows(&db.store).await.len(), ids.len() + 2 - 2);
        // And tracking goes on from the full read.
        assert_eq!(sync_tables(&db.store, "tracked", 5, false).await.mode, "delta");
    }
}

store_test! {
    async fn table_mappings_are_refused_by_name_when_the_desk_or_the_organisation_lacks_what_they_name(db: &TestDb) {
        let emu = emulator(54, 10).await;
        add(&db.store, "refused", service_principal(&emu)).await.unwrap();
        let save = |mapping: Value| {
            let store = db.store.clone();
            async move {
                let mut config = current_mapping(&store, "refused").await;
                config.custom_tables = vec![serde_json::from_value(mapping).unwrap()];
                deskbridge_sync::save_mappings(&store, &sources(5_000), "refused", config, &clock())
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        // No such desk table.
        let e = save(table_mapping(None)).await.unwrap_err();
        assert!(e.contains("the desk has no custom table \"contracts\""), "{e}");
        define_contracts(&db.store).await;
        // A desk column that does not exist.
        let mut mapping = table_mapping(None);
        mapping["fields"][0]["target"] = json!("title");
        let e = save(mapping).await.unwrap_err();
        assert!(e.contains("desk table \"contracts\" has no column \"title\""), "{e}");
        // Fine on the desk's side; the organisation's metadata refuses a source column and a lookup path.
        let mut mapping = table_mapping(None);
        mapping["fields"][0]["source"] = json!("cr7a1_title");
        mapping["fields"][6]["source"] = json!("cr7a1_accountid/nosuchlookup/name");
        save(mapping).await.unwrap();
        let outcome = sync_tables(&db.store, "refused", 5_000, false).await;
        assert_eq!(outcome.status, "partial", "{outcome:?}");
        let message = &outcome.errors[0].message;
        assert!(message.contains("field cr7a1_title: table cr7a1_contract has no column \"cr7a1_title\""), "{message}");
        assert!(message.contains("field cr7a1_accountid/nosuchlookup/name: table account has no lookup \"nosuchlookup\""), "{message}");
        assert!(rows(&db.store).await.is_empty());
        // A source table that does not exist.
        let mut mapping = table_mapping(None);
        mapping["source_table"] = json!("cr7a1_nothing");
        save(mapping).await.unwrap();
        let outcome = sync_tables(&db.store, "refused", 5_000, false).await;
        assert!(outcome.errors[0].message.contains("the organisation has no table \"cr7a1_nothing\""), "{:?}", outcome.errors);
    }
}

store_test! {
    async fn a_full_read_that_would_empty_a_desk_table_is_held_until_approved(db: &TestDb) {
        let emu = emulator(55, 40).await;
        let (_, _, org_name) = org(&emu);
        let ids = contract_ids(&emu, &org_name);
        connect(&db.store, &emu, "breaker", None).await;
        let first = sync_tables(&db.store, "breaker", 5_000, false).await;
        assert_eq!(first.counts.created as usize, ids.len());

        // Most contracts are deleted in Dynamics 365; the table has no change tracking, so only a
        // full read finds out.
        let gone = ids.len() - 3;
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            for id in &ids[..gone] {
                org.delete_row(CONTRACT, id, SystemClock.now()).unwrap();
            }
        });
        let held = sync_tables(&db.store, "breaker", 5_000, true).await;
        assert_eq!(held.status, "held", "{held:?}");
        assert!(held.held.as_deref().is_some_and(|h| h.contains("of desk table contracts would be removed")), "{held:?}");
        assert_eq!(rows(&db.store).await.len(), ids.len(), "nothing removed while held");

        let options = deskbridge_sync::SyncOptions {
            entity: SyncEntity::CustomTables,
            full: true,
            approve_held: true,
            ..deskbridge_sync::SyncOptions::default()
        };
        let approved = deskbridge_sync::sync(&db.store, &sources(5_000), "breaker", &options, &clock()).await.unwrap();
        assert_eq!(approved.status, "succeeded", "{approved:?}");
        assert_eq!(approved.counts.deactivated as usize, gone);
        assert_eq!(rows(&db.store).await.len(), 3);
    }
}

store_test! {
    async fn several_table_mappings_are_read_each_as_its_own_partition_or_one_alone(db: &TestDb) {
        let emu = emulator(56, 20).await;
        let (_, _, org_name) = org(&emu);
        connect(&db.store, &emu, "several", None).await;
        let mut tx = db.store.begin(deskbridge_store::WriteContext::manual()).await.unwrap();
        tx.define_custom_table("companies", None, &[("name", "text"), ("contact", "text")]).await.unwrap();
        tx.commit().await.unwrap();
        let mut mapping = current_mapping(&db.store, "several").await;
        mapping.custom_tables.push(
            serde_json::from_value(json!({
                "source_table": "account",
                "desk_table": "companies",
                "fields": [
                    {"source": "name", "target": "name"},
                    {"source": "primarycontactid/fullname", "target": "contact"},
                ],
                "removed_rows": "keep",
            }))
            .unwrap(),
        );
        deskbridge_sync::save_mappings(&db.store, &sources(5_000), "several", mapping, &clock()).await.unwrap();
        let accounts = emu.with_world(|w| {
            w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap().table("account").unwrap().rows.len()
        });
        let companies = |store: Store| async move {
            let mut tx = store.read().await.unwrap();
            let rows = tx.custom_rows("companies", None, 10_000).await.unwrap();
            tx.commit().await.unwrap();
            rows
        };

        // One table alone, as a schedule of the entity custom_tables:companies runs it.
        let one = |table: &str| deskbridge_sync::SyncOptions {
            entity: SyncEntity::CustomTables,
            table: Some(table.to_owned()),
            ..deskbridge_sync::SyncOptions::default()
        };
        let alone = deskbridge_sync::sync(&db.store, &sources(5_000), "several", &one("companies"), &clock()).await.unwrap();
        assert_eq!(alone.status, "succeeded", "{alone:?}");
        assert_eq!(alone.counts.created as usize, accounts);
        assert_eq!(companies(db.store.clone()).await.len(), accounts);
        assert!(rows(&db.store).await.is_empty(), "the other table was not read");
        let unknown = deskbridge_sync::sync(&db.store, &sources(5_000), "several", &one("nope"), &clock())
            .await
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("no custom table mapping fills desk table \"nope\"; the mapped desk tables are: contracts, companies"), "{unknown}");

        // Both, each its own partition with its own cursors: the contracts read in full for the
        // first time, the accounts from the delta link the one-table run stored (nothing new).
        let both = sync_tables(&db.store, "several", 5_000, false).await;
        assert_eq!(both.status, "succeeded", "{both:?}");
        assert_eq!(both.mode, "full");
        assert_eq!(both.counts.created as usize, contract_ids(&emu, &org_name).len());
        assert_eq!((both.counts.updated, both.counts.unchanged), (0, 0), "{both:?}");

        // With removed_rows "keep", an account deleted in Dynamics 365 stays on the desk, with a note.
        let first_account = emu.with_world(|w| {
            w.dataverse_orgs.iter().find(|o| o.name == org_name).unwrap().table("account").unwrap().rows[0].id.clone()
        });
        emu.with_world_mut(|w| {
            w.dataverse_org_mut(&org_name).unwrap().delete_row("account", &first_account, SystemClock.now()).unwrap();
        });
        let kept = deskbridge_sync::sync(&db.store, &sources(5_000), "several", &one("companies"), &clock()).await.unwrap();
        assert_eq!(kept.mode, "delta", "{kept:?}");
        assert_eq!(kept.counts.deactivated, 0);
        assert!(kept.notes.iter().any(|n| n.contains("kept, as the mapping's removed_rows is \"keep\"")), "{:?}", kept.notes);
        assert_eq!(companies(db.store.clone()).await.len(), accounts);
    }
}
