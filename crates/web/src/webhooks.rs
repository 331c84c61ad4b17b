//! `POST /webhooks/partner-center`: Partner Center's event deliveries.
//!
//! Partner Center cannot sign in, so the route is public in the access table; instead every
//! delivery is verified by the CSP connector before it is acted on ([`PartnerWebhooks`]: the
//! certificate's host, chain and organisation, the signature over the exact body, the event's
//! date). A delivery is acted on once: its keys are recorded in the store in the transaction that
//! enqueues its jobs.
//!
//! A verified event naming a customer (`…/customers/{id}/…`) enqueues one `licences` job per
//! connection importing that customer tenant ([`licences_tenant`]), for that tenant only; a
//! pending one absorbs further events. Nothing runs inline: the answer is immediate, and identical
//! whether or not any connection knows the customer, so a caller learns nothing about other
//! customers.
//!
//! Off unless configured (`serve --partner-webhook-roots`): then the route answers 404, as a
//! route that does not exist would, with a message saying how to turn it on.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use deskbridge_connectors::csp::{Refusal, RefusalKind, licences_tenant};
use deskbridge_core::ErrorCode;
use deskbridge_source::SyncEntity;
use deskbridge_store::{NewJob, WriteContext};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

pub use deskbridge_connectors::csp::PartnerWebhooks;

fn refused(e: Refusal) -> ApiError {
    let (code, remedy) = match e.kind {
        // The certificate host may be down: a 5xx makes Partner Center deliver again later.
        RefusalKind::Unreachable => (
            ErrorCode::UpstreamUnavailable,
            "Partner Center delivers again; if this persists, check that deskbridge can reach the certificate host.",
        ),
        RefusalKind::Malformed => (
            ErrorCode::InvalidInput,
            "Send a Partner Center event: a JSON object with EventName, ResourceUri and ResourceChangeUtcDate.",
        ),
        RefusalKind::Unauthenticated => (
            ErrorCode::Unauthenticated,
            "Only deliveries signed by Partner Center are accepted; if these are genuine, check the \
             instance's --partner-webhook-roots and --partner-webhook-certificate-host.",
        ),
    };
    ApiError::new(code, format!("the delivery was refused: {}", e.message)).with_remedy(remedy)
}

/// The handler (see the module documentation).
pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &headers, &body).await {
        Ok(()) => Json(json!({ "accepted": true })).into_response(),
        Err(e) => {
            tracing::info!(code = e.code.as_str(), message = %e.message, "a Partner Center webhook delivery was refused");
            e.into_response()
        }
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(webhooks) = &state.partner_webhooks else {
        return Err(ApiError::not_found(
            "Partner Center webhooks are not enabled on this instance",
        )
        .with_remedy("Start serve with --partner-webhook-roots FILE (the roots Partner Center's certificate chains to)."));
    };
    let delivery = webhooks
        .verify(headers, body, state.clock.now())
        .await
        .map_err(refused)?;
    let mut tx = state.store.begin(WriteContext::manual()).await?;
    if !tx
        .record_webhook_delivery(&delivery.keys, delivery.remember_for)
        .await?
    {
        return Err(
            ApiError::conflict("this delivery was already received; it is acted on once")
                .with_remedy("Nothing to do: the first delivery was accepted."),
        );
    }
    let mut enqueued = 0;
    if let Some(customer) = &delivery.customer {
        for connection in tx.connections().await? {
            // A connection that does not run on this instance would only fail its job.
            let here = connection
                .enabled_instances
                .split(',')
                .any(|i| i.trim() == state.sync_options.instance);
            let Some(tenant) = licences_tenant(&connection, customer).filter(|_| here) else {
                continue;
            };
            let job = NewJob {
                connection_id: connection.id,
                entity: SyncEntity::Licences.as_str().into(),
                full: false,
                origin: "webhook".into(),
                schedule_id: None,
                due_at: None,
                tenant_id: Some(tenant),
            };
            // `None`: a licences job for this tenant is already pending and will read the change.
            if tx.enqueue_job(&job).await?.is_some() {
                enqueued += 1;
            }
        }
    }
    tx.commit().await?;
    tracing::info!(
        event = %delivery.event_name,
        customer = delivery.customer.as_deref().unwrap_or("-"),
        jobs = enqueued,
        "accepted a Partner Center webhook delivery"
    );
    Ok(())
}
