//! Dynamics 365 connections from end to end against the emulator, on SQLite and PostgreSQL: every
//! connection property refused with a message naming it, a connection string imported, "test
//! connection" failing for each reason with its remedy and passing with "connection available",
//! an AzureAD sign-in, and contacts read over several pages with change tracking.

use deskbridge_connector_dynamics::{CONNECTION_AVAILABLE, SECRET_REFRESH_TOKEN};
use deskbridge_core::{Clock as _, SystemClock};
use deskbridge_store::{Entity, RecordScope, Store};
use deskbridge_testkit::store_test;
use serde_json::{Map, Value, json};

use crate::{add, app, check, clock, connection, emulator, org, point, service_principal, sources, sync};

/// The desk users the connection imported: (external id, active, name).
async fn imported(store: &Store, name: &str, tenant: &str) -> Vec<(String, bool, String)> {
    let scope = RecordScope::OfConnectionTenant {
        connection: connection(store, name).await.id,
        tenant_id: tenant.to_owned(),
        external_ids: Vec::new(),
    };
    let mut tx = store.read().await.unwrap();
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = tx.list_scoped(Entity::User, &scope, after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(page.into_iter().map(|r| {
            (
                r.source
                    .as_ref()
                    .map(|s| s.external_id.clone())
                    .unwrap_or_default(),
                r.get("active").as_bool().unwrap_or(true),
                r.get("name").as_str().unwrap_or_default().to_owned(),
            )
        }));
    }
    tx.commit().await.unwrap();
    out
}

fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut settings = base.clone();
    settings[key] = value;
    settings
}

fn without(base: &Value, key: &str) -> Value {
    let mut settings = base.clone();
    settings.as_object_mut().unwrap().remove(key);
    settings
}

store_test! {
    async fn every_connection_property_is_refused_with_a_message_naming_it(db: &TestDb) {
        let emu = emulator(41, 5).await;
        let good = service_principal(&emu);
        let refused = |settings: Value| async { add(&db.store, "refused", settings).await.unwrap_err().to_string() };
        // Name.
        let name = add(&db.store, "  ", good.clone()).await.unwrap_err().to_string();
        assert!(name.contains("Connection name: required"), "{name}");
        // URL: missing, not a URL, not Microsoft's (nor allowed), a Web API path, not an organisation.
        let e = refused(without(&good, "url")).await;
        assert!(e.contains("URL: required"), "{e}");
        let e = refused(with(&good, "url", json!("contoso"))).await;
        assert!(e.contains("URL: \"contoso\" is not a URL"), "{e}");
        let e = refused(with(&good, "url", json!("https://contoso.example.com"))).await;
        assert!(e.contains("URL: contoso.example.com is not one of Microsoft's cloud endpoints"), "{e}");
        let e = refused(with(&good, "url", json!("https://contoso.crm.dynamics.com/api/data/v9.2"))).await;
        assert!(e.contains("URL: \"https://contoso.crm.dynamics.com/api/data/v9.2\" is the Web API's address"), "{e}");
        let e = refused(with(&good, "url", json!("http://contoso.crm.dynamics.com"))).await;
        assert!(e.contains("URL: \"http://contoso.crm.dynamics.com\": Microsoft's endpoints are reached over https"), "{e}");
        // CRM version.
        let e = refused(with(&good, "crm_version", json!("CRM2011+"))).await;
        assert!(e.contains("CRM version: \"CRM2011+\" is not one of CRMOnline"), "{e}");
        // Azure tenant.
        let e = refused(with(&good, "tenant_id", json!("not a tenant"))).await;
        assert!(e.contains("Azure tenant: \"not a tenant\" is neither a tenant id"), "{e}");
        // Client ID.
        let e = refused(with(&good, "client_id", json!("my-app"))).await;
        assert!(e.contains("Client ID: \"my-app\" is not a GUID"), "{e}");
        // Client secret: required for a service principal.
        let e = refused(without(&good, "client_secret")).await;
        assert!(e.contains("Client secret: required for AuthScheme AzureServicePrincipal"), "{e}");
        // Certificate: one that cannot sign, and not with a secret.
        let e = refused(with(&without(&good, "client_secret"), "certificate_pem", json!("-----BEGIN CERTIFICATE-----\nnope\n"))).await;
        assert!(e.contains("Certificate and private key (PEM): the certificate cannot be used"), "{e}");
        let e = refused(with(&good, "certificate_pem", json!("pem"))).await;
        assert!(e.contains("Client secret / Certificate: give one credential"), "{e}");
        // AuthScheme.
        let e = refused(with(&good, "auth_scheme", json!("Basic"))).await;
        assert!(e.contains("AuthScheme: \"Basic\" is not one of AzureServicePrincipal, AzureAD"), "{e}");
        // Callback URL.
        let e = refused(with(&good, "callback_url", json!("http://desk.example.com/callback"))).await;
        assert!(e.contains("Callback URL: \"http://desk.example.com/callback\": Microsoft accepts http redirect URIs only on localhost"), "{e}");
        // Authority host.
        let e = refused(with(&good, "authority_host", json!("https://login.evil.example"))).await;
        assert!(e.contains("Identity platform host: login.evil.example is not one of Microsoft's"), "{e}");
        // An unknown setting.
        let e = refused(with(&good, "colour", json!("blue"))).await;
        assert!(e.contains("unknown setting \"colour\""), "{e}");
        // Nothing was written by any of them.
        let mut tx = db.store.read().await.unwrap();
        assert!(tx.connections().await.unwrap().is_empty());
        tx.commit().await.unwrap();
        // And the good settings make a connection.
        add(&db.store, "good", good).await.unwrap();
    }
}

