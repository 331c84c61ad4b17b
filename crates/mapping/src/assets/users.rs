//! Who a device belongs to on the desk (by user id, user principal name or email, or the
//! owner the source reports), and the site of a device no user places.

use deskbridge_core::RecordId;
use serde_json::Value;

use super::config::{AssetUserLink, DeviceUserField};
use super::input::SourceDevice;
use super::page::{Page, of_customer};
use super::planner::{device_text, user_property};
use crate::input::DeskRecord;

pub(super) enum UserLink {
    /// The configuration links no users: `user_id` is left as it is.
    NotManaged,
    Found {
        id: RecordId,
        site: Option<RecordId>,
        why: String,
    },
    /// No user, or not a single one: `user_id` is cleared.
    Missing(String),
}

impl Page<'_, '_> {
    /// The site of a device linked to no user: the default site, else the customer's main site.
    pub(super) fn fallback_site(&self) -> Result<(RecordId, String), String> {
        if let Some(site) = self.settings.default_site {
            return Ok((site, format!("no linked user, so the default site {site}")));
        }
        let mains: Vec<RecordId> = self
            .desk
            .sites
            .iter()
            .filter(|site| site.is_main && of_customer(Some(site.customer_id), self.customer_id))
            .map(|site| site.id)
            .collect();
        match mains.as_slice() {
            [site] => Ok((
                *site,
                format!("no linked user, so the customer's main site {site}"),
            )),
            [] => Err(
                "no user links it to a site, there is no default site and the customer has no main site"
                    .into(),
            ),
            several => Err(format!(
                "no user links it to a site, there is no default site and {} sites are main sites",
                several.len()
            )),
        }
    }

    pub(super) fn link_user(&self, device: &SourceDevice) -> UserLink {
        let (wanted, what) = match self.settings.user_link {
            AssetUserLink::None => return UserLink::NotManaged,
            AssetUserLink::User => (
                device
                    .owner_id
                    .as_deref()
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned),
                "owner",
            ),
            AssetUserLink::Asset { field } => {
                (device_text(device, user_property(field)), user_property(field))
            }
        };
        let Some(wanted) = wanted else {
            return UserLink::Missing(format!("the device names no user ({what} is empty), so no user"));
        };
        let eligible: Vec<&DeskRecord> = self
            .desk
            .users
            .iter()
            .filter(|user| self.eligible(user))
            .collect();
        let text_is = |user: &DeskRecord, field: &str| {
            user.text(field)
                .is_some_and(|v| v.trim().to_lowercase() == wanted.to_lowercase())
        };
        let by_id = |user: &DeskRecord| {
            user.source.as_ref().is_some_and(|s| {
                s.connection_id == self.connection && s.external_id.eq_ignore_ascii_case(&wanted)
            })
        };
        let (found, on): (Vec<&DeskRecord>, &str) = match self.settings.user_link {
            AssetUserLink::Asset {
                field: DeviceUserField::UserPrincipalName,
            } => {
                let by_login: Vec<_> = eligible
                    .iter()
                    .copied()
                    .filter(|u| text_is(u, "network_login"))
                    .collect();
                if by_login.is_empty() {
                    (
                        eligible.into_iter().filter(|u| text_is(u, "email")).collect(),
                        "email",
                    )
                } else {
                    (by_login, "network login")
                }
            }
            AssetUserLink::Asset {
                field: DeviceUserField::EmailAddress,
            } => (
                eligible.into_iter().filter(|u| text_is(u, "email")).collect(),
                "email",
            ),
            _ => (eligible.into_iter().filter(|u| by_id(u)).collect(), "external id"),
        };
        match found.as_slice() {
            [user] => UserLink::Found {
                id: user.id,
                site: user.fields.get("site_id").and_then(Value::as_i64).map(RecordId),
                why: format!("desk user {} whose {on} is {what} '{wanted}'", user.label()),
            },
            [] => UserLink::Missing(format!(
                "no active desk user of the customer matches {what} '{wanted}', so no user"
            )),
            several => UserLink::Missing(format!(
                "{what} '{wanted}' is ambiguous: {} desk users fit on {on} (ids {}), so no user",
                several.len(),
                several
                    .iter()
                    .map(|u| u.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Active, and on one of the tenant customer's sites (any site without a customer).
    fn eligible(&self, user: &DeskRecord) -> bool {
        if !user.is_active() {
            return false;
        }
        let Some(customer) = self.customer_id else {
            return true;
        };
        let site = user.fields.get("site_id").and_then(Value::as_i64);
        self.desk
            .sites
            .iter()
            .any(|s| Some(s.id.0) == site && s.customer_id == customer)
    }
}
