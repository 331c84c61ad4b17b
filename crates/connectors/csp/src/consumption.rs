//! Consumption billing (the guide's "Consumption Billing" module): each customer's metered usage —
//! Azure utilisation records of its usage-based subscriptions, daily — since the last read, for
//! finance to list, export and bill.
//!
//! A tenant's read covers whole days up to midnight (UTC) today, from where the last read ended
//! less two days (Partner Center reports usage late and revises it), or the last 30 days the first
//! time; its end is the tenant's `usage_until` cursor, committed with the lines. A line is keyed by
//! its subscription, resource, instance and day, so reading a day again updates it and never
//! doubles it. A customer whose usage cannot be read is reported; the others are read.

use deskbridge_mapping::{Completeness, ReadMode, SourceUsageLine};
use deskbridge_partner::{PartnerClient, Subscription, UtilizationRecord};
use deskbridge_source::{Emitter, PartitionEnd, PartitionStart, ReadEvent, StoredCursors, SyncError};
use deskbridge_store::IntegrationError;
use jiff::{SignedDuration, Timestamp};

use crate::subscriptions::source_subscription;
use crate::tenants::from_partner;

/// The cursor holding where a tenant's last usage read ended.
pub(crate) const USAGE_UNTIL: &str = "usage_until";
/// How far back a tenant's first read goes.
const FIRST_READ: SignedDuration = SignedDuration::from_hours(30 * 24);
/// How much of the last read is read again (late and revised usage).
const REREAD: SignedDuration = SignedDuration::from_hours(2 * 24);

/// The customer tenant to read.
pub(crate) struct UsageTenant<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) customer: deskbridge_core::RecordId,
}

/// Midnight (UTC) of `now`'s day: usage is read in whole days.
fn midnight(now: Timestamp) -> Timestamp {
    let seconds = now.as_second();
    Timestamp::from_second(seconds - seconds.rem_euclid(86_400)).unwrap_or(now)
}

fn usage_based(subscription: &Subscription) -> bool {
    subscription
        .unit_type
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case("Usage-based"))
        || subscription
            .billing_type
            .as_deref()
            .is_some_and(|b| b.eq_ignore_ascii_case("usage"))
}

/// The line of one utilisation record, keyed so the same usage read again is the same line.
fn line(subscription: &Subscription, record: &UtilizationRecord) -> SourceUsageLine {
    use sha2::Digest as _;
    let resource_uri = record
        .instance_data
        .as_ref()
        .and_then(|d| d.get("resourceUri"))
        .and_then(|u| u.as_str())
        .map(str::to_owned);
    let start = record.usage_start_time.map(|t| t.to_string());
    let identity = format!(
        "{}\n{}\n{}\n{}",
        subscription.id.to_ascii_lowercase(),
        record.resource.id.as_deref().unwrap_or_default(),
        resource_uri.as_deref().unwrap_or_default(),
        start.as_deref().unwrap_or_default()
    );
    SourceUsageLine {
        external_id: hex::encode(&sha2::Sha256::digest(identity.as_bytes())[..16]),
        subscription_external_id: Some(subscription.id.to_ascii_lowercase()),
        usage_start: start,
        usage_end: record.usage_end_time.map(|t| t.to_string()),
        resource_id: record.resource.id.clone(),
        resource_name: record.resource.name.clone(),
        category: record.resource.category.clone(),
        subcategory: record.resource.subcategory.clone(),
        region: record.resource.region.clone(),
        quantity: record.quantity,
        unit: record.unit.clone(),
        resource_uri,
    }
}

/// Reads one tenant's usage since its cursor and hands it to the pipeline as a partition (with
/// the customer's subscriptions when `with_subscriptions`, which the lines are linked to).
pub(crate) async fn read_usage(
    partner: &PartnerClient,
    tenant: &UsageTenant<'_>,
    cursors: &StoredCursors,
    now: Timestamp,
    with_subscriptions: bool,
    out: &mut Emitter,
) -> Result<(), SyncError> {
    let end = midnight(now);
    let start = cursors
        .get(tenant.tenant_id, USAGE_UNTIL)
        .and_then(|until| until.parse::<Timestamp>().ok())
        .and_then(|until| until.checked_sub(REREAD).ok())
        .unwrap_or_else(|| end.checked_sub(FIRST_READ).unwrap_or(end));
    let mut requests = 1;
    let read = async {
        let subscriptions = partner.subscriptions(tenant.tenant_id).await?;
        let mut lines = Vec::new();
        for subscription in subscriptions.iter().filter(|s| usage_based(s)) {
            requests += 1;
            let records = partner
                .azure_utilization(tenant.tenant_id, &subscription.id, start, end)
                .collect_all()
                .await?;
            lines.extend(records.iter().map(|r| line(subscription, r)));
        }
        Ok::<_, deskbridge_partner::PartnerError>((subscriptions, lines))
    };
    let (subscriptions, lines) = match read.await {
        Ok(read) => read,
        Err(e) => {
            let error = from_partner(&e);
            out.emit(ReadEvent::Warning(IntegrationError {
                tenant_id: Some(tenant.tenant_id.to_owned()),
                entity: Some("usage_line".into()),
                external_id: None,
                code: error.code(),
                message: format!(
                    "the usage of customer {} ({}) was not imported: {error}",
                    tenant.name, tenant.tenant_id
                ),
                remedy: error
                    .remedy()
                    .or_else(|| Some("The next consumption run reads the same days again.".into())),
            }))
            .await?;
            return Ok(());
        }
    };
    out.emit(ReadEvent::Begin(PartitionStart {
        tenant_id: tenant.tenant_id.to_owned(),
        customer_id: Some(tenant.customer),
        mode: ReadMode::Delta,
        subscribed_skus: None,
        // The lines link to the desk's subscriptions; those are updated too when the tenant's
        // licence import type takes subscriptions.
        subscriptions: with_subscriptions.then(|| {
            subscriptions
                .iter()
                .map(|s| source_subscription(s, None))
                .collect()
        }),
        usage: Some(lines),
        groups: None,
    }))
    .await?;
    out.emit(ReadEvent::End(PartitionEnd {
        tenant_id: tenant.tenant_id.to_owned(),
        completeness: Completeness::Complete,
        cursors: vec![(USAGE_UNTIL.to_owned(), end.to_string())],
        requests,
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_to_midnight() {
        let now: Timestamp = "2026-12-07T15:42:10Z".parse().unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(midnight(now).to_string(), "2026-12-07T00:00:00Z");
    }
}
