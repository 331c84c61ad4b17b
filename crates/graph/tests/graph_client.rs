#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Graph client against a local fake Graph (wiremock, plus a raw TCP server for dropped
//! connections). Waits are asserted in tokio's paused time: nothing really sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deskbridge_core::{ManualClock, SharedClock};
use deskbridge_csdl::Schema;
use deskbridge_graph::*;
use deskbridge_msauth::{AccessToken, AuthError, BoxFuture, TokenProvider};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "contoso-tenant";
const TOKEN: &str = "eyJ0ZXN0IjoidG9rZW4ifQ.secret-access-token";

#[derive(Debug, Default)]
struct StaticTokens {
    issued: AtomicUsize,
    invalidated: AtomicUsize,
}

impl TokenProvider for StaticTokens {
    fn access_token<'a>(
        &'a self,
        _tenant: &'a str,
        _scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        self.issued.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Ok(AccessToken::new(
                TOKEN.to_string().into(),
                "2100-01-01T00:00:00Z".parse().unwrap(),
            ))
        })
    }

    fn invalidate<'a>(&'a self, _tenant: &'a str, _scope: &'a str) -> BoxFuture<'a, ()> {
        self.invalidated.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
}

struct Harness {
    tenant: GraphTenant,
    tokens: Arc<StaticTokens>,
    log: Arc<MemoryRequestLog>,
}

fn clock() -> SharedClock {
    Arc::new(ManualClock::new("2026-11-23T12:00:00Z".parse().unwrap()))
}

fn harness_with(base: &str, tweak: impl FnOnce(&mut GraphConfig)) -> Harness {
    let mut config = GraphConfig::default().with_base_url(format!("{base}/v1.0"));
    config.backoff_base = Duration::from_millis(100);
    config.max_attempts = 4;
    // Paused test time jumps ahead while a response is on its way: no client-side timeout here.
    config.request_timeout = None;
    tweak(&mut config);
    let log = Arc::new(MemoryRequestLog::default());
    let client = GraphClient::with_log(reqwest::Client::new(), config, clock(), log.clone()).unwrap();
    let tokens = Arc::new(StaticTokens::default());
    Harness {
        tenant: client.tenant(TENANT, tokens.clone()),
        tokens,
        log,
    }
}

fn harness(server: &MockServer) -> Harness {
    harness_with(&server.uri(), |_| {})
}

fn graph_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::load(deskbridge_csdl::default_metadata_path()).unwrap())
}

/// Fixtures must look like what Graph really sends: check them against Graph's own schema.
fn schema_checked(type_name: &str, page: Value) -> Value {
    let violations = graph_schema().check_collection(type_name, &page);
    assert!(
        violations.is_empty(),
        "fixture is not valid Graph: {violations:#?}"
    );
    page
}

