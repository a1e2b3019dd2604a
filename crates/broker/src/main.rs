//! The `agent-assist-broker` binary: reads the command line and the site
//! file, sets up logging, and hands over to [`agent_assist_broker::run`]
//! (or, for `agents …`, to [`agent_assist_broker::admin::agents`]).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use agent_assist_broker::config::{Cli, Command, Config, ServeArgs, StoreAddress};
use agent_assist_broker::mirror::capture::Capture;
use agent_assist_broker::{admin, clock::SystemClock, run, shutdown_signal, telemetry, AppState};
use clap::Parser;

/// mimalloc instead of the system allocator: a code request allocates and
/// frees a few hundred small blocks across threads (HTTP parsing, JSON,
/// the store's job, the answer), and glibc's malloc spent about a seventh
/// of the broker's CPU on them under load (`perf`, `cargo xtask bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Agents(command) => match admin::agents(command).await {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("agent-assist-broker: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // The configuration is checked before anything is opened or bound, so a
    // bad file leaves no database and no port behind. Exit code 2, like a
    // usage error, because the operator has to fix what they gave us.
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("agent-assist-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let address = StoreAddress::from_args(args.store.as_ref(), &args.db);
    let mut state = match agent_assist_broker::store::open(&address).await {
        Ok(store) => AppState::new(config, store, Arc::new(SystemClock)),
        Err(e) => {
            eprintln!("agent-assist-broker: cannot open {address}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let StoreAddress::Redis(url) = &address {
        // Replicas on one Redis share their events and mirrors too.
        match state.with_redis_replicas(url).await {
            Ok(shared) => state = shared,
            Err(e) => {
                eprintln!("agent-assist-broker: cannot subscribe to {address}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    state = state
        .with_http_limits(args.http_limits())
        .with_client_ip_header(args.client_ip_header.clone());
    if let Some(www) = args.www {
        state = state.with_www(www);
    }
    if let Some(sdk) = args.sdk {
        state = state.with_sdk(sdk);
    }
    if let Some(examples) = args.examples {
        state = state.with_examples(examples);
    }
    state = state.with_demo_login(args.demo_login);
    if let Some(path) = args.mirror_capture {
        match Capture::open(&path) {
            Ok(capture) => state = state.with_mirror_capture(capture),
            Err(e) => {
                eprintln!(
                    "agent-assist-broker: cannot open the mirror capture file {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("agent-assist-broker: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("agent-assist-broker: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Signal handlers go in before the line below announces readiness.
    let shutdown = shutdown_signal();
    // Scripts and tests wait for this exact line (and read the port from it),
    // so it goes to stdout, alone, and is flushed at once.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "agent-assist-broker listening on http://{addr}");
    let _ = stdout.flush();
    drop(stdout);

    match run(listener, state, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
