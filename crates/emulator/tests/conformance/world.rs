use deskbridge_emulator::world::ObjectKind;
use deskbridge_emulator::{GenerateOptions, World};

#[test]
fn generation_is_deterministic_and_round_trips_through_json() {
    let options = GenerateOptions {
        seed: 42,
        tenants: 4,
        users_per_tenant: None,
        ..Default::default()
    };
    let a = World::generate(&options).unwrap();
    let b = World::generate(&options).unwrap();
    let ids = |w: &World| {
        w.tenants
            .iter()
            .flat_map(|t| t.users.iter().map(|u| u.id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    let other = World::generate(&GenerateOptions {
        seed: 43,
        ..options.clone()
    })
    .unwrap();
    assert_ne!(ids(&a), ids(&other));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    a.save_json(&path).unwrap();
    let loaded = World::load_json(&path).unwrap();
    assert_eq!(ids(&loaded), ids(&a));
    assert_eq!(loaded.apps.len(), a.apps.len());
    assert!(
        loaded.tenants[0].user(&a.tenants[0].users[0].id).is_some(),
        "indexes are rebuilt on load"
    );
}

#[test]
fn the_world_has_the_shapes_real_directories_have() {
    let w = World::generate(&GenerateOptions {
        seed: 5,
        tenants: 3,
        users_per_tenant: Some(200),
        ..Default::default()
    })
    .unwrap();
    let t = &w.tenants[0];
    assert!(
        t.users
            .iter()
            .any(|u| u.user_type == "Guest" && u.user_principal_name.contains("#EXT#"))
    );
    assert!(t.users.iter().any(|u| !u.account_enabled));
    assert!(t.users.iter().any(|u| {
        u.display_name
            .as_deref()
            .is_some_and(|n| n.starts_with("Shared Mailbox"))
    }));
    assert!(t.users.iter().any(|u| {
        u.display_name
            .as_deref()
            .is_some_and(|n| n.chars().count() > 100 && !n.is_ascii())
    }));
    assert!(
        t.users
            .iter()
            .any(|u| u.job_title.is_none() && u.department.is_none())
    );
    assert!(t.users.iter().any(|u| u.usage_location.is_none()));
    assert!(t.users[0].manager_id.is_none(), "the root has no manager");
    // A manager cycle exists (a client walking up must detect it).
    let cycle = t.users.iter().any(|u| {
        let mut seen = vec![u.id.clone()];
        let mut current = u.manager_id.clone();
        while let Some(m) = current {
            if seen.contains(&m) {
                return true;
            }
            seen.push(m.clone());
            current = t.user(&m).and_then(|x| x.manager_id.clone());
        }
        false
    });
    assert!(cycle);
    assert!(
        t.groups
            .iter()
            .any(|g| g.members.iter().any(|m| m.kind == ObjectKind::Group)),
        "nested groups"
    );
    assert!(
        t.devices
            .iter()
            .any(|d| d.last_sync_date_time == "0001-01-01T00:00:00Z" || d.serial_number.is_empty())
    );
    assert!(!t.directory_roles.is_empty() && !t.skus.is_empty());
    let partner = w.tenants.iter().find(|t| t.is_partner).unwrap();
    assert_eq!(partner.gdap_relationships.len(), 3);
    let kinds: Vec<&str> = w.apps.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "multi_tenant_secret",
            "certificate",
            "single_tenant",
            "expired_secret",
            "unconsented",
            "partner_center",
            "gdap_multi_tenant"
        ]
    );
    // Without a size, tenant sizes spread.
    let spread = World::generate(&GenerateOptions {
        seed: 9,
        tenants: 12,
        ..Default::default()
    })
    .unwrap();
    let mut sizes: Vec<usize> = spread.customer_tenants().map(|t| t.users.len()).collect();
    sizes.sort_unstable();
    assert!(sizes[0] < 50 && sizes[sizes.len() - 1] > 500, "{sizes:?}");
}

#[test]
fn invalid_datasets_are_precise_errors() {
    let err = World::from_json_str("{\"tenants\": 3}").unwrap_err();
    assert!(err.to_string().contains("invalid dataset JSON"), "{err}");
    let err = World::load_json(std::path::Path::new("/nonexistent/world.json")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}
