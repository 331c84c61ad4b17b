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

    /// A delta query without a token: the first round, which reports every object.
    fn fresh(select: Option<&str>, resource: &str) -> String {
        match select {
            Some(select) => format!("/{resource}/delta?$select={select}"),
            None => format!("/{resource}/delta"),
        }
    }

    fn start(select: Option<&str>, resource: &str) -> String {
        match select {
            Some(select) => format!("/{resource}/delta?$select={select}&$deltatoken=latest"),
            None => format!("/{resource}/delta?$deltatoken=latest"),
        }
    }
}

/// Where the delta links a full read stores start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaStart {
    /// From now (`$deltatoken=latest`), without paging the tenant; a service that refuses
    /// `latest` gets a fresh round instead.
    Latest,
    /// A fresh round after Graph asked for a resync (410, `resyncRequired`, `syncStateNotFound`,
    /// `syncStateInvalid`), as Microsoft documents it: per resource, from the `Location` Graph
    /// gave (only one on the connection's Graph host that is that resource's delta query), else a
    /// delta query without a token. `$deltatoken=latest` is not used.
    Resync {
        users: Option<String>,
        groups: Option<String>,
    },
}

impl DeltaStart {
    /// The restart after the resync `error`: Graph's `Location`, kept for the resource whose
    /// delta query it is when it is on the tenant's Graph host. The second value says why a
    /// `Location` was set aside, if one was.
    pub fn after_resync(tenant: &GraphTenant, error: &GraphError) -> (Self, Option<String>) {
        let Some(location) = error.api().and_then(|api| api.location.as_deref()).map(str::trim) else {
            return (
                DeltaStart::Resync {
                    users: None,
                    groups: None,
                },
                None,
            );
        };
        let path = location
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_ascii_lowercase();
        let resource = if path.ends_with("/users/delta") {
            Some("users")
        } else if path.ends_with("/groups/delta") {
            Some("groups")
        } else {
            None
        };
        match resource {
            Some(resource) if tenant.is_graph_link(location) => {
                let kept = Some(location.to_owned());
                let start = if resource == "users" {
                    DeltaStart::Resync {
                        users: kept,
                        groups: None,
                    }
                } else {
                    DeltaStart::Resync {
                        users: None,
                        groups: kept,
                    }
                };
                (start, None)
            }
            _ => (
                DeltaStart::Resync {
                    users: None,
                    groups: None,
                },
                Some(format!(
                    "the Location Graph gave with the resync ({}) is not a users or groups delta query on the \
                     connection's Graph host, so it was not followed; a delta query without a token starts the \
                     fresh round instead",
                    deskbridge_core::redact::url(location)
                )),
            ),
        }
    }

    /// Whether the links start from a resync (for messages).
    pub fn is_resync(&self) -> bool {
        matches!(self, DeltaStart::Resync { .. })
    }
}

/// Delta links that start tracking from now (`$deltatoken=latest`) with the given settings, as
/// cursors to store: the users and groups links and the tracking fingerprint. A service that
/// refuses `latest` (400, or a resync) gets a fresh round without a token instead.
pub async fn latest_links(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    requests: &mut u64,
) -> Result<Vec<(String, String)>, GraphError> {
    start_links(tenant, tracking, &DeltaStart::Latest, requests).await
}

/// Delta links to store from `start`, with the tracking fingerprint.
pub async fn start_links(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    start: &DeltaStart,
    requests: &mut u64,
) -> Result<Vec<(String, String)>, GraphError> {
    let (users_link, groups_link) = match start {
        DeltaStart::Latest => match latest_pair(tenant, tracking, requests).await {
            Ok(pair) => pair,
            Err(e) if e.class() == Some(GraphErrorClass::BadRequest) || e.is_resync_required() => {
                fresh_pair(tenant, tracking, None, None, requests).await?
            }
            Err(e) => return Err(e),
        },
        DeltaStart::Resync { users, groups } => {
            fresh_pair(tenant, tracking, users.as_deref(), groups.as_deref(), requests).await?
        }
    };
    Ok(vec![
        (USERS_DELTA.into(), users_link),
        (GROUPS_DELTA.into(), groups_link),
        (DELTA_TRACKING.into(), tracking.fingerprint()),
    ])
}

