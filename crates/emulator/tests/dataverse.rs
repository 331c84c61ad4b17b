#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Dataverse Web API v9.2 in the emulator, over HTTP as any Dataverse client sees it.

use std::sync::Arc;

use deskbridge_core::{Clock, ManualClock};
use deskbridge_emulator::{Emulator, EmulatorConfig, Faults, GenerateOptions, ServiceLimits, Summary, World};
use jiff::SignedDuration;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const START: &str = "2026-11-01T00:00:00Z";

struct Env {
    emu: Emulator,
    http: reqwest::Client,
    summary: Summary,
    clock: Arc<ManualClock>,
}

async fn start(contacts: usize) -> Env {
    let world = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 2,
        users_per_tenant: Some(20),
        dataverse_orgs: 2,
        dataverse_contacts: Some(contacts),
        ..GenerateOptions::default()
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let mut config = EmulatorConfig::new(world);
    config.clock = clock.clone();
    config.auto_approve = true;
    let emu = Emulator::start(config).await.unwrap();
    let summary = emu.summary();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Env {
        emu,
        http,
        summary,
        clock,
    }
}

impl Env {
    fn org(&self, i: usize) -> (String, String) {
        let o = &self.summary.dataverse_orgs[i];
        (o.url.clone(), o.tenant.clone())
    }

    fn api(&self, i: usize) -> String {
        format!("{}/api/data/v9.2", self.org(i).0)
    }

