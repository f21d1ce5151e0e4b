//! The process: health, readiness, metrics, OpenAPI, restarts, migrations, the CLI,
//! configuration errors and graceful shutdown.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, TestEnv, ids};
use crate::on_both_stores;

const BIN: &str = env!("CARGO_BIN_EXE_parley");

on_both_stores!(
    health_and_readiness_report_each_dependency,
    metrics_count_requests_by_route_and_status,
    every_documented_operation_is_routed,
    a_restart_keeps_all_data_and_sessions,
    migrating_twice_is_a_no_op,
);

async fn health_and_readiness_report_each_dependency(b: Backend) {
    let (_env, app) = TestApp::spawn(b).await;
    let r = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .request(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    let (database, redis) = match b {
        Backend::Sqlite => ("sqlite", "not_configured"),
        Backend::Postgres => ("postgres", "ok"),
    };
    assert_eq!(
        r.body,
        json!({"status": "ok", "database": database, "redis": redis})
    );
}

async fn metrics_count_requests_by_route_and_status(b: Backend) {
    let (_env, app) = TestApp::spawn(b).await;
    app.request(Method::GET, "/api/v1/auth/me", None, None)
        .await
        .expect(401);
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("parley_http_requests_total")
                && l.contains("route=\"/api/v1/auth/me\"")
                && l.contains("status=\"401\"")),
        "{text}"
    );
    assert!(text.contains("parley_http_errors_total{code=\"unauthorized\"}"));
    // The process's own CPU time and memory, under Prometheus's standard names (from
    // /proc; the test server runs in this process).
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert!(
        value("process_cpu_seconds_total").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        value("process_resident_memory_bytes").is_some_and(|v| v > 1e6),
        "{text}"
    );
    assert!(value("process_threads").is_some_and(|v| v >= 1.0), "{text}");
    assert!(
        value("process_open_fds").is_some_and(|v| v >= 3.0),
        "{text}"
    );
}

async fn every_documented_operation_is_routed(b: Backend) {
    let (env, app) = TestApp::spawn(b).await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let doc = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200)
        .body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            let concrete = path
                .replace("{id}", "00000000-0000-7000-8000-000000000000")
                .replace("{user_id}", "00000000-0000-7000-8000-000000000001");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .request(m, &concrete, Some(&admin.token), Some(json!({})))
                .await;
            let unrouted = r.status == 404 && r.body["detail"] == "route not found";
            assert!(!unrouted, "{method} {path} is documented but not routed");
        }
    }
    // The contract's endpoints of this issue are all there.
    for (method, path) in [
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/users"),
        ("post", "/api/v1/inboxes"),
        ("post", "/api/v1/inboxes/{id}/channels"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    assert!(operations >= 33, "only {operations} operations documented");
}

async fn a_restart_keeps_all_data_and_sessions(b: Backend) {
    let env = TestEnv::new(b, &[]).await;
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    let agent = app.agent(&admin, "bob@acme.test").await;
    let team = app
        .post(
            "/api/v1/teams",
            &admin.token,
            json!({"name": "Sales", "member_ids": [agent.id()]}),
        )
        .await
        .expect(201);
    let inbox = app
        .post(
            "/api/v1/inboxes",
            &admin.token,
            json!({"name": "Support", "member_ids": [agent.id()], "routing": {"capacity": 4}}),
        )
        .await
        .expect(201);
    let inbox_id = inbox.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/inboxes/{inbox_id}/channels"),
        &admin.token,
        json!({"type": "chat"}),
    )
    .await
    .expect(201);
    let audit_before = app
        .get("/api/v1/audit-log", &admin.token)
        .await
        .expect(200)
        .body;
    app.stop().await;

    let app = env.start().await;
    app.get("/api/v1/auth/me", &admin.token).await.expect(200);
    let teams = app.get("/api/v1/teams", &admin.token).await.expect(200);
    assert_eq!(teams.body["items"][0], team.body);
    let inboxes = app.get("/api/v1/inboxes", &agent.token).await.expect(200);
    assert_eq!(ids(&inboxes), vec![inbox_id.clone()]);
    assert_eq!(inboxes.body["items"][0]["routing"]["capacity"], 4);
    let channels = app
        .get(
            &format!("/api/v1/inboxes/{inbox_id}/channels"),
            &admin.token,
        )
        .await
        .expect(200);
    assert_eq!(channels.body["items"].as_array().unwrap().len(), 1);
    let audit_after = app
        .get("/api/v1/audit-log", &admin.token)
        .await
        .expect(200)
        .body;
    assert_eq!(audit_after, audit_before);
    app.login("bob@acme.test", PASSWORD).await;
}

