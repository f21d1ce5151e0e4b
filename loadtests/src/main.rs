//! The `parley-load` binary: parse the command line, build the runtime, hand off to
//! the scenario, print the table, write the JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use parley_loadtests::node::{SpawnOptions, Target};
use parley_loadtests::scenario::{SteadyKnobs, parse_duration};
use parley_loadtests::steady;

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
}

/// Which server to load.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// Load a running node at this URL (http://HOST:PORT); needs --admin-email and
    /// --admin-password.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "spawn",
        required_unless_present = "spawn"
    )]
    server: Option<String>,
    /// Start the `parley` binary for the run (port 0, fresh data dir or database) and
    /// stop it after.
    #[arg(long)]
    spawn: bool,
    /// The binary to spawn.
    #[arg(long, value_name = "PATH", default_value = "target/release/parley")]
    bin: PathBuf,
    /// With --spawn: a PostgreSQL server to create a fresh `parley_load_<uuid>` database
    /// on (dropped after). Without it: SQLite in a temp dir.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// With --spawn: Redis for the backplane, under a fresh key prefix (deleted after).
    /// Without it: the in-process backplane.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// With --spawn: an extra setting for the server, e.g.
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
    fn target(&self) -> anyhow::Result<Target> {
        if let Some(url) = &self.server {
            return Ok(Target::Remote {
                url: url.clone(),
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
        Ok(Target::Spawn(SpawnOptions {
            bin: self.bin.clone(),
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            env,
        }))
    }
}

#[derive(Debug, clap::Args)]
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
            let file = match &args.scenario {
                Some(path) => SteadyKnobs::from_file(path)?,
                None => SteadyKnobs::default(),
            };
            let workload = args.knobs.clone().or(file).resolve()?;
            if args.find_max {
                let max_p99 = parse_duration(&args.max_p99).context("--max-p99")?;
                let max_p99_us = u64::try_from(max_p99.as_micros()).unwrap_or(u64::MAX);
                let report =
                    steady::find_max(&target, &workload, max_p99_us, args.refine, |step| {
                        println!("{}", step.table());
                    })
                    .await?;
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
    }
}

fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(value)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
