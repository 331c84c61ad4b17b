//! Intune managed devices: the admin API for devices, `/users/{id}/managedDevices`, the generated
//! Defender-managed devices and Intune's own request limit.
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Two live users of tenant 0 with their id, UPN and mail.
fn two_users(env: &Env) -> [(String, String, String); 2] {
    env.emu.with_world(|w| {
        let mut users = w.tenants[0]
            .users
            .iter()
            .filter(|u| u.deleted_date_time.is_none() && u.mail.is_some())
            .map(|u| {
                (
                    u.id.clone(),
                    u.user_principal_name.clone(),
                    u.mail.clone().unwrap_or_default(),
                )
            });
        [users.next().unwrap(), users.next().unwrap()]
    })
}

fn ids(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admin_api_creates_moves_and_deletes_a_device() {
    let env = start().await;
    let tenant = env.tenant(0);
    let token = env.main_token(0).await;
    let [(alice, alice_upn, alice_mail), (bob, bob_upn, bob_mail)] = two_users(&env);
    let (status, created) = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/devices"),
            Some(json!({
                "deviceName": "LAPTOP-0042",
                "userId": alice,
                "userPrincipalName": alice_upn,
                "emailAddress": alice_mail,
                "operatingSystem": "Windows",
                "managementAgent": "msSense",
                "azureADDeviceId": "0f1e2d3c-0000-4000-8000-000000000042",
                "serialNumber": "SN-ADMIN-42",
                "totalStorageSpaceInBytes": 512_000_000_000_i64,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a generated GUID: {id}");
    // Graph's spelling, and what was not given is filled in as Intune sends it.
    assert_eq!(created["azureADDeviceId"], "0f1e2d3c-0000-4000-8000-000000000042");
    assert!(created.get("azureAdDeviceId").is_none());
    assert_eq!(created["imei"], "");
    assert_eq!(created["phoneNumber"], "");
    assert_eq!(created["enrolledDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(created["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(created["azureADRegistered"], Value::Null);
    let (status, stored) = env
        .admin(Method::GET, &format!("/tenants/{tenant}/devices/{id}"), None)
        .await;
    assert_eq!((status, &stored), (StatusCode::OK, &created));

    // Graph serves it, tenant-wide and under its owner (by id and by UPN).
    let (status, _, body) = env
        .get(&token, &format!("/deviceManagement/managedDevices/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["serialNumber"], "SN-ADMIN-42");
    assert_eq!(body["managementAgent"], "msSense");
    assert_eq!(body["totalStorageSpaceInBytes"], 512_000_000_000_i64);
    let (_, _, body) = env.get(&token, &format!("/users/{alice}/managedDevices")).await;
    assert!(ids(&body).contains(&id), "{body}");
    let (_, _, by_upn) = env
        .get(&token, &format!("/users/{alice_upn}/managedDevices"))
        .await;
    assert_eq!(ids(&by_upn), ids(&body));
    let (status, _, one) = env
        .get(&token, &format!("/users/{alice}/managedDevices/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert!(one["@odata.context"].as_str().unwrap().ends_with(&format!(
        "/v1.0/$metadata#users('{alice}')/managedDevices/$entity"
    )));

    // PATCH merges: moving the device to Bob keeps everything else.
    let (status, moved) = env
        .admin(
            Method::PATCH,
            &format!("/tenants/{tenant}/devices/{id}"),
            Some(
                json!({"userId": bob, "userPrincipalName": bob_upn, "emailAddress": bob_mail,
                        "id": "ignored"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["id"], id.as_str());
    assert_eq!(moved["serialNumber"], "SN-ADMIN-42");
    assert_eq!(moved["userPrincipalName"], bob_upn.as_str());
    let (_, _, body) = env.get(&token, &format!("/users/{alice}/managedDevices")).await;
    assert!(!ids(&body).contains(&id));
    let (_, _, body) = env.get(&token, &format!("/users/{bob}/managedDevices")).await;
    assert!(ids(&body).contains(&id));
    let (status, _, _) = env
        .get(&token, &format!("/users/{alice}/managedDevices/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not Alice's any more");

    // DELETE removes it everywhere; the id index stays consistent for the devices after it.
    let last = env
        .emu
        .with_world(|w| w.tenants[0].devices.last().unwrap().id.clone());
    let first = env.emu.with_world(|w| w.tenants[0].devices[0].id.clone());
    let (status, _) = env
        .admin(
            Method::DELETE,
            &format!("/tenants/{tenant}/devices/{first}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for gone in [&first] {
        let (status, _, body) = env
            .get(&token, &format!("/deviceManagement/managedDevices/{gone}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(graph_error(&body).0, "Request_ResourceNotFound");
    }
    for present in [&last, &id] {
        let (status, _, body) = env
            .get(&token, &format!("/deviceManagement/managedDevices/{present}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], present.as_str());
    }
    let (status, _) = env
        .admin(Method::DELETE, &format!("/tenants/{tenant}/devices/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env
        .admin(Method::GET, &format!("/tenants/{tenant}/devices/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, body) = env.get(&token, &format!("/users/{bob}/managedDevices")).await;
    assert!(!ids(&body).contains(&id));
    env.stop().await;
}

#[tokio::test]
async fn admin_api_refuses_bad_devices() {
    let env = start().await;
    let tenant = env.tenant(0);
    let user = env.emu.with_world(|w| w.tenants[0].users[0].id.clone());
    let device = env.emu.with_world(|w| w.tenants[0].devices[0].id.clone());
    let devices = format!("/tenants/{tenant}/devices");
    let cases = [
        (
            Method::POST,
            devices.clone(),
            Some(json!([1])),
            StatusCode::BAD_REQUEST,
        ),
        // camelCase's spelling instead of Graph's.
        (
            Method::POST,
            devices.clone(),
            Some(json!({"azureAdDeviceId": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            devices.clone(),
            Some(json!({"managementAgent": "mssense"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            devices.clone(),
            Some(json!({"lastSyncDateTime": "yesterday"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            devices.clone(),
            Some(json!({"totalStorageSpaceInBytes": "lots"})),
            StatusCode::BAD_REQUEST,
        ),
        // Object ids are unique within a tenant, users' and devices' alike.
        (
            Method::POST,
            devices.clone(),
            Some(json!({"id": user})),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            devices.clone(),
            Some(json!({"id": device})),
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/tenants/nope/devices".to_owned(),
            Some(json!({})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PATCH,
            format!("{devices}/nope"),
            Some(json!({"deviceName": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PATCH,
            format!("{devices}/{device}"),
            Some(json!({"complianceState": "fine"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("{devices}/nope"),
            None,
            StatusCode::NOT_FOUND,
        ),
        // A user's id is not a device's.
        (
            Method::GET,
            format!("{devices}/{user}"),
            None,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = env.admin(method.clone(), &path, body.clone()).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    // A given id is kept; an empty one is generated; Graph annotations are ignored.
    let (status, body) = env
        .admin(
            Method::POST,
            &devices,
            Some(json!({"id": "d0000000-0000-4000-8000-000000000001",
                        "@odata.type": "#microsoft.graph.managedDevice"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "d0000000-0000-4000-8000-000000000001");
    assert_eq!(body["userId"], "");
    let (status, body) = env.admin(Method::POST, &devices, Some(json!({"id": ""}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"].as_str().unwrap().len(), 36);
    // The failed calls changed nothing else: the device is still there and unchanged.
    let (status, body) = env.admin(Method::GET, &format!("{devices}/{device}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(body["complianceState"], "fine");
    env.stop().await;
}

#[tokio::test]
async fn users_managed_devices_follow_graph() {
    let env = start().await;
    let tenant = env.tenant(0);
    let token = env.main_token(0).await;
    let [(user, upn, _), (other, _, _)] = two_users(&env);
    // Give the user three devices of their own, so paging has something to page.
    for n in 0..3 {
        let (status, body) = env
            .admin(
                Method::POST,
                &format!("/tenants/{tenant}/devices"),
                Some(json!({"deviceName": format!("PAGE-{n}"), "userId": user, "userPrincipalName": upn})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let expected: Vec<String> = env.emu.with_world(|w| {
        w.tenants[0]
            .devices
            .iter()
            .filter(|d| d.user_id == user)
            .map(|d| d.id.clone())
            .collect()
    });
    assert!(expected.len() >= 3);
    let (status, _, body) = env.get(&token, &format!("/users/{user}/managedDevices")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), expected);
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}/v1.0/$metadata#users('{user}')/managedDevices",
            env.emu.base_url()
        )
    );
    assert!(body.get("@odata.nextLink").is_none());
    let device = &body["value"][0];
    assert!(device["azureADDeviceId"].is_string() && device["jailBroken"].is_string());
    assert_eq!(device["userId"], user.as_str());
    // $select and paging as on /deviceManagement/managedDevices.
    let (items, _) = env
        .collect(
            &token,
            &format!("/users/{user}/managedDevices?$select=id,deviceName&$top=1"),
        )
        .await;
    assert_eq!(items.len(), expected.len());
    assert!(
        items.iter().all(|d| d.as_object().unwrap().len() == 2),
        "{items:?}"
    );
    let (status, _, body) = env
        .get(&token, &format!("/users/{user}/managedDevices?$top=1001"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Another user's device is not this user's.
    let foreign = env.emu.with_world(|w| {
        w.tenants[0]
            .devices
            .iter()
            .find(|d| d.user_id != user)
            .map(|d| d.id.clone())
            .unwrap()
    });
    let (status, _, _) = env
        .get(&token, &format!("/users/{user}/managedDevices/{foreign}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A user without devices has an empty list, not an error.
    env.emu.with_world_mut(|w| {
        for d in &mut w.tenants[0].devices {
            if d.user_id == other {
                d.user_id = String::new();
            }
        }
    });
    let (status, _, body) = env.get(&token, &format!("/users/{other}/managedDevices")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"], json!([]));
    // Unknown (and soft-deleted) users are 404 like Graph's other user routes.
    let unknown = "00000000-0000-4000-8000-00000000dead";
    let (status, _, body) = env.get(&token, &format!("/users/{unknown}/managedDevices")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (code, message) = graph_error(&body);
    assert_eq!(code, "Request_ResourceNotFound");
    assert!(message.contains(unknown), "{message}");
    env.admin(Method::DELETE, &format!("/tenants/{tenant}/users/{user}"), None)
        .await;
    let (status, _, _) = env.get(&token, &format!("/users/{user}/managedDevices")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // `$count` is refused as on the tenant-wide list.
    let (status, _, body) = env
        .get(&token, &format!("/users/{other}/managedDevices/$count"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(&body).0, "BadRequest");
    // Reading users is not enough: the Intune permission is needed (checked before the user).
    let single = env.token("single_tenant", &env.tenant(0)).await;
    for path in [
        format!("/users/{other}/managedDevices"),
        format!("/users/{unknown}/managedDevices"),
    ] {
        let (status, _, body) = env.get(&single, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let (code, message) = graph_error(&body);
        assert_eq!(code, "Authorization_RequestDenied");
        assert_eq!(message, "Insufficient privileges to complete the operation.");
    }
    env.stop().await;
}

#[tokio::test]
async fn generated_tenants_hold_defender_managed_devices() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (items, _) = env
        .collect(
            &token,
            "/deviceManagement/managedDevices?$select=id,managementAgent,operatingSystem",
        )
        .await;
    let defender: Vec<&Value> = items
        .iter()
        .filter(|d| d["managementAgent"] == "msSense")
        .collect();
    assert!(!defender.is_empty(), "a small tenant has one too");
    assert!(defender.len() * 10 < items.len(), "a few, not many");
    assert!(defender.iter().all(|d| d["operatingSystem"] == "Windows"));
    assert!(
        items
            .iter()
            .any(|d| d["managementAgent"] == "intuneClient" && d["operatingSystem"] == "Windows")
    );
    // Larger tenants: one per 40 Windows devices, and one serial number on two records.
    let world = deskbridge_emulator::World::generate(&deskbridge_emulator::GenerateOptions {
        seed: 11,
        tenants: 1,
        users_per_tenant: Some(1_000),
        ..Default::default()
    })
    .unwrap();
    let devices = &world.tenants[0].devices;
    let windows = devices.iter().filter(|d| d.operating_system == "Windows").count();
    let sense = devices.iter().filter(|d| d.management_agent == "msSense").count();
    assert_eq!(sense, windows.div_ceil(40));
    let mut serials: Vec<&str> = devices
        .iter()
        .map(|d| d.serial_number.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let with_serial = serials.len();
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), with_serial - 1, "exactly one shared serial number");
    assert!(devices.iter().any(|d| d.serial_number.is_empty()));
    env.stop().await;
}

#[tokio::test]
async fn intune_limit_answers_429_on_top_of_graph_limits() {
    let env = start_with(|c| c.faults.throttling = true).await;
    let token = env.main_token(0).await;
    let user = env.emu.with_world(|w| {
        w.tenants[0]
            .devices
            .iter()
            .find(|d| !d.user_id.is_empty())
            .unwrap()
            .user_id
            .clone()
    });
    // 2,000 requests per 20 s per app and tenant, the user's devices and the tenant's alike.
    for n in 0..2_000 {
        let path = if n % 2 == 0 {
            format!("/users/{user}/managedDevices")
        } else {
            "/deviceManagement/managedDevices?$top=1".to_owned()
        };
        let (status, headers, body) = env.get(&token, &path).await;
        assert_eq!(status, StatusCode::OK, "request {n}: {body}");
        // Intune counts requests, not identity and access's resource units.
        assert!(!headers.contains_key("x-ms-resource-unit"));
        assert!(!headers.contains_key("x-ms-throttle-limit-percentage"));
    }
    let (status, headers, body) = env.get(&token, &format!("/users/{user}/managedDevices")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert!(!headers.contains_key("x-ms-throttle-scope"));
    let (code, message) = graph_error(&body);
    assert_eq!(code, "TooManyRequests");
    // Intune's message is its own error document, serialised.
    let inner: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(inner["_version"], 3);
    assert!(inner["Message"].as_str().unwrap().contains("Activity ID: "));
    assert_eq!(inner["RetryAfter"], Value::Null);
    assert!(body["error"]["innerError"]["client-request-id"].is_string());
    let (status, _, _) = env.get(&token, "/deviceManagement/managedDevices").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Graph's directory limits are separate buckets: users are still served.
    assert_eq!(env.get(&token, "/users").await.0, StatusCode::OK);
    // Another tenant of the same app has its own Intune bucket.
    let other = env.main_token(1).await;
    assert_eq!(
        env.get(&other, "/deviceManagement/managedDevices").await.0,
        StatusCode::OK
    );
    // As reported of the real service, the 429 can come without Retry-After.
    env.admin(
        Method::PUT,
        "/faults",
        Some(json!({"intune_429_without_retry_after": true})),
    )
    .await;
    let (status, headers, _) = env.get(&token, "/deviceManagement/managedDevices").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!headers.contains_key("retry-after"));
    env.advance(SignedDuration::from_secs(retry));
    let (status, _, body) = env.get(&token, &format!("/users/{user}/managedDevices")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = env.emu.request_log();
    let entry = log.iter().find(|e| e.status == 429).unwrap();
    assert_eq!(entry.retry_after, Some(u64::try_from(retry).unwrap()));
    env.stop().await;
}
