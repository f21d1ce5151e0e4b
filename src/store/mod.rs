//! The durable store: SQLite (embedded default) or PostgreSQL, behind one `sqlx::Any`
//! pool so that the queries are written once. The schema keeps to the types the two
//! dialects share through `Any`: TEXT ids (UUIDv7), BIGINT epoch milliseconds, flags as
//! BIGINT 0/1 (the Any driver maps no SQLite boolean), and JSON documents as TEXT.
//! Migrations live in one folder per backend.
//!
//! Every query that reads or changes a workspace's records takes the `workspace_id` and
//! filters on it: the store is where workspace isolation is enforced.

pub mod api_tokens;
pub mod append;
pub mod audit;
pub mod channels;
pub mod chatflows;
pub mod conn;
pub mod console;
pub mod engine;
pub mod inboxes;
mod io;
pub mod sessions;
pub mod teams;
pub mod uploads;
pub mod users;
pub mod visitors;
pub mod workspaces;
mod write;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use chrono::{DateTime, TimeZone as _, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions as _, Executor as _};

use crate::config::{DatabaseKind, Settings};

/// The configured database: a pool for writes (and for reads that must see a write in
/// the same flow) and a pool for reads that may run beside the writes.
///
/// On SQLite every write goes through **one** connection. SQLite has one writer at a
/// time anyway; with several connections the losers of a race wait in SQLite's busy
/// handler, which sleeps in steps of up to 100 ms (and a deferred transaction that tries
/// to upgrade to a writer fails at once with `SQLITE_BUSY`). One connection turns that
/// into a FIFO queue in the pool, with no sleeping and no busy errors. The reader pool
/// (`database.max_connections` connections, `PRAGMA query_only`) reads the WAL snapshot
/// of the last commit concurrently. On PostgreSQL both are the same pool.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    reader: AnyPool,
    kind: DatabaseKind,
    /// SQLite: the group commit in front of the writer connection (see [`Db::write`]).
    queue: Option<write::WriteQueue>,
    /// A SQLite file: read-only connections for [`Db::read_optional`] and
    /// [`Db::read_all`] (see [`conn`]).
    direct_readers: Option<std::sync::Arc<conn::DirectReaders>>,
    /// PostgreSQL: the runtime that owns the pool's connections and runs the store's
    /// statements (see [`io`] and [`Db::run`]).
    io: Option<io::DbRuntime>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("kind", &self.kind).finish()
    }
}

