#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The token client against a local fake of the token endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use deskbridge_core::{Clock, ErrorCode, HasErrorCode, ManualClock, SharedClock};
use deskbridge_msauth::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sha2::Digest as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET: &str = "s3cr3t~value/with+odd&chars=";
const TOKEN_PATH: &str = "/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token";

fn start_time() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn token_client(server: &MockServer, clock: SharedClock) -> TokenClient {
    TokenClient::new(
        reqwest::Client::new(),
        Authority::new(&server.uri()).unwrap(),
        clock,
    )
}

fn secret_app(credential: ClientCredential) -> AppCredentials {
    AppCredentials {
        client_id: CLIENT_ID.into(),
        credential: Some(credential),
    }
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

fn token_body(token: &str, expires_in: i64) -> serde_json::Value {
    json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": token})
}

async fn mount_token(server: &MockServer, body: serde_json::Value) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

struct TestCertificate {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_pkcs8_der: Vec<u8>,
    public_key_pem: String,
}

fn generate_certificate(common_name: &str) -> TestCertificate {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![common_name.to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 31);
    let cert = params.self_signed(&key).unwrap();
    TestCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_pkcs8_der: key.serialize_der(),
        public_key_pem: key.public_key_pem(),
    }
}

fn certificate() -> &'static TestCertificate {
    static CERT: OnceLock<TestCertificate> = OnceLock::new();
    CERT.get_or_init(|| generate_certificate("deskbridge-test-app"))
}

#[tokio::test]
async fn secret_in_form_body_gets_a_token() {
    let server = MockServer::start().await;
    mount_token(&server, token_body("access-1", 3599)).await;
    let clock: SharedClock = Arc::new(ManualClock::new(start_time()));
    let client = token_client(&server, clock);
    let response = client
        .client_credentials(
            TENANT,
            &secret_app(ClientCredential::Secret(SECRET.into())),
            GRAPH_DEFAULT_SCOPE,
        )
        .await
        .unwrap();
    assert_eq!(response.access_token.bearer(), "access-1");
    assert_eq!(
        response.access_token.expires_at(),
        start_time() + SignedDuration::from_secs(3599)
    );
    assert!(response.refresh_token.is_none());

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let sent = form(&requests[0]);
    assert_eq!(sent["grant_type"], "client_credentials");
    assert_eq!(sent["scope"], GRAPH_DEFAULT_SCOPE);
    assert_eq!(sent["client_id"], CLIENT_ID);
    assert_eq!(sent["client_secret"], SECRET);
    assert!(requests[0].headers.get("authorization").is_none());
    let content_type = requests[0].headers.get("content-type").unwrap().to_str().unwrap();
    assert_eq!(content_type, "application/x-www-form-urlencoded");
}

#[tokio::test]
async fn secret_with_basic_auth_stays_out_of_the_body() {
    let server = MockServer::start().await;
    mount_token(&server, token_body("access-basic", 3599)).await;
    let client = token_client(&server, Arc::new(ManualClock::new(start_time())));
    client
        .client_credentials(
            TENANT,
            &secret_app(ClientCredential::SecretBasic(SECRET.into())),
            GRAPH_DEFAULT_SCOPE,
        )
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let sent = form(&requests[0]);
    assert!(!sent.contains_key("client_secret"));
    let header = requests[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let decoded =
        String::from_utf8(STANDARD.decode(header.strip_prefix("Basic ").unwrap()).unwrap()).unwrap();
    let (user, password) = decoded.split_once(':').unwrap();
    assert_eq!(user, CLIENT_ID);
    let password: String = url::form_urlencoded::parse(format!("p={password}").as_bytes())
        .next()
        .unwrap()
        .1
        .into();
    assert_eq!(password, SECRET);
}

fn aad_error(status: u16, error: &str, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: 0b3c-trace\r\nCorrelation ID: 9d1e-corr\r\nTimestamp: 2026-11-23 12:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-11-23 12:00:00Z",
        "trace_id": "0b3c-trace",
        "correlation_id": "9d1e-corr",
        "error_uri": format!("https://login.example/error?code={code}")
    }))
}

