//! The harness must not rot: every scenario at small scale (a few seconds each) against
//! the debug `parley` binary, failing on any loss, duplicate, reorder, refusal or error:
//! `steady`, `burst`, `idle` and `reconnect` on SQLite; `compare` against the bare relay
//! and (when `node` and `npm` are installed) the Socket.IO peer; and, when
//! `PARLEY_TEST_POSTGRES_URL` and `PARLEY_TEST_REDIS_URL` are set, two nodes sharing
//! PostgreSQL and Redis (visitors on one, agents on the other); and a running node (as
//! `--server` loads one), weighed through its `/metrics`. A service URL that is set but
//! unreachable fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use parley_loadtests::compare::CompareReport;
use parley_loadtests::node::{Kind, SpawnOptions, Target, default_peer_dir, node_available};
use parley_loadtests::scenario::{BurstKnobs, IdleKnobs, ReconnectKnobs, SteadyKnobs};
use parley_loadtests::{burst, idle, reconnect, steady};

/// `target/debug/parley` beside this test's own executable (`target/debug/deps/…`),
/// built first when missing (e.g. `cargo test -p parley-loadtests` alone).
fn debug_parley() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("parley");
    if !bin.is_file() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "parley", "--bin", "parley"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.current_dir(&workspace).status().expect("cargo runs");
        assert!(status.success(), "cargo build -p parley failed");
    }
    assert!(bin.is_file(), "no parley binary at {}", bin.display());
    bin
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"))
}

fn sqlite() -> Target {
    Target::Spawn(SpawnOptions::parley(debug_parley(), None, None))
}

/// Two Parley nodes on PostgreSQL + Redis, when the test services are configured.
fn two_nodes() -> Option<Target> {
    let pg = std::env::var("PARLEY_TEST_POSTGRES_URL").ok()?;
    let redis = std::env::var("PARLEY_TEST_REDIS_URL").ok()?;
    Some(Target::Spawn(SpawnOptions {
        nodes: 2,
        ..SpawnOptions::parley(debug_parley(), Some(pg), Some(redis))
    }))
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("the run finishes in time")
}

