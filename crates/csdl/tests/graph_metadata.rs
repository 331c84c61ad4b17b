#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Checks hand-written Graph payloads against the real Graph v1.0 metadata.

use std::sync::OnceLock;

use deskbridge_csdl::{Schema, Violation, default_metadata_path};
use serde_json::{Value, json};

fn graph() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = default_metadata_path();
        Schema::load(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
    })
}

fn assert_valid(type_name: &str, value: &Value) {
    let violations = graph().check(type_name, value);
    assert!(
        violations.is_empty(),
        "{type_name} should be valid, got {violations:#?}"
    );
}

fn only_violation(type_name: &str, value: &Value) -> Violation {
    let mut violations = graph().check(type_name, value);
    assert_eq!(
        violations.len(),
        1,
        "expected exactly one violation, got {violations:#?}"
    );
    violations.remove(0)
}

fn valid_user() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
        "accountEnabled": true,
        "displayName": "Adele Vance",
        "givenName": "Adele",
        "surname": "Vance",
        "userPrincipalName": "adele@contoso.example",
        "mail": null,
        "businessPhones": ["+1 425 555 0109"],
        "assignedLicenses": [
            {"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": []}
        ],
        "createdDateTime": "2024-03-01T09:15:00Z",
        "employeeHireDate": "0001-01-01T00:00:00Z",
        "signInActivity": {
            "lastSignInDateTime": "2026-11-20T08:01:12.1234567Z",
            "lastSignInRequestId": "c1e2b7f4-0000-4000-8000-000000000001"
        },
        "onPremisesExtensionAttributes": {"extensionAttribute1": "cost-centre-42"},
        "extension_0123456789abcdef0123456789abcdef_costCenter": "42",
        "manager@odata.navigationLink": "https://graph.example/users/1/manager",
        "manager": {"@odata.type": "#microsoft.graph.user", "id": "1", "displayName": "Boss"},
        "memberOf": [
            {"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "Sales"}
        ]
    })
}

#[test]
fn real_metadata_loads_with_aliases_resolved() {
    let schema = graph();
    assert!(schema.type_count() > 3000);
    assert!(schema.has_type("microsoft.graph.user"));
    assert!(schema.has_type("graph.user"), "the alias form resolves too");
    assert!(schema.has_type("microsoft.graph.security.user"));
    assert!(schema.derives_from("microsoft.graph.user", "microsoft.graph.directoryObject"));
    assert!(schema.derives_from("microsoft.graph.user", "microsoft.graph.entity"));
    assert!(!schema.derives_from("microsoft.graph.group", "microsoft.graph.user"));
    assert_eq!(
        schema
            .property_type("microsoft.graph.user", "assignedLicenses")
            .as_deref(),
        Some("Collection(microsoft.graph.assignedLicense)")
    );
    assert_eq!(
        schema.property_type("microsoft.graph.user", "id").as_deref(),
        Some("Edm.String")
    );
}

#[test]
fn valid_user_passes() {
    assert_valid("microsoft.graph.user", &valid_user());
}

#[test]
fn valid_group_passes() {
    assert_valid(
        "microsoft.graph.group",
        &json!({
            "id": "45b7d2e7-b882-4a80-ba97-10b7a63b8fa4",
            "displayName": "Contoso Sales",
            "description": null,
            "groupTypes": ["Unified"],
            "mailEnabled": true,
            "securityEnabled": false,
            "mailNickname": "sales",
            "proxyAddresses": ["SMTP:sales@contoso.example"],
            "createdDateTime": "2023-01-05T12:00:00Z",
            "visibility": "Private",
            "deletedDateTime": null,
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": "u1"},
                {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}}
            ]
        }),
    );
}

#[test]
fn valid_subscribed_sku_passes() {
    assert_valid(
        "microsoft.graph.subscribedSku",
        &json!({
            "id": "48a80680-7326-48cd-9935-b556b81d3a4e_c7df2760-2c81-4ef7-b578-5b5392b571df",
            "accountId": "48a80680-7326-48cd-9935-b556b81d3a4e",
            "accountName": "Contoso",
            "appliesTo": "User",
            "capabilityStatus": "Enabled",
            "consumedUnits": 14,
            "prepaidUnits": {"enabled": 25, "lockedOut": 0, "suspended": 0, "warning": 0},
            "servicePlans": [{
                "servicePlanId": "8c098270-9dd4-4350-9b30-ba4703f3b36b",
                "servicePlanName": "ADALLOM_S_O365",
                "provisioningStatus": "Success",
                "appliesTo": "User"
            }],
            "skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df",
            "skuPartNumber": "ENTERPRISEPREMIUM",
            "subscriptionIds": ["4f2d1b8e-0000-4000-8000-000000000001"]
        }),
    );
}

