use jiff::SignedDuration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

fn secret_form<'a>(client_id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", GRAPH_SCOPE),
    ]
}

#[tokio::test]
async fn client_secret_in_form_or_basic_auth_yields_a_graph_token() {
    let env = start().await;
    let app = env.app("multi_tenant_secret").clone();
    let tenant = env.tenant(0);
    let (status, headers, body) = env
        .post_form(
            &env.token_url(&tenant),
            &secret_form(&app.client_id, app.client_secret.as_deref().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64() && body["ext_expires_in"].is_u64());
    assert!(body.get("refresh_token").is_none());
    assert_eq!(headers["cache-control"], "no-store, no-cache");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["tid"], tenant.as_str());
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["appid"], app.client_id.as_str());
    assert_eq!(c["idtyp"], "app");
    assert!(
        c["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "User.Read.All")
    );
    assert!(c["exp"].as_i64().unwrap() > c["nbf"].as_i64().unwrap());

    // The same secret via HTTP Basic, tenant addressed by its domain.
    let domain = env.summary.tenants[0].domain.clone();
    let resp = env
        .http
        .post(env.token_url(&domain))
        .basic_auth(&app.client_id, app.client_secret.as_deref())
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    env.stop().await;
}

#[tokio::test]
async fn token_errors_have_entra_codes_and_shape() {
    let env = start().await;
    let main = env.app("multi_tenant_secret").clone();
    let secret = main.client_secret.clone().unwrap();
    let t0 = env.tenant(0);
    let t1 = env.tenant(1);
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, StatusCode, &'a str, u64);
    let cases: Vec<Case> = vec![
        (
            t0.clone(),
            secret_form(&main.client_id, "wrong"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
        ),
        (
            t0.clone(),
            secret_form("11111111-2222-3333-4444-555555555555", &secret),
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
        ),
        (
            "00000000-0000-0000-0000-00000000dead".into(),
            secret_form(&main.client_id, &secret),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
        ),
        (
            t0.clone(),
            vec![
                ("client_id", main.client_id.as_str()),
                ("client_secret", secret.as_str()),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
        ),
        (
            t0.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", main.client_id.as_str()),
                ("scope", GRAPH_SCOPE),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
        ),
        (
            t0.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", main.client_id.as_str()),
                ("client_secret", secret.as_str()),
                (
                    "scope",
                    "https://graph.microsoft.com/.default https://api.partnercenter.microsoft.com/.default",
                ),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
        (
            t0.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", main.client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", "https://graph.microsoft.com/User.Read.All"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        let (got, _, body) = env.post_form(&env.token_url(&tenant), &form).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(aad_error(&body), (error.to_owned(), code), "{body}");
    }

    // Single-tenant app used at another tenant; multi-tenant app without a service principal.
    let single = env.app("single_tenant").clone();
    let (status, _, body) = env
        .post_form(
            &env.token_url(&t1),
            &secret_form(&single.client_id, single.client_secret.as_deref().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(aad_error(&body).1, 700016);
    let unconsented = env.app("unconsented").clone();
    let (status, _, body) = env
        .post_form(
            &env.token_url(&t0),
            &secret_form(
                &unconsented.client_id,
                unconsented.client_secret.as_deref().unwrap(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body), ("invalid_client".into(), 7000229));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("missing service principal")
    );
    // Expired secret, and the fault that declares a valid secret expired.
    let expired = env.app("expired_secret").clone();
    let (status, _, body) = env
        .post_form(
            &env.token_url(&t0),
            &secret_form(&expired.client_id, expired.client_secret.as_deref().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body).1, 7000222);
    env.emu.set_faults(deskbridge_emulator::Faults {
        expired_secret_apps: vec![main.client_id.clone()],
        ..Default::default()
    });
    let (status, _, body) = env
        .post_form(&env.token_url(&t0), &secret_form(&main.client_id, &secret))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body).1, 7000222);
    // Unknown resource.
    let (status, _, body) = env
        .post_form(
            &env.token_url(&t0),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", main.client_id.as_str()),
                ("client_secret", expired.client_secret.as_deref().unwrap()),
                ("scope", "https://unknown.example/.default"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(aad_error(&body).1, 500011);
    env.stop().await;
}

struct AssertionSpec {
    alg: Algorithm,
    sha256: bool,
    aud: String,
    iss: String,
    sub: String,
    nbf: i64,
    exp: i64,
    key_pem: Option<String>,
}

fn assertion(env: &Env, spec: AssertionSpec) -> String {
    let app = env.app("certificate");
    let der =
        deskbridge_emulator::crypto::cert_der_from_pem(app.certificate_pem.as_deref().unwrap()).unwrap();
    let (x5t, x5t_s256) = deskbridge_emulator::crypto::thumbprints(&der);
    let mut header = Header::new(spec.alg);
    if spec.sha256 {
        header.x5t_s256 = Some(x5t_s256);
    } else {
        header.x5t = Some(x5t);
    }
    let pem = spec
        .key_pem
        .unwrap_or_else(|| app.private_key_pem.clone().unwrap());
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let claims = json!({"aud": spec.aud, "iss": spec.iss, "sub": spec.sub, "jti": uuid::Uuid::new_v4().to_string(),
                        "nbf": spec.nbf, "exp": spec.exp});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn redeem_assertion(env: &Env, tenant: &str, assertion: &str) -> (StatusCode, Value) {
    let app = env.app("certificate");
    let (status, _, body) = env
        .post_form(
            &env.token_url(tenant),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("scope", GRAPH_SCOPE),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
            ],
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn certificate_assertions_are_checked_like_entra() {
    let env = start().await;
    let tenant = env.tenant(0);
    let client_id = env.app("certificate").client_id.clone();
    let now = env.now().as_second();
    let good = |alg, sha256| AssertionSpec {
        alg,
        sha256,
        aud: env.token_url(&tenant),
        iss: client_id.clone(),
        sub: client_id.clone(),
        nbf: now,
        exp: now + 600,
        key_pem: None,
    };
    for (alg, sha256) in [(Algorithm::PS256, true), (Algorithm::RS256, false)] {
        let (status, body) = redeem_assertion(&env, &tenant, &assertion(&env, good(alg, sha256))).await;
        assert_eq!(status, StatusCode::OK, "{alg:?}: {body}");
        assert_eq!(claims(body["access_token"].as_str().unwrap())["appidacr"], "2");
    }
    // Signed by a key that is not the registered certificate's.
    let other = deskbridge_emulator::crypto::generate_app_certificate("other", "k".into()).unwrap();
    let forged = assertion(
        &env,
        AssertionSpec {
            key_pem: Some(other.private_key_pem),
            ..good(Algorithm::PS256, true)
        },
    );
    let (status, body) = redeem_assertion(&env, &tenant, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body), ("invalid_client".into(), 700027));
    // Expired.
    let stale = assertion(
        &env,
        AssertionSpec {
            nbf: now - 7200,
            exp: now - 3600,
            ..good(Algorithm::PS256, true)
        },
    );
    let (status, body) = redeem_assertion(&env, &tenant, &stale).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body).1, 500133);
    // Not yet valid.
    let future = assertion(
        &env,
        AssertionSpec {
            nbf: now + 3600,
            exp: now + 7200,
            ..good(Algorithm::PS256, true)
        },
    );
    assert_eq!(
        aad_error(&redeem_assertion(&env, &tenant, &future).await.1).1,
        500133
    );
    // Wrong audience.
    let wrong_aud = assertion(
        &env,
        AssertionSpec {
            aud: env.token_url(&env.tenant(1)),
            ..good(Algorithm::PS256, true)
        },
    );
    assert_eq!(
        aad_error(&redeem_assertion(&env, &tenant, &wrong_aud).await.1).1,
        700023
    );
    // iss must equal sub must equal the client id.
    let wrong_iss = assertion(
        &env,
        AssertionSpec {
            iss: "someone-else".into(),
            ..good(Algorithm::PS256, true)
        },
    );
    assert_eq!(
        aad_error(&redeem_assertion(&env, &tenant, &wrong_iss).await.1).1,
        50012
    );
    // Unknown thumbprint.
    let (status, body) = redeem_assertion(&env, &tenant, "eyJhbGciOiJQUzI1NiJ9.e30.c2ln").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(aad_error(&body).1, 700027);
    env.stop().await;
}

fn pkce() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789".to_owned();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn authorize(env: &Env, tenant: &str, challenge: &str) -> reqwest::Response {
    let app = env.app("multi_tenant_secret");
    env.http
        .get(format!("{}/{tenant}/oauth2/v2.0/authorize", env.emu.base_url()))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost/callback"),
            (
                "scope",
                "openid offline_access https://graph.microsoft.com/User.Read.All",
            ),
            ("state", "xyz"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
}

fn code_from(resp: &reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz");
    params["code"].clone()
}

#[tokio::test]
async fn authorization_code_with_pkce_and_rotating_refresh_tokens() {
    let env = start_with(|c| c.auto_approve = true).await;
    let tenant = env.tenant(0);
    let app = env.app("multi_tenant_secret").clone();
    let secret = app.client_secret.clone().unwrap();
    let (verifier, challenge) = pkce();
    let redeem = |code: String, verifier: String| {
        let env = &env;
        let (client_id, secret, tenant) = (app.client_id.clone(), secret.clone(), tenant.clone());
        async move {
            env.post_form(
                &env.token_url(&tenant),
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("code", &code),
                    ("redirect_uri", "http://localhost/callback"),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    // Wrong verifier.
    let code = code_from(&authorize(&env, &tenant, &challenge).await);
    let (status, _, body) = redeem(code, "wrong-verifier".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(aad_error(&body), ("invalid_grant".into(), 501481));
    // Right verifier.
    let code = code_from(&authorize(&env, &tenant, &challenge).await);
    let (status, _, body) = redeem(code.clone(), verifier.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string());
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["idtyp"], "user");
    assert_eq!(access["scp"], "User.Read.All");
    // A code is single-use.
    let (status, _, body) = redeem(code, verifier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(aad_error(&body).1, 70008);
    // Delegated token works on /me.
    let (status, _, me) = env.get(body_token(&env, &tenant).await.as_str(), "/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // Refresh rotates; the old token keeps working; 90 days of inactivity expire it.
    let rt1 = refresh_token(&env, &tenant).await;
    let refresh = |rt: String| {
        let env = &env;
        let (client_id, secret, tenant) = (app.client_id.clone(), secret.clone(), tenant.clone());
        async move {
            env.post_form(
                &env.token_url(&tenant),
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                    ("refresh_token", &rt),
                    (
                        "scope",
                        "https://graph.microsoft.com/User.Read.All offline_access",
                    ),
                ],
            )
            .await
        }
    };
    let (status, _, body) = refresh(rt1.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(refresh(rt1.clone()).await.0, StatusCode::OK);
    env.advance(SignedDuration::from_hours(24 * 91));
    let (status, _, body) = refresh(rt2).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(aad_error(&body), ("invalid_grant".into(), 700082));
    let (_, _, body) = refresh("not-a-token".into()).await;
    assert_eq!(aad_error(&body).1, 9002313);
    env.stop().await;
}

async fn fresh_code_tokens(env: &Env, tenant: &str) -> Value {
    let app = env.app("multi_tenant_secret");
    let (verifier, challenge) = pkce();
    let code = code_from(&authorize(env, tenant, &challenge).await);
    env.post_form(
        &env.token_url(tenant),
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.as_deref().unwrap()),
            ("code", &code),
            ("redirect_uri", "http://localhost/callback"),
            ("code_verifier", &verifier),
        ],
    )
    .await
    .2
}

async fn body_token(env: &Env, tenant: &str) -> String {
    fresh_code_tokens(env, tenant).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn refresh_token(env: &Env, tenant: &str) -> String {
    fresh_code_tokens(env, tenant).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn authorize_page_signs_in_with_a_password_and_rejects_bad_requests() {
    let env = start().await;
    let tenant = env.tenant(0);
    let (_, challenge) = pkce();
    let page = authorize(&env, &tenant, &challenge).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form") && html.contains("name=\"password\""));
    let app = env.app("multi_tenant_secret").clone();
    let upn = env
        .emu
        .with_world(|w| w.tenants[0].users[0].user_principal_name.clone());
    let submit = |password: &'static str| {
        let env = &env;
        let (client_id, tenant, upn, challenge) = (
            app.client_id.clone(),
            tenant.clone(),
            upn.clone(),
            challenge.clone(),
        );
        async move {
            env.http
                .post(format!("{}/{tenant}/oauth2/v2.0/authorize", env.emu.base_url()))
                .form(&[
                    ("client_id", client_id.as_str()),
                    ("response_type", "code"),
                    ("redirect_uri", "http://localhost/callback"),
                    ("scope", "openid User.Read"),
                    ("state", "xyz"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                    ("username", upn.as_str()),
                    ("password", password),
                    ("decision", "accept"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = submit("nope").await;
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(wrong.text().await.unwrap().contains("AADSTS50126"));
    let right = submit("emulator").await;
    assert!(!code_from(&right).is_empty());
    // Unregistered redirect URI.
    let resp = env
        .http
        .get(format!("{}/{tenant}/oauth2/v2.0/authorize", env.emu.base_url()))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("AADSTS50011"));
    env.stop().await;
}

#[tokio::test]
async fn discovery_documents_publish_the_signing_key() {
    let env = start().await;
    let tenant = env.tenant(0);
    let base = env.emu.base_url().to_owned();
    let config: Value = env
        .http
        .get(format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        config["token_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/token")
    );
    assert_eq!(
        config["authorization_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/authorize")
    );
    assert_eq!(config["issuer"], format!("{base}/{tenant}/v2.0"));
    let jwks: Value = env
        .http
        .get(config["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    let token = env.main_token(0).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_audience(&["https://graph.microsoft.com"]);
    assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok());
    let resp = env
        .http
        .get(format!(
            "{base}/not-a-tenant/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    env.stop().await;
}
