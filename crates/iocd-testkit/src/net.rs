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
