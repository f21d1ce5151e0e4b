//! The harness must not rot: a tiny `steady` run (the `steady-small` scenario) against the
//! debug `parley` binary, on SQLite, fails on any loss, duplicate, reorder or error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use parley_loadtests::node::{SpawnOptions, Target};
use parley_loadtests::scenario::SteadyKnobs;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_steady_run_loses_nothing_and_is_never_refused() {
    // Arrange
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/steady-small.toml");
    let workload = SteadyKnobs::from_file(&scenario)
        .unwrap()
        .resolve()
        .unwrap();
    let target = Target::Spawn(SpawnOptions {
        bin: debug_parley(),
        database_url: None,
        redis_url: None,
        env: Vec::new(),
    });

    // Act
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        parley_loadtests::steady::run(&target, &workload),
    )
    .await
    .expect("the run finishes")
    .unwrap();

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
