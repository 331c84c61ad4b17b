use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn throttling_answers_429_with_retry_after_and_recovers() {
    let env = start_with(|c| c.faults.throttling = true).await;
    let token = env.main_token(1).await;
    let (status, headers, _) = env.get(&token, "/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ms-resource-unit"], "2");
    let (_, headers, _) = env.get(&token, "/users?$select=id").await;
    assert_eq!(headers["x-ms-resource-unit"], "1");
    let (_, headers, _) = env.get(&token, "/users?$top=5&$expand=manager").await;
    assert_eq!(
        headers["x-ms-resource-unit"], "2",
        "2 - 1 ($top < 20) + 1 ($expand)"
    );
    // transitiveMembers costs 5 RU: a 60-user tenant's 5,000 RU per 10 s last 1,000 calls.
    let group = env.emu.with_world(|w| w.tenants[1].groups[0].id.clone());
    let mut limited = None;
    for _ in 0..1_200 {
        let (status, headers, body) = env
            .get(&token, &format!("/groups/{group}/transitiveMembers"))
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((headers, body));
            break;
        }
    }
    let (headers, body) = limited.expect("5,000 RU per 10 s runs out");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry));
    assert!(
        headers["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/5000/")
    );
    assert_eq!(headers["x-ms-throttle-information"], "ResourceUnitLimitExceeded");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["innerError"]["status"], "429");
    // Another tenant has its own bucket.
    let other = env.main_token(0).await;
    assert_eq!(env.get(&other, "/users").await.0, StatusCode::OK);
    env.advance(SignedDuration::from_secs(i64::try_from(retry).unwrap()));
    assert_eq!(env.get(&token, "/users").await.0, StatusCode::OK);
    let log = env.emu.request_log();
    let entry = log.iter().find(|e| e.status == 429).unwrap();
    assert_eq!(entry.retry_after, Some(retry));
    assert_eq!(entry.tenant.as_deref(), Some(env.tenant(1).as_str()));
    assert_eq!(
        entry.app.as_deref(),
        Some(env.app("multi_tenant_secret").client_id.as_str())
    );
    env.stop().await;
}

#[tokio::test]
async fn injected_faults_are_switched_by_the_admin_api() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, faults) = env.admin(Method::GET, "/faults", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["throttling"], false);
    for (setting, expected) in [
        ("random_429_percent", 429),
        ("random_503_percent", 503),
        ("random_504_percent", 504),
    ] {
        env.admin(
            Method::PUT,
            "/faults",
            Some(json!({"random_429_percent": 0.0, "random_503_percent": 0.0, "random_504_percent": 0.0})),
        )
        .await;
        env.admin(Method::PUT, "/faults", Some(json!({setting: 100.0})))
            .await;
        let (status, headers, body) = env.get(&token, "/users").await;
        assert_eq!(status.as_u16(), expected, "{setting}");
        graph_error(&body);
        if expected != 504 {
            assert!(headers.contains_key("retry-after"));
        }
    }
    env.admin(
        Method::PUT,
        "/faults",
        Some(json!({"random_504_percent": 0.0, "malformed_page_percent": 100.0})),
    )
    .await;
    let resp = env
        .http
        .get(env.graph("/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.json::<serde_json::Value>().await.is_err(),
        "a malformed page does not parse"
    );
    env.admin(
        Method::PUT,
        "/faults",
        Some(json!({"malformed_page_percent": 0.0, "dropped_connection_percent": 100.0})),
    )
    .await;
    let result = async {
        env.http
            .get(env.graph("/users"))
            .bearer_auth(&token)
            .send()
            .await?
            .bytes()
            .await
    }
    .await;
    assert!(result.is_err(), "the connection is dropped mid-response");
    let (status, body) = env
        .admin(Method::PUT, "/faults", Some(json!({"no_such_setting": 1})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    env.admin(
        Method::PUT,
        "/faults",
        Some(json!({"dropped_connection_percent": 0.0})),
    )
    .await;
    assert_eq!(env.get(&token, "/users").await.0, StatusCode::OK);
    env.stop().await;
}
