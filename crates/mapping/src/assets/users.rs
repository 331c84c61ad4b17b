//! Who a device belongs to on the desk (by user id, user principal name or email, or the
//! owner the source reports), and the site of a device no user places.

use std::collections::BTreeMap;

use deskbridge_core::{ConnectionId, RecordId};
use serde_json::Value;

use super::config::{AssetUserLink, DeviceUserField};
use super::input::{AssetDesk, SourceDevice};
use super::page::{Page, of_customer};
use super::planner::{device_text, user_property};
use crate::engine::external_key;
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
        let users = &self.users;
        let (found, on) = match self.settings.user_link {
            AssetUserLink::Asset {
                field: DeviceUserField::UserPrincipalName,
            } => match users.by_login.get(&wanted.to_lowercase()) {
                Some(by_login) => (Some(by_login), "network login"),
                None => (users.by_email.get(&wanted.to_lowercase()), "email"),
            },
            AssetUserLink::Asset {
                field: DeviceUserField::EmailAddress,
            } => (users.by_email.get(&wanted.to_lowercase()), "email"),
            _ => (users.by_id.get(&external_key(&wanted)), "external id"),
        };
        let records = &self.desk.users;
        match found.map_or(&[][..], Vec::as_slice) {
            [index] => {
                let user = &records[*index];
                UserLink::Found {
                    id: user.id,
                    site: user.fields.get("site_id").and_then(Value::as_i64).map(RecordId),
                    why: format!("desk user {} whose {on} is {what} '{wanted}'", user.label()),
                }
            }
            [] => UserLink::Missing(format!(
                "no active desk user of the customer matches {what} '{wanted}', so no user"
            )),
            several => UserLink::Missing(format!(
                "{what} '{wanted}' is ambiguous: {} desk users fit on {on} (ids {}), so no user",
                several.len(),
                several
                    .iter()
                    .map(|i| records[*i].id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The page desk's users a device may be linked to — active, and on one of the tenant
/// customer's sites (any site when the tenant has no customer) — by what devices name them.
#[derive(Default)]
pub(super) struct UserIndex {
    /// Lower-cased external id (this connection's source identity) → users.
    by_id: BTreeMap<String, Vec<usize>>,
    /// Trimmed, lower-cased network login → users.
    by_login: BTreeMap<String, Vec<usize>>,
    /// Trimmed, lower-cased email → users.
    by_email: BTreeMap<String, Vec<usize>>,
}

impl UserIndex {
    pub(super) fn new(desk: &AssetDesk, connection: ConnectionId, customer: Option<RecordId>) -> Self {
        let mut index = Self::default();
        let on_customer_site = |user: &DeskRecord| {
            let Some(customer) = customer else {
                return true;
            };
            let site = user.fields.get("site_id").and_then(Value::as_i64);
            desk.sites
                .iter()
                .any(|s| Some(s.id.0) == site && s.customer_id == customer)
        };
        for (position, user) in desk.users.iter().enumerate() {
            if !user.is_active() || !on_customer_site(user) {
                continue;
            }
            if let Some(source) = user.source.as_ref().filter(|s| s.connection_id == connection) {
                index
                    .by_id
                    .entry(external_key(&source.external_id))
                    .or_default()
                    .push(position);
            }
            for (field, map) in [
                ("network_login", &mut index.by_login),
                ("email", &mut index.by_email),
            ] {
                if let Some(value) = user.text(field).map(str::trim).filter(|v| !v.is_empty()) {
                    map.entry(value.to_lowercase()).or_default().push(position);
                }
            }
        }
        index
    }
}
