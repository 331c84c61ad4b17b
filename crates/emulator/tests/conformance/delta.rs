use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// Follows a delta round to its deltaLink; every page has exactly one of the two links.
async fn round(env: &Env, token: &str, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut url = first.to_owned();
    loop {
        let (status, _, body) = env.get_with(token, &url, headers).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        items.extend(body["value"].as_array().unwrap().iter().cloned());
        let next = body["@odata.nextLink"].as_str();
        let delta = body["@odata.deltaLink"].as_str();
        assert!(next.is_some() != delta.is_some(), "exactly one link per page");
        if let Some(d) = delta {
            assert!(d.starts_with(env.emu.base_url()) && d.contains("$deltatoken="));
            return (items, d.to_owned());
        }
        url = next.unwrap().to_owned();
    }
}

#[tokio::test]
async fn users_delta_reports_creates_updates_soft_and_hard_deletes_and_restores() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    let (initial, link) = round(
        &env,
        &token,
        "/users/delta?$select=displayName,jobTitle,manager",
        &[],
    )
    .await;
    assert_eq!(initial.len(), env.summary.tenants[0].users);
    assert!(
        initial
            .iter()
            .any(|u| u["manager@delta"][0]["@odata.type"] == "#microsoft.graph.user")
    );
    // Nothing changed: an empty round.
    let (nothing, link) = round(&env, &token, &link, &[]).await;
    assert!(nothing.is_empty());

    let (ids, restorable) = env.emu.with_world(|w| {
        let u = &w.tenants[0].users;
        (
            vec![u[1].id.clone(), u[2].id.clone(), u[3].id.clone()],
            u[4].id.clone(),
        )
    });
    let (status, created) = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/users"),
            Some(json!({"userPrincipalName": "new.hire@x.onmicrosoft.com", "displayName": "New Hire"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let new_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.admin(
            Method::PATCH,
            &format!("/tenants/{tenant}/users/{}", ids[0]),
            Some(json!({"jobTitle": "Chief Tester"}))
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        env.admin(
            Method::DELETE,
            &format!("/tenants/{tenant}/users/{}", ids[1]),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.admin(
            Method::DELETE,
            &format!("/tenants/{tenant}/users/{}?hard=true", ids[2]),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.admin(
            Method::DELETE,
            &format!("/tenants/{tenant}/users/{restorable}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        env.admin(
            Method::POST,
            &format!("/tenants/{tenant}/users/{restorable}/restore"),
            None
        )
        .await
        .0,
        StatusCode::OK
    );

    let (changes, link) = round(&env, &token, &link, &[]).await;
    let find = |id: &str| {
        changes
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing in {changes:?}"))
    };
    assert_eq!(find(&new_id)["displayName"], "New Hire");
    assert_eq!(find(&ids[0])["jobTitle"], "Chief Tester");
    assert_eq!(find(&ids[1])["@removed"]["reason"], "changed");
    assert_eq!(
        find(&ids[1]).as_object().unwrap().len(),
        2,
        "removed items carry only id and @removed"
    );
    assert_eq!(find(&ids[2])["@removed"]["reason"], "deleted");
    assert!(
        find(&restorable).get("@removed").is_none(),
        "a restored user comes back as a normal entry"
    );
    // Reports of the hard-deleted user lose their manager, so they change too; nothing else does.
    let known = [
        new_id.as_str(),
        ids[0].as_str(),
        ids[1].as_str(),
        ids[2].as_str(),
        restorable.as_str(),
    ];
    for extra in changes
        .iter()
        .filter(|c| !known.contains(&c["id"].as_str().unwrap()))
    {
        let delta = extra["manager@delta"].as_array().unwrap();
        assert!(
            delta
                .iter()
                .any(|m| m["id"] == ids[2].as_str() && m["@removed"]["reason"] == "deleted"),
            "{extra}"
        );
    }
    assert_eq!(
        changes
            .iter()
            .filter(|c| known.contains(&c["id"].as_str().unwrap()))
            .count(),
        5
    );
    // The deltaLink keeps the $select of the first request.
    assert!(find(&ids[0]).get("mail").is_none());
    let (nothing, _) = round(&env, &token, &link, &[]).await;
    assert!(nothing.is_empty());
    env.stop().await;
}

#[tokio::test]
async fn groups_delta_tracks_membership_with_removals_split_across_pages() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    // Grow "All Staff" past one members@delta entry (100 members).
    let (all_staff, size) = env.emu.with_world_mut(|w| {
        let gid = w.tenants[0]
            .groups
            .iter()
            .find(|g| g.display_name == "All Staff")
            .unwrap()
            .id
            .clone();
        for i in 0..150 {
            let user = deskbridge_emulator::world::User {
                user_principal_name: format!("bulk{i}@example.onmicrosoft.com"),
                account_enabled: true,
                user_type: "Member".into(),
                ..Default::default()
            };
            let id = w.create_user(&tenant, user).unwrap().id;
            w.add_member(&tenant, &gid, &id).unwrap();
        }
        let size = w.tenants[0].group(&gid).unwrap().members.len();
        (gid, size)
    });
    assert!(size > 200);
    let prefer = [("Prefer", "odata.maxpagesize=1")];
    let (initial, link) = round(&env, &token, "/groups/delta?$select=displayName,members", &prefer).await;
    let staff_entries: Vec<&Value> = initial.iter().filter(|g| g["id"] == all_staff.as_str()).collect();
    assert!(staff_entries.len() >= 2, "a large group spans several pages");
    let merged: usize = staff_entries
        .iter()
        .map(|g| g["members@delta"].as_array().unwrap().len())
        .sum();
    assert_eq!(merged, size, "members split over entries add up");

    // Membership changes through the admin API.
    let (user_a, user_b, group2) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let g = t.groups.iter().find(|g| g.display_name == "Newsletter").unwrap();
        let outside = t
            .users
            .iter()
            .find(|u| !g.members.iter().any(|m| m.id == u.id))
            .unwrap();
        (outside.id.clone(), g.members[0].id.clone(), g.id.clone())
    });
    let add = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/groups/{group2}/members"),
            Some(json!({"id": user_a})),
        )
        .await;
    assert_eq!(add.0, StatusCode::NO_CONTENT, "{:?}", add.1);
    let dup = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/groups/{group2}/members"),
            Some(json!({"id": user_a})),
        )
        .await;
    assert_eq!(dup.0, StatusCode::CONFLICT);
    let rm = env
        .admin(
            Method::DELETE,
            &format!("/tenants/{tenant}/groups/{group2}/members/{user_b}"),
            None,
        )
        .await;
    assert_eq!(rm.0, StatusCode::NO_CONTENT);
    let (created_status, created) = env
        .admin(
            Method::POST,
            &format!("/tenants/{tenant}/groups"),
            Some(json!({"displayName": "Brand New"})),
        )
        .await;
    assert_eq!(created_status, StatusCode::CREATED);
    let (changes, link) = round(&env, &token, &link, &[]).await;
    let entry = changes.iter().find(|g| g["id"] == group2.as_str()).unwrap();
    let delta = entry["members@delta"].as_array().unwrap();
    assert!(
        delta
            .iter()
            .any(|m| m["id"] == user_a.as_str() && m.get("@removed").is_none())
    );
    assert!(
        delta
            .iter()
            .any(|m| m["id"] == user_b.as_str() && m["@removed"]["reason"] == "deleted")
    );
    assert!(changes.iter().any(|g| g["id"] == created["id"]));

    // Soft delete then hard delete of a group.
    let gid = created["id"].as_str().unwrap();
    env.admin(Method::DELETE, &format!("/tenants/{tenant}/groups/{gid}"), None)
        .await;
    let (changes, link) = round(&env, &token, &link, &[]).await;
    assert_eq!(changes[0]["@removed"]["reason"], "changed");
    env.admin(
        Method::DELETE,
        &format!("/tenants/{tenant}/groups/{gid}?hard=true"),
        None,
    )
    .await;
    let (changes, _) = round(&env, &token, &link, &[]).await;
    assert_eq!(changes[0]["@removed"]["reason"], "deleted");
    env.stop().await;
}

