//! One group read as a distribution group, for adding it as ticket followers: found by its
//! display name, with its address and its users (nested lists included) in Graph's order.

use deskbridge_graph::{GraphError, GraphTenant, Query};
use deskbridge_mapping::{DistributionGroup, GroupMember};
use serde::Deserialize;

/// Why a group could not be read.
#[derive(Debug)]
pub enum GroupLookup {
    Graph(GraphError),
    NotFound,
    /// Several groups have the name (Graph does not keep display names unique).
    Ambiguous(usize),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoundGroup {
    id: String,
    display_name: String,
    mail: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    id: String,
    mail: Option<String>,
}

/// The group `name` of the tenant, with every user in it (members of nested groups too).
pub async fn distribution_group(tenant: &GraphTenant, name: &str) -> Result<DistributionGroup, GroupLookup> {
    let find = Query::new("/groups")
        .filter(&format!("displayName eq '{}'", name.replace('\'', "''")))
        .select(&["id", "displayName", "mail"])
        .top(2)
        .build();
    let found = tenant
        .get_page::<FoundGroup>(&find)
        .await
        .map_err(GroupLookup::Graph)?;
    let group = match found.value.as_slice() {
        [] => return Err(GroupLookup::NotFound),
        [group] => group,
        several => return Err(GroupLookup::Ambiguous(several.len())),
    };
    let path = Query::new(format!(
        "/groups/{}/transitiveMembers/microsoft.graph.user",
        group.id
    ))
    .select(&["id", "mail"])
    .top(999)
    .build();
    let mut pager = tenant.pager::<Member>(path);
    let mut members = Vec::new();
    while let Some(page) = pager.next_page().await.map_err(GroupLookup::Graph)? {
        members.extend(page.value.into_iter().map(|m| GroupMember {
            external_id: m.id,
            mail: m.mail,
        }));
    }
    Ok(DistributionGroup {
        name: group.display_name.clone(),
        mail: group.mail.clone(),
        members,
    })
}
