//! One statement, written once, on either kind of connection.
//!
//! Most of the store goes through sqlx's `Any` driver. On SQLite that driver runs each
//! connection on a thread of its own and hands every statement to it and back: two
//! thread switches per statement, which in a burst of visitors (a widget session, a
//! socket, a conversation and its assignment each, several statements apiece) cost more
//! CPU than SQLite itself — on this machine the sqlx worker threads spent 12 % of their
//! time in `sqlite3_step` and most of the rest switching. The hot paths therefore use a
//! [`Conn`]: on a SQLite database file a rusqlite connection used synchronously on the
//! caller's thread (the writer's own connection for writes, see [`Db::write_conn`]; a
//! small pool of read-only connections for reads, see [`Db::read_optional`]), otherwise
//! (PostgreSQL, `:memory:`) sqlx as before. The SQL text is the same for both: `$N`
//! parameters bind by number on both drivers.
//!
//! A direct statement never waits: a [`Conn::Direct`] future is ready at its first
//! poll, which is how a job written as an `async` block runs synchronously on SQLite's
//! writer thread.

use std::borrow::Cow;
use std::sync::Mutex;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use sqlx::error::{DatabaseError, ErrorKind};

use super::Db;

/// A value bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// TEXT.
    Text(&'a str),
    /// BIGINT / INTEGER.
    Int(i64),
    /// NULL.
    Null,
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Int(i) => ValueRef::Integer(i),
            Arg::Null => ValueRef::Null,
        }))
    }
}

/// A result row of either driver, read by column name.
pub trait Row {
    /// A TEXT column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A nullable TEXT column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
}

impl Row for AnyRow {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
}

impl Row for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.get(column).map_err(direct_error)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.get(column).map_err(direct_error)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.get(column).map_err(direct_error)
    }
}

/// A connection to run statements on: sqlx's, or a direct SQLite one (see the module
/// docs).
pub enum Conn<'c> {
    /// Through sqlx (PostgreSQL, SQLite `:memory:`).
    Sqlx(&'c mut sqlx::AnyConnection),
    /// rusqlite, on this thread (a SQLite database file).
    Direct(&'c mut rusqlite::Connection),
}

impl Conn<'_> {
    /// Run a statement; the rows it changed.
    pub async fn execute(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        match self {
            Conn::Direct(c) => direct_execute(c, sql, args),
            Conn::Sqlx(c) => Ok(bound(sql, args).execute(&mut **c).await?.rows_affected()),
        }
    }

    /// The first row, if any, mapped by `map`.
    pub async fn fetch_optional<T>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Row) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Conn::Direct(c) => direct_optional(c, sql, args, &map),
            Conn::Sqlx(c) => match bound(sql, args).fetch_optional(&mut **c).await? {
                Some(r) => map(&r).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Every row, mapped by `map`.
    pub async fn fetch_all<T>(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Conn::Direct(c) => direct_all(c, sql, args, &map),
            Conn::Sqlx(c) => bound(sql, args)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(|r| map(r))
                .collect(),
        }
    }
}

/// An [`Arg`] that owns its text, for a statement moved into a write job
/// ([`Db::write_one`]).
#[derive(Debug, Clone)]
enum Owned {
    Text(String),
    Int(i64),
    Null,
}

impl From<&Arg<'_>> for Owned {
    fn from(a: &Arg<'_>) -> Self {
        match *a {
            Arg::Text(s) => Owned::Text(s.to_owned()),
            Arg::Int(i) => Owned::Int(i),
            Arg::Null => Owned::Null,
        }
    }
}

impl Owned {
    fn as_arg(&self) -> Arg<'_> {
        match self {
            Owned::Text(s) => Arg::Text(s),
            Owned::Int(i) => Arg::Int(*i),
            Owned::Null => Arg::Null,
        }
    }
}

