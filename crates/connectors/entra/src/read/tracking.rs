//! What a connection's delta queries listen to ("all changes" or "mapped fields only"), the
//! mapped properties a delta cannot track, and links that start tracking from now.

use super::*;

/// User properties a delta query cannot track, and why. In "mapped fields only" mode they are
/// left out of the delta's `$select`; their values still arrive whenever a tracked property of
/// the user changes, because each changed user is fetched afresh with every mapped property.
pub const UNTRACKABLE: &[(&str, &str)] = &[
    (
        "signInActivity",
        "sign-in activity is not returned by delta queries",
    ),
    (
        "licenseAssignmentStates",
        "Graph does not track changes to licenseAssignmentStates",
    ),
    (
        "aboutMe",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "birthday",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "hireDate",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "interests",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "mySite",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "pastProjects",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "preferredName",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "responsibilities",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "schools",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "skills",
        "returned only when one user is read, never by lists or delta queries",
    ),
    (
        "mailboxSettings",
        "returned only when one user is read, never by lists or delta queries",
    ),
];

/// A mapped property a "mapped fields only" delta cannot listen to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UntrackedField {
    pub property: String,
    pub reason: String,
    /// Where the mappings use it.
    pub used_by: Vec<String>,
}

/// What the users and groups delta queries listen to under a connection's sync method.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeltaTracking {
    /// The users delta `$select`; `None` listens to every change ("all changes").
    pub users_select: Option<String>,
    /// The groups delta `$select`; `None` listens to every change.
    pub groups_select: Option<String>,
    pub untracked: Vec<UntrackedField>,
    /// A digest of the mappings the links were taken under: after a mapping change the next
    /// run reads in full, so every user is planned under the new rules, not only those that
    /// happen to change.
    pub mappings_digest: String,
}

impl DeltaTracking {
    /// "All changes": no `$select`, every property and relationship is tracked.
    pub fn all_changes() -> Self {
        Self {
            users_select: None,
            groups_select: None,
            untracked: Vec::new(),
            mappings_digest: String::new(),
        }
    }

    /// "Mapped fields only": the system fields deskbridge always needs plus every property the
    /// field and site mappings read (the manager relationship included when mapped); groups by
    /// name and members only, as the guides describe.
    pub fn mapped_fields_only(property_uses: &BTreeMap<String, Vec<String>>) -> Self {
        let mut select: BTreeSet<&str> = ALWAYS.iter().copied().collect();
        let mut untracked = Vec::new();
        for (property, used_by) in property_uses {
            match UNTRACKABLE.iter().find(|(p, _)| p.eq_ignore_ascii_case(property)) {
                Some((_, reason)) => untracked.push(UntrackedField {
                    property: property.clone(),
                    reason: (*reason).to_owned(),
                    used_by: used_by.clone(),
                }),
                None => {
                    select.insert(property.as_str());
                }
            }
        }
        Self {
            users_select: Some(select.into_iter().collect::<Vec<_>>().join(",")),
            groups_select: Some("displayName,members".into()),
            untracked,
            mappings_digest: String::new(),
        }
    }

    /// Identifies the tracking settings the stored delta links were taken with.
    pub fn fingerprint(&self) -> String {
        format!(
            "users:{};groups:{};mappings:{}",
            self.users_select.as_deref().unwrap_or("*"),
            self.groups_select.as_deref().unwrap_or("*"),
            self.mappings_digest
        )
    }

    fn start(select: Option<&str>, resource: &str) -> String {
        match select {
            Some(select) => format!("/{resource}/delta?$select={select}&$deltatoken=latest"),
            None => format!("/{resource}/delta?$deltatoken=latest"),
        }
    }
}

/// Delta links that start tracking from now (`$deltatoken=latest`) with the given settings, as
/// cursors to store: the users and groups links and the tracking fingerprint.
pub async fn latest_links(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    requests: &mut u64,
) -> Result<Vec<(String, String)>, GraphError> {
    let users = DeltaTracking::start(tracking.users_select.as_deref(), "users");
    let groups = DeltaTracking::start(tracking.groups_select.as_deref(), "groups");
    let (_, users_link) = delta_chain::<Map<String, Value>>(tenant, &users, requests).await?;
    let (_, groups_link) = delta_chain::<Group>(tenant, &groups, requests).await?;
    Ok(vec![
        (USERS_DELTA.into(), users_link),
        (GROUPS_DELTA.into(), groups_link),
        (DELTA_TRACKING.into(), tracking.fingerprint()),
    ])
}
