//! Partner Center REST, the price sheet, webhooks, and the CSP apps' consent and GDAP gating.
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::support::*;

/// Tenant 0: active GDAP, consented; tenant 1: expired GDAP, consented (Graph must refuse).
async fn csp_env() -> Env {
    start_with(|c| {
        let partner = c.world.partner_tenant_id.clone().unwrap();
        let ids: Vec<String> = c.world.customer_tenants().map(|t| t.id.clone()).collect();
        let p = c.world.tenants.iter_mut().find(|t| t.id == partner).unwrap();
        for r in &mut p.gdap_relationships {
            r.status = if r.customer_tenant_id == ids[0] {
                "active"
            } else {
                "expired"
            }
            .into();
        }
        let gdap = c
            .world
            .apps
            .iter_mut()
            .find(|a| a.kind.as_str() == "gdap_multi_tenant")
            .unwrap();
        gdap.consented_tenants = vec![partner, ids[0].clone(), ids[1].clone()];
        c.auto_approve = true;
    })
    .await
}

fn pkce() -> (String, String) {
    let verifier = "partner-center-code-verifier-with-enough-entropy-0123456789".to_owned();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// App+user tokens of the Partner Center app: (Partner Center token, refresh token).
async fn pc_user_tokens(env: &Env) -> (String, String) {
    let app = env.app("partner_center").clone();
    let partner = env.partner();
    let (verifier, challenge) = pkce();
    let resp = env
        .http
        .get(format!("{}/{partner}/oauth2/v2.0/authorize", env.emu.base_url()))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost/callback"),
            (
                "scope",
                "openid offline_access https://api.partnercenter.microsoft.com/user_impersonation",
            ),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, _, body) = env
        .post_form(
            &env.token_url(&partner),
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.as_deref().unwrap()),
                ("code", &code),
                ("redirect_uri", "http://localhost/callback"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(env: &Env, rt: &str, scope: &str) -> (StatusCode, Value) {
    let app = env.app("partner_center");
    let (status, _, body) = env
        .post_form(
            &env.token_url(&env.partner()),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.as_deref().unwrap()),
                ("refresh_token", rt),
                ("scope", scope),
            ],
        )
        .await;
    (status, body)
}

fn pc(env: &Env, path: &str) -> String {
    format!("{}{path}", env.summary.partner_center_url)
}