store_test! {
    async fn a_connection_string_gives_the_same_settings_and_validation(db: &TestDb) {
        let emu = emulator(42, 5).await;
        let (url, tenant, _) = org(&emu);
        let (client, secret) = app(&emu, "multi_tenant_secret");
        let authority = emu.summary().authority_host;
        let string = format!(
            "URL={url}/;CRMVersion=CRMOnline;InitiateOAuth=GETANDREFRESH;AzureTenant={tenant};\
             OAuthClientId={client};OAuthClientSecret='{secret}';AuthScheme=AzureServicePrincipal;\
             CallbackURL=http://localhost:33333;AuthorityHost={authority}"
        );
        let parsed = deskbridge_connector_dynamics::connection_string::parse(&string).unwrap();
        let imported = add(&db.store, "from-string", Value::Object(parsed.settings)).await.unwrap();
        assert_eq!(imported.config["url"], url.as_str());
        assert_eq!(imported.config["tenant_id"], tenant.to_ascii_lowercase().as_str());
        assert_eq!(imported.config["auth_scheme"], "AzureServicePrincipal");
        assert_eq!(imported.config["callback_url"], "http://localhost:33333");
        assert!(imported.config.get("client_secret").is_none(), "secrets are sealed, not stored");
        let points = check(&db.store, "from-string").await;
        assert_eq!(point(&points, "result").detail, CONNECTION_AVAILABLE, "{points:#?}");
        // The same validation: a bad value in the string is refused by its setting's name.
        let bad = deskbridge_connector_dynamics::connection_string::parse(&string.replace("CRMOnline", "CRM2011+")).unwrap();
        let e = add(&db.store, "bad-string", Value::Object(bad.settings)).await.unwrap_err().to_string();
        assert!(e.contains("CRM version: \"CRM2011+\""), "{e}");
        let unknown = deskbridge_connector_dynamics::connection_string::parse(&format!("{string};Colour=blue"))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown key \"Colour\""), "{unknown}");
    }
}

