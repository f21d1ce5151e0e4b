//! The server under test. Either `parley-load` spawns the binary itself — on port 0, with
//! a fresh SQLite data dir, or a fresh PostgreSQL database `parley_load_<uuid>` (and a
//! fresh Redis key prefix) that it removes afterwards, exactly as the black-box tests'
//! `Node::spawn` does — or it drives a node that is already running.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::Connection as _;

use crate::proto::Proto;

/// The admin's password on a spawned node.
const ADMIN_PASSWORD: &str = "load-test-admin-password";

/// What kind of server a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The `parley` binary.
    Parley,
    /// The Socket.IO peer (`loadtests/peers/socketio/server.js`, run by `node`).
    SocketIo,
    /// The bare WebSocket relay (`parley-relay`): no storage, the ceiling.
    Relay,
}

impl Kind {
    /// The wire dialect it speaks.
    pub fn proto(self) -> Proto {
        match self {
            Kind::Parley => Proto::Parley,
            Kind::SocketIo => Proto::SocketIo,
            Kind::Relay => Proto::Relay,
        }
    }

    /// `parley`, `socketio`, `relay`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Parley => "parley",
            Kind::SocketIo => "socketio",
            Kind::Relay => "relay",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "parley" => Ok(Kind::Parley),
            "socketio" | "socket.io" => Ok(Kind::SocketIo),
            "relay" => Ok(Kind::Relay),
            _ => bail!("unknown target {s:?} (parley, socketio, relay)"),
        }
    }
}

/// Which server to load.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start the server(s) for the run, and stop them after.
    Spawn(SpawnOptions),
    /// Running Parley nodes (one, or two sharing a database and Redis).
    Remote {
        /// `http://HOST:PORT` of each node.
        urls: Vec<String>,
        /// An admin of the workspace to load.
        admin_email: String,
        /// Their password.
        admin_password: String,
    },
}

/// How to start the server(s).
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Parley, the Socket.IO peer or the relay.
    pub kind: Kind,
    /// The `parley` binary (Parley), the `parley-relay` binary (relay), or the peer's
    /// directory (Socket.IO).
    pub bin: PathBuf,
    /// A PostgreSQL server URL to make the run's database on; `None`: SQLite.
    pub database_url: Option<String>,
    /// A Redis URL for the backplane; `None`: the in-process one.
    pub redis_url: Option<String>,
    /// Extra environment for the server (`PARLEY__…` settings win over the load defaults).
    pub env: Vec<(String, String)>,
    /// Nodes to start (2: visitors on the first, agents on the second; needs PostgreSQL
    /// and Redis).
    pub nodes: usize,
}

impl SpawnOptions {
    /// Parley with these stores, one node.
    pub fn parley(bin: PathBuf, database_url: Option<String>, redis_url: Option<String>) -> Self {
        SpawnOptions {
            kind: Kind::Parley,
            bin,
            database_url,
            redis_url,
            env: Vec::new(),
            nodes: 1,
        }
    }
}

impl Target {
    /// The wire dialect.
    pub fn proto(&self) -> Proto {
        match self {
            Target::Spawn(o) => o.kind.proto(),
            Target::Remote { .. } => Proto::Parley,
        }
    }

    /// What kind of server.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Spawn(o) => o.kind,
            Target::Remote { .. } => Kind::Parley,
        }
    }

    /// A short name for reports: `parley sqlite+local`, `socketio postgres+redis ×2`, or
    /// the URLs.
    pub fn describe(&self) -> String {
        match self {
            Target::Spawn(o) => {
                let stores = if o.kind == Kind::Relay {
                    "no storage".to_owned()
                } else {
                    let db = if o.database_url.is_some() {
                        "postgres"
                    } else {
                        "sqlite"
                    };
                    let bp = match (o.redis_url.is_some(), o.kind) {
                        (true, _) => "+redis",
                        (false, Kind::Parley) => "+local",
                        (false, _) => "",
                    };
                    format!("{db}{bp}")
                };
                let nodes = if o.nodes > 1 {
                    format!(", {} nodes", o.nodes)
                } else {
                    String::new()
                };
                format!("{} {stores}{nodes}", o.kind.name())
            }
            Target::Remote { urls, .. } => urls.join(" + "),
        }
    }

    /// Start (or reach) the node(s).
    pub async fn start(&self) -> anyhow::Result<Cluster> {
        match self {
            Target::Spawn(o) => Cluster::spawn(o).await,
            Target::Remote {
                urls,
                admin_email,
                admin_password,
            } => Ok(Cluster {
                kind: Kind::Parley,
                nodes: urls
                    .iter()
                    .map(|url| Node {
                        address: url.trim_end_matches('/').to_owned(),
                        child: None,
                        log: Arc::default(),
                    })
                    .collect(),
                admin_email: admin_email.clone(),
                admin_password: admin_password.clone(),
                _dir: None,
                pg: None,
                redis: None,
            }),
        }
    }
}

