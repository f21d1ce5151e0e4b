//! Group commit for every write transaction on SQLite.
//!
//! SQLite has one writer, and with `synchronous = FULL` each commit costs an fsync of the
//! WAL (about 0.4 ms on the reference machine, so at most ~2,400 commits a second). A
//! visitor arriving costs several small transactions (the widget session, the
//! conversation, its assignment) besides the messages, so a burst of arrivals would be
//! capped by fsyncs, not by work. [`Db::write`] therefore queues each transaction as a
//! *job*; one task takes every job queued, runs them one after another inside **one**
//! SQLite transaction, each in its own `SAVEPOINT` (a job that fails is rolled back to
//! its savepoint alone, as if its own transaction had been rolled back), and commits
//! once. Each caller learns its job's result only after that commit: the same guarantee
//! as its own transaction, for one fsync per round instead of one per job. Jobs run in
//! the order they were queued, each seeing the jobs before it, exactly as if they had
//! committed one by one. A failed `COMMIT` fails every job of the round.
//!
//! On PostgreSQL (many writers, and its own group commit in the WAL writer) a job is a
//! plain transaction on the pool.

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection as _, Executor as _};
use tokio::sync::{mpsc, oneshot};

use super::Db;

/// The most jobs one round commits together.
const MAX_ROUND: usize = 512;

/// A queued job: runs on the round's connection and says whether it succeeded; the
/// completion then gets the round's commit error (if any) and answers the caller.
type Completion = Box<dyn FnOnce(Option<&sqlx::Error>) + Send>;
type Job =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, (bool, Completion)> + Send>;
/// A job for the writer's direct connection (see [`Db::write_direct`]): synchronous, on
/// the writer's thread.
type DirectJob = Box<dyn FnOnce(&mut rusqlite::Connection) -> (bool, Completion) + Send>;

/// What the queue carries.
enum Work {
    Sqlx(Job),
    Direct(DirectJob),
}

/// The queue in front of SQLite's single writer connection.
#[derive(Clone)]
pub(super) struct WriteQueue {
    tx: mpsc::UnboundedSender<Work>,
    /// Whether the writer has a direct connection (a database file; not `:memory:`).
    direct: bool,
}

impl WriteQueue {
    /// Start the thread that owns the rounds; it ends when every `Db` clone is dropped.
    ///
    /// The rounds run on a thread of their own, not as a task of the caller's runtime.
    /// A round is a chain of statements, each a hand-off to SQLite's worker thread and
    /// back; as a task on the engine's thread, every hand-off also waited for its turn
    /// behind every other ready task there, so under load a round's time grew with the
    /// engine's backlog (a 10,000-visitor burst backed the writer up past 20,000
    /// messages). On its own thread a round waits only for SQLite.
    ///
    /// `file`: the database file, for the writer's direct connection and the
    /// checkpointer (see [`checkpointer`]): `None` for `:memory:`, which has neither.
    /// `checkpoints` are the sqlx options of a connection to that file.
    pub(super) fn start(
        pool: sqlx::AnyPool,
        file: Option<(std::path::PathBuf, AnyConnectOptions)>,
        pragmas: &str,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (direct, checkpoints) = match file {
            Some((path, options)) => (Some(open_direct(&path, pragmas)?), Some(options)),
            None => (None, None),
        };
        let has_direct = direct.is_some();
        std::thread::Builder::new()
            .name("parley-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Ends with the runtime, when the queue's last sender is gone.
                    if let Some(options) = checkpoints {
                        tokio::spawn(checkpointer(options));
                    }
                    run(pool, direct, rx).await;
                });
            })?;
        Ok(Self {
            tx,
            direct: has_direct,
        })
    }
}

/// The writer's direct connection to the database file, with the writer's pragmas.
fn open_direct(path: &std::path::Path, pragmas: &str) -> anyhow::Result<rusqlite::Connection> {
    use anyhow::Context as _;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} for the writer", path.display()))?;
    conn.execute_batch(pragmas)
        .context("setting the writer's pragmas")?;
    // Plenty for the statements it runs (the default is 16): appends, the other hot
    // writes (`store::conn`), and the round's transaction control.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

