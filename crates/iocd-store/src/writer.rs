//! Group commit. All writes of a store go to one writer task that owns its writing
//! connection: it drains whatever commands are queued, runs them in one transaction with a
//! savepoint per command, commits once (one fsync for the whole group) and only then answers
//! each caller. Concurrent small writes become few durable commits, upserts on one connection
//! cannot race each other, and a database error undoes only the command that met it.

use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Submission};
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{delete_ids, submit_items, WriteConnection};
use crate::{DeleteOutcome, ItemResult, Scope, StoreError, WriteLimits};

/// Most commands folded into one transaction; bounds the latency one commit adds.
const MAX_COMMANDS_PER_COMMIT: usize = 256;
const QUEUE_DEPTH: usize = 4096;

enum WriteCommand {
    Submit {
        scope: Scope,
        actor: Actor,
        items: Vec<Submission>,
        limits: WriteLimits,
        now: Timestamp,
        reply: oneshot::Sender<Result<Vec<ItemResult>, StoreError>>,
    },
    Delete {
        scope: Scope,
        ids: Vec<i64>,
        now: Timestamp,
        reply: oneshot::Sender<Result<DeleteOutcome, StoreError>>,
    },
}

impl WriteCommand {
    fn tenant(&self) -> &str {
        match self {
            WriteCommand::Submit { scope, .. } | WriteCommand::Delete { scope, .. } => {
                &scope.tenant_id
            }
        }
    }
}

/// A command's result, held until the transaction it ran in has committed.
enum Reply {
    Submit(
        oneshot::Sender<Result<Vec<ItemResult>, StoreError>>,
        Result<Vec<ItemResult>, StoreError>,
    ),
    Delete(
        oneshot::Sender<Result<DeleteOutcome, StoreError>>,
        Result<DeleteOutcome, StoreError>,
    ),
}

