//! The `iocd` command: `iocd serve` runs the server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use iocd_ratelimit::{Policy, PolicyOverride};
use iocd_server::identity::FixedIdentity;
use iocd_server::{AppState, DeleteStatus, RateLimitConfig, Server, ServerConfig};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "iocd",
    version,
    about = "A self-hostable threat-intelligence indicator service, wire-compatible with the Microsoft Defender for Endpoint Indicators API."
)]
struct Cli {
    /// Log format.
    #[arg(long, env = "IOCD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "IOCD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL: sqlite://PATH (created if missing).
    #[arg(long, env = "IOCD_DATABASE_URL", default_value = "sqlite://iocd.db")]
    database: String,
    /// Most active (non-expired) indicators per tenant; 0 = unlimited.
    #[arg(long, env = "IOCD_MAX_ACTIVE_INDICATORS", default_value_t = 15_000)]
    max_active_indicators: u64,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "IOCD_MAX_BODY_BYTES", default_value_t = ServerConfig::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Status of a successful DELETE: 204 (documented) or 200 with an empty body (observed in production).
    #[arg(long, env = "IOCD_DELETE_STATUS", default_value = "204", value_parser = ["204", "200"])]
    delete_status: String,
    /// Public base URL used in @odata.context and links (default: the scheme and Host of each request).
    #[arg(long, env = "IOCD_PUBLIC_URL")]
    public_url: Option<String>,
    /// Rate limits per (tenant, app, endpoint family): MDE's documented limits (adjusted by
    /// --rate-limit), or off.
    #[arg(long, env = "IOCD_RATE_LIMITS", value_enum, default_value_t = Switch::On)]
    rate_limits: Switch,
    /// Replace one family's limits: FAMILY=LIMIT/PERIOD[,LIMIT/PERIOD…] or FAMILY=off, where FAMILY
    /// is submit, list, get, delete, import, batchdelete or all and PERIOD a number with ms, s, m, h
    /// or d (e.g. submit=100/1m,1500/1h). Repeatable; in the environment variable separate settings
    /// with ';'.
    #[arg(
        long = "rate-limit",
        env = "IOCD_RATE_LIMIT",
        value_name = "FAMILY=WINDOWS",
        value_delimiter = ';'
    )]
    rate_limit: Vec<PolicyOverride>,
    /// Redis URL (redis://host:6379/0) holding the rate-limit windows, so that every replica shares
    /// them. Without it, each process limits on its own. If Redis is unreachable, rate-limited calls
    /// answer 503 (never unlimited) until it is back.
    #[arg(long, env = "IOCD_REDIS_URL")]
    redis: Option<String>,
    /// Prefix of the rate-limit keys in Redis (to share one Redis between deployments).
    #[arg(long, env = "IOCD_REDIS_KEY_PREFIX", default_value = "iocd:ratelimit")]
    redis_key_prefix: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = iocd_store::open(&args.database)
        .await
        .with_context(|| format!("opening the database {}", args.database))?;
    let config = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_active_indicators: (args.max_active_indicators > 0)
            .then_some(args.max_active_indicators),
        delete_status: if args.delete_status == "200" {
            DeleteStatus::OkEmpty
        } else {
            DeleteStatus::NoContent
        },
        public_url: args.public_url,
        rate_limits: RateLimitConfig {
            enabled: args.rate_limits == Switch::On,
            policy: args
                .rate_limit
                .iter()
                .fold(Policy::mde_defaults(), Policy::with_override),
            redis_url: args.redis,
            redis_key_prefix: args.redis_key_prefix,
            ..RateLimitConfig::default()
        },
    };
    tracing::info!(rate_limits = %config.rate_limits.describe(), "rate limits");
    let rate_limiter = iocd_server::ratelimit::build_limiter(&config.rate_limits).await?;
    let state = AppState {
        store,
        authenticator: Arc::new(FixedIdentity::development()),
        config: Arc::new(config),
        rate_limiter,
    };
    let server = Server::bind(args.listen, state)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(addr = %server.local_addr(), database = %args.database, "iocd is serving; API at /api/indicators, OpenAPI at /openapi.json, docs at /docs");
    server.run(iocd_server::shutdown_signal()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
    }
}
