//! Group commit. All writes of a store go to one writer task that owns its writing
//! connection: it drains whatever commands are queued, runs them in one transaction (batched
//! into a few statements by [`batch`]), commits once (one fsync for the whole group) and only
//! then answers each caller. Concurrent small writes become few durable commits, upserts on
//! one connection cannot race each other, and if a database error strikes, the batch is run
//! again command by command with a savepoint each, so the error undoes only the command that
//! met it.

use iocd_domain::time::Timestamp;
use iocd_domain::{Actor, Submission};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{self, Command};
use crate::protocol::{run_one_by_one, Outcome, WriteConnection};
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
    fn as_command(&self) -> Command<'_> {
        match self {
            WriteCommand::Submit {
                scope,
                actor,
                items,
                limits,
                now,
                ..
            } => Command::Submit {
                scope,
                actor,
                items,
                limits: *limits,
                now: *now,
            },
            WriteCommand::Delete {
                scope, ids, now, ..
            } => Command::Delete {
                scope,
                ids,
                now: *now,
            },
        }
    }

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
    let commands: Vec<Command> = batch.iter().map(WriteCommand::as_command).collect();
    let outcomes = match run_batched(conn, &tenants, &commands).await {
        Some(outcomes) => outcomes,
        None => {
            // Rare (a database error, a row that does not decode): undo the batch and run it
            // again one command at a time, each in a savepoint, so that only the commands that
            // meet the problem fail and their batch-mates still land.
            let _ = conn.execute("ROLLBACK").await;
            match run_one_by_one(conn, &tenants, &commands).await {
                Ok(outcomes) => outcomes,
                Err(e) => {
                    drop(commands);
                    return fail_all(batch, &e);
                }
            }
        }
    };
    drop(commands);
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

/// The batch in a few statements ([`batch`]); `None` when it must take the slow path.
async fn run_batched<C: WriteConnection>(
    conn: &mut C,
    tenants: &[String],
    commands: &[Command<'_>],
) -> Option<Vec<Outcome>> {
    if let Err(e) = conn.begin(tenants).await {
        tracing::warn!(error = %e, "could not start a write transaction");
        return None;
    }
    match batch::run(conn, commands).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, "a batched write failed; retrying its commands one by one");
            None
        }
    }
}

fn fail_all(batch: Vec<WriteCommand>, e: &sqlx::Error) {
    tracing::error!(error = %e, "could not start a write transaction");
    for cmd in batch {
        unanswered(cmd).fail(&e.to_string());
    }
}

impl Outcome {
    fn into_reply(self, cmd: WriteCommand) -> Reply {
        match (cmd, self) {
            (WriteCommand::Submit { reply, .. }, Outcome::Submit(r)) => Reply::Submit(reply, r),
            (WriteCommand::Delete { reply, .. }, Outcome::Delete(r)) => Reply::Delete(reply, r),
            (cmd, _) => unanswered(cmd),
        }
    }
}

fn unanswered(cmd: WriteCommand) -> Reply {
    match cmd {
        WriteCommand::Submit { reply, .. } => Reply::Submit(reply, Err(StoreError::WriterGone)),
        WriteCommand::Delete { reply, .. } => Reply::Delete(reply, Err(StoreError::WriterGone)),
    }
}
