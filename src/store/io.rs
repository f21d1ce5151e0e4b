//! PostgreSQL's statements on threads of their own.
//!
//! The server's other threads are single-threaded runtimes, each busy with thousands of
//! sockets under load: the actix-web workers (sockets, sessions, HTTP requests) and the
//! engine's thread (conversations, router, Writer). A PostgreSQL connection run from
//! them waits for its turn there at every step: each reply from PostgreSQL wakes a task
//! queued behind every other ready task of that thread, and sqlx hands a connection back
//! to its pool through a task spawned on the releasing thread, which pings PostgreSQL
//! before the connection is free again. In a 10,000-visitor burst PostgreSQL's eight
//! connections sat idle, waiting for their client, while thousands of acquires waited
//! for one of them (time to assignment p99 about 15 s).
//!
//! So on PostgreSQL the pool lives on a small runtime of its own ([`DbRuntime`]): the
//! pool's connections are opened there (their sockets belong to its I/O driver), and
//! [`super::Db`]'s statements run there as tasks ([`DbRuntime::run`]); the caller's
//! thread only waits for the answer. A connection's whole round trip, and its release,
//! happen on threads that do nothing else.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The runtime's threads (its work is waiting on sockets: two are plenty).
const THREADS: usize = 2;

/// A runtime for the database's I/O, alive while any clone is.
#[derive(Clone)]
pub(super) struct DbRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    handle: Handle,
    /// Dropped with the last clone: the keeper thread then shuts the runtime down (a
    /// runtime cannot be dropped from inside another runtime, where a `Db` usually is).
    _stop: oneshot::Sender<()>,
}

impl DbRuntime {
    /// Start the runtime: [`THREADS`] workers and a keeper thread that owns it.
    pub(super) fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(THREADS)
            .thread_name("parley-db")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("parley-db-keeper".into())
            .spawn(move || {
                // Ends when the last `DbRuntime` is dropped (the sender with it).
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                handle,
                _stop: stop,
            }),
        })
    }

    /// Run `work` on the runtime and wait for its result. The work runs to its end even
    /// when the caller stops waiting (a transaction commits or rolls back as a whole).
    pub(super) async fn run<T, E>(
        &self,
        work: impl Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        match self.inner.handle.spawn(work).await {
            Ok(result) => result,
            Err(e) => Err(E::from(sqlx::Error::Protocol(format!(
                "a database task failed: {e}"
            )))),
        }
    }
}
