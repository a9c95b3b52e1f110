//! `iocd export`: every indicator the token may see (following `@odata.nextLink`), written as
//! CSV, JSON or STIX 2.1 in a form `iocd import` reads back losslessly.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use iocd_formats::{export, Format};
use serde_json::Value;

use crate::client::{ApiClient, ServerArgs};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, default_value = "json")]
    pub format: Format,
    /// Where to write (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let client = ApiClient::connect(&args.server).await?;
    let mut entities: Vec<Value> = Vec::new();
    let mut next = Some(client.url("/api/indicators"));
    while let Some(url) = next {
        let page = client.get(&url).await?;
        let values = page
            .get("value")
            .and_then(Value::as_array)
            .with_context(|| format!("the answer to GET {url} has no \"value\" array"))?;
        entities.extend(values.iter().cloned());
        next = page
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let bytes = export(args.format, &entities).context("writing the export")?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout()
            .write_all(&bytes)
            .context("writing to standard output")?,
    }
    eprintln!("exported {} indicators", entities.len());
    Ok(())
}
