#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use deskbridge_core::RecordId;
use deskbridge_mapping::*;
use serde_json::json;

fn rejected(config: &MappingConfig) -> Vec<String> {
    match validate(config, &catalog()) {
        Ok(_) => panic!("the configuration was accepted"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn with_mapping(change: impl FnOnce(&mut SiteMapping)) -> MappingConfig {
    let mut config = config();
    change(&mut config.site_mappings[1]);
    config
}

#[test]
fn the_realistic_configuration_is_accepted_and_ordered_by_sequence() {
    let validated = validated(&config());
    let select = validated.source_properties();
    for property in [
        "officeLocation",
        "city",
        "department",
        "manager",
        "displayName",
        "accountEnabled",
        "assignedLicenses",
    ] {
        assert!(select.contains(property), "{property} missing from {select:?}");
    }
    assert!(validated.uses_groups());
}

#[test]
fn generated_configuration_is_valid() {
    let config = MappingConfig::generated(RecordId(10));
    let validated = validated(&config);
    assert!(!validated.uses_groups());
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["version"], json!(1));
    assert_eq!(
        json["site_mappings"][0]["target"],
        json!({"kind": "existing_site", "site_id": 10})
    );
    let back: MappingConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);
}

#[test]
fn an_old_small_document_loads_with_defaults() {
    let config: MappingConfig = serde_json::from_value(json!({
        "version": 1,
        "user_fields": [{"source": {"property": "mail"}, "target": "email"}],
        "site_mappings": [{"id": 1, "name": "All", "target": {"kind": "existing_site", "site_id": 10}}]
    }))
    .unwrap();
    assert_eq!(config.circuit_breaker.max_deactivate_percent, 20.0);
    assert_eq!(config.circuit_breaker.max_change_percent, 30.0);
    assert_eq!(config.followers.member_cap, 100);
    assert_eq!(config.site_mappings[0].sequence, 50);
    assert_eq!(
        config.imports.match_order,
        vec![MatchField::Email, MatchField::NetworkLogin]
    );
    let unknown_key = serde_json::from_value::<MappingConfig>(json!({"user_feilds": []})).unwrap_err();
    assert!(
        unknown_key.to_string().contains("unknown field `user_feilds`"),
        "{unknown_key}"
    );
}

#[test]
fn unknown_group() {
    let config = with_mapping(|m| {
        m.group = Some(GroupFilter {
            name: "Loc-Londn".into(),
            nested: false,
        })
    });
    assert_eq!(
        rejected(&config),
        vec!["site mapping #2 'London staff': unknown Azure group 'Loc-Londn'"]
    );
    let errors = validate(&config, &catalog()).unwrap_err();
    assert_eq!(
        deskbridge_core::HasErrorCode::error_code(&errors[0]),
        deskbridge_core::ErrorCode::InvalidConfiguration
    );
    assert_eq!(
        serde_json::to_value(&errors[0]).unwrap()["location"],
        json!("site mapping #2 'London staff'")
    );
    let config = with_mapping(|m| {
        m.group = Some(GroupFilter {
            name: "loc-london".into(),
            nested: false,
        })
    });
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #2 'London staff': unknown Azure group 'loc-london' (group names must match exactly: 'Loc-London'?)"
        ]
    );
}

#[test]
fn filter_that_does_not_parse_names_the_column() {
    let config = with_mapping(|m| m.filter = Some("(department eq 'Sales'".into()));
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #2 'London staff': the filter does not parse: expected ')' at column 23, found end of input"
        ]
    );
}

#[test]
fn filter_on_unknown_property() {
    let config = with_mapping(|m| m.filter = Some("officeLocaton eq 'London'".into()));
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #2 'London staff': the filter uses an unknown Graph user property 'officeLocaton' (did you mean 'officeLocation'?)"
        ]
    );
}

#[test]
fn unknown_graph_field_and_desk_field() {
    let mut config = config();
    config
        .user_fields
        .push(FieldMapping::property("favouriteColour", "custom:Tier"));
    config
        .user_fields
        .push(FieldMapping::property("jobTitle", "shoe_size"));
    config
        .user_fields
        .push(FieldMapping::property("jobTitle", "custom:Nickname"));
    assert_eq!(
        rejected(&config),
        vec![
            "user field mapping #13 (favouriteColour → custom:Tier): unknown Graph user property 'favouriteColour'",
            "user field mapping #14 (jobTitle → shoe_size): unknown desk user field 'shoe_size'",
            "user field mapping #15 (jobTitle → custom:Nickname): unknown user custom field 'Nickname'",
        ]
    );
}

