//! The test harness: `spawn_app` starts the real server on port 0 with a fresh store
//! (a SQLite file in a temp dir, or a new PostgreSQL database) and, for the PostgreSQL
//! variant, Redis with a fresh key prefix; typed helpers speak HTTP to it.
//!
//! Service URLs come from the environment:
//! - `PARLEY_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`): the
//!   server to make test databases on. Unset: PostgreSQL variants are skipped, except
//!   under CI (`CI` set), where that is an error.
//! - `PARLEY_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`): the same for Redis.
//!
//! A URL that is set but unreachable fails the test: it never silently passes.

#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

use parley::config::Settings;
use parley::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// Which store (and backplane) a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, in-process backplane.
    Sqlite,
    /// PostgreSQL database, Redis backplane.
    Postgres,
}

/// Generate one `#[actix_web::test]` per backend for an `async fn(Backend)` test body.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[actix_web::test]
                async fn postgres() {
                    if $crate::helpers::postgres_enabled() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            }
        )+
    };
}

fn env_url(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{name} must be set under CI so that the suite runs against the real service"
            );
            None
        }
    }
}

/// Whether PostgreSQL (and Redis) variants run; prints why not when they do not.
pub fn postgres_enabled() -> bool {
    let pg = env_url("PARLEY_TEST_POSTGRES_URL").is_some();
    let redis = env_url("PARLEY_TEST_REDIS_URL").is_some();
    if !(pg && redis) {
        eprintln!(
            "skipped: set PARLEY_TEST_POSTGRES_URL and PARLEY_TEST_REDIS_URL to run the \
             PostgreSQL+Redis variant"
        );
    }
    pg && redis
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            parley::telemetry::init(&parley::config::LogSettings {
                filter: "info,sqlx=warn".into(),
                format: parley::config::LogFormat::Text,
            });
        }
    });
}

/// A PostgreSQL database made for one test, dropped when the test ends (pass or fail).
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create() -> Self {
        let admin_url = env_url("PARLEY_TEST_POSTGRES_URL").expect("PostgreSQL URL");
        let name = format!("parley_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PARLEY_TEST_POSTGRES_URL is set but unreachable: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        PgDatabase { admin_url, name }
    }

    fn url(&self) -> String {
        let base = self.admin_url.split('?').next().unwrap_or_default();
        let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
        format!("{root}/{}", self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A Redis key prefix made for one test; its keys are deleted when the test ends.
pub struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    async fn create() -> Self {
        let url = env_url("PARLEY_TEST_REDIS_URL").expect("Redis URL");
        let client = redis::Client::open(url.as_str()).expect("Redis URL parses");
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("PARLEY_TEST_REDIS_URL is set but Redis does not answer")
        .unwrap_or_else(|e| panic!("PARLEY_TEST_REDIS_URL is set but unreachable: {e}"));
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("Redis PING");
        RedisPrefix {
            url,
            prefix: format!("parley_test_{}:", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_connection()
            {
                {
                    let keys: Vec<String> = redis::cmd("KEYS")
                        .arg(&pattern)
                        .query(&mut conn)
                        .unwrap_or_default();
                    if !keys.is_empty() {
                        let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                    }
                }
            }
        })
        .join();
    }
}

/// What a test's store is made of; reusable to start the app again on the same data.
pub struct TestEnv {
    /// Which backend.
    pub backend: Backend,
    /// Environment-style overrides that make up the settings.
    pub overrides: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    _pg: Option<PgDatabase>,
    _redis: Option<RedisPrefix>,
}

impl TestEnv {
    /// A fresh store for `backend`, with extra `PARLEY__…` overrides.
    pub async fn new(backend: Backend, extra: &[(&str, &str)]) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut overrides = vec![
            ("PARLEY__SERVER__PORT".to_owned(), "0".to_owned()),
            ("PARLEY__SERVER__WORKERS".to_owned(), "2".to_owned()),
            (
                "PARLEY__SERVER__SHUTDOWN_TIMEOUT_SECS".to_owned(),
                "1".to_owned(),
            ),
            (
                "PARLEY__STORAGE__DATA_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
        ];
        let (pg, redis) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let pg = PgDatabase::create().await;
                let redis = RedisPrefix::create().await;
                overrides.push(("PARLEY__DATABASE__URL".into(), pg.url()));
                overrides.push(("PARLEY__REDIS__URL".into(), redis.url.clone()));
                overrides.push(("PARLEY__REDIS__KEY_PREFIX".into(), redis.prefix.clone()));
                (Some(pg), Some(redis))
            }
        };
        for (k, v) in extra {
            overrides.push(((*k).to_owned(), (*v).to_owned()));
        }
        TestEnv {
            backend,
            overrides,
            _dir: dir,
            _pg: pg,
            _redis: redis,
        }
    }

    /// The settings these overrides make.
    pub fn settings(&self) -> Settings {
        Settings::load_with_env(None, self.overrides.clone()).expect("test settings load")
    }

    /// Start the server on these settings.
    pub async fn start(&self) -> TestApp {
        let app = Application::build(self.settings())
            .await
            .expect("application builds");
        let port = app.port();
        let handle = app.handle();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client: client(),
            handle: Some(handle),
        }
    }
}

