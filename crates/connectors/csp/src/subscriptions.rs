//! A customer's subscriptions from Partner Center (the guide's "Your subscriptions", tier 1),
//! normalised for the pipeline, and priced from the chosen marketplace's price sheet when the
//! connection imports prices (read once per run, on first need).
//!
//! A customer whose subscriptions cannot be read keeps its desk subscriptions as they are and its
//! users are still imported: the failure is a warning naming the tenant, with Partner Center's
//! code and remedy. Likewise a price sheet that cannot be read leaves every price as it is.

use deskbridge_mapping::{SourceSubscription, SubscriptionPrice};
use deskbridge_partner::{PartnerClient, PriceSheetRow, Subscription};
use deskbridge_source::{Emitter, ReadEvent, SyncError};
use deskbridge_store::IntegrationError;

use crate::tenants::from_partner;

/// Reads the subscriptions of the run's customer tenants with one Partner Center client.
pub(crate) struct SubscriptionReader {
    partner: PartnerClient,
    /// The marketplace whose prices are imported, if any.
    market: Option<String>,
    /// The price sheet once read; `Some(None)`: reading it failed (said once).
    prices: Option<Option<Vec<PriceSheetRow>>>,
}

impl SubscriptionReader {
    pub(crate) fn new(partner: PartnerClient, market: Option<String>) -> Self {
        Self {
            partner,
            market,
            prices: None,
        }
    }

    /// The subscriptions of the customer whose tenant is `tenant_id` (Partner Center's customer
    /// id is the customer's tenant id); `None` when they could not be read (a warning says why).
    pub(crate) async fn read(
        &mut self,
        tenant_id: &str,
        name: &str,
        out: &mut Emitter,
    ) -> Result<Option<Vec<SourceSubscription>>, SyncError> {
        let subscriptions = match self.partner.subscriptions(tenant_id).await {
            Ok(subscriptions) => subscriptions,
            Err(e) => {
                let error = from_partner(&e);
                out.emit(ReadEvent::Warning(IntegrationError {
                    tenant_id: Some(tenant_id.to_owned()),
                    entity: Some("subscription".into()),
                    external_id: None,
                    code: error.code(),
                    message: format!(
                        "the subscriptions of customer {name} ({tenant_id}) were not imported: {error}"
                    ),
                    remedy: error.remedy().or_else(|| {
                        Some("The next run reads them again; the desk's subscriptions are unchanged.".into())
                    }),
                }))
                .await?;
                return Ok(None);
            }
        };
        let prices = self.prices(out).await?;
        Ok(Some(
            subscriptions
                .iter()
                .map(|subscription| {
                    let price = prices.and_then(|(market, rows)| {
                        let row = rows.iter().find(|row| row.prices(subscription))?;
                        Some(SubscriptionPrice {
                            unit_price: row.unit_price,
                            currency: row.currency.clone(),
                            market: market.to_owned(),
                        })
                    });
                    source_subscription(subscription, price)
                })
                .collect(),
        ))
    }

    /// The marketplace and its price sheet, when prices are imported and the sheet could be read.
    async fn prices(&mut self, out: &mut Emitter) -> Result<Option<(&str, &[PriceSheetRow])>, SyncError> {
        let Some(market) = self.market.as_deref() else {
            return Ok(None);
        };
        if self.prices.is_none() {
            let sheet = match self.partner.price_sheet(market).await {
                Ok(rows) => Some(rows),
                Err(e) => {
                    let error = from_partner(&e);
                    out.emit(ReadEvent::Warning(IntegrationError {
                        tenant_id: None,
                        entity: Some("subscription".into()),
                        external_id: None,
                        code: error.code(),
                        message: format!(
                            "subscription prices were not imported: the {market} price sheet could not be read: {error}"
                        ),
                        remedy: Some(
                            "Prices need the Partner Center app's delegated permission for the partner API (price \
                             sheets) and a tier 1 (direct) partner; the desk's prices are unchanged until then."
                                .into(),
                        ),
                    }))
                    .await?;
                    None
                }
            };
            self.prices = Some(sheet);
        }
        Ok(self
            .prices
            .as_ref()
            .and_then(Option::as_ref)
            .map(|rows| (market, rows.as_slice())))
    }
}

/// Partner Center's subscription as the pipeline's. Its sentinel dates are `None` already.
pub(crate) fn source_subscription(
    subscription: &Subscription,
    price: Option<SubscriptionPrice>,
) -> SourceSubscription {
    let date = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string());
    SourceSubscription {
        external_id: subscription.id.to_ascii_lowercase(),
        offer_id: subscription.offer_id.clone(),
        offer_name: subscription.offer_name.clone(),
        friendly_name: subscription.friendly_name.clone(),
        quantity: subscription.quantity,
        status: subscription.status.clone(),
        billing_cycle: subscription.billing_cycle.clone(),
        term_duration: subscription.term_duration.clone(),
        unit_type: subscription.unit_type.clone(),
        start_date: date(subscription.effective_start_date),
        end_date: date(subscription.commitment_end_date),
        cancellation_allowed_until: date(subscription.cancellation_allowed_until_date),
        auto_renew: subscription.auto_renew_enabled,
        is_trial: subscription.is_trial,
        price,
    }
}
