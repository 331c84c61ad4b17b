#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Dataverse client end to end against the in-process emulator (and a broken server).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use deskbridge_core::{ManualClock, SharedClock, SystemClock};
use deskbridge_dataverse::*;
use deskbridge_emulator::{Emulator, EmulatorConfig, Faults, GenerateOptions, ServiceLimits, Summary, World};
use deskbridge_msauth::{
    AccessToken, AppCredentials, AppTokenProvider, AuthError, Authority, BoxFuture, ClientCredential,
    TokenClient, TokenProvider,
};
use serde_json::{Map, json};

async fn start(clock: SharedClock, contacts: usize) -> (Emulator, Summary) {
    let world = World::generate(&GenerateOptions {
        seed: 21,
        tenants: 2,
        users_per_tenant: Some(10),
        dataverse_contacts: Some(contacts),
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut config = EmulatorConfig::new(world);
    config.clock = clock;
    let emulator = Emulator::start(config).await.unwrap();
    let summary = emulator.summary();
    (emulator, summary)
}

fn tokens(summary: &Summary, clock: SharedClock, kind: &str) -> Arc<dyn TokenProvider> {
    let app = summary.apps.iter().find(|a| a.kind == kind).unwrap();
    let credentials = AppCredentials {
        client_id: app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            app.client_secret.clone().unwrap().into(),
        )),
    };
    let client = TokenClient::new(
        reqwest::Client::new(),
        Authority::new(&summary.authority_host).unwrap(),
        clock,
    );
    Arc::new(AppTokenProvider::new(client, credentials))
}

fn client(
    summary: &Summary,
    clock: SharedClock,
    kind: &str,
    tweak: impl FnOnce(&mut DataverseConfig),
) -> DataverseClient {
    let org = &summary.dataverse_orgs[0];
    let mut config = DataverseConfig::new(org.url.clone(), org.tenant.clone());
    config.backoff_base = Duration::from_millis(20);
    tweak(&mut config);
    DataverseClient::new(reqwest::Client::new(), config, tokens(summary, clock, kind)).unwrap()
}

