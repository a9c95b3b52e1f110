//! Loopback ports and small local HTTP services standing in for third parties (Entra's JWKS).

use std::net::SocketAddr;

/// A loopback port nobody listens on right now. Another process could take it before the caller
/// binds it: prefer binding `127.0.0.1:0` yourself where the code under test takes a listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Serves `app` on a new loopback port for the rest of the test; returns its address.
pub async fn serve_router(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A bare axum app answering every request with `body` as JSON, on its own two-thread runtime
/// (as the `iocd` process has): the HTTP ceiling the benchmarks measure iocd against. It runs
/// on a thread of its own, so it does not share the caller's runtime.
pub fn start_bare_axum(body: axum::body::Bytes) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let handler = move |_request_body: axum::body::Bytes| {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            };
            let app = axum::Router::new().fallback(axum::routing::any(handler));
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("bare axum");
        });
    });
    Ok(addr)
}