#[test]
fn type_mismatches() {
    let mut config = config();
    config
        .user_fields
        .push(FieldMapping::property("displayName", "custom:IsVip"));
    config
        .user_fields
        .push(FieldMapping::property("department", "custom:StartDate"));
    config
        .user_fields
        .push(FieldMapping::property("businessPhones", "custom:Tier"));
    config.user_fields.push(FieldMapping {
        source: FieldSource::Template("{givenName} {surname}".into()),
        target: "last_sign_in".into(),
    });
    assert_eq!(
        rejected(&config),
        vec![
            "user field mapping #13 (displayName → custom:IsVip): type mismatch: source property 'displayName' is text, the user field 'custom:IsVip' is boolean",
            "user field mapping #14 (department → custom:StartDate): type mismatch: source property 'department' is text, the user field 'custom:StartDate' is date",
            "user field mapping #15 (businessPhones → custom:Tier): type mismatch: source property 'businessPhones' is text collection, the user field 'custom:Tier' is single select",
            "user field mapping #16 (\"{givenName} {surname}\" → last_sign_in): a template gives text, which cannot fill the user field 'last_sign_in' (date)",
        ]
    );
}

#[test]
fn compatible_types_are_accepted() {
    let mut config = config();
    config
        .user_fields
        .push(FieldMapping::property("accountEnabled", "custom:IsVip"));
    config
        .user_fields
        .push(FieldMapping::property("employeeHireDate", "custom:StartDate"));
    config.user_fields.push(FieldMapping::property(
        "signInActivity/lastSignInDateTime",
        "last_sign_in",
    ));
    config
        .user_fields
        .push(FieldMapping::property("employeeType", "custom:Tier"));
    validated(&config);
}

#[test]
fn duplicate_target_field() {
    let mut config = config();
    config
        .user_fields
        .push(FieldMapping::property("otherMails", "email"));
    config
        .agent_fields
        .push(FieldMapping::property("companyName", "default_team_id"));
    assert_eq!(
        rejected(&config),
        vec![
            "user field mapping #13 (otherMails → email): the user field 'email' is already mapped by user field mapping #4; each field can be mapped once",
            "agent field mapping #9 (companyName → default_team_id): the agent field 'default_team_id' is already mapped by agent field mapping #8; each field can be mapped once",
        ]
    );
}

#[test]
fn line_manager_only_from_manager() {
    let mut config = config();
    config.user_fields.retain(|f| f.target != "line_manager_id");
    config
        .user_fields
        .push(FieldMapping::property("department", "line_manager_id"));
    config
        .agent_fields
        .push(FieldMapping::property("manager", "department"));
    assert_eq!(
        rejected(&config),
        vec![
            "user field mapping #12 (department → line_manager_id): line_manager_id can only be mapped from 'manager', not from 'department'",
            "agent field mapping #9 (manager → department): the agent field 'department' is already mapped by agent field mapping #6; each field can be mapped once",
        ]
    );
    let mut config = super_config_without_agent_department();
    config
        .agent_fields
        .push(FieldMapping::property("manager", "department"));
    assert_eq!(
        rejected(&config),
        vec![
            "agent field mapping #8 (manager → department): 'manager' can only be mapped to line_manager_id, not to 'department'"
        ]
    );
}

fn super_config_without_agent_department() -> MappingConfig {
    let mut config = config();
    config.agent_fields.retain(|f| f.target != "department");
    config
}

#[test]
fn engine_owned_fields_cannot_be_mapped() {
    let mut config = config();
    config
        .user_fields
        .push(FieldMapping::property("id", "azure_object_id"));
    assert_eq!(
        rejected(&config),
        vec![
            "user field mapping #13 (id → azure_object_id): 'azure_object_id' is set by deskbridge itself and cannot be mapped"
        ]
    );
}

#[test]
fn references_to_records_that_do_not_exist() {
    let mut config = config();
    config.site_mappings[1].target = SiteTarget::ExistingSite {
        site_id: RecordId(99),
    };
    config.site_mappings[1].user_role_id = Some(RecordId(42));
    config.site_mappings[3].target = SiteTarget::CustomerByField {
        customer_id: RecordId(5),
        field: "city".into(),
    };
    config.advanced.agent_roles[0].id = RecordId(77);
    config.advanced.teams[0].id = RecordId(8);
    config.advanced.cabs[0].cab_id = RecordId(9);
    config.advanced.cabs[0].cab_role_id = Some(RecordId(6));
    config.advanced.role_for_users_without_manager = Some(RecordId(31));
    config.licence_management.inactive_roles = vec![RecordId(12)];
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #2 'London staff': site 99 does not exist",
            "site mapping #2 'London staff': user role 42 does not exist",
            "site mapping #4 'Everyone else': customer 5 does not exist",
            "agent role mapping #1 (group 'IT Service Desk'): agent role 77 does not exist",
            "team mapping #1 (group 'IT Change'): team 8 does not exist",
            "CAB mapping #1 (group 'IT Change'): CAB 9 does not exist",
            "CAB mapping #1 (group 'IT Change'): CAB role 6 does not exist",
            "role for users with no manager: user role 31 does not exist",
            "licence management: agent role 12 does not exist",
        ]
    );
}