async fn call(
    env: &Env,
    method: Method,
    token: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = env.http.request(method, url).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn pc_error(body: &Value) -> i64 {
    assert_eq!(body["source"], "PartnerFD", "{body}");
    assert!(body["data"].is_array(), "{body}");
    assert!(body["description"].is_string(), "{body}");
    body["code"].as_i64().unwrap()
}

#[tokio::test]
async fn partner_center_tokens_are_app_plus_user_for_both_resources() {
    let env = csp_env().await;
    assert!(env.summary.partner_center_url.ends_with("/pc"));
    // The start-up JSON line carries the Partner Center URLs and the webhook root.
    let line = serde_json::to_value(env.emu.summary()).unwrap();
    assert_eq!(line["partner_center_url"], format!("{}/pc", env.emu.base_url()));
    assert_eq!(line["partner_api_url"], format!("{}/pc-api", env.emu.base_url()));
    assert!(
        line["webhook_root_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let (token, rt) = pc_user_tokens(&env).await;
    let c = claims(&token);
    assert_eq!(c["aud"], "https://api.partnercenter.microsoft.com");
    assert_eq!(c["scp"], "user_impersonation");
    assert_eq!(c["idtyp"], "user");
    let (status, body) = refresh(
        &env,
        &rt,
        "https://api.partner.microsoft.com/.default offline_access",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://api.partner.microsoft.com"
    );
    let (status, body) = refresh(&env, &rt, "https://api.partnercenter.microsoft.com/.default").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["aud"],
        "https://api.partnercenter.microsoft.com"
    );
    // A Graph token is refused by Partner Center, with Partner Center's error body.
    let graph = env.token("multi_tenant_secret", &env.partner()).await;
    let (status, headers, body) = call(
        &env,
        Method::GET,
        &graph,
        &pc(&env, "/v1/customers"),
        &[("MS-RequestId", "r-1")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    pc_error(&body);
    assert_eq!(headers["MS-RequestId"], "r-1");
    assert!(headers.contains_key("MS-CorrelationId"));
    env.stop().await;
}

#[tokio::test]
async fn customers_page_with_a_continuation_token_in_links_next() {
    let env = csp_env().await;
    let (token, _) = pc_user_tokens(&env).await;
    let (status, headers, first) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, "/v1/customers?size=1"),
        &[("MS-CorrelationId", "c-1")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(headers["MS-CorrelationId"], "c-1");
    assert_eq!(first["attributes"]["objectType"], "Collection");
    let item = &first["items"][0];
    assert_eq!(item["relationshipToPartner"], "reseller");
    assert_eq!(item["companyProfile"]["tenantId"], item["id"]);
    assert!(
        item["companyProfile"]["domain"]
            .as_str()
            .unwrap()
            .ends_with(".onmicrosoft.com")
    );
    let next = &first["links"]["next"];
    assert_eq!(next["uri"], "/v1/customers?seekOperation=Next");
    assert_eq!(next["headers"][0]["key"], "MS-ContinuationToken");
    let token_value = next["headers"][0]["value"].as_str().unwrap();
    assert_eq!(first["continuationToken"], token_value);
    let (status, _, second) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, "/v1/customers?seekOperation=Next"),
        &[("MS-ContinuationToken", token_value)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second["links"].get("next").is_none() && second.get("continuationToken").is_none());
    let ids: Vec<&str> = [&first, &second]
        .iter()
        .map(|p| p["items"][0]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![env.tenant(0), env.tenant(1)]);
    // A filter by company name, an unknown customer, a bad token.
    let filter = format!(
        "{{\"Field\":\"CompanyName\",\"Value\":\"{}\",\"Operator\":\"starts_with\"}}",
        &env.summary.tenants[1].display_name[..4]
    );
    let (_, _, filtered) = call(
        &env,
        Method::GET,
        &token,
        &format!(
            "{}?size=10&filter={}",
            pc(&env, "/v1/customers"),
            url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(filtered["items"][0]["id"], env.tenant(1));
    let (status, _, body) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, "/v1/customers/00000000-0000-0000-0000-000000000001"),
        &[],
        None,
    )
    .await;
    assert_eq!((status, pc_error(&body)), (StatusCode::NOT_FOUND, 3000));
    let (status, _, body) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, "/v1/customers?seekOperation=Next"),
        &[("MS-ContinuationToken", "garbage")],
        None,
    )
    .await;
    assert_eq!((status, pc_error(&body)), (StatusCode::BAD_REQUEST, 2000));
    env.stop().await;
}

#[tokio::test]
async fn subscriptions_carry_partner_center_shapes_and_quantity_follows_the_nce_rules() {
    let env = csp_env().await;
    let (token, _) = pc_user_tokens(&env).await;
    let cid = env.tenant(0);
    let (status, _, list) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscriptions")),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    for s in items {
        let id = s["id"].as_str().unwrap();
        assert_eq!(id, id.to_uppercase());
        assert_eq!(s["attributes"]["objectType"], "Subscription");
        assert!(
            s["links"]["self"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("/customers/")
        );
    }
    let azure = items
        .iter()
        .find(|s| s["unitType"] == "Usage-based")
        .expect("tenant 0 has an Azure plan");
    assert_eq!(azure["commitmentEndDate"], "9999-12-14T00:00:00Z");
    assert_eq!(azure["billingCycle"], "none");
    let recent = &items[0];
    assert!(recent["termDuration"].is_string() && recent["autoRenewEnabled"].is_boolean());
    let old = items
        .iter()
        .skip(1)
        .find(|s| s["unitType"] == "Licenses" && s["offerId"].as_str().unwrap().contains(':'))
        .unwrap();

    let url = |s: &Value| {
        pc(
            &env,
            &format!("/v1/customers/{cid}/subscriptions/{}", s["id"].as_str().unwrap()),
        )
    };
    let etag = |s: &Value| s["attributes"]["etag"].as_str().unwrap().to_owned();
    // Increase at any time; the directory SKU follows.
    let mut bigger = old.clone();
    let q = old["quantity"].as_i64().unwrap();
    bigger["quantity"] = json!(q + 5);
    let (status, _, updated) = call(
        &env,
        Method::PATCH,
        &token,
        &url(old),
        &[("If-Match", &etag(old)), ("MS-RequestId", "inc-1")],
        Some(bigger.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["quantity"], q + 5);
    assert_ne!(etag(&updated), etag(old));
    // The same MS-RequestId again: the first answer, not a second increase.
    let (status, _, again) = call(
        &env,
        Method::PATCH,
        &token,
        &url(old),
        &[("MS-RequestId", "inc-1")],
        Some(bigger),
    )
    .await;
    assert_eq!(
        (status, again["quantity"].as_i64()),
        (StatusCode::OK, Some(q + 5))
    );
    // A stale If-Match is 412.
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(old),
        &[("If-Match", &etag(old))],
        Some(json!({"quantity": q + 6})),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    pc_error(&body);
    // A decrease outside the cancellation window is refused with Partner Center's error.
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(old),
        &[],
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!((status, pc_error(&body)), (StatusCode::BAD_REQUEST, 800002));
    // Inside the window (bought two days ago) it is allowed, until the clock passes the window.
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(recent),
        &[],
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(
        (status, body["quantity"].as_i64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    env.advance(jiff::SignedDuration::from_hours(24 * 8));
    let (token, _) = pc_user_tokens(&env).await;
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(recent),
        &[],
        Some(json!({"quantity": 2})),
    )
    .await;
    assert_eq!(
        (status, body["quantity"].as_i64()),
        (StatusCode::OK, Some(2)),
        "increase: {body}"
    );
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(recent),
        &[],
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!((status, pc_error(&body)), (StatusCode::BAD_REQUEST, 800002));
    // Usage-based subscriptions have no seats.
    let (status, _, body) = call(
        &env,
        Method::PATCH,
        &token,
        &url(azure),
        &[],
        Some(json!({"quantity": 3})),
    )
    .await;
    assert_eq!((status, pc_error(&body)), (StatusCode::BAD_REQUEST, 2000));
    env.stop().await;
}

#[tokio::test]
async fn quantity_changes_reach_the_directory_skus() {
    let env = csp_env().await;
    let (token, _) = pc_user_tokens(&env).await;
    let cid = env.tenant(0);
    let (_, _, list) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscriptions")),
        &[],
        None,
    )
    .await;
    let first = list["items"][0].clone();
    let (status, _, _) = call(
        &env,
        Method::PATCH,
        &token,
        &pc(
            &env,
            &format!(
                "/v1/customers/{cid}/subscriptions/{}",
                first["id"].as_str().unwrap()
            ),
        ),
        &[],
        Some(json!({"quantity": 777})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, skus) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscribedskus")),
        &[],
        None,
    )
    .await;
    let sku = &skus["items"][0];
    assert_eq!(sku["activeUnits"], 777);
    assert_eq!(sku["attributes"]["objectType"], "SubscribedSku");
    assert!(sku["productSku"]["skuPartNumber"].is_string() && sku["servicePlans"].is_array());
    let graph = env.token("multi_tenant_secret", &cid).await;
    let (_, _, graph_skus) = env.get(&graph, "/subscribedSkus").await;
    let id = sku["productSku"]["id"].as_str().unwrap();
    let g = graph_skus["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["skuId"] == id)
        .unwrap();
    assert_eq!(g["prepaidUnits"]["enabled"], 777);
    env.stop().await;
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let env = csp_env().await;
    let (token, _) = pc_user_tokens(&env).await;
    let (status, _) = env
        .admin(
            Method::PUT,
            "/partner/faults",
            Some(json!({"force_429": 1, "retry_after_secs": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) =
        call(&env, Method::GET, &token, &pc(&env, "/v1/customers"), &[], None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["Retry-After"], "7");
    assert_eq!(body["statusCode"], 429);
    assert_eq!(body["message"], "Rate limit is exceeded. Try again in 7 seconds.");
    let (status, _, _) = call(&env, Method::GET, &token, &pc(&env, "/v1/customers"), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    // The per-minute limit of the subscriptions family.
    env.admin(Method::PUT, "/partner/faults", Some(json!({"throttling": true})))
        .await;
    let url = pc(&env, &format!("/v1/customers/{}/subscriptions", env.tenant(0)));
    let mut throttled = None;
    for i in 0..501 {
        let (status, headers, _) = call(&env, Method::GET, &token, &url, &[], None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some((
                i,
                headers["Retry-After"].to_str().unwrap().parse::<u64>().unwrap(),
            ));
            break;
        }
    }
    let (count, wait) = throttled.expect("500 per minute");
    assert_eq!(count, 500);
    assert!((1..=60).contains(&wait));
    env.stop().await;
}

#[tokio::test]
async fn gdap_and_consent_gate_the_multi_tenant_app() {
    let env = csp_env().await;
    let gdap = env.app("gdap_multi_tenant").clone();
    let (active, expired) = (env.tenant(0), env.tenant(1));
    // Active GDAP + consent: Graph answers.
    let token = env.token("gdap_multi_tenant", &active).await;
    let (status, _, _) = env.get(&token, "/users?$top=1").await;
    assert_eq!(status, StatusCode::OK);
    // Consented but the relationship expired: insufficient privileges.
    let token = env.token("gdap_multi_tenant", &expired).await;
    let (status, _, body) = env.get(&token, "/users?$top=1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(graph_error(&body).0, "Authorization_RequestDenied");
    // Consent revoked: no token (AADSTS7000229), and a token issued before fails with
    // Authorization_IdentityNotFound.
    let early = env.token("gdap_multi_tenant", &active).await;
    let (status, _) = env
        .admin(
            Method::PUT,
            "/partner/consent",
            Some(json!({"client_id": gdap.client_id, "tenant": active, "consented": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = env
        .post_form(
            &env.token_url(&active),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &gdap.client_id),
                ("client_secret", gdap.client_secret.as_deref().unwrap()),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    assert_eq!((status, aad_error(&body).1), (StatusCode::UNAUTHORIZED, 7000229));
    let (status, _, body) = env.get(&early, "/users?$top=1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(graph_error(&body).0, "Authorization_IdentityNotFound");
    // Signing in to the tenant with the app: AADSTS700016.
    let resp = env
        .http
        .get(format!("{}/{active}/oauth2/v2.0/authorize", env.emu.base_url()))
        .query(&[
            ("client_id", gdap.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost/callback"),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("AADSTS700016"));
    // Partner Center's application consent (app+user, active GDAP) restores the service principal.
    let (pc_token, _) = pc_user_tokens(&env).await;
    let grant = json!({"applicationId": gdap.client_id, "displayName": "sync", "applicationGrants":
        [{"enterpriseApplicationId": "00000003-0000-0000-c000-000000000000", "scope": "User.Read.All"}]});
    let (status, _, body) = call(
        &env,
        Method::POST,
        &pc_token,
        &pc(&env, &format!("/v1/customers/{expired}/applicationconsents")),
        &[],
        Some(grant.clone()),
    )
    .await;
    assert_eq!(
        (status, pc_error(&body)),
        (StatusCode::FORBIDDEN, 2003),
        "no active GDAP"
    );
    let (status, _, body) = call(
        &env,
        Method::POST,
        &pc_token,
        &pc(&env, &format!("/v1/customers/{active}/applicationconsents")),
        &[],
        Some(grant),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = env.token("gdap_multi_tenant", &active).await;
    assert_eq!(env.get(&token, "/users?$top=1").await.0, StatusCode::OK);
    // The interactive admin-consent endpoint does the same for a tenant's own administrator.
    env.admin(
        Method::PUT,
        "/partner/consent",
        Some(json!({"client_id": gdap.client_id, "tenant": active, "consented": false})),
    )
    .await;
    let resp = env
        .http
        .get(format!("{}/{active}/v2.0/adminconsent", env.emu.base_url()))
        .query(&[
            ("client_id", gdap.client_id.as_str()),
            ("redirect_uri", "http://localhost:5000/callback"),
            ("state", "st"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("admin_consent=True")
            && location.contains(&format!("tenant={active}"))
            && location.contains("state=st"),
        "{location}"
    );
    assert_eq!(
        env.get(&env.token("gdap_multi_tenant", &active).await, "/users?$top=1")
            .await
            .0,
        StatusCode::OK
    );
    env.stop().await;
}

#[tokio::test]
async fn price_sheet_usage_and_dataset_round_trip() {
    let env = csp_env().await;
    let (_, rt) = pc_user_tokens(&env).await;
    let (_, body) = refresh(&env, &rt, "https://api.partner.microsoft.com/.default").await;
    let api_token = body["access_token"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/v1.0/sales/pricesheets(Market='GB',PricesheetView='updatedlicensebased')/$value?timeline=current",
        env.summary.partner_api_url
    );
    let resp = env.http.get(&url).bearer_auth(&api_token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/csv");
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("ProductTitle,ProductId,SkuId"));
    assert!(lines.all(|l| l.contains(",GB,GBP,")));
    // App-only tokens are not accepted for price sheets.
    let app = env.app("partner_center");
    let (_, _, app_only) = env
        .post_form(
            &env.token_url(&env.partner()),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.as_deref().unwrap()),
                ("scope", "https://api.partner.microsoft.com/.default"),
            ],
        )
        .await;
    let resp = env
        .http
        .get(&url)
        .bearer_auth(app_only["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Usage of the Azure plan, paged.
    let (token, _) = pc_user_tokens(&env).await;
    let cid = env.tenant(0);
    let (_, _, list) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscriptions")),
        &[],
        None,
    )
    .await;
    let azure = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["unitType"] == "Usage-based")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = pc(
        &env,
        &format!(
            "/v1/customers/{cid}/subscriptions/{azure}/utilizations/azure?start_time=2026-10-01T00:00:00Z&end_time=2026-11-01T00:00:00Z&size=40"
        ),
    );
    let (status, _, page) = call(&env, Method::GET, &token, &first, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 40);
    assert_eq!(
        page["items"][0]["attributes"]["objectType"],
        "AzureUtilizationRecord"
    );
    let next = &page["links"]["next"];
    let (status, _, page2) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1{}", next["uri"].as_str().unwrap())),
        &[(
            "MS-ContinuationToken",
            next["headers"][0]["value"].as_str().unwrap(),
        )],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page2}");
    assert!(!page2["items"].as_array().unwrap().is_empty());
    // The dataset keeps Partner Center; a dataset from before it still loads.
    let (_, dataset) = env.admin(Method::GET, "/dataset", None).await;
    assert!(dataset["partnerCenter"]["customers"].as_array().unwrap().len() == 2);
    let world = deskbridge_emulator::World::from_json_str(&dataset.to_string()).unwrap();
    assert_eq!(
        world.partner_center.subscriptions.len(),
        env.emu.with_world(|w| w.partner_center.subscriptions.len())
    );
    let mut old = dataset.clone();
    old.as_object_mut().unwrap().remove("partnerCenter");
    let world = deskbridge_emulator::World::from_json_str(&old.to_string()).unwrap();
    assert!(world.partner_center.customers.is_empty());
    env.stop().await;
}

#[tokio::test]
async fn webhooks_register_and_deliver_signed_events() {
    use axum::routing::post;
    let env = csp_env().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(reqwest::header::HeaderMap, bytes::Bytes)>();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: reqwest::header::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (token, _) = pc_user_tokens(&env).await;
    let reg = pc(&env, "/webhooks/v1/registration");
    let (status, _, body) = call(&env, Method::GET, &token, &reg, &[], None).await;
    assert_eq!((status, pc_error(&body)), (StatusCode::NOT_FOUND, 3000));
    let (status, _, body) = call(
        &env,
        Method::POST,
        &token,
        &reg,
        &[],
        Some(json!({"WebhookUrl": hook, "WebhookEvents": ["subscription-updated"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["WebhookEvents"], json!(["subscription-updated"]));
    assert!(body["SubscriberId"].is_string());
    let (_, _, events) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, "/webhooks/v1/registration/events"),
        &[],
        None,
    )
    .await;
    assert!(events.as_array().unwrap().iter().any(|e| e == "test-created"));

    let (status, _, v) = call(
        &env,
        Method::POST,
        &token,
        &pc(&env, "/webhooks/v1/registration/validationEvents"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let correlation = v["correlationId"].as_str().unwrap().to_owned();
    let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["EventName"], "test-created");
    let signature = headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Signature ")
        .unwrap()
        .to_owned();
    assert_eq!(headers["x-ms-signature-algorithm"], "rsa-sha256");
    let cert_url = headers["x-ms-certificate-url"].to_str().unwrap().to_owned();
    let der = env
        .http
        .get(&cert_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = cert.public_key().parsed().unwrap() else {
        panic!("not RSA")
    };
    let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect::<Vec<u8>>();
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&strip(rsa.modulus), &strip(rsa.exponent));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&signature)
        .unwrap();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    assert!(jsonwebtoken::crypto::verify(&sig, &body, &key, jsonwebtoken::Algorithm::RS256).unwrap());
    let date = event["ResourceChangeUtcDate"].as_str().unwrap();
    assert!(
        date.ends_with("+00:00") && date.len() == "2024-12-12T14:44:18.6278540+00:00".len(),
        "{date}"
    );
    let (_, _, status_body) = call(
        &env,
        Method::GET,
        &token,
        &pc(
            &env,
            &format!("/webhooks/v1/registration/validationEvents/{correlation}"),
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(status_body["status"], "completed", "{status_body}");
    // Two validations a minute at most.
    call(
        &env,
        Method::POST,
        &token,
        &pc(&env, "/webhooks/v1/registration/validationEvents"),
        &[],
        None,
    )
    .await;
    let (status, headers, _) = call(
        &env,
        Method::POST,
        &token,
        &pc(&env, "/webhooks/v1/registration/validationEvents"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("Retry-After"));
    let _ = rx.recv().await;

    // A quantity change is announced as subscription-updated.
    let cid = env.tenant(0);
    let (_, _, list) = call(
        &env,
        Method::GET,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscriptions")),
        &[],
        None,
    )
    .await;
    let sid = list["items"][0]["id"].as_str().unwrap().to_owned();
    call(
        &env,
        Method::PATCH,
        &token,
        &pc(&env, &format!("/v1/customers/{cid}/subscriptions/{sid}")),
        &[],
        Some(json!({"quantity": 50})),
    )
    .await;
    let (_, body) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["EventName"], "subscription-updated");
    assert!(
        event["ResourceUri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/webhooks/v1/customers/{cid}/subscriptions/{sid}"))
    );
    assert!(env.emu.webhook_deliveries().iter().all(|d| d.status == Some(200)));
    let (status, _, _) = call(&env, Method::DELETE, &token, &reg, &[], None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    env.stop().await;
}

#[tokio::test]
async fn gdap_access_assignments_match_the_relationships_and_the_customers_list() {
    let env = csp_env().await;
    let token = env.token("multi_tenant_secret", &env.partner()).await;
    let (items, _) = env
        .collect(&token, "/tenantRelationships/delegatedAdminRelationships")
        .await;
    let (pc_token, _) = pc_user_tokens(&env).await;
    let (_, _, customers) = call(
        &env,
        Method::GET,
        &pc_token,
        &pc(&env, "/v1/customers?size=50"),
        &[],
        None,
    )
    .await;
    let customer_ids: Vec<&str> = customers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let (_, _, groups) = env
        .get(&token, "/groups?$filter=displayName eq 'AdminAgents'")
        .await;
    let admin_agents = groups["value"][0]["id"].as_str().unwrap().to_owned();
    for r in &items {
        // Every relationship's customer is a customer of the partner.
        assert!(customer_ids.contains(&r["customer"]["tenantId"].as_str().unwrap()));
        let id = r["id"].as_str().unwrap();
        let (status, _, body) = env
            .get(
                &token,
                &format!("/tenantRelationships/delegatedAdminRelationships/{id}/accessAssignments"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let assignments = body["value"].as_array().unwrap();
        if r["status"] == "active" {
            assert_eq!(
                assignments[0]["accessContainer"]["accessContainerId"],
                admin_agents.as_str()
            );
            assert_eq!(
                assignments[0]["accessDetails"]["unifiedRoles"],
                r["accessDetails"]["unifiedRoles"]
            );
        } else {
            assert!(assignments.is_empty());
        }
    }
    env.stop().await;
}

#[tokio::test]
async fn a_gdap_only_tenant_is_not_a_customer_but_can_be_consented() {
    let world = deskbridge_emulator::World::generate(&deskbridge_emulator::GenerateOptions {
        seed: 3,
        tenants: 4,
        users_per_tenant: Some(10),
        ..Default::default()
    })
    .unwrap();
    let customers: Vec<String> = world
        .partner_center
        .customers
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let tenants: Vec<String> = world.customer_tenants().map(|t| t.id.clone()).collect();
    assert_eq!(customers, tenants[..3].to_vec());
    let partner = world.tenant(world.partner_tenant_id.as_deref().unwrap()).unwrap();
    assert!(
        partner
            .gdap_relationships
            .iter()
            .any(|r| r.customer_tenant_id == tenants[3])
    );
    // Subscriptions follow the directory's SKUs, one per SKU, with their prepaid units.
    for c in &customers {
        let t = world.tenant(c).unwrap();
        for sku in &t.skus {
            let sub = world
                .partner_center
                .subscriptions
                .iter()
                .find(|s| s.customer_id == *c && s.sku_id.as_deref() == Some(sku.sku_id.as_str()))
                .unwrap();
            assert_eq!(sub.quantity, i64::from(sku.prepaid_enabled));
        }
    }
}

#[tokio::test]
async fn deliveries_are_retried_until_the_receiver_accepts() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = csp_env().await;
    env.emu.update_partner_faults(|f| f.delivery_retry_ms = 10);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (token, _) = pc_user_tokens(&env).await;
    let (status, _, _) = call(
        &env,
        Method::POST,
        &token,
        &pc(&env, "/webhooks/v1/registration"),
        &[],
        Some(json!({"WebhookUrl": hook, "WebhookEvents": ["referral-created"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env
        .admin(
            Method::POST,
            "/partner/events",
            Some(json!({"EventName": "referral-created"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Events the registration does not name are not delivered.
    env.admin(
        Method::POST,
        "/partner/events",
        Some(json!({"EventName": "invoice-ready"})),
    )
    .await;
    for _ in 0..100 {
        if env.emu.webhook_deliveries().iter().any(|d| d.status == Some(200)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let attempts: Vec<(u32, Option<u16>)> = env
        .emu
        .webhook_deliveries()
        .iter()
        .map(|d| (d.attempt, d.status))
        .collect();
    assert_eq!(attempts, vec![(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    assert!(
        env.emu
            .webhook_deliveries()
            .iter()
            .all(|d| d.event_name == "referral-created")
    );
    env.stop().await;
}

#[tokio::test]
async fn dap_pre_consents_the_admin_agents_app_and_contracts_list_the_dap_customers() {
    let env = csp_env().await;
    let gdap = env.app("gdap_multi_tenant").clone();
    let customer = env.tenant(1); // GDAP expired
    let client_credentials = |tenant: String| {
        let env = &env;
        let gdap = &gdap;
        async move {
            env.post_form(
                &env.token_url(&tenant),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &gdap.client_id),
                    ("client_secret", gdap.client_secret.as_deref().unwrap()),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await
        }
    };
    // No service principal there and no DAP: no token.
    let (status, _) = env
        .admin(
            Method::PUT,
            "/partner/consent",
            Some(json!({"client_id": gdap.client_id, "tenant": customer, "consented": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = client_credentials(customer.clone()).await;
    assert_eq!((status, aad_error(&body).1), (StatusCode::UNAUTHORIZED, 7000229));
    let partner_token = env.token("gdap_multi_tenant", &env.partner()).await;
    let (status, _, body) = env.get(&partner_token, "/contracts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]), "a generated world has no DAP");

    // DAP given: the AdminAgents app gets a token and reads Graph without consent or GDAP.
    let (status, _) = env
        .admin(
            Method::PUT,
            &format!("/partner/dap/{customer}"),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = client_credentials(customer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = env.get(&token, "/users?$top=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = env.get(&partner_token, "/contracts").await;
    assert_eq!(status, StatusCode::OK);
    let contracts = body["value"].as_array().unwrap();
    assert_eq!(contracts.len(), 1, "{body}");
    assert_eq!(contracts[0]["customerId"], json!(customer));
    assert_eq!(contracts[0]["contractType"], "ResellerPartner");
    assert_eq!(contracts[0]["@odata.type"], "#microsoft.graph.contract");
    let id = contracts[0]["id"].as_str().unwrap().to_owned();
    let (status, _, one) = env.get(&partner_token, &format!("/contracts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["customerId"], json!(customer));
    // A customer's own directory has no contracts.
    let (status, _, body) = env.get(&token, "/contracts").await;
    assert_eq!((status, body["value"].clone()), (StatusCode::OK, json!([])));

    // DAP taken away: a token issued before is refused, and no new one is issued.
    let (status, _) = env
        .admin(
            Method::PUT,
            &format!("/partner/dap/{customer}"),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = env.get(&token, "/users?$top=1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(graph_error(&body).0, "Authorization_IdentityNotFound");
    let (status, _, body) = client_credentials(customer.clone()).await;
    assert_eq!((status, aad_error(&body).1), (StatusCode::UNAUTHORIZED, 7000229));
    // An unknown tenant is refused by the admin route.
    let (status, _) = env
        .admin(
            Method::PUT,
            "/partner/dap/00000000-0000-4000-8000-000000000000",
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.stop().await;
}
