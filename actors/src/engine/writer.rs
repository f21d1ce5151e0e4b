//! The Writer: group commit. Appends that arrive while a commit is in flight wait and
//! go together in the next one, so under load one transaction carries many messages and
//! under no load a message commits at once.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::EngineError;
use crate::store::{Appended, NewMessage, SharedStore};

/// Append one message durably; answers after the commit.
#[derive(Debug, Message)]
#[rtype(result = "Result<Appended, EngineError>")]
pub struct Append {
    /// The message.
    pub message: NewMessage,
}

type Waiter = oneshot::Sender<Result<Appended, EngineError>>;

/// Appends waiting for a commit, at most; past that the writer refuses (bounded memory:
/// the store is not keeping up and clients retry with the same `client_id`).
pub const MAX_PENDING: usize = 20_000;

/// The node's writer.
pub struct Writer {
    store: SharedStore,
    max_batch: usize,
    pending: Vec<(NewMessage, Waiter)>,
    flushing: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Writer {
    /// Start the writer (supervised).
    pub fn start(store: SharedStore, max_batch: usize) -> Addr<Self> {
        Supervisor::start(move |_| Writer {
            store,
            max_batch: max_batch.max(1),
            pending: Vec::new(),
            flushing: false,
        })
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        self.flushing = true;
        let take = self.pending.len().min(self.max_batch);
        let (batch, waiters): (Vec<_>, Vec<_>) = self.pending.drain(..take).unzip();
        metrics::histogram!("parley_writer_batch_size").record(batch.len() as f64);
        let store = self.store.clone();
        let started = std::time::Instant::now();
        async move { store.append(batch).await }
            .into_actor(self)
            .map(move |result, act, ctx| {
                metrics::histogram!("parley_writer_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(results) => {
                        for (waiter, r) in waiters.into_iter().zip(results) {
                            let _ = waiter.send(Ok(r));
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
                act.flushing = false;
                act.flush(ctx);
            })
            .spawn(ctx);
    }
}

impl Actor for Writer {
    type Context = Context<Self>;
}

impl Supervised for Writer {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("Writer restarting");
        metrics::counter!("parley_actor_restarts_total", "actor" => "writer").increment(1);
        self.flushing = false;
    }
}

impl Handler<Append> for Writer {
    type Result = ResponseFuture<Result<Appended, EngineError>>;

    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) -> Self::Result {
        if self.pending.len() >= MAX_PENDING {
            metrics::counter!("parley_writer_rejected_total").increment(1);
            return Box::pin(async {
                Err(EngineError::Unavailable(
                    "the store is behind; retry with the same client_id".into(),
                ))
            });
        }
        let (tx, rx) = oneshot::channel();
        self.pending.push((msg.message, tx));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(EngineError::Unavailable("writer restarted".into())))
        })
    }
}
