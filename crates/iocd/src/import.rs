//! `iocd import FILE`: portal CSV, JSON or STIX 2.1 → `POST /api/indicators/import` in batches of
//! 500, with a progress bar; every refused row is reported with its line and reason.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use iocd_formats::{detect_format, parse, Format, ImportOptions};
use serde_json::{json, Value};

use crate::client::{ApiClient, ServerArgs};

/// The API's maximum batch size.
const BATCH: usize = 500;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The file: portal CSV, a JSON array of indicators, or a STIX 2.1 bundle.
    pub file: PathBuf,
    /// The file's format (by default guessed from its extension and content).
    #[arg(long)]
    pub format: Option<Format>,
    /// Action for STIX indicators that do not carry x_mde_action.
    #[arg(long, default_value = "Block")]
    pub stix_action: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Imports the file; `Ok(false)` when any row failed (reported on stderr).
pub async fn run(args: ImportArgs) -> anyhow::Result<bool> {
    let content =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let format = match args.format {
        Some(format) => format,
        None => detect_format(&args.file, &content).with_context(|| {
            format!(
                "cannot tell the format of {}; pass --format csv|json|stix",
                args.file.display()
            )
        })?,
    };
    let options = ImportOptions {
        default_action: args.stix_action.clone(),
        ..ImportOptions::default()
    };
    let parsed = parse(format, &content, &options)
        .with_context(|| format!("reading {} as {format}", args.file.display()))?;
    let unit = if format == Format::Csv {
        "line"
    } else {
        "item"
    };
    let mut failed = 0usize;
    for problem in &parsed.failed {
        eprintln!("{unit} {}: {}", problem.line, problem.reason);
        failed += 1;
    }
    for problem in &parsed.skipped {
        eprintln!("{unit} {}: skipped: {}", problem.line, problem.reason);
    }

    let client = ApiClient::connect(&args.server).await?;
    let progress = ProgressBar::new(parsed.items.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} indicators, {per_sec}, ETA {eta} {msg}")
            .expect("a valid progress template"),
    );
    let mut imported = 0usize;
    for chunk in parsed.items.chunks(BATCH) {
        let bodies: Vec<&Value> = chunk.iter().map(|item| &item.body).collect();
        let answer = client
            .post_json("/api/indicators/import", &json!({ "Indicators": bodies }))
            .await?;
        let results = answer
            .get("value")
            .and_then(Value::as_array)
            .context("the import answer has no \"value\" array")?;
        for (item, result) in chunk.iter().zip(results) {
            if result.get("isFailed").and_then(Value::as_bool) == Some(true) {
                failed += 1;
                let reason = result
                    .get("failureReason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                progress.suspend(|| eprintln!("{unit} {}: {reason}", item.line));
            } else {
                imported += 1;
            }
        }
        if results.len() != chunk.len() {
            anyhow::bail!(
                "the server answered {} results for a batch of {}",
                results.len(),
                chunk.len()
            );
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    println!(
        "imported {imported}, failed {failed}, skipped {}",
        parsed.skipped.len()
    );
    Ok(failed == 0)
}
