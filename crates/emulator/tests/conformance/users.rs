use jiff::SignedDuration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const DEFAULT_USER_PROPS: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

#[tokio::test]
async fn list_returns_default_properties_and_graph_headers() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, headers, body) = env
        .get_with(&token, "/users", &[("client-request-id", "my-id-1")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json;odata.metadata=minimal")
    );
    assert_eq!(headers["client-request-id"], "my-id-1");
    assert!(headers.contains_key("request-id") && headers.contains_key("x-ms-ags-diagnostic"));
    assert_eq!(headers["odata-version"], "4.0");
    assert_eq!(
        body["@odata.context"],
        format!("{}/v1.0/$metadata#users", env.emu.base_url())
    );
    let first = body["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, DEFAULT_USER_PROPS);
    assert_eq!(
        body["value"].as_array().unwrap().len(),
        60,
        "all 60 users fit the default page of 100"
    );
    env.stop().await;
}

#[tokio::test]
async fn select_top_and_next_links_page_through_every_user() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, _, body) = env
        .get(&token, "/users?$select=id,accountEnabled,userType&$top=7")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/v1.0/$metadata#users(id,accountEnabled,userType)",
            env.emu.base_url()
        )
    );
    let next = body["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(env.emu.base_url()) && next.contains("$skiptoken=") && next.contains("$top=7"));
    let (items, last) = env
        .collect(&token, "/users?$select=id,accountEnabled,userType&$top=7")
        .await;
    assert!(last.get("@odata.nextLink").is_none());
    assert_eq!(items.len(), env.summary.tenants[0].users);
    let mut ids: Vec<&str> = items.iter().map(|u| u["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), items.len(), "no user twice");
    assert!(items.iter().all(|u| u.as_object().unwrap().len() == 3));
    // Hostile paging tokens are errors or empty pages, never crashes.
    use base64::Engine;
    let huge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"p\":{}}}", usize::MAX));
    for path in ["/users", "/groups/x/members", "/deviceManagement/managedDevices"] {
        let (status, _, _) = env.get(&token, &format!("{path}?$skiptoken={huge}")).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{path}: {status}"
        );
    }
    let (status, _, body) = env.get(&token, "/users?$skiptoken=%%%").await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::BAD_REQUEST, "Request_BadRequest")
    );
    for (query, code) in [
        ("/users?$select=nonsense", "Request_BadRequest"),
        ("/users?$top=1000", "Request_BadRequest"),
        ("/users?$top=0", "Request_BadRequest"),
        ("/users?$skip=5", "Request_BadRequest"),
        ("/users?$filter=userType eq", "Request_BadRequest"),
        ("/users?$filter=shoeSize eq 3", "Request_BadRequest"),
    ] {
        let (status, _, body) = env.get(&token, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(graph_error(&body).0, code, "{query}");
    }
    env.stop().await;
}