/// Warnings and errors a spawned server logged.
#[derive(Debug, Default)]
pub struct ServerLog {
    /// Lines with `WARN`.
    pub warnings: AtomicU64,
    /// Lines with `ERROR` (or a panic).
    pub errors: AtomicU64,
}

/// One server process (or a remote node).
pub struct Node {
    /// `http://HOST:PORT`.
    pub address: String,
    child: Option<std::process::Child>,
    /// What the spawned server logged (zero for a remote node).
    pub log: Arc<ServerLog>,
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

    /// Start `cmd` and wait for it to print `listening on http://ADDR` (on stdout or
    /// stderr); its other output is passed on, and its warnings and errors counted.
    fn start(mut cmd: std::process::Command, what: &str) -> anyhow::Result<(Node, Receiver)> {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let log = Arc::new(ServerLog::default());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().context("server stdout")?;
        let stderr = child.stderr.take().context("server stderr")?;
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            let counts = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(pipe).lines() {
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
        }
        Ok((
            Node {
                address: String::new(),
                child: Some(child),
                log,
            },
            rx,
        ))
    }

    /// SIGTERM, then kill after 5 s.
    async fn stop(&mut self) {
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
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // `stop` was not reached (an error or a panic): at least end the server.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

type Receiver = tokio::sync::mpsc::UnboundedReceiver<String>;

/// The server(s) of one run, with the database and Redis prefix made for it.
pub struct Cluster {
    /// What they are.
    pub kind: Kind,
    /// The nodes: visitors use the first, agents the last.
    pub nodes: Vec<Node>,
    /// Admin login (Parley).
    pub admin_email: String,
    /// Admin password (Parley).
    pub admin_password: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
    redis: Option<RedisPrefix>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("kind", &self.kind)
            .field("nodes", &self.nodes)
            .finish()
    }
}

impl Cluster {
    /// Where visitors connect.
    pub fn visitor_node(&self) -> &Node {
        &self.nodes[0]
    }

    /// Where agents connect.
    pub fn agent_node(&self) -> &Node {
        &self.nodes[self.nodes.len() - 1]
    }

    /// Pids of the server processes running here.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(Node::pid).collect()
    }