fn user(id: &str, name: &str) -> Value {
    json!({"id": id, "displayName": name, "userPrincipalName": format!("{id}@contoso.example"),
           "accountEnabled": true, "businessPhones": [],
           "assignedLicenses": [{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": []}]})
}

fn raw_path_and_query(request: &Request) -> String {
    match request.url.query() {
        Some(q) => format!("{}?{q}", request.url.path()),
        None => request.url.path().to_string(),
    }
}

#[tokio::test]
async fn paging_follows_next_link_verbatim() {
    let server = MockServer::start().await;
    // An opaque link that a rebuilt URL would not reproduce: odd parameter order, '+' and %3D.
    let next = format!(
        "{}/v1.0/users?$top=2&$skiptoken=RFNwdAoAAQ%3D%3D+x&$select=id,displayName",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$skiptoken", "RFNwdAoAAQ== x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema_checked(
            "microsoft.graph.user",
            json!({"@odata.context": "ctx", "value": [user("u3", "Carol")]}),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema_checked(
            "microsoft.graph.user",
            json!({"@odata.context": "ctx", "value": [user("u1", "Adele"), user("u2", "Bob")], "@odata.nextLink": next}),
        )))
        .mount(&server)
        .await;

    let h = harness(&server);
    let first = Query::new("/users").select(&["id", "displayName"]).top(2).build();
    let mut pager = h.tenant.pager::<User>(first);
    let mut names = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        names.extend(page.value.into_iter().filter_map(|u| u.display_name));
    }
    assert_eq!(names, ["Adele", "Bob", "Carol"]);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        raw_path_and_query(&requests[0]),
        "/v1.0/users?$select=id,displayName&$top=2"
    );
    assert_eq!(
        raw_path_and_query(&requests[1]),
        next.strip_prefix(&server.uri()).unwrap(),
        "the nextLink must be requested exactly as received"
    );
    for request in &requests {
        assert_eq!(
            request.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {TOKEN}")
        );
    }

    let entries = h.log.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1].path,
        "/v1.0/users?$top=2&$skiptoken=REDACTED&$select=id,displayName"
    );
    assert_eq!(entries[0].status, Some(200));
    assert_eq!(entries[0].resource_units, 1, "users 2, $select −1");
    assert!(entries.iter().all(|e| e.tenant == TENANT && e.attempt == 1));
    assert!(!format!("{entries:?}").contains("secret-access-token"));
}

#[tokio::test]
async fn links_to_another_origin_are_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "value": [], "@odata.nextLink": "https://attacker.example/v1.0/users?$skiptoken=x"
        })))
        .mount(&server)
        .await;
    let h = harness(&server);
    let mut pager = h.tenant.pager::<User>("/users");
    pager.next_page().await.unwrap();
    let err = pager.next_page().await.unwrap_err();
    assert!(matches!(err, GraphError::InvalidRequest(_)), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn delta_rounds_carry_removals_and_split_membership_changes() {
    let server = MockServer::start().await;
    let next = format!("{}/v1.0/groups/delta?$skiptoken=page2", server.uri());
    let delta = format!("{}/v1.0/groups/delta?$deltatoken=round2", server.uri());
    let member = |id: &str| json!({"@odata.type": "#microsoft.graph.user", "id": id});
    let gone = |id: &str| json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": "deleted"}});
    Mock::given(method("GET"))
        .and(path("/v1.0/groups/delta"))
        .and(query_param("$skiptoken", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema_checked(
            "microsoft.graph.group",
            json!({"value": [
                {"id": "g1", "displayName": "Sales", "members@delta": [gone("u2"), member("u3")]},
                {"id": "g2", "@removed": {"reason": "deleted"}},
                {"id": "g3", "@removed": {"reason": "changed"}}
            ], "@odata.deltaLink": delta}),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups/delta"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema_checked(
            "microsoft.graph.group",
            json!({"value": [
                {"id": "g1", "displayName": "Sales", "groupTypes": [], "members@delta": [member("u1"), member("u2")]}
            ], "@odata.nextLink": next}),
        )))
        .mount(&server)
        .await;

    let h = harness(&server);
    let mut pager = h.tenant.pager::<Group>(
        Query::new("/groups/delta")
            .select(&["id", "displayName", "members"])
            .build(),
    );
    let mut memberships = MembershipChanges::default();
    let mut removed = Vec::new();
    let mut delta_link = None;
    while let Some(page) = pager.next_page().await.unwrap() {
        for group in &page.value {
            memberships.merge_group(group);
        }
        removed.extend(page.removed.iter().map(|r| (r.id.clone(), r.reason)));
        delta_link = page.delta_link.or(delta_link);
    }
    assert_eq!(
        memberships.added("g1").into_iter().collect::<Vec<_>>(),
        ["u1", "u3"]
    );
    assert_eq!(memberships.removed("g1").into_iter().collect::<Vec<_>>(), ["u2"]);
    assert_eq!(memberships.member_type("u3"), Some("microsoft.graph.user"));
    assert_eq!(
        removed,
        [
            ("g2".to_string(), RemovedReason::Deleted),
            ("g3".to_string(), RemovedReason::Changed)
        ]
    );
    assert_eq!(delta_link.as_deref(), Some(delta.as_str()));
    assert_eq!(
        h.log
            .entries()
            .iter()
            .map(|e| e.resource_units)
            .collect::<Vec<_>>(),
        [1, 1],
        "delta costs 1"
    );
}

#[tokio::test]
async fn users_delta_reads_manager_changes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/delta"))
        .respond_with(ResponseTemplate::new(200).set_body_json(schema_checked(
            "microsoft.graph.user",
            json!({"value": [
                {"id": "u1", "displayName": "Adele", "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1"}]},
                {"id": "u2", "manager@delta": [{"@odata.type": "#microsoft.graph.user", "id": "m1", "@removed": {"reason": "deleted"}}]}
            ], "@odata.deltaLink": format!("{}/v1.0/users/delta?$deltatoken=t", server.uri())}),
        )))
        .mount(&server)
        .await;
    let h = harness(&server);
    let page = h
        .tenant
        .get_page::<User>("/users/delta?$select=id,displayName,manager")
        .await
        .unwrap();
    let managers: Vec<(String, bool)> = page
        .value
        .iter()
        .map(|u| (u.id.clone(), u.manager_delta.as_ref().unwrap()[0].is_removed()))
        .collect();
    assert_eq!(managers, [("u1".to_string(), false), ("u2".to_string(), true)]);
}

