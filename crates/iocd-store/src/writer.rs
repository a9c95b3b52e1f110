//! Group commit. All writes of a store go to one writer task that owns its writing
//! connection: it drains whatever commands are queued, runs them in one transaction (batched
//! into a few statements by [`batch`]), commits once (one fsync for the whole group) and only
//! then answers each caller. Concurrent small writes become few durable commits, upserts on
//! one connection cannot race each other, and if a database error strikes, the batch is run
//! again command by command with a savepoint each, so the error undoes only the command that
//! met it.

use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Submission};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::{mpsc, oneshot, watch};

use crate::batch::{self, run_one_at_a_time, Command, Work};
use crate::protocol::{Outcome, WriteConnection};
use crate::{ChangeLogging, DeleteOutcome, DeleteVia, ItemResult, Scope, StoreError, WriteLimits};

/// Most commands folded into one transaction; bounds the latency one commit adds.
const MAX_COMMANDS_PER_COMMIT: usize = 256;
const QUEUE_DEPTH: usize = 4096;

/// A queued write and where its caller waits for the answer.
struct WriteCommand {
    work: Work,
    reply: ReplyTo,
}

enum ReplyTo {
    Submit(oneshot::Sender<Result<Vec<ItemResult>, StoreError>>),
    Delete(oneshot::Sender<Result<DeleteOutcome, StoreError>>),
    Expire(oneshot::Sender<Result<usize, StoreError>>),
}

impl ReplyTo {
    /// Answers with the command's outcome, once the transaction it ran in has committed. A
    /// caller that went away (client disconnected) no longer needs its answer.
    fn send(self, outcome: Outcome) {
        match (self, outcome) {
            (ReplyTo::Submit(tx), Outcome::Submit(r)) => drop(tx.send(r)),
            (ReplyTo::Delete(tx), Outcome::Delete(r)) => drop(tx.send(r)),
            (ReplyTo::Expire(tx), Outcome::Expire(r)) => drop(tx.send(r)),
            (reply, _) => reply.fail(StoreError::WriterGone),
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            ReplyTo::Submit(tx) => drop(tx.send(Err(error))),
            ReplyTo::Delete(tx) => drop(tx.send(Err(error))),
            ReplyTo::Expire(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// What the writer measures, as Prometheus metrics (shared handles: a server registers
/// clones of them): commands waiting in the queue, commands per committed group, and how long
/// each group took from its first statement to its commit.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Commands queued and not yet taken into a group.
    pub queued: Gauge,
    /// Commands per transaction (group commit).
    pub batch_commands: Histogram,
    /// Seconds from a group's first statement to its commit (or rollback).
    pub commit_seconds: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            queued: Gauge::default(),
            // 1, 2, 4 … 256: MAX_COMMANDS_PER_COMMIT is the last bucket.
            batch_commands: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            // 100 µs … about 3.3 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
        }
    }
}

/// The handle through which a store sends its writes.
pub(crate) struct Writer {
    queue: mpsc::Sender<WriteCommand>,
    commits: watch::Sender<u64>,
    metrics: WriterMetrics,
}

impl Writer {
    pub(crate) fn spawn<C: WriteConnection>(conn: C, log: ChangeLogging) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (commits, _) = watch::channel(0);
        let metrics = WriterMetrics::default();
        tokio::spawn(run(conn, rx, log, commits.clone(), metrics.clone()));
        Writer {
            queue: tx,
            commits,
            metrics,
        }
    }

    /// The writer's metrics.
    pub(crate) fn metrics(&self) -> WriterMetrics {
        self.metrics.clone()
    }

