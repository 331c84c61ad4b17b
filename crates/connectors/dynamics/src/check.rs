//! "Test connection": the configuration check's Dynamics 365 points, in the order a connection
//! fails in practice, each failure with its remedy, ending with "connection available" or why
//! not:
//!
//! 1. the URL is a Dataverse organisation's (asked without a token: an organisation answers 401
//!    with its sign-in challenge, which also names its tenant);
//! 2. a token for the organisation (the identity platform's AADSTS code and remedy: wrong or
//!    expired secret, consent, …);
//! 3. `WhoAmI` (the app is an application user of the organisation, or the user is a user of it);
//! 4. Read privilege on `contact` and `account` (`$top=1` reads);
//! 5. per custom table mapping: the table and its mapped columns and lookup paths exist in the
//!    organisation's metadata, the Read privilege on the table, and whether it is read with change
//!    tracking or a `modifiedon` watermark.

use deskbridge_dataverse::{DataverseClient, DataverseError, DataverseErrorClass, Query};
use deskbridge_source::{CheckPoint, SourceContext, SyncError};
use deskbridge_store::Connection;

use crate::error::from_dataverse;
use crate::settings::{AuthScheme, DynamicsSettings};

/// The last point's detail when every point passed (the data platforms' TEST button says so).
pub const CONNECTION_AVAILABLE: &str = "connection available";

fn failed(name: &str, e: &SyncError, fallback: &str) -> CheckPoint {
    CheckPoint::fail(
        name,
        e.to_string(),
        e.remedy().unwrap_or_else(|| fallback.to_owned()),
    )
}

const URL_REMEDY: &str = "Check the URL: copy the environment URL from the Power Platform admin center (Environments \
                          > your environment > Environment URL), like https://contoso.crm.dynamics.com/.";