impl Reply {
    fn send(self) {
        // A caller that went away (client disconnected) no longer needs its answer.
        match self {
            Reply::Submit(tx, r) => drop(tx.send(r)),
            Reply::Delete(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, why: &str) {
        let err = || StoreError::CommitFailed(why.to_string());
        match self {
            Reply::Submit(tx, _) => drop(tx.send(Err(err()))),
            Reply::Delete(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

/// The handle through which a store sends its writes.
pub(crate) struct Writer {
    queue: mpsc::Sender<WriteCommand>,
}

impl Writer {
    pub(crate) fn spawn<C: WriteConnection>(conn: C) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(conn, rx));
        Writer { queue: tx }
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
        let cmd = WriteCommand::Submit {
            scope: scope.clone(),
            actor: actor.clone(),
            items,
            limits,
            now,
            reply,
        };
        self.queue
            .send(cmd)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub(crate) async fn delete(
        &self,
        scope: &Scope,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<DeleteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        let cmd = WriteCommand::Delete {
            scope: scope.clone(),
            ids: ids.to_vec(),
            now,
            reply,
        };
        self.queue
            .send(cmd)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn run<C: WriteConnection>(mut conn: C, mut queue: mpsc::Receiver<WriteCommand>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS_PER_COMMIT {
            match queue.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch).await;
    }
}

async fn run_batch<C: WriteConnection>(conn: &mut C, batch: Vec<WriteCommand>) {
    let mut tenants: Vec<String> = batch.iter().map(|c| c.tenant().to_string()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    // Database errors are rare, and a savepoint per command costs two statements (each a
    // round trip to the database or its thread). So the batch first runs without savepoints;
    // only if a command met an error is it rolled back whole and run again with a savepoint
    // per command, which undoes just the failing ones. Results are the same either way: the
    // first attempt is kept only when every command succeeded.
    let outcomes = match run_commands(conn, &tenants, &batch, false).await {
        Ok(outcomes) if outcomes.iter().all(Outcome::succeeded) => outcomes,
        Ok(_) => {
            let _ = conn.execute("ROLLBACK").await;
            match run_commands(conn, &tenants, &batch, true).await {
                Ok(outcomes) => outcomes,
                Err(e) => return fail_all(batch, &e),
            }
        }
        Err(e) => return fail_all(batch, &e),
    };
    let replies: Vec<Reply> = batch
        .into_iter()
        .zip(outcomes)
        .map(|(cmd, outcome)| outcome.into_reply(cmd))
        .collect();
    match conn.commit().await {
        Ok(()) => replies.into_iter().for_each(Reply::send),
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the batch was rolled back");
            let _ = conn.execute("ROLLBACK").await;
            replies.into_iter().for_each(|r| r.fail(&e.to_string()));
        }
    }
}

fn fail_all(batch: Vec<WriteCommand>, e: &sqlx::Error) {
    tracing::error!(error = %e, "could not start a write transaction");
    for cmd in batch {
        unanswered(cmd).fail(&e.to_string());
    }
}

/// What one command returned, before its caller is answered.
enum Outcome {
    Submit(Result<Vec<ItemResult>, StoreError>),
    Delete(Result<DeleteOutcome, StoreError>),
}

impl Outcome {
    fn succeeded(&self) -> bool {
        match self {
            Outcome::Submit(r) => r.is_ok(),
            Outcome::Delete(r) => r.is_ok(),
        }
    }

    fn into_reply(self, cmd: WriteCommand) -> Reply {
        match (cmd, self) {
            (WriteCommand::Submit { reply, .. }, Outcome::Submit(r)) => Reply::Submit(reply, r),
            (WriteCommand::Delete { reply, .. }, Outcome::Delete(r)) => Reply::Delete(reply, r),
            (cmd, _) => unanswered(cmd),
        }
    }
}

/// Opens the batch's transaction and runs every command in it, in order (with a savepoint
/// around each when `isolate`). Leaves the transaction open.
async fn run_commands<C: WriteConnection>(
    conn: &mut C,
    tenants: &[String],
    batch: &[WriteCommand],
    isolate: bool,
) -> Result<Vec<Outcome>, sqlx::Error> {
    conn.begin(tenants).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for cmd in batch {
        outcomes.push(if isolate {
            run_in_savepoint(conn, cmd).await
        } else {
            run_command(conn, cmd).await
        });
    }
    Ok(outcomes)
}

async fn run_command<C: WriteConnection>(conn: &mut C, cmd: &WriteCommand) -> Outcome {
    match cmd {
        WriteCommand::Submit {
            scope,
            actor,
            items,
            limits,
            now,
            ..
        } => Outcome::Submit(submit_items(conn, scope, actor, items, *limits, *now).await),
        WriteCommand::Delete {
            scope, ids, now, ..
        } => Outcome::Delete(delete_ids(conn, scope, ids, *now).await),
    }
}

fn unanswered(cmd: WriteCommand) -> Reply {
    match cmd {
        WriteCommand::Submit { reply, .. } => Reply::Submit(reply, Err(StoreError::WriterGone)),
        WriteCommand::Delete { reply, .. } => Reply::Delete(reply, Err(StoreError::WriterGone)),
    }
}

/// Runs one command so that a database error undoes that command only, not its batch-mates.
async fn run_in_savepoint<C: WriteConnection>(conn: &mut C, cmd: &WriteCommand) -> Outcome {
    if let Err(e) = conn.execute("SAVEPOINT command").await {
        return match cmd {
            WriteCommand::Submit { .. } => Outcome::Submit(Err(e.into())),
            WriteCommand::Delete { .. } => Outcome::Delete(Err(e.into())),
        };
    }
    let outcome = run_command(conn, cmd).await;
    if !outcome.succeeded() {
        let _ = conn.execute("ROLLBACK TO SAVEPOINT command").await;
    }
    let _ = conn.execute("RELEASE SAVEPOINT command").await;
    outcome
}