/// The sqlx query for `sql` with `args` bound in order. The query owns its values, so
/// it can be sent to the database's runtime ([`Db::run`]) as it is.
fn bound(
    sql: &'static str,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match *a {
            Arg::Text(s) => q.bind(s.to_owned()),
            Arg::Int(i) => q.bind(i),
            Arg::Null => q.bind(None::<String>),
        };
    }
    q
}

fn direct_execute(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<u64, sqlx::Error> {
    let mut stmt = prepare(conn, sql, args)?;
    let n = stmt.raw_execute().map_err(direct_error)?;
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

fn direct_optional<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    map: &dyn Fn(&dyn Row) -> Result<T, sqlx::Error>,
) -> Result<Option<T>, sqlx::Error> {
    let mut stmt = prepare(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    match rows.next().map_err(direct_error)? {
        Some(r) => map(r).map(Some),
        None => Ok(None),
    }
}

fn direct_all<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    map: &dyn Fn(&dyn Row) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let mut stmt = prepare(conn, sql, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(direct_error)? {
        out.push(map(r)?);
    }
    Ok(out)
}

/// `sql` prepared (from the connection's cache) with `args` bound: `$N` and `?N` take
/// the N-th argument, as sqlx binds them; a bare `?` the next one.
fn prepare<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>, sqlx::Error> {
    let mut stmt = conn.prepare_cached(sql).map_err(direct_error)?;
    let count = stmt.parameter_count();
    for i in 1..=count {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.get(1..))
            .and_then(|digits| digits.parse::<usize>().ok())
            .unwrap_or(i);
        let arg = n.checked_sub(1).and_then(|n| args.get(n)).ok_or_else(|| {
            sqlx::Error::Protocol(format!("statement parameter {n} has no argument: {sql}"))
        })?;
        stmt.raw_bind_parameter(i, arg).map_err(direct_error)?;
    }
    Ok(stmt)
}

/// A failure of a direct connection as the store's error type; SQLite's constraint
/// failures keep their kind, so [`super::is_unique_violation`] sees them.
pub(super) fn direct_error(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            let message = message.unwrap_or_else(|| code.to_string());
            sqlx::Error::Database(Box::new(DirectDbError {
                message: format!("sqlite: {message}"),
                code: code.extended_code,
            }))
        }
        e => sqlx::Error::Protocol(format!("sqlite: {e}")),
    }
}

/// SQLite's error on a direct connection, as sqlx reports a database's errors.
#[derive(Debug)]
struct DirectDbError {
    message: String,
    /// SQLite's extended result code.
    code: std::os::raw::c_int,
}

impl std::fmt::Display for DirectDbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectDbError {}