#[test]
fn valid_managed_device_passes() {
    assert_valid(
        "microsoft.graph.managedDevice",
        &json!({
            "@odata.type": "#microsoft.graph.managedDevice",
            "id": "705c034c-034c-705c-4c03-5c704c035c70",
            "deviceName": "LAPTOP-7F3",
            "complianceState": "compliant",
            "deviceEnrollmentType": "windowsAzureADJoin",
            "managementAgent": "mdm",
            "managedDeviceOwnerType": "company",
            "enrolledDateTime": "2025-06-01T08:00:00Z",
            "lastSyncDateTime": "2026-11-22T22:10:05Z",
            "easActivationDateTime": "0001-01-01T00:00:00Z",
            "freeStorageSpaceInBytes": 112_000_000_000_i64,
            "totalStorageSpaceInBytes": 255_000_000_000_i64,
            "physicalMemoryInBytes": 0,
            "isEncrypted": true,
            "operatingSystem": "Windows",
            "osVersion": "10.0.22631.4460",
            "serialNumber": "",
            "userPrincipalName": "adele@contoso.example",
            "azureADDeviceId": "b2c1d0e9-0000-4000-8000-00000000000a"
        }),
    );
}

#[test]
fn valid_organization_passes() {
    assert_valid(
        "microsoft.graph.organization",
        &json!({
            "id": "48a80680-7326-48cd-9935-b556b81d3a4e",
            "displayName": "Contoso",
            "countryLetterCode": "US",
            "businessPhones": [],
            "assignedPlans": [{
                "assignedDateTime": "2024-01-01T00:00:00Z",
                "capabilityStatus": "Enabled",
                "service": "exchange",
                "servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0"
            }],
            "verifiedDomains": [
                {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": true, "isInitial": true,
                 "name": "contoso.example", "type": "Managed"}
            ],
            "mobileDeviceManagementAuthority": "intune",
            "onPremisesSyncEnabled": null,
            "createdDateTime": "2019-04-02T10:11:12Z"
        }),
    );
}

#[test]
fn valid_delegated_admin_relationship_passes() {
    assert_valid(
        "microsoft.graph.delegatedAdminRelationship",
        &json!({
            "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
            "@odata.etag": "W/\"JyIwMDAwMDAwMCInIg==\"",
            "id": "5e5594d3-6f82-458b-b567-77db4811f0cd-00000000-0000-0000-0000-000000001234",
            "displayName": "Contoso managed services",
            "duration": "P730D",
            "autoExtendDuration": "PT0S",
            "status": "active",
            "createdDateTime": "2024-05-01T10:00:00Z",
            "activatedDateTime": "2024-05-02T10:00:00Z",
            "lastModifiedDateTime": "2024-05-02T10:00:00Z",
            "endDateTime": "2026-05-02T10:00:00Z",
            "customer": {"tenantId": "4a8e2c90-0000-4000-8000-000000000002", "displayName": "Fabrikam"},
            "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "729827e3-9c14-49f7-bb1b-9608f156bbb8"}]}
        }),
    );
}

#[test]
fn unknown_property_is_reported_with_its_path() {
    let mut user = valid_user();
    user["assignedLicenses"][0]["skuNumber"] = json!(3);
    let violation = only_violation("microsoft.graph.user", &user);
    assert_eq!(violation.path, "$.assignedLicenses[0].skuNumber");
    assert!(violation.message.contains("not defined"), "{violation}");
}

#[test]
fn unknown_top_level_property_on_an_open_type_is_reported() {
    let mut user = valid_user();
    user["favouriteColour"] = json!("blue");
    assert_eq!(
        only_violation("microsoft.graph.user", &user).path,
        "$.favouriteColour"
    );
}

#[test]
fn wrong_type_is_reported_with_its_path() {
    let mut user = valid_user();
    user["accountEnabled"] = json!("true");
    let violation = only_violation("microsoft.graph.user", &user);
    assert_eq!(violation.path, "$.accountEnabled");
    assert!(violation.message.contains("boolean"), "{violation}");

    let mut user = valid_user();
    user["assignedLicenses"][0]["skuId"] = json!("not-a-guid");
    assert_eq!(
        only_violation("microsoft.graph.user", &user).path,
        "$.assignedLicenses[0].skuId"
    );

    let mut user = valid_user();
    user["createdDateTime"] = json!("03/01/2024 09:15");
    assert_eq!(
        only_violation("microsoft.graph.user", &user).path,
        "$.createdDateTime"
    );

    let mut user = valid_user();
    user["businessPhones"] = json!("+1 425 555 0109");
    assert_eq!(
        only_violation("microsoft.graph.user", &user).path,
        "$.businessPhones"
    );
}

