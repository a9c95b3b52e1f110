//! What a connection may hold: how long it may take to send a request's headers and body, how
//! long it may stay open doing nothing, and how many connections may be open at once. Every
//! listener and tunnel (`transport.rs`) serves its connections through `Connections`, so a
//! client that opens connections and sends nothing, or sends headers a byte at a time, cannot
//! hold the server's descriptors.
//!
//! Each connection has an `Activity`: the bytes it reads outside a request start the header
//! clock, a request in flight stops every clock, and the end of a request (or a byte written)
//! restarts the idle clock. A watchdog closes the connection when a clock runs out. When the
//! connection cap is reached, a new connection evicts the oldest one without a request in
//! flight (an idle keep-alive, a slowloris), so a flood of idle connections cannot shut out a
//! real client; only if every open connection is busy is the new one refused.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The limits every connection of a server is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its headers (and, on TLS, the handshake).
    pub header_read_timeout: Duration,
    /// The longest pause while a request's body is read; the handler then answers 408.
    pub body_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight and nothing sent.
    pub idle_timeout: Duration,
    /// Most connections open at once, over every listener and tunnel. Keep it below the
    /// process's descriptor limit (`iocd serve` does).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The open connections of a server, for the cap and eviction.
pub(crate) struct Connections {
    limits: ConnectionLimits,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Activity>>>,
}

/// What one connection is doing, shared by its I/O, its requests and its watchdog. Times are
/// milliseconds since the server's epoch.
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When the connection last became idle: accepted, answered a request, or wrote a byte.
    idle_since: AtomicU64,
    /// One more than when a byte arrived outside a request (a request's head started); 0: none.
    head_since: AtomicU64,
    /// Told when the connection is evicted.
    evicted: Notify,
}

/// A connection's place among the open ones; dropping it frees the place.
pub(crate) struct Slot {
    connections: Arc<Connections>,
    id: u64,
    pub(crate) activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.connections.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connections {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// A place for a new connection: evicts the oldest idle connection when the cap is reached;
    /// `None` (close the new connection) when every open one is busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= self.limits.max_connections.max(1) {
            let idle = open
                .iter()
                .find(|(_, activity)| activity.in_flight.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            let Some(id) = idle else {
                tracing::warn!(
                    max_connections = self.limits.max_connections,
                    "connection cap reached and every connection is busy; refusing a connection"
                );
                return None;
            };
            if let Some(victim) = open.remove(&id) {
                tracing::debug!("connection cap reached; closing the oldest idle connection");
                victim.evicted.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            evicted: Notify::new(),
        });
        activity.touch();
        open.insert(id, activity.clone());
        Some(Slot {
            connections: self.clone(),
            id,
            activity,
        })
    }

    /// How many connections are open.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.idle_since.store(self.now_ms(), Ordering::Release);
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(self.now_ms() + 1, Ordering::Release);
        }
    }

    /// A request reached the application: its clocks stop until the returned guard drops.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestInFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        RequestInFlight(self.clone())
    }

    /// Resolves when the connection has been evicted or one of its clocks has run out, with the
    /// reason.
    pub(crate) async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        let header = ms(limits.header_read_timeout);
        let idle = ms(limits.idle_timeout);
        loop {
            let now = self.now_ms();
            let (deadline, reason) = if self.in_flight.load(Ordering::Acquire) > 0 {
                (now + header.min(idle), "")
            } else {
                match self.head_since.load(Ordering::Acquire) {
                    0 => (
                        self.idle_since.load(Ordering::Acquire) + idle,
                        "idle timeout",
                    ),
                    since => (since - 1 + header, "header read timeout"),
                }
            };
            if now >= deadline && !reason.is_empty() {
                return reason;
            }
            let wait = Duration::from_millis(deadline.saturating_sub(now).max(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.evicted.notified() => return "evicted at the connection cap",
            }
        }
    }
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX / 2)
}

/// A request in flight on a connection; dropping it (the response is ready) restarts the idle
/// clock.
pub(crate) struct RequestInFlight(Arc<Activity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's byte stream, reporting reads and writes to its [`Activity`], and giving
/// hyper's bare automatic error responses the API's error body (`protocol.rs`).
pub(crate) struct Tracked<IO> {
    io: IO,
    activity: Arc<Activity>,
    /// The answer being written in place of hyper's automatic error response, how much of it
    /// is written, and how many bytes of hyper's to report written once it is all out.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<IO> Tracked<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Tracked {
            io,
            activity,
            replacing: None,
        }
    }
}

impl<IO: AsyncWrite + Unpin> Tracked<IO> {
    /// Starts replacing `written` if it is one of hyper's automatic error responses, written
    /// while no request is in the application (hyper writes those only for a request it could
    /// not parse, so none reached the application).
    fn replace_automatic_answer(&mut self, written: &[u8]) {
        if self.replacing.is_none() && self.activity.in_flight.load(Ordering::Acquire) == 0 {
            if let Some(answer) = crate::protocol::automatic_answer(written) {
                self.replacing = Some((answer, 0, written.len()));
            }
        }
    }

    /// Writes the rest of the replacement; `None` when there is none.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<usize>>> {
        let (answer, done, reported) = self.replacing.as_mut()?;
        while *done < answer.len() {
            match Pin::new(&mut self.io).poll_write(cx, &answer[*done..]) {
                Poll::Ready(Ok(0)) => {
                    return Some(Poll::Ready(Err(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Some(Poll::Ready(Err(e))),
                Poll::Pending => return Some(Poll::Pending),
            }
        }
        let reported = *reported;
        self.replacing = None;
        self.activity.touch();
        Some(Poll::Ready(Ok(reported)))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.replace_automatic_answer(buf);
        if let Some(polled) = self.poll_replacement(cx) {
            return polled;
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            if total <= 512 && crate::protocol::may_be_automatic_answer(first) {
                let written: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                self.replace_automatic_answer(&written);
            }
        }
        if let Some(polled) = self.poll_replacement(cx) {
            return polled;
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            body_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            max_connections,
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let connections = Connections::new(limits(2));
        let first = connections.admit().expect("room");
        let second = connections.admit().expect("room");
        let _busy = second.activity.begin_request();
        let third = connections
            .admit()
            .expect("the idle first connection is evicted");
        assert_eq!(connections.open_count(), 2);
        assert_eq!(
            first.activity.expired(connections.limits()).await,
            "evicted at the connection cap"
        );
        let _busy_too = third.activity.begin_request();
        assert!(
            connections.admit().is_none(),
            "every open connection is busy"
        );
        drop(first);
        assert_eq!(connections.open_count(), 2);
    }

    #[tokio::test]
    async fn clocks_run_out_only_outside_requests() {
        let connections = Connections::new(limits(8));
        let slot = connections.admit().expect("room");
        let started = Instant::now();
        assert_eq!(
            slot.activity.expired(connections.limits()).await,
            "idle timeout"
        );
        assert!(started.elapsed() >= Duration::from_millis(390));

        slot.activity.touch();
        slot.activity.read_some();
        let started = Instant::now();
        assert_eq!(
            slot.activity.expired(connections.limits()).await,
            "header read timeout"
        );
        assert!(started.elapsed() < Duration::from_millis(390));

        let request = slot.activity.begin_request();
        let outcome = tokio::time::timeout(
            Duration::from_millis(600),
            slot.activity.expired(connections.limits()),
        )
        .await;
        assert!(outcome.is_err(), "a request in flight stops the clocks");
        drop(request);
    }
}