/// A fresh reqwest client with its own cookie jar.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A client without credentials.
    pub client: reqwest::Client,
    handle: Option<actix_web::dev::ServerHandle>,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    /// The problem code of an error answer (panics on a non-problem body).
    pub fn code(&self) -> &str {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "expected a problem+json answer, got {self:?}"
        );
        self.body["code"].as_str().expect("problem has a code")
    }

    /// Assert the status, with the body in the message.
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        self
    }

    /// Assert an error status and code.
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {:#}",
            self.body
        );
        assert_eq!(self.code(), code, "unexpected problem: {:#}", self.body);
        self
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Bearer token.
    pub token: String,
    /// CSRF token.
    pub csrf: String,
    /// The user object from login.
    pub user: Value,
}

impl Session {
    /// The user's id.
    pub fn id(&self) -> String {
        self.user["id"].as_str().expect("user id").to_owned()
    }
}

impl TestApp {
    /// Spawn a fresh app on `backend` with default settings.
    pub async fn spawn(backend: Backend) -> (TestEnv, TestApp) {
        let env = TestEnv::new(backend, &[]).await;
        let app = env.start().await;
        (env, app)
    }

    /// Stop the server (graceful), as a restart would.
    pub async fn stop(self) {
        if let Some(h) = self.handle {
            h.stop(true).await;
        }
    }

    /// Send a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request sent")).await
    }

    /// GET with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a bearer token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    /// PATCH JSON with a bearer token.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// PUT JSON with a bearer token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    /// DELETE with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// POST /auth/login and return the raw answer.
    pub async fn try_login(&self, email: &str, password: &str) -> Reply {
        self.request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Log in (asserting success).
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let r = self.try_login(email, password).await.expect(200);
        Session {
            token: r.body["token"].as_str().expect("token").to_owned(),
            csrf: r.body["csrf_token"].as_str().expect("csrf").to_owned(),
            user: r.body["user"].clone(),
        }
    }

    /// Create a workspace with an admin (through the CLI's code path) and log in.
    pub async fn admin(&self, env: &TestEnv, workspace: &str, email: &str) -> Session {
        parley::commands::create_admin(&env.settings(), email, PASSWORD, workspace, None)
            .await
            .expect("create admin");
        self.login(email, PASSWORD).await
    }

    /// As `admin`, create an agent and log them in.
    pub async fn agent(&self, admin: &Session, email: &str) -> Session {
        self.post(
            "/api/v1/users",
            &admin.token,
            json!({"email": email, "password": PASSWORD, "name": email, "role": "agent"}),
        )
        .await
        .expect(201);
        self.login(email, PASSWORD).await
    }
}

/// The password every helper-made user has.
pub const PASSWORD: &str = "correct horse battery";

async fn read(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// The ids of a list answer's items.
pub fn ids(reply: &Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .expect("a list answer")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_owned())
        .collect()
}

/// A WebSocket client speaking Parley's frames.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Frames passed over by `recv_where`, kept for later reads in arrival order.
    backlog: std::collections::VecDeque<Value>,
}

/// How long any wait for a frame may take before the test fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

impl Ws {
    /// Connect to `url` (ws://…); panics when the handshake is refused.
    pub async fn connect(url: &str) -> Ws {
        match Self::try_connect(url).await {
            Ok(ws) => ws,
            Err(status) => panic!("WebSocket handshake refused with {status}"),
        }
    }

