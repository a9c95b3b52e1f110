//! iocd's HTTP API: thin axum handlers over [`iocd_domain`] and an [`IndicatorStore`].

pub mod bulk;
pub mod changes;
pub mod connections;
pub mod emulator;
pub mod error;
pub mod extract;
pub mod faults;
pub mod feeds;
pub mod handlers;
mod html;
pub mod identity;
pub mod journal;
pub mod list;
pub mod match_api;
pub mod metrics;
pub mod oauth;
pub mod openapi;
mod openapi_complete;
mod paths;
pub mod portal;
mod protocol;
pub mod ratelimit;
pub mod redact;
mod signin;
pub mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Router};
use iocd_ratelimit::RateLimiter;
use iocd_store::{IndicatorStore, MatchEngine, Stores, WriteLimits};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig as TlsConfig;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::NormalizePath;
use tower_http::request_id::{MakeRequestUuid, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_scalar::Servable;

pub use connections::ConnectionLimits;
pub use handlers::DeleteStatus;
use identity::Authenticator;
use iocd_identity::{IdentityConfig, IdentityProvider, NewAppCredentials, TokenAuthenticator};
pub use ratelimit::RateLimitConfig;

/// Everything that shapes the server's behaviour; every limit is here.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Most active indicators per tenant (`None` = unlimited). The reference's is 15,000.
    pub max_active_indicators: Option<u64>,
    /// Status of a successful single delete.
    pub delete_status: DeleteStatus,
    /// Public base URL (`https://iocd.example.com`) for `@odata.context` and links; by default
    /// the scheme and `Host` the client used.
    pub public_url: Option<String>,
    /// Rate limits per (tenant, app, endpoint family); build the limiter with
    /// [`ratelimit::build_limiter`] into [`AppStateInner::rate_limiter`].
    pub rate_limits: RateLimitConfig,
    /// Token issuing and validation: issuer URL, accepted audiences, lifetime, external issuers.
    pub identity: IdentityConfig,
    /// Header, body and idle timeouts and the connection cap, on every listener and tunnel.
    pub connections: ConnectionLimits,
    /// Serve the emulator controls under `/_iocd/` (`--emulator`); off, they answer 404.
    pub emulator: bool,
    /// The emulator's well-known app, created again by `POST /_iocd/reset?all=true` and the
    /// default tenant of `POST /_iocd/seed`.
    pub well_known_app: Option<NewAppCredentials>,
    /// Fault rules in force from the start (`--fault`); `/_iocd/faults` changes them.
    pub faults: Vec<faults::FaultRule>,
    /// Most calls the emulator's request journal keeps (`--journal-size`; 0 keeps none).
    pub journal_size: usize,
    /// Most bytes of each request and response body the journal keeps.
    pub journal_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            // A 500-indicator import of long URLs and descriptions fits comfortably.
            max_body_bytes: 8 * 1024 * 1024,
            max_active_indicators: Some(15_000),
            delete_status: DeleteStatus::NoContent,
            public_url: None,
            rate_limits: RateLimitConfig::default(),
            identity: IdentityConfig::default(),
            connections: ConnectionLimits::default(),
            emulator: false,
            well_known_app: None,
            faults: Vec::new(),
            journal_size: 1_000,
            journal_body_bytes: 16 * 1024,
        }
    }
}