    /// Whether the writer task still takes commands.
    pub(crate) fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }

    async fn enqueue(&self, cmd: WriteCommand) -> Result<(), StoreError> {
        self.metrics.queued.inc();
        let sent = self.queue.send(cmd).await;
        if sent.is_err() {
            self.metrics.queued.dec();
        }
        sent.map_err(|_| StoreError::WriterGone)
    }

    /// A receiver that sees the number of commits so far change after each commit.
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    async fn send<T>(
        &self,
        work: Work,
        reply: ReplyTo,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.enqueue(WriteCommand { work, reply }).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(crate) async fn expire(
        &self,
        tenant_id: &str,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let (reply, rx) = oneshot::channel();
        let work = Work::Expire {
            scope: Scope::tenant_wide(tenant_id),
            ids: ids.to_vec(),
            now,
        };
        self.send(work, ReplyTo::Expire(reply), rx).await
    }

    pub(crate) async fn submit(
        &self,
        scope: &Scope,
        actor: &Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
    ) -> Result<Vec<ItemResult>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let cmd = WriteCommand {
            work: Work::Submit {
                scope: scope.clone(),
                actor: actor.clone(),
                items,
                limits,
                now,
            },
            reply: ReplyTo::Submit(reply),
        };
        self.enqueue(cmd).await?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(crate) async fn delete(
        &self,
        scope: &Scope,
        actor: &Actor,
        ids: &[i64],
        via: DeleteVia,
        now: Timestamp,
    ) -> Result<DeleteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let work = Work::Delete {
            scope: scope.clone(),
            actor: actor.clone(),
            ids: ids.to_vec(),
            via,
            now,
        };
        self.send(work, ReplyTo::Delete(reply), rx).await
    }
}

async fn run<C: WriteConnection>(
    mut conn: C,
    mut queue: mpsc::Receiver<WriteCommand>,
    log: ChangeLogging,
    commits: watch::Sender<u64>,
    metrics: WriterMetrics,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS_PER_COMMIT {
            match queue.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        metrics.queued.dec_by(batch.len() as i64);
        metrics.batch_commands.observe(batch.len() as f64);
        let started = std::time::Instant::now();
        run_batch(&mut conn, batch, log, &commits).await;
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Runs and commits one group. After the commit, `commits` ticks before any caller is
/// answered, so a reader that sees its write acknowledged and then looks at `commits` sees the
/// tick (the match index relies on it).
async fn run_batch<C: WriteConnection>(
    conn: &mut C,
    batch: Vec<WriteCommand>,
    log: ChangeLogging,
    commits: &watch::Sender<u64>,
) {
    let (work, replies): (Vec<Work>, Vec<ReplyTo>) =
        batch.into_iter().map(|cmd| (cmd.work, cmd.reply)).unzip();
    let commands: Vec<Command> = work.iter().map(Work::command).collect();
    let mut tenants: Vec<String> = commands.iter().map(|c| c.tenant().to_string()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let outcomes = match run_batched(conn, &tenants, &commands, log).await {
        Some(outcomes) => outcomes,
        None => {
            // Rare (a database error, a row that does not decode): undo the batch and run it
            // again one command at a time, each in a savepoint, so that only the commands that
            // meet the problem fail and their batch-mates still land.
            let _ = conn.execute("ROLLBACK").await;
            match run_one_at_a_time(conn, &tenants, &commands, log).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    tracing::error!(error = %e, "could not start a write transaction");
                    let why = e.to_string();
                    for reply in replies {
                        reply.fail(StoreError::CommitFailed(why.clone()));
                    }
                    return;
                }
            }
        }
    };
    match conn.commit().await {
        Ok(()) => {
            commits.send_modify(|n| *n += 1);
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                reply.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the batch was rolled back");
            let _ = conn.execute("ROLLBACK").await;
            let why = e.to_string();
            for reply in replies {
                reply.fail(StoreError::CommitFailed(why.clone()));
            }
        }
    }
}

/// The batch in a few statements ([`batch`]); `None` when it must take the slow path.
async fn run_batched<C: WriteConnection>(
    conn: &mut C,
    tenants: &[String],
    commands: &[Command<'_>],
    log: ChangeLogging,
) -> Option<Vec<Outcome>> {
    if let Err(e) = conn.begin(tenants).await {
        tracing::warn!(error = %e, "could not start a write transaction");
        return None;
    }
    match batch::run(conn, commands, log).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, "a batched write failed; retrying its commands one by one");
            None
        }
    }
}