async fn steady_small(target: Target) {
    // Arrange
    let workload = SteadyKnobs::from_file(&scenario("steady-small"))
        .unwrap()
        .resolve()
        .unwrap();

    // Act
    let report = within(120, steady::run(&target, &workload)).await.unwrap();

    // Assert
    let table = report.table();
    assert!(report.clean(), "{table}");
    let c = &report.checks;
    let expected = workload.rate * (workload.warmup + workload.duration).as_secs_f64();
    assert!(
        c.sent as f64 >= expected * 0.9,
        "sent {} of ~{expected}\n{table}",
        c.sent
    );
    assert_eq!(c.acked, c.sent, "{table}");
    assert!(report.ack_latency.count > 0, "{table}");
    assert!(report.delivery_latency.count > 0, "{table}");
    assert!(report.usage.server.is_some(), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_steady_run_loses_nothing_and_is_never_refused() {
    steady_small(sqlite()).await;
}

/// A node the harness did not start (`--server`): the run sets up its agents and channel
/// through the admin API, and weighs the server through the `process_*` figures of its
/// `/metrics`, since it has no pid to read in `/proc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_is_loaded_and_weighed_through_its_metrics() {
    // Arrange
    let mut cluster = sqlite().start().await.unwrap();
    let running = Target::Remote {
        urls: vec![cluster.nodes[0].address.clone()],
        admin_email: cluster.admin_email.clone(),
        admin_password: cluster.admin_password.clone(),
    };
    let workload = SteadyKnobs::from_file(&scenario("steady-small"))
        .unwrap()
        .resolve()
        .unwrap();

    // Act
    let report = within(120, steady::run(&running, &workload)).await;
    cluster.stop().await;

    // Assert
    let report = report.unwrap();
    let table = report.table();
    assert!(report.clean(), "{table}");
    assert_eq!(report.usage.server_processes, 1, "{table}");
    let server = report.usage.server.as_ref().expect("the server's figures");
    assert!(server.cpu_seconds > 0.0, "{table}");
    assert!(server.rss_kib > 1024 && server.threads > 1, "{table}");
}

async fn burst_small(target: Target) {
    // Arrange
    let w = BurstKnobs::from_file(&scenario("burst-small"))
        .unwrap()
        .resolve()
        .unwrap();

    // Act
    let report = within(120, burst::run(&target, &w)).await.unwrap();

    // Assert
    let table = report.table();
    assert!(report.clean(), "{table}");
    let v = w.visitors as u64;
    assert_eq!(report.connected, v, "{table}");
    assert_eq!(report.assigned, v, "{table}");
    // Each visitor: a first message and `messages` more, each answered.
    assert_eq!(report.checks.sent, v * (1 + w.messages) * 2, "{table}");
    assert_eq!(report.checks.acked, report.checks.sent, "{table}");
    assert_eq!(report.time_to_assignment.count, v, "{table}");
    assert_eq!(report.visitor_to_agent.count, v * w.messages, "{table}");
    assert_eq!(
        report.agent_to_visitor.count,
        v * (1 + w.messages),
        "{table}"
    );
    assert!(report.usage.server.is_some(), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_burst_assigns_every_visitor_and_loses_nothing() {
    burst_small(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_idle_run_holds_every_socket_and_weighs_them() {
    // Arrange
    let w = IdleKnobs::from_file(&scenario("idle-small"))
        .unwrap()
        .resolve()
        .unwrap();

    // Act
    let report = within(120, idle::run(&sqlite(), &w)).await.unwrap();

    // Assert
    let table = report.table();
    assert!(report.clean(), "{table}");
    assert_eq!(report.connected, w.sockets as u64, "{table}");
    assert_eq!(report.checks.acked, w.sockets as u64, "{table}");
    assert!(report.rss_held_kib > report.rss_before_kib, "{table}");
    assert!(report.rss_per_socket_kib > 0.0, "{table}");
    assert_eq!(report.connect_latency.count, w.sockets as u64, "{table}");
}

async fn reconnect_small(target: Target) {
    // Arrange
    let w = ReconnectKnobs::from_file(&scenario("reconnect-small"))
        .unwrap()
        .resolve()
        .unwrap();

    // Act
    let report = within(120, reconnect::run(&target, &w)).await.unwrap();

    // Assert
    let table = report.table();
    assert!(report.clean(), "{table}");
    assert_eq!(report.resumed, w.visitors as u64, "{table}");
    assert!(report.checks.acked > 0, "{table}");
    assert_eq!(report.checks.acked, report.checks.sent, "{table}");
    assert_eq!(report.reconnect_latency.count, w.visitors as u64, "{table}");
    assert!(report.all_resumed_seconds > 0.0, "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_reconnect_run_resumes_everyone_and_loses_nothing() {
    reconnect_small(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_and_redis_lose_nothing() {
    let Some(target) = two_nodes() else {
        eprintln!(
            "PARLEY_TEST_POSTGRES_URL / PARLEY_TEST_REDIS_URL not set: two-node smoke skipped"
        );
        return;
    };
    steady_small(target.clone()).await;
    burst_small(target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_puts_parley_the_peer_and_the_relay_side_by_side() {
    // Arrange: a tiny steady run; the Socket.IO peer on PostgreSQL when it is configured
    // (its SQLite driver is a native build of about two minutes, too slow for CI).
    let w = SteadyKnobs {
        conversations: Some(4),
        rate: Some(40.0),
        duration: Some("1s".into()),
        warmup: Some("300ms".into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let pg = std::env::var("PARLEY_TEST_POSTGRES_URL").ok();
    let mut targets = vec![
        Target::Spawn(SpawnOptions::parley(debug_parley(), pg.clone(), None)),
        Target::Spawn(SpawnOptions {
            kind: Kind::Relay,
            bin: PathBuf::from(env!("CARGO_BIN_EXE_parley-relay")),
            ..SpawnOptions::parley(PathBuf::new(), None, None)
        }),
    ];
    if node_available() && pg.is_some() {
        targets.push(Target::Spawn(SpawnOptions {
            kind: Kind::SocketIo,
            bin: default_peer_dir(),
            ..SpawnOptions::parley(PathBuf::new(), pg.clone(), None)
        }));
    } else {
        eprintln!("node/npm or PARLEY_TEST_POSTGRES_URL missing: the Socket.IO peer is left out");
    }

    // Act
    let mut out = CompareReport::new("steady", 1);
    for t in &targets {
        let r = within(120, steady::run(t, &w)).await.unwrap();
        assert!(r.clean(), "{}", r.table());
        out.add(t.kind(), t.describe(), &r).unwrap();
    }

    // Assert
    let table = out.table();
    assert!(out.all_clean(), "{table}");
    assert_eq!(out.targets.len(), targets.len(), "{table}");
    let acks = out.rows.iter().find(|r| r.name == "acks/s").expect(&table);
    assert!(
        acks.values.iter().all(|v| v.is_some_and(|v| v > 0.0)),
        "{table}"
    );
    assert_eq!(acks.parley_advantage.len(), targets.len() - 1, "{table}");
    assert!(acks.parley_advantage.iter().all(Option::is_some), "{table}");
}
