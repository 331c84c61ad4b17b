//! Graph JSON for directory objects: default properties, `$select`, and the property names the
//! CSDL defines (nothing else is ever emitted).
use serde_json::{Map, Value, json};

use super::{GResult, bad_request};
use crate::world::{Group, MemberRef, ObjectKind, Tenant, User};

pub(crate) const USER_DEFAULT: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// The user properties the world models.
const USER_MODELLED: &[&str] = &[
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "accountEnabled",
    "userType",
    "department",
    "companyName",
    "employeeId",
    "city",
    "country",
    "usageLocation",
    "createdDateTime",
    "onPremisesSyncEnabled",
    "onPremisesImmutableId",
    "onPremisesSamAccountName",
    "assignedLicenses",
    "mailNickname",
    "signInActivity",
    "deletedDateTime",
    "proxyAddresses",
];

/// Properties of `microsoft.graph.user` in the CSDL that the world does not model. `$select`
/// accepts them, as Graph does, and they come back unset: `null`, or `[]` for collections
/// (`securityIdentifier` is derived from the object id, as Entra's is for cloud objects, and
/// `deviceEnrollmentLimit`, not nullable, is 5, one of the two values Graph documents).
/// (The properties Graph serves only on a single user's GET — aboutMe, birthday, skills, … —
/// are [`USER_SINGLE_ONLY`].)
pub(crate) const USER_UNMODELLED: &[&str] = &[
    "authorizationInfo",
    "customSecurityAttributes",
    "passwordProfile",
    "print",
    "ageGroup",
    "consentProvidedForMinor",
    "creationType",
    "deviceEnrollmentLimit",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "identityParentId",
    "isManagementRestricted",
    "isResourceAccount",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier",
    "onPremisesUserPrincipalName",
    "passwordPolicies",
    "postalCode",
    "preferredDataLocation",
    "securityIdentifier",
    "showInAddressList",
    "signInSessionsValidFromDateTime",
    "state",
    "streetAddress",
    "employeeOrgData",
];

/// The collection-valued properties the world does not model (served as `[]`).
pub(crate) const USER_UNMODELLED_COLLECTIONS: &[&str] = &[
    "assignedPlans",
    "identities",
    "imAddresses",
    "licenseAssignmentStates",
    "onPremisesProvisioningErrors",
    "otherMails",
    "provisionedPlans",
    "serviceProvisioningErrors",
];

/// The user properties Graph returns only on a single user's GET (`/users/{id|upn}`, `/me`):
/// selecting one on a collection is refused (MICROSOFT-APIS.md B1, "501 reported").
pub(crate) const USER_SINGLE_ONLY: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mailboxSettings",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
];

/// Every user property `$select` and `$filter` accept on collections: the modelled ones and the
/// unmodelled ones.
pub(crate) static USER_PROPS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    USER_MODELLED
        .iter()
        .chain(USER_UNMODELLED)
        .chain(USER_UNMODELLED_COLLECTIONS)
        .copied()
        .collect()
});

/// What a single user's GET can select: every property of `microsoft.graph.user` (with
/// `directoryObject`'s) in Graph's v1.0 schema.
pub(crate) static USER_SINGLE_PROPS: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| USER_PROPS.iter().chain(USER_SINGLE_ONLY).copied().collect());

pub(crate) const GROUP_DEFAULT: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesSyncEnabled",
    "proxyAddresses",
    "securityEnabled",
    "visibility",
];

/// Every property of `microsoft.graph.group` (with `directoryObject`'s) in Graph's v1.0 schema,
/// in the schema's order: `$select` and `$filter` take any of them. The world models
/// [`GROUP_DEFAULT`]'s; the rest come back as Graph sends them unset: `null`, or `[]` for
/// [`GROUP_COLLECTIONS`] (`securityIdentifier` is derived from the object id, as Entra's is for
/// cloud groups). A test checks the list against the CSDL.
pub(crate) const GROUP_PROPS: &[&str] = &[
    "id",
    "deletedDateTime",
    "accessType",
    "allowExternalSenders",
    "assignedLabels",
    "assignedLicenses",
    "autoSubscribeNewMembers",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "hasMembersWithLicenseErrors",
    "hideFromAddressLists",
    "hideFromOutlookClients",
    "infoCatalogs",
    "isArchived",
    "isAssignableToRole",
    "isFavorite",
    "isManagementRestricted",
    "isSubscribedByMail",
    "licenseProcessingState",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesExtensionAttributes",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesProvisioningErrors",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "organizationId",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "serviceProvisioningErrors",
    "theme",
    "uniqueName",
    "unseenConversationsCount",
    "unseenCount",
    "unseenMessagesCount",
    "visibility",
    "welcomeMessageEnabled",
];