#[tokio::test]
async fn each_error_class_is_recognised_with_a_remedy() {
    let cases = [
        (
            401,
            "invalid_client",
            7_000_215,
            AuthErrorClass::InvalidClientSecret,
            "Secret ID",
        ),
        (
            401,
            "invalid_client",
            7_000_222,
            AuthErrorClass::ExpiredClientSecret,
            "expired",
        ),
        (
            400,
            "unauthorized_client",
            700_016,
            AuthErrorClass::AppNotFoundInTenant,
            "consent",
        ),
        (
            401,
            "invalid_client",
            7_000_229,
            AuthErrorClass::MissingServicePrincipal,
            "service principal",
        ),
        (
            400,
            "invalid_scope",
            70_011,
            AuthErrorClass::InvalidScope,
            "/.default",
        ),
        (
            400,
            "invalid_request",
            90_002,
            AuthErrorClass::TenantNotFound,
            "tenant id",
        ),
        (
            401,
            "invalid_client",
            700_027,
            AuthErrorClass::InvalidClientAssertion,
            "Upload",
        ),
        (
            401,
            "invalid_client",
            500_133,
            AuthErrorClass::InvalidClientAssertion,
            "clock",
        ),
        (
            401,
            "invalid_client",
            7_000_218,
            AuthErrorClass::InvalidClientAssertion,
            "no credential",
        ),
        (
            400,
            "invalid_grant",
            700_082,
            AuthErrorClass::ExpiredGrant,
            "Sign in again",
        ),
        (
            400,
            "invalid_grant",
            70_008,
            AuthErrorClass::ExpiredGrant,
            "Sign in again",
        ),
        (
            401,
            "invalid_client",
            50_012,
            AuthErrorClass::Other,
            "AADSTS code",
        ),
    ];
    for (status, error, code, class, remedy_hint) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(aad_error(status, error, code, "Something went wrong."))
            .mount(&server)
            .await;
        let client = token_client(&server, Arc::new(ManualClock::new(start_time())));
        let err = client
            .client_credentials(
                TENANT,
                &secret_app(ClientCredential::Secret(SECRET.into())),
                GRAPH_DEFAULT_SCOPE,
            )
            .await
            .unwrap_err();
        let microsoft = err.microsoft().unwrap_or_else(|| panic!("{code}: {err:?}"));
        assert_eq!(microsoft.status, status);
        assert_eq!(microsoft.error, error);
        assert_eq!(microsoft.aadsts(), Some(code));
        assert_eq!(microsoft.class(), class, "AADSTS{code}");
        assert_eq!(microsoft.trace_id.as_deref(), Some("0b3c-trace"));
        assert_eq!(microsoft.correlation_id.as_deref(), Some("9d1e-corr"));
        assert_eq!(microsoft.timestamp.as_deref(), Some("2026-11-23 12:00:00Z"));
        assert_eq!(
            microsoft.message(),
            format!("AADSTS{code}: Something went wrong.")
        );
        assert!(
            microsoft.remedy().contains(remedy_hint),
            "AADSTS{code}: {}",
            microsoft.remedy()
        );
        assert_eq!(err.error_code(), ErrorCode::UpstreamAuthentication);
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&format!("AADSTS{code}")), "{shown}");
        assert!(!shown.contains(SECRET));
    }
}