/// Answers with the given responses in turn, then repeats the last one.
struct Sequence {
    responses: Vec<ResponseTemplate>,
    calls: AtomicUsize,
}

impl Sequence {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        Sequence {
            responses,
            calls: AtomicUsize::new(0),
        }
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.responses[n.min(self.responses.len() - 1)].clone()
    }
}

fn throttled(seconds: u64) -> ResponseTemplate {
    ResponseTemplate::new(429).insert_header("Retry-After", seconds.to_string().as_str()).set_body_json(json!({
        "error": {"code": "TooManyRequests", "message": "Please retry again later.",
                  "innerError": {"code": "429", "date": "2026-11-23T12:00:00", "request-id": "rid-429", "status": "429"}}
    }))
}

fn organization_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"value": [{"id": "t1", "displayName": "Contoso"}]}))
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_obeyed_for_the_whole_tenant() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/organization"))
        .respond_with(Sequence::new(vec![throttled(7), organization_page()]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/subscribedSkus"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&server)
        .await;

    let h = harness(&server);
    let first = {
        let tenant = h.tenant.clone();
        tokio::spawn(async move { tenant.get_page::<Organization>("/organization").await })
    };
    // Once the 429 is in, a second, unrelated request to the same tenant must wait too.
    while !h.log.entries().iter().any(|e| e.status == Some(429)) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    h.tenant
        .get_page::<SubscribedSku>("/subscribedSkus")
        .await
        .unwrap();
    let organization = first.await.unwrap().unwrap();
    assert_eq!(organization.value[0].display_name.as_deref(), Some("Contoso"));

    let entries = h.log.entries();
    let throttle_entry = entries.iter().find(|e| e.status == Some(429)).unwrap();
    assert_eq!(throttle_entry.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(throttle_entry.waited, Duration::ZERO);
    let retry = entries
        .iter()
        .find(|e| e.path == "/v1.0/organization" && e.status == Some(200))
        .unwrap();
    assert_eq!(retry.attempt, 2);
    assert!(retry.waited >= Duration::from_secs(7), "{:?}", retry.waited);
    let other = entries.iter().find(|e| e.path == "/v1.0/subscribedSkus").unwrap();
    // It was issued a millisecond or so after the 429 arrived, and held until Retry-After passed.
    assert!(other.waited >= Duration::from_millis(6_900), "{:?}", other.waited);
    assert_eq!(other.attempt, 1);
}

#[tokio::test(start_paused = true)]
async fn too_long_retry_after_fails_with_throttled() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(throttled(3_600))
        .mount(&server)
        .await;
    let h = harness(&server);
    let err = h.tenant.get_page::<User>("/users").await.unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::Throttled));
    assert_eq!(err.api().unwrap().retry_after, Some(Duration::from_secs(3_600)));
    assert_eq!(err.api().unwrap().request_id.as_deref(), Some("rid-429"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    // The tenant stays paused: the next call fails at once without reaching Graph.
    let err = h.tenant.get_page::<Group>("/groups").await.unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::Throttled));
    assert_eq!(err.api().unwrap().code, "TenantPaused");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn writes_are_not_resent_after_a_server_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"code": "generalException", "message": "boom"}})),
        )
        .mount(&server)
        .await;
    let h = harness(&server);
    let request = GraphRequest::post(
        "/users/u1/assignLicense",
        json!({"addLicenses": [], "removeLicenses": []}),
    );
    let err = h.tenant.send(request).await.unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::Unavailable));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "a POST may have been applied: never resent"
    );
}

