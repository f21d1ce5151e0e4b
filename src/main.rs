//! The `parley` binary: parse the command line, load settings, hand off.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use parley::config::Settings;
use parley::startup::Application;
use parley::{commands, telemetry};

/// jemalloc, not the platform's malloc: in a 10,000-visitor burst glibc's allocator was
/// about a ninth of the server's CPU, and per-thread caches cut both that and the time
/// to assignment; idle sockets hold less memory too (docs/performance.md, "jemalloc").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Parley: a real-time conversations engine (live chat, email, forms, Messenger) in one
/// self-hosted binary.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
struct Cli {
    /// A TOML file overriding config/default.toml (same keys). Environment variables
    /// PARLEY__SECTION__KEY override both.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket (the default when no subcommand is given).
    Serve,
    /// Apply pending database migrations and exit (serving applies them too).
    Migrate,
    /// Create an admin (and the workspace, if new); prints {"workspace_id","user_id"}.
    CreateAdmin {
        /// The admin's login email.
        #[arg(long)]
        email: String,
        /// The admin's password (8 characters or more).
        #[arg(long)]
        password: String,
        /// The workspace to create or join.
        #[arg(long, default_value = "Default")]
        workspace: String,
        /// Display name (default: the part of the email before @).
        #[arg(long)]
        name: Option<String>,
    },
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("parley: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => commands::migrate(&settings).await.map(|()| {
            eprintln!("parley: migrations applied");
        }),
        Command::CreateAdmin {
            email,
            password,
            workspace,
            name,
        } => commands::create_admin(&settings, &email, &password, &workspace, name.as_deref())
            .await
            .and_then(|created| {
                println!("{}", serde_json::to_string(&created)?);
                Ok(())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Listen for signals first, so none is missed between start-up and serving.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let host = settings.server.host.clone();
    let app = Application::build(settings).await?;
    let handle = app.shutdown_handle();
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        };
        // Stop first, log after: logging must not be able to prevent the shutdown.
        handle.stop().await;
    });
    let shown = if host == "0.0.0.0" || host == "::" {
        "127.0.0.1".to_owned()
    } else {
        host.clone()
    };
    eprintln!(
        "parley: listening on http://{host}:{port} (Ctrl-C to stop)\n\
         parley: agent console: http://{shown}:{port}/ (a fresh install offers its setup there)",
        port = app.port()
    );
    app.run_until_stopped().await?;
    Ok(())
}
