use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn admin_api_reports_the_world_and_the_request_log() {
    let env = start().await;
    let (status, world) = env.admin(Method::GET, "/world", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(world["base_url"], env.emu.base_url());
    assert_eq!(world["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(world["admin_url"], env.emu.admin_url());
    let summary_json = serde_json::to_value(env.emu.summary()).unwrap();
    for key in ["base_url", "tenants", "apps", "admin_url"] {
        assert!(summary_json.get(key).is_some(), "{key}");
    }
    let token = env.main_token(0).await;
    env.get(&token, "/users?$top=1").await;
    let (status, log) = env.admin(Method::GET, "/requests", None).await;
    assert_eq!(status, StatusCode::OK);
    let entries = log.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["path"].as_str().unwrap().starts_with("/v1.0/users") && e["status"] == 200)
    );
    assert!(
        entries
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("/oauth2/v2.0/token"))
    );
    env.stop().await;
}

#[tokio::test]
async fn admin_api_validates_and_reports_missing_objects() {
    let env = start().await;
    let tenant = env.tenant(0);
    let cases = [
        (
            Method::POST,
            format!("/tenants/{tenant}/users"),
            Some(json!({"displayName": "no upn"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/tenants/{tenant}/users"),
            Some(json!([1, 2])),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            format!("/tenants/{tenant}/users/nope"),
            Some(json!({"jobTitle": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/tenants/{tenant}/users/nope"),
            None,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/tenants/nope/users".to_owned(),
            Some(json!({"userPrincipalName": "a@b"})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/tenants/{tenant}/groups"),
            Some(json!({"description": "no name"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/tenants/{tenant}/groups/nope/members"),
            Some(json!({"id": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/tenants/{tenant}/users/nope/restore"),
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, body) = env.admin(method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    // A duplicate UPN conflicts.
    let upn = env
        .emu
        .with_world(|w| w.tenants[0].users[0].user_principal_name.clone());
    let (status, _) = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/users"),
            Some(json!({"userPrincipalName": upn})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Licences through the admin API respect the usage location too.
    let (unlocated, sku) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        (
            t.users
                .iter()
                .find(|u| u.usage_location.is_none())
                .map(|u| u.id.clone()),
            t.skus[0].sku_id.clone(),
        )
    });
    if let Some(id) = unlocated {
        let (status, body) = env
            .admin(
                Method::POST,
                &format!("/tenants/{tenant}/users/{id}/licenses"),
                Some(json!({"addLicenses": [{"skuId": sku}]})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    env.stop().await;
}

#[tokio::test]
async fn tls_mode_serves_https_with_the_generated_ca() {
    let env = start_with(|c| c.tls = true).await;
    assert!(env.emu.base_url().starts_with("https://127.0.0.1:"));
    let ca = reqwest::Certificate::from_pem(env.emu.ca_pem().unwrap().as_bytes()).unwrap();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let app = env.app("multi_tenant_secret").clone();
    let token: serde_json::Value = trusted
        .post(env.token_url(&env.tenant(0)))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_deref().unwrap()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = trusted
        .get(format!("{}/users?$top=1", env.emu.graph_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A client that does not trust the CA is refused.
    let untrusted = reqwest::Client::new()
        .get(format!("{}/users", env.emu.graph_url()))
        .send()
        .await;
    assert!(untrusted.is_err());
    env.stop().await;
}