#[tokio::test]
async fn connection_test_and_its_failures() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone(), 20).await;
    let dv = client(&summary, clock.clone(), "multi_tenant_secret", |_| {});
    let who = dv.who_am_i().await.unwrap();
    assert_eq!(
        who.organization_id,
        emulator.with_world(|w| w.dataverse_orgs[0].organization_id.clone())
    );
    assert!(dv.api_url().ends_with("/api/data/v9.2"));

    // An application user without read privilege on contacts.
    let reader = client(&summary, clock.clone(), "single_tenant", |_| {});
    reader.who_am_i().await.unwrap();
    let err = reader
        .get_page(&Query::new("contacts").select(["fullname"]))
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(DataverseErrorClass::MissingPrivilege));
    assert_eq!(err.api().unwrap().code, codes::MISSING_PRIVILEGE);
    assert!(err.remedy().contains("security role"));

    // The secret has expired: the token endpoint refuses it.
    let expired = client(&summary, clock.clone(), "expired_secret", |_| {});
    let err = expired.who_am_i().await.unwrap_err();
    assert!(matches!(err, DataverseError::Auth { .. }), "{err}");

    // A URL that is not an organisation: no token for that resource.
    let org = &summary.dataverse_orgs[0];
    let wrong = DataverseClient::new(
        reqwest::Client::new(),
        DataverseConfig::new(format!("{}/org/nosuchorg", summary.base_url), org.tenant.clone()),
        tokens(&summary, clock.clone(), "multi_tenant_secret"),
    )
    .unwrap();
    assert!(matches!(
        wrong.who_am_i().await.unwrap_err(),
        DataverseError::Auth { .. }
    ));
    assert!(
        DataverseClient::new(
            reqwest::Client::new(),
            DataverseConfig::new("not a url", "t"),
            tokens(&summary, clock.clone(), "multi_tenant_secret")
        )
        .is_err()
    );

    // Not an application user of the organisation.
    emulator.with_world_mut(|w| w.dataverse_orgs[0].application_users.clear());
    let err = dv.who_am_i().await.unwrap_err();
    assert_eq!(err.class(), Some(DataverseErrorClass::NotAMember));
    assert!(err.remedy().contains("application user"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn pages_rows_annotations_lookups_and_expands() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone(), 300).await;
    let dv = client(&summary, clock, "multi_tenant_secret", |_| {});
    let query = Query::new("contacts")
        .select([
            "fullname",
            "emailaddress1",
            "gendercode",
            "cr7a1_hobbies",
            "_parentcustomerid_value",
            "modifiedon",
            "birthdate",
        ])
        .page_size(70)
        .count()
        .formatted_values();
    let mut pager = dv.pager(&query);
    let mut rows = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        pages += 1;
        assert_eq!(page.count, Some(300));
        rows.extend(page.rows);
    }
    assert_eq!((rows.len(), pages), (300, 5));
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r.guid("contactid").unwrap().unwrap())
        .collect();
    assert_eq!(ids.len(), 300);

    let to_account = rows
        .iter()
        .filter_map(|r| r.lookup("parentcustomerid").unwrap())
        .find(|l| l.logical_name.as_deref() == Some("account"))
        .unwrap();
    assert_eq!(
        to_account.navigation_property.as_deref(),
        Some("parentcustomerid_account")
    );
    assert!(to_account.name.is_some());
    assert!(
        rows.iter()
            .any(|r| r.lookup("parentcustomerid").unwrap().is_none())
    );
    let multi = rows
        .iter()
        .find(|r| !r.options("cr7a1_hobbies").unwrap().is_empty())
        .unwrap();
    assert_eq!(
        multi.options("cr7a1_hobbies").unwrap().len(),
        multi.option_labels("cr7a1_hobbies").len()
    );
    let female = rows
        .iter()
        .find(|r| r.option("gendercode").unwrap() == Some(2))
        .unwrap();
    assert_eq!(female.formatted("gendercode"), Some("Female"));
    assert!(rows.iter().all(|r| r.timestamp("modifiedon").unwrap().is_some()));
    assert!(rows.iter().any(|r| r.date("birthdate").unwrap().is_some()));
    assert!(rows[0].etag().unwrap().starts_with("W/\""));
    assert!(
        rows[0].i64("fullname").is_err(),
        "a wrong type is an error, not a default"
    );

    // A filter with the last-sync time as an unquoted date, and a grandchild through $expand.
    let since = jiff::Timestamp::from_second(0).unwrap();
    let contracts = dv
        .get_all(
            &Query::new("cr7a1_contracts")
                .select(["cr7a1_name", "cr7a1_tier"])
                .filter(format!(
                    "modifiedon ge {} and statecode eq 0",
                    filter::date_time(since)
                ))
                .expand(
                    Expand::new("cr7a1_contactid")
                        .select(["fullname"])
                        .expand(Expand::new("parentcustomerid_account").select(["name"])),
                )
                .order_by("cr7a1_name", false),
        )
        .await
        .unwrap();
    assert!(!contracts.is_empty());
    let grandchild = contracts
        .iter()
        .filter_map(|c| c.expanded("cr7a1_contactid").unwrap())
        .find_map(|contact| contact.expanded("parentcustomerid_account").unwrap())
        .unwrap();
    assert!(grandchild.str("name").unwrap().is_some());
    let accounts = dv
        .get_all(
            &Query::new("accounts")
                .select(["name"])
                .expand(Expand::new("contact_customer_accounts").select(["fullname"])),
        )
        .await
        .unwrap();
    assert!(
        accounts
            .iter()
            .any(|a| !a.expanded_many("contact_customer_accounts").unwrap().is_empty())
    );
    // ContainValues through the filter helpers.
    let nine = dv
        .get_all(
            &Query::new("contacts")
                .select(["cr7a1_hobbies"])
                .filter(filter::contain_values("cr7a1_hobbies", &[9])),
        )
        .await
        .unwrap();
    assert!(
        nine.iter()
            .all(|r| r.options("cr7a1_hobbies").unwrap().contains(&9))
    );
    // One row.
    let id = rows[0].guid("contactid").unwrap().unwrap();
    let one = dv
        .retrieve("contacts", &id, &["fullname"], Annotations::None)
        .await
        .unwrap();
    assert_eq!(one.str("fullname").unwrap(), rows[0].str("fullname").unwrap());
    // A bad query carries Dataverse's code.
    let err = dv
        .get_page(&Query::new("contacts").select(["nosuchcolumn"]))
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(DataverseErrorClass::BadQuery));
    assert_eq!(err.api().unwrap().code, codes::BAD_QUERY);
    emulator.shutdown().await;
}

