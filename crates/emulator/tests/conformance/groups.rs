use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn groups_list_get_and_filter() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (groups, _) = env.collect(&token, "/groups?$top=5").await;
    assert_eq!(groups.len(), env.summary.tenants[0].groups);
    let kinds = |pred: &dyn Fn(&serde_json::Value) -> bool| groups.iter().filter(|g| pred(g)).count();
    assert!(
        kinds(&|g| g["groupTypes"].as_array().unwrap().iter().any(|t| t == "Unified")) > 0,
        "Microsoft 365 groups"
    );
    assert!(
        kinds(&|g| g["groupTypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "DynamicMembership"))
            > 0
    );
    assert!(
        kinds(&|g| g["mailEnabled"] == true
            && g["securityEnabled"] == false
            && g["groupTypes"].as_array().unwrap().is_empty())
            > 0,
        "distribution lists"
    );
    assert!(kinds(&|g| g["securityEnabled"] == true) > 0);
    let id = groups[0]["id"].as_str().unwrap();
    let (status, _, body) = env
        .get(&token, &format!("/groups/{id}?$select=id,displayName"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_object().unwrap().len(), 3);
    let (status, _, body) = env
        .get(&token, "/groups?$filter=displayName eq 'All Staff'")
        .await;
    assert_eq!(
        (status, body["value"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (status, _, body) = env
        .get(&token, "/groups/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound")
    );
    env.stop().await;
}

#[tokio::test]
async fn members_are_mixed_types_casts_filter_and_transitive_members_flatten() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (parent, nested_users) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let parent = t
            .groups
            .iter()
            .find(|g| g.display_name == "All Departments")
            .unwrap();
        let nested: usize = parent
            .members
            .iter()
            .filter(|m| m.kind == deskbridge_emulator::world::ObjectKind::Group)
            .map(|m| t.group(&m.id).unwrap().members.len())
            .sum();
        (parent.id.clone(), nested)
    });
    let (members, _) = env.collect(&token, &format!("/groups/{parent}/members")).await;
    let mut types: Vec<&str> = members
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        [
            "#microsoft.graph.device",
            "#microsoft.graph.group",
            "#microsoft.graph.orgContact",
            "#microsoft.graph.servicePrincipal",
            "#microsoft.graph.user"
        ]
    );
    let (status, _, users_only) = env
        .get(&token, &format!("/groups/{parent}/members/microsoft.graph.user"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(users_only["@odata.context"].as_str().unwrap().ends_with("#users"));
    assert_eq!(users_only["value"].as_array().unwrap().len(), 1);
    let (transitive, _) = env
        .collect(&token, &format!("/groups/{parent}/transitiveMembers?$top=10"))
        .await;
    assert!(
        transitive.len() >= members.len() + nested_users.min(1),
        "nested members are flattened"
    );
    let (status, _, body) = env
        .get(
            &token,
            &format!("/groups/{parent}/members/microsoft.graph.nonsense"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    env.stop().await;
}
