//! deskbridge-partner: the Partner Center REST client the CSP connector reads and writes with.
//!
//! It owns the wire side of Partner Center (and of the partner API's price sheets): typed models
//! of customers, subscriptions, subscribed SKUs, price sheet rows, Azure utilisation records,
//! application consents and the webhook registration; continuation-token paging (`links.next`
//! with its `MS-ContinuationToken` header); the quantity change of a subscription (`If-Match` on
//! the subscription's etag, a caller-given `MS-RequestId` so a retried change is applied once);
//! retries on 429/5xx honouring `Retry-After`; errors that carry Partner Center's `code` and
//! `description` with the `MS-RequestId`/`MS-CorrelationId` of the call; and the verification of
//! webhook deliveries (`Authorization: Signature …`, RSA-SHA256 against a certificate fetched from
//! an allowed host and chained to a trusted root).
//!
//! Invariants:
//! - Sentinel dates (`9999-…`, `0001-…`) become `None`, never a date the desk would store.
//! - Tokens come from a [`deskbridge_msauth::TokenProvider`] and never reach logs or errors.
//! - A body that does not parse is [`PartnerError::Malformed`], never a panic.
//! - Continuation links are followed only on the configured Partner Center origin.

mod client;
mod error;
mod log;
mod models;
mod page;
mod pricing;
mod webhook;

pub use client::{
    CustomerFilter, DEFAULT_PARTNER_API_URL, DEFAULT_PARTNER_CENTER_URL, PARTNER_API_SCOPE,
    PARTNER_CENTER_SCOPE, PartnerClient, PartnerConfig,
};
pub use error::{PartnerApiError, PartnerError, PartnerErrorClass};
pub use log::{MemoryRequestLog, NoRequestLog, RequestLog, RequestLogEntry};
pub use models::*;
pub use page::{Page, Pager};
pub use pricing::{PriceSheetRow, parse_price_sheet};
pub use webhook::{WebhookError, WebhookEvent, WebhookVerifier, fetch_certificate};