/// Fails like an unreachable token endpoint the first `failures` times.
#[derive(Debug)]
struct FlakyTokens {
    failures: AtomicUsize,
}

impl TokenProvider for FlakyTokens {
    fn access_token<'a>(
        &'a self,
        _tenant: &'a str,
        _scope: &'a str,
    ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Box::pin(async move {
            if fail {
                Err(AuthError::Transport {
                    url: "token".into(),
                    reason: "connection refused".into(),
                })
            } else {
                Ok(AccessToken::new(
                    TOKEN.to_string().into(),
                    "2100-01-01T00:00:00Z".parse().unwrap(),
                ))
            }
        })
    }

    fn invalidate<'a>(&'a self, _tenant: &'a str, _scope: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

#[tokio::test(start_paused = true)]
async fn transient_token_failures_are_retried_but_rejections_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(organization_page())
        .mount(&server)
        .await;
    let mut config = GraphConfig::default().with_base_url(format!("{}/v1.0", server.uri()));
    config.request_timeout = None;
    let client = GraphClient::new(reqwest::Client::new(), config, clock()).unwrap();
    let tenant = client.tenant(
        TENANT,
        Arc::new(FlakyTokens {
            failures: AtomicUsize::new(2),
        }),
    );
    let page = tenant.get_page::<Organization>("/organization").await.unwrap();
    assert_eq!(page.value[0].id, "t1");

    #[derive(Debug)]
    struct Rejected;
    impl TokenProvider for Rejected {
        fn access_token<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
            Box::pin(async { Err(AuthError::Configuration("bad tenant".into())) })
        }
        fn invalidate<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
    }
    let err = client
        .tenant("other", Arc::new(Rejected))
        .get_page::<Organization>("/organization")
        .await
        .unwrap_err();
    assert!(matches!(err, GraphError::Auth { .. }), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_backoff() {
    let server = MockServer::start().await;
    let unavailable = ResponseTemplate::new(500)
        .set_body_json(json!({"error": {"code": "generalException", "message": "boom"}}));
    Mock::given(method("GET"))
        .and(path("/v1.0/organization"))
        .respond_with(Sequence::new(vec![
            unavailable.clone(),
            ResponseTemplate::new(502),
            organization_page(),
        ]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(504).set_body_string("gateway timeout"))
        .mount(&server)
        .await;
    let h = harness(&server);
    h.tenant.get_page::<Organization>("/organization").await.unwrap();
    let entries = h.log.entries();
    let attempts: Vec<(u32, Option<u16>)> = entries.iter().map(|e| (e.attempt, e.status)).collect();
    assert_eq!(attempts, [(1, Some(500)), (2, Some(502)), (3, Some(200))]);
    // Exponential backoff with jitter in [d/2, d]: d = 100 ms, then 200 ms.
    assert!(
        entries[1].waited >= Duration::from_millis(50),
        "{:?}",
        entries[1].waited
    );
    assert!(
        entries[2].waited >= Duration::from_millis(100),
        "{:?}",
        entries[2].waited
    );

    let err = h.tenant.get_page::<Group>("/groups").await.unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::Unavailable));
    assert_eq!(err.code(), deskbridge_core::ErrorCode::UpstreamUnavailable);
    assert!(err.to_string().contains("gateway timeout"), "{err}");
    assert_eq!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/v1.0/groups")
            .count(),
        4
    );
}

