//! `warren`: the broker, and its tools as subcommands.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod http;
mod monitor;
mod serve;
mod tls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "An AMQP 0-9-1 message broker that RabbitMQ's clients use unmodified"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Broker options (used when no subcommand is given).
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (the default).
    Serve(Box<serve::ServeArgs>),
    /// Generate load against a broker and report rates and latencies.
    Perf(Box<warren_perf::PerfArgs>),
    /// Administer a running broker: rabbitmqctl's verbs over the management API.
    Ctl(Box<warren_cli::CtlArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve::run(cli.serve),
        Some(Command::Serve(args)) => serve::run(*args),
        Some(Command::Perf(args)) => warren_perf::main(*args),
        Some(Command::Ctl(args)) => warren_cli::main(*args),
    }
}
