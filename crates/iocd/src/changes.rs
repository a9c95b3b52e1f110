//! `iocd changes`: the change feed of a running server (`GET /iocd/v1/changes`) as JSON lines,
//! one entry per line, oldest first; with `--follow` it keeps long-polling for new entries.

use std::io::Write;

use anyhow::Context;
use serde_json::Value;

use crate::client::{ApiClient, ServerArgs};

#[derive(clap::Args)]
pub struct ChangesArgs {
    /// Print the entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub since: i64,
    /// Keep waiting for new entries (long-polls) instead of stopping at the end. With client
    /// credentials, a new token is fetched whenever the current one expires.
    #[arg(long)]
    pub follow: bool,
    /// Longest a long-poll of --follow waits for an entry, in seconds (the server caps it at 60).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub wait: u32,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(args: ChangesArgs) -> anyhow::Result<()> {
    let client = ApiClient::connect(&args.server).await?;
    let mut since = args.since;
    let wait = if args.follow { args.wait } else { 0 };
    let stdout = std::io::stdout();
    loop {
        let url = client.url(&format!(
            "/iocd/v1/changes?since={since}&limit=1000&wait={wait}"
        ));
        let page = client.get(&url).await?;
        let entries = page
            .get("value")
            .and_then(Value::as_array)
            .with_context(|| format!("the answer to GET {url} has no \"value\" array"))?;
        let mut out = stdout.lock();
        for entry in entries {
            writeln!(out, "{entry}")?;
        }
        out.flush()?;
        since = page
            .get("nextSince")
            .and_then(Value::as_i64)
            .with_context(|| format!("the answer to GET {url} has no \"nextSince\""))?;
        if entries.is_empty() && !args.follow {
            return Ok(());
        }
    }
}
