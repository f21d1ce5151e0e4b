//! The `parley-load` binary: parse the command line, build the runtime, hand off to
//! the scenario, print the table, write the JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use parley_loadtests::compare::{Comparable, CompareReport};
use parley_loadtests::node::{Kind, SpawnOptions, Target, default_peer_dir};
use parley_loadtests::scenario::{
    BurstKnobs, IdleKnobs, ReconnectKnobs, SteadyKnobs, parse_duration,
};
use parley_loadtests::{burst, idle, reconnect, steady};

/// Load Parley the way real traffic would, and measure it honestly: open-loop sending,
/// HDR latency histograms, and per-conversation seq checks (lost, duplicated and
/// reordered must all be 0).
#[derive(Debug, Parser)]
#[command(name = "parley-load", version, about)]
struct Cli {
    /// Worker threads of the generator's runtime (the server shares the machine).
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Visitors send at a fixed total rate; agents receive every message. Reports send→ack
    /// (durable) and visitor→agent latency, throughput, loss checks and server CPU/RSS.
    Steady(SteadyArgs),
    /// V visitors arrive within T seconds and start conversations; A agents with capacity
    /// are assigned them and answer. Reports connect latency, time to assignment and
    /// latency both ways.
    Burst(BurstArgs),
    /// Hold N idle visitor sockets (spread over 127.0.0.x source addresses) and report the
    /// server's RSS per socket; then every socket sends one message (the probe).
    Idle(IdleArgs),
    /// N visitors receiving agent messages drop and reconnect within a second, and
    /// `resume`: time until all have caught up, and nothing lost.
    Reconnect(ReconnectArgs),
    /// Run one scenario against Parley, the Socket.IO peer and the bare relay alternately
    /// (fresh servers each run) and print every figure side by side with Parley's
    /// advantage. Give the scenario and its flags after `compare`, e.g.
    /// `compare --rounds 2 steady --spawn --scenario loadtests/scenarios/steady-100.toml`.
    Compare(CompareArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct CompareArgs {
    /// Targets, in the order run each round (`relay` is skipped for burst and reconnect:
    /// it has no routing and stores nothing).
    #[arg(long, value_delimiter = ',', default_value = "parley,socketio,relay")]
    targets: Vec<Kind>,
    /// Rounds (each target once per round); cells are medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Also write the comparison (with every run's full report) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// The `steady` scenario (with --find-max: the highest clean rate of each).
    Steady(SteadyArgs),
    /// The `burst` scenario.
    Burst(BurstArgs),
    /// The `idle` scenario.
    Idle(IdleArgs),
    /// The `reconnect` scenario.
    Reconnect(ReconnectArgs),
}

/// Which server to load.
#[derive(Debug, Clone, clap::Args)]
struct TargetArgs {
    /// Load running Parley node(s) at this URL (http://HOST:PORT; twice for two nodes:
    /// visitors on the first, agents on the second); needs --admin-email and
    /// --admin-password.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "spawn",
        required_unless_present = "spawn"
    )]
    server: Vec<String>,
    /// Start the server(s) for the run (port 0, fresh data dir or database) and stop
    /// them after.
    #[arg(long)]
    spawn: bool,
    /// With --spawn: what to start: `parley`, `socketio` (the Socket.IO peer) or `relay`
    /// (a bare WebSocket relay, no storage).
    #[arg(long, default_value = "parley")]
    target: Kind,
    /// With --spawn: nodes to start (2: visitors on the first, agents on the second;
    /// needs --database-url and --redis-url).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The `parley` binary to spawn.
    #[arg(long, value_name = "PATH", default_value = "target/release/parley")]
    bin: PathBuf,
    /// The relay binary to spawn.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "target/release/parley-relay"
    )]
    relay_bin: PathBuf,
    /// The Socket.IO peer's directory [default: loadtests/peers/socketio of this checkout].
    #[arg(long, value_name = "DIR")]
    peer_dir: Option<PathBuf>,
    /// With --spawn: a PostgreSQL server to create a fresh `parley_load_<uuid>` database
    /// on (dropped after). Without it: SQLite in a temp dir.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// With --spawn: Redis for the backplane (the peer's adapter), under a fresh key
    /// prefix (deleted after). Without it: the in-process backplane.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// With --spawn: extra environment for the server, e.g.
    /// `PARLEY__DATABASE__MAX_CONNECTIONS=16` (repeatable).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// With --server: an admin's email.
    #[arg(long, env = "PARLEY_LOAD_ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// With --server: the admin's password.
    #[arg(long, env = "PARLEY_LOAD_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

