//! `warrenctl`: the same as `warren ctl`, as a small binary of its own.

fn main() -> std::process::ExitCode {
    warren_cli::main_from_env()
}