/// What every handler reaches through axum's `State`. One `Arc` around all the parts, because
/// the state is cloned for every extractor and middleware of every request: cloning eleven
/// `Arc`s (and dropping them) made two cores contend on their counters, 8 % of a profile of
/// the match API's GETs.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppStateInner {
    pub store: Arc<dyn IndicatorStore>,
    pub authenticator: Arc<dyn Authenticator>,
    /// iocd's own identity provider: signing key, app registry, token endpoint state.
    pub identity: Arc<IdentityProvider>,
    pub config: Arc<ServerConfig>,
    /// Decides every API call's rate limit (built from `config.rate_limits`).
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// The tenants' match indexes, following `store`'s writes (and other replicas').
    pub matcher: Arc<MatchEngine>,
    /// The emulator's fault rules (`faults::inject`).
    pub faults: Arc<faults::Faults>,
    /// The web portal's sessions (`/portal`).
    pub portal: Arc<portal::Sessions>,
    /// The emulator's request journal (`journal::record`).
    pub journal: Arc<journal::Journal>,
    /// What `/metrics` serves.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// The state for a server over `stores`: loads (or on first start generates and stores) the
    /// token-signing key and sets up bearer-token authentication. `listen_url` is the base of
    /// iocd's issuer URL unless the configuration names one (`identity.issuer_url`, else
    /// `public_url`).
    pub async fn new(
        stores: Stores,
        config: ServerConfig,
        listen_url: &str,
    ) -> anyhow::Result<AppState> {
        let issuer_base = config
            .identity
            .issuer_url
            .clone()
            .or_else(|| config.public_url.clone())
            .unwrap_or_else(|| listen_url.to_string());
        let identity = Arc::new(
            IdentityProvider::open(stores.identity, &config.identity, &issuer_base).await?,
        );
        let authenticator = Arc::new(TokenAuthenticator::new(identity.clone(), &config.identity));
        let rate_limiter = ratelimit::build_limiter(&config.rate_limits).await?;
        if let Some(lockouts) =
            ratelimit::shared_lockouts(&config.rate_limits, &config.identity).await?
        {
            identity.set_lockouts(lockouts);
        }
        let matcher = MatchEngine::start(stores.indicators.clone());
        let store = stores.indicators;
        let faults = Arc::new(faults::Faults::new(config.faults.clone()));
        let journal = Arc::new(journal::Journal::new(
            if config.emulator {
                config.journal_size
            } else {
                0
            },
            config.journal_body_bytes,
        ));
        let metrics = Arc::new(metrics::Metrics::new(store.writer_metrics()));
        Ok(AppState(Arc::new(AppStateInner {
            portal: Arc::new(portal::Sessions::default()),
            faults,
            journal,
            metrics,
            store,
            matcher,
            authenticator,
            identity,
            config: Arc::new(config),
            rate_limiter,
        })))
    }

    pub fn write_limits(&self) -> WriteLimits {
        WriteLimits {
            max_active_indicators: self.config.max_active_indicators,
        }
    }
}

fn api_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/indicators",
            post(handlers::submit_indicator).get(list::list_indicators),
        )
        .route("/indicators/import", post(bulk::import_indicators))
        .route(
            "/indicators/BatchDelete",
            post(bulk::batch_delete_indicators),
        )
        .route(
            "/indicators/{id}",
            get(handlers::get_indicator).delete(handlers::delete_indicator),
        )
        // Last: it wraps only the routes above. Each route's family is in `ratelimit::family_of`.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::enforce,
        ))
}

/// iocd's own routes (under `/iocd/v1`).
fn iocd_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/iocd/v1/match",
            post(match_api::match_batch).get(match_api::match_one),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            ratelimit::enforce,
        ))
        // Not rate-limited: enforcement points poll on a schedule, and may send Basic
        // credentials, which the limiter's authentication does not read.
        .route(
            "/iocd/v1/feeds/{format}",
            // gzip when the client accepts it; large lists shrink about tenfold.
            get(feeds::feed).layer(tower_http::compression::CompressionLayer::new().gzip(true)),
        )
}