impl TargetArgs {
    fn target_of(&self, kind: Kind) -> anyhow::Result<Target> {
        if !self.server.is_empty() {
            return Ok(Target::Remote {
                urls: self.server.clone(),
                admin_email: self
                    .admin_email
                    .clone()
                    .context("--server needs --admin-email")?,
                admin_password: self
                    .admin_password
                    .clone()
                    .context("--server needs --admin-password")?,
            });
        }
        let env = self
            .server_env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .with_context(|| format!("--server-env {kv:?}: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?;
        let bin = match kind {
            Kind::Parley => self.bin.clone(),
            Kind::Relay => self.relay_bin.clone(),
            Kind::SocketIo => self.peer_dir.clone().unwrap_or_else(default_peer_dir),
        };
        Ok(Target::Spawn(SpawnOptions {
            kind,
            bin,
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            env,
            nodes: self.nodes,
        }))
    }

    fn target(&self) -> anyhow::Result<Target> {
        self.target_of(self.target)
    }
}

#[derive(Debug, Clone, clap::Args)]
struct SteadyArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A scenario file (TOML, e.g. loadtests/scenarios/steady-100.toml); flags override
    /// its keys.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: SteadyKnobs,
    /// Search for the highest rate whose p99 send→ack latency is within --max-p99 with
    /// nothing lost or refused, starting at --rate (doubling, then bisecting). Each step
    /// is a fresh run.
    #[arg(long)]
    find_max: bool,
    /// The p99 bound for --find-max.
    #[arg(long, default_value = "50ms")]
    max_p99: String,
    /// Bisection steps for --find-max after the doubling.
    #[arg(long, default_value_t = 3)]
    refine: u32,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
struct BurstArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A scenario file (TOML, e.g. loadtests/scenarios/burst-10k.toml); flags override
    /// its keys.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: BurstKnobs,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
struct IdleArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A scenario file (TOML, e.g. loadtests/scenarios/idle-19k.toml); flags override
    /// its keys.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: IdleKnobs,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
struct ReconnectArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// A scenario file (TOML, e.g. loadtests/scenarios/reconnect-1k.toml); flags override
    /// its keys.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[command(flatten)]
    knobs: ReconnectKnobs,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Knobs from the file (if any) overridden by flags.
macro_rules! workload {
    ($args:expr, $knobs:ty) => {{
        let file = match &$args.scenario {
            Some(path) => <$knobs>::from_file(path)?,
            None => <$knobs>::default(),
        };
        $args.knobs.clone().or(file).resolve()?
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parley-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("parley-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the command; `Ok(false)` when the run found loss, errors or (with --find-max) no
/// passing rate.
async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Steady(args) => {
            let target = args.target.target()?;
            let workload = workload!(args, SteadyKnobs);
            if args.find_max {
                let report = find_max(&args, &target, &workload).await?;
                println!("{}", report.table());
                write_json(args.json.as_deref(), &report)?;
                Ok(report.best_rate.is_some())
            } else {
                let report = steady::run(&target, &workload).await?;
                println!("{}", report.table());
                write_json(args.json.as_deref(), &report)?;
                Ok(report.clean())
            }
        }
        Command::Burst(args) => {
            let report = burst::run(&args.target.target()?, &workload!(args, BurstKnobs)).await?;
            println!("{}", report.table());
            write_json(args.json.as_deref(), &report)?;
            Ok(report.clean())
        }
        Command::Idle(args) => {
            let report = idle::run(&args.target.target()?, &workload!(args, IdleKnobs)).await?;
            println!("{}", report.table());
            write_json(args.json.as_deref(), &report)?;
            Ok(report.clean())
        }
        Command::Reconnect(args) => {
            let report =
                reconnect::run(&args.target.target()?, &workload!(args, ReconnectKnobs)).await?;
            println!("{}", report.table());
            write_json(args.json.as_deref(), &report)?;
            Ok(report.clean())
        }
        Command::Compare(args) => compare(args).await,
    }
}

async fn find_max(
    args: &SteadyArgs,
    target: &Target,
    workload: &parley_loadtests::scenario::Steady,
) -> anyhow::Result<parley_loadtests::report::MaxRateReport> {
    let max_p99 = parse_duration(&args.max_p99).context("--max-p99")?;
    let max_p99_us = u64::try_from(max_p99.as_micros()).unwrap_or(u64::MAX);
    steady::find_max(target, workload, max_p99_us, args.refine, |step| {
        println!("{}", step.table());
    })
    .await
}

/// Print one run's table and add it to the comparison.
fn record<R: Comparable>(
    out: &mut CompareReport,
    kind: Kind,
    target: &Target,
    report: &R,
    table: String,
) -> anyhow::Result<()> {
    println!("{table}");
    out.add(kind, target.describe(), report)
}

async fn compare(args: CompareArgs) -> anyhow::Result<bool> {
    let name = match &args.scenario {
        Scenario::Steady(a) if a.find_max => "steady --find-max",
        Scenario::Steady(_) => "steady",
        Scenario::Burst(_) => "burst",
        Scenario::Idle(_) => "idle",
        Scenario::Reconnect(_) => "reconnect",
    };
    let mut out = CompareReport::new(name, args.rounds.max(1));
    for round in 0..args.rounds.max(1) {
        for &kind in &args.targets {
            let skip = kind == Kind::Relay
                && matches!(args.scenario, Scenario::Burst(_) | Scenario::Reconnect(_));
            if skip {
                continue;
            }
            println!(
                "== round {} of {}: {}",
                round + 1,
                args.rounds.max(1),
                kind.name()
            );
            match &args.scenario {
                Scenario::Steady(a) => {
                    let target = a.target.target_of(kind)?;
                    let w = workload!(a, SteadyKnobs);
                    if a.find_max {
                        let r = find_max(a, &target, &w).await?;
                        record(&mut out, kind, &target, &r, r.table())?;
                    } else {
                        let r = steady::run(&target, &w).await?;
                        record(&mut out, kind, &target, &r, r.table())?;
                    }
                }
                Scenario::Burst(a) => {
                    let target = a.target.target_of(kind)?;
                    let r = burst::run(&target, &workload!(a, BurstKnobs)).await?;
                    record(&mut out, kind, &target, &r, r.table())?;
                }
                Scenario::Idle(a) => {
                    let target = a.target.target_of(kind)?;
                    let r = idle::run(&target, &workload!(a, IdleKnobs)).await?;
                    record(&mut out, kind, &target, &r, r.table())?;
                }
                Scenario::Reconnect(a) => {
                    let target = a.target.target_of(kind)?;
                    let r = reconnect::run(&target, &workload!(a, ReconnectKnobs)).await?;
                    record(&mut out, kind, &target, &r, r.table())?;
                }
            }
            // Let the machine settle (databases dropped, sockets out of TIME_WAIT).
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
    println!("{}", out.table());
    // `--json` after `compare` or after the scenario's name.
    let nested = match &args.scenario {
        Scenario::Steady(a) => a.json.clone(),
        Scenario::Burst(a) => a.json.clone(),
        Scenario::Idle(a) => a.json.clone(),
        Scenario::Reconnect(a) => a.json.clone(),
    };
    write_json(args.json.or(nested).as_deref(), &out)?;
    Ok(out.all_clean())
}

fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