/// The options every pool starts from: `max` connections, acquires that give up after
/// 10 s, and no ping before each acquire (sqlx's default). On SQLite a connection is a
/// file handle, and each ping was a round trip to its worker thread per write round; on
/// PostgreSQL sqlx already pings every connection when it comes back to the pool (in a
/// task spawned on the releasing thread), so a second round trip per acquire only kept
/// connections out of use longer.
fn pool_options(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connect to the database `settings` name (creating the SQLite file and its
    /// directory on first run). Does not migrate.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let kind = settings
            .database_kind()
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
        let url = settings.database_url();
        if kind == DatabaseKind::Sqlite
            && let Some(dir) = sqlite_parent_dir(&url)
        {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
        }
        let options = AnyConnectOptions::from_str(&url)
            .context("database.url: cannot parse")?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let max = settings.database.max_connections;
        if kind == DatabaseKind::Postgres {
            // Every connection is opened at the start, on the database's runtime (see
            // [`io`]), and kept: a connection opened later by whoever acquired it (or to
            // replace one past its lifetime, by whoever released it) would belong to
            // that thread's I/O driver. A broken connection is still replaced, by the
            // next acquire, which the hot paths make on the database's runtime.
            let io = io::DbRuntime::start().context("starting the database runtime")?;
            let pool = io
                .run(async move {
                    pool_options(max)
                        .min_connections(max)
                        .max_lifetime(None)
                        .idle_timeout(None)
                        .connect_with(options)
                        .await
                })
                .await
                .with_context(|| format!("connecting to the {kind:?} database"))?;
            return Ok(Self {
                reader: pool.clone(),
                pool,
                kind,
                queue: None,
                direct_readers: None,
                io: Some(io),
            });
        }
        // The writer keeps savepoint journals in memory (the group commit runs each job
        // in a savepoint, and SQLite copies every page a job changes into its journal
        // first: as a temporary file that was a seventh of the writer's time) and leaves
        // checkpoints to the checkpointer (`write::checkpointer`), doing one itself only
        // past 10,000 WAL pages (if the checkpointer fell that far behind). A larger page
        // cache (64 MiB) was tried: no faster, 68 MiB more memory.
        macro_rules! writer_pragmas {
            ($synchronous:literal) => {
                concat!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = ",
                    $synchronous,
                    "; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA temp_store = MEMORY; \
                     PRAGMA wal_autocheckpoint = 10000;"
                )
            };
        }
        let writer_pragmas = match settings.database.sqlite_synchronous {
            crate::config::SqliteSynchronous::Full => writer_pragmas!("FULL"),
            crate::config::SqliteSynchronous::Normal => writer_pragmas!("NORMAL"),
        };
        let pool = pool_options(1)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(writer_pragmas).await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connecting to the {kind:?} database"))?;
        let in_memory = sqlite_parent_dir(&url).is_none() && url.contains(":memory:");
        // The writer's direct connection and the checkpointer open the file by name.
        let file = if in_memory {
            None
        } else {
            let sqlite = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .context("database.url: cannot parse")?;
            Some((sqlite.get_filename().to_path_buf(), options.clone()))
        };
        let direct_readers = file
            .as_ref()
            .map(|(path, _)| std::sync::Arc::new(conn::DirectReaders::new(path.clone())));
        let queue = Some(
            write::WriteQueue::start(pool.clone(), file, writer_pragmas)
                .context("starting the SQLite writer thread")?,
        );
        if in_memory {
            // Each connection to `:memory:` is its own database: one pool only.
            return Ok(Self {
                reader: pool.clone(),
                queue,
                pool,
                kind,
                direct_readers: None,
                io: None,
            });
        }
        let reader = pool_options(max)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA query_only = ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the {kind:?} database (readers)"))?;
        Ok(Self {
            queue,
            pool,
            reader,
            kind,
            direct_readers,
            io: None,
        })
    }

    /// Apply pending migrations; a no-op when there are none.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.kind {
            DatabaseKind::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseKind::Postgres => &POSTGRES_MIGRATIONS,
        };
        let pool = self.pool.clone();
        self.run(async move { migrator.run(&pool).await.map_err(sqlx::Error::from) })
            .await
            .context("running database migrations")?;
        Ok(())
    }

    /// The pool for writes, and for reads that must see this flow's own writes. On
    /// SQLite it has one connection: never hold one of its connections (or a
    /// transaction) while acquiring another.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for reads that may run beside the writes (the last committed state). On
    /// SQLite its connections are `query_only`: a write through it fails.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// A SQLite `:memory:` database with the default settings (no database file: no
    /// direct writer, no checkpointer). Not migrated.
    #[cfg(test)]
    #[allow(clippy::expect_used)]
    pub(crate) async fn in_memory_for_tests() -> Self {
        let env = vec![(
            "PARLEY__DATABASE__URL".to_owned(),
            "sqlite::memory:".to_owned(),
        )];
        let settings = Settings::load_with_env(None, env).expect("default settings");
        Self::connect(&settings)
            .await
            .expect("an in-memory database")
    }

    /// Run `work` where the database's I/O belongs: on PostgreSQL on the database's own
    /// runtime (see [`io`]; `work` runs to its end even if the caller stops waiting),
    /// on SQLite right here. For statements on [`Db::pool`] or [`Db::reader`] in hot
    /// paths; [`Db::write`], [`Db::write_conn`], [`Db::write_one`], [`Db::read_optional`]
    /// and [`Db::read_all`] already go through it.
    pub async fn run<T, E>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
    {
        match &self.io {
            Some(io) => io.run(work).await,
            None => work.await,
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let pool = self.pool.clone();
        self.run(async move { sqlx::query("SELECT 1").execute(&pool).await })
            .await?;
        Ok(())
    }

    /// Close every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        self.reader.close().await;
    }
}

/// The directory holding a `sqlite://PATH?…` file, if it has one.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

/// A new time-ordered opaque id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Now, in epoch milliseconds (the store's time unit).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Epoch milliseconds to a UTC time (the wire's unit).
pub fn to_time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Page size bounds for list endpoints.
pub const DEFAULT_PAGE: i64 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 200;

/// An opaque keyset cursor: the last id of the previous page.
pub fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Decode a cursor made by [`encode_cursor`]; `None` when it is not one.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let id = String::from_utf8(bytes).ok()?;
    uuid::Uuid::parse_str(&id).ok()?;
    Some(id)
}

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Cursor for the next page, when there is one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Build a page from `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, id_of: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// Is this error a unique-constraint violation (on either backend)?
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = new_id();
        assert_eq!(decode_cursor(&encode_cursor(&id)), Some(id));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(&encode_cursor("x' OR 1=1")), None);
    }

    #[test]
    fn a_page_with_an_extra_row_has_a_cursor() {
        let rows: Vec<String> = (0..4).map(|_| new_id()).collect();
        let page = Page::from_rows(rows.clone(), 3, |s| s.as_str());
        assert_eq!(page.items.len(), 3);
        assert_eq!(
            page.next_cursor.as_deref().and_then(decode_cursor),
            Some(rows[2].clone())
        );
        let page = Page::from_rows(rows, 4, |s| s.as_str());
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn sqlite_directory_is_found() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/parley.db?mode=rwc"),
            Some(std::path::PathBuf::from("data"))
        );
        assert_eq!(sqlite_parent_dir("sqlite://parley.db"), None);
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
    }
}
