use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn subscribed_skus_organization_and_directory_roles() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    let (status, _, body) = env.get(&token, "/subscribedSkus").await;
    assert_eq!(status, StatusCode::OK);
    let sku = &body["value"][0];
    assert_eq!(sku["id"], format!("{tenant}_{}", sku["skuId"].as_str().unwrap()));
    assert!(sku["prepaidUnits"]["enabled"].is_i64() && sku["consumedUnits"].is_u64());
    let (status, _, body) = env.get(&token, "/subscribedSkus?$top=5").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        graph_error(&body),
        (
            "Request_UnsupportedQuery".into(),
            "This resource does not support custom page sizes. Please retry without a page size argument."
                .into()
        )
    );
    let (status, _, body) = env.get(&token, "/organization").await;
    assert_eq!(status, StatusCode::OK);
    let org = &body["value"][0];
    assert_eq!(org["id"], tenant.as_str());
    assert_eq!(org["tenantType"], "AAD");
    assert!(
        org["verifiedDomains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["isInitial"] == true)
    );
    let (status, _, body) = env.get(&token, "/directoryRoles").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["displayName"] == "Global Administrator")
    );
    let (status, _, _) = env.get(&token, "/directoryRoles?$top=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    env.stop().await;
}

#[tokio::test]
async fn managed_devices_page_by_a_thousand_with_intune_quirks() {
    let mut world = deskbridge_emulator::World::generate(&deskbridge_emulator::GenerateOptions {
        seed: 3,
        tenants: 1,
        users_per_tenant: Some(2_400),
        ..Default::default()
    })
    .unwrap();
    world.tenants[0].premium = true;
    let emu = deskbridge_emulator::Emulator::start(deskbridge_emulator::EmulatorConfig::new(world))
        .await
        .unwrap();
    let summary = emu.summary();
    let app = summary
        .apps
        .iter()
        .find(|a| a.kind == "multi_tenant_secret")
        .unwrap();
    let token = emu
        .issue_app_token(&app.client_id, &summary.tenants[0].id)
        .unwrap();
    let http = reqwest::Client::new();
    let mut url = format!("{}/deviceManagement/managedDevices", emu.graph_url());
    let mut pages = Vec::new();
    loop {
        let body: serde_json::Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages.push(body["value"].as_array().unwrap().len());
        let devices = body["value"].as_array().unwrap();
        assert!(devices.iter().all(|d| d["jailBroken"].is_string()));
        assert!(
            devices
                .iter()
                .all(|d| d["serialNumber"].is_string() && d["imei"].is_string()),
            "missing strings are \"\""
        );
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, vec![1000, 200]);
    let all: serde_json::Value = http
        .get(format!("{}/deviceManagement/managedDevices", emu.graph_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let values = all["value"].as_array().unwrap();
    assert!(
        values
            .iter()
            .any(|d| d["lastSyncDateTime"] == "0001-01-01T00:00:00Z")
    );
    assert!(values.iter().any(|d| d["serialNumber"] == ""));
    let resp = http
        .get(format!(
            "{}/deviceManagement/managedDevices/$count",
            emu.graph_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    emu.shutdown().await;
}

#[tokio::test]
async fn gdap_relationships_are_listed_for_the_partner() {
    let env = start().await;
    let partner = env.partner();
    let token = env.token("multi_tenant_secret", &partner).await;
    let (status, _, body) = env
        .get(&token, "/tenantRelationships/delegatedAdminRelationships")
        .await;
    assert_eq!(status, StatusCode::OK);
    let rels = body["value"].as_array().unwrap();
    assert_eq!(rels.len(), env.summary.tenants.len());
    for r in rels {
        assert!(
            env.summary
                .tenants
                .iter()
                .any(|t| r["customer"]["tenantId"] == t.id.as_str())
        );
        assert_eq!(r["id"].as_str().unwrap().len(), 73, "{{guid}}-{{guid}}");
        assert!(r["accessDetails"]["unifiedRoles"][0]["roleDefinitionId"].is_string());
    }
    let id = rels[0]["id"].as_str().unwrap();
    let (status, _, one) = env
        .get(
            &token,
            &format!("/tenantRelationships/delegatedAdminRelationships/{id}"),
        )
        .await;
    assert_eq!((status, one["id"].as_str().unwrap()), (StatusCode::OK, id));
    let (status, _, _) = env
        .get(
            &token,
            "/tenantRelationships/delegatedAdminRelationships?$top=301",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A customer tenant has none of its own.
    let customer = env.main_token(0).await;
    let (_, _, body) = env
        .get(&customer, "/tenantRelationships/delegatedAdminRelationships")
        .await;
    assert!(body["value"].as_array().unwrap().is_empty());
    env.stop().await;
}

#[tokio::test]
async fn unknown_segments_and_methods_are_rejected() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, _, body) = env.get(&token, "/nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    graph_error(&body);
    let resp = env
        .http
        .delete(env.graph("/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    env.stop().await;
}
