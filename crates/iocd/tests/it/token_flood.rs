//! The token endpoint's memory under a flood of wrong secrets, measured on the real `iocd serve`
//! process (`VmRSS` in /proc). A parallel flood once took a fresh server from 15 MB to 250 MB,
//! and the memory was never returned: every failure is an argon2 run of 19 MiB, and freed blocks
//! that size stayed, fragmented, in the C allocator's per-thread arenas. This flood, 1,600 wrong
//! secrets 64 at a time from 16 loopback addresses (so the per-address lockout still lets about
//! 1,000 argon2 runs through), grew the server from 46 MiB to 373 MiB before argon2 got threads
//! and working memory of its own; now it stays within a few MiB of one block per core, and the
//! app whose secret was verified before the flood still gets tokens after it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::StreamExt;
use iocd_testkit::{client_credentials_token, ScratchDatabase, AUDIENCE, TENANT};

const MIB: u64 = 1024 * 1024;
const ADDRESSES: u8 = 16;
const REQUESTS: usize = 1_600;
const PARALLEL: usize = 64;

#[tokio::test]
async fn a_parallel_flood_of_wrong_secrets_leaves_memory_bounded() {
    let database = ScratchDatabase::sqlite();
    let app = crate::iocd().create_app(&database.url, TENANT, "flood victim", "Ti.ReadWrite.All");
    let server = crate::iocd().serve().database(&database.url).start().await;
    let url = server.url(&format!("/{TENANT}/oauth2/v2.0/token"));
    // Warm up: the secret is verified once (argon2 has run), keys and pools exist.
    let warm = reqwest::Client::new();
    client_credentials_token(&warm, &server.base_url(), &app).await;
    let before = server.rss_bytes().expect("VmRSS of iocd serve");

    // Each source address has its own client (its own connections).
    let clients: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..ADDRESSES)
            .map(|i| {
                reqwest::Client::builder()
                    .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i)))
                    .build()
                    .unwrap()
            })
            .collect(),
    );
    let mut peak = before;
    let statuses: Vec<u16> = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let clients = clients.clone();
            let url = url.clone();
            // Half at the victim's client id, half at unknown ones.
            let client_id = if i % 2 == 0 {
                app.client_id.clone()
            } else {
                uuid::Uuid::new_v4().to_string()
            };
            async move {
                let client = &clients[i % clients.len()];
                let res = client
                    .post(&url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", client_id.as_str()),
                        ("client_secret", "wrong-secret"),
                        ("scope", &format!("{AUDIENCE}/.default")),
                    ])
                    .send()
                    .await
                    .expect("the token endpoint answers");
                res.status().as_u16()
            }
        })
        .buffer_unordered(PARALLEL)
        .inspect(|_| {
            if let Some(rss) = server.rss_bytes() {
                peak = peak.max(rss);
            }
        })
        .collect()
        .await;
    let after = server.rss_bytes().expect("VmRSS of iocd serve");

    let refused = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(refused + throttled, REQUESTS, "{statuses:?}");
    // Each address is locked after 60 failures a minute: most of the flood is throttled, but
    // enough got through to run argon2 hundreds of times.
    assert!(
        throttled > 0 && refused >= 500,
        "{refused} refused, {throttled} throttled"
    );

    // The victim still gets tokens.
    client_credentials_token(&warm, &server.base_url(), &app).await;

    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    // One argon2 block of 19 MiB per core, kept for reuse, and room for the connections.
    let bound = 32 * MIB + cores * 19 * MIB;
    println!(
        "token flood: {REQUESTS} wrong secrets, {PARALLEL} in parallel from {ADDRESSES} addresses \
         ({refused} × 401, {throttled} × 429) on {cores} cores: VmRSS {} MiB before, {} MiB peak, \
         {} MiB after (bound: +{} MiB)",
        before / MIB,
        peak / MIB,
        after / MIB,
        bound / MIB
    );
    assert!(
        peak.saturating_sub(before) <= bound && after.saturating_sub(before) <= bound,
        "VmRSS grew from {} MiB to a peak of {} MiB ({} MiB after); the bound is +{} MiB",
        before / MIB,
        peak / MIB,
        after / MIB,
        bound / MIB
    );
}