#[tokio::test]
async fn change_tracking_round_trip_and_expired_tokens() {
    let manual = Arc::new(ManualClock::new("2026-11-01T00:00:00Z".parse().unwrap()));
    let clock: SharedClock = manual.clone();
    let (emulator, summary) = start(clock.clone(), 40).await;
    let dv = client(&summary, clock, "multi_tenant_secret", |_| {});
    let query = Query::new("contacts")
        .select(["fullname", "emailaddress1"])
        .page_size(15);
    let mut pager = dv.changes(&query);
    let mut upserts = 0;
    let mut delta = None;
    while let Some(page) = pager.next_page().await.unwrap() {
        for c in &page.changes {
            assert!(matches!(c, Change::Upsert(_)));
            upserts += 1;
        }
        delta = page.delta_link.clone();
    }
    assert_eq!(upserts, 40);
    let delta = delta.unwrap();

    let now: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let (updated, deleted, created) = emulator.with_world_mut(|w| {
        let org = &mut w.dataverse_orgs[0];
        let ids: Vec<String> = org
            .table("contact")
            .unwrap()
            .rows
            .iter()
            .take(2)
            .map(|r| r.id.clone())
            .collect();
        let mut change = Map::new();
        change.insert("emailaddress1".into(), json!("new@mail.example"));
        org.update_row("contact", &ids[0], change, now).unwrap();
        org.delete_row("contact", &ids[1], now).unwrap();
        let mut values = Map::new();
        values.insert("fullname".into(), json!("Brand New"));
        let created = org.insert_row("contact", None, values, now).unwrap();
        (ids[0].clone(), ids[1].clone(), created)
    });
    let mut pager = dv.changes_since(&delta, Some(15), Annotations::None);
    let page = pager.next_page().await.unwrap().unwrap();
    assert!(pager.next_page().await.unwrap().is_none());
    assert_eq!(page.changes.len(), 3);
    assert!(page.changes.contains(&Change::Deleted { id: deleted }));
    let upserted: Vec<String> = page
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(r) => r.guid("contactid").unwrap(),
            Change::Deleted { .. } => None,
        })
        .collect();
    assert!(upserted.contains(&updated) && upserted.contains(&created));
    let next = page.delta_link.unwrap();

    // Eight days later the token has expired (ExpireChangeTrackingInDays = 7).
    manual.advance(jiff::SignedDuration::from_hours(24 * 8));
    let err = dv
        .changes_since(&next, None, Annotations::None)
        .next_page()
        .await
        .unwrap_err();
    assert!(err.is_change_token_expired(), "{err}");
    assert!(err.remedy().contains("full"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn metadata_and_option_sets() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone(), 10).await;
    let dv = client(&summary, clock, "multi_tenant_secret", |_| {});
    let entities = dv.entity_definitions().await.unwrap();
    let contact = entities.iter().find(|e| e.logical_name == "contact").unwrap();
    assert!(contact.change_tracking_enabled);
    assert_eq!(contact.entity_set_name, "contacts");
    let contract = dv.entity_definition("cr7a1_contract").await.unwrap();
    assert!(!contract.change_tracking_enabled && contract.is_custom);
    assert_eq!(contract.primary_name_attribute.as_deref(), Some("cr7a1_name"));
    let attributes = dv.attributes("contact").await.unwrap();
    let parent = attributes
        .iter()
        .find(|a| a.logical_name == "parentcustomerid")
        .unwrap();
    assert!(parent.is_lookup());
    assert!(
        attributes
            .iter()
            .find(|a| a.logical_name == "cr7a1_hobbies")
            .unwrap()
            .is_multi_select()
    );
    let sets = dv.option_sets("contact").await.unwrap();
    let hobbies = sets.iter().find(|s| s.attribute == "cr7a1_hobbies").unwrap();
    assert!(hobbies.multi_select);
    assert_eq!(hobbies.label(9), Some("Swimming"));
    let gender = sets.iter().find(|s| s.attribute == "gendercode").unwrap();
    assert_eq!(gender.label(1), Some("Male"));
    let tiers = dv.option_sets("cr7a1_contract").await.unwrap();
    assert_eq!(tiers[0].name.as_deref(), Some("cr7a1_tier"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn retries_429s_and_honours_service_protection() {
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone(), 200).await;
    emulator.set_faults(Faults {
        random_429_percent: 20.0,
        retry_after_secs: 1,
        seed: 4,
        ..Faults::default()
    });
    let dv = client(&summary, clock.clone(), "multi_tenant_secret", |c| {
        c.max_attempts = 20
    });
    let rows = dv
        .get_all(&Query::new("contacts").select(["fullname"]).page_size(20))
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    let log = emulator.request_log();
    let throttled: Vec<_> = log
        .iter()
        .filter(|e| e.path.contains("/org/") && e.status == 429)
        .collect();
    assert!(!throttled.is_empty(), "some of the 10+ requests were throttled");
    assert!(throttled.iter().all(|e| e.retry_after == Some(1)));

    // The request limit: a Retry-After beyond what the client will wait fails with Dataverse's code.
    emulator.set_faults(Faults {
        throttling: true,
        ..Faults::default()
    });
    emulator.set_dataverse_limits(ServiceLimits {
        requests_per_window: 3,
        ..ServiceLimits::default()
    });
    let strict = client(&summary, clock, "multi_tenant_secret", |c| {
        c.max_retry_after = Duration::from_secs(2)
    });
    let mut last = Ok(());
    for _ in 0..5 {
        last = strict.who_am_i().await.map(|_| ());
        if last.is_err() {
            break;
        }
    }
    let err = last.unwrap_err();
    assert_eq!(err.class(), Some(DataverseErrorClass::Throttled));
    assert_eq!(err.api().unwrap().code, codes::TOO_MANY_REQUESTS);
    assert!(err.api().unwrap().retry_after.unwrap() > Duration::from_secs(2));
    // The pause holds for the whole organisation: the next call fails fast without a request.
    let before = emulator.request_log().len();
    assert!(strict.who_am_i().await.is_err());
    assert_eq!(emulator.request_log().len(), before);
    emulator.shutdown().await;
}

/// Tokens from nowhere, for a server that is not Dataverse.
#[derive(Debug)]
struct FixedToken;

impl TokenProvider for FixedToken {
    fn access_token<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        Box::pin(async {
            Ok(AccessToken::new(
                "t".to_owned().into(),
                "2099-01-01T00:00:00Z".parse().unwrap(),
            ))
        })
    }

    fn invalidate<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Serves each body once, in order, as `200 application/json`.
async fn broken_server(bodies: Vec<&'static str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for body in bodies {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let _ = stream.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn malformed_responses_are_errors() {
    let bodies = vec![
        "{\"value\": 5}",
        "not json",
        "{\"value\": [1]}",
        "{\"UserId\": 7}",
        "{\"value\": [{\"reason\": \"deleted\", \"id\": \"nope\"}]}",
        "{\"value\": [], \"@odata.nextLink\": 3}",
    ];
    let base = broken_server(bodies).await;
    let dv = DataverseClient::new(
        reqwest::Client::new(),
        DataverseConfig::new(base, "tenant"),
        Arc::new(FixedToken),
    )
    .unwrap();
    let q = Query::new("accounts");
    for _ in 0..3 {
        assert!(matches!(
            dv.get_page(&q).await.unwrap_err(),
            DataverseError::Malformed { .. }
        ));
    }
    assert!(matches!(
        dv.who_am_i().await.unwrap_err(),
        DataverseError::Malformed { .. }
    ));
    let err = dv
        .changes_since(
            &format!("{}/api/data/v9.2/accounts?$deltatoken=1", dv.org_url()),
            None,
            Annotations::None,
        )
        .next_page()
        .await
        .unwrap_err();
    assert!(matches!(err, DataverseError::Malformed { .. }), "{err}");
    assert!(matches!(
        dv.get_page(&q).await.unwrap_err(),
        DataverseError::Malformed { .. }
    ));
    // Links to another host are refused.
    assert!(matches!(
        dv.page_at("https://elsewhere.example/api/data/v9.2/accounts", None)
            .await
            .unwrap_err(),
        DataverseError::InvalidRequest(_)
    ));
}

#[test]
fn the_query_builder_writes_what_dataverse_reads() {
    let q = Query::new("accounts")
        .select(["name", "accountnumber"])
        .filter("modifiedon gt 2025-01-01T00:00:00Z and name eq 'A&B'")
        .expand(
            Expand::new("primarycontactid")
                .select(["fullname"])
                .expand(Expand::new("createdby").select(["fullname"])),
        )
        .order_by("name", true)
        .top(10)
        .count()
        .page_size(500)
        .formatted_values()
        .track_changes();
    assert_eq!(
        q.path(),
        "accounts?$select=name,accountnumber&$filter=modifiedon%20gt%202025-01-01T00:00:00Z%20and%20name%20eq%20'A%26B'\
         &$expand=primarycontactid($select=fullname;$expand=createdby($select=fullname))&$orderby=name%20desc&$top=10&$count=true"
    );
    let prefer = q.prefer().unwrap();
    assert!(prefer.starts_with("odata.track-changes,odata.maxpagesize=500,odata.include-annotations=\""));
    assert_eq!(filter::string("O'Brien"), "'O''Brien'");
    assert_eq!(
        filter::contain_values("hobbies", &[1, 9]),
        "Microsoft.Dynamics.CRM.ContainValues(PropertyName='hobbies',PropertyValues=['1','9'])"
    );
    assert_eq!(
        filter::date_time("2025-01-01T00:00:00Z".parse().unwrap()),
        "2025-01-01T00:00:00Z"
    );
    assert_eq!(Query::new("x").page_size(90_000).page_size, Some(5_000));
}

#[derive(Default)]
struct MemorySink(std::sync::Mutex<Vec<String>>);

impl deskbridge_msauth::RefreshTokenSink for MemorySink {
    fn store<'a>(
        &'a self,
        _: &'a str,
        token: &'a deskbridge_msauth::SecretString,
    ) -> BoxFuture<'a, Result<(), String>> {
        use deskbridge_msauth::ExposeSecret;
        let value = token.expose_secret().to_owned();
        Box::pin(async move {
            self.0.lock().unwrap().push(value);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_delegated_user_reads_through_user_impersonation() {
    use deskbridge_msauth::{AuthorizationRequest, DelegatedTokenProvider};
    let clock: SharedClock = Arc::new(SystemClock);
    let (emulator, summary) = start(clock.clone(), 10).await;
    emulator.set_auto_approve(true);
    let org = summary.dataverse_orgs[0].clone();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let authority = Authority::new(&summary.authority_host).unwrap();
    let redirect = "http://localhost/callback";
    let impersonation = format!("{}/user_impersonation", org.url);
    let request = AuthorizationRequest::new(
        &authority,
        &org.tenant,
        &app.client_id,
        redirect,
        &[&impersonation, "offline_access"],
    )
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(request.url.clone()).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = request.code_from_redirect(&location).unwrap();
    let credentials = AppCredentials {
        client_id: app.client_id.clone(),
        credential: Some(ClientCredential::Secret(
            app.client_secret.clone().unwrap().into(),
        )),
    };
    let sink = Arc::new(MemorySink::default());
    let provider = DelegatedTokenProvider::from_authorization_code(
        TokenClient::new(reqwest::Client::new(), authority, clock),
        credentials,
        &org.tenant,
        &code,
        redirect,
        &request.code_verifier,
        &format!("{impersonation} offline_access"),
        sink.clone(),
    )
    .await
    .unwrap();
    // The client asks for `{org}/.default`: the refresh token is exchanged for it (and rotates).
    let dv = DataverseClient::new(
        reqwest::Client::new(),
        DataverseConfig::new(org.url.clone(), org.tenant.clone()),
        Arc::new(provider),
    )
    .unwrap();
    let who = dv.who_am_i().await.unwrap();
    let users: Vec<String> = emulator.with_world(|w| {
        w.tenant(&org.tenant)
            .unwrap()
            .users
            .iter()
            .map(|u| u.id.clone())
            .collect()
    });
    assert!(users.contains(&who.user_id));
    assert_eq!(
        dv.get_all(&Query::new("accounts").select(["name"]))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        sink.0.lock().unwrap().len() >= 2,
        "the first refresh token and a rotated one were stored"
    );
    emulator.shutdown().await;
}