/// The group properties the schema declares as collections (unset: `[]`).
pub(crate) const GROUP_COLLECTIONS: &[&str] = &[
    "assignedLabels",
    "assignedLicenses",
    "groupTypes",
    "infoCatalogs",
    "onPremisesProvisioningErrors",
    "proxyAddresses",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "serviceProvisioningErrors",
];

/// A parsed `$select`: `None` means the type's default properties.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection(pub Option<Vec<String>>);

impl Selection {
    pub(crate) fn parse(
        raw: Option<&str>,
        allowed: &[&str],
        extra: &[&str],
        type_name: &str,
    ) -> GResult<Self> {
        let Some(raw) = raw else { return Ok(Self(None)) };
        let mut props = Vec::new();
        for p in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let known = allowed.iter().chain(extra).find(|a| a.eq_ignore_ascii_case(p));
            match known {
                Some(name) => {
                    if !props.iter().any(|x: &String| x == name) {
                        props.push((*name).to_owned());
                    }
                }
                None if type_name == "user" && USER_SINGLE_ONLY.iter().any(|a| a.eq_ignore_ascii_case(p)) => {
                    return Err(single_only(p));
                }
                None => {
                    return Err(bad_request(format!(
                        "Could not find a property named '{p}' on type 'microsoft.graph.{type_name}'."
                    )));
                }
            }
        }
        Ok(Self(Some(props)))
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|p| p.iter().any(|x| x.eq_ignore_ascii_case(name)))
    }

    pub(crate) fn names<'a>(&'a self, defaults: &'a [&'a str]) -> Vec<&'a str> {
        match &self.0 {
            Some(p) => p.iter().map(String::as_str).collect(),
            None => defaults.to_vec(),
        }
    }

    /// `users(id,displayName)` style context suffix.
    pub(crate) fn context_suffix(&self) -> String {
        match &self.0 {
            Some(p) => format!("({})", p.join(",")),
            None => String::new(),
        }
    }
}

/// A property only a single user's GET returns, selected on a collection: 501, as reported of
/// Graph (MICROSOFT-APIS.md B1); code and message are the emulator's choice (not verified).
fn single_only(property: &str) -> super::GraphError {
    super::err(
        http::StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        format!(
            "The property '{property}' is only returned when a single user is requested (GET /users/{{id | userPrincipalName}})."
        ),
    )
}

/// Entra's security identifier of a cloud object: `S-1-12-1-` and the object id's 16 bytes (in
/// the GUID's little-endian byte order) as four 32-bit numbers. Objects synced from on-premises
/// carry their directory's SID instead, which the world does not hold: `null`.
fn cloud_sid(id: &str, synced: Option<bool>) -> Value {
    if synced == Some(true) {
        return Value::Null;
    }
    let Ok(uuid) = uuid::Uuid::parse_str(id) else {
        return Value::Null;
    };
    let bytes = uuid.to_bytes_le();
    let parts: Vec<String> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(<[u8; 4]>::try_from(c).unwrap_or_default()).to_string())
        .collect();
    Value::String(format!("S-1-12-1-{}", parts.join("-")))
}

fn opt_str<S: AsRef<str>>(v: &Option<S>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |s| Value::String(s.as_ref().to_owned()))
}

fn ts(v: Option<jiff::Timestamp>) -> Value {
    v.map_or(Value::Null, |t| {
        Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    })
}