#[tokio::test]
async fn non_json_errors_and_unreachable_endpoints_are_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"))
        .mount(&server)
        .await;
    let client = token_client(&server, Arc::new(ManualClock::new(start_time())));
    let app = secret_app(ClientCredential::Secret(SECRET.into()));
    let err = client
        .client_credentials(TENANT, &app, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AuthError::UnexpectedResponse { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let unreachable = TokenClient::new(
        reqwest::Client::new(),
        Authority::new(&format!("http://{closed}")).unwrap(),
        Arc::new(ManualClock::new(start_time())),
    );
    let err = unreachable
        .client_credentials(TENANT, &app, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Transport { .. }), "{err:?}");
    assert_eq!(err.error_code(), ErrorCode::UpstreamUnavailable);
    assert!(!format!("{err} {err:?}").contains(SECRET));
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let credential = ClientCredential::Secret(SECRET.into());
    let app = secret_app(credential.clone());
    assert!(!format!("{credential:?} {app:?}").contains(SECRET));
    let cert = CertificateCredential::from_pem(
        certificate().cert_pem.as_bytes(),
        certificate().key_pem.as_bytes(),
    )
    .unwrap();
    let shown = format!("{cert:?}");
    assert!(shown.contains("[redacted]"));
    assert!(!shown.contains("PRIVATE KEY"));
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    aud: String,
    iss: String,
    sub: String,
    jti: String,
    nbf: i64,
    exp: i64,
}

