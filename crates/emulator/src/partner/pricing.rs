//! The partner API's price sheet: `GET /v1.0/sales/pricesheets(Market='GB',PricesheetView=
//! 'updatedlicensebased')/$value` returns the licence-based (new commerce) prices of a market as
//! CSV. App+user tokens only, as documented.
use std::sync::PoisonError;

use http::{Method, StatusCode};

use super::*;

const HEADER: &[&str] = &[
    "ProductTitle",
    "ProductId",
    "SkuId",
    "SkuTitle",
    "Publisher",
    "SkuDescription",
    "UnitOfMeasure",
    "TermDuration",
    "BillingPlan",
    "Market",
    "Currency",
    "UnitPrice",
    "PricingTierRangeMin",
    "PricingTierRangeMax",
    "EffectiveStartDate",
    "EffectiveEndDate",
    "Tags",
    "ERP Price",
    "Segment",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `pricesheets(Market='GB',PricesheetView='updatedlicensebased')` → (market, view).
fn parse_key(seg: &str) -> Option<(String, String)> {
    let inner = seg.strip_prefix("pricesheets(")?.strip_suffix(')')?;
    let mut market = None;
    let mut view = None;
    for part in inner.split(',') {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().trim_matches('\'').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "market" => market = Some(v),
            "pricesheetview" => view = Some(v),
            _ => return None,
        }
    }
    Some((market?, view?))
}

pub(crate) fn route(ctx: &Ctx<'_>) -> PcResult<Reply> {
    let s: Vec<&str> = ctx.segs.iter().map(String::as_str).collect();
    let (market, view) = match s.as_slice() {
        ["v1.0", "sales", key, "$value"] if ctx.method == Method::GET => {
            parse_key(key).ok_or_else(|| bad_request(format!("Invalid price sheet key {key}.")))?
        }
        _ => return Err(not_found(&format!("The resource /{}", s.join("/")))),
    };
    ctx.require_user()?;
    if !view.eq_ignore_ascii_case("updatedlicensebased") {
        return Err(bad_request(format!(
            "PricesheetView {view} is not served by the emulator (only updatedlicensebased)."
        )));
    }
    if let Some(t) = ctx.param("timeline")
        && !t.eq_ignore_ascii_case("current")
        && !t.eq_ignore_ascii_case("history")
    {
        return Err(bad_request("timeline must be current or history."));
    }
    let world = ctx.state.world.read().unwrap_or_else(PoisonError::into_inner);
    let rows: Vec<_> = world
        .partner_center
        .prices
        .iter()
        .filter(|p| p.market.eq_ignore_ascii_case(&market))
        .collect();
    if rows.is_empty() {
        return Err(pc_err(
            StatusCode::NOT_FOUND,
            3000,
            format!("No price sheet for market {market}."),
        ));
    }
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for p in rows {
        let fields = [
            p.product_title.as_str(),
            &p.product_id,
            &p.sku_id,
            &p.sku_title,
            &p.publisher,
            &p.sku_title,
            &p.unit_of_measure,
            &p.term_duration,
            &p.billing_plan,
            &p.market,
            &p.currency,
            &p.unit_price,
            "0",
            "",
            &customers::iso(p.effective_start_date),
            &customers::iso(p.effective_end_date),
            "License",
            &p.erp_price,
            &p.segment,
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    Ok(Reply {
        status: StatusCode::OK,
        payload: Payload::Csv(out),
        headers: vec![],
    })
}