async fn migrating_twice_is_a_no_op(b: Backend) {
    let env = TestEnv::new(b, &[]).await;
    parley::commands::migrate(&env.settings()).await.unwrap();
    let app = env.start().await;
    let admin = app.admin(&env, "Acme", "ada@acme.test").await;
    app.stop().await;
    parley::commands::migrate(&env.settings()).await.unwrap();
    parley::commands::migrate(&env.settings()).await.unwrap();
    let app = env.start().await;
    app.get("/api/v1/auth/me", &admin.token).await.expect(200);
}

/// Run the binary with `args` and env, in a fresh data dir; (code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(args)
        .env("PARLEY__STORAGE__DATA_DIR", dir.path())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_fails_fast_naming_the_key() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 4] = [
        (&[("PARLEY__SERVER__PORT", "eighty")], &[], "server.port"),
        (&[("PARLEY__SERVER__PORT", "70000")], &[], "server.port"),
        (
            &[("PARLEY__DATABASE__URL", "mysql://root@db/parley")],
            &[],
            "database.url",
        ),
        (
            &[],
            &["--config", "/nonexistent/parley.toml"],
            "/nonexistent/parley.toml",
        ),
    ];
    for (env, args, key) in cases {
        let started = Instant::now();
        let (code, _, stderr) = run(args, env);
        assert_eq!(code, 2, "{env:?} {args:?}: {stderr}");
        assert!(stderr.contains(key), "{key} not named in {stderr:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn unreachable_services_fail_start_up_with_the_key_named() {
    let (code, _, stderr) = run(
        &["migrate"],
        &[(
            "PARLEY__DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/parley",
        )],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("database"), "{stderr}");

    let (code, _, stderr) = run(
        &["serve"],
        &[
            ("PARLEY__SERVER__PORT", "0"),
            ("PARLEY__REDIS__URL", "redis://127.0.0.1:1"),
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("redis.url"), "{stderr}");
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["create-admin", "--help"],
    ] {
        let (code, stdout, _) = run(args, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(stdout.contains("Usage: parley"), "{args:?}: {stdout}");
    }
}

#[test]
fn create_admin_prints_ids_and_reuses_an_existing_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let admin = |email: &str| {
        let out = Command::new(BIN)
            .args([
                "create-admin",
                "--email",
                email,
                "--password",
                PASSWORD,
                "--workspace",
                "Acme",
            ])
            .env("PARLEY__STORAGE__DATA_DIR", data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, first, _) = admin("ada@acme.test");
    assert!(ok);
    let first: Value = serde_json::from_str(first.trim()).unwrap();
    assert!(first["workspace_id"].is_string() && first["user_id"].is_string());
    let (ok, second, _) = admin("grace@acme.test");
    assert!(ok);
    let second: Value = serde_json::from_str(second.trim()).unwrap();
    assert_eq!(second["workspace_id"], first["workspace_id"]);
    assert_ne!(second["user_id"], first["user_id"]);
    let (ok, _, stderr) = admin("ada@acme.test");
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(
        dir.path().join("parley.db").exists(),
        "SQLite file under data_dir"
    );
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env("PARLEY__STORAGE__DATA_DIR", dir.path())
        .env("PARLEY__SERVER__PORT", "0")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let health = std::net::TcpStream::connect(format!("127.0.0.1:{port}"));
    assert!(health.is_ok(), "server accepts connections");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