store_test! {
    async fn test_connection_says_connection_available_or_exactly_why_not(db: &TestDb) {
        let emu = emulator(43, 5).await;
        let good = service_principal(&emu);
        let (url, _, org_name) = org(&emu);
        let (client, _) = app(&emu, "multi_tenant_secret");

        add(&db.store, "ok", good.clone()).await.unwrap();
        let points = check(&db.store, "ok").await;
        assert!(points.iter().all(|p| p.ok), "{points:#?}");
        assert_eq!(point(&points, "result").detail, CONNECTION_AVAILABLE);
        assert!(point(&points, "url").detail.contains("is a Dataverse organisation"), "{points:#?}");

        // A URL that is no organisation: the Web API answers 404.
        let wrong = url.replace(&format!("/org/{org_name}"), "/org/nosuchorg");
        add(&db.store, "wrong-url", with(&good, "url", json!(wrong))).await.unwrap();
        let points = check(&db.store, "wrong-url").await;
        let p = point(&points, "url");
        assert!(!p.ok && p.detail.contains("is not a Dataverse organisation") && p.detail.contains("404"), "{p:?}");
        assert!(p.remedy.contains("Environment URL"), "{p:?}");
        assert!(point(&points, "result").detail.starts_with("connection unavailable: url"), "{points:#?}");

        // A URL nothing answers at.
        add(&db.store, "unreachable", with(&good, "url", json!("http://127.0.0.1:9/org/x"))).await.unwrap();
        let points = check(&db.store, "unreachable").await;
        let p = point(&points, "url");
        assert!(!p.ok && p.detail.contains("cannot be reached"), "{p:?}");

        // A wrong secret, then an expired one.
        add(&db.store, "bad-secret", with(&good, "client_secret", json!("not-the-secret"))).await.unwrap();
        let p = point(&check(&db.store, "bad-secret").await, "sign-in").clone();
        assert!(!p.ok && p.detail.contains("AADSTS7000215"), "{p:?}");
        assert!(p.remedy.contains("not its Secret ID"), "{p:?}");
        emu.update_faults(|f| f.expired_secret_apps = vec![client.clone()]);
        let p = point(&check(&db.store, "ok").await, "sign-in").clone();
        assert!(!p.ok && p.detail.contains("AADSTS7000222"), "{p:?}");
        assert!(p.remedy.contains("The client secret has expired"), "{p:?}");
        emu.update_faults(|f| f.expired_secret_apps.clear());

        // The app is not an application user of the organisation.
        let saved = emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let saved = org.application_users.clone();
            org.application_users.retain(|u| u.client_id != client);
            saved
        });
        let points = check(&db.store, "ok").await;
        let p = point(&points, "organisation");
        assert!(!p.ok && p.detail.contains("is not an application user") && p.detail.contains("0x80072560"), "{p:?}");
        assert!(p.remedy.contains("Application users"), "{p:?}");
        assert!(!point(&points, "read contact").ok, "blocked");

        // It is, but its role cannot read contacts.
        emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            org.application_users = saved;
            for user in org.application_users.iter_mut().filter(|u| u.client_id == client) {
                user.read_tables = Some(vec!["account".into()]);
            }
        });
        let points = check(&db.store, "ok").await;
        assert!(point(&points, "organisation").ok, "{points:#?}");
        let p = point(&points, "read contact");
        assert!(!p.ok && p.detail.contains("no Read privilege on contact (0x80040220)"), "{p:?}");
        assert!(p.remedy.contains("Read privilege on Contact"), "{p:?}");
        assert!(point(&points, "read account").ok, "{points:#?}");
        assert!(!point(&points, "result").ok);
    }
}

/// What the browser does: open the authorize URL (the emulator signs in at once with
/// auto-approve) and come back with the redirect's Location.
async fn browser(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "the authorize endpoint redirects back");
    response.headers()["location"].to_str().unwrap().to_owned()
}

store_test! {
    async fn an_azure_ad_connection_signs_a_user_in_and_imports_with_the_sealed_refresh_token(db: &TestDb) {
        let emu = emulator(44, 30).await;
        emu.set_auto_approve(true);
        let (_, tenant, _) = org(&emu);
        let settings = with(&service_principal(&emu), "auth_scheme", json!("AzureAD"));
        let created = add(&db.store, "azuread", settings).await.unwrap();
        let registry = sources(5_000);
        let sign_in = registry.get("dynamics").unwrap().sign_in().unwrap();
        assert_eq!(sign_in.authorised(&db.store, &created).await.unwrap(), Some(false));
        let p = point(&check(&db.store, "azuread").await, "sign-in").clone();
        assert!(!p.ok && p.detail.contains("not authorised yet"), "{p:?}");
        assert!(p.remedy.contains("deskbridge connection authorize --name azuread"), "{p:?}");

        let redirect_uri = "http://127.0.0.1:8765/callback";
        let url = sign_in.begin(&db.store, &created, redirect_uri, &clock()).await.unwrap();
        let query: std::collections::HashMap<_, _> = url::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(query["scope"].split(' ').any(|s| s.ends_with("/user_impersonation")), "{url}");
        assert!(query["scope"].split(' ').any(|s| s == "offline_access"), "{url}");
        let back = browser(&url).await;
        sign_in.complete(&db.store, &created, &back, &clock()).await.unwrap();
        assert_eq!(sign_in.authorised(&db.store, &created).await.unwrap(), Some(true));
        let sealed = |store: Store| async move {
            let mut tx = store.read().await.unwrap();
            let token = tx
                .get_secret(&deskbridge_source::ConnectionSecrets(created.id).reference(SECRET_REFRESH_TOKEN))
                .await
                .unwrap()
                .map(|t| t.as_str().to_owned());
            tx.commit().await.unwrap();
            token
        };
        let first = sealed(db.store.clone()).await.expect("the refresh token is sealed");
        // The same redirect cannot be used twice.
        let replay = sign_in.complete(&db.store, &created, &back, &clock()).await.unwrap_err();
        assert!(replay.to_string().contains("already been used"), "{replay}");

        let points = check(&db.store, "azuread").await;
        assert_eq!(point(&points, "result").detail, CONNECTION_AVAILABLE, "{points:#?}");
        let outcome = sync(&db.store, "azuread", 5_000, false).await;
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.created, 30);
        assert_eq!(imported(&db.store, "azuread", &tenant).await.len(), 30);
        // Microsoft rotated the refresh token while the check and the sync used it: the new one is sealed.
        let rotated = sealed(db.store.clone()).await.expect("still sealed");
        assert_ne!(rotated, first, "the rotated refresh token replaced the first");
    }
}

