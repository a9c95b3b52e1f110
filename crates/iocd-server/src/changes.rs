//! iocd's change log over HTTP (iocd's own routes, under `/iocd/v1`): one indicator's history,
//! the tenant's change feed with an optional long-poll, and the feed as Server-Sent Events.
//! The store keeps the log and its order; the domain parses the feed's options.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::Stream;
use iocd_domain::change::{FeedQuery, MAX_FEED_LIMIT};
use iocd_domain::{ChangeEntry, ValidationError};
use iocd_store::{IndicatorStore, Scope};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::parse_indicator_id;
use crate::identity::{Caller, READ_ROLES};
use crate::AppState;

/// How often a waiting read looks at the database even without a commit of this process: the
/// writes of other replicas on one PostgreSQL do not wake it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Set by [`crate::Server::run`] when the server begins to shut down: long-polls answer and
/// event streams end, so in-flight requests can finish.
#[derive(Clone)]
pub struct ShuttingDown(pub watch::Receiver<bool>);

/// One indicator's change log.
#[derive(Serialize, ToSchema)]
pub struct ChangeHistory {
    /// Oldest first.
    pub value: Vec<ChangeEntry>,
}

/// One read of the change feed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePage {
    /// Oldest first.
    pub value: Vec<ChangeEntry>,
    /// The `since` of the next read: the last entry's sequence number, or the request's
    /// `since` when there was none.
    pub next_since: i64,
}

/// The history of one indicator.
#[utoipa::path(
    get,
    path = "/iocd/v1/indicators/{id}/history",
    tag = "changes",
    params(("id" = String, Path, description = "Indicator id")),
    responses(
        (status = 200, description = "Every recorded change of the indicator, oldest first; also after it was deleted or expired", body = ChangeHistory),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 403, description = "No read role", body = ErrorBody),
        (status = 404, description = "No change of that indicator is visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn indicator_history(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let id = parse_indicator_id(&id)?;
    let value = app.store.history(&caller.read_scope(), id).await?;
    if value.is_empty() {
        return Err(ApiError::not_found(format!(
            "Indicator {id} has no recorded change."
        )));
    }
    Ok(Json(ChangeHistory { value }).into_response())
}

fn feed_query(raw: Option<&str>) -> Result<FeedQuery, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    Ok(FeedQuery::parse(
        pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )?)
}