/// A server that closes the first `drops` connections without answering, then answers properly.
async fn flaky_server(drops: usize, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let _ = socket.read(&mut buffer).await;
                if n < drops {
                    return; // dropped: the socket closes without a response
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: rid-ok\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{address}"), connections)
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_are_retried() {
    let (base, connections) = flaky_server(2, r#"{"value":[{"id":"t1","displayName":"Contoso"}]}"#).await;
    let h = harness_with(&base, |_| {});
    let page = h.tenant.get_page::<Organization>("/organization").await.unwrap();
    assert_eq!(page.value[0].id, "t1");
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    let entries = h.log.entries();
    assert_eq!(
        entries.iter().map(|e| e.status).collect::<Vec<_>>(),
        [None, None, Some(200)]
    );
    assert!(entries[0].error.is_some());
    assert_eq!(entries[2].request_id.as_deref(), Some("rid-ok"));

    let (base, _) = flaky_server(usize::MAX, "").await;
    let h = harness_with(&base, |c| c.max_attempts = 2);
    let err = h
        .tenant
        .get_page::<Organization>("/organization")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::Transport { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_pages_are_errors_naming_url_and_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [user("u1", "A"), {"id": "u2", "accountEnabled": "yes"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy login</html>"))
        .mount(&server)
        .await;
    let h = harness(&server);
    let err = h
        .tenant
        .get_page::<User>("/users?$select=id,accountEnabled")
        .await
        .unwrap_err();
    let GraphError::Malformed { url, json_path, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        url,
        &format!("{}/v1.0/users?$select=id,accountEnabled", server.uri())
    );
    assert_eq!(json_path, "$.value[1].accountEnabled");
    assert_eq!(err.code(), deskbridge_core::ErrorCode::UpstreamMalformedResponse);
    let err = h.tenant.get_page::<Group>("/groups").await.unwrap_err();
    assert!(matches!(err, GraphError::Malformed { .. }), "{err:?}");
    let requests = server.received_requests().await.unwrap();
    let fetches = |p: &str| requests.iter().filter(|r| r.url.path() == p).count();
    assert_eq!(fetches("/v1.0/users"), 1, "a wrong shape is not fetched again");
    assert_eq!(
        fetches("/v1.0/groups"),
        4,
        "a body that is not JSON is fetched again, up to max_attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn a_truncated_page_is_fetched_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(200).set_body_string(r#"{"@odata.context":"x","value":[{"id":"#),
            organization_page(),
        ]))
        .mount(&server)
        .await;
    let h = harness(&server);
    let page = h.tenant.get_page::<Organization>("/organization").await.unwrap();
    assert_eq!(page.value[0].id, "t1");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn graph_errors_are_classified() {
    let server = MockServer::start().await;
    let error = |status: u16, code: &str, message: &str| {
        ResponseTemplate::new(status).insert_header("request-id", "rid-h").set_body_json(json!({
            "error": {"code": code, "message": message, "innerError": {"date": "2026-11-23T12:00:00", "request-id": "rid-b"}}
        }))
    };
    Mock::given(path("/v1.0/users"))
        .and(query_param("$select", "id,signInActivity"))
        .respond_with(error(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/v1.0/groups"))
        .respond_with(error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/v1.0/users/u9/manager"))
        .respond_with(error(
            404,
            "Request_ResourceNotFound",
            "Resource 'manager' does not exist",
        ))
        .mount(&server)
        .await;
    Mock::given(path("/v1.0/users/delta"))
        .respond_with(
            error(410, "resyncRequired", "Resync required.")
                .insert_header("Location", "https://graph.example/v1.0/users/delta?$deltatoken="),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v1.0/organization"))
        .respond_with(error(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ))
        .mount(&server)
        .await;

    let h = harness(&server);
    let err = h
        .tenant
        .get_page::<User>("/users?$select=id,signInActivity")
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::NonPremiumTenant));
    assert!(err.to_string().contains("P1 or P2"), "{err}");
    assert_eq!(err.api().unwrap().request_id.as_deref(), Some("rid-b"));
    let err = h.tenant.get_page::<Group>("/groups").await.unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::PermissionDenied));
    assert_eq!(err.code(), deskbridge_core::ErrorCode::UpstreamPermission);
    let err = h
        .tenant
        .get_json::<DirectoryObjectRef>("/users/u9/manager")
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::NotFound));
    let err = h
        .tenant
        .get_page::<User>("/users/delta?$deltatoken=old")
        .await
        .unwrap_err();
    assert!(err.is_resync_required());
    assert_eq!(
        err.api().unwrap().location.as_deref(),
        Some("https://graph.example/v1.0/users/delta?$deltatoken=")
    );
    assert!(
        !err.to_string().contains("old"),
        "cursor tokens are elided: {err}"
    );

    let err = h
        .tenant
        .get_page::<Organization>("/organization")
        .await
        .unwrap_err();
    assert_eq!(err.class(), Some(GraphErrorClass::Authentication));
    assert_eq!(
        h.tokens.invalidated.load(Ordering::SeqCst),
        1,
        "one fresh token is tried after a 401"
    );
    let organization_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1.0/organization")
        .count();
    assert_eq!(organization_calls, 2);
    assert!(h.tokens.issued.load(Ordering::SeqCst) >= 6);
}

#[tokio::test(start_paused = true)]
async fn the_budget_slows_a_burst_instead_of_hitting_429() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&server)
        .await;

    // 20 RU per 10 s; each /users page costs 2 RU: 10 pages fit, the next 10 need 10 s of refill.
    let limited = harness_with(&server.uri(), |c| {
        c.tenant_resource_units_per_10s = Some(20);
        c.budget_share = 1.0;
        // Enough slots that only the budget makes requests wait.
        c.max_concurrent_per_tenant = 32;
    });
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let tenant = limited.tenant.clone();
        burst.spawn(async move { tenant.get_page::<User>("/users").await.map(|p| p.value.len()) });
    }
    while let Some(result) = burst.join_next().await {
        result.unwrap().unwrap();
    }
    let entries = limited.log.entries();
    assert!(
        entries
            .iter()
            .all(|e| e.resource_units == 2 && e.status == Some(200))
    );
    let mut waits: Vec<Duration> = entries.iter().map(|e| e.waited).collect();
    waits.sort();
    // All 20 reserved at once: 10 go at once, then one more every second as 2 RU refill.
    assert!(waits[..10].iter().all(Duration::is_zero), "{waits:?}");
    for (n, wait) in waits[10..].iter().enumerate() {
        let expected = Duration::from_secs(n as u64 + 1);
        assert!(
            *wait >= expected - Duration::from_millis(10),
            "request {n}: {wait:?} < {expected:?}"
        );
    }

    let unlimited = harness_with(&server.uri(), |c| c.budget_enabled = false);
    for _ in 0..20 {
        unlimited.tenant.get_page::<User>("/users").await.unwrap();
    }
    assert!(
        unlimited
            .log
            .entries()
            .iter()
            .all(|e| e.waited.is_zero() && e.resource_units == 0)
    );
}

/// First batch: item "2" is throttled with its own Retry-After; the retry must carry only "2".
struct BatchWithOneThrottledItem {
    bodies: Mutex<Vec<Value>>,
}

impl Respond for BatchWithOneThrottledItem {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        self.bodies.lock().unwrap().push(body.clone());
        let responses: Vec<Value> = body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .rev() // Graph answers in any order
            .map(|r| {
                let id = r["id"].as_str().unwrap();
                let first_round = self.bodies.lock().unwrap().len() == 1;
                if id == "2" && first_round {
                    json!({"id": id, "status": 429, "headers": {"Retry-After": "5"},
                           "body": {"error": {"code": "TooManyRequests", "message": "retry"}}})
                } else {
                    json!({"id": id, "status": 200, "headers": {"Content-Type": "application/json"},
                           "body": {"value": [{"id": format!("lic-{id}"), "skuPartNumber": "SPE_E3"}]}})
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"responses": responses}))
    }
}

#[tokio::test(start_paused = true)]
async fn batch_retries_only_the_throttled_item() {
    let server = MockServer::start().await;
    let responder = Arc::new(BatchWithOneThrottledItem {
        bodies: Mutex::new(Vec::new()),
    });
    struct Shared(Arc<BatchWithOneThrottledItem>);
    impl Respond for Shared {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            self.0.respond(request)
        }
    }
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(Shared(responder.clone()))
        .mount(&server)
        .await;

    let h = harness(&server);
    let requests: Vec<BatchRequest> = (1..=3)
        .map(|i| BatchRequest::get(i.to_string(), format!("/users/u{i}/licenseDetails")))
        .collect();
    let responses = h.tenant.batch(requests).await.unwrap();
    assert!(
        h.log.entries()[1].waited >= Duration::from_secs(5),
        "the item's own Retry-After is honoured"
    );
    assert_eq!(
        responses.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert!(responses.iter().all(BatchResponse::is_success));
    let details: Page<LicenseDetails> = responses[1].page().unwrap();
    assert_eq!(details.value[0].id, "lic-2");

    let bodies = responder.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let second_ids: Vec<&str> = bodies[1]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(second_ids, ["2"]);
    assert_eq!(bodies[0]["requests"][0]["url"], "/users/u1/licenseDetails");
    // Each batched licenseDetails read is charged 2 RU.
    assert_eq!(
        h.log
            .entries()
            .iter()
            .map(|e| e.resource_units)
            .collect::<Vec<_>>(),
        [6, 2]
    );

    let too_many: Vec<BatchRequest> = (0..21)
        .map(|i| BatchRequest::get(i.to_string(), "/users"))
        .collect();
    assert!(matches!(
        h.tenant.batch(too_many).await,
        Err(GraphError::InvalidRequest(_))
    ));
}

/// A server that holds each request for `hold` and records the peak number of requests in flight.
async fn counting_server(hold: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let peak_seen = peak.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let _ = socket.read(&mut buffer).await;
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(hold).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let body = r#"{"value":[]}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{address}"), peak_seen)
}

#[tokio::test]
async fn concurrency_per_tenant_is_bounded() {
    let (base, peak) = counting_server(Duration::from_millis(30)).await;
    let h = harness_with(&base, |c| c.max_concurrent_per_tenant = 2);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let tenant = h.tenant.clone();
        tasks.spawn(async move { tenant.get_page::<User>("/users").await.unwrap() });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than 2 requests in flight for the tenant"
    );
    assert_eq!(h.log.entries().len(), 6);
}

#[tokio::test]
async fn a_hung_response_times_out_and_counts_as_dropped() {
    let (base, _) = counting_server(Duration::from_secs(30)).await;
    let h = harness_with(&base, |c| {
        c.request_timeout = Some(Duration::from_millis(200));
        c.max_attempts = 2;
        c.backoff_base = Duration::from_millis(10);
    });
    let err = h.tenant.get_page::<User>("/users").await.unwrap_err();
    assert!(
        matches!(err, GraphError::Transport { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(
        h.log
            .entries()
            .iter()
            .all(|e| e.status.is_none() && e.error.is_some())
    );
}