#[tokio::test]
async fn filters_including_license_lambdas_and_advanced_query_rules() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (guests, _) = env
        .collect(
            &token,
            "/users?$filter=userType eq 'Guest'&$select=userType,userPrincipalName",
        )
        .await;
    let expected_guests = env.emu.with_world(|w| {
        w.tenants[0]
            .users
            .iter()
            .filter(|u| u.user_type == "Guest")
            .count()
    });
    assert_eq!(guests.len(), expected_guests);
    assert!(
        guests
            .iter()
            .all(|g| g["userPrincipalName"].as_str().unwrap().contains("#EXT#"))
    );
    let sku = env.emu.with_world(|w| w.tenants[0].skus[0].sku_id.clone());
    let (licensed, _) = env
        .collect(
            &token,
            &format!("/users?$filter=assignedLicenses/any(x:x/skuId eq {sku})&$select=assignedLicenses"),
        )
        .await;
    assert!(!licensed.is_empty());
    assert!(licensed.iter().all(|u| {
        u["assignedLicenses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["skuId"] == sku.as_str())
    }));

    // `ne` is an advanced query: it needs ConsistencyLevel: eventual and $count=true.
    let (status, _, body) = env.get(&token, "/users?$filter=userType ne 'Guest'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(&body).0, "Request_UnsupportedQuery");
    let (status, _, body) = env
        .get_with(
            &token,
            "/users?$filter=userType ne 'Guest'&$count=true",
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["@odata.count"].as_u64().unwrap() as usize,
        env.summary.tenants[0].users - expected_guests
    );
    // $count and $search need the header too.
    let (status, _, body) = env.get(&token, "/users?$count=true").await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::BAD_REQUEST, "Request_UnsupportedQuery")
    );
    let (status, _, body) = env.get(&token, "/users?$search=\"displayName:a\"").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(graph_error(&body).1.contains("ConsistencyLevel"));
    let (status, _, body) = env
        .get_with(
            &token,
            "/users?$search=\"displayName:zo\"&$select=displayName",
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["value"].as_array().unwrap().iter().all(|u| u["displayName"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("zo"))
    );
    // /users/$count is plain text.
    let resp = env
        .http
        .get(env.graph("/users/$count"))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .header("Accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        env.summary.tenants[0].users.to_string()
    );
    let (status, _, _) = env
        .get_with(
            &token,
            "/users/$count",
            &[("ConsistencyLevel", "eventual"), ("Accept", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // $orderby
    let (status, _, body) = env
        .get(&token, "/users?$orderby=displayName&$select=displayName&$top=10")
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    env.stop().await;
}

#[tokio::test]
async fn single_user_manager_and_expand() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (root, managed, manager) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let managed = t.users.iter().find(|u| u.manager_id.is_some()).unwrap();
        (
            t.users[0].id.clone(),
            managed.id.clone(),
            managed.manager_id.clone().unwrap(),
        )
    });
    let (status, _, body) = env
        .get(&token, &format!("/users/{managed}?$select=id,department"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#users(id,department)/$entity")
    );
    let upn = env
        .emu
        .with_world(|w| w.tenants[0].users[0].user_principal_name.clone());
    let (status, _, by_upn) = env.get(&token, &format!("/users/{upn}")).await;
    assert_eq!(
        (status, by_upn["id"].as_str().unwrap()),
        (StatusCode::OK, root.as_str())
    );
    let (status, _, body) = env.get(&token, &format!("/users/{managed}/manager")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["@odata.type"], "#microsoft.graph.user");
    assert_eq!(body["id"], manager.as_str());
    // The root has no manager.
    let (status, _, body) = env.get(&token, &format!("/users/{root}/manager")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (code, message) = graph_error(&body);
    assert_eq!(code, "Request_ResourceNotFound");
    assert_eq!(
        message,
        "Resource 'manager' does not exist or one of its queried reference-property objects are not present."
    );
    let (status, _, body) = env
        .get(&token, "/users/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound")
    );
    let (status, _, body) = env
        .get(
            &token,
            "/users?$expand=manager($select=id,displayName)&$select=id",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let with_manager = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == managed.as_str())
        .unwrap();
    assert_eq!(with_manager["manager"]["id"], manager.as_str());
    assert_eq!(
        with_manager["manager"].as_object().unwrap().len(),
        3,
        "@odata.type, id, displayName"
    );
    env.stop().await;
}

#[tokio::test]
async fn sign_in_activity_needs_audit_log_and_a_premium_tenant() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, _, body) = env.get(&token, "/users?$select=id,signInActivity&$top=999").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["value"].as_array().unwrap().len() <= 500);
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["signInActivity"]["lastSignInDateTime"].is_string())
    );
    // Tenant 1 is not premium.
    let other = env.main_token(1).await;
    let (status, _, body) = env.get(&other, "/users?$select=id,signInActivity").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (code, message) = graph_error(&body);
    assert_eq!(code, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");
    assert_eq!(
        message,
        "Neither tenant is B2C or tenant doesn't have premium license"
    );
    // An app without AuditLog.Read.All.
    let single = env.token("single_tenant", &env.tenant(0)).await;
    let (status, _, body) = env.get(&single, "/users?$select=id,signInActivity").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        graph_error(&body),
        (
            "Authorization_RequestDenied".into(),
            "Insufficient privileges to complete the operation.".into()
        )
    );
    env.stop().await;
}