/// What the organisation URL answered without a token.
pub(crate) fn url_point(
    url: &str,
    tenant_id: &str,
    answer: Result<(u16, Option<String>), String>,
) -> CheckPoint {
    let (status, challenge) = match answer {
        Ok(a) => a,
        Err(reason) => {
            return CheckPoint::fail(
                "url",
                format!("{url} cannot be reached: {reason}"),
                format!(
                    "{URL_REMEDY} If it is right, check that this machine can reach it (DNS, proxy, firewall)."
                ),
            );
        }
    };
    let challenge = challenge.filter(|c| c.contains("authorization_uri"));
    let Some(challenge) = challenge.filter(|_| status == 401) else {
        return CheckPoint::fail(
            "url",
            format!(
                "{url} is not a Dataverse organisation: its Web API answered HTTP {status}{}",
                if status == 404 {
                    " (not found)"
                } else {
                    " without Dataverse's sign-in challenge"
                }
            ),
            URL_REMEDY,
        );
    };
    // `Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize, resource_id=…`
    let organisation_tenant = challenge
        .split("authorization_uri=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .and_then(|uri| url::Url::parse(uri.trim_matches('"')).ok())
        .and_then(|uri| uri.path_segments()?.next().map(str::to_ascii_lowercase));
    match organisation_tenant {
        Some(theirs)
            if deskbridge_source::settings::is_guid(tenant_id)
                && deskbridge_source::settings::is_guid(&theirs)
                && !theirs.eq_ignore_ascii_case(tenant_id) =>
        {
            CheckPoint::fail(
                "url",
                format!(
                    "{url} is an organisation of tenant {theirs}, but the connection's Azure tenant is {tenant_id}"
                ),
                format!(
                    "Set the Azure tenant to {theirs} (the organisation's tenant), or correct the URL if it names \
                     another organisation."
                ),
            )
        }
        Some(theirs) => CheckPoint::pass(
            "url",
            format!("{url} is a Dataverse organisation of tenant {theirs}"),
        ),
        None => CheckPoint::pass("url", format!("{url} is a Dataverse organisation")),
    }
}

/// Asks the organisation's Web API for `WhoAmI` without a token: its status and challenge.
async fn probe(http: &reqwest::Client, url: &str) -> Result<(u16, Option<String>), String> {
    let response = http
        .get(format!("{url}/api/data/v9.2/WhoAmI"))
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            // reqwest's chain names the cause (DNS, refused, TLS) at its end.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        })?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((response.status().as_u16(), challenge))
}

/// The `organisation` point from `WhoAmI`'s answer.
pub(crate) fn organisation_point(
    settings: &DynamicsSettings,
    answer: Result<deskbridge_dataverse::WhoAmI, DataverseError>,
) -> CheckPoint {
    match answer {
        Ok(me) => CheckPoint::pass(
            "organisation",
            format!(
                "WhoAmI: user {} of organisation {} (business unit {})",
                me.user_id, me.organization_id, me.business_unit_id
            ),
        ),
        Err(e) => {
            let who = match settings.auth_scheme {
                AuthScheme::AzureServicePrincipal => {
                    format!("the app {} is not an application user", settings.client_id)
                }
                AuthScheme::AzureAd => "the signed-in user is not a user".to_owned(),
            };
            let detail = match e.class() {
                Some(DataverseErrorClass::NotAMember) => format!("{who} of the organisation: {e}"),
                Some(DataverseErrorClass::Authentication) => format!(
                    "the organisation refused the token (HTTP 401): the token is for another tenant or organisation: {e}"
                ),
                Some(DataverseErrorClass::NotFound) => {
                    format!("the URL is not a Dataverse organisation: {e}")
                }
                _ => e.to_string(),
            };
            let remedy = match e.class() {
                Some(DataverseErrorClass::Authentication) => {
                    "Check that the Azure tenant is the organisation's tenant and the URL the organisation's."
                        .to_owned()
                }
                Some(DataverseErrorClass::NotFound) => URL_REMEDY.to_owned(),
                _ => from_dataverse(&e).remedy().unwrap_or_default(),
            };
            CheckPoint::fail("organisation", detail, remedy)
        }
    }
}

/// A `$top=1` read of `entity_set` (table `table`): the Read privilege.
async fn privilege_point(client: &DataverseClient, table: &str, entity_set: &str, key: &str) -> CheckPoint {
    let name = format!("read {table}");
    match client
        .get_page(&Query::new(entity_set).select([key]).top(1))
        .await
    {
        Ok(_) => CheckPoint::pass(&name, format!("the {table} table can be read")),
        Err(e) if e.class() == Some(DataverseErrorClass::MissingPrivilege) => CheckPoint::fail(
            &name,
            format!(
                "no Read privilege on {table} ({}): {e}",
                e.api().map(|a| a.code.as_str()).unwrap_or_default()
            ),
            format!(
                "Give the application user (or the signed-in user) a security role with Read privilege on {} \
                 (Power Platform admin center > Environments > the environment > Settings > Users + permissions > \
                 Application users > Edit security roles).",
                match table {
                    "contact" => "Contact",
                    "account" => "Account",
                    other => other,
                }
            ),
        ),
        Err(e) => failed(&name, &from_dataverse(&e), ""),
    }
}

pub(crate) async fn check(
    cx: &SourceContext,
    source: &crate::DynamicsSource,
    connection: &Connection,
    instance: &str,
) -> Vec<CheckPoint> {
    let mut points = run(cx, source, connection, instance).await;
    points.push(match points.iter().find(|p| !p.ok) {
        None => CheckPoint::pass("result", CONNECTION_AVAILABLE),
        Some(first) => CheckPoint::fail(
            "result",
            format!("connection unavailable: {}: {}", first.name, first.detail),
            first.remedy.clone(),
        ),
    });
    points
}

async fn run(
    cx: &SourceContext,
    source: &crate::DynamicsSource,
    connection: &Connection,
    instance: &str,
) -> Vec<CheckPoint> {
    let mut points = Vec::new();
    let settings = match DynamicsSettings::of(connection) {
        Ok(s) => s,
        Err(e) => {
            points.push(failed(
                "connection",
                &e,
                "Add the connection again with valid settings.",
            ));
            return points;
        }
    };
    points.push(CheckPoint::pass(
        "connection",
        format!(
            "Dynamics 365 ({}) organisation {}, Azure tenant {}, client ID {}, AuthScheme {}",
            settings.crm_version,
            settings.url,
            settings.tenant_id,
            settings.client_id,
            settings.auth_scheme.as_str()
        ),
    ));
    points.push(CheckPoint::instance(connection, instance));
    let http = match deskbridge_source::http_client(&connection.name) {
        Ok(h) => h,
        Err(e) => {
            points.push(failed("url", &e, ""));
            return points;
        }
    };
    let url = url_point(
        &settings.url,
        &settings.tenant_id,
        probe(&http, &settings.url).await,
    );
    let url_ok = url.ok;
    points.push(url);
    let names = ["sign-in", "organisation", "read contact", "read account"];
    if !url_ok {
        points.extend(names.iter().map(|n| CheckPoint::blocked(n, "url")));
        return points;
    }
    let tokens = match crate::auth::token_provider(&cx.store, connection, &settings, &http, &cx.clock).await {
        Ok(t) => t,
        Err(e) => {
            points.push(failed(
                "sign-in",
                &e,
                "Give the client secret or certificate again.",
            ));
            points.extend(names[1..].iter().map(|n| CheckPoint::blocked(n, "sign-in")));
            return points;
        }
    };
    match tokens.access_token(&settings.tenant_id, &settings.scope()).await {
        Ok(_) => points.push(CheckPoint::pass(
            "sign-in",
            format!("a token for {} from {}", settings.url, settings.authority_host),
        )),
        Err(e) => {
            let error = deskbridge_connector_entra::from_auth(&e);
            let point = match e.aadsts() {
                Some(500_011) => CheckPoint::fail(
                    "sign-in",
                    format!(
                        "the identity platform knows no organisation {} in this tenant: {e}",
                        settings.url
                    ),
                    URL_REMEDY,
                ),
                // Consent to Dataverse's delegated permission is missing (AzureAD).
                Some(65_001) => CheckPoint::fail(
                    "sign-in",
                    format!("no consent to Dynamics CRM's user_impersonation permission: {e}"),
                    "Add the Dynamics CRM user_impersonation delegated permission to the app registration and \
                     grant admin consent (API permissions > Grant admin consent), then sign in again: deskbridge \
                     connection authorize.",
                ),
                _ => failed("sign-in", &error, ""),
            };
            points.push(point);
            points.extend(names[1..].iter().map(|n| CheckPoint::blocked(n, "sign-in")));
            return points;
        }
    }
    let client = match source.client(&settings, tokens, &http) {
        Ok(c) => c,
        Err(e) => {
            points.push(failed("organisation", &e, URL_REMEDY));
            return points;
        }
    };
    let organisation = organisation_point(&settings, client.who_am_i().await);
    let organisation_ok = organisation.ok;
    points.push(organisation);
    if !organisation_ok {
        points.extend(names[2..].iter().map(|n| CheckPoint::blocked(n, "organisation")));
        return points;
    }
    points.push(privilege_point(&client, "contact", "contacts", "contactid").await);
    points.push(privilege_point(&client, "account", "accounts", "accountid").await);
    points.extend(customer_points(&client, &settings).await);
    points.extend(table_points(&client, &settings).await);
    points
}

/// The customer import: the account columns its mappings name exist (the Read privilege on
/// account is checked above).
async fn customer_points(client: &DataverseClient, settings: &DynamicsSettings) -> Vec<CheckPoint> {
    let Some(customers) = &settings.mapping.customers else {
        return Vec::new();
    };
    let name = "customers (account)";
    let mut meta = crate::tables::Metadata::new(client);
    match crate::tables::resolve(&mut meta, &crate::tables::customer_table_mapping(customers)).await {
        Ok(_) => vec![CheckPoint::pass(
            name,
            format!(
                "the account columns of the {} customer field mapping(s) exist",
                customers.fields.len()
            ),
        )],
        Err(problems) => vec![CheckPoint::fail(
            name,
            problems.join("; "),
            "Correct the customer mappings (the Customers mapping tab, or customers in the connection's mappings): \
             name the account table's columns by their logical names.",
        )],
    }
}

/// Per custom table mapping: the table and its mapped columns exist in the organisation's
/// metadata, the Read privilege on it, and whether it is read with change tracking.
async fn table_points(client: &DataverseClient, settings: &DynamicsSettings) -> Vec<CheckPoint> {
    let mut points = Vec::new();
    let mut meta = crate::tables::Metadata::new(client);
    for mapping in &settings.mapping.custom_tables {
        let logical = mapping.source_table.to_ascii_lowercase();
        let name = format!("table {logical} → {}", mapping.desk_table);
        let table = match crate::tables::resolve(&mut meta, mapping).await {
            Ok(table) => table,
            Err(problems) => {
                points.push(CheckPoint::fail(
                    &name,
                    problems.join("; "),
                    "Correct the table mapping (custom_tables in the connection's mappings): name the table's and columns' logical names, and lookups by their navigation properties.",
                ));
                points.push(CheckPoint::blocked(&format!("read {logical}"), &name));
                points.push(CheckPoint::blocked(&format!("change tracking {logical}"), &name));
                continue;
            }
        };
        points.push(CheckPoint::pass(
            &name,
            format!(
                "table {logical} and the {} mapped column(s) exist",
                mapping.fields.len()
            ),
        ));
        let (set, key) = table.key();
        points.push(privilege_point(client, &logical, set, key).await);
        let tracking = format!("change tracking {logical}");
        points.push(match (table.change_tracking(), mapping.filter_text()) {
            (true, None) => CheckPoint::pass(
                &tracking,
                format!(
                    "on: read with change tracking (cursor {}), deleted rows included",
                    crate::tables::delta_cursor(&logical)
                ),
            ),
            (true, Some(_)) => CheckPoint::pass(
                &tracking,
                "on, but the mapping has a filter, which Dataverse does not take with change tracking: read with a modifiedon watermark; deleted rows are found by a full read (deskbridge sync --full)",
            ),
            (false, _) => CheckPoint::pass(
                &tracking,
                format!(
                    "off: read with a modifiedon watermark (cursor {}); deleted rows are found by a full read (deskbridge sync --full), or turn on Track changes for the table",
                    crate::tables::since_cursor(&logical)
                ),
            ),
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "11111111-1111-1111-1111-111111111111";

    #[test]
    fn the_url_is_an_organisation_when_it_challenges_for_a_token() {
        let challenge = format!(
            "Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}/oauth2/authorize, \
             resource_id=https://contoso.crm.dynamics.com/"
        );
        let ok = url_point(
            "https://contoso.crm.dynamics.com",
            TENANT,
            Ok((401, Some(challenge.clone()))),
        );
        assert!(ok.ok, "{ok:?}");
        assert!(ok.detail.contains(TENANT));
        let other = url_point(
            "https://contoso.crm.dynamics.com",
            "22222222-2222-2222-2222-222222222222",
            Ok((401, Some(challenge))),
        );
        assert!(!other.ok);
        assert!(
            other
                .remedy
                .contains(&format!("Set the Azure tenant to {TENANT}")),
            "{other:?}"
        );
        let missing = url_point("https://contoso.crm.dynamics.com", TENANT, Ok((404, None)));
        assert!(!missing.ok);
        assert!(
            missing.detail.contains("not a Dataverse organisation"),
            "{missing:?}"
        );
        assert!(missing.detail.contains("404"), "{missing:?}");
        let site = url_point("https://contoso.crm.dynamics.com", TENANT, Ok((200, None)));
        assert!(
            site.detail.contains("without Dataverse's sign-in challenge"),
            "{site:?}"
        );
        let dns = url_point(
            "https://nope.crm.dynamics.com",
            TENANT,
            Err("dns error: failed to lookup address information".into()),
        );
        assert!(!dns.ok);
        assert!(dns.detail.contains("cannot be reached"), "{dns:?}");
        assert!(dns.remedy.contains("DNS"), "{dns:?}");
    }
}
