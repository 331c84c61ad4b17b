//! The Entra pipeline end to end against the emulator, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use deskbridge_connector_entra::{NewCredential, NewEntraConnection, add_entra_connection};
use deskbridge_core::{SharedClock, SystemClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};
use deskbridge_source::SourceRegistry;
use deskbridge_store::Entity;
use deskbridge_sync::{SyncError, SyncOptions, SyncOutcome};
use deskbridge_testkit::{TestDb, store_test};

mod apply;
mod liveness;
mod many;
mod mass_changes;
mod scenarios;
use serde_json::{Value, json};

/// The connectors, as the binary registers them.
fn sources() -> SourceRegistry {
    deskbridge_connectors::registry().with_endpoint_policy(
        deskbridge_source::settings::EndpointPolicy::allowing(["127.0.0.1"]),
    )
}

/// One sync of `name` through the Entra connector.
async fn sync(
    store: &deskbridge_store::Store,
    name: &str,
    options: &SyncOptions,
    clock: &SharedClock,
) -> Result<SyncOutcome, SyncError> {
    deskbridge_sync::sync(store, &sources(), name, options, clock).await
}

struct Fixture {
    emu: Emulator,
    tenant: String,
    http: reqwest::Client,
}

async fn emulator(users: usize) -> Fixture {
    let world = World::generate(&GenerateOptions {
        seed: 11,
        tenants: 1,
        users_per_tenant: Some(users),
        ..GenerateOptions::default()
    })
    .unwrap();
    let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
    let tenant = emu.summary().tenants[0].id.clone();
    Fixture {
        emu,
        tenant,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    async fn connect(&self, db: &TestDb, name: &str) {
        let summary = self.emu.summary();
        let app = summary
            .apps
            .iter()
            .find(|a| a.kind == "multi_tenant_secret")
            .unwrap();
        add_entra_connection(
            &db.store,
            &NewEntraConnection {
                name: name.into(),
                tenant_id: self.tenant.clone(),
                client_id: app.client_id.clone(),
                credential: NewCredential::ClientSecret {
                    value: app.client_secret.clone().unwrap(),
                    expires_at: None,
                },
                authority_host: Some(summary.authority_host.clone()),
                graph_url: Some(summary.graph_url.clone()),
                customer: Some("Contoso".into()),
                enabled_instances: None,
                last_sign_in: false,
            },
        )
        .await
        .unwrap();
    }

    /// The tenant's users as Graph returns them (the oracle the desk is compared with).
    async fn users(&self) -> Vec<Value> {
        let summary = self.emu.summary();
        let app = summary
            .apps
            .iter()
            .find(|a| a.kind == "multi_tenant_secret")
            .unwrap();
        let token = self.emu.issue_app_token(&app.client_id, &self.tenant).unwrap();
        let mut url = format!(
            "{}/users?$select=id,displayName,mail,userPrincipalName,accountEnabled,userType&$top=999",
            summary.graph_url
        );
        let mut out = Vec::new();
        loop {
            let page: Value = self
                .http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            out.extend(page["value"].as_array().unwrap().iter().cloned());
            match page["@odata.nextLink"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return out,
            }
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/tenants/{}/{path}", self.emu.admin_url(), self.tenant);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "admin {path}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn is_guest(user: &Value) -> bool {
    user["userType"].as_str() == Some("Guest")
        || user["userPrincipalName"]
            .as_str()
            .is_some_and(|u| u.contains("#EXT#"))
}

/// Desk users imported from the connection, by Azure object id.
async fn desk_users(db: &TestDb) -> BTreeMap<String, deskbridge_store::Record> {
    let mut tx = db.store.read().await.unwrap();
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = tx.list(Entity::User, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for user in page {
            if let Some(source) = &user.source {
                out.insert(source.external_id.clone(), user);
            }
        }
    }
    tx.commit().await.unwrap();
    out
}

/// The desk holds exactly the tenant's member users, mapped by the default field mappings.
async fn assert_desk_matches(db: &TestDb, fx: &Fixture) {
    let desk = desk_users(db).await;
    let members: Vec<Value> = fx.users().await.into_iter().filter(|u| !is_guest(u)).collect();
    for user in &members {
        let id = user["id"].as_str().unwrap();
        let record = desk
            .get(id)
            .unwrap_or_else(|| panic!("user {id} ({}) is not on the desk", user["displayName"]));
        assert_eq!(record.get("name"), &user["displayName"], "name of {id}");
        assert_eq!(record.get("email"), &user["mail"], "email of {id}");
        assert_eq!(
            record.get("network_login"),
            &user["userPrincipalName"],
            "login of {id}"
        );
        let enabled = user["accountEnabled"].as_bool().unwrap_or(true);
        assert_eq!(record.get("active"), &json!(enabled), "active of {id}");
    }
    let member_ids: Vec<&str> = members.iter().filter_map(|u| u["id"].as_str()).collect();
    for (id, record) in &desk {
        if !member_ids.contains(&id.as_str()) {
            assert_eq!(
                record.get("active"),
                &json!(false),
                "{id} is not in the tenant any more and must be inactive"
            );
        }
    }
}

store_test! {
    async fn full_then_delta_import_keeps_the_desk_equal_to_the_tenant(db: &TestDb) {
        let fx = emulator(40).await;
        fx.connect(db, "contoso").await;

        // A preview writes nothing and lists what the sync will do.
        let preview = sync(&db.store, "contoso", &SyncOptions { plan_only: true, ..SyncOptions::default() }, &clock()).await.unwrap();
        assert_eq!(preview.status, "planned");
        assert!(preview.run_id.is_none());
        let creates = preview.changes.as_ref().unwrap().iter().filter(|c| c.action == deskbridge_mapping::Action::Create).count();
        assert!(creates > 20, "{creates} creates planned");
        assert!(desk_users(db).await.is_empty(), "a preview writes nothing");

        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!(first.mode, "full");
        assert_eq!(first.counts.created, preview.counts.created, "the sync did what the preview showed");
        assert_desk_matches(db, &fx).await;

        let again = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(again.mode, "delta");
        assert_eq!((again.counts.created, again.counts.updated, again.counts.deactivated), (0, 0, 0), "{again:?}");

        // Change the tenant: rename, soft delete, hard delete, create.
        let members: Vec<Value> = fx.users().await.into_iter().filter(|u| !is_guest(u) && u["accountEnabled"] == json!(true)).collect();
        let renamed = members[0]["id"].as_str().unwrap().to_owned();
        let soft = members[1]["id"].as_str().unwrap().to_owned();
        let hard = members[2]["id"].as_str().unwrap().to_owned();
        fx.admin(reqwest::Method::PATCH, &format!("users/{renamed}"), Some(json!({"displayName": "Renamed Person"}))).await;
        fx.admin(reqwest::Method::DELETE, &format!("users/{soft}"), None).await;
        fx.admin(reqwest::Method::DELETE, &format!("users/{hard}?hard=true"), None).await;
        let domain = fx.emu.summary().tenants[0].domain.clone();
        let created = fx
            .admin(
                reqwest::Method::POST,
                "users",
                Some(json!({"displayName": "New Starter", "userPrincipalName": format!("new.starter@{domain}"),
                            "mail": format!("new.starter@{domain}"), "accountEnabled": true, "userType": "Member"})),
            )
            .await;
        let delta = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(delta.mode, "delta");
        assert_eq!(delta.status, "succeeded", "{:?}", delta.errors);
        // Updated: the renamed person, and the two licences whose consumed units the leavers freed
        // (a delta round reads the licence counts too).
        assert_eq!((delta.counts.created, delta.counts.updated, delta.counts.deactivated), (1, 3, 2), "{delta:?}");
        let mut tx = db.store.read().await.unwrap();
        let licences = tx.list(deskbridge_store::Entity::Licence, None, 100).await.unwrap();
        tx.commit().await.unwrap();
        let skus = fx.emu.with_world(|w| {
            let tenant = &w.tenants[0];
            tenant
                .skus
                .iter()
                .map(|s| (s.sku_id.clone(), tenant.consumed_units(&s.sku_id)))
                .collect::<std::collections::BTreeMap<_, _>>()
        });
        for licence in &licences {
            let sku = licence.get("sku_id").as_str().unwrap();
            assert_eq!(licence.get("consumed_units"), &json!(skus[sku]), "licence {sku} after the delta round");
        }
        let desk = desk_users(db).await;
        assert_eq!(desk[&renamed].get("name"), &json!("Renamed Person"));
        assert_eq!(desk[&soft].get("active"), &json!(false));
        assert_eq!(desk[&hard].get("active"), &json!(false));
        assert_eq!(desk[created["id"].as_str().unwrap()].get("name"), &json!("New Starter"));
        assert_desk_matches(db, &fx).await;

        // Restore: the user comes back active.
        fx.admin(reqwest::Method::POST, &format!("users/{soft}/restore"), None).await;
        let restored = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        // The user, and the licence whose unit the user takes again.
        assert_eq!(restored.counts.updated, 2, "{restored:?}");
        assert_eq!(desk_users(db).await[&soft].get("active"), &json!(true));
        assert_desk_matches(db, &fx).await;
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn an_expired_delta_token_falls_back_to_a_full_read_without_mass_deactivation(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded");
        let mut faults = fx.emu.faults();
        faults.delta_tokens_expired_before = Some(jiff::Timestamp::from_second(i64::from(u32::MAX)).unwrap());
        fx.emu.set_faults(faults);
        let second = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(second.mode, "full", "{second:?}");
        assert!(second.notes.iter().any(|n| n.contains("full import")), "{:?}", second.notes);
        assert_eq!((second.counts.created, second.counts.deactivated), (0, 0), "{second:?}");
        assert_desk_matches(db, &fx).await;
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn a_wrong_secret_fails_the_run_with_microsofts_code_and_a_remedy(db: &TestDb) {
        let fx = emulator(10).await;
        let summary = fx.emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        add_entra_connection(
            &db.store,
            &NewEntraConnection {
                name: "wrong".into(),
                tenant_id: fx.tenant.clone(),
                client_id: app.client_id.clone(),
                credential: NewCredential::ClientSecret { value: "not-the-secret".into(), expires_at: None },
                authority_host: Some(summary.authority_host.clone()),
                graph_url: Some(summary.graph_url.clone()),
                customer: None,
                enabled_instances: None,
                last_sign_in: false,
            },
        )
        .await
        .unwrap();
        let outcome = sync(&db.store, "wrong", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(outcome.status, "failed");
        let error = &outcome.errors[0];
        assert_eq!(error.code, "AADSTS7000215");
        assert!(error.remedy.as_deref().unwrap_or_default().to_lowercase().contains("value"), "{error:?}");
        let mut tx = db.store.read().await.unwrap();
        let stored = tx.errors_for_run(outcome.run_id.unwrap()).await.unwrap();
        assert_eq!(stored[0].code, "AADSTS7000215");
        assert!(desk_users(db).await.is_empty());
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn throttling_and_outages_reach_the_same_desk_and_retry_after_is_obeyed(db: &TestDb) {
        let fx = emulator(60).await;
        fx.connect(db, "contoso").await;
        let mut faults = fx.emu.faults();
        faults.random_429_percent = 20.0;
        faults.random_503_percent = 5.0;
        faults.dropped_connection_percent = 5.0;
        faults.retry_after_secs = 1;
        faults.seed = 5;
        fx.emu.set_faults(faults.clone());
        // Three full reads, so that a few dozen requests meet the faults.
        for _ in 0..3 {
            let outcome = sync(&db.store, "contoso", &SyncOptions { full: true, ..SyncOptions::default() }, &clock()).await.unwrap();
            assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        }
        fx.emu.set_faults(deskbridge_emulator::Faults::default());
        assert_desk_matches(db, &fx).await;

        let log = fx.emu.request_log();
        let graph: Vec<_> = log.iter().filter(|e| e.path.starts_with("/v1.0") && e.tenant.as_deref() == Some(fx.tenant.as_str())).collect();
        let refused = graph.iter().filter(|e| e.retry_after.is_some()).count();
        assert!(refused > 0, "the faults were injected ({} requests)", graph.len());
        for (i, entry) in graph.iter().enumerate() {
            let Some(wait) = entry.retry_after else { continue };
            let not_before = entry.time.checked_add(jiff::SignedDuration::from_secs(wait as i64)).unwrap();
            // Requests already in flight when the refusal was answered (concurrent member listings)
            // could not know of it; anything sent after it must wait.
            let in_flight_until = entry.time.checked_add(jiff::SignedDuration::from_millis(100)).unwrap();
            for later in graph[i + 1..].iter().filter(|l| l.time > in_flight_until) {
                assert!(later.time >= not_before, "{} {} came {} after a Retry-After of {wait}s", later.method, later.path, later.time.duration_since(entry.time));
            }
        }
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn group_membership_changes_reach_the_desk_through_delta(db: &TestDb) {
        let fx = emulator(30).await;
        fx.connect(db, "contoso").await;
        let group = fx.admin(reqwest::Method::POST, "groups", Some(json!({"displayName": "Desk Staff", "securityEnabled": true}))).await;
        let group_id = group["id"].as_str().unwrap().to_owned();
        let members: Vec<String> = fx
            .users()
            .await
            .into_iter()
            .filter(|u| !is_guest(u) && u["accountEnabled"] == json!(true))
            .filter_map(|u| u["id"].as_str().map(str::to_owned))
            .take(3)
            .collect();
        for m in &members[..2] {
            fx.admin(reqwest::Method::POST, &format!("groups/{group_id}/members"), Some(json!({"id": m}))).await;
        }
        // Map the group to a user role on the desk.
        let mut tx = db.store.begin(deskbridge_store::WriteContext::manual()).await.unwrap();
        let role = tx.insert(Entity::UserRole, None, &[("name".to_owned(), json!("Staff"))].into_iter().collect()).await.unwrap();
        let connection = tx.connection_by_name("contoso").await.unwrap().unwrap();
        let mut config = connection.config.clone();
        config["mapping"]["advanced"]["user_roles"] = json!([{"group": "Desk Staff", "id": role.0}]);
        tx.update_connection_config(connection.id, &config).await.unwrap();
        tx.commit().await.unwrap();

        let first = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        let roles = |desk: &BTreeMap<String, deskbridge_store::Record>, id: &str| desk[id].get("roles").clone();
        let desk = desk_users(db).await;
        assert_eq!(roles(&desk, &members[0]), json!([role.0]));
        assert_eq!(roles(&desk, &members[1]), json!([role.0]));
        assert_eq!(roles(&desk, &members[2]), json!([]));

        // One leaves the group, another joins: only groups/delta reports it. Group → user role
        // mappings add roles and never take them away (only agents have full role management),
        // so the leaver keeps the role and the joiner gains it.
        fx.admin(reqwest::Method::DELETE, &format!("groups/{group_id}/members/{}", members[0]), None).await;
        fx.admin(reqwest::Method::POST, &format!("groups/{group_id}/members"), Some(json!({"id": members[2]}))).await;
        let delta = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(delta.mode, "delta");
        assert_eq!((delta.counts.updated, delta.counts.unchanged), (1, 1), "{delta:?}");
        let desk = desk_users(db).await;
        assert_eq!(roles(&desk, &members[0]), json!([role.0]));
        assert_eq!(roles(&desk, &members[1]), json!([role.0]));
        assert_eq!(roles(&desk, &members[2]), json!([role.0]));
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn every_graph_request_of_a_run_is_in_the_outbound_log(db: &TestDb) {
        let fx = emulator(10).await;
        fx.connect(db, "contoso").await;
        let outcome = sync(&db.store, "contoso", &SyncOptions::default(), &clock()).await.unwrap();
        let mut tx = db.store.read().await.unwrap();
        let logged = tx.outbound_log(outcome.run_id, 1_000).await.unwrap();
        let graph_requests = fx.emu.request_log().iter().filter(|e| e.path.starts_with("/v1.0")).count();
        assert_eq!(logged.len(), graph_requests, "one outbound log row per Graph request");
        assert!(logged.iter().all(|l| l["status"] == json!(200) && l["request_id"].is_string()), "{logged:?}");
        assert!(logged.iter().any(|l| l["url"].as_str().is_some_and(|u| u.starts_with("/v1.0/users"))));
        let text = format!("{logged:?}");
        assert!(!text.contains("eyJ"), "no token in the log");
        fx.emu.shutdown().await;
    }
}

store_test! {
    async fn last_sign_in_is_imported_on_premium_tenants_and_fails_clearly_elsewhere(db: &TestDb) {
        let world = World::generate(&GenerateOptions { seed: 1, tenants: 4, users_per_tenant: Some(20), ..GenerateOptions::default() })
            .unwrap();
        let emu = Emulator::start(EmulatorConfig::new(world)).await.unwrap();
        let summary = emu.summary();
        let app = summary.apps.iter().find(|a| a.kind == "multi_tenant_secret").unwrap();
        let premium = summary.tenants.iter().find(|t| t.premium).expect("a premium tenant");
        let basic = summary.tenants.iter().find(|t| !t.premium).expect("a non-premium tenant");
        for (name, tenant) in [("premium", premium), ("basic", basic)] {
            add_entra_connection(
                &db.store,
                &NewEntraConnection {
                    name: name.into(),
                    tenant_id: tenant.id.clone(),
                    client_id: app.client_id.clone(),
                    credential: NewCredential::ClientSecret { value: app.client_secret.clone().unwrap(), expires_at: None },
                    authority_host: Some(summary.authority_host.clone()),
                    graph_url: Some(summary.graph_url.clone()),
                    customer: Some(tenant.display_name.clone()),
                    enabled_instances: None,
                    last_sign_in: true,
                },
            )
            .await
            .unwrap();
        }
        let good = sync(&db.store, "premium", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(good.status, "succeeded", "{:?}", good.errors);
        let signed_in = desk_users(db).await.values().filter(|u| u.get("last_sign_in").is_string()).count();
        assert!(signed_in > 0, "sign-in dates were imported");

        let before = desk_users(db).await.len();
        let bad = sync(&db.store, "basic", &SyncOptions::default(), &clock()).await.unwrap();
        assert_eq!(bad.status, "partial", "{bad:?}");
        let error = bad.errors.iter().find(|e| e.code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant").expect("the non-premium error");
        assert_eq!(error.tenant_id.as_deref(), Some(basic.id.as_str()));
        assert!(error.remedy.as_deref().unwrap_or_default().contains("P1"), "{error:?}");
        assert!(desk_users(db).await.len() > before, "the tenant's users were imported all the same");
        emu.shutdown().await;
    }
}