#[tokio::test]
async fn member_of_license_details_and_assign_license() {
    let env = start().await;
    let token = env.main_token(0).await;
    // The root user is in "All Staff" directly and in "All Departments" directly.
    let (root, dept_member) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let sales = t
            .groups
            .iter()
            .find(|g| g.display_name == "Engineering Team")
            .unwrap();
        (t.users[0].id.clone(), sales.members.first().map(|m| m.id.clone()))
    });
    let (status, _, body) = env.get(&token, &format!("/users/{root}/memberOf")).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["@odata.type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"#microsoft.graph.group"));
    if let Some(member) = dept_member {
        let (_, _, direct) = env
            .get(
                &token,
                &format!("/users/{member}/memberOf/microsoft.graph.group?$select=displayName"),
            )
            .await;
        let (_, _, transitive) = env
            .get(
                &token,
                &format!("/users/{member}/transitiveMemberOf?$select=displayName"),
            )
            .await;
        let names = |b: &Value| -> Vec<String> {
            b["value"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|g| g["displayName"].as_str().map(str::to_owned))
                .collect()
        };
        assert!(names(&direct).contains(&"Engineering Team".to_owned()));
        assert!(!names(&direct).contains(&"All Departments".to_owned()));
        assert!(
            names(&transitive).contains(&"All Departments".to_owned()),
            "nested parent appears transitively"
        );
    }
    let (licensed, unlocated, sku) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let licensed = t
            .users
            .iter()
            .find(|u| !u.assigned_licenses.is_empty())
            .unwrap()
            .id
            .clone();
        let unlocated = t
            .users
            .iter()
            .find(|u| u.usage_location.is_none())
            .map(|u| u.id.clone());
        (licensed, unlocated, t.skus[1].sku_id.clone())
    });
    let (status, _, body) = env
        .get(&token, &format!("/users/{licensed}/licenseDetails"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let detail = &body["value"][0];
    assert!(
        detail["skuPartNumber"].is_string() && detail["servicePlans"][0]["provisioningStatus"].is_string()
    );

    let consumed = |body: &Value| -> u64 {
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["skuId"] == sku.as_str())
            .unwrap()["consumedUnits"]
            .as_u64()
            .unwrap()
    };
    let before = consumed(&env.get(&token, "/subscribedSkus").await.2);
    let target = env.emu.with_world(|w| {
        w.tenants[0]
            .users
            .iter()
            .find(|u| u.usage_location.is_some() && u.assigned_licenses.iter().all(|l| l.sku_id != sku))
            .unwrap()
            .id
            .clone()
    });
    let add = json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []});
    let (status, _, body) = env
        .post(&token, &format!("/users/{target}/assignLicense"), &add)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], target.as_str());
    assert_eq!(consumed(&env.get(&token, "/subscribedSkus").await.2), before + 1);
    let (status, _, body) = env
        .post(
            &token,
            &format!("/users/{target}/assignLicense"),
            &json!({"addLicenses": []}),
        )
        .await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::BAD_REQUEST, "Request_BadRequest")
    );
    if let Some(unlocated) = unlocated {
        let (status, _, body) = env
            .post(&token, &format!("/users/{unlocated}/assignLicense"), &add)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            graph_error(&body).1,
            "License assignment cannot be done for user with invalid usage location."
        );
    }
    // No free unit left: Graph's 400, naming the SKU; the user keeps what they had.
    let (full, other) = env.emu.with_world_mut(|w| {
        let t = &mut w.tenants[0];
        let used = t.consumed_units(&sku);
        let other = t
            .users
            .iter()
            .find(|u| u.usage_location.is_some() && u.assigned_licenses.iter().all(|l| l.sku_id != sku))
            .unwrap()
            .id
            .clone();
        let s = t.skus.iter_mut().find(|s| s.sku_id == sku).unwrap();
        s.prepaid_enabled = i32::try_from(used).unwrap();
        (used, other)
    });
    let (status, _, body) = env
        .post(&token, &format!("/users/{other}/assignLicense"), &add)
        .await;
    assert_eq!(
        (status, graph_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            (
                "Request_BadRequest".to_owned(),
                format!("Subscription with SKU {sku} does not have any available licenses.")
            )
        )
    );
    assert_eq!(
        consumed(&env.get(&token, "/subscribedSkus").await.2),
        u64::try_from(full).unwrap()
    );
    // Without a write permission.
    let single = env.token("single_tenant", &env.tenant(0)).await;
    let (status, _, _) = env
        .post(&single, &format!("/users/{target}/assignLicense"), &add)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    env.stop().await;
}

#[tokio::test]
async fn bad_tokens_get_401_and_missing_permissions_403() {
    let env = start().await;
    let (status, headers, body) = env.get("", "/users").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(graph_error(&body).0, "InvalidAuthenticationToken");
    let (status, _, body) = env.get("garbage.token.here", "/users").await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
    );
    // A Partner Center token is not for Graph.
    let app = env.app("multi_tenant_secret").clone();
    let (_, _, pc) = env
        .post_form(
            &env.token_url(&env.tenant(0)),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.as_deref().unwrap()),
                ("scope", "https://api.partnercenter.microsoft.com/.default"),
            ],
        )
        .await;
    let (status, _, body) = env.get(pc["access_token"].as_str().unwrap(), "/users").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(graph_error(&body).1.contains("Invalid audience"));
    // A token signed by someone else (tampered payload).
    let token = env.main_token(0).await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let (status, _, _) = env.get(&parts.join("."), "/users").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Expired.
    env.advance(SignedDuration::from_hours(2));
    let (status, _, body) = env.get(&token, "/users").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        graph_error(&body).1,
        "Access token has expired or is not yet valid."
    );
    // Missing permission: the single-tenant reader has no Intune, organization or GDAP rights.
    let single = env.token("single_tenant", &env.tenant(0)).await;
    for path in [
        "/deviceManagement/managedDevices",
        "/organization",
        "/subscribedSkus",
        "/tenantRelationships/delegatedAdminRelationships",
    ] {
        let (status, _, body) = env.get(&single, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(graph_error(&body).0, "Authorization_RequestDenied");
    }
    env.stop().await;
}
