//! The server under test. Either `parley-load` spawns the binary itself — on port 0, with
//! a fresh SQLite data dir, or a fresh PostgreSQL database `parley_load_<uuid>` (and a
//! fresh Redis key prefix) that it removes afterwards, exactly as the black-box tests'
//! `Node::spawn` does — or it drives a node that is already running.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::Connection as _;

/// The admin's password on a spawned node.
const ADMIN_PASSWORD: &str = "load-test-admin-password";

/// Which server to load.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start the binary for the run, and stop it after.
    Spawn(SpawnOptions),
    /// A running node.
    Remote {
        /// `http://HOST:PORT`.
        url: String,
        /// An admin of the workspace to load.
        admin_email: String,
        /// Their password.
        admin_password: String,
    },
}

/// How to start the binary.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The `parley` binary.
    pub bin: PathBuf,
    /// A PostgreSQL server URL to make the run's database on; `None`: SQLite.
    pub database_url: Option<String>,
    /// A Redis URL for the backplane; `None`: the in-process one.
    pub redis_url: Option<String>,
    /// Extra `PARLEY__…` settings (they win over the load defaults).
    pub env: Vec<(String, String)>,
}

impl Target {
    /// A short name for reports: `sqlite`, `postgres+redis`, or the URL.
    pub fn describe(&self) -> String {
        match self {
            Target::Spawn(o) => {
                let db = if o.database_url.is_some() {
                    "postgres"
                } else {
                    "sqlite"
                };
                let bp = if o.redis_url.is_some() {
                    "+redis"
                } else {
                    "+local"
                };
                format!("{db}{bp} (spawned {})", o.bin.display())
            }
            Target::Remote { url, .. } => url.clone(),
        }
    }

    /// Start (or reach) the node.
    pub async fn start(&self) -> anyhow::Result<Node> {
        match self {
            Target::Spawn(o) => Node::spawn(o).await,
            Target::Remote {
                url,
                admin_email,
                admin_password,
            } => Ok(Node {
                address: url.trim_end_matches('/').to_owned(),
                admin_email: admin_email.clone(),
                admin_password: admin_password.clone(),
                child: None,
                log: Arc::default(),
                _dir: None,
                pg: None,
                redis: None,
            }),
        }
    }
}

/// Warnings and errors the spawned server logged.
#[derive(Debug, Default)]
pub struct ServerLog {
    /// Lines with `WARN`.
    pub warnings: AtomicU64,
    /// Lines with `ERROR` (or a panic).
    pub errors: AtomicU64,
}

/// A node being loaded.
pub struct Node {
    /// `http://HOST:PORT`.
    pub address: String,
    /// Admin login.
    pub admin_email: String,
    /// Admin password.
    pub admin_password: String,
    child: Option<std::process::Child>,
    /// What the spawned server logged (zero for a remote node).
    pub log: Arc<ServerLog>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
    redis: Option<RedisPrefix>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .finish()
    }
}

impl Node {
    /// The server's pid when it runs here.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// `ws://HOST:PORT`.
    pub fn ws_base(&self) -> String {
        self.address.replacen("http", "ws", 1)
    }

