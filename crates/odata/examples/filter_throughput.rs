//! Measures parsing and evaluation speed: `cargo run --release -p deskbridge-odata --example
//! filter_throughput`. Prints figures; asserts nothing.

use std::error::Error;
use std::time::Instant;

use deskbridge_odata::{EvalOptions, evaluate, parse};
use serde_json::json;

fn main() -> Result<(), Box<dyn Error>> {
    let filter = "accountEnabled eq true and (department in ('Sales','IT') or startswith(displayName,'a')) \
                  and assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900) \
                  and createdDateTime gt 2020-01-01T00:00:00Z";
    let rounds = 100_000;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(parse(std::hint::black_box(filter))?);
    }
    let parse_time = started.elapsed();
    let expr = parse(filter)?;
    let record = json!({
        "displayName": "Ann Lee", "department": "it", "accountEnabled": true,
        "createdDateTime": "2024-03-01T10:00:00Z",
        "assignedLicenses": [{"skuId": "c42b9cae-ea4f-4ab7-9717-81576235ccac"}, {"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900"}],
        "mail": "ann.lee@contoso.com", "jobTitle": "Buyer", "officeLocation": "London"
    });
    let evaluations = 1_000_000;
    let started = Instant::now();
    let mut matched = 0;
    for _ in 0..evaluations {
        if evaluate(&expr, std::hint::black_box(&record), &EvalOptions::graph())? {
            matched += 1;
        }
    }
    let eval_time = started.elapsed();
    println!(
        "filter: {} characters, {} properties",
        filter.len(),
        expr.properties().len()
    );
    println!(
        "parse: {:.2} µs each ({rounds} rounds)",
        parse_time.as_secs_f64() * 1e6 / f64::from(rounds)
    );
    println!(
        "evaluate (Graph, case-insensitive): {:.2} µs each, {matched} of {evaluations} matched",
        eval_time.as_secs_f64() * 1e6 / f64::from(evaluations)
    );
    Ok(())
}