pub(crate) fn user_prop(u: &User, name: &str) -> Option<Value> {
    Some(match name {
        "id" => Value::String(u.id.clone()),
        "businessPhones" => json!(u.business_phones),
        "displayName" => opt_str(&u.display_name),
        "givenName" => opt_str(&u.given_name),
        "jobTitle" => opt_str(&u.job_title),
        "mail" => opt_str(&u.mail),
        "mobilePhone" => opt_str(&u.mobile_phone),
        "officeLocation" => opt_str(&u.office_location),
        "preferredLanguage" => opt_str(&u.preferred_language),
        "surname" => opt_str(&u.surname),
        "userPrincipalName" => Value::String(u.user_principal_name.clone()),
        "accountEnabled" => Value::Bool(u.account_enabled),
        "userType" => Value::String(u.user_type.clone()),
        "department" => opt_str(&u.department),
        "companyName" => opt_str(&u.company_name),
        "employeeId" => opt_str(&u.employee_id),
        "city" => opt_str(&u.city),
        "country" => opt_str(&u.country),
        "usageLocation" => opt_str(&u.usage_location),
        "createdDateTime" => ts(u.created_date_time),
        "onPremisesSyncEnabled" => u.on_premises_sync_enabled.map_or(Value::Null, Value::Bool),
        "onPremisesImmutableId" => opt_str(&u.on_premises_immutable_id),
        "onPremisesSamAccountName" => opt_str(&u.on_premises_sam_account_name),
        "assignedLicenses" => Value::Array(
            u.assigned_licenses
                .iter()
                .map(|l| json!({"disabledPlans": l.disabled_plans, "skuId": l.sku_id}))
                .collect(),
        ),
        "mailNickname" => opt_str(&u.mail_nickname),
        "signInActivity" => match &u.sign_in_activity {
            Some(s) => json!({
                "lastSignInDateTime": ts(s.last_sign_in_date_time),
                "lastSignInRequestId": s.last_sign_in_date_time.map(|_| request_id_for(&u.id, 1)),
                "lastNonInteractiveSignInDateTime": ts(s.last_non_interactive_sign_in_date_time),
                "lastNonInteractiveSignInRequestId":
                    s.last_non_interactive_sign_in_date_time.map(|_| request_id_for(&u.id, 2)),
                "lastSuccessfulSignInDateTime": ts(s.last_successful_sign_in_date_time),
                "lastSuccessfulSignInRequestId": s.last_successful_sign_in_date_time.map(|_| request_id_for(&u.id, 3)),
            }),
            None => Value::Null,
        },
        "deletedDateTime" => ts(u.deleted_date_time),
        "proxyAddresses" => match &u.mail {
            Some(m) if u.user_type == "Member" => json!([format!("SMTP:{m}")]),
            _ => json!([]),
        },
        "securityIdentifier" => cloud_sid(&u.id, u.on_premises_sync_enabled),
        "deviceEnrollmentLimit" => json!(5),
        // Not nullable in the schema; Graph's unset date.
        "birthday" | "hireDate" => json!("0001-01-01T00:00:00Z"),
        "interests" | "pastProjects" | "responsibilities" | "schools" | "skills" => json!([]),
        other if USER_UNMODELLED_COLLECTIONS.contains(&other) => json!([]),
        other if USER_UNMODELLED.contains(&other) || USER_SINGLE_ONLY.contains(&other) => Value::Null,
        _ => return None,
    })
}