#[tokio::test]
async fn latest_tokens_expiry_and_query_restrictions() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (status, _, body) = env.get(&token, "/users/delta?$deltatoken=latest").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["value"].as_array().unwrap().is_empty());
    let latest = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    let (items, _) = round(&env, &token, &latest, &[]).await;
    assert!(items.is_empty(), "latest starts tracking from now");

    for query in [
        "/users/delta?$top=5",
        "/users/delta?$expand=manager",
        "/users/delta?$orderby=displayName",
        "/users/delta?$filter=userType eq 'Guest'",
    ] {
        let (status, _, body) = env.get(&token, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(graph_error(&body).0, "Request_UnsupportedQuery", "{query}");
    }
    let (status, _, _) = env.get(&token, &format!("{latest}&$select=displayName")).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "$select cannot be added to a token link"
    );
    let ids = env
        .emu
        .with_world(|w| [w.tenants[0].users[0].id.clone(), w.tenants[0].users[1].id.clone()]);
    let (only, _) = round(
        &env,
        &token,
        &format!("/users/delta?$filter=id eq '{}' or id eq '{}'", ids[0], ids[1]),
        &[],
    )
    .await;
    assert_eq!(only.len(), 2);

    // Garbage token.
    let (status, _, body) = env.get(&token, "/users/delta?$deltatoken=bm90LWEtdG9rZW4").await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::GONE, "syncStateNotFound")
    );
    // Older than seven days.
    env.advance(SignedDuration::from_hours(24 * 8));
    let token = env.main_token(0).await;
    let (status, headers, body) = env.get(&token, &latest).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(graph_error(&body).0, "resyncRequired");
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .contains("/v1.0/users/delta?$deltatoken=")
    );
    // The Location (an empty token) starts a fresh round, as a query without a token does.
    let location = headers["location"].to_str().unwrap().to_owned();
    let (status, _, body) = env.get(&token, &location).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["value"].as_array().is_some_and(|v| !v.is_empty()), "{body}");
    // Declared expired by the admin API.
    let (_, _, body) = env.get(&token, "/groups/delta?$deltatoken=latest").await;
    let fresh = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    assert_eq!(env.get(&token, &fresh).await.0, StatusCode::OK);
    let (status, faults) = env
        .admin(
            Method::PUT,
            "/faults",
            Some(json!({"expire_delta_tokens_now": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(faults["delta_tokens_expired_before"].is_string());
    let (status, _, body) = env.get(&token, &fresh).await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::GONE, "resyncRequired")
    );
    // The faults that take away the Location and `$deltatoken=latest`.
    let (status, _) = env
        .admin(
            Method::PUT,
            "/faults",
            Some(json!({"resync_without_location": true, "refuse_latest_delta_token": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = env.get(&token, &fresh).await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::GONE, "resyncRequired")
    );
    assert!(headers.get("location").is_none());
    let (status, _, body) = env.get(&token, "/users/delta?$deltatoken=latest").await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::BAD_REQUEST, "Request_UnsupportedQuery")
    );
    env.stop().await;
}

#[tokio::test]
async fn assign_license_and_replays_show_up_in_delta() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (_, _, body) = env.get(&token, "/users/delta?$deltatoken=latest").await;
    let link = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    let (target, sku) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let sku = t.skus[1].sku_id.clone();
        let u = t
            .users
            .iter()
            .find(|u| u.usage_location.is_some() && u.assigned_licenses.iter().all(|l| l.sku_id != sku))
            .unwrap();
        (u.id.clone(), sku)
    });
    let add = json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []});
    assert_eq!(
        env.post(&token, &format!("/users/{target}/assignLicense"), &add)
            .await
            .0,
        StatusCode::OK
    );
    env.emu.set_faults(deskbridge_emulator::Faults {
        delta_replays: true,
        ..Default::default()
    });
    let (changes, _) = round(&env, &token, &link, &[]).await;
    let hits = changes.iter().filter(|c| c["id"] == target.as_str()).count();
    assert_eq!(hits, 2, "the change, replayed once");
    env.stop().await;
}