async fn run(
    pool: sqlx::AnyPool,
    mut direct: Option<rusqlite::Connection>,
    mut rx: mpsc::UnboundedReceiver<Work>,
) {
    let mut work: Vec<Work> = Vec::new();
    while rx.recv_many(&mut work, MAX_ROUND).await > 0 {
        let mut jobs = Vec::new();
        let mut directs = Vec::new();
        for w in work.drain(..) {
            match w {
                Work::Sqlx(job) => jobs.push(job),
                Work::Direct(job) => directs.push(job),
            }
        }
        metrics::histogram!("parley_write_round_jobs").record((jobs.len() + directs.len()) as f64);
        // The pool's one connection, held for the whole round: while the writer holds it
        // nobody else writes through the pool, so the direct connection's transaction
        // never races a pool transaction for SQLite's write lock.
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                fail_all(jobs, directs, &e);
                continue;
            }
        };
        if !jobs.is_empty() {
            let (completions, err) = sqlx_round(&mut conn, jobs).await;
            for done in completions {
                done(err.as_ref());
            }
        }
        if !directs.is_empty() {
            let (completions, err) = match direct.as_mut() {
                Some(direct) => direct_round(direct, directs),
                None => {
                    // `write_direct` refuses when there is no direct connection.
                    fail_all(Vec::new(), directs, &sqlx::Error::PoolClosed);
                    (Vec::new(), None)
                }
            };
            drop(conn);
            for done in completions {
                done(err.as_ref());
            }
        }
    }
}

/// One transaction of sqlx jobs, each in its own savepoint; the completions and the
/// round's error, if it failed.
async fn sqlx_round(
    conn: &mut AnyConnection,
    round: Vec<Job>,
) -> (Vec<Completion>, Option<sqlx::Error>) {
    let mut completions = Vec::with_capacity(round.len());
    let mut broken: Option<sqlx::Error> = None;
    // Each job runs in its own savepoint. Opening the next one goes in the same call as
    // closing the last (`RELEASE …; SAVEPOINT …`): every statement is a round trip to
    // SQLite's worker thread, and the round is serial. A round of one job needs no
    // savepoint: its failure rolls back the transaction. A savepoint is not free:
    // SQLite copies each page it is about to change into the savepoint's journal first.
    let alone = round.len() == 1;
    let mut open = if alone {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT parley_job"
    };
    let last = round.len().saturating_sub(1);
    for (i, job) in round.into_iter().enumerate() {
        if broken.is_some() {
            // A savepoint statement failed: the round cannot go on. Dropping the job
            // drops its answer channel, so its caller gets an error.
            drop(job);
            continue;
        }
        if let Err(e) = conn.execute(open).await {
            broken = Some(e);
            continue;
        }
        let (ok, done) = job(conn).await;
        completions.push(done);
        open = next_statement(ok, i == last, alone);
    }
    // The last call ends the transaction (after releasing the last savepoint).
    let outcome = match broken {
        Some(e) => Err(e),
        None => conn.execute(open).await.map(|_| ()),
    };
    if outcome.is_err() {
        // Leave the connection clean for the next round (a failed COMMIT may leave the
        // transaction open).
        let _ = conn.execute("ROLLBACK").await;
    }
    (completions, outcome.err())
}

/// The same for direct jobs, on the direct connection.
fn direct_round(
    conn: &mut rusqlite::Connection,
    round: Vec<DirectJob>,
) -> (Vec<Completion>, Option<sqlx::Error>) {
    let mut completions = Vec::with_capacity(round.len());
    let mut broken: Option<rusqlite::Error> = None;
    let alone = round.len() == 1;
    let mut open = if alone {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT parley_job"
    };
    let last = round.len().saturating_sub(1);
    for (i, job) in round.into_iter().enumerate() {
        if broken.is_some() {
            drop(job);
            continue;
        }
        if let Err(e) = control(conn, open) {
            broken = Some(e);
            continue;
        }
        let (ok, done) = job(conn);
        completions.push(done);
        open = next_statement(ok, i == last, alone);
    }
    let outcome = match broken {
        Some(e) => Err(e),
        None => control(conn, open),
    };
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    (completions, outcome.err().map(super::conn::direct_error))
}

/// Run transaction-control statements (`BEGIN IMMEDIATE; SAVEPOINT parley_job`, …, from
/// [`next_statement`]) each prepared once: `execute_batch` would parse them again for
/// every job of every round.
fn control(conn: &rusqlite::Connection, statements: &str) -> rusqlite::Result<()> {
    for sql in statements
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        conn.prepare_cached(sql)?.raw_execute()?;
    }
    Ok(())
}