/// Waits until `commits` ticks, `until` passes, or the server shuts down.
async fn wait_for_commit(
    commits: &mut watch::Receiver<u64>,
    until: Instant,
    shutdown: Option<&mut watch::Receiver<bool>>,
) {
    let shutdown = async {
        match shutdown {
            Some(rx) => {
                let _ = rx.wait_for(|stop| *stop).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        changed = commits.changed() => {
            if changed.is_err() {
                tokio::time::sleep_until(until).await;
            }
        }
        _ = tokio::time::sleep_until(until) => {}
        _ = shutdown => {}
    }
}

fn stopping(shutdown: &Option<Extension<ShuttingDown>>) -> bool {
    shutdown.as_ref().is_some_and(|s| *s.0 .0.borrow())
}

/// The tenant's change feed.
#[utoipa::path(
    get,
    path = "/iocd/v1/changes",
    tag = "changes",
    params(
        ("since" = Option<i64>, Query, description = "Entries with a sequence number above this (default 0)"),
        ("limit" = Option<u32>, Query, description = "Most entries to return, 1 to 1000 (default 100)"),
        ("wait" = Option<u64>, Query, description = "Seconds (0 to 60) to wait for an entry when there is none yet (default 0)"),
    ),
    responses(
        (status = 200, description = "The entries after `since`, oldest first, and the next `since`", body = ChangePage),
        (status = 400, description = "An invalid option; the message names it", body = ErrorBody),
        (status = 403, description = "No read role", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn changes(
    State(app): State<AppState>,
    caller: Caller,
    shutdown: Option<Extension<ShuttingDown>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(READ_ROLES)?;
    let query = feed_query(raw.as_deref())?;
    let scope = caller.read_scope();
    let deadline = Instant::now() + Duration::from_secs(query.wait_seconds);
    let mut commits = app.store.commits();
    let mut shutdown_rx = shutdown.as_ref().map(|s| s.0 .0.clone());
    loop {
        // Seen before reading: a commit after the read wakes the wait below.
        commits.borrow_and_update();
        let value = app
            .store
            .changes_after(&scope, query.since, query.limit)
            .await?;
        let now = Instant::now();
        if !value.is_empty() || now >= deadline || stopping(&shutdown) {
            let next_since = value.last().map_or(query.since, |e| e.sequence);
            return Ok(Json(ChangePage { value, next_since }).into_response());
        }
        wait_for_commit(
            &mut commits,
            deadline.min(now + POLL_INTERVAL),
            shutdown_rx.as_mut(),
        )
        .await;
    }
}

/// Where a stream of the feed is.
struct Follow {
    store: Arc<dyn IndicatorStore>,
    scope: Scope,
    since: i64,
    pending: VecDeque<ChangeEntry>,
    commits: watch::Receiver<u64>,
    shutdown: Option<watch::Receiver<bool>>,
    /// A read failed: the stream ends (the client reconnects with `Last-Event-ID`).
    failed: bool,
}

impl Follow {
    /// The next entry, waiting for one; `None` when the stream should end.
    async fn next(&mut self) -> Option<Result<ChangeEntry, iocd_store::StoreError>> {
        loop {
            if let Some(entry) = self.pending.pop_front() {
                self.since = entry.sequence;
                return Some(Ok(entry));
            }
            if self.failed || self.shutdown.as_ref().is_some_and(|rx| *rx.borrow()) {
                return None;
            }
            self.commits.borrow_and_update();
            match self
                .store
                .changes_after(&self.scope, self.since, MAX_FEED_LIMIT)
                .await
            {
                Ok(entries) if !entries.is_empty() => self.pending.extend(entries),
                Ok(_) => {
                    let until = Instant::now() + POLL_INTERVAL;
                    wait_for_commit(&mut self.commits, until, self.shutdown.as_mut()).await;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The tenant's change feed as Server-Sent Events.
#[utoipa::path(
    get,
    path = "/iocd/v1/changes/stream",
    tag = "changes",
    params(
        ("since" = Option<i64>, Query, description = "Start after this sequence number (default 0); a `Last-Event-ID` header overrides it"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: one `change` event per entry, its `id` the sequence number and its `data` the entry (a ChangeEntry), oldest first, then each new one as it commits", content_type = "text/event-stream", body = String),
        (status = 400, description = "An invalid option; the message names it", body = ErrorBody),
        (status = 403, description = "No read role", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn change_stream(
    State(app): State<AppState>,
    caller: Caller,
    shutdown: Option<Extension<ShuttingDown>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(READ_ROLES)?;
    let mut query = feed_query(raw.as_deref())?;
    if let Some(last) = headers.get("last-event-id") {
        let text = last.to_str().unwrap_or("");
        // The header carries the last sequence number the client saw, parsed as `since` is.
        query.since = FeedQuery::parse([("since", text)])
            .map_err(|_| {
                ValidationError::invalid_input(
                    "Last-Event-ID",
                    format!("Invalid Last-Event-ID header: '{text}' is not a sequence number."),
                )
            })?
            .since;
    }
    let follow = Follow {
        commits: app.store.commits(),
        store: app.store.clone(),
        scope: caller.read_scope(),
        since: query.since,
        pending: VecDeque::new(),
        shutdown: shutdown.map(|s| s.0 .0.clone()),
        failed: false,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = match follow.next().await? {
            Ok(entry) => Event::default()
                .event("change")
                .id(entry.sequence.to_string())
                .json_data(&entry)
                .unwrap_or_else(|_| Event::default().event("error").data("serialisation")),
            Err(e) => {
                tracing::error!(error = %e, "the change stream could not read the log");
                Event::default()
                    .event("error")
                    .data("the change log could not be read; reconnect")
            }
        };
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
