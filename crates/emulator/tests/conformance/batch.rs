use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn by_id<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn batch_runs_items_with_dependencies_and_per_item_status() {
    let env = start().await;
    let token = env.main_token(0).await;
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$select=id&$top=2"},
        {"id": "2", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000000", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": "/v1.0/subscribedSkus"},
        // The Python SDK sends absolute URLs and list-valued headers.
        {"id": "5", "method": "GET", "url": format!("{}/users?$top=1", env.emu.graph_url()),
         "headers": {"Accept": ["application/json"]}},
    ]});
    let (status, _, body) = env.post(&token, "/$batch", &batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(by_id(&body, "1")["status"], 200);
    assert_eq!(by_id(&body, "1")["body"]["value"].as_array().unwrap().len(), 2);
    assert!(by_id(&body, "1")["body"]["@odata.nextLink"].is_string());
    assert_eq!(by_id(&body, "2")["status"], 404);
    assert_eq!(by_id(&body, "3")["status"], 424);
    assert_eq!(by_id(&body, "4")["status"], 200);
    assert_eq!(by_id(&body, "5")["status"], 200);
    assert_eq!(by_id(&body, "5")["body"]["value"].as_array().unwrap().len(), 1);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (status, _, body) = env.post(&token, "/$batch", &json!({"requests": too_many})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    graph_error(&body);
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/users"}, {"id": "A", "method": "GET", "url": "/users"}]});
    assert_eq!(env.post(&token, "/$batch", &dup).await.0, StatusCode::BAD_REQUEST);
    let no_type =
        json!({"requests": [{"id": "a", "method": "POST", "url": "/users/x/assignLicense", "body": {}}]});
    assert_eq!(
        env.post(&token, "/$batch", &no_type).await.0,
        StatusCode::BAD_REQUEST
    );
    let resp = env
        .http
        .post(env.graph("/$batch"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    env.stop().await;
}

#[tokio::test]
async fn batch_items_are_throttled_one_by_one() {
    let env = start().await;
    let token = env.main_token(1).await;
    env.emu.set_faults(deskbridge_emulator::Faults {
        throttling: true,
        ..Default::default()
    });
    // A tenant with fewer than 50 users has 3,500 RU / 10 s; transitiveMembers costs 5 (+1 with $expand is n/a).
    let group = env.emu.with_world(|w| w.tenants[1].groups[0].id.clone());
    let requests: Vec<Value> = (0..20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/groups/{group}/transitiveMembers")}))
        .collect();
    let mut throttled = None;
    for _ in 0..60 {
        let (status, _, body) = env.post(&token, "/$batch", &json!({"requests": requests})).await;
        assert_eq!(status, StatusCode::OK);
        if let Some(item) = body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == 429)
        {
            throttled = Some((
                item.clone(),
                body["responses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["status"] == 200),
            ));
            break;
        }
    }
    let (item, some_ok) = throttled.expect("the bucket runs dry");
    assert!(
        item["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(item["body"]["error"]["code"], "TooManyRequests");
    let _ = some_ok;
    env.stop().await;
}