async fn assertion_sent_with(credential: CertificateCredential) -> (jsonwebtoken::Header, String, String) {
    let server = MockServer::start().await;
    mount_token(&server, token_body("access-cert", 3599)).await;
    let client = token_client(&server, Arc::new(ManualClock::new(start_time())));
    let app = secret_app(ClientCredential::Certificate(Arc::new(credential)));
    client
        .client_credentials(TENANT, &app, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let sent = form(&requests[0]);
    assert_eq!(
        sent["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!sent.contains_key("client_secret"));
    let assertion = sent["client_assertion"].clone();
    (
        jsonwebtoken::decode_header(&assertion).unwrap(),
        assertion,
        server.uri(),
    )
}

fn verified_claims(assertion: &str, algorithm: jsonwebtoken::Algorithm) -> Claims {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(certificate().public_key_pem.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.validate_exp = false; // the assertion is dated by the manual clock, not today
    validation.validate_aud = false;
    jsonwebtoken::decode::<Claims>(assertion, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn certificate_assertion_is_ps256_with_sha256_thumbprint() {
    let cert = certificate();
    let credential =
        CertificateCredential::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let (header, assertion, server_uri) = assertion_sent_with(credential).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        header.x5t_s256.as_deref(),
        Some(
            URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(&cert.cert_der))
                .as_str()
        )
    );
    assert!(header.x5t.is_none());

    let claims = verified_claims(&assertion, jsonwebtoken::Algorithm::PS256);
    assert_eq!(claims.aud, format!("{server_uri}{TOKEN_PATH}"));
    assert_eq!(claims.iss, CLIENT_ID);
    assert_eq!(claims.sub, CLIENT_ID);
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok());
    assert_eq!(claims.nbf, start_time().as_second());
    assert_eq!(claims.exp - claims.nbf, 600);
}

#[tokio::test]
async fn rs256_mode_uses_sha1_thumbprint() {
    let cert = certificate();
    let credential =
        CertificateCredential::from_pem_bundle(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
            .unwrap()
            .with_algorithm(AssertionAlgorithm::Rs256);
    let (header, assertion, _) = assertion_sent_with(credential).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(
        header.x5t.as_deref(),
        Some(
            URL_SAFE_NO_PAD
                .encode(sha1::Sha1::digest(&cert.cert_der))
                .as_str()
        )
    );
    assert!(header.x5t_s256.is_none());
    assert_eq!(
        verified_claims(&assertion, jsonwebtoken::Algorithm::RS256).iss,
        CLIENT_ID
    );
}

#[test]
fn certificate_expiry_and_thumbprints_are_shown() {
    let cert = certificate();
    let credential =
        CertificateCredential::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    assert_eq!(
        credential.not_after(),
        "2027-01-31T00:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert_eq!(
        credential.not_before(),
        "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap()
    );
    assert!(
        credential.subject().contains("deskbridge-test-app"),
        "{}",
        credential.subject()
    );
    let hex: String = sha1::Sha1::digest(&cert.cert_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(credential.thumbprint_sha1_hex(), hex);
}

#[test]
fn pfx_archives_load_and_wrong_passwords_fail() {
    let cert = certificate();
    let key = p12_keystore::PrivateKey::from_der(&cert.key_pkcs8_der).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        b"key-1".as_slice(),
        key,
        [p12_keystore::Certificate::from_der(&cert.cert_der).unwrap()],
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("app", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let pfx = store.writer("pfx-password").write().unwrap();

    let credential = CertificateCredential::from_pfx(&pfx, &"pfx-password".into()).unwrap();
    assert_eq!(credential.certificate_der(), cert.cert_der.as_slice());
    assert_eq!(
        credential.not_after(),
        "2027-01-31T00:00:00Z".parse::<Timestamp>().unwrap()
    );
    let err = CertificateCredential::from_pfx(&pfx, &"wrong".into()).unwrap_err();
    assert!(matches!(err, CredentialError::BadPfx(_)), "{err:?}");
}

#[test]
fn a_key_from_another_certificate_is_refused() {
    let other = generate_certificate("someone-else");
    let err = CertificateCredential::from_pem(certificate().cert_pem.as_bytes(), other.key_pem.as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, CredentialError::KeyDoesNotMatchCertificate),
        "{err:?}"
    );
    let err = CertificateCredential::from_pem(certificate().cert_pem.as_bytes(), b"no key here").unwrap_err();
    assert!(matches!(err, CredentialError::NoPrivateKey), "{err:?}");
}

#[tokio::test]
async fn provider_reuses_the_token_and_refreshes_before_expiry() {
    let server = MockServer::start().await;
    mount_token(&server, token_body("cached", 3600)).await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let provider = AppTokenProvider::new(
        token_client(&server, clock.clone()),
        secret_app(ClientCredential::Secret(SECRET.into())),
    );
    for _ in 0..3 {
        assert_eq!(
            provider
                .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
                .await
                .unwrap()
                .bearer(),
            "cached"
        );
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    clock.advance(SignedDuration::from_mins(54)); // 6 minutes left: still outside the 5 minute margin
    provider.access_token(TENANT, GRAPH_DEFAULT_SCOPE).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    clock.advance(SignedDuration::from_mins(2)); // 4 minutes left: renewed before it expires
    provider.access_token(TENANT, GRAPH_DEFAULT_SCOPE).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    provider.invalidate(TENANT, GRAPH_DEFAULT_SCOPE).await;
    provider.access_token(TENANT, GRAPH_DEFAULT_SCOPE).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(token_body("shared", 3600))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let provider = Arc::new(AppTokenProvider::new(
        token_client(&server, Arc::new(ManualClock::new(start_time()))),
        secret_app(ClientCredential::Secret(SECRET.into())),
    ));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let provider = provider.clone();
        callers.spawn(async move {
            provider
                .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
                .await
                .unwrap()
                .bearer()
                .to_string()
        });
    }
    while let Some(result) = callers.join_next().await {
        assert_eq!(result.unwrap(), "shared");
    }
    server.verify().await;
}

#[derive(Default)]
struct RecordingSink {
    stored: Mutex<Vec<(String, String)>>,
}

impl RefreshTokenSink for RecordingSink {
    fn store<'a>(
        &'a self,
        tenant: &'a str,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.stored
                .lock()
                .unwrap()
                .push((tenant.to_string(), refresh_token.expose_secret().to_string()));
            Ok(())
        })
    }
}

struct RefusingSink;

impl RefreshTokenSink for RefusingSink {
    fn store<'a>(&'a self, _: &'a str, _: &'a SecretString) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Err("database is read-only".to_string()) })
    }
}

/// Answers each refresh with the next rotated refresh token, like Microsoft does.
struct RotatingRefresh;

impl wiremock::Respond for RotatingRefresh {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let sent = form(request);
        let next = match sent.get("grant_type").map(String::as_str) {
            Some("authorization_code") => "rt-1".to_string(),
            Some("refresh_token") => {
                let n: u32 = sent["refresh_token"].trim_start_matches("rt-").parse().unwrap();
                format!("rt-{}", n + 1)
            }
            other => panic!("unexpected grant {other:?}"),
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "expires_in": 3600, "scope": "User.Read.All",
            "access_token": format!("at-for-{next}"), "refresh_token": next
        }))
    }
}