#[tokio::test]
async fn manager_changes_and_removals_arrive_as_manager_delta() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    let (_, _, body) = env.get(&token, "/users/delta?$deltatoken=latest").await;
    let link = body["@odata.deltaLink"].as_str().unwrap().to_owned();
    let (report, old_manager, new_manager, doomed, doomed_reports) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let report = t.users.iter().find(|u| u.manager_id.is_some()).unwrap();
        let old = report.manager_id.clone().unwrap();
        let new = t
            .users
            .iter()
            .find(|u| u.id != old && u.id != report.id)
            .unwrap()
            .id
            .clone();
        // A manager other than the old one, with reports of its own.
        let doomed = t
            .users
            .iter()
            .find(|m| {
                m.id != old
                    && m.id != report.id
                    && m.id != new
                    && t.users
                        .iter()
                        .any(|u| u.manager_id.as_deref() == Some(m.id.as_str()))
            })
            .unwrap()
            .id
            .clone();
        let reports: Vec<String> = t
            .users
            .iter()
            .filter(|u| u.manager_id.as_deref() == Some(doomed.as_str()))
            .map(|u| u.id.clone())
            .collect();
        (report.id.clone(), old, new, doomed, reports)
    });
    let (status, _) = env
        .admin(Method::PATCH, &format!("/tenants/{tenant}/users/{report}"), Some(json!({"manager@odata.bind": format!("https://graph.microsoft.com/v1.0/users/{new_manager}")})))
        .await;
    assert_eq!(status, StatusCode::OK);
    env.admin(
        Method::DELETE,
        &format!("/tenants/{tenant}/users/{doomed}?hard=true"),
        None,
    )
    .await;
    let (changes, _) = round(&env, &token, &link, &[]).await;
    let entry = changes.iter().find(|c| c["id"] == report.as_str()).unwrap();
    let delta = entry["manager@delta"].as_array().unwrap();
    assert!(
        delta
            .iter()
            .any(|m| m["id"] == old_manager.as_str() && m["@removed"]["reason"] == "deleted"),
        "{delta:?}"
    );
    assert!(
        delta
            .iter()
            .any(|m| m["id"] == new_manager.as_str() && m.get("@removed").is_none()),
        "{delta:?}"
    );
    for r in doomed_reports.iter().filter(|r| **r != report) {
        let entry = changes.iter().find(|c| c["id"] == r.as_str()).unwrap();
        assert_eq!(entry["manager@delta"][0]["@removed"]["reason"], "deleted");
        assert_eq!(entry["manager@delta"][0]["id"], doomed.as_str());
    }
    assert!(
        changes
            .iter()
            .any(|c| c["id"] == doomed.as_str() && c["@removed"]["reason"] == "deleted")
    );
    env.stop().await;
}