    async fn token(&self, kind: &str, tenant: &str, scope: &str) -> (StatusCode, Value) {
        let app = self.summary.apps.iter().find(|a| a.kind == kind).unwrap();
        let resp = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.emu.base_url()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_deref().unwrap_or("")),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    async fn app_token(&self, kind: &str, org: usize) -> String {
        let (url, tenant) = self.org(org);
        let (status, body) = self.token(kind, &tenant, &format!("{url}/.default")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, token: &str, url: &str, prefer: Option<&str>) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0")
            .header("Accept", "application/json");
        if let Some(p) = prefer {
            req = req.header("Prefer", p);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(m) = if_match {
            req = req.header("If-Match", m);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn tokens_are_audience_checked_per_org_and_who_am_i_names_the_application_user() {
    let env = start(40).await;
    assert_eq!(env.summary.dataverse_orgs.len(), 2);
    let org = &env.summary.dataverse_orgs[0];
    assert!(org.url.starts_with(env.emu.base_url()) && org.url.contains("/org/"));
    assert!(org.tables.iter().any(|t| t == "cr7a1_contract"));
    assert_eq!(org.rows["contact"], 40);

    let token = env.app_token("multi_tenant_secret", 0).await;
    let (status, headers, body) = env.get(&token, &format!("{}/WhoAmI", env.api(0)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["odata-version"], "4.0");
    assert!(headers.contains_key("x-ms-ratelimit-burst-remaining-xrm-requests"));
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    );
    let app_user = env.emu.with_world(|w| {
        let app = env
            .summary
            .apps
            .iter()
            .find(|a| a.kind == "multi_tenant_secret")
            .unwrap();
        w.dataverse_orgs[0]
            .application_user(&app.client_id)
            .unwrap()
            .user_id
            .clone()
    });
    assert_eq!(body["UserId"], json!(app_user));

    // A token for org 0 is refused by org 1; a Graph token is refused by both; no token neither.
    let (status, headers, _) = env.get(&token, &format!("{}/WhoAmI", env.api(1)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("authorization_uri=")
    );
    let (_, graph) = env
        .token(
            "multi_tenant_secret",
            &env.org(0).1,
            "https://graph.microsoft.com/.default",
        )
        .await;
    let (status, _, _) = env
        .get(
            graph["access_token"].as_str().unwrap(),
            &format!("{}/WhoAmI", env.api(0)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = env.get("", &format!("{}/accounts", env.api(0)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A token for the org asked in another tenant is refused (the org is not in that tenant).
    let (status, body) = env
        .token(
            "multi_tenant_secret",
            &env.org(1).1,
            &format!("{}/.default", env.org(0).0),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = env
        .get(
            body["access_token"].as_str().unwrap(),
            &format!("{}/WhoAmI", env.api(0)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An unknown org is an unknown resource at the token endpoint.
    let (status, body) = env
        .token(
            "multi_tenant_secret",
            &env.org(0).1,
            &format!("{}/org/nosuchorg/.default", env.emu.base_url()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_codes"][0], 500011);
}

#[tokio::test]
async fn application_users_and_privileges() {
    let env = start(20).await;
    // The single-tenant reader may read accounts only.
    let token = env.app_token("single_tenant", 0).await;
    let (status, _, body) = env
        .get(&token, &format!("{}/accounts?$select=name", env.api(0)), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = env
        .get(&token, &format!("{}/contacts?$select=fullname", env.api(0)), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "0x80040220");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prvReadcontact")
    );
    // An app that is not an application user.
    let token = env.app_token("multi_tenant_secret", 0).await;
    env.emu
        .with_world_mut(|w| w.dataverse_orgs[0].application_users.clear());
    let (status, _, body) = env.get(&token, &format!("{}/WhoAmI", env.api(0)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&body), "0x80072560");
}

#[tokio::test]
async fn delegated_user_impersonation_tokens() {
    use base64::Engine;
    use sha2::Digest;
    let env = start(20).await;
    let (url, tenant) = env.org(0);
    let app = env
        .summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap()
        .clone();
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let scope = format!("{url}/user_impersonation offline_access");
    let resp = env
        .http
        .get(format!("{}/{tenant}/oauth2/v2.0/authorize", env.emu.base_url()))
        .query(&[
            ("client_id", app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost/callback"),
            ("scope", scope.as_str()),
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
    let token_url = format!("{}/{tenant}/oauth2/v2.0/token", env.emu.base_url());
    let resp = env
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_deref().unwrap()),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost/callback"),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["scope"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{url}/user_impersonation")),
        "{body}"
    );
    let access = body["access_token"].as_str().unwrap();
    let (status, _, who) = env.get(access, &format!("{}/WhoAmI", env.api(0)), None).await;
    assert_eq!(status, StatusCode::OK, "{who}");
    let user_ids: Vec<String> = env.emu.with_world(|w| {
        w.tenant(&tenant)
            .unwrap()
            .users
            .iter()
            .map(|u| u.id.clone())
            .collect()
    });
    assert!(user_ids.contains(&who["UserId"].as_str().unwrap().to_owned()));
    // The refresh token gives Dataverse tokens with `.default`, and rotates.
    let resp = env
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_deref().unwrap()),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("scope", &format!("{url}/.default")),
        ])
        .send()
        .await
        .unwrap();
    let refreshed: Value = resp.json().await.unwrap();
    assert!(refreshed["refresh_token"].is_string(), "{refreshed}");
    let (status, _, _) = env
        .get(
            refreshed["access_token"].as_str().unwrap(),
            &format!("{}/accounts?$top=1", env.api(0)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn select_annotations_picklists_lookups_and_etags() {
    let env = start(60).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    // Without annotations: values only, the key always, picklists as integers.
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname,cr7a1_hobbies,gendercode,_parentcustomerid_value"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#contacts(fullname,cr7a1_hobbies,gendercode,_parentcustomerid_value)")
    );
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 60);
    for r in rows {
        assert!(r["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        assert!(r["contactid"].is_string());
        assert!(r.get("emailaddress1").is_none());
        assert!(
            r.as_object()
                .unwrap()
                .keys()
                .all(|k| !k.contains('@') || k == "@odata.etag")
        );
    }
    assert!(rows.iter().any(|r| r["gendercode"].is_i64()));
    let hobbies = rows.iter().find_map(|r| r["cr7a1_hobbies"].as_str()).unwrap();
    assert!(hobbies.split(',').all(|p| p.parse::<i32>().is_ok()));

    // With annotations: formatted values and lookup annotations.
    let (status, headers, body) = env
        .get(
            &token,
            &format!(
                "{api}/contacts?$select=fullname,cr7a1_hobbies,gendercode,_parentcustomerid_value,createdon"
            ),
            Some("odata.include-annotations=\"*\""),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["preference-applied"]
            .to_str()
            .unwrap()
            .contains("odata.include-annotations")
    );
    let rows = body["value"].as_array().unwrap();
    let with_account = rows
        .iter()
        .find(|r| r["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account")
        .unwrap();
    assert_eq!(
        with_account["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"],
        "parentcustomerid_account"
    );
    assert!(with_account["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"].is_string());
    let multi = rows.iter().find(|r| r["cr7a1_hobbies"].is_string()).unwrap();
    let labels = multi["cr7a1_hobbies@OData.Community.Display.V1.FormattedValue"]
        .as_str()
        .unwrap();
    assert_eq!(
        labels.split("; ").count(),
        multi["cr7a1_hobbies"].as_str().unwrap().split(',').count()
    );
    let gender = rows.iter().find(|r| r["gendercode"] == 2).unwrap();
    assert_eq!(
        gender["gendercode@OData.Community.Display.V1.FormattedValue"],
        "Female"
    );
    assert!(
        rows.iter()
            .any(|r| r["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"),
        "polymorphic lookups"
    );
    assert!(
        rows.iter().any(|r| r["_parentcustomerid_value"].is_null()),
        "contacts without an account"
    );

    // Money columns bring their currency lookup; formatted with the symbol.
    let (_, _, money) = env
        .get(
            &token,
            &format!("{api}/accounts?$select=revenue&$top=1"),
            Some("odata.include-annotations=\"*\""),
        )
        .await;
    let first = &money["value"][0];
    assert!(first["_transactioncurrencyid_value"].is_string(), "{first}");
    assert_eq!(
        first["_transactioncurrencyid_value@OData.Community.Display.V1.FormattedValue"],
        "US Dollar"
    );
    assert!(
        first["revenue@OData.Community.Display.V1.FormattedValue"]
            .as_str()
            .unwrap()
            .starts_with('$')
    );

    // A single row, its ETag, and 404.
    let id = rows[0]["contactid"].as_str().unwrap();
    let (status, headers, one) = env
        .get(&token, &format!("{api}/contacts({id})?$select=fullname"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["etag"].to_str().unwrap(),
        one["@odata.etag"].as_str().unwrap()
    );
    assert!(one["@odata.context"].as_str().unwrap().ends_with("/$entity"));
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts(00000000-0000-0000-0000-000000000001)"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "0x80040217");
    // /$count (text), with a filter.
    let resp = env
        .http
        .get(format!("{api}/contacts/$count?$filter=gendercode eq 2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let count: usize = resp.text().await.unwrap().parse().unwrap();
    assert_eq!(count, rows.iter().filter(|r| r["gendercode"] == 2).count());
    // Unknown columns and entity sets; $skip.
    let (status, _, body) = env
        .get(&token, &format!("{api}/contacts?$select=nosuchcolumn"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "0x80060888");
    let (status, _, _) = env.get(&token, &format!("{api}/nosuchset"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = env.get(&token, &format!("{api}/contacts?$skip=10"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn paging_cookies_maxpagesize_count_and_orderby() {
    let env = start(230).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    let mut url = format!("{api}/contacts?$select=fullname&$count=true");
    let mut seen = std::collections::HashSet::new();
    let mut pages = 0;
    loop {
        let (status, headers, body) = env.get(&token, &url, Some("odata.maxpagesize=50, odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\"")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            headers["preference-applied"]
                .to_str()
                .unwrap()
                .contains("odata.maxpagesize=50")
        );
        assert_eq!(body["@odata.count"], 230);
        pages += 1;
        for r in body["value"].as_array().unwrap() {
            assert!(
                seen.insert(r["contactid"].as_str().unwrap().to_owned()),
                "a row served twice"
            );
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("$select=fullname"));
                assert!(
                    next.contains("$skiptoken=%3Ccookie%20pagenumber%3D%22")
                        || next.contains("$skiptoken=%3Ccookie%20pagenumber=%22"),
                    "{next}"
                );
                let decoded: String = url::form_urlencoded::parse(next.split_once('?').unwrap().1.as_bytes())
                    .find(|(k, _)| k == "$skiptoken")
                    .unwrap()
                    .1
                    .into_owned();
                assert!(
                    decoded.starts_with("<cookie pagenumber=\"")
                        && decoded.contains("pagingcookie=\"%253ccookie")
                );
                assert!(decoded.ends_with("istracking=\"False\" />"));
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (230, 5));
    // maxpagesize above 5,000 is ignored; $top limits without a nextLink.
    let (_, headers, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname"),
            Some("odata.maxpagesize=9000"),
        )
        .await;
    assert!(headers.get("preference-applied").is_none());
    assert_eq!(body["value"].as_array().unwrap().len(), 230);
    let (_, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname&$top=7"),
            Some("odata.maxpagesize=5"),
        )
        .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 7);
    assert!(body.get("@odata.nextLink").is_none());
    // $orderby, case-insensitively, across pages.
    let mut names = Vec::new();
    let mut url = format!("{api}/accounts?$select=name&$orderby=name desc");
    loop {
        let (_, _, body) = env.get(&token, &url, Some("odata.maxpagesize=20")).await;
        names.extend(
            body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_lowercase()),
        );
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_owned(),
            None => break,
        }
    }
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 57);
}

#[tokio::test]
async fn filters_dates_functions_and_navigation_paths() {
    let env = start(120).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    let all = |body: &Value| body["value"].as_array().unwrap().clone();
    let (_, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname,modifiedon,createdon"),
            None,
        )
        .await;
    let contacts = all(&body);
    let now: jiff::Timestamp = START.parse().unwrap();
    let cutoff = now.checked_sub(SignedDuration::from_hours(24 * 10)).unwrap();
    let expected = contacts
        .iter()
        .filter(|r| {
            r["modifiedon"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                >= cutoff
        })
        .count();
    // Dates unquoted.
    let filter = format!("modifiedon ge {}", cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"));
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname&$filter={filter}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(all(&body).len(), expected);
    assert!(expected > 0 && expected < contacts.len());
    // LastXDays agrees with a date comparison from midnight.
    let (status, _, body) = env
        .get(&token, &format!("{api}/contacts?$select=fullname&$filter=Microsoft.Dynamics.CRM.LastXDays(PropertyName='modifiedon',PropertyValue=10)"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(all(&body).len(), expected);
    let (status, _, body) = env
        .get(&token, &format!("{api}/contacts?$select=fullname&$filter=Microsoft.Dynamics.CRM.OnOrAfter(PropertyName='createdon',PropertyValue='2099-01-01')"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(all(&body).is_empty());
    // ContainValues on a multi-select column.
    let (_, _, body) = env
        .get(&token, &format!("{api}/contacts?$select=cr7a1_hobbies"), None)
        .await;
    let with_nine = all(&body)
        .iter()
        .filter(|r| {
            r["cr7a1_hobbies"]
                .as_str()
                .is_some_and(|h| h.split(',').any(|v| v == "1" || v == "9"))
        })
        .count();
    let (status, _, body) = env
        .get(&token, &format!("{api}/contacts?$select=cr7a1_hobbies&$filter=Microsoft.Dynamics.CRM.ContainValues(PropertyName='cr7a1_hobbies',PropertyValues=['1','9'])"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(all(&body).len(), with_nine);
    assert!(with_nine > 0);
    // A lookup by id, and a navigation path.
    let (_, _, body) = env
        .get(&token, &format!("{api}/accounts?$select=name&$top=1"), None)
        .await;
    let account = all(&body)[0].clone();
    let (id, name) = (
        account["accountid"].as_str().unwrap(),
        account["name"].as_str().unwrap(),
    );
    let (status, _, by_id) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname&$filter=_parentcustomerid_value eq {id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    let quoted = name.replace('\'', "''");
    let filter = url::form_urlencoded::byte_serialize(
        format!("parentcustomerid_account/name eq '{quoted}'").as_bytes(),
    )
    .collect::<String>();
    let (status, _, by_name) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=fullname&$filter={filter}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_name}");
    assert_eq!(all(&by_id).len(), all(&by_name).len());
    assert!(!all(&by_id).is_empty());
    // A syntax error is Dataverse's 400.
    let (status, _, body) = env
        .get(&token, &format!("{api}/contacts?$filter=fullname eq"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "0x80060888");
}

#[tokio::test]
async fn expands_single_collection_and_nested() {
    let env = start(80).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    // Grandchild: contract → contact → account, and the owner.
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/cr7a1_contracts?$select=cr7a1_name&$expand=cr7a1_contactid($select=fullname;$expand=parentcustomerid_account($select=name;$expand=createdby($select=fullname))),ownerid($select=fullname)"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("cr7a1_contactid(fullname,parentcustomerid_account(")
    );
    let rows = body["value"].as_array().unwrap();
    let row = rows.iter().find(|r| r["cr7a1_contactid"].is_object()).unwrap();
    assert!(row["cr7a1_contactid"]["fullname"].is_string());
    assert!(row["cr7a1_contactid"]["parentcustomerid_account"]["name"].is_string());
    assert!(row["cr7a1_contactid"]["parentcustomerid_account"]["createdby"]["fullname"].is_string());
    assert!(row["ownerid"]["fullname"].is_string());
    // Collection-valued: an account's contacts, filtered and ordered.
    let (status, _, body) = env
        .get(&token, &format!("{api}/accounts?$select=name&$expand=contact_customer_accounts($select=fullname;$orderby=fullname;$top=3)"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let accounts = body["value"].as_array().unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| a["contact_customer_accounts"].as_array().unwrap().len() <= 3)
    );
    assert!(
        accounts
            .iter()
            .any(|a| !a["contact_customer_accounts"].as_array().unwrap().is_empty())
    );
    // The related collection as its own path.
    let account = accounts
        .iter()
        .find(|a| !a["contact_customer_accounts"].as_array().unwrap().is_empty())
        .unwrap();
    let (status, _, related) = env
        .get(
            &token,
            &format!(
                "{api}/accounts({})/contact_customer_accounts?$select=fullname",
                account["accountid"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{related}");
    assert!(!related["value"].as_array().unwrap().is_empty());
    // $top inside a collection expand with nested expands is refused.
    let (status, _, body) = env
        .get(
            &token,
            &format!(
                "{api}/accounts?$expand=contact_customer_accounts($top=2;$expand=createdby($select=fullname))"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "0x80060888");
    // At most 15 expands.
    let many = vec!["createdby($select=fullname)"; 16].join(",");
    let (status, _, _) = env
        .get(&token, &format!("{api}/accounts?$expand={many}"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn change_tracking_with_writes_deletes_and_expiry() {
    let env = start(30).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    let prefer = "odata.track-changes,odata.maxpagesize=10";
    let mut url = format!("{api}/contacts?$select=fullname,emailaddress1");
    let mut rows = 0;
    let delta = loop {
        let (status, headers, body) = env.get(&token, &url, Some(prefer)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            headers["preference-applied"]
                .to_str()
                .unwrap()
                .contains("odata.track-changes")
        );
        rows += body["value"].as_array().unwrap().len();
        match (
            body["@odata.nextLink"].as_str(),
            body["@odata.deltaLink"].as_str(),
        ) {
            (Some(next), None) => url = next.to_owned(),
            (None, Some(delta)) => break delta.to_owned(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(rows, 30);
    assert!(delta.contains("$select=fullname,emailaddress1"));
    let delta_token = delta.split("$deltatoken=").nth(1).unwrap();
    assert!(
        delta_token.contains("%21") && delta_token.contains("%2f") && delta_token.contains("%3a"),
        "{delta_token}"
    );
    // Writes through the Web API: create, update (with and without a matching ETag), delete.
    let (status, headers, _) = env
        .send(
            &token,
            reqwest::Method::POST,
            &format!("{api}/contacts"),
            Some(
                json!({"firstname": "Zed", "lastname": "New", "fullname": "Zed New", "cr7a1_hobbies": "1,9"}),
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let created = headers["odata-entityid"].to_str().unwrap().to_owned();
    let created_id = created
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let (_, _, first) = env
        .get(&token, &format!("{api}/contacts?$select=fullname&$top=3"), None)
        .await;
    // Two rows other than the one just created (ids are random, so it may sort among the first).
    let others: Vec<&Value> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["contactid"] != json!(created_id))
        .collect();
    let updated = others[0]["contactid"].as_str().unwrap().to_owned();
    let etag = others[0]["@odata.etag"].as_str().unwrap().to_owned();
    let deleted = others[1]["contactid"].as_str().unwrap().to_owned();
    let (status, _, body) = env
        .send(
            &token,
            reqwest::Method::PATCH,
            &format!("{api}/contacts({updated})"),
            Some(json!({"emailaddress1": "changed@mail.example"})),
            Some("W/\"1\""),
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    let (status, _, _) = env
        .send(
            &token,
            reqwest::Method::PATCH,
            &format!("{api}/contacts({updated})"),
            Some(json!({"emailaddress1": "changed@mail.example"})),
            Some(&etag),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = env
        .send(
            &token,
            reqwest::Method::PATCH,
            &format!("{api}/contacts({updated})"),
            Some(json!({"gendercode": 7})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an option outside the set");
    assert_eq!(error_code(&body), "0x80040203");
    let (status, _, _) = env
        .send(
            &token,
            reqwest::Method::DELETE,
            &format!("{api}/contacts({deleted})"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The delta round.
    let (status, _, body) = env.get(&token, &delta, Some("odata.track-changes")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#contacts(fullname,emailaddress1)/$delta")
    );
    let changes = body["value"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.iter().any(|c| c["contactid"] == json!(created_id)));
    assert!(
        changes
            .iter()
            .any(|c| c["contactid"] == json!(updated) && c["emailaddress1"] == "changed@mail.example")
    );
    let gone = changes.iter().find(|c| c["reason"] == "deleted").unwrap();
    assert_eq!(gone["id"], json!(deleted));
    assert!(
        gone["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#contacts/$deletedEntity")
    );
    let next_delta = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    let (_, _, body) = env.get(&token, &next_delta, None).await;
    assert!(body["value"].as_array().unwrap().is_empty());
    // Filters are refused with change tracking; tables without it refuse it.
    let (status, _, _) = env
        .get(
            &token,
            &format!("{api}/contacts?$filter=statecode eq 0"),
            Some("odata.track-changes"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = env
        .get(
            &token,
            &format!("{api}/cr7a1_contracts?$select=cr7a1_name"),
            Some("odata.track-changes"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Tokens expire after ExpireChangeTrackingInDays (7).
    env.clock.advance(SignedDuration::from_hours(24 * 8));
    let token = env.app_token("multi_tenant_secret", 0).await;
    let (status, _, body) = env.get(&token, &next_delta, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "0x80044352");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Version stamp associated with the client has expired")
    );
    let _ = env.clock.now();
}

#[tokio::test]
async fn metadata_entities_attributes_and_option_sets() {
    let env = start(20).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled eq true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["LogicalName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"account") && names.contains(&"contact") && !names.contains(&"cr7a1_contract"));
    let (_, _, e) = env
        .get(&token, &format!("{api}/EntityDefinitions(LogicalName='cr7a1_contract')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ChangeTrackingEnabled,CanChangeTrackingBeEnabled"), None)
        .await;
    assert_eq!(e["EntitySetName"], "cr7a1_contracts");
    assert_eq!(e["PrimaryIdAttribute"], "cr7a1_contractid");
    assert_eq!(e["ChangeTrackingEnabled"], false);
    assert_eq!(e["CanChangeTrackingBeEnabled"]["Value"], true);
    let (_, _, attrs) = env
        .get(
            &token,
            &format!(
                "{api}/EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName,AttributeType"
            ),
            None,
        )
        .await;
    let attrs = attrs["value"].as_array().unwrap();
    let find = |n: &str| attrs.iter().find(|a| a["LogicalName"] == n).unwrap().clone();
    assert_eq!(find("parentcustomerid")["AttributeType"], "Customer");
    assert_eq!(find("gendercode")["AttributeType"], "Picklist");
    let (status, _, lookups) = env
        .get(&token, &format!("{api}/EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName&$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Customer'"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{lookups}");
    assert_eq!(lookups["value"].as_array().unwrap().len(), 1);
    assert_eq!(lookups["value"][0]["LogicalName"], "parentcustomerid");
    let (status, _, picklists) = env
        .get(&token, &format!("{api}/EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet($select=Options),GlobalOptionSet($select=Options)"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{picklists}");
    let hobbies = &picklists["value"][0];
    assert_eq!(hobbies["LogicalName"], "cr7a1_hobbies");
    let options = hobbies["OptionSet"]["Options"].as_array().unwrap();
    let nine = options.iter().find(|o| o["Value"] == 9).unwrap();
    assert_eq!(nine["Label"]["UserLocalizedLabel"]["Label"], "Swimming");
    let (_, _, tier) = env
        .get(&token, &format!("{api}/EntityDefinitions(LogicalName='cr7a1_contract')/Attributes(LogicalName='cr7a1_tier')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=GlobalOptionSet($select=Name,Options)"), None)
        .await;
    assert_eq!(tier["GlobalOptionSet"]["Name"], "cr7a1_tier");
    // $metadata is CSDL.
    let resp = env
        .http
        .get(format!("{api}/$metadata"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let xml = resp.text().await.unwrap();
    assert!(xml.contains(
        "<EntitySet Name=\"cr7a1_contracts\" EntityType=\"Microsoft.Dynamics.CRM.cr7a1_contract\"/>"
    ));
    assert!(xml.contains("NavigationProperty Name=\"parentcustomerid_account\""));
}

#[tokio::test]
async fn service_protection_limits() {
    let env = start(10).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    env.emu.set_dataverse_limits(ServiceLimits {
        requests_per_window: 5,
        ..ServiceLimits::default()
    });
    env.emu.set_faults(Faults {
        throttling: true,
        ..Faults::default()
    });
    for _ in 0..5 {
        let (status, _, _) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(&body), "0x80072322");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=301).contains(&retry));
    env.clock
        .advance(SignedDuration::from_secs(i64::try_from(retry).unwrap()));
    let (status, _, _) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
    assert_eq!(status, StatusCode::OK);
    // Concurrency: two requests in flight at most.
    env.emu.set_dataverse_limits(ServiceLimits {
        concurrent_requests: 2,
        execution_ms: 300,
        ..ServiceLimits::default()
    });
    let who = format!("{api}/WhoAmI");
    let calls = (0..6).map(|_| env.get(&token, &who, None));
    let results = futures::future::join_all(calls).await;
    let refused: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|(_, _, b)| error_code(b) == "0x80072326"));
    // Execution time: 1 s per window.
    env.emu.set_dataverse_limits(ServiceLimits {
        execution_ms_per_window: 500,
        execution_ms: 300,
        ..ServiceLimits::default()
    });
    env.clock.advance(SignedDuration::from_secs(301));
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (_, _, b) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
        codes.push(error_code(&b).to_owned());
    }
    assert_eq!(codes, ["", "", "0x80072321"]);
    // Injected 503s carry Retry-After too.
    env.emu.set_faults(Faults {
        random_503_percent: 100.0,
        retry_after_secs: 2,
        ..Faults::default()
    });
    let (status, headers, _) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "2");
    // Injected 429s use the same body and Retry-After.
    env.emu.set_faults(Faults {
        random_429_percent: 100.0,
        retry_after_secs: 3,
        ..Faults::default()
    });
    let (status, headers, body) = env.get(&token, &format!("{api}/WhoAmI"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(error_code(&body), "0x80072322");
}

#[tokio::test]
async fn datasets_carry_the_orgs_and_old_datasets_still_load() {
    let world = World::generate(&GenerateOptions {
        seed: 3,
        tenants: 1,
        users_per_tenant: Some(5),
        dataverse_contacts: Some(12),
        ..GenerateOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    world.save_json(&path).unwrap();
    let loaded = World::load_json(&path).unwrap();
    assert_eq!(loaded.dataverse_orgs.len(), 1);
    assert_eq!(loaded.dataverse_orgs[0].table("contact").unwrap().rows.len(), 12);
    assert_eq!(loaded.dataverse_orgs[0].version, world.dataverse_orgs[0].version);
    // A dataset written before Dataverse existed.
    let mut old: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("dataverseOrgs");
    let loaded = World::from_json_str(&old.to_string()).unwrap();
    assert!(loaded.dataverse_orgs.is_empty());
}

#[tokio::test]
async fn batch_representation_and_error_details() {
    let env = start(20).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let api = env.api(0);
    let body = format!(
        "--batch_AAA\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
         GET {api}/accounts?$select=name&$top=2 HTTP/1.1\r\nAccept: application/json\r\n\r\n\
         --batch_AAA\r\nContent-Type: multipart/mixed; boundary=changeset_BBB\r\n\r\n\
         --changeset_BBB\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
         POST /api/data/v9.2/accounts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{\"name\": \"Batch Ltd\"}}\r\n\
         --changeset_BBB--\r\n\
         --batch_AAA\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
         GET WhoAmI HTTP/1.1\r\n\r\n\
         --batch_AAA--\r\n"
    );
    let resp = env
        .http
        .post(format!("{api}/$batch"))
        .bearer_auth(&token)
        .header("Content-Type", "multipart/mixed; boundary=batch_AAA")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("multipart/mixed; boundary=batchresponse_"));
    let text = resp.text().await.unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 1, "{text}");
    assert!(text.contains("changesetresponse_") && text.contains("Content-ID: 1"));
    assert!(text.contains("\"BusinessUnitId\""));
    let created = env.emu.with_world(|w| {
        w.dataverse_orgs[0]
            .table("account")
            .unwrap()
            .rows
            .iter()
            .any(|r| r.values["name"] == "Batch Ltd")
    });
    assert!(created);

    // return=representation.
    let resp = env
        .http
        .post(format!("{api}/contacts"))
        .bearer_auth(&token)
        .header("Prefer", "return=representation")
        .json(&json!({"fullname": "Rep Resented", "gendercode": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let row: Value = resp.json().await.unwrap();
    assert_eq!(row["fullname"], "Rep Resented");
    assert!(row["contactid"].is_string() && row["@odata.etag"].is_string());

    // Error details with all annotations.
    let (status, _, body) = env
        .get(
            &token,
            &format!("{api}/contacts?$select=nope"),
            Some("odata.include-annotations=\"*\""),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["@Microsoft.PowerApps.CDS.HelpLink"].is_string());
    assert!(body["error"]["@Microsoft.PowerApps.CDS.InnerError.Message"].is_string());
}

#[tokio::test]
async fn more_than_two_pages_of_five_thousand() {
    let env = start(10_500).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    let mut url = format!(
        "{}/contacts?$select=fullname,_parentcustomerid_value,cr7a1_hobbies",
        env.api(0)
    );
    let mut sizes = Vec::new();
    let mut ids = std::collections::HashSet::new();
    loop {
        let (status, headers, body) = env
            .get(&token, &url, Some("odata.include-annotations=\"*\""))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers
                .get("preference-applied")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("include-annotations")
        );
        let rows = body["value"].as_array().unwrap();
        sizes.push(rows.len());
        ids.extend(rows.iter().map(|r| r["contactid"].as_str().unwrap().to_owned()));
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(sizes, [5_000, 5_000, 500]);
    assert_eq!(ids.len(), 10_500);
}

#[tokio::test]
async fn a_broken_contacts_page_is_unreadable_every_time_and_other_pages_and_tables_are_not() {
    let env = start(40).await;
    let token = env.app_token("multi_tenant_secret", 0).await;
    env.emu.update_faults(|f| f.malformed_users_page = Some(2));
    let prefer = Some("odata.maxpagesize=10");
    let (status, _, first) = env
        .get(
            &token,
            &format!("{}/contacts?$select=fullname", env.api(0)),
            prefer,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["value"].as_array().unwrap().len(), 10);
    let next = first["@odata.nextLink"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, _, body) = env.get(&token, &next, prefer).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, Value::Null, "page 2 is cut off in the middle of its JSON");
    }
    // Accounts are not the people a reader lists.
    let (_, _, accounts) = env
        .get(
            &token,
            &format!("{}/accounts?$select=name", env.api(0)),
            Some("odata.maxpagesize=2"),
        )
        .await;
    let next = accounts["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, _, second) = env.get(&token, &next, Some("odata.maxpagesize=2")).await;
    assert!(second["value"].is_array(), "{second}");
    // Healed, the same link reads.
    env.emu.update_faults(|f| f.malformed_users_page = None);
    let next = first["@odata.nextLink"].as_str().unwrap();
    let (_, _, healed) = env.get(&token, next, prefer).await;
    assert_eq!(healed["value"].as_array().unwrap().len(), 10);
}
