//! "Adjust quantity" (the guide's subscription management, tier 1): a new seat count for a
//! customer's subscription, PATCHed to Partner Center with the partner admin's sign-in.
//!
//! The subscription is read first (its etag goes in `If-Match`, and its new-commerce window is
//! checked here so a refused reduction says exactly why and until when it was allowed, without a
//! call that would fail). The change's request id travels as `MS-RequestId` on every attempt, so a
//! retry after a lost answer is applied once.

use deskbridge_core::ErrorCode;
use deskbridge_mapping::SourceSubscription;
use deskbridge_partner::{PartnerError, Subscription};
use deskbridge_source::{BoxFuture, QuantityChange, SourceContext, SubscriptionWriter, SyncError};
use deskbridge_store::Connection;
use jiff::Timestamp;

use crate::log::Shared;
use crate::settings::CspSettings;
use crate::tenants::from_partner;

/// The CSP connector's [`SubscriptionWriter`].
pub(crate) struct CspWriter {
    pub(crate) shared: std::sync::Arc<Shared>,
}

/// Partner Center's code for a reduction outside the cancellation window.
const OUTSIDE_WINDOW: i64 = 800_002;

fn refused(message: String, remedy: &str) -> SyncError {
    SyncError::Upstream {
        error_code: ErrorCode::ChangeRefused,
        code: ErrorCode::ChangeRefused.as_str().to_owned(),
        message,
        remedy: remedy.to_owned(),
    }
}

/// Why Partner Center would refuse `quantity` for `subscription` at `now`, if it would.
fn refusal(subscription: &Subscription, quantity: i64, now: Timestamp) -> Option<SyncError> {
    let name = subscription
        .friendly_name
        .as_deref()
        .or(subscription.offer_name.as_deref())
        .unwrap_or(&subscription.id);
    if subscription.status.as_deref().is_some_and(|s| s != "active") {
        return Some(refused(
            format!(
                "the seats of {name} cannot be changed: the subscription is {}",
                subscription.status.as_deref().unwrap_or("not active")
            ),
            "Only an active subscription's quantity can change; reactivate it in Partner Center first.",
        ));
    }
    if subscription
        .unit_type
        .as_deref()
        .is_some_and(|u| !u.eq_ignore_ascii_case("Licenses"))
    {
        return Some(refused(
            format!("{name} is billed by usage: it has no seat count to change"),
            "Usage-based subscriptions (such as an Azure plan) are billed by consumption.",
        ));
    }
    if quantity < subscription.quantity && !subscription.can_reduce_at(now) {
        let window = match subscription.cancellation_allowed_until_date {
            Some(until) => format!("its cancellation window ended on {until}"),
            None => "it has no cancellation window".into(),
        };
        let renewal = subscription
            .commitment_end_date
            .map_or_else(String::new, |end| format!(" (the term ends on {end})"));
        return Some(refused(
            format!(
                "{name}: seats of a new-commerce subscription may be reduced only within 7 days of purchase or \
                 renewal, and {window}; {} seats cannot become {quantity}",
                subscription.quantity
            ),
            &format!(
                "Increase the quantity at any time; reduce it at renewal{renewal}, or turn off auto-renew in \
                 Partner Center so the seats end with the term."
            ),
        ));
    }
    None
}

impl CspWriter {
    async fn set(
        &self,
        cx: &SourceContext,
        connection: &Connection,
        change: &QuantityChange,
    ) -> Result<SourceSubscription, SyncError> {
        let settings = CspSettings::of(connection)?;
        if settings.tenant(&change.tenant_id).is_none() {
            return Err(SyncError::InvalidSettings(format!(
                "connection {:?} has no customer tenant {}",
                connection.name, change.tenant_id
            )));
        }
        let request_id = uuid::Uuid::parse_str(&change.request_id)
            .map_err(|e| SyncError::Internal(format!("the change's request id is not a UUID: {e}")))?;
        let http = deskbridge_source::http_client(&connection.name)?;
        let tokens = crate::auth::tokens(&cx.store, connection, &settings, &http, &cx.clock).await?;
        let partner_tokens = match &tokens.partner {
            Ok(p) => p.clone(),
            Err(_) => return Err(crate::auth::not_signed_in(connection)),
        };
        let partner = self.shared.partner(
            connection,
            &settings,
            &http,
            &cx.clock,
            partner_tokens,
            &cx.requests,
        )?;
        // Partner Center's customer id is the customer's tenant id.
        let current = partner
            .subscription(&change.tenant_id, &change.subscription_id)
            .await
            .map_err(|e| from_partner(&e))?;
        if let Some(refusal) = refusal(&current, change.quantity, cx.clock.now()) {
            return Err(refusal);
        }
        let updated = partner
            .update_subscription_quantity(&change.tenant_id, &current, change.quantity, request_id)
            .await
            .map_err(|e| match &e {
                PartnerError::Api(api) if api.code == Some(OUTSIDE_WINDOW) => refused(
                    format!("Partner Center refused the new quantity: {e}"),
                    "Increase the quantity at any time; reduce it at renewal.",
                ),
                _ => from_partner(&e),
            })?;
        Ok(crate::subscriptions::source_subscription(&updated, None))
    }
}

impl SubscriptionWriter for CspWriter {
    fn set_quantity<'a>(
        &'a self,
        cx: &'a SourceContext,
        connection: &'a Connection,
        change: &'a QuantityChange,
    ) -> BoxFuture<'a, Result<SourceSubscription, SyncError>> {
        Box::pin(self.set(cx, connection, change))
    }
}
