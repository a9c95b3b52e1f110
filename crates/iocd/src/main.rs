//! The `iocd` command: `iocd serve` runs the server, `iocd apps` manages the apps that may get
//! tokens, `iocd token` fetches one, and `iocd import` / `iocd export` move indicator files to
//! and from a running server over HTTP.

mod apps;
mod changes;
mod client;
mod client_auth;
mod config_file;
mod durations;
mod export;
mod feed;
mod import;
mod tls;
mod users;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use iocd_identity::{
    bootstrap_development_app, ensure_well_known_app, ExternalIssuer, IdentityConfig,
    NewAppCredentials, DEFAULT_AUDIENCES, EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET,
    EMULATOR_TENANT_ID,
};
use iocd_ratelimit::{Policy, PolicyOverride};
use iocd_server::{
    AppState, ConnectionLimits, DeleteStatus, RateLimitConfig, Server, ServerConfig,
};
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
    /// One log line per request, with its id, method, path, status and latency, at info. Off
    /// by default: formatting and writing the line costs more than answering a match
    /// (docs/benchmarks.md). Warnings and errors name their request either way. `RUST_LOG`,
    /// when set, decides instead.
    #[arg(long, env = "IOCD_ACCESS_LOG", value_enum, default_value_t = Switch::Off, global = true)]
    access_log: Switch,
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
    // Boxed: the server's settings dwarf every other command's.
    Serve(Box<ServeArgs>),
    /// Manage the apps (client id + secret + roles) that may get tokens.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Tenants: list them, and give one a domain alias for authority URLs.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Manage the token-signing keys (rotation).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the people who sign in through apps (delegated Ti.ReadWrite) and their roles.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Fetch an access token from a server's token endpoint and print it.
    Token(TokenArgs),
    /// Import a portal CSV, JSON or STIX 2.1 file into a running server (batches of 500).
    Import(import::ImportArgs),
    /// Export every indicator from a running server as CSV, JSON or STIX 2.1.
    Export(export::ExportArgs),
    /// Print a running server's change log as JSON lines (`--follow` to keep waiting).
    Changes(changes::ChangesArgs),
    /// Write a feed of a running server (an EDL, RPZ, Suricata dataset, Zeek Intel file, ...)
    /// to a file, replaced atomically: for cron jobs.
    Feed(feed::FeedArgs),
    /// Print the local certificate authority's certificate (PEM) for clients to trust; the CA
    /// is created if the database has none yet.
    Ca {
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Print the OpenAPI document the server serves at /openapi.json (as committed in
    /// docs/openapi.json).
    Openapi,
    /// Write a consistent copy of a SQLite store to a file while servers keep writing to it
    /// (SQLite's VACUUM INTO). PostgreSQL: pg_dump (docs/deployment.md).
    Backup {
        #[command(flatten)]
        db: DatabaseArg,
        /// The backup file to write (it must not exist).
        #[arg(long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Restore a backup into a new or empty SQLite store (one holding indicators, apps or users
    /// is refused). Stop the servers of that store first.
    Restore {
        /// The backup file (`iocd backup --output`).
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        #[command(flatten)]
        db: DatabaseArg,
    },
    /// Configuration files for `iocd serve --config`.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: every key a long flag name of `iocd serve`, every value one
    /// that flag accepts. Exits non-zero naming what is wrong.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct DatabaseArg {
    /// Database URL: sqlite://PATH (created if missing) or postgres://….
    #[arg(long, env = "IOCD_DATABASE_URL", default_value = "sqlite://iocd.db")]
    database: String,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Register an app; prints {"tenantId","clientId","clientSecret"} (the secret only this once).
    Create {
        #[command(flatten)]
        db: DatabaseArg,
        /// Tenant the app belongs to (created with its first app); a GUID is best.
        #[arg(long)]
        tenant: String,
        /// Display name, shown as createdByDisplayName on the app's indicators.
        #[arg(long)]
        name: String,
        /// Application role: Ti.Read.All, Ti.ReadWrite, Ti.ReadWrite.All or Iocd.Admin (the emulator
        /// controls) (repeatable; may be left out for a --public-client).
        #[arg(long = "role", required_unless_present = "public_client")]
        roles: Vec<String>,
        /// Give the app this certificate (a PEM file; only its CERTIFICATE block is read)
        /// instead of a secret: it then signs client assertions with the certificate's key.
        #[arg(long, value_name = "PEM")]
        certificate: Option<PathBuf>,
        /// A public client (a script, CLI or native app): signs people in without a secret
        /// (device code, authorization code with PKCE, password).
        #[arg(long)]
        public_client: bool,
        /// A redirect URI of the authorization-code flow (repeatable). Public clients may also
        /// use any http://localhost port.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// Register one more certificate (PEM) on an app; its secret and other certificates stay.
    AddCertificate {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
        /// A PEM file; only its CERTIFICATE block is read.
        #[arg(long, value_name = "PEM")]
        certificate: PathBuf,
    },
    /// Remove a certificate from an app, by its SHA-1 thumbprint (as `apps list` shows it).
    RemoveCertificate {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        thumbprint: String,
    },
    /// List apps (without secrets) as JSON.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// Only this tenant's apps.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete an app; tokens it already holds stay valid until they expire.
    Delete {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Let authority URLs name the tenant by a domain, as Entra accepts in
    /// login.microsoftonline.com/contoso.onmicrosoft.com: token, discovery and key
    /// endpoints then answer under /DOMAIN/… as under /TENANT/….
    Alias {
        #[command(flatten)]
        db: DatabaseArg,
        /// The tenant (it must have an app).
        #[arg(long)]
        tenant: String,
        /// The domain, such as contoso.onmicrosoft.com (case-insensitive; one tenant each).
        #[arg(long)]
        domain: String,
    },
    /// List the tenants (those with apps), their app counts and domain aliases, as JSON.
    List {
        #[command(flatten)]
        db: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a new signing key and make it the active one. The previous key stays in the
    /// JWKS and keeps validating until every token it signed has expired (token lifetime +
    /// leeway + the servers' key reload interval), then it is dropped. Running servers on the
    /// database pick the new key up within 30 s, and at once when they meet a token it signed.
    Rotate {
        #[command(flatten)]
        db: DatabaseArg,
        /// The servers' token lifetime in seconds (as given to `serve`).
        #[arg(long, env = "IOCD_TOKEN_LIFETIME_SECS", default_value_t = 3599, value_parser = clap::value_parser!(u64).range(60..=86_400))]
        token_lifetime_secs: u64,
        /// The servers' leeway in seconds (as given to `serve`).
        #[arg(long, env = "IOCD_TOKEN_LEEWAY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=300))]
        token_leeway_secs: u64,
    },
    /// List the signing keys (ids and times, never the keys) as JSON.
    List {
        #[command(flatten)]
        db: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; prints the user with a generated password (shown only this once) unless
    /// --password-stdin gives one.
    Create {
        #[command(flatten)]
        db: DatabaseArg,
        /// Tenant the user belongs to (it must have an app: `iocd apps create`).
        #[arg(long)]
        tenant: String,
        /// Display name, shown as createdByDisplayName on what the user writes.
        #[arg(long)]
        name: String,
        /// User principal name (sign-in name), such as alice@contoso.example.
        #[arg(long)]
        upn: String,
        /// Iocd.Indicators.Read, Iocd.Indicators.Manage or Iocd.Admin (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (without passwords) as JSON.
    List {
        #[command(flatten)]
        db: DatabaseArg,
        /// Only this tenant's users.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a user and end their sessions.
    Delete {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        upn: String,
    },
    /// Set a new password (generated and printed, or from --password-stdin); ends the user's
    /// sessions.
    SetPassword {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        upn: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

async fn run_users(command: UsersCommand) -> anyhow::Result<()> {
    let result = match command {
        UsersCommand::Create {
            db,
            tenant,
            name,
            upn,
            roles,
            password_stdin,
        } => users::create(&db.database, &tenant, &name, &upn, &roles, password_stdin).await?,
        UsersCommand::List { db, tenant } => users::list(&db.database, tenant.as_deref()).await?,
        UsersCommand::Delete { db, tenant, upn } => {
            users::delete(&db.database, &tenant, &upn).await?
        }
        UsersCommand::SetPassword {
            db,
            tenant,
            upn,
            password_stdin,
        } => users::change_password(&db.database, &tenant, &upn, password_stdin).await?,
    };
    print_json(&result)
}

#[derive(clap::Args)]
struct TokenArgs {
    /// Base URL of the iocd server.
    #[arg(long, env = "IOCD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, env = "IOCD_TENANT_ID")]
    tenant: String,
    #[arg(long, env = "IOCD_CLIENT_ID")]
    client_id: String,
    #[arg(long, env = "IOCD_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file of these settings, keyed by their long names (listen = "127.0.0.1:8080",
    /// database = "sqlite://iocd.db", rate-limit = ["submit=100/1m"], emulator = true). Flags
    /// and environment variables override it; `iocd config check FILE` validates it.
    #[arg(long, env = "IOCD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
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
    /// is submit, list, get, delete, import, batchdelete, match or all and PERIOD a number with ms, s, m, h
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
    /// Base of iocd's token issuer and endpoint URLs (default: --public-url, else http://LISTEN).
    /// Replicas behind one load balancer must share it.
    #[arg(long, env = "IOCD_ISSUER_URL")]
    issuer_url: Option<String>,
    /// Token audiences (resources) accepted, comma-separated; replaces the default list of the
    /// Defender API's resources. iocd's issuer URL is always accepted too.
    #[arg(long = "audience", env = "IOCD_ACCEPTED_AUDIENCES", value_delimiter = ',', default_values_t = DEFAULT_AUDIENCES.iter().map(|a| a.to_string()))]
    audiences: Vec<String>,
    /// Lifetime in seconds of the tokens iocd issues.
    #[arg(long, env = "IOCD_TOKEN_LIFETIME_SECS", default_value_t = 3599, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    token_lifetime_secs: u64,
    /// Clock skew in seconds tolerated on a token's exp and nbf.
    #[arg(long, env = "IOCD_TOKEN_LEEWAY_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(0..=300))]
    token_leeway_secs: u64,
    /// Also accept tokens of this issuer, with keys from its JWKS: ISSUER=JWKS_URL (repeatable,
    /// comma-separated in the environment). ISSUER may contain {tenantid}.
    #[arg(
        long = "trust-issuer",
        env = "IOCD_TRUSTED_ISSUERS",
        value_delimiter = ','
    )]
    trusted_issuers: Vec<ExternalIssuer>,
    /// How long a refresh token of a delegated sign-in stays usable, in seconds (each use
    /// rotates it; Entra's default is 90 days).
    #[arg(long, env = "IOCD_REFRESH_TOKEN_LIFETIME_SECS", default_value_t = 90 * 24 * 3600, value_parser = clap::value_parser!(u64).range(60..))]
    refresh_token_lifetime_secs: u64,
    /// On a database that never had an app, create a development tenant and app and print its
    /// credentials once.
    #[arg(long, env = "IOCD_DEV_APP", default_value_t = true, action = clap::ArgAction::Set)]
    dev_app: bool,
    /// Seconds a client may take from the first byte of a request to the end of its headers (and
    /// for a TLS handshake); then the connection is closed.
    #[arg(long, env = "IOCD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout_secs: u64,
    /// Longest pause, in seconds, while a request's body is read; then 408.
    #[arg(long, env = "IOCD_BODY_READ_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight (keep-alive); then it is
    /// closed.
    #[arg(long, env = "IOCD_IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout_secs: u64,
    /// Most connections open at once (every listener and tunnel); at the cap a new connection
    /// closes the oldest idle one. 0: the descriptor limit less a reserve for the database, logs
    /// and certificates. Never more than that.
    #[arg(long, env = "IOCD_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Emulator mode, for tests: serve the controls under /_iocd/ (reset, seed…) and provision
    /// the well-known development app (--dev-tenant, --dev-client-id, --dev-client-secret)
    /// instead of a random one. Never on a server others can reach.
    #[arg(long, env = "IOCD_EMULATOR")]
    emulator: bool,
    /// Keep everything in memory (SQLite in memory): the store lives only as long as the process.
    /// Replaces --database.
    #[arg(long, env = "IOCD_IN_MEMORY")]
    in_memory: bool,
    /// The emulator's well-known development tenant id.
    #[arg(long, env = "IOCD_DEV_TENANT", default_value = EMULATOR_TENANT_ID)]
    dev_tenant: String,
    /// The emulator's well-known development client id.
    #[arg(long, env = "IOCD_DEV_CLIENT_ID", default_value = EMULATOR_CLIENT_ID)]
    dev_client_id: String,
    /// The emulator's well-known development client secret.
    #[arg(long, env = "IOCD_DEV_CLIENT_SECRET", default_value = EMULATOR_CLIENT_SECRET, hide_env_values = true, hide_default_value = true)]
    dev_client_secret: String,
    /// Load a CSV, JSON or STIX 2.1 file at start, through import's validation: FILE (into the
    /// development tenant, with --emulator) or TENANT=FILE. Repeatable; refused rows are reported
    /// on stderr with their line and reason.
    #[arg(
        long = "seed",
        env = "IOCD_SEED",
        value_name = "[TENANT=]FILE",
        value_delimiter = ';'
    )]
    seed: Vec<String>,
    /// Time between two runs of the expiry sweeper, which deletes indicators whose
    /// expirationTime has passed (each logged as Expired) and trims the change log: 500ms, 30s,
    /// 1m, 2h…
    #[arg(long, env = "IOCD_SWEEP_INTERVAL", default_value = "1m", value_parser = durations::parse_interval)]
    sweep_interval: Duration,
    /// How long the change log keeps an entry (e.g. 90d, 12h), or off.
    #[arg(long, env = "IOCD_CHANGE_LOG_MAX_AGE", default_value = "90d", value_parser = durations::parse_optional_duration)]
    change_log_max_age: durations::MaybeDuration,
    /// Most change-log entries kept per tenant (the newest); unlimited by default.
    #[arg(long, env = "IOCD_CHANGE_LOG_MAX_ENTRIES")]
    change_log_max_entries: Option<u64>,
    /// Write no change log: only to measure what the log costs (the benchmark's
    /// `--parts changelog`). History, the change feed, feed serials and the match index (this
    /// server's too) all follow the log, so a server without it serves them stale or empty.
    #[arg(long, env = "IOCD_NO_CHANGE_LOG", hide = true)]
    no_change_log: bool,
    /// A fault rule in force from the start (needs --emulator), as JSON:
    /// {"family":"import","status":429,"retryAfter":1,"probability":0.2}. Repeatable.
    #[arg(long = "fault", env = "IOCD_FAULT", value_name = "JSON", value_parser = parse_fault)]
    fault: Vec<iocd_server::faults::FaultRule>,
    /// Most API and token calls the emulator's request journal keeps (GET /_iocd/requests); the
    /// oldest go first. 0 keeps none. Only with --emulator.
    #[arg(long, env = "IOCD_JOURNAL_SIZE", default_value_t = ServerConfig::default().journal_size)]
    journal_size: usize,
    /// Most bytes of each request and response body the journal keeps (the rest is cut).
    #[arg(long, env = "IOCD_JOURNAL_BODY_BYTES", default_value_t = ServerConfig::default().journal_body_bytes)]
    journal_body_bytes: usize,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}

fn init_logging(format: LogFormat, access_log: Switch) {
    let default = match access_log {
        Switch::On => "info,sqlx=warn",
        // The request's span stays, so that what is logged during a request names it.
        Switch::Off => "info,sqlx=warn,tower_http::trace::on_response=warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Logs go to stderr: stdout carries command output (JSON, tokens, the development app).
    // Colours only for a person at a terminal: a log file or a journal gets plain text, and
    // every request's span is formatted without escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Descriptors kept back from the connection cap: the database pool, log and certificate files,
/// Redis, the listeners.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft descriptor limit to the hard one and returns the connection cap: `asked`
/// (0: as many as fit) but never more than the descriptor limit less [`RESERVED_DESCRIPTORS`].
fn connection_cap(asked: usize) -> usize {
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the descriptor limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let fits = usize::try_from(descriptors.saturating_sub(RESERVED_DESCRIPTORS))
        .unwrap_or(usize::MAX)
        .clamp(16, 1_000_000);
    let cap = match asked {
        0 => fits,
        asked if asked > fits => {
            tracing::warn!(
                asked,
                descriptors,
                cap = fits,
                "--max-connections exceeds what the descriptor limit allows; lowered"
            );
            fits
        }
        asked => asked,
    };
    tracing::info!(descriptors, max_connections = cap, "connection limits");
    cap
}

fn parse_fault(text: &str) -> Result<iocd_server::faults::FaultRule, String> {
    iocd_server::faults::FaultRule::parse(text)
}

/// One `--seed` setting: the tenant (if named) and the file.
fn seed_setting(setting: &str) -> (Option<&str>, &str) {
    match setting.split_once('=') {
        Some((tenant, file))
            if !tenant.is_empty() && iocd_identity::validate_tenant_id(tenant).is_ok() =>
        {
            (Some(tenant), file)
        }
        _ => (None, setting),
    }
}

/// Loads the `--seed` files; refused rows go to stderr with their line and reason.
async fn seed_at_start(
    state: &AppState,
    settings: &[String],
    default_tenant: Option<&str>,
) -> anyhow::Result<()> {
    for setting in settings {
        let (tenant, file) = seed_setting(setting);
        let tenant = tenant.or(default_tenant).with_context(|| {
            format!("--seed {setting}: name the tenant (TENANT=FILE); only --emulator has a default tenant")
        })?;
        let content = std::fs::read(file).with_context(|| format!("--seed: reading {file}"))?;
        let format = iocd_formats::detect_format(std::path::Path::new(file), &content)
            .with_context(|| {
                format!("--seed: cannot tell the format of {file} (CSV, JSON or STIX 2.1)")
            })?;
        let report = iocd_server::emulator::seed_tenant(state, tenant, format, &content)
            .await
            .with_context(|| format!("--seed: loading {file}"))?;
        for row in &report.refused {
            eprintln!("seed {file}: line {}: {}", row.line, row.reason);
        }
        for row in &report.skipped {
            eprintln!("seed {file}: line {}: skipped: {}", row.line, row.reason);
        }
        tracing::info!(
            file,
            tenant,
            loaded = report.loaded,
            refused = report.refused.len(),
            "seeded"
        );
    }
    Ok(())
}

async fn serve(mut args: ServeArgs) -> anyhow::Result<()> {
    let connections = ConnectionLimits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
        body_read_timeout: Duration::from_secs(args.body_read_timeout_secs),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_connections: connection_cap(args.max_connections),
    };
    if let Some(file) = &args.config {
        // Its values were read before parsing (config_file.rs), as the flags' defaults.
        tracing::info!(config = %file.display(), "settings from the configuration file, below flags and environment");
    }
    if args.in_memory {
        args.database = iocd_store::sqlite::IN_MEMORY_URL.to_string();
    }
    if !args.fault.is_empty() && !args.emulator {
        anyhow::bail!("--fault needs --emulator");
    }
    let well_known_app = args.emulator.then(|| NewAppCredentials {
        tenant_id: args.dev_tenant.clone(),
        client_id: args.dev_client_id.clone(),
        client_secret: args.dev_client_secret.clone(),
    });
    let change_log = if args.no_change_log {
        tracing::warn!(
            "--no-change-log: writes are not logged; history and the change feed stay empty"
        );
        iocd_store::ChangeLogging::Off
    } else {
        iocd_store::ChangeLogging::On
    };
    let stores =
        iocd_store::open_stores_with(&args.database, iocd_store::StoreOptions { change_log })
            .await
            .with_context(|| format!("opening the database {}", args.database))?;
    let tls = tls::TlsSetup::open(
        stores.certificate_authority.as_ref(),
        &args.tls,
        args.public_url.as_deref(),
    )
    .await?;
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
        identity: IdentityConfig {
            issuer_url: args.issuer_url,
            accepted_audiences: args.audiences,
            token_lifetime: Duration::from_secs(args.token_lifetime_secs),
            leeway_secs: args.token_leeway_secs,
            external_issuers: args.trusted_issuers,
            refresh_token_lifetime: Duration::from_secs(args.refresh_token_lifetime_secs),
            ..IdentityConfig::default()
        },
        connections,
        emulator: args.emulator,
        well_known_app: well_known_app.clone(),
        faults: std::mem::take(&mut args.fault),
        journal_size: args.journal_size,
        journal_body_bytes: args.journal_body_bytes,
    };
    tracing::info!(rate_limits = %config.rate_limits.describe(), "rate limits");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let mut local = listener.local_addr()?;
    if local.ip().is_unspecified() {
        // Listening on every interface: name the server by loopback in URLs it makes up.
        local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let listen_url = format!("http://{local}");
    let development_app = if let Some(well_known) = &well_known_app {
        ensure_well_known_app(stores.identity.as_ref(), well_known)
            .await
            .context("creating the emulator's well-known development app")?;
        None
    } else if args.dev_app {
        bootstrap_development_app(stores.identity.as_ref())
            .await
            .context("creating the development app")?
    } else {
        None
    };
    let state = AppState::new(stores, config, &listen_url)
        .await
        .context("setting up token signing")?;
    let base = state.identity.issuer_base().to_string();
    let sweeper = iocd_store::sweeper::spawn(
        state.store.clone(),
        iocd_store::sweeper::SweepConfig {
            interval: args.sweep_interval,
            retention: iocd_store::Retention {
                max_age: args.change_log_max_age.0,
                max_entries: args.change_log_max_entries,
            },
            ..iocd_store::sweeper::SweepConfig::default()
        },
    );
    seed_at_start(
        &state,
        &args.seed,
        well_known_app.as_ref().map(|app| app.tenant_id.as_str()),
    )
    .await?;
    let server = tls
        .attach(Server::on_listener(listener, state), &args.tls)
        .await?;
    tracing::info!(addr = %server.local_addr(), database = %args.database, issuer = %base, "iocd is serving; API at /api/indicators, tokens at /{{tenant}}/oauth2/v2.0/token, OpenAPI at /openapi.json, docs at /docs");
    if let Some(credentials) = development_app {
        print_development_app(&base, &credentials);
    }
    if let Some(app) = &well_known_app {
        tracing::info!(tenant = %app.tenant_id, client_id = %app.client_id, "emulator mode: controls at /_iocd/, the well-known development app is provisioned (its secret is --dev-client-secret's)");
    }
    server.run(iocd_server::shutdown_signal()).await?;
    sweeper.abort();
    Ok(())
}

/// Printed once, on stdout, when the development app is created: its secret is shown nowhere else.
fn print_development_app(base: &str, app: &NewAppCredentials) {
    let NewAppCredentials {
        tenant_id,
        client_id,
        client_secret,
    } = app;
    let resource = client_auth::DEFAULT_RESOURCE;
    println!(
        "\nCreated a development app (Ti.ReadWrite.All) on this empty database. Its secret is shown only now.
  tenant id:     {tenant_id}
  client id:     {client_id}
  client secret: {client_secret}

Get a token and submit an indicator:
  TOKEN=$(curl -s {base}/{tenant_id}/oauth2/v2.0/token -d grant_type=client_credentials -d client_id={client_id} -d client_secret={client_secret} -d scope={resource}/.default | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')
  curl -s {base}/api/indicators -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"indicatorValue\":\"evil.example.com\",\"indicatorType\":\"DomainName\",\"action\":\"Block\",\"title\":\"test\",\"description\":\"test\"}}'
or: iocd token --url {base} --tenant {tenant_id} --client-id {client_id} --client-secret {client_secret}
More apps: iocd apps create --tenant <tenant id> --name <name> --role Ti.ReadWrite.All
"
    );
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run_apps(command: AppsCommand) -> anyhow::Result<()> {
    let result = match command {
        AppsCommand::Create {
            db,
            tenant,
            name,
            roles,
            certificate,
            public_client,
            redirect_uris,
        } => {
            let sign_in = apps::SignInSettings {
                public_client,
                redirect_uris,
            };
            apps::create(
                &db.database,
                &tenant,
                &name,
                &roles,
                certificate.as_deref(),
                &sign_in,
            )
            .await?
        }
        AppsCommand::AddCertificate {
            db,
            tenant,
            client_id,
            certificate,
        } => apps::add_certificate(&db.database, &tenant, &client_id, &certificate).await?,
        AppsCommand::RemoveCertificate {
            db,
            tenant,
            client_id,
            thumbprint,
        } => apps::remove_certificate(&db.database, &tenant, &client_id, &thumbprint).await?,
        AppsCommand::List { db, tenant } => apps::list(&db.database, tenant.as_deref()).await?,
        AppsCommand::Delete {
            db,
            tenant,
            client_id,
        } => apps::delete(&db.database, &tenant, &client_id).await?,
    };
    print_json(&result)
}

async fn run_keys(command: KeysCommand) -> anyhow::Result<()> {
    let database = match &command {
        KeysCommand::Rotate { db, .. } | KeysCommand::List { db } => db.database.clone(),
    };
    let stores = iocd_store::open_stores(&database)
        .await
        .with_context(|| format!("opening the database {database}"))?;
    let result = match command {
        KeysCommand::Rotate {
            token_lifetime_secs,
            token_leeway_secs,
            ..
        } => {
            let overlap = iocd_identity::rotation_overlap(
                Duration::from_secs(token_lifetime_secs),
                token_leeway_secs,
                iocd_identity::DEFAULT_KEY_RELOAD_INTERVAL,
            );
            serde_json::to_value(
                iocd_identity::rotate_signing_key(stores.identity.as_ref(), overlap).await?,
            )?
        }
        KeysCommand::List { .. } => {
            iocd_identity::describe_signing_keys(stores.identity.as_ref()).await?
        }
    };
    print_json(&result)
}

async fn run_token(args: TokenArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let token = client_auth::fetch_token(
        &http,
        &args.url,
        &args.tenant,
        &args.client_id,
        &args.client_secret,
    )
    .await?;
    println!("{token}");
    Ok(())
}

/// mimalloc rather than glibc's allocator: a request allocates about a hundred small blocks,
/// and glibc's `malloc` and `free` took a fifth of the server's CPU on `GET /iocd/v1/match`
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = match config_file::command_for(Cli::command(), &args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(2);
        }
    };
    let cli = Cli::from_arg_matches(&command.get_matches_from(&args)).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format, cli.access_log);
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Apps(command) => run_apps(command).await,
        Command::Keys(command) => run_keys(command).await,
        Command::Tenants(TenantsCommand::Alias { db, tenant, domain }) => {
            print_json(&apps::alias_tenant(&db.database, &tenant, &domain).await?)
        }
        Command::Tenants(TenantsCommand::List { db }) => {
            print_json(&apps::list_tenants(&db.database).await?)
        }
        Command::Users(command) => run_users(command).await,
        Command::Token(args) => run_token(args).await,
        Command::Import(args) => {
            if !import::run(args).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Export(args) => export::run(args).await,
        Command::Changes(args) => changes::run(args).await,
        Command::Feed(args) => feed::run(args).await,
        Command::Ca { db } => tls::print_authority(&db.database).await,
        Command::Openapi => {
            println!("{}", iocd_server::openapi::document_json());
            Ok(())
        }
        Command::Backup { db, output } => {
            let report = iocd_store::backup::backup(&db.database, &output)
                .await
                .with_context(|| format!("backing up {}", db.database))?;
            print_json(&serde_json::to_value(report)?)
        }
        Command::Restore { input, db } => {
            let report = iocd_store::backup::restore(&input, &db.database)
                .await
                .with_context(|| format!("restoring {} into {}", input.display(), db.database))?;
            print_json(&serde_json::to_value(report)?)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let keys = config_file::check(&Cli::command(), &file)?;
            println!("{}: ok ({keys} settings)", file.display());
            Ok(())
        }
    }
}
