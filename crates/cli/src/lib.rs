//! `warrenctl` (also `warren ctl`): rabbitmqctl's everyday verbs, over Warren's management
//! HTTP API instead of Erlang distribution.
//!
//! The verbs take rabbitmqctl's arguments and print what it prints (an informational line,
//! then tab-separated rows under a header; or JSON with `--formatter json`), and exit with
//! its codes: 0, 64 for a usage error, 65 for an unusable input file (or a policy definition
//! that is not JSON), 69 when the API cannot be reached, 70 when it refuses.
//!
//! [`run`] is the whole program as a function of its arguments, environment and streams, so
//! tests can drive it without a process.

mod args;
mod client;
mod error;
mod output;
mod verbs;

use std::io::{Read, Write};
use std::process::ExitCode;

pub use args::{ENV_HOST, ENV_PASSWORD, ENV_PORT, ENV_USERNAME, ENV_VHOST};
pub use client::quote;
pub use error::{CliError, EX_DATAERR, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE};

use args::Invocation;
use error::CliResult;
use output::Printer;
use verbs::Ctx;

/// `warren ctl ...`: everything after `ctl` goes to the CLI's own parser, `--help` included.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CtlArgs {
    /// A verb and its arguments, as for rabbitmqctl (try `warren ctl help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// The streams a run reads and writes.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// `warren ctl`, with the process's environment and streams.
pub fn main(args: CtlArgs) -> ExitCode {
    main_with("warren ctl", args.args)
}

/// The `warrenctl` binary.
pub fn main_from_env() -> ExitCode {
    main_with("warrenctl", std::env::args().skip(1).collect())
}

fn main_with(prog: &str, args: Vec<String>) -> ExitCode {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut stdout = stdout.lock();
    let code = run(
        prog,
        args,
        &|k| std::env::var(k).ok(),
        &mut Io {
            stdin: &mut stdin.lock(),
            stdout: &mut stdout,
            stderr: &mut stderr.lock(),
        },
    );
    let _ = stdout.flush();
    ExitCode::from(code)
}

/// Runs one command line (without the program name) and returns the exit code. `env` looks up
/// environment variables; `prog` is how the user calls us, for messages.
pub fn run(prog: &str, args: Vec<String>, env: &dyn Fn(&str) -> Option<String>, io: &mut Io) -> u8 {
    let given = args.join(" ");
    match execute(prog, args, env, io) {
        Ok(()) => 0,
        Err(e) => {
            let _ = report(prog, &given, &e, io.stderr);
            e.exit_code()
        }
    }
}

fn execute(
    prog: &str,
    args: Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
    io: &mut Io,
) -> CliResult<()> {
    let Invocation {
        options,
        verb,
        args,
    } = args::parse(args, env)?;
    let out = |text: String, io: &mut Io| {
        io.stdout
            .write_all(text.as_bytes())
            .map_err(|e| CliError::Data(format!("cannot write the output: {e}")))
    };
    if options.version {
        return out(format!("{prog} {}\n", env!("CARGO_PKG_VERSION")), io);
    }
    let verb = match verb.as_deref() {
        None if options.help => return out(usage(prog), io),
        None => return Err(CliError::usage("no command given")),
        Some("help") => {
            return match args.first() {
                None => out(usage(prog), io),
                Some(name) => match verbs::find(name) {
                    Some(v) => out(verb_help(prog, v), io),
                    None => Err(CliError::usage(format!("command `{name}` not found"))),
                },
            }
        }
        Some(name) => verbs::find(name)
            .ok_or_else(|| CliError::usage(format!("command `{name}` not found")))?,
    };
    if options.help {
        return out(verb_help(prog, verb), io);
    }
    let client = client::Client::new(
        &options.host,
        options.port,
        &options.username,
        &options.password,
        options.timeout,
    );
    let mut ctx = Ctx {
        client,
        options: &options,
        out: Printer {
            out: &mut *io.stdout,
            options: &options,
        },
        stdin: &mut *io.stdin,
        prog,
    };
    (verb.run)(&mut ctx, &args)
}

fn verb_help(prog: &str, v: &verbs::Verb) -> String {
    format!("Usage: {prog} [options] {}\n\n{}\n", v.usage, v.about)
}

/// The overall help: options, environment, verbs.
pub fn usage(prog: &str) -> String {
    let mut s = format!(
        "Usage: {prog} [options] <command> [<command options>] [<arguments>]\n\
         \n\
         Warren's admin tool: rabbitmqctl's everyday commands, over the management HTTP API.\n\
         \n\
         Options (before or after the command; `--` ends them):\n\
         \x20 --host <host>           management API host [{ENV_HOST}, default 127.0.0.1]\n\
         \x20 --port <port>           management API port [{ENV_PORT}, default 15672]\n\
         \x20 --username <user>       [{ENV_USERNAME}, default guest]\n\
         \x20 --password <password>   [{ENV_PASSWORD}, default guest]\n\
         \x20 -p, --vhost <vhost>     the vhost of vhost-scoped commands [{ENV_VHOST}, default /]\n\
         \x20 -q, --quiet             no informational messages\n\
         \x20 -s, --silent            no informational messages and no table headers\n\
         \x20 --no-table-headers      no table headers\n\
         \x20 --formatter <table|json>\n\
         \x20 -t, --timeout <seconds> HTTP timeout [default 60]\n\
         \x20 -h, --help, -V, --version\n\
         \n\
         Commands:\n"
    );
    for v in verbs::VERBS {
        s.push_str(&format!("  {}\n", v.usage));
    }
    s.push_str(&format!(
        "\nExit codes: 0 ok, 64 usage error, 65 bad input file or JSON, 69 API unreachable, \
         70 the API refused.\n`{prog} help <command>` describes one command.\n"
    ));
    s
}

/// An error on stderr, in rabbitmqctl's words where it has some.
fn report(prog: &str, given: &str, e: &CliError, err: &mut dyn Write) -> std::io::Result<()> {
    match e {
        CliError::Usage { message, verb } => {
            writeln!(err, "Error (argument validation): {message}")?;
            writeln!(err, "Arguments given:\n\t{given}\n")?;
            match verb.and_then(verbs::find) {
                Some(v) => writeln!(err, "Usage: {prog} [options] {}", v.usage)?,
                None => writeln!(err, "`{prog} help` lists the commands and options.")?,
            }
        }
        CliError::Unreachable { .. } => {
            writeln!(err, "Error: {e}")?;
            writeln!(
                err,
                "Is Warren running, with its management API on that host and port? \
                 Choose them with --host and --port (or {ENV_HOST} and {ENV_PORT})."
            )?;
        }
        CliError::Api {
            status: 401,
            reason,
            ..
        } => {
            writeln!(err, "Error:\n{reason}")?;
            writeln!(
                err,
                "(The API refused these credentials or this operation to them: \
                 --username and --password, or {ENV_USERNAME} and {ENV_PASSWORD}.)"
            )?;
        }
        CliError::Api { reason, .. } => writeln!(err, "Error:\n{reason}")?,
        CliError::Data(message) => writeln!(err, "Error:\n{message}")?,
    }
    Ok(())
}
