//! `parley-relay`: the bare WebSocket relay `parley-load` measures as the ceiling (see
//! `parley_loadtests::relay`). Prints `listening on http://ADDR` once it accepts.

use std::process::ExitCode;

use clap::Parser;

/// A WebSocket relay speaking Parley's frames, with no storage: the ceiling for
/// `parley-load compare`.
#[derive(Debug, Parser)]
#[command(name = "parley-relay", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "parley-relay: cannot listen on {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("parley-relay: listening on http://{a}"),
        Err(e) => {
            eprintln!("parley-relay: {e}");
            return ExitCode::FAILURE;
        }
    }
    match parley_loadtests::relay::serve(listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
