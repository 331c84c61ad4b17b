//! Distribution groups as ticket followers, in the guides' two modes.

use deskbridge_core::ConnectionId;
use serde::{Deserialize, Serialize};

use crate::config::{FollowerMode, FollowerOptions};
use crate::input::DeskSnapshot;

/// A distribution group as read from the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionGroup {
    pub name: String,
    pub mail: Option<String>,
    /// In the source's order; the member cap keeps the first ones.
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member's external id in the source (Entra: the object id).
    #[serde(alias = "object_id")]
    pub external_id: String,
    pub mail: Option<String>,
}

/// The followers to add to a ticket: `user:<desk id>` or `email:<address>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerPlan {
    pub followers: Vec<String>,
    /// Members not added because of the cap.
    pub over_cap: usize,
    /// Members with neither a desk user nor an email address.
    pub unreachable: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowerError {
    #[error("distribution groups as ticket followers are not enabled for this connection")]
    Disabled,
    #[error("the group '{0}' has no email address, so it cannot follow as a list")]
    NoAddress(String),
}

impl deskbridge_core::HasErrorCode for FollowerError {
    fn error_code(&self) -> deskbridge_core::ErrorCode {
        match self {
            Self::Disabled => deskbridge_core::ErrorCode::InvalidConfiguration,
            Self::NoAddress(_) => deskbridge_core::ErrorCode::InvalidInput,
        }
    }
}

/// What adding `group` as followers of a ticket adds, per the configured mode.
pub fn followers_for_group(
    options: &FollowerOptions,
    group: &DistributionGroup,
    snapshot: &DeskSnapshot,
    connection_id: ConnectionId,
) -> Result<FollowerPlan, FollowerError> {
    if !options.enabled {
        return Err(FollowerError::Disabled);
    }
    match options.mode {
        FollowerMode::GroupAddress => {
            let mail = group
                .mail
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| FollowerError::NoAddress(group.name.clone()))?;
            Ok(FollowerPlan {
                followers: vec![format!("email:{mail}")],
                over_cap: 0,
                unreachable: 0,
            })
        }
        FollowerMode::Members => {
            let cap = usize::try_from(options.member_cap).unwrap_or(usize::MAX);
            let mut followers = Vec::new();
            let mut unreachable = 0;
            for member in group.members.iter().take(cap) {
                let desk_user = snapshot.users.iter().find(|user| {
                    user.source.as_ref().is_some_and(|s| {
                        s.connection_id == connection_id
                            && s.external_id.eq_ignore_ascii_case(&member.external_id)
                    })
                });
                let follower = match (desk_user, member.mail.as_deref().filter(|m| !m.trim().is_empty())) {
                    (Some(user), _) => format!("user:{}", user.id),
                    (None, Some(mail)) => format!("email:{}", mail.trim()),
                    (None, None) => {
                        unreachable += 1;
                        continue;
                    }
                };
                if !followers.contains(&follower) {
                    followers.push(follower);
                }
            }
            Ok(FollowerPlan {
                followers,
                over_cap: group.members.len().saturating_sub(cap),
                unreachable,
            })
        }
    }
}
