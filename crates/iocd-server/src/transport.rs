//! How connections reach the application: the plain listener (which also answers `CONNECT` for
//! the Microsoft hosts iocd intercepts), the HTTPS listener, and the TLS tunnels opened by
//! `CONNECT`. Every path ends in the same router, so routes, state and limits are the same.
//! Certificates come from `iocd-tls`; no handler knows about TLS beyond [`ServedOverTls`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::ServerConfig as TlsConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::connections::{ConnectionLimits, Connections, Slot, Tracked};

use crate::error::{ErrorBody, ErrorDetail};

/// The application every listener serves: the router behind the path rewrites (case, trailing
/// slash), behind the step that remembers the URI the client sent.
pub(crate) type App = tower::util::MapRequest<
    tower_http::normalize_path::NormalizePath<
        tower::util::MapRequest<
            axum::middleware::AddExtension<Router, crate::changes::ShuttingDown>,
            fn(Request) -> Request,
        >,
    >,
    fn(Request) -> Request,
>;

/// A request extension: the address of the client's TCP connection (for a tunnel, of the
/// connection that opened it).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// A request extension: the request arrived over TLS (the HTTPS listener or a CONNECT tunnel),
/// so the URLs iocd makes up for it use `https`.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// How long in-flight connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A `CONNECT` to an intercepted host, answered 200: the connection, once hyper hands it over,
/// is served over TLS as that host.
struct Tunnel {
    upgrade: hyper::upgrade::OnUpgrade,
    host: String,
    peer: Option<std::net::SocketAddr>,
}

/// Answers `CONNECT host:443` on the plain listener: a tunnel into iocd itself for the
/// intercepted Microsoft hosts, 403 (and the connection closed) for anything else. iocd never
/// opens a connection of its own.
#[derive(Clone)]
pub(crate) struct Interception {
    enabled: bool,
    tunnels: mpsc::UnboundedSender<Tunnel>,
}

impl Interception {
    fn answer(&self, mut req: Request) -> Response {
        let target = req.uri().authority().cloned();
        let intercepted = target.as_ref().filter(|authority| {
            authority.port_u16() == Some(iocd_tls::hosts::HTTPS_PORT)
                && iocd_tls::hosts::is_intercepted_host(authority.host())
        });
        let Some(authority) = intercepted.filter(|_| self.enabled) else {
            let shown = target.map_or_else(|| req.uri().to_string(), |a| a.to_string());
            tracing::info!(target = %shown, "refused CONNECT");
            let reason = if self.enabled {
                format!(
                    "iocd answers CONNECT only for Microsoft's login and Defender API hosts on port 443; it never connects to {shown}."
                )
            } else {
                format!("iocd's interception of Microsoft's hosts is off (--intercept off); CONNECT {shown} refused.")
            };
            // Outside the router, so the error envelope is written here (same shape).
            let body = ErrorBody {
                error: ErrorDetail {
                    code: "Forbidden".to_string(),
                    message: reason,
                    target: uuid::Uuid::new_v4().to_string(),
                },
            };
            return (
                StatusCode::FORBIDDEN,
                [(header::CONNECTION, HeaderValue::from_static("close"))],
                axum::Json(body),
            )
                .into_response();
        };
        let host = authority.host().to_ascii_lowercase();
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .map(|PeerAddr(addr)| *addr);
        let upgrade = hyper::upgrade::on(&mut req);
        if self
            .tunnels
            .send(Tunnel {
                upgrade,
                host: host.clone(),
                peer,
            })
            .is_err()
        {
            // Shutting down: no new tunnels.
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        tracing::debug!(%host, "CONNECT tunnel opened");
        StatusCode::OK.into_response()
    }
}

/// The service of the plain listener: `CONNECT` goes to the interception, everything else to
/// the application.
pub(crate) fn plain_service(
    app: App,
    interception: Interception,
) -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request| {
        let app = app.clone();
        let interception = interception.clone();
        async move {
            if req.method() == Method::CONNECT {
                Ok(interception.answer(req))
            } else {
                app.oneshot(req).await
            }
        }
    })
}

/// Serves every connection of a server: the plain listener's, the HTTPS listener's and the
/// CONNECT tunnels', each held to the [`ConnectionLimits`].
pub(crate) struct Serving {
    app: App,
    plain: TcpListener,
    /// The HTTPS listener and its certificates, if it is on.
    https: Option<(TcpListener, TlsAcceptor)>,
    /// Certificates for intercepted hosts, if interception is on.
    interception: Option<TlsAcceptor>,
    connections: Arc<Connections>,
}

