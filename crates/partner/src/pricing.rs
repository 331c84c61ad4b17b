//! The licence-based price sheet (CSV) and the lookup of a subscription's price in it.
use jiff::Timestamp;

use crate::models::{Subscription, parse_date};

/// One row of the `updatedlicensebased` price sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSheetRow {
    pub product_id: String,
    pub sku_id: String,
    pub product_title: String,
    pub sku_title: String,
    /// `P1M`, `P1Y`, `P3Y`.
    pub term_duration: String,
    /// `Monthly` or `Annual`.
    pub billing_plan: String,
    pub market: String,
    pub currency: String,
    /// The partner's price per unit for the billing plan's period.
    pub unit_price: f64,
    /// The estimated retail price, when given.
    pub erp_price: Option<f64>,
    pub effective_start_date: Option<Timestamp>,
    pub effective_end_date: Option<Timestamp>,
}

impl PriceSheetRow {
    /// Whether this row prices the subscription (product and SKU from its offer id, its term
    /// and its billing cycle).
    pub fn prices(&self, subscription: &Subscription) -> bool {
        let Some(offer) = subscription.offer_id.as_deref() else {
            return false;
        };
        let mut parts = offer.split(':');
        let (Some(product), Some(sku)) = (parts.next(), parts.next()) else {
            return false;
        };
        let plan = match subscription.billing_cycle.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("annual") => "Annual",
            Some(c) if c.eq_ignore_ascii_case("monthly") => "Monthly",
            Some(c) if c.eq_ignore_ascii_case("triennial") => "Triennial",
            _ => return false,
        };
        self.product_id.eq_ignore_ascii_case(product)
            && self.sku_id.eq_ignore_ascii_case(sku)
            && subscription
                .term_duration
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&self.term_duration))
            && self.billing_plan.eq_ignore_ascii_case(plan)
    }
}

/// Splits CSV text into records (RFC 4180: quoted fields, doubled quotes, CRLF or LF).
fn records(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut record));
            }
            other => field.push(other),
        }
    }
    if quoted {
        return Err("the price sheet ends inside a quoted field".into());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push(record);
    }
    Ok(out)
}

/// Parses the price sheet CSV. Columns are found by name; a missing required column or a price
/// that is not a number is an error.
pub fn parse_price_sheet(text: &str) -> Result<Vec<PriceSheetRow>, String> {
    let mut rows = records(text.trim_start_matches('\u{feff}'))?.into_iter();
    let header = rows.next().ok_or("the price sheet is empty")?;
    let col = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let need = |name: &str| col(name).ok_or(format!("the price sheet has no {name} column"));
    let (product, sku, term, plan, market, currency, price) = (
        need("ProductId")?,
        need("SkuId")?,
        need("TermDuration")?,
        need("BillingPlan")?,
        need("Market")?,
        need("Currency")?,
        need("UnitPrice")?,
    );
    let (product_title, sku_title, erp, start, end) = (
        col("ProductTitle"),
        col("SkuTitle"),
        col("ERP Price"),
        col("EffectiveStartDate"),
        col("EffectiveEndDate"),
    );
    let mut out = Vec::new();
    for (n, record) in rows.enumerate() {
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |i: usize| record.get(i).map(|s| s.trim().to_owned()).unwrap_or_default();
        let opt = |i: Option<usize>| i.map(get).filter(|s| !s.is_empty());
        let line = n + 2;
        let number = |raw: String, what: &str| {
            raw.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or(format!("line {line}: {what} {raw:?} is not a number"))
        };
        let date = |raw: Option<String>| match raw {
            Some(r) => parse_date(&r).map_err(|e| format!("line {line}: {e}")),
            None => Ok(None),
        };
        out.push(PriceSheetRow {
            product_id: get(product),
            sku_id: get(sku),
            product_title: opt(product_title).unwrap_or_default(),
            sku_title: opt(sku_title).unwrap_or_default(),
            term_duration: get(term),
            billing_plan: get(plan),
            market: get(market),
            currency: get(currency),
            unit_price: number(get(price), "UnitPrice")?,
            erp_price: opt(erp).map(|e| number(e, "ERP Price")).transpose()?,
            effective_start_date: date(opt(start))?,
            effective_end_date: date(opt(end))?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quoted_fields_and_missing_columns() {
        let csv = "ProductTitle,ProductId,SkuId,TermDuration,BillingPlan,Market,Currency,UnitPrice\r\n\
                   \"Office, \"\"E3\"\"\",CFQ,0001,P1Y,Annual,GB,GBP,273.60\r\n";
        let rows = parse_price_sheet(csv).unwrap();
        assert_eq!(rows[0].product_title, "Office, \"E3\"");
        assert!((rows[0].unit_price - 273.6).abs() < 1e-9);
        assert!(parse_price_sheet("ProductId,SkuId\n1,2\n").is_err());
        let bad = "ProductId,SkuId,TermDuration,BillingPlan,Market,Currency,UnitPrice\nA,B,P1Y,Annual,GB,GBP,cheap\n";
        assert!(parse_price_sheet(bad).unwrap_err().contains("UnitPrice"));
    }
}
