//! Serving benchmark: users pages per second and memory while serving a large tenant.
//!
//! `cargo run --release -p deskbridge-emulator --example bench -- [USERS] [PASSES]`
//! (defaults: 100000 users, 5 passes). Prints one line per pass and a JSON summary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
use std::time::Instant;

use deskbridge_emulator::{Emulator, EmulatorConfig, GenerateOptions, World};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

async fn full_pass(http: &reqwest::Client, token: &str, first: &str) -> usize {
    let mut url = first.to_owned();
    let mut count = 0;
    loop {
        let body: serde_json::Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += body["value"].as_array().unwrap().len();
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return count,
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let users: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let passes: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let rss_start = rss_mib();
    let t0 = Instant::now();
    let world = World::generate(&GenerateOptions {
        seed: 1,
        tenants: 1,
        users_per_tenant: Some(users),
        ..Default::default()
    })
    .unwrap();
    let generate_secs = t0.elapsed().as_secs_f64();
    let rss_world = rss_mib();
    let tenant = world.tenants[0].id.clone();
    let client_id = world.apps[0].client_id.clone();
    let emu = Emulator::start(EmulatorConfig {
        request_log_capacity: 10_000,
        ..EmulatorConfig::new(world)
    })
    .await
    .unwrap();
    let token = emu.issue_app_token(&client_id, &tenant).unwrap();
    let http = reqwest::Client::new();
    let select = format!(
        "{}/users?$top=999&$select=id,displayName,userPrincipalName,mail,accountEnabled,assignedLicenses",
        emu.graph_url()
    );
    let defaults = format!("{}/users?$top=999", emu.graph_url());
    let mut rates = Vec::new();
    let mut rss_after = Vec::new();
    for pass in 0..passes {
        let url = if pass % 2 == 0 { &select } else { &defaults };
        let t = Instant::now();
        let served = full_pass(&http, &token, url).await;
        let rate = served as f64 / t.elapsed().as_secs_f64();
        rates.push(rate);
        rss_after.push(rss_mib());
        println!(
            "pass {pass}: {served} users in {:.2} s = {rate:.0} users/s, RSS {:.1} MiB",
            t.elapsed().as_secs_f64(),
            rss_mib()
        );
    }
    // Four clients paging at once.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, token, url) = (http.clone(), token.clone(), select.clone());
        tasks.push(tokio::spawn(async move { full_pass(&http, &token, &url).await }));
    }
    let mut served = 0;
    for task in tasks {
        served += task.await.unwrap();
    }
    let concurrent = served as f64 / t.elapsed().as_secs_f64();
    println!(
        "4 concurrent clients: {served} users in {:.2} s = {concurrent:.0} users/s, RSS {:.1} MiB",
        t.elapsed().as_secs_f64(),
        rss_mib()
    );
    let summary = serde_json::json!({
        "users": users,
        "generate_secs": generate_secs,
        "rss_start_mib": rss_start,
        "rss_after_generate_mib": rss_world,
        "rss_after_each_pass_mib": rss_after,
        "users_per_sec_single_client": rates,
        "users_per_sec_4_clients": concurrent,
    });
    println!("{summary}");
    emu.shutdown().await;
}