/// The first wait after a failed accept; it doubles on each failure in a row, up to a second.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Serving {
    pub(crate) fn new(
        app: App,
        plain: TcpListener,
        https: Option<(TcpListener, Arc<TlsConfig>)>,
        interception: Option<Arc<TlsConfig>>,
        limits: ConnectionLimits,
    ) -> Self {
        Serving {
            app,
            plain,
            https: https.map(|(l, config)| (l, TlsAcceptor::from(config))),
            interception: interception.map(TlsAcceptor::from),
            connections: Connections::new(limits),
        }
    }

    /// Serves until `shutdown` turns true, then lets open connections finish their requests.
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Serving {
            app,
            plain,
            https,
            interception,
            connections,
        } = self;
        let (tunnels, mut tunnelled) = mpsc::unbounded_channel();
        let interception_service = Interception {
            enabled: interception.is_some(),
            tunnels,
        };
        let plain_app = plain_service(app.clone(), interception_service);
        let graceful = GracefulShutdown::new();
        // The watch guard must not live across an await (it is not Send): drop it inside.
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        let mut backoff = ACCEPT_BACKOFF;
        loop {
            let (stream, peer, tls) = tokio::select! {
                _ = &mut stopping => break,
                accepted = plain.accept() => match accepted {
                    Ok((stream, peer)) => (stream, Some(peer), false),
                    Err(e) => {
                        backoff = accept_failed(&e, backoff).await;
                        continue;
                    }
                },
                accepted = accept(https.as_ref()) => match accepted {
                    Ok(stream) => (stream, None, true),
                    Err(e) => {
                        backoff = accept_failed(&e, backoff).await;
                        continue;
                    }
                },
                Some(tunnel) = tunnelled.recv() => {
                    let (Some(acceptor), Some(slot)) = (&interception, connections.admit()) else {
                        continue;
                    };
                    let Tunnel { upgrade, host, peer } = tunnel;
                    let (app, acceptor, watcher) = (app.clone(), acceptor.clone(), graceful.watcher());
                    let limits = *connections.limits();
                    tokio::spawn(async move {
                        let result = match upgrade.await {
                            Ok(upgraded) => {
                                serve_tls(TokioIo::new(upgraded), acceptor, app, watcher, slot, limits, peer).await
                            }
                            Err(e) => Err(e.into()),
                        };
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %host, "TLS tunnel ended with an error");
                        }
                    });
                    continue;
                }
            };
            backoff = ACCEPT_BACKOFF;
            let Some(slot) = connections.admit() else {
                continue;
            };
            let peer = peer.or_else(|| stream.peer_addr().ok());
            let _ = stream.set_nodelay(true);
            let watcher = graceful.watcher();
            let limits = *connections.limits();
            if tls {
                let Some((_, acceptor)) = &https else {
                    continue;
                };
                let (app, acceptor) = (app.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Err(e) =
                        serve_tls(stream, acceptor, app, watcher, slot, limits, peer).await
                    {
                        tracing::debug!(error = %e, "TLS connection ended with an error");
                    }
                });
            } else {
                let service = plain_app.clone();
                tokio::spawn(async move {
                    let io = Tracked::new(stream, slot.activity.clone());
                    if let Err(e) = serve_http(io, service, watcher, slot, limits, peer).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
        drop(plain);
        drop(https);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
}

/// Logs a failed accept (out of descriptors, mostly) and waits before the next one instead of
/// spinning; returns the next wait.
async fn accept_failed(error: &std::io::Error, backoff: Duration) -> Duration {
    tracing::warn!(error = %error, retry_in = ?backoff, "accepting a connection failed");
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(ACCEPT_BACKOFF_MAX)
}

async fn accept(
    listener: Option<&(TcpListener, TlsAcceptor)>,
) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some((listener, _)) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Completes the TLS handshake on `io` (within the header read timeout), then serves HTTP/1.1 or
/// HTTP/2 over it with `app`.
async fn serve_tls<IO>(
    io: IO,
    acceptor: TlsAcceptor,
    app: App,
    watcher: hyper_util::server::graceful::Watcher,
    slot: Slot,
    limits: ConnectionLimits,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = tokio::select! {
        handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)) => {
            handshake.map_err(|_| "the TLS handshake timed out")??
        }
        reason = slot.activity.expired(&limits) => return Err(reason.into()),
    };
    let service = tower::service_fn(move |mut req: Request| {
        req.extensions_mut().insert(ServedOverTls);
        app.clone().oneshot(req)
    });
    let io = Tracked::new(stream, slot.activity.clone());
    serve_http(io, service, watcher, slot, limits, peer).await
}

/// Serves HTTP/1.1 or HTTP/2 on `io` with `service` until the client is done, a clock of the
/// connection runs out, or it is evicted.
async fn serve_http<IO, S>(
    io: Tracked<IO>,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
    slot: Slot,
    limits: ConnectionLimits,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let activity = slot.activity.clone();
    let body_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = activity.begin_request();
        let mut req = req.map(|body| Body::new(TimeoutBody::new(body_timeout, body)));
        if let Some(peer) = peer {
            req.extensions_mut().insert(PeerAddr(peer));
        }
        let call = service.clone().oneshot(req);
        async move {
            let response = call.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Heads larger than the application accepts still reach it, so it answers 414/431 in the
    // API's error shape (`protocol.rs`).
    builder
        .http1()
        .max_buf_size(crate::protocol::HTTP1_MAX_BUF_BYTES);
    builder
        .http2()
        .max_header_list_size(crate::protocol::HTTP2_MAX_HEADER_LIST_BYTES);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::select! {
        served = watcher.watch(connection) => served,
        reason = slot.activity.expired(&limits) => {
            tracing::debug!(reason, "closing a connection");
            Ok(())
        }
    }
}