impl DatabaseError for DirectDbError {
    fn message(&self) -> &str {
        &self.message
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// Read-only connections to a SQLite database file, used synchronously by whichever
/// thread reads (see the module docs). A read takes one (opening another when all are
/// in use, which only happens when several threads read at once) and puts it back.
pub(super) struct DirectReaders {
    path: std::path::PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

/// How many idle readers are kept (one per thread that reads is plenty).
const IDLE_READERS: usize = 8;

impl DirectReaders {
    pub(super) fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Run `f` on an idle reader (opening one when none is idle).
    fn with<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let conn = self.take()?;
        let out = f(&conn);
        self.put_back(conn);
        out
    }

    fn take(&self) -> Result<rusqlite::Connection, sqlx::Error> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(c);
        }
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(direct_error)?;
        // A WAL reader waits only in rare cases (another connection recovering the WAL
        // after a crash); it waits on the reading thread, so not for long.
        conn.execute_batch("PRAGMA busy_timeout = 1000; PRAGMA query_only = ON;")
            .map_err(direct_error)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn put_back(&self, conn: rusqlite::Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_READERS
        {
            idle.push(conn);
        }
    }
}

/// The error of a direct job whose future did not finish at its first poll (it awaited
/// something other than its [`Conn`]).
fn waited() -> sqlx::Error {
    sqlx::Error::Protocol("a direct SQLite job waited on something besides its statements".into())
}

impl Db {
    /// One row of a read of the last committed state: on a SQLite file on a direct
    /// read-only connection, on this thread; otherwise on sqlx's reader pool (on
    /// PostgreSQL, on the database's runtime: [`Db::run`]).
    pub async fn read_optional<T>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Row) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        match &self.direct_readers {
            Some(readers) => readers.with(|c| direct_optional(c, sql, args, &map)),
            None => {
                let (reader, query) = (self.reader.clone(), bound(sql, args));
                let row = self
                    .run(async move { query.fetch_optional(&reader).await })
                    .await?;
                row.as_ref().map(|r| map(r)).transpose()
            }
        }
    }

    /// Every row of a read (see [`Db::read_optional`]).
    pub async fn read_all<T>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: impl Fn(&dyn Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match &self.direct_readers {
            Some(readers) => readers.with(|c| direct_all(c, sql, args, &map)),
            None => {
                let (reader, query) = (self.reader.clone(), bound(sql, args));
                self.run(async move { query.fetch_all(&reader).await })
                    .await?
                    .iter()
                    .map(|r| map(r))
                    .collect()
            }
        }
    }

    /// One statement as a write transaction of its own; the rows it changed. On a SQLite
    /// file a job on the writer's direct connection (see [`Db::write_conn`]); on
    /// PostgreSQL the statement alone, committed by itself (no `BEGIN` and `COMMIT`
    /// round trips), on the database's runtime.
    pub async fn write_one(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        // SQLite: a job of the group commit.
        if self.queue.is_some() {
            let args: Vec<Owned> = args.iter().map(Owned::from).collect();
            return self
                .write_conn(move |mut conn| {
                    Box::pin(async move {
                        let args: Vec<Arg<'_>> = args.iter().map(Owned::as_arg).collect();
                        conn.execute(sql, &args).await
                    })
                })
                .await;
        }
        let (pool, query) = (self.pool.clone(), bound(sql, args));
        self.run(async move { Ok(query.execute(&pool).await?.rows_affected()) })
            .await
    }

    /// [`Db::write`] with a [`Conn`]: on a SQLite file the job runs on the writer's
    /// direct connection (no hand-off per statement; see [`Db::write_direct`] for how it
    /// shares a round), otherwise as [`Db::write`]. `f` must only await its [`Conn`].
    pub async fn write_conn<T, F>(&self, f: F) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<T, sqlx::Error>> + Send + 'static,
    {
        if self.has_direct_writer() {
            self.write_direct(move |conn| {
                f(Conn::Direct(conn))
                    .now_or_never()
                    .unwrap_or_else(|| Err(waited()))
            })
            .await
        } else {
            self.write(move |conn| f(Conn::Sqlx(conn))).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::FutureExt as _;
    use sqlx::Connection as _;

    use super::*;

    const SCHEMA: &str = "CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT)";

    fn row(r: &dyn Row) -> Result<(String, i64, Option<String>), sqlx::Error> {
        Ok((r.text("id")?, r.int("n")?, r.opt_text("note")?))
    }

    /// The same statements on each kind of connection: numbered parameters out of order
    /// and repeated, NULLs, and a unique violation that keeps its kind.
    async fn exercise(conn: &mut Conn<'_>) -> Vec<(String, i64, Option<String>)> {
        let insert = "INSERT INTO t (n, id, note) VALUES ($2, $1, $3)";
        conn.execute(insert, &[Arg::Text("a"), Arg::Int(1), Arg::Null])
            .await
            .unwrap();
        conn.execute(insert, &[Arg::Text("b"), Arg::Int(2), Some("x").into()])
            .await
            .unwrap();
        let e = conn
            .execute(insert, &[Arg::Text("a"), Arg::Int(3), Arg::Null])
            .await
            .unwrap_err();
        assert!(crate::store::is_unique_violation(&e), "{e}");
        let changed = conn
            .execute(
                "UPDATE t SET n = $1 + $1 WHERE id = $2",
                &[Arg::Int(5), Arg::Text("b")],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        assert!(
            conn.fetch_optional(
                "SELECT id, n, note FROM t WHERE id = $1",
                &[Arg::Text("z")],
                row
            )
            .await
            .unwrap()
            .is_none()
        );
        conn.fetch_all("SELECT id, n, note FROM t ORDER BY id", &[], row)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn direct_and_sqlx_connections_run_the_same_statements_alike() {
        let want = vec![
            ("a".to_owned(), 1, None),
            ("b".to_owned(), 10, Some("x".to_owned())),
        ];
        let mut direct = rusqlite::Connection::open_in_memory().unwrap();
        direct.execute_batch(SCHEMA).unwrap();
        let got = exercise(&mut Conn::Direct(&mut direct))
            .now_or_never()
            .expect("a direct connection never waits");
        assert_eq!(got, want);
        let missing = direct_execute(
            &direct,
            "UPDATE t SET n = $2 WHERE id = $1",
            &[Arg::Text("a")],
        );
        assert!(
            missing.is_err(),
            "a parameter without an argument is an error"
        );

        sqlx::any::install_default_drivers();
        let mut sqlx = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(SCHEMA).execute(&mut sqlx).await.unwrap();
        assert_eq!(exercise(&mut Conn::Sqlx(&mut sqlx)).await, want);
    }

    #[tokio::test]
    async fn a_database_file_reads_on_direct_connections_and_writes_on_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let env = vec![("PARLEY__DATABASE__URL".to_owned(), url)];
        let settings = crate::config::Settings::load_with_env(None, env).unwrap();
        let db = Db::connect(&settings).await.unwrap();
        assert!(db.direct_readers.is_some() && db.has_direct_writer());
        sqlx::query(SCHEMA).execute(db.pool()).await.unwrap();
        let got = db
            .write_conn(|mut c| Box::pin(async move { Ok(exercise(&mut c).await) }))
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        // The readers see the commit, and cannot write.
        let read = db
            .read_all("SELECT id, n, note FROM t ORDER BY id", &[], row)
            .await
            .unwrap();
        assert_eq!(read, got);
        let one = db
            .read_optional(
                "SELECT id, n, note FROM t WHERE id = $1",
                &[Arg::Text("b")],
                row,
            )
            .await
            .unwrap();
        assert_eq!(one, Some(got[1].clone()));
        let refused = db
            .read_all("DELETE FROM t RETURNING id", &[], |r| r.text("id"))
            .await;
        assert!(refused.is_err(), "a reader wrote");
        // One statement as its own write.
        let changed = db
            .write_one(
                "UPDATE t SET note = $1 WHERE id = $2",
                &[Arg::Text("one"), Arg::Text("a")],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1);
        let note = db
            .read_optional(
                "SELECT id, n, note FROM t WHERE id = $1",
                &[Arg::Text("a")],
                row,
            )
            .await
            .unwrap();
        assert_eq!(note.and_then(|(_, _, note)| note).as_deref(), Some("one"));
        assert!(
            db.write_one("INSERT INTO t (id, n) VALUES ($1, 1)", &[Arg::Text("a")])
                .await
                .is_err_and(|e| crate::store::is_unique_violation(&e)),
            "a failing statement reports its error"
        );
        db.write_one("UPDATE t SET note = NULL WHERE id = $1", &[Arg::Text("a")])
            .await
            .unwrap();
        // A job that awaits something besides its connection fails and leaves nothing.
        let waited = db
            .write_conn(|mut c| {
                Box::pin(async move {
                    c.execute("DELETE FROM t", &[]).await?;
                    tokio::task::yield_now().await;
                    Ok(())
                })
            })
            .await;
        assert!(waited.is_err());
        assert_eq!(
            db.read_all("SELECT id FROM t", &[], |r| r.text("id"))
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