store_test! {
    async fn contacts_are_read_in_pages_then_only_their_changes_and_in_full_when_the_token_expired(db: &TestDb) {
        // 120 contacts, 50 a page: three pages, so paging cookies are followed on every read.
        let emu = emulator(45, 120).await;
        let (_, tenant, org_name) = org(&emu);
        add(&db.store, "contacts", service_principal(&emu)).await.unwrap();

        let first = sync(&db.store, "contacts", 50, false).await;
        assert_eq!(first.status, "succeeded", "{:?}", first.errors);
        assert_eq!(first.mode, "full");
        assert_eq!(first.counts.created, 120);
        let people = imported(&db.store, "contacts", &tenant).await;
        assert_eq!(people.len(), 120);
        assert!(people.iter().all(|(_, active, name)| *active && !name.is_empty()));

        // Change tracking: two created, one renamed, one deleted.
        let now = SystemClock.now();
        let (renamed, deleted) = emu.with_world_mut(|w| {
            let org = w.dataverse_org_mut(&org_name).unwrap();
            let mut ids: Vec<String> = org.table("contact").unwrap().rows.iter().map(|r| r.id.clone()).collect();
            ids.sort();
            for name in ["Grace Hopper", "Katherine Johnson"] {
                let (first, last) = name.split_once(' ').unwrap();
                let mut values = Map::new();
                values.insert("fullname".into(), json!(name));
                values.insert("firstname".into(), json!(first));
                values.insert("lastname".into(), json!(last));
                values.insert("statecode".into(), json!(0));
                org.insert_row("contact", None, values, now).unwrap();
            }
            let mut values = Map::new();
            values.insert("fullname".into(), json!("Ada King"));
            org.update_row("contact", &ids[0], values, now).unwrap();
            org.delete_row("contact", &ids[1], now).unwrap();
            (ids[0].clone(), ids[1].clone())
        });
        let delta = sync(&db.store, "contacts", 50, false).await;
        assert_eq!(delta.status, "succeeded", "{:?}", delta.errors);
        assert_eq!(delta.mode, "delta");
        let c = delta.counts;
        assert_eq!((c.created, c.updated, c.deactivated), (2, 1, 1), "{delta:?}");
        let people = imported(&db.store, "contacts", &tenant).await;
        assert!(people.iter().any(|(id, _, name)| *id == renamed && name == "Ada King"));
        assert!(people.iter().any(|(id, active, _)| *id == deleted && !active));
        assert!(people.iter().any(|(_, _, name)| name == "Grace Hopper"));

        // A delta with nothing to say writes nothing.
        let quiet = sync(&db.store, "contacts", 50, false).await;
        assert_eq!(quiet.mode, "delta");
        assert_eq!((quiet.counts.created, quiet.counts.updated, quiet.counts.deactivated), (0, 0, 0));

        // The token expires: a note, a full read, nothing changed by it.
        emu.with_world_mut(|w| {
            w.dataverse_org_mut(&org_name).unwrap().change_tokens_expired_before = Some(SystemClock.now());
        });
        // Delta tokens carry their time to the second: the next one must be issued after it.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let expired = sync(&db.store, "contacts", 50, false).await;
        assert_eq!(expired.status, "succeeded", "{:?}", expired.errors);
        assert_eq!(expired.mode, "full", "{expired:?}");
        assert!(expired.notes.iter().any(|n| n.contains("change-tracking token has expired")), "{:?}", expired.notes);
        assert_eq!((expired.counts.created, expired.counts.updated, expired.counts.deactivated), (0, 0, 0));
        // And tracking starts again from the full read.
        assert_eq!(sync(&db.store, "contacts", 50, false).await.mode, "delta");
    }
}