async fn latest_pair(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    requests: &mut u64,
) -> Result<(String, String), GraphError> {
    let users = DeltaTracking::start(tracking.users_select.as_deref(), "users");
    let groups = DeltaTracking::start(tracking.groups_select.as_deref(), "groups");
    let (_, users_link) = delta_chain::<Map<String, Value>>(tenant, &users, requests).await?;
    let (_, groups_link) = delta_chain::<Group>(tenant, &groups, requests).await?;
    Ok((users_link, groups_link))
}

/// A fresh round of each resource, from `users` / `groups` (a `Location`) or a delta query
/// without a token, followed to its deltaLink a page at a time (the pages are not kept: the full
/// read lists the tenant itself).
async fn fresh_pair(
    tenant: &GraphTenant,
    tracking: &DeltaTracking,
    users: Option<&str>,
    groups: Option<&str>,
    requests: &mut u64,
) -> Result<(String, String), GraphError> {
    let users_link = fresh_link(tenant, users, tracking.users_select.as_deref(), "users", requests).await?;
    let groups_link = fresh_link(
        tenant,
        groups,
        tracking.groups_select.as_deref(),
        "groups",
        requests,
    )
    .await?;
    Ok((users_link, groups_link))
}

/// One resource's fresh round: from Graph's `Location` when given; a `Location` that is refused
/// in turn (another resync) gives way to a delta query without a token, so a bad `Location`
/// cannot keep the connection from ever importing.
async fn fresh_link(
    tenant: &GraphTenant,
    location: Option<&str>,
    select: Option<&str>,
    resource: &str,
    requests: &mut u64,
) -> Result<String, GraphError> {
    let tokenless = DeltaTracking::fresh(select, resource);
    match location {
        Some(location) => match delta_link_of(tenant, location, requests).await {
            Err(e) if e.is_resync_required() => delta_link_of(tenant, &tokenless, requests).await,
            other => other,
        },
        None => delta_link_of(tenant, &tokenless, requests).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deskbridge_graph::{GraphApiError, GraphClient, GraphConfig};
    use deskbridge_msauth::{AccessToken, AuthError, BoxFuture, TokenProvider};

    use super::*;

    /// Never asked: working out the restart sends nothing.
    #[derive(Debug)]
    struct NoTokens;

    impl TokenProvider for NoTokens {
        fn access_token<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<AccessToken, AuthError>> {
            Box::pin(async { Err(AuthError::Configuration("no tokens in this test".into())) })
        }

        fn invalidate<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async {})
        }
    }

    fn gone(location: Option<&str>) -> GraphError {
        let mut api = GraphApiError {
            status: 410,
            code: "resyncRequired".into(),
            message: "Resync required.".into(),
            request_id: None,
            client_request_id: None,
            date: None,
            request: "GET /v1.0/users/delta?$deltatoken=REDACTED".into(),
            retry_after: None,
            location: None,
            class: GraphErrorClass::ResyncRequired,
        };
        api.location = location.map(str::to_owned);
        GraphError::Api(Box::new(api))
    }

    #[test]
    fn a_resync_follows_a_location_on_the_graph_host_only() {
        let client = GraphClient::new(
            reqwest::Client::new(),
            GraphConfig::default(),
            Arc::new(deskbridge_core::SystemClock),
        )
        .unwrap();
        let tenant = client.tenant("t", Arc::new(NoTokens));
        let own = "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=";
        assert_eq!(
            DeltaStart::after_resync(&tenant, &gone(Some(own))),
            (
                DeltaStart::Resync {
                    users: Some(own.into()),
                    groups: None
                },
                None
            )
        );
        let groups = "/v1.0/groups/delta?$deltatoken=";
        assert_eq!(
            DeltaStart::after_resync(&tenant, &gone(Some(groups))).0,
            DeltaStart::Resync {
                users: None,
                groups: Some(groups.into())
            }
        );
        let fresh = DeltaStart::Resync {
            users: None,
            groups: None,
        };
        for elsewhere in [
            "https://graph.microsoft.com.evil.example/v1.0/users/delta?$deltatoken=",
            "http://graph.microsoft.com/v1.0/users/delta?$deltatoken=",
            "https://graph.microsoft.com/v1.0/users?$select=id",
        ] {
            let (start, note) = DeltaStart::after_resync(&tenant, &gone(Some(elsewhere)));
            assert_eq!(start, fresh, "{elsewhere}");
            assert!(note.is_some_and(|n| n.contains("not followed")), "{elsewhere}");
        }
        assert_eq!(DeltaStart::after_resync(&tenant, &gone(None)), (fresh, None));
    }
}