#[tokio::test]
async fn delegated_flow_redeems_the_code_and_rotates_refresh_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(RotatingRefresh)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let sink = Arc::new(RecordingSink::default());
    let client = token_client(&server, clock.clone());
    let request = AuthorizationRequest::new(
        client.authority(),
        TENANT,
        CLIENT_ID,
        "http://localhost:8400/callback",
        &["offline_access", GRAPH_DEFAULT_SCOPE],
    )
    .unwrap();
    let public_client = AppCredentials {
        client_id: CLIENT_ID.into(),
        credential: None,
    };
    let provider = DelegatedTokenProvider::from_authorization_code(
        client,
        public_client,
        TENANT,
        &"the-code".into(),
        "http://localhost:8400/callback",
        &request.code_verifier,
        GRAPH_DEFAULT_SCOPE,
        sink.clone(),
    )
    .await
    .unwrap();
    let requests = server.received_requests().await.unwrap();
    let redeem = form(&requests[0]);
    assert_eq!(redeem["grant_type"], "authorization_code");
    assert_eq!(redeem["code"], "the-code");
    assert_eq!(redeem["code_verifier"], request.code_verifier.expose_secret());
    assert_eq!(redeem["redirect_uri"], "http://localhost:8400/callback");
    assert!(!redeem.contains_key("client_secret"));

    // The redeemed access token is used as is; no refresh yet.
    assert_eq!(
        provider
            .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
            .await
            .unwrap()
            .bearer(),
        "at-for-rt-1"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    clock.advance(SignedDuration::from_mins(58));
    assert_eq!(
        provider
            .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
            .await
            .unwrap()
            .bearer(),
        "at-for-rt-2"
    );
    clock.advance(SignedDuration::from_mins(58));
    assert_eq!(
        provider
            .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
            .await
            .unwrap()
            .bearer(),
        "at-for-rt-3"
    );

    let requests = server.received_requests().await.unwrap();
    assert_eq!(form(&requests[1])["refresh_token"], "rt-1");
    assert_eq!(
        form(&requests[2])["refresh_token"],
        "rt-2",
        "the rotated token must be used next"
    );
    let stored = sink.stored.lock().unwrap().clone();
    let expected: Vec<(String, String)> = ["rt-1", "rt-2", "rt-3"]
        .iter()
        .map(|t| (TENANT.to_string(), t.to_string()))
        .collect();
    assert_eq!(stored, expected);
    assert!(!format!("{provider:?}").contains("rt-"));
}

#[tokio::test]
async fn a_refresh_token_that_cannot_be_stored_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(RotatingRefresh)
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::new(start_time()));
    let provider = DelegatedTokenProvider::new(
        token_client(&server, clock),
        AppCredentials {
            client_id: CLIENT_ID.into(),
            credential: Some(ClientCredential::Secret(SECRET.into())),
        },
        "rt-7".into(),
        Arc::new(RefusingSink),
    );
    let err = provider
        .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::RefreshTokenStore(_)), "{err:?}");
    assert_eq!(
        form(&server.received_requests().await.unwrap()[0])["client_secret"],
        SECRET
    );
}

#[tokio::test]
async fn expired_refresh_token_is_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(aad_error(
            400,
            "invalid_grant",
            700_082,
            "The refresh token has expired due to inactivity.",
        ))
        .mount(&server)
        .await;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start_time()));
    let provider = DelegatedTokenProvider::new(
        token_client(&server, clock),
        AppCredentials {
            client_id: CLIENT_ID.into(),
            credential: None,
        },
        "rt-old".into(),
        Arc::new(RecordingSink::default()),
    );
    let err = provider
        .access_token(TENANT, GRAPH_DEFAULT_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(err.microsoft().unwrap().class(), AuthErrorClass::ExpiredGrant);
    assert!(!err.to_string().contains("rt-old"));
}
