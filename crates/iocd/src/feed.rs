//! `iocd feed FORMAT`: writes a feed of a running server (`GET /iocd/v1/feeds/{format}`) to a
//! file, for cron jobs: downloaded to a temporary file beside it and renamed into place, so a
//! reader never sees half a feed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::client::{ApiClient, ServerArgs};

#[derive(clap::Args)]
pub struct FeedArgs {
    /// The feed: edl-ip, edl-domain, edl-url, fortigate-ip, fortigate-domain, fortigate-url,
    /// fortigate-hash, rpz, suricata-sha256, suricata-md5, suricata-ip, zeek-intel or
    /// text-TYPE (an indicator type, such as text-DomainName).
    pub format: String,
    /// A feed option NAME=VALUE (action=Block,Warn, deviceGroup=…, minSeverity=High, type=…,
    /// max=N, subdomains=false, policy=nxdomain|nodata|drop|cname:NAME). Repeatable.
    #[arg(long = "option", short = 'o', value_name = "NAME=VALUE")]
    pub options: Vec<String>,
    /// Where to write (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(args: FeedArgs) -> anyhow::Result<()> {
    let client = ApiClient::connect(&args.server).await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for option in &args.options {
        let (name, value) = option
            .split_once('=')
            .with_context(|| format!("--option {option}: expected NAME=VALUE"))?;
        query.append_pair(name, value);
    }
    let query = query.finish();
    let format: String = form_urlencoded::byte_serialize(args.format.as_bytes()).collect();
    let mut path = format!("/iocd/v1/feeds/{format}");
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            client.download(&path, &mut out).await?;
            out.flush()?;
        }
        Some(file) => {
            let dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut temp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let bytes = client.download(&path, temp.as_file_mut()).await?;
            temp.as_file_mut().sync_all()?;
            temp.persist(file)
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {bytes} bytes to {}", file.display());
        }
    }
    Ok(())
}