    async fn spawn(o: &SpawnOptions) -> anyhow::Result<Node> {
        if !o.bin.is_file() {
            bail!(
                "no parley binary at {}: build it (cargo build --release -p parley) or pass --bin",
                o.bin.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("parley-load-")
            .tempdir()
            .context("temp data dir")?;
        let mut env: Vec<(String, String)> = [
            ("PARLEY__SERVER__HOST", "127.0.0.1"),
            ("PARLEY__SERVER__PORT", "0"),
            ("PARLEY__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
            ("PARLEY__LOG__FILTER", "warn"),
            ("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "100000"),
            ("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "1000000"),
            ("PARLEY__AUTH__LOGIN_PER_IP_PER_MINUTE", "100000"),
            ("PARLEY__AUTH__LOGIN_PER_ACCOUNT_PER_MINUTE", "100000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.push((
            "PARLEY__STORAGE__DATA_DIR".into(),
            dir.path().display().to_string(),
        ));
        let pg = match &o.database_url {
            Some(url) => {
                let db = PgDatabase::create(url).await?;
                env.push(("PARLEY__DATABASE__URL".into(), db.url()));
                Some(db)
            }
            None => None,
        };
        let redis = match &o.redis_url {
            Some(url) => {
                let r = RedisPrefix::create(url).await?;
                env.push(("PARLEY__REDIS__URL".into(), url.clone()));
                env.push(("PARLEY__REDIS__KEY_PREFIX".into(), r.prefix.clone()));
                Some(r)
            }
            None => None,
        };
        env.extend(o.env.iter().cloned());

        let admin_email = "admin@load.test".to_owned();
        let out = tokio::process::Command::new(&o.bin)
            .args(["create-admin", "--email", &admin_email, "--password"])
            .arg(ADMIN_PASSWORD)
            .args(["--workspace", "Load"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("running {} create-admin", o.bin.display()))?;
        if !out.status.success() {
            bail!(
                "parley create-admin failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }

        let mut child = std::process::Command::new(&o.bin)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", o.bin.display()))?;
        let stderr = child.stderr.take().context("server stderr")?;
        let log = Arc::new(ServerLog::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let counts = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_owned());
                    continue;
                }
                if line.contains("ERROR") || line.contains("panicked") {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                } else if line.contains("WARN") {
                    counts.warnings.fetch_add(1, Ordering::Relaxed);
                }
                eprintln!("[server] {line}");
            }
        });
        let mut node = Node {
            address: String::new(),
            admin_email,
            admin_password: ADMIN_PASSWORD.to_owned(),
            child: Some(child),
            log,
            _dir: Some(dir),
            pg,
            redis,
        };
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(addr)) => node.address = format!("http://{addr}"),
            _ => {
                node.stop().await;
                bail!("the server did not print its address within 60 s");
            }
        }
        Ok(node)
    }

    /// Stop the server (SIGTERM, then kill after 5 s) and remove its database and keys.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if tokio::time::Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_database().await;
        }
        if let Some(r) = self.redis.take() {
            r.delete_keys().await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // `stop` was not reached (an error or a panic): at least end the server. The
        // database and keys are removed on a thread of their own, as async cleanup
        // cannot run here.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let pg = self.pg.take();
        let redis = self.redis.take();
        if pg.is_some() || redis.is_some() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(async move {
                        if let Some(pg) = pg {
                            pg.drop_database().await;
                        }
                        if let Some(r) = redis {
                            r.delete_keys().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// A PostgreSQL database made for one run.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("parley_load_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .context("creating the run's database")?;
        let _ = conn.close().await;
        Ok(PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.admin_url.as_str(), None),
        };
        let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
        match query {
            Some(q) => format!("{root}/{}?{q}", self.name),
            None => format!("{root}/{}", self.name),
        }
    }

    async fn drop_database(self) {
        match sqlx::PgConnection::connect(&self.admin_url).await {
            Ok(mut conn) => {
                let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                )))
                .execute(&mut conn)
                .await;
                if let Err(e) = r {
                    eprintln!("parley-load: could not drop database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("parley-load: could not drop database {}: {e}", self.name),
        }
    }
}

/// A Redis key prefix made for one run.
struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    async fn create(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("Redis URL {url}"))?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .with_context(|| format!("Redis at {url} does not answer"))?
        .with_context(|| format!("connecting to Redis at {url}"))?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(RedisPrefix {
            url: url.to_owned(),
            prefix: format!("parley_load_{}:", uuid::Uuid::new_v4().simple()),
        })
    }

    async fn delete_keys(self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let page: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await;
            let Ok((next, keys)) = page else { return };
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