    /// Connect, or return the HTTP status that refused the handshake.
    pub async fn try_connect(url: &str) -> Result<Ws, u16> {
        match tokio_tungstenite::connect_async(url).await {
            Ok((stream, _)) => Ok(Ws {
                stream,
                backlog: Default::default(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// Connect with an `Origin` header (as a browser page of that origin would), or
    /// return the HTTP status that refused the handshake.
    pub async fn try_connect_from(url: &str, origin: &str) -> Result<Ws, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = url.into_client_request().expect("ws url");
        req.headers_mut()
            .insert("origin", origin.parse().expect("origin header"));
        match tokio_tungstenite::connect_async(req).await {
            Ok((stream, _)) => Ok(Ws {
                stream,
                backlog: Default::default(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// Send a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(frame.to_string()).await;
    }

    /// Send several JSON frames in one write (one flush), so the server reads them
    /// together.
    pub async fn send_together(&mut self, frames: impl IntoIterator<Item = Value>) {
        use futures_util::SinkExt as _;
        for frame in frames {
            self.stream
                .feed(tokio_tungstenite::tungstenite::Message::text(
                    frame.to_string(),
                ))
                .await
                .expect("frame queued");
        }
        self.stream.flush().await.expect("frames sent");
    }

    /// Send a raw text frame.
    pub async fn send_text(&mut self, text: String) {
        use futures_util::SinkExt as _;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("frame sent");
    }

    /// The next JSON frame (pings answered, waits at most [`FRAME_TIMEOUT`]).
    pub async fn recv(&mut self) -> Value {
        if let Some(f) = self.backlog.pop_front() {
            return f;
        }
        self.read().await
    }

    async fn read(&mut self) -> Value {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("a frame within the timeout")
                .expect("socket open")
                .expect("frame readable");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of type `ty`; frames of other types (presence, viewers, …) are
    /// kept for later reads.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.recv_where(ty, |f| f["type"] == ty).await
    }

    /// The first frame matching `pred`; the others are kept for later reads.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index in range");
        }
        let deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no frame where {what}"
            );
            let f = self.read().await;
            if pred(&f) {
                return f;
            }
            self.backlog.push_back(f);
        }
    }

    /// Wait for the socket to be closed by the server; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.stream.next())
                .await
                .expect("close within the timeout");
            match next {
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Close from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// A chat inbox with its channel, for engine tests.
pub struct Chat {
    /// The inbox.
    pub inbox_id: String,
    /// The chat channel.
    pub channel_id: String,
}

/// A visitor with an open socket.
pub struct Visitor {
    /// The visitor token.
    pub token: String,
    /// The contact id.
    pub contact_id: String,
    /// The socket.
    pub ws: Ws,
}

impl TestApp {
    /// `ws://127.0.0.1:PORT`.
    pub fn ws_base(&self) -> String {
        self.address.replacen("http://", "ws://", 1)
    }

    /// As admin: a manually routed inbox (with `members`) and a chat channel on it.
    pub async fn chat(&self, admin: &Session, members: &[&Session]) -> Chat {
        self.chat_with(admin, members, json!({"mode": "manual"}))
            .await
    }

    /// As admin: an inbox with `routing` settings, `members`, and a chat channel.
    pub async fn chat_with(&self, admin: &Session, members: &[&Session], routing: Value) -> Chat {
        let member_ids: Vec<String> = members.iter().map(|m| m.id()).collect();
        let inbox = self
            .post(
                "/api/v1/inboxes",
                &admin.token,
                json!({"name": "Support", "member_ids": member_ids, "routing": routing}),
            )
            .await
            .expect(201);
        let inbox_id = inbox.body["id"].as_str().expect("inbox id").to_owned();
        let channel = self
            .post(
                &format!("/api/v1/inboxes/{inbox_id}/channels"),
                &admin.token,
                json!({"type": "chat"}),
            )
            .await
            .expect(201);
        Chat {
            inbox_id,
            channel_id: channel.body["id"].as_str().expect("channel id").to_owned(),
        }
    }

    /// A widget session's visitor token (new visitor, or the same one with `token`).
    pub async fn visitor_token(&self, channel_id: &str, token: Option<&str>) -> Value {
        self.request(
            Method::POST,
            &format!("/api/v1/widget/{channel_id}/sessions"),
            None,
            Some(json!({"page_url": "https://shop.example/pricing", "visitor_token": token})),
        )
        .await
        .expect(200)
        .body
    }

    /// A new visitor with an open socket.
    pub async fn visitor(&self, chat: &Chat) -> Visitor {
        let s = self.visitor_token(&chat.channel_id, None).await;
        let token = s["visitor_token"].as_str().expect("token").to_owned();
        let ws = self.visitor_ws(&token).await;
        Visitor {
            contact_id: s["contact_id"].as_str().expect("contact").to_owned(),
            token,
            ws,
        }
    }

    /// Open a visitor socket with a token.
    pub async fn visitor_ws(&self, token: &str) -> Ws {
        Ws::connect(&format!("{}/ws/visitor?token={token}", self.ws_base())).await
    }

    /// Open an agent socket, and wait until it is live (its own presence comes back,
    /// which proves its workspace subscription is in place).
    pub async fn agent_ws(&self, session: &Session) -> Ws {
        let mut ws = Ws::connect(&format!(
            "{}/ws/agent?token={}",
            self.ws_base(),
            session.token
        ))
        .await;
        let me = session.id();
        ws.recv_where("own presence", |f| {
            f["type"] == "presence" && f["user_id"] == me
        })
        .await;
        ws
    }
}

/// A `parley` process (a real node), killed when dropped.
pub struct Node {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    child: std::process::Child,
}

impl Node {
    /// Start the binary on `env`'s settings (plus `extra` overrides).
    pub fn spawn(env: &TestEnv, extra: &[(&str, &str)]) -> Node {
        use std::io::{BufRead as _, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_parley"));
        cmd.envs(env.overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("parley starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node printed its address");
        Node {
            address: format!("http://{addr}"),
            child,
        }
    }

    /// The node as a `TestApp`-like client target.
    pub fn app(&self) -> TestApp {
        TestApp {
            address: self.address.clone(),
            client: client(),
            handle: None,
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private `redis-server` on a free port (for tests that restart Redis).
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Start one and wait until it answers.
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut s = RedisServer { port, child: None };
        s.restart().await;
        s
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop (if running) and start again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(self.url().as_str())
                && let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