#[test]
fn bad_enum_member_is_reported_with_its_path() {
    let device = json!({"id": "d1", "complianceState": "mostlyCompliant"});
    let violation = only_violation("microsoft.graph.managedDevice", &device);
    assert_eq!(violation.path, "$.complianceState");
    assert!(violation.message.contains("mostlyCompliant"), "{violation}");
}

#[test]
fn flags_enum_accepts_comma_separated_members() {
    let schema = graph();
    let flags = "microsoft.graph.applicationDataType";
    assert!(schema.check(flags, &json!("documents")).is_empty());
    assert!(
        schema
            .check(flags, &json!("codingFiles, creditCards,documents"))
            .is_empty()
    );
    let bad = schema.check(flags, &json!("documents, nonsense"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].message.contains("\"nonsense\""));
    // A plain (non-flags) enum does not split on commas.
    assert_eq!(
        schema
            .check("microsoft.graph.complianceState", &json!("compliant, unknown"))
            .len(),
        1
    );
    assert_eq!(
        schema.check("microsoft.graph.complianceState", &json!(1)).len(),
        1
    );
}

#[test]
fn null_in_non_nullable_property_is_reported_with_its_path() {
    let mut user = valid_user();
    user["id"] = Value::Null;
    let violation = only_violation("microsoft.graph.user", &user);
    assert_eq!(violation.path, "$.id");
    assert!(violation.message.contains("Nullable"), "{violation}");

    let relationship = json!({"id": "r1", "accessDetails": {"unifiedRoles": [{"roleDefinitionId": null}]}});
    assert_eq!(
        only_violation("microsoft.graph.delegatedAdminRelationship", &relationship).path,
        "$.accessDetails.unifiedRoles[0].roleDefinitionId"
    );
}

#[test]
fn odata_type_must_derive_from_the_declared_type() {
    let mut user = valid_user();
    user["manager"] = json!({"@odata.type": "#microsoft.graph.subscribedSku", "id": "x"});
    let violation = only_violation("microsoft.graph.user", &user);
    assert_eq!(violation.path, "$.manager.@odata.type");

    // A derived type unlocks its own properties: mail is on user, not on directoryObject.
    let member = json!({"@odata.type": "#microsoft.graph.user", "id": "u", "mail": "a@b.example"});
    assert_valid("microsoft.graph.directoryObject", &member);
    let untyped = json!({"id": "u", "mail": "a@b.example"});
    assert_eq!(
        only_violation("microsoft.graph.directoryObject", &untyped).path,
        "$.mail"
    );
}

#[test]
fn annotations_are_checked() {
    let mut user = valid_user();
    user["@removed"] = json!({"reason": "gone"});
    assert_eq!(only_violation("microsoft.graph.user", &user).path, "$.@removed");

    let mut user = valid_user();
    user["nickname@odata.navigationLink"] = json!("x");
    assert!(
        only_violation("microsoft.graph.user", &user)
            .message
            .contains("nickname")
    );

    let mut user = valid_user();
    user["displayName@delta"] = json!([]);
    assert!(
        only_violation("microsoft.graph.user", &user)
            .message
            .contains("navigation")
    );
}

#[test]
fn collection_envelopes_are_checked() {
    let schema = graph();
    let page = json!({
        "@odata.context": "https://graph.example/v1.0/$metadata#users",
        "@odata.nextLink": "https://graph.example/v1.0/users?$skiptoken=abc",
        "value": [valid_user(), {"id": "u2", "accountEnabled": 1}]
    });
    let violations = schema.check_collection("microsoft.graph.user", &page);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].path, "$.value[1].accountEnabled");

    let both_links = json!({"value": [], "@odata.nextLink": "a", "@odata.deltaLink": "b"});
    assert_eq!(
        schema.check_collection("microsoft.graph.user", &both_links).len(),
        1
    );

    let no_value = json!({"@odata.context": "x", "items": []});
    let violations = schema.check_collection("microsoft.graph.user", &no_value);
    assert_eq!(violations.len(), 2, "{violations:?}");

    assert_eq!(
        schema.check_collection("microsoft.graph.user", &json!([])).len(),
        1
    );
}

#[test]
fn unknown_type_and_non_objects_are_violations_not_panics() {
    let schema = graph();
    assert_eq!(schema.check("microsoft.graph.nonsense", &json!({})).len(), 1);
    assert_eq!(schema.check("microsoft.graph.user", &json!("a string")).len(), 1);
    assert_eq!(
        schema
            .check("Collection(microsoft.graph.user)", &json!([{"id": 5}]))
            .len(),
        1
    );
}
