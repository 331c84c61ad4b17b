//! The calls Microsoft's SDKs (msgraph-sdk, azure-identity) make as they make them: percent-encoded
//! ids and user principal names in paths, short type casts (`graph.user`), `/organization/{id}`.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Percent-encodes every byte but unreserved ones, as the SDKs' URI templates encode a key.
fn encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn percent_encoded_user_principal_names_and_ids_are_decoded_in_paths() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (member, guest, group, device) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let member = t
            .users
            .iter()
            .find(|u| u.user_type == "Member" && u.deleted_date_time.is_none())
            .unwrap();
        let guest = t
            .users
            .iter()
            .find(|u| u.user_principal_name.contains("#EXT#") && u.deleted_date_time.is_none())
            .unwrap();
        let device = t.devices.iter().find(|d| !d.user_id.is_empty()).unwrap();
        (
            (member.id.clone(), member.user_principal_name.clone()),
            (guest.id.clone(), guest.user_principal_name.clone()),
            t.groups
                .iter()
                .find(|g| !g.members.is_empty())
                .unwrap()
                .id
                .clone(),
            (device.id.clone(), device.user_id.clone()),
        )
    });
    // `users.by_user_id("<UPN>")` sends `%40`; a guest's `#EXT#` goes as `%23EXT%23`.
    for (id, upn) in [&member, &guest] {
        let encoded = encode_all(upn);
        assert!(encoded.contains("%40"), "{encoded}");
        let (status, _, body) = env.get(&token, &format!("/users/{encoded}")).await;
        assert_eq!(status, StatusCode::OK, "{upn}: {body}");
        assert_eq!(body["id"], json!(id));
        assert_eq!(body["userPrincipalName"], json!(upn));
        for nav in [
            "memberOf",
            "transitiveMemberOf",
            "licenseDetails",
            "managedDevices",
        ] {
            let (status, _, body) = env.get(&token, &format!("/users/{encoded}/{nav}")).await;
            assert_eq!(status, StatusCode::OK, "{upn}/{nav}: {body}");
        }
        let (status, _, body) = env
            .get(&token, &format!("/users/{encoded}/memberOf/graph.group"))
            .await;
        assert_eq!(status, StatusCode::OK, "{upn}: {body}");
    }
    let guest_encoded = encode_all(&guest.1);
    assert!(guest_encoded.contains("%23EXT%23"), "{guest_encoded}");
    // Ids go through the same decoding (an SDK may encode any byte).
    let (status, _, body) = env
        .get(
            &token,
            &format!("/groups/{}", encode_all(&group).replace('-', "%2D")),
        )
        .await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(group)),
        "{body}"
    );
    for nav in ["members", "transitiveMembers", "members/graph.user"] {
        let path = format!("/groups/{}/{nav}", group.replace('-', "%2d"));
        let (status, _, body) = env.get(&token, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, _, body) = env
        .get(
            &token,
            &format!(
                "/deviceManagement/managedDevices/{}",
                device.0.replace('-', "%2D")
            ),
        )
        .await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(device.0)),
        "{body}"
    );
    let owner_upn = env
        .emu
        .with_world(|w| w.tenants[0].user(&device.1).unwrap().user_principal_name.clone());
    let (status, _, body) = env
        .get(
            &token,
            &format!(
                "/users/{}/managedDevices/{}",
                encode_all(&owner_upn),
                device.0.replace('-', "%2D")
            ),
        )
        .await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::OK, json!(device.0)),
        "{body}"
    );
    // A `$batch` item's URL is decoded the same way.
    let (status, _, body) = env
        .post(
            &token,
            "/$batch",
            &json!({"requests": [{"id": "1", "method": "GET", "url": format!("/users/{guest_encoded}")}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["responses"][0]["status"], json!(200), "{body}");
    assert_eq!(body["responses"][0]["body"]["id"], json!(guest.0), "{body}");
    // Decoded once: `%2540` is the text `%40`, which no user has.
    let double = member.1.replace('@', "%2540");
    let (status, _, body) = env.get(&token, &format!("/users/{double}")).await;
    assert_eq!(
        (status, graph_error(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound")
    );
    env.stop().await;
}

#[tokio::test]
async fn a_plus_in_a_path_stays_a_plus() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    let domain = env.summary.tenants[0].domain.clone();
    let upn = format!("first+tag@{domain}");
    let (status, created) = env
        .admin(
            reqwest::Method::POST,
            &format!("/tenants/{tenant}/users"),
            Some(json!({"userPrincipalName": upn, "displayName": "Plus Tag"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for path in [
        format!("/users/first+tag%40{domain}"),
        format!("/users/first%2Btag%40{domain}"),
    ] {
        let (status, _, body) = env.get(&token, &path).await;
        assert_eq!(
            (status, body["userPrincipalName"].clone()),
            (StatusCode::OK, json!(upn)),
            "{path}: {body}"
        );
    }
    // `+` is not a space in a path: `first tag@…` is nobody.
    let (status, _, _) = env.get(&token, &format!("/users/first%20tag%40{domain}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    env.stop().await;
}

#[tokio::test]
async fn short_type_casts_are_accepted_like_the_full_ones() {
    let env = start().await;
    let token = env.main_token(0).await;
    let (parent, user) = env.emu.with_world(|w| {
        let t = &w.tenants[0];
        let parent = t
            .groups
            .iter()
            .find(|g| g.display_name == "All Departments")
            .unwrap();
        let user = t
            .users
            .iter()
            .find(|u| {
                u.deleted_date_time.is_none()
                    && t.groups.iter().any(|g| g.members.iter().any(|m| m.id == u.id))
            })
            .unwrap();
        (parent.id.clone(), user.id.clone())
    });
    let pairs = [
        (format!("/groups/{parent}/members"), "user", "#users"),
        (format!("/groups/{parent}/members"), "group", "#groups"),
        (format!("/groups/{parent}/transitiveMembers"), "user", "#users"),
        (format!("/groups/{parent}/transitiveMembers"), "group", "#groups"),
        (format!("/users/{user}/memberOf"), "group", "#groups"),
        (format!("/users/{user}/transitiveMemberOf"), "group", "#groups"),
    ];
    for (base, kind, context) in pairs {
        let (status, _, full) = env.get(&token, &format!("{base}/microsoft.graph.{kind}")).await;
        assert_eq!(status, StatusCode::OK, "{base}: {full}");
        let (status, _, short) = env.get(&token, &format!("{base}/graph.{kind}")).await;
        assert_eq!(status, StatusCode::OK, "{base}/graph.{kind}: {short}");
        assert!(
            short["@odata.context"].as_str().unwrap().ends_with(context),
            "{short}"
        );
        assert!(
            !short["value"].as_array().unwrap().is_empty(),
            "{base}/graph.{kind}: nothing"
        );
        assert_eq!(short["value"], full["value"], "{base}/graph.{kind}");
    }
    for bad in ["graph.nonsense", "microsoft.nonsense.user", "user"] {
        let (status, _, body) = env.get(&token, &format!("/groups/{parent}/members/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Bound functions take the alias too.
    let (status, _, body) = env.get(&token, "/users/graph.delta()?$select=displayName").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.stop().await;
}

#[tokio::test]
async fn organization_by_id_is_the_tenants_organization_object() {
    let env = start().await;
    let token = env.main_token(0).await;
    let tenant = env.tenant(0);
    let (status, _, list) = env.get(&token, "/organization").await;
    assert_eq!(status, StatusCode::OK);
    for id in [tenant.clone(), tenant.to_uppercase()] {
        let (status, _, mut body) = env.get(&token, &format!("/organization/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["@odata.context"],
            json!(format!(
                "{}/v1.0/$metadata#organization/$entity",
                env.emu.base_url()
            ))
        );
        body.as_object_mut().unwrap().remove("@odata.context");
        assert_eq!(body, list["value"][0], "same object as in the list");
    }
    for unknown in ["00000000-0000-0000-0000-000000000000".to_owned(), env.tenant(1)] {
        let (status, _, body) = env.get(&token, &format!("/organization/{unknown}")).await;
        let (code, message) = graph_error(&body);
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "Request_ResourceNotFound")
        );
        assert!(message.contains(&unknown), "{message}");
    }
    env.stop().await;
}

#[tokio::test]
async fn group_properties_beyond_the_defaults_are_selected_filtered_and_tracked() {
    let env = start().await;
    let token = env.main_token(0).await;
    let select = "id,resourceProvisioningOptions,assignedLicenses,isAssignableToRole,securityIdentifier,\
                  onPremisesSamAccountName";
    let (status, _, body) = env.get(&token, &format!("/groups?$select={select}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with(&format!("#groups({})", select.replace(' ', ""))),
        "{body}"
    );
    let groups = body["value"].as_array().unwrap();
    assert_eq!(groups.len(), env.summary.tenants[0].groups);
    for g in groups {
        assert_eq!(g.as_object().unwrap().len(), 6, "{g}");
        assert_eq!(g["resourceProvisioningOptions"], json!([]));
        assert_eq!(g["assignedLicenses"], json!([]));
        assert_eq!(g["isAssignableToRole"], Value::Null);
        assert_eq!(g["onPremisesSamAccountName"], Value::Null);
    }
    // Entra's SID of a cloud object: S-1-12-1- and the object id as four little-endian numbers.
    let (sid_group, sid) = env.emu.with_world(|w| {
        let g = w.tenants[0]
            .groups
            .iter()
            .find(|g| g.on_premises_sync_enabled != Some(true))
            .unwrap();
        let bytes = uuid::Uuid::parse_str(&g.id).unwrap().to_bytes_le();
        let parts: Vec<String> = bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()).to_string())
            .collect();
        (g.id.clone(), format!("S-1-12-1-{}", parts.join("-")))
    });
    let (status, _, body) = env
        .get(
            &token,
            &format!("/groups/{sid_group}?$select=securityIdentifier,theme,unseenCount"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["securityIdentifier"], json!(sid));
    assert_eq!(
        (&body["theme"], &body["unseenCount"]),
        (&Value::Null, &Value::Null)
    );
    // Filters take them too (nothing here is role-assignable).
    let (status, _, body) = env
        .get(&token, "/groups?$filter=isAssignableToRole eq true")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!([]));
    // Members, memberOf and delta select them.
    let (status, _, body) = env
        .get(
            &token,
            &format!("/groups/{sid_group}/members?$select=id,securityIdentifier"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = env
        .get(
            &token,
            "/groups/delta?$select=displayName,resourceProvisioningOptions",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["value"][0]["resourceProvisioningOptions"],
        json!([]),
        "{body}"
    );
    // An unknown name is still refused, with Graph's message.
    let (status, _, body) = env.get(&token, "/groups?$select=id,shoeSize").await;
    let (code, message) = graph_error(&body);
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "Request_BadRequest")
    );
    assert_eq!(
        message,
        "Could not find a property named 'shoeSize' on type 'microsoft.graph.group'."
    );
    env.stop().await;
}

#[tokio::test]
async fn single_user_properties_are_served_on_a_single_user_and_refused_on_lists() {
    let env = start().await;
    let token = env.main_token(0).await;
    let user = env.emu.with_world(|w| w.tenants[0].users[0].id.clone());
    let (status, _, body) = env
        .get(
            &token,
            &format!("/users/{user}?$select=id,aboutMe,birthday,skills,mailboxSettings,passwordProfile"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["aboutMe"], Value::Null);
    assert_eq!(body["birthday"], json!("0001-01-01T00:00:00Z"));
    assert_eq!(body["skills"], json!([]));
    assert_eq!(body["mailboxSettings"], Value::Null);
    assert_eq!(body["passwordProfile"], Value::Null);
    for path in ["/users?$select=id,aboutMe", "/users/delta?$select=skills"] {
        let (status, _, body) = env.get(&token, path).await;
        let (code, message) = graph_error(&body);
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
            "{path}"
        );
        assert!(message.contains("single user"), "{message}");
    }
    // The four other properties the schema has beyond the old list are selectable on lists.
    let (status, _, body) = env
        .get(
            &token,
            "/users?$select=id,authorizationInfo,customSecurityAttributes,passwordProfile,print&$top=2",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"][0].as_object().unwrap().len(), 5, "{body}");
    env.stop().await;
}