/// What ends a job of a round (and opens the next one's savepoint): `ok` is whether
/// the job succeeded, `last` whether it is the round's last, `alone` whether it is the
/// round's only job (no savepoints).
fn next_statement(ok: bool, last: bool, alone: bool) -> &'static str {
    match (ok, last, alone) {
        (true, _, true) => "COMMIT",
        (false, _, true) => "ROLLBACK",
        (true, false, false) => "RELEASE parley_job; SAVEPOINT parley_job",
        (false, false, false) => "ROLLBACK TO parley_job; RELEASE parley_job; SAVEPOINT parley_job",
        (true, true, false) => "RELEASE parley_job; COMMIT",
        (false, true, false) => "ROLLBACK TO parley_job; RELEASE parley_job; COMMIT",
    }
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copy the WAL into the database file from a connection of its own, so that the
/// writer's commits never do it. By default SQLite checkpoints inside the commit that
/// takes the WAL past 1,000 pages: under load that was a tenth of the writer's time,
/// spent while every sender of the round waited. A `PASSIVE` checkpoint runs beside the
/// writer (and beside readers), copying what no reader still needs; when it has copied
/// everything, the writer's next transaction starts the WAL again from its beginning.
/// Should it fall behind, the writer still checkpoints past 10,000 WAL pages (its
/// `wal_autocheckpoint`, see `Db::connect`), so the WAL cannot grow without bound.
async fn checkpointer(options: AnyConnectOptions) {
    let mut conn = match AnyConnection::connect_with(&options).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "No checkpointer: the writer checkpoints by itself");
            return;
        }
    };
    if let Err(e) = conn.execute("PRAGMA busy_timeout = 10000;").await {
        tracing::warn!(error = %e, "Checkpointer setup failed");
    }
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE);").await {
            tracing::debug!(error = %e, "Checkpoint failed; the next one retries");
        }
    }
}

fn fail_all(jobs: Vec<Job>, directs: Vec<DirectJob>, e: &sqlx::Error) {
    tracing::warn!(error = %e, jobs = jobs.len() + directs.len(), "A group commit could not start");
    // Dropping a job drops its answer channel: the caller sees the queue error.
    drop(jobs);
    drop(directs);
}

/// Copy a round's error for one caller (`sqlx::Error` is not `Clone`).
fn round_error(e: &sqlx::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("group commit failed: {e}"))
}