/// The application with all its layers, ready to serve.
pub fn app(state: AppState) -> Router {
    let openapi = openapi::document();
    let body_limit = state.config.max_body_bytes;
    let routes = Router::new()
        .nest("/api", api_routes(&state))
        .nest("/api/v1.0", api_routes(&state))
        .merge(iocd_routes(&state))
        .nest("/_iocd", emulator::routes(&state))
        .merge(oauth::routes())
        .route(
            "/iocd/v1/indicators/{id}/history",
            get(changes::indicator_history),
        )
        .route("/iocd/v1/changes", get(changes::changes))
        .route("/iocd/v1/changes/stream", get(changes::change_stream))
        .merge(signin::routes())
        .merge(portal::routes())
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi.clone()) }),
        )
        .merge(utoipa_scalar::Scalar::with_url(
            "/docs",
            openapi::document(),
        ))
        .fallback(handlers::no_route)
        .with_state(state.clone());
    // The layers wrap the router once, as the fallback of a router without routes, so that
    // every request passes them, and the type stays a `Router`. `Router::layer` would wrap each
    // route instead, and every request would clone its route's chain of layers: a boxed clone
    // per `from_fn` level and route.
    Router::new().fallback_service(
        // Outermost first: the request id exists before anything logs or fails.
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(error::REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        let id = req
                            .headers()
                            .get(error::REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        // Display, not plain strings: the text log formats a string
                        // field with Debug, escaping it one character at a time, and the
                        // span is made for every request.
                        tracing::info_span!(
                            "request",
                            id = %id,
                            method = %req.method().as_str(),
                            path = %req.uri().path()
                        )
                    })
                    .on_request(())
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(middleware::from_fn_with_state(
                state.clone(),
                metrics::observe,
            ))
            .layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("odata-version"),
                HeaderValue::from_static("4.0"),
            ))
            // Outside the error envelope: the journal keeps the body the client received.
            .layer(middleware::from_fn_with_state(
                state.clone(),
                journal::record,
            ))
            // Also refuses an oversize URI or head first, in the API's shape.
            .layer(middleware::from_fn(error::error_envelope))
            // Inside the error envelope, so injected errors get Defender's body and a
            // request id.
            .layer(middleware::from_fn_with_state(state, faults::inject))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("a handler panicked");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }))
            .layer(DefaultBodyLimit::max(body_limit))
            .service(routes),
    )
}

/// A bound, not yet running server: the plain listener, and optionally an HTTPS listener and
/// the interception of Microsoft's hosts (CONNECT on the plain listener).
pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    https: Option<(TcpListener, Arc<TlsConfig>)>,
    interception: Option<Arc<TlsConfig>>,
    /// Whether requests keep the URI the client sent, for the emulator's request journal.
    journal: bool,
}

impl Server {
    pub async fn bind(addr: SocketAddr, state: AppState) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::on_listener(listener, state))
    }

    /// A server on a listener bound beforehand (to learn its port before building the state).
    pub fn on_listener(listener: TcpListener, state: AppState) -> Server {
        let limits = state.config.connections;
        let journal = state.config.emulator;
        Server {
            listener,
            router: app(state),
            limits,
            https: None,
            interception: None,
            journal,
        }
    }

    /// Also serves the application over TLS on `listener`, with `certificates`.
    pub fn with_https(mut self, listener: TcpListener, certificates: Arc<TlsConfig>) -> Server {
        self.https = Some((listener, certificates));
        self
    }

    /// Answers `CONNECT` for Microsoft's login and Defender API hosts on the plain listener,
    /// terminating TLS with `certificates` (which must cover those hosts).
    pub fn with_interception(mut self, certificates: Arc<TlsConfig>) -> Server {
        self.interception = Some(certificates);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The HTTPS listener's address, when there is one.
    pub fn https_local_addr(&self) -> Option<SocketAddr> {
        self.https
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // Paths are matched case-insensitively (`/api/indicators/batchdelete`), as ASP.NET does,
        // and with or without a trailing slash (`/api/indicators/`), which some connectors send;
        // the rewrites must happen before routing, so they wrap the router (one app for every
        // listener and tunnel).
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        // Long-polls and event streams end when shutdown begins. Added around the router, not
        // with `Router::layer`, which would wrap every route in a service that each request
        // clones (an allocation per layer and route level).
        let router = tower::Layer::layer(
            &axum::Extension(changes::ShuttingDown(stopped.clone())),
            self.router,
        );
        let app: transport::App = tower::ServiceExt::map_request(
            NormalizePath::trim_trailing_slash(tower::ServiceExt::map_request(
                router,
                paths::canonicalise as fn(Request) -> Request,
            )),
            if self.journal {
                remember_client_uri as fn(Request) -> Request
            } else {
                // Only the journal reads it: one boxed request extension less.
                std::convert::identity
            },
        );
        transport::Serving::new(
            app,
            self.listener,
            self.https,
            self.interception,
            self.limits,
        )
        .run(stopped)
        .await;
        Ok(())
    }
}

/// Keeps the URI as the client sent it (for the request journal) before it is rewritten.
fn remember_client_uri(mut req: Request) -> Request {
    let uri = req.uri().clone();
    req.extensions_mut().insert(journal::ClientUri(uri));
    req
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down: finishing in-flight requests");
    // Give load balancers a moment; in-flight requests finish regardless.
    tokio::time::sleep(Duration::from_millis(10)).await;
}