#[test]
fn match_site_field_problems() {
    let mut config = config();
    config.site_mappings[2].target = SiteTarget::MatchSiteField {
        customer_id: None,
        site_field: "postcode".into(),
        user_field: "custom:StartDate".into(),
        unmatched: UnmatchedSite::DefaultSite {
            site_id: RecordId(404),
        },
    };
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #3 'Offices by code': sites can be matched on 'name' or a custom field, not 'postcode'",
            "site mapping #3 'Offices by code': the user field 'custom:StartDate' is not filled by any user field mapping, so no site can match it",
            "site mapping #3 'Offices by code': site 404 does not exist",
        ]
    );
}

#[test]
fn values_to_apply_are_typed() {
    let config = with_mapping(|m| {
        m.values.insert("custom:IsVip".into(), json!("maybe"));
        m.values.insert("custom:Tier".into(), json!("Bronze"));
        m.values.insert("line_manager_id".into(), json!(3));
    });
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #2 'London staff', value for 'custom:IsVip': received text \"maybe\", expected a boolean (true or false)",
            "site mapping #2 'London staff', value for 'custom:Tier': \"Bronze\" is not one of the options (Gold, Silver)",
            "site mapping #2 'London staff', value for 'line_manager_id': 'line_manager_id' cannot be given a fixed value",
        ]
    );
}

#[test]
fn site_named_from_a_non_text_property() {
    let mut config = config();
    config.site_mappings[3].target = SiteTarget::CustomerByField {
        customer_id: RecordId(1),
        field: "accountEnabled".into(),
    };
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #4 'Everyone else': sites are named from text, but source property 'accountEnabled' is boolean"
        ]
    );
}

#[test]
fn imports_breaker_and_service_accounts() {
    let mut config = config();
    config.imports.match_order = vec![MatchField::Email, MatchField::Email];
    config.user_fields.retain(|f| f.target != "network_login");
    config.imports.match_order.push(MatchField::NetworkLogin);
    config.circuit_breaker.max_deactivate_percent = 0.0;
    config.circuit_breaker.max_change_percent = 150.0;
    config.followers.member_cap = 0;
    config.service_accounts = Some(ServiceAccounts {
        group: Some("Contractors".into()),
        required_skus: vec!["E3".into()],
    });
    config.site_mappings[1].id = 1;
    assert_eq!(
        rejected(&config),
        vec![
            "site mapping #1 'London staff': the id 1 is used by another site mapping",
            "service accounts: unknown Azure group 'Contractors'",
            "service accounts: 'E3' is not a SKU id (a GUID)",
            "user matching: 'email' appears twice in the matching order",
            "user matching: matching on 'network_login' needs a user field mapping to 'network_login'",
            "circuit breaker: the share of active records a run may have deactivated must be more than 0 and at most 100 percent, not 0",
            "circuit breaker: the share of active records a run may have moved or changed must be more than 0 and at most 100 percent, not 150",
            "distribution group followers: the member cap must be at least 1",
        ]
    );
}

#[test]
fn newer_version_and_agent_site_misuse() {
    let mut config = config();
    config.version = 9;
    config.site_mappings[0].user_role_id = Some(RecordId(1));
    assert_eq!(
        rejected(&config),
        vec![
            "configuration: version 9 was written by a newer deskbridge (this one reads up to 1)",
            "site mapping #1 'Service desk agents': the agent site gives agent roles through group mappings, not a user role",
        ]
    );
}

#[test]
fn field_lock_on_unknown_field() {
    let mut config = config();
    config.field_locks = vec![
        FieldLock {
            entity: RecordKind::User,
            field: "phone".into(),
        },
        FieldLock {
            entity: RecordKind::Agent,
            field: "active".into(),
        },
        FieldLock {
            entity: RecordKind::User,
            field: "fax".into(),
        },
    ];
    assert_eq!(
        rejected(&config),
        vec!["field lock on user 'fax': unknown desk user field 'fax'"]
    );
}

#[test]
fn record_lock_problems() {
    let mut config = config();
    config.record_locks = vec![
        RecordLock {
            entity: RecordKind::User,
            external_id: " ".into(),
            keep_active: true,
            fields: vec![],
        },
        RecordLock {
            entity: RecordKind::Agent,
            external_id: "abc".into(),
            keep_active: false,
            fields: vec![],
        },
        RecordLock {
            entity: RecordKind::User,
            external_id: "def".into(),
            keep_active: false,
            fields: vec!["shoe".into(), "custom:Nope".into(), "active".into()],
        },
    ];
    assert_eq!(
        rejected(&config),
        vec![
            "record lock on user  : name the record by its Azure object id",
            "record lock on agent abc: the lock neither keeps the record active nor names a field",
            "record lock on user def: unknown desk user field 'shoe'",
            "record lock on user def: unknown desk user field 'custom:Nope'",
        ]
    );
}

#[test]
fn the_readme_example_is_a_valid_configuration() {
    let readme = include_str!("../README.md");
    let start = readme.find("```json").unwrap() + "```json".len();
    let end = start + readme[start..].find("```").unwrap();
    let config: MappingConfig = serde_json::from_str(&readme[start..end]).unwrap();
    let validated = validated(&config);
    assert_eq!(validated.config().site_mappings.len(), 4);
    assert!(validated.source_properties().contains("city"));
}