impl Db {
    /// Run `f` as one write transaction and return its result once it has committed.
    /// When `f` fails, nothing it did is kept. On SQLite it joins the next group commit
    /// (see the module docs); on PostgreSQL it is a transaction of its own, on the
    /// database's runtime ([`Db::run`]). `f` must not begin or commit transactions
    /// itself.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        self.write_begun_by(None, f).await
    }

    /// [`Db::write`], with PostgreSQL's transaction opened by `begin` (e.g. `BEGIN; SET
    /// LOCAL …`: one round trip) instead of a plain `BEGIN`. SQLite ignores it.
    pub(super) async fn write_begun_by<T, E, F>(
        &self,
        begin: Option<&'static str>,
        f: F,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        // Only SQLite has a queue.
        let Some(queue) = &self.queue else {
            let pool = self.pool().clone();
            return self
                .run(async move {
                    let mut tx = match begin {
                        Some(begin) => pool.begin_with(begin).await?,
                        None => pool.begin().await?,
                    };
                    let value = f(&mut tx).await?;
                    tx.commit().await?;
                    Ok(value)
                })
                .await;
        };
        let (answer, result) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: &mut AnyConnection| {
            Box::pin(async move {
                let outcome = f(conn).await;
                let ok = outcome.is_ok();
                let done: Completion = Box::new(move |commit: Option<&sqlx::Error>| {
                    let answer_value = match (outcome, commit) {
                        (Ok(_), Some(e)) => Err(E::from(round_error(e))),
                        (outcome, _) => outcome,
                    };
                    let _ = answer.send(answer_value);
                });
                (ok, done)
            })
        });
        queue
            .tx
            .send(Work::Sqlx(job))
            .map_err(|_| E::from(sqlx::Error::PoolClosed))?;
        result
            .await
            .map_err(|_| E::from(sqlx::Error::Protocol("group commit failed".into())))?
    }

    /// Whether [`Db::write_direct`] can run: SQLite with a database file.
    pub fn has_direct_writer(&self) -> bool {
        self.queue.as_ref().is_some_and(|q| q.direct)
    }

    /// Run `f` on the SQLite writer's direct connection (rusqlite, on the writer's
    /// thread) as part of the next group commit, and return its result once it has
    /// committed. When `f` fails, nothing it did is kept.
    ///
    /// For the hot paths (the engine's appends, and the jobs of [`Db::write_conn`]): no
    /// hand-off to sqlx's worker thread per statement, statements prepared once and
    /// bound natively. A round runs its [`Db::write`] jobs first and commits them, then
    /// its direct jobs in a transaction of their own, so a direct job sees every write
    /// job queued before it; a write job queued after a direct job of the same round
    /// does not see it until its own transaction. No write job depends on one: on a
    /// database file the only [`Db::write`] job left touches a visitor that a committed
    /// round created (the rest take the pool, which the writer holds for its whole
    /// round). Fails at once without a direct connection ([`Db::has_direct_writer`]).
    pub async fn write_direct<T, F>(&self, f: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<T, sqlx::Error> + Send + 'static,
    {
        let Some(queue) = self.queue.as_ref().filter(|q| q.direct) else {
            return Err(sqlx::Error::Protocol(
                "no direct SQLite writer for this database".into(),
            ));
        };
        let (answer, result) = oneshot::channel::<Result<T, sqlx::Error>>();
        let job: DirectJob = Box::new(move |conn: &mut rusqlite::Connection| {
            let outcome = f(conn);
            let ok = outcome.is_ok();
            let done: Completion = Box::new(move |commit: Option<&sqlx::Error>| {
                let answer_value = match (outcome, commit) {
                    (Ok(_), Some(e)) => Err(round_error(e)),
                    (outcome, _) => outcome,
                };
                let _ = answer.send(answer_value);
            });
            (ok, done)
        });
        queue
            .tx
            .send(Work::Direct(job))
            .map_err(|_| sqlx::Error::PoolClosed)?;
        result
            .await
            .map_err(|_| sqlx::Error::Protocol("group commit failed".into()))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sqlx::Row as _;

    use super::*;
    use crate::config::Settings;

    async fn sqlite() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![(
            "PARLEY__STORAGE__DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        )];
        let db = Db::connect(&Settings::load_with_env(None, env).unwrap())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
        (db, dir)
    }

    fn insert(db: &Db, k: &'static str, v: i64) -> impl Future<Output = Result<(), sqlx::Error>> {
        let db = db.clone();
        async move {
            db.write(move |c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                        .bind(k)
                        .bind(v)
                        .execute(&mut *c)
                        .await?;
                    // A second statement, so a failure after it must undo the first.
                    sqlx::query("UPDATE t SET v = v + 1 WHERE k = $1")
                        .bind(k)
                        .execute(&mut *c)
                        .await?;
                    if v < 0 {
                        return Err(sqlx::Error::Protocol("refused".into()));
                    }
                    Ok(())
                })
            })
            .await
        }
    }

    async fn rows(db: &Db) -> Vec<(String, i64)> {
        sqlx::query("SELECT k, v FROM t ORDER BY k")
            .fetch_all(db.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("k"), r.get("v")))
            .collect()
    }

    #[tokio::test]
    async fn jobs_of_one_round_commit_together_and_a_failed_one_leaves_nothing() {
        let (db, _dir) = sqlite().await;
        // Queued at once, so they share rounds; the failing one sits in the middle and
        // the repeated key fails on the primary key after the first "a" committed.
        let results = futures_util::future::join_all([
            Box::pin(insert(&db, "a", 1)) as BoxFuture<'_, _>,
            Box::pin(insert(&db, "b", -1)),
            Box::pin(insert(&db, "a", 5)),
            Box::pin(insert(&db, "c", 3)),
        ])
        .await;
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(results[1].is_err(), "the refused job fails");
        assert!(results[2].is_err(), "the duplicate key fails");
        assert!(results[3].is_ok(), "{:?}", results[3]);
        // Each successful job kept both statements; the failed ones kept neither.
        assert_eq!(rows(&db).await, vec![("a".into(), 2), ("c".into(), 4)]);
    }

    #[tokio::test]
    async fn the_reader_pool_cannot_write() {
        let (db, _dir) = sqlite().await;
        let denied = sqlx::query("INSERT INTO t (k, v) VALUES ('x', 1)")
            .execute(db.reader())
            .await;
        assert!(denied.is_err(), "query_only readers refuse writes");
        insert(&db, "x", 1).await.unwrap();
        assert_eq!(rows(&db).await, vec![("x".into(), 2)]);
    }

    #[tokio::test]
    async fn a_job_alone_in_its_round_that_fails_leaves_nothing() {
        let (db, _dir) = sqlite().await;
        // Awaited one at a time: each is a round of its own (no savepoint).
        assert!(insert(&db, "z", -1).await.is_err(), "the refused job fails");
        assert_eq!(rows(&db).await, vec![], "neither of its statements stayed");
        insert(&db, "y", 1).await.unwrap();
        assert!(
            insert(&db, "y", 7).await.is_err(),
            "the duplicate key fails"
        );
        assert_eq!(rows(&db).await, vec![("y".into(), 2)]);
    }

    fn insert_direct(
        db: &Db,
        k: &'static str,
        v: i64,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> {
        let db = db.clone();
        async move {
            db.write_direct(move |c| {
                let run = || -> rusqlite::Result<i64> {
                    c.execute(
                        "INSERT INTO t (k, v) VALUES (?1, ?2)",
                        rusqlite::params![k, v],
                    )?;
                    c.execute("UPDATE t SET v = v + 1 WHERE k = ?1", [k])?;
                    // What the job sees: every row committed or written before it.
                    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                };
                match run() {
                    Ok(_) if v < 0 => Err(sqlx::Error::Protocol("refused".into())),
                    Ok(n) => Ok(n),
                    Err(e) => Err(sqlx::Error::Protocol(e.to_string())),
                }
            })
            .await
        }
    }

    #[tokio::test]
    async fn direct_jobs_share_rounds_with_write_jobs_and_a_failed_one_leaves_nothing() {
        let (db, _dir) = sqlite().await;
        assert!(db.has_direct_writer());
        // Queued together (usually one round: write jobs first, then the direct ones,
        // each in a savepoint of their own transaction).
        let (w1, d1, d2, d3, w2) = tokio::join!(
            insert(&db, "w1", 1),
            insert_direct(&db, "d1", 10),
            insert_direct(&db, "d2", -1),
            insert_direct(&db, "w1", 7),
            insert(&db, "w2", 2),
        );
        assert!(w1.is_ok() && w2.is_ok(), "{w1:?} {w2:?}");
        // It sees w1, queued before it (in an earlier round, or earlier in its own);
        // w2 may share its round (write jobs run first) or come after.
        assert!(
            d1.unwrap() >= 2,
            "the direct job sees the write jobs queued before it"
        );
        assert!(d2.is_err(), "the refused direct job fails");
        assert!(d3.is_err(), "the duplicate key fails");
        assert_eq!(
            rows(&db).await,
            vec![("d1".into(), 11), ("w1".into(), 2), ("w2".into(), 3)]
        );
        // Alone in its round (no savepoint), a failure leaves nothing either.
        assert!(insert_direct(&db, "z", -5).await.is_err());
        assert!(rows(&db).await.iter().all(|(k, _)| k != "z"));
    }

    #[tokio::test]
    async fn an_in_memory_database_has_no_direct_writer() {
        let db = Db::in_memory_for_tests().await;
        assert!(!db.has_direct_writer());
        let refused = db.write_direct(|_| Ok(())).await;
        assert!(refused.is_err());
    }

    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_database_file() {
        let (db, dir) = sqlite().await;
        let file = dir.path().join("parley.db");
        let before = std::fs::metadata(&file).unwrap().len();
        // About 400 pages: below SQLite's own threshold (1,000), so without the
        // checkpointer they would stay in the WAL.
        for _ in 0..50 {
            db.write(|c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (k, v) VALUES (hex(randomblob(16000)), 1)")
                        .execute(&mut *c)
                        .await
                        .map(|_| ())
                })
            })
            .await
            .unwrap();
        }
        let grown = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let len = std::fs::metadata(&file).unwrap().len();
                if len > before + 1_000_000 {
                    return len;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            grown.is_ok(),
            "the database file stayed at {} bytes",
            std::fs::metadata(&file).unwrap().len()
        );
    }
}
