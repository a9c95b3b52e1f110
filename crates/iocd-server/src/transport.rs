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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls::ServerConfig as TlsConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::error::{ErrorBody, ErrorDetail};

/// The application every listener serves: the router behind the path rewrites (case, trailing
/// slash).
pub(crate) type App = tower_http::normalize_path::NormalizePath<
    tower::util::MapRequest<Router, fn(Request) -> Request>,
>;

/// A request extension: the request arrived over TLS (the HTTPS listener or a CONNECT tunnel),
/// so the URLs iocd makes up for it use `https`.
#[derive(Debug, Clone, Copy)]
pub struct ServedOverTls;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers on a TLS connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight TLS connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection that has asked to be served over TLS: accepted on the HTTPS listener, or
/// upgraded from a `CONNECT` on the plain listener.
enum TlsConnection {
    Accepted(tokio::net::TcpStream),
    Tunnel {
        upgrade: hyper::upgrade::OnUpgrade,
        host: String,
    },
}

/// Answers `CONNECT host:443` on the plain listener: a tunnel into iocd itself for the
/// intercepted Microsoft hosts, 403 (and the connection closed) for anything else. iocd never
/// opens a connection of its own.
#[derive(Clone)]
pub(crate) struct Interception {
    enabled: bool,
    tunnels: mpsc::UnboundedSender<TlsConnection>,
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
        let upgrade = hyper::upgrade::on(&mut req);
        if self
            .tunnels
            .send(TlsConnection::Tunnel {
                upgrade,
                host: host.clone(),
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

/// Serves TLS connections (the HTTPS listener's and the CONNECT tunnels') with `app`.
pub(crate) struct TlsServing {
    app: App,
    /// The HTTPS listener and its certificates, if it is on.
    listener: Option<(TcpListener, TlsAcceptor)>,
    /// Certificates for intercepted hosts, if interception is on.
    interception: Option<TlsAcceptor>,
    connections: mpsc::UnboundedReceiver<TlsConnection>,
    tunnels: mpsc::UnboundedSender<TlsConnection>,
}

impl TlsServing {
    pub(crate) fn new(
        app: App,
        listener: Option<(TcpListener, Arc<TlsConfig>)>,
        interception: Option<Arc<TlsConfig>>,
    ) -> Self {
        let (tunnels, connections) = mpsc::unbounded_channel();
        TlsServing {
            app,
            listener: listener.map(|(l, config)| (l, TlsAcceptor::from(config))),
            interception: interception.map(TlsAcceptor::from),
            connections,
            tunnels,
        }
    }

    /// The CONNECT answerer that hands its tunnels to this server.
    pub(crate) fn interception(&self) -> Interception {
        Interception {
            enabled: self.interception.is_some(),
            tunnels: self.tunnels.clone(),
        }
    }

    /// Serves until `shutdown` turns true, then lets open connections finish their requests.
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let TlsServing {
            app,
            listener,
            interception,
            mut connections,
            tunnels,
        } = self;
        // Only the plain listener's interception sends tunnels from now on.
        drop(tunnels);
        let graceful = GracefulShutdown::new();
        // The watch guard must not live across an await (it is not Send): drop it inside.
        let stopping = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopping);
        loop {
            let connection = tokio::select! {
                _ = &mut stopping => break,
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok(stream) => TlsConnection::Accepted(stream),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting an HTTPS connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                Some(connection) = connections.recv() => connection,
            };
            let (acceptor, host) = match &connection {
                TlsConnection::Accepted(_) => match &listener {
                    Some((_, acceptor)) => (acceptor.clone(), None),
                    None => continue,
                },
                TlsConnection::Tunnel { host, .. } => match &interception {
                    Some(acceptor) => (acceptor.clone(), Some(host.clone())),
                    None => continue,
                },
            };
            let watcher = graceful.watcher();
            let app = app.clone();
            tokio::spawn(async move {
                let result = match connection {
                    TlsConnection::Accepted(stream) => {
                        serve_tls(stream, acceptor, app, watcher).await
                    }
                    TlsConnection::Tunnel { upgrade, .. } => match upgrade.await {
                        Ok(upgraded) => {
                            serve_tls(TokioIo::new(upgraded), acceptor, app, watcher).await
                        }
                        Err(e) => Err(e.into()),
                    },
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, host = host.as_deref().unwrap_or(""), "TLS connection ended with an error");
                }
            });
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("TLS connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
    }
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

/// Completes the TLS handshake on `io`, then serves HTTP/1.1 or HTTP/2 over it with `app`.
async fn serve_tls<IO>(
    io: IO,
    acceptor: TlsAcceptor,
    app: App,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io))
        .await
        .map_err(|_| "the TLS handshake timed out")??;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ServedOverTls);
        app.clone().oneshot(req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // Nothing inside TLS upgrades (a CONNECT is answered only on the plain listener).
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    watcher.watch(connection.into_owned()).await
}
