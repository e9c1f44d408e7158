//! `warren perf`: a PerfTest-style load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ).
//!
//! It carries its own minimal client built on `warren-protocol`, because a general-purpose
//! client would be the bottleneck it is supposed to measure around:
//!
//! - producers encode a whole batch of publishes into one buffer from a pre-encoded template
//!   (only the timestamp changes) and write it with one syscall;
//! - consumers read as much as the socket has, walk the frames in place without decoding
//!   deliveries into values, and acknowledge a whole read with one `basic.ack multiple=true`;
//! - one connection per producer and per consumer, all on one thread by default, so that on a
//!   small machine the tool leaves the other cores to the broker.
//!
//! Latency is end to end: a producer writes the send time (nanoseconds since the run's start,
//! shared by every task of this process) into the first 8 bytes of each body, and consumers
//! record `now - then` into an HDR histogram.

mod args;
mod client;
mod confirm;
mod consumer;
mod cpu;
mod error;
mod producer;
mod publish;
mod rate;
mod run;
mod scan;
mod stats;
mod stream;
mod topology;

pub use args::{Config, ExchangeType, PerfArgs};
pub use error::PerfError;

use std::process::ExitCode;

/// Runs the scenario described by `args`, printing one line per second and a summary.
pub fn main(args: PerfArgs) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warren perf: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren perf: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(config)) {
        Ok(true) => ExitCode::SUCCESS,
        // The run finished but some connection failed along the way (already reported).
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("warren perf: {e}");
            ExitCode::FAILURE
        }
    }
}