    /// The run's PostgreSQL database name, if it made one.
    pub fn database_name(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.name.as_str())
    }

    /// Warnings and errors logged by all nodes.
    pub fn log_counts(&self) -> (u64, u64) {
        self.nodes.iter().fold((0, 0), |(w, e), n| {
            (
                w + n.log.warnings.load(Ordering::Relaxed),
                e + n.log.errors.load(Ordering::Relaxed),
            )
        })
    }

    async fn spawn(o: &SpawnOptions) -> anyhow::Result<Cluster> {
        if o.nodes == 0 || o.nodes > 2 {
            bail!("--nodes must be 1 or 2");
        }
        if o.nodes > 1
            && o.kind != Kind::Relay
            && (o.database_url.is_none() || o.redis_url.is_none())
        {
            bail!("two nodes share PostgreSQL and Redis: give --database-url and --redis-url");
        }
        if o.kind == Kind::Relay && o.nodes > 1 {
            bail!("the relay runs on one node");
        }
        let dir = tempfile::Builder::new()
            .prefix("parley-load-")
            .tempdir()
            .context("temp data dir")?;
        let mut cluster = Cluster {
            kind: o.kind,
            nodes: Vec::new(),
            admin_email: "admin@load.test".to_owned(),
            admin_password: ADMIN_PASSWORD.to_owned(),
            _dir: None,
            pg: None,
            redis: None,
        };
        let mut env: Vec<(String, String)> = Vec::new();
        if o.kind != Kind::Relay {
            if let Some(url) = &o.database_url {
                let db = PgDatabase::create(url).await?;
                env.push(("DATABASE_URL".into(), db.url()));
                cluster.pg = Some(db);
            }
            if let Some(url) = &o.redis_url {
                let r = RedisPrefix::create(url).await?;
                env.push(("REDIS_URL".into(), url.clone()));
                env.push(("REDIS_PREFIX".into(), r.prefix.clone()));
                cluster.redis = Some(r);
            }
        }
        let result = match o.kind {
            Kind::Parley => cluster.spawn_parley(o, &dir, &env).await,
            Kind::SocketIo => cluster.spawn_socketio(o, &dir, &env).await,
            Kind::Relay => cluster.spawn_relay(o).await,
        };
        cluster._dir = Some(dir);
        if let Err(e) = result {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn wait_listening(&mut self, mut node: Node, mut rx: Receiver) -> anyhow::Result<()> {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(addr)) => node.address = format!("http://{addr}"),
            _ => {
                node.stop().await;
                bail!("the server did not print its address within 60 s");
            }
        }
        self.nodes.push(node);
        Ok(())
    }

    async fn spawn_parley(
        &mut self,
        o: &SpawnOptions,
        dir: &tempfile::TempDir,
        stores: &[(String, String)],
    ) -> anyhow::Result<()> {
        if !o.bin.is_file() {
            bail!(
                "no parley binary at {}: build it (cargo build --release -p parley) or pass --bin",
                o.bin.display()
            );
        }
        let mut env: Vec<(String, String)> = [
            ("PARLEY__SERVER__HOST", "127.0.0.1"),
            ("PARLEY__SERVER__PORT", "0"),
            ("PARLEY__SERVER__SHUTDOWN_TIMEOUT_SECS", "2"),
            ("PARLEY__LOG__FILTER", "warn"),
            ("PARLEY__ENGINE__VISITOR_MESSAGES_PER_SEC", "100000"),
            ("PARLEY__ENGINE__CONNECTS_PER_IP_PER_MINUTE", "100000000"),
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
        for (k, v) in stores {
            match k.as_str() {
                "DATABASE_URL" => env.push(("PARLEY__DATABASE__URL".into(), v.clone())),
                "REDIS_URL" => env.push(("PARLEY__REDIS__URL".into(), v.clone())),
                "REDIS_PREFIX" => env.push(("PARLEY__REDIS__KEY_PREFIX".into(), v.clone())),
                _ => {}
            }
        }
        env.extend(o.env.iter().cloned());

        let out = tokio::process::Command::new(&o.bin)
            .args(["create-admin", "--email", &self.admin_email, "--password"])
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
        for _ in 0..o.nodes {
            let mut cmd = std::process::Command::new(&o.bin);
            // `RUST_LOG` first, so a `--server-env RUST_LOG=…` can replace it.
            cmd.env("RUST_LOG", "warn")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null());
            let (node, rx) = Node::start(cmd, &o.bin.display().to_string())?;
            self.wait_listening(node, rx).await?;
        }
        Ok(())
    }

    async fn spawn_socketio(
        &mut self,
        o: &SpawnOptions,
        dir: &tempfile::TempDir,
        stores: &[(String, String)],
    ) -> anyhow::Result<()> {
        let peer_dir = &o.bin;
        let sqlite = o.database_url.is_none();
        install_peer(peer_dir, sqlite).await?;
        let mut env: Vec<(String, String)> = stores.to_vec();
        if sqlite {
            env.push((
                "DATABASE_URL".into(),
                format!("sqlite:{}", dir.path().join("peer.db").display()),
            ));
        }
        env.push(("HOST".into(), "127.0.0.1".into()));
        env.push(("PORT".into(), "0".into()));
        env.extend(o.env.iter().cloned());
        for _ in 0..o.nodes {
            let mut cmd = std::process::Command::new("node");
            cmd.arg(peer_dir.join("server.js"))
                .current_dir(peer_dir)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null());
            let (node, rx) = Node::start(cmd, "node (the Socket.IO peer)")?;
            self.wait_listening(node, rx).await?;
        }
        Ok(())
    }

    async fn spawn_relay(&mut self, o: &SpawnOptions) -> anyhow::Result<()> {
        if !o.bin.is_file() {
            bail!(
                "no relay binary at {}: build it (cargo build --release -p parley-loadtests) or pass --relay-bin",
                o.bin.display()
            );
        }
        let mut cmd = std::process::Command::new(&o.bin);
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .envs(o.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null());
        let (node, rx) = Node::start(cmd, &o.bin.display().to_string())?;
        self.wait_listening(node, rx).await
    }

    /// Stop the servers and remove the run's database and keys.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
        if let Some(pg) = self.pg.take() {
            pg.drop_database().await;
        }
        if let Some(r) = self.redis.take() {
            r.delete_keys().await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `stop` was not reached (an error or a panic): end the servers, then remove the
        // database and keys on a thread of their own (async cleanup cannot run here).
        self.nodes.clear();
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

/// The Socket.IO peer's directory in this checkout.
pub fn default_peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/socketio")
}

/// Whether `node` and `npm` are installed.
pub fn node_available() -> bool {
    ["node", "npm"].iter().all(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Run the peer's `install.sh` (npm ci from the committed lock file, once; `--sqlite`
/// adds the native SQLite driver).
pub async fn install_peer(peer_dir: &Path, sqlite: bool) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(peer_dir.join("install.sh"));
    if sqlite {
        cmd.arg("--sqlite");
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {}/install.sh", peer_dir.display()))?;
    if !out.status.success() {
        bail!(
            "installing the Socket.IO peer's packages failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
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
