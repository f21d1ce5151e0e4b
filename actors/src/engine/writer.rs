//! The Writer: group commit. Appends that arrive while a commit is in flight wait and
//! go together in the next one, so under load one transaction carries many messages and
//! under no load a message commits at once.
//!
//! The writer has one or more *lanes*. A conversation always uses the same lane
//! (chosen by a hash of its id), and each lane has at most one commit in flight, so a
//! conversation's appends are committed in the order they arrived, while different
//! conversations commit concurrently on different lanes (several connections of a
//! PostgreSQL pool working at once). SQLite has a single writer anyway and runs one
//! lane.

use std::hash::{Hash, Hasher};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::EngineError;
use crate::store::{Appended, NewMessage, SharedStore};

/// Append one message durably; `reply` gets the outcome after the commit. Sent with
/// `do_send`: the answer travels on `reply` alone (a request-response `send` would add
/// a mailbox envelope, a second channel and a task per message on the engine thread).
/// A writer that is gone drops `reply`, which its receiver sees as an error.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Append {
    /// The message.
    pub message: NewMessage,
    /// Where the outcome goes.
    pub reply: Waiter,
}

/// The sending half of an append's answer.
pub type Waiter = oneshot::Sender<Result<Appended, EngineError>>;

/// Queue `message` with `writer` now (appends leave in the order they are queued) and
/// return the receiver of its outcome.
pub fn append(
    writer: &Addr<Writer>,
    message: NewMessage,
) -> oneshot::Receiver<Result<Appended, EngineError>> {
    let (reply, answer) = oneshot::channel();
    writer.do_send(Append { message, reply });
    answer
}

/// Appends waiting for a commit, at most; past that the writer refuses (bounded memory:
/// the store is not keeping up and clients retry with the same `client_id`).
pub const MAX_PENDING: usize = 20_000;

/// Most lanes a writer runs.
pub const MAX_LANES: usize = 64;

#[derive(Default)]
struct Lane {
    pending: Vec<(NewMessage, Waiter)>,
    flushing: bool,
}

/// The node's writer.
pub struct Writer {
    store: SharedStore,
    max_batch: usize,
    lanes: Vec<Lane>,
    pending: usize,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("lanes", &self.lanes.len())
            .field("pending", &self.pending)
            .finish()
    }
}

/// The lane of a conversation (stable for the life of the process).
pub fn lane_of(conversation_id: &str, lanes: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    conversation_id.hash(&mut h);
    (h.finish() % lanes.max(1) as u64) as usize
}

impl Writer {
    /// Start the writer (supervised) with `lanes` concurrent commits (1 to
    /// [`MAX_LANES`]).
    pub fn start(store: SharedStore, max_batch: usize, lanes: usize) -> Addr<Self> {
        let lanes = lanes.clamp(1, MAX_LANES);
        Supervisor::start(move |_| Writer {
            store,
            max_batch: max_batch.max(1),
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            pending: 0,
        })
    }

    fn flush(&mut self, lane: usize, ctx: &mut Context<Self>) {
        let max_batch = self.max_batch;
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        if l.flushing || l.pending.is_empty() {
            return;
        }
        l.flushing = true;
        let take = l.pending.len().min(max_batch);
        let (batch, waiters): (Vec<_>, Vec<_>) = if take == l.pending.len() {
            std::mem::take(&mut l.pending).into_iter().unzip()
        } else {
            l.pending.drain(..take).unzip()
        };
        self.pending -= batch.len();
        metrics::histogram!("parley_writer_batch_size").record(batch.len() as f64);
        let store = self.store.clone();
        let started = std::time::Instant::now();
        async move { store.append(batch).await }
            .into_actor(self)
            .map(move |result, act, ctx| {
                metrics::histogram!("parley_writer_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("parley_writer_appends_done_total")
                    .increment(waiters.len() as u64);
                match result {
                    Ok(results) if results.len() == waiters.len() => {
                        for (waiter, r) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(r));
                        }
                    }
                    Ok(results) => {
                        // A store that answers a different number of results broke its
                        // contract: nobody can tell which message got which answer.
                        tracing::error!(
                            expected = waiters.len(),
                            got = results.len(),
                            "Group commit answered the wrong number of results"
                        );
                        for waiter in waiters {
                            let _ = waiter.send(Err(EngineError::Store(
                                "the store answered the wrong number of results".into(),
                            )));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Group commit failed; the senders will retry");
                        metrics::counter!("parley_writer_commit_failures_total").increment(1);
                        for waiter in waiters {
                            let _ = waiter.send(Err(EngineError::Store(e.to_string())));
                        }
                    }
                }
                if let Some(l) = act.lanes.get_mut(lane) {
                    l.flushing = false;
                }
                act.flush(lane, ctx);
            })
            .spawn(ctx);
    }
}

impl Actor for Writer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Appends must enter in the order they were sent (see `Handler<Post>`); the
        // writer bounds its own backlog (`MAX_PENDING`).
        ctx.set_mailbox_capacity(super::UNBOUNDED_MAILBOX);
    }
}

impl Supervised for Writer {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("Writer restarting");
        metrics::counter!("parley_actor_restarts_total", "actor" => "writer").increment(1);
        for lane in &mut self.lanes {
            lane.flushing = false;
        }
    }
}

impl Handler<Append> for Writer {
    type Result = ();

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) {
        metrics::counter!("parley_writer_appends_total").increment(1);
        if self.pending >= MAX_PENDING {
            metrics::counter!("parley_writer_rejected_total").increment(1);
            let _ = msg.reply.send(Err(EngineError::Unavailable(
                "the store is behind; retry with the same client_id".into(),
            )));
            return;
        }
        let lane = lane_of(&msg.message.conversation_id, self.lanes.len());
        if let Some(l) = self.lanes.get_mut(lane) {
            l.pending.push((msg.message, msg.reply));
            self.pending += 1;
        }
        self.flush(lane, ctx);
    }
}