store_test! {
    async fn an_edit_that_moves_an_endpoint_drops_the_credential_and_cursors_can_be_cleared(db: &TestDb) {
        let emu = emulator(46, 12).await;
        let (url, _, _) = org(&emu);
        add(&db.store, "edited", service_principal(&emu)).await.unwrap();
        assert_eq!(sync(&db.store, "edited", 5_000, false).await.status, "succeeded");
        let registry = sources(5_000);
        let source = registry.get("dynamics").unwrap();
        let cx = deskbridge_source::SourceContext::detached(db.store.clone(), clock());
        let report = source.cursors(&cx, &connection(&db.store, "edited").await).await.unwrap();
        assert!(report.lines[0].1.contains("change-tracking link saved"), "{:?}", report.lines);
        assert_eq!(sync(&db.store, "edited", 5_000, false).await.mode, "delta");
        source
            .reset_cursors(&cx, &connection(&db.store, "edited").await, deskbridge_source::CursorReset::Clear)
            .await
            .unwrap();
        assert_eq!(sync(&db.store, "edited", 5_000, false).await.mode, "full");

        let policy = registry.endpoint_policy();
        let edit = |settings: Value| async move {
            let values = deskbridge_source::settings::validate(
                source.settings(),
                settings.as_object().unwrap(),
                deskbridge_source::settings::Purpose::Edit,
                policy,
            )
            .unwrap();
            source.edit(&db.store, &connection(&db.store, "edited").await, values).await
        };
        // The same URL again is no move; another organisation's URL is, and the secret goes with it.
        edit(json!({ "url": format!("{url}/") })).await.unwrap();
        assert_eq!(point(&check(&db.store, "edited").await, "result").detail, CONNECTION_AVAILABLE);
        let elsewhere = url.replace("/org/", "/org/x");
        edit(json!({ "url": elsewhere })).await.unwrap();
        edit(json!({ "url": url })).await.unwrap();
        let p = point(&check(&db.store, "edited").await, "sign-in").clone();
        assert!(!p.ok && p.detail.contains("has no client secret stored"), "{p:?}");
        // Given again, it works again.
        let (_, secret) = app(&emu, "multi_tenant_secret");
        edit(json!({ "client_secret": secret })).await.unwrap();
        assert_eq!(point(&check(&db.store, "edited").await, "result").detail, CONNECTION_AVAILABLE);
        // A service principal cannot be left without a credential, and edits are validated too.
        let e = edit(json!({ "callback_url": "http://desk.example.com/cb" })).await.unwrap_err().to_string();
        assert!(e.contains("Callback URL:"), "{e}");
    }
}

store_test! {
    async fn more_than_two_pages_of_five_thousand_contacts_are_read_with_their_paging_cookies(db: &TestDb) {
        let emu = emulator(47, 10_050).await;
        let (_, tenant, _) = org(&emu);
        add(&db.store, "big", service_principal(&emu)).await.unwrap();
        let outcome = sync(&db.store, "big", 5_000, false).await;
        assert_eq!(outcome.status, "succeeded", "{:?}", outcome.errors);
        assert_eq!(outcome.counts.created, 10_050);
        assert_eq!(imported(&db.store, "big", &tenant).await.len(), 10_050);
        // Three pages (5,000, 5,000 and 50), the second and third asked by their nextLink's paging cookie.
        let pages = emu
            .request_log()
            .into_iter()
            .filter(|entry| entry.path.contains("/contacts"))
            .map(|entry| entry.path)
            .collect::<Vec<_>>();
        assert_eq!(pages.len(), 3, "{pages:#?}");
        assert!(pages[1..].iter().all(|p| p.contains("skiptoken")), "{pages:#?}");
    }
}