fn request_id_for(id: &str, n: u8) -> String {
    let mut bytes = [0u8; 16];
    for (i, b) in id.bytes().enumerate() {
        bytes[i % 16] ^= b.wrapping_add(n);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

pub(crate) fn render_user(u: &User, sel: &Selection) -> Map<String, Value> {
    let mut map = Map::new();
    for name in sel.names(USER_DEFAULT) {
        if let Some(v) = user_prop(u, name) {
            map.insert(name.to_owned(), v);
        }
    }
    map
}

pub(crate) fn group_prop(g: &Group, name: &str) -> Option<Value> {
    Some(match name {
        "id" => Value::String(g.id.clone()),
        "deletedDateTime" => ts(g.deleted_date_time),
        "classification" => Value::Null,
        "createdDateTime" => ts(g.created_date_time),
        "description" => opt_str(&g.description),
        "displayName" => Value::String(g.display_name.clone()),
        "groupTypes" => json!(g.group_types),
        "mail" => opt_str(&g.mail),
        "mailEnabled" => Value::Bool(g.mail_enabled),
        "mailNickname" => Value::String(g.mail_nickname.clone()),
        "membershipRule" => opt_str(&g.membership_rule),
        "membershipRuleProcessingState" => opt_str(&g.membership_rule_processing_state),
        "onPremisesSyncEnabled" => g.on_premises_sync_enabled.map_or(Value::Null, Value::Bool),
        "proxyAddresses" => match &g.mail {
            Some(m) => json!([format!("SMTP:{m}")]),
            None => json!([]),
        },
        "securityEnabled" => Value::Bool(g.security_enabled),
        "visibility" => opt_str(&g.visibility),
        "securityIdentifier" => cloud_sid(&g.id, g.on_premises_sync_enabled),
        other if GROUP_COLLECTIONS.contains(&other) => json!([]),
        other if GROUP_PROPS.contains(&other) => Value::Null,
        _ => return None,
    })
}

pub(crate) fn render_group(g: &Group, sel: &Selection) -> Map<String, Value> {
    let mut map = Map::new();
    for name in sel.names(GROUP_DEFAULT) {
        if let Some(v) = group_prop(g, name) {
            map.insert(name.to_owned(), v);
        }
    }
    map
}

/// A directory object in a mixed collection (members, memberOf): `@odata.type` first.
pub(crate) fn render_member(t: &Tenant, m: &MemberRef, sel: &Selection) -> Option<Value> {
    let mut map = Map::new();
    map.insert("@odata.type".into(), Value::String(m.kind.odata_type().into()));
    match m.kind {
        ObjectKind::User => map.extend(render_user(t.user(&m.id)?, sel)),
        ObjectKind::Group => map.extend(render_group(t.group(&m.id)?, sel)),
        _ => {
            map.insert("id".into(), Value::String(m.id.clone()));
            map.insert("displayName".into(), opt_str(&m.display_name));
        }
    }
    Some(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Structural properties of a type in Graph's published schema (read at test time), as
    /// (name, is a collection): navigation properties, whose type is an entity, left out.
    fn schema_properties(type_name: &str) -> BTreeSet<(String, bool)> {
        let schema = deskbridge_csdl::Schema::load(deskbridge_csdl::default_metadata_path()).unwrap();
        schema
            .property_names(type_name)
            .unwrap()
            .into_iter()
            .filter_map(|name| {
                let declared = schema.property_type(type_name, &name)?;
                let (collection, element) = match declared
                    .strip_prefix("Collection(")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    Some(inner) => (true, inner.to_owned()),
                    None => (false, declared),
                };
                (!schema.derives_from(&element, "microsoft.graph.entity")).then_some((name, collection))
            })
            .collect()
    }

    #[test]
    fn group_properties_are_the_schemas() {
        let ours: BTreeSet<(String, bool)> = GROUP_PROPS
            .iter()
            .map(|p| ((*p).to_owned(), GROUP_COLLECTIONS.contains(p)))
            .collect();
        assert_eq!(ours.len(), GROUP_PROPS.len(), "no name twice");
        assert_eq!(ours, schema_properties("microsoft.graph.group"));
        assert!(GROUP_DEFAULT.iter().all(|p| GROUP_PROPS.contains(p)));
    }

    #[test]
    fn user_properties_are_the_schemas() {
        let ours: BTreeSet<String> = USER_SINGLE_PROPS.iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(ours.len(), USER_SINGLE_PROPS.len(), "no name twice");
        let schema = schema_properties("microsoft.graph.user");
        let names: BTreeSet<String> = schema.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(ours, names);
        // Collections come back as [] when unset, everything else as null (or Graph's value for
        // the few that are not nullable).
        let user: User = serde_json::from_value(json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "userPrincipalName": "a@example.test",
            "accountEnabled": true,
            "userType": "Member",
        }))
        .unwrap();
        for (name, collection) in &schema {
            let v = user_prop(&user, name).unwrap();
            assert_eq!(v.is_array(), *collection, "{name}: {v}");
        }
    }

    #[test]
    fn cloud_sids_are_entras() {
        // The usual published example of the conversion (object id → SID).
        assert_eq!(
            cloud_sid("73d664e4-0886-4a73-b745-c694da45ddb4", None),
            json!("S-1-12-1-1943430372-1249052806-2496021943-3034400218")
        );
        assert_eq!(
            cloud_sid("73d664e4-0886-4a73-b745-c694da45ddb4", Some(true)),
            Value::Null
        );
        assert_eq!(cloud_sid("not a guid", None), Value::Null);
    }
}
