//! The load generator. (Being written.)

use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct PerfArgs {}

pub fn main(_args: PerfArgs) -> ExitCode {
    eprintln!("warren perf: not built yet");
    ExitCode::FAILURE
}
