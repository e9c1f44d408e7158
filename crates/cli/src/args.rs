//! The command line, parsed as rabbitmqctl parses its own: options may come before or after
//! the verb, `--opt value` and `--opt=value` both work, and `--` ends the options (for a
//! password or a pattern that starts with `-`).

use std::time::Duration;

use crate::error::{CliError, CliResult};

/// Where the CLI looks when a flag is not given, in the broker's own env namespace.
pub const ENV_HOST: &str = "WARREN_HTTP_HOST";
pub const ENV_PORT: &str = "WARREN_HTTP_PORT";
pub const ENV_USERNAME: &str = "WARREN_CTL_USERNAME";
pub const ENV_PASSWORD: &str = "WARREN_CTL_PASSWORD";
pub const ENV_VHOST: &str = "WARREN_CTL_VHOST";

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 15672;
/// rabbitmqctl's default for the listing commands.
const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Formatter {
    /// Tab-separated, with a header row: rabbitmqctl's default.
    Table,
    /// A JSON array of objects, one per row (for lists); a JSON object otherwise.
    Json,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub vhost: String,
    /// -q: no informational lines.
    pub quiet: bool,
    /// -s: no informational lines and no table header.
    pub silent: bool,
    pub table_headers: bool,
    pub formatter: Formatter,
    pub timeout: Duration,
    /// delete_queue's -e / -u.
    pub if_empty: bool,
    pub if_unused: bool,
    /// set_policy's --priority, as given: the verb checks it, so that a bad one is reported
    /// with that verb's usage, as rabbitmqctl does.
    pub priority: Option<String>,
    /// set_policy's --apply-to (queues, exchanges or all; the API validates it).
    pub apply_to: Option<String>,
    /// list_vhost_limits' and list_user_limits' --global: every vhost's or user's.
    pub global: bool,
    /// list_user_limits' --user: whose limits (rabbitmqctl's spelling, which every other verb
    /// takes as the login name).
    pub limits_user: Option<String>,
    pub help: bool,
    pub version: bool,
}

/// A parsed command line: the options, then the verb and its positional arguments.
#[derive(Debug)]
pub struct Invocation {
    pub options: Options,
    pub verb: Option<String>,
    pub args: Vec<String>,
}

fn value_of(
    name: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> CliResult<String> {
    match inline {
        Some(v) => Ok(v),
        None => rest
            .next()
            .ok_or_else(|| CliError::usage(format!("option {name} needs a value"))),
    }
}

fn port_of(name: &str, s: &str) -> CliResult<u16> {
    s.trim()
        .parse()
        .map_err(|_| CliError::usage(format!("{name}: not a port number: {s:?}")))
}

/// Parses `args` (without the program name). `env` looks up environment variables, so tests
/// can give their own.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> CliResult<Invocation> {
    let port = match env(ENV_PORT).filter(|p| !p.is_empty()) {
        Some(p) => port_of(ENV_PORT, &p)?,
        None => DEFAULT_PORT,
    };
    let mut o = Options {
        host: env(ENV_HOST)
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.into()),
        port,
        username: env(ENV_USERNAME).unwrap_or_else(|| "guest".into()),
        password: env(ENV_PASSWORD).unwrap_or_else(|| "guest".into()),
        vhost: env(ENV_VHOST)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/".into()),
        quiet: false,
        silent: false,
        table_headers: true,
        formatter: Formatter::Table,
        timeout: Duration::from_secs_f64(DEFAULT_TIMEOUT_SECS),
        if_empty: false,
        if_unused: false,
        priority: None,
        apply_to: None,
        global: false,
        limits_user: None,
        help: false,
        version: false,
    };
    let mut positional = Vec::new();
    let mut rest = args.into_iter();
    // `--user` is the login name, except to list_user_limits (decided once the verb is known).
    let mut user_flag = None;
    let mut username_given = false;
    let mut options_done = false;
    while let Some(arg) = rest.next() {
        if options_done || arg == "-" || !arg.starts_with('-') {
            positional.push(arg);
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let flag = |o: &mut Options, set: fn(&mut Options)| -> CliResult<()> {
            if inline.is_some() {
                return Err(CliError::usage(format!("option {name} takes no value")));
            }
            set(o);
            Ok(())
        };
        // rabbitmqctl spells some long options with underscores (--if_empty); take both.
        match name.replace('_', "-").as_str() {
            "--host" | "--hostname" => o.host = value_of(&name, inline, &mut rest)?,
            "--port" => o.port = port_of(&name, &value_of(&name, inline, &mut rest)?)?,
            "--username" => {
                o.username = value_of(&name, inline, &mut rest)?;
                username_given = true;
            }
            "--user" => user_flag = Some(value_of(&name, inline, &mut rest)?),
            "--password" => o.password = value_of(&name, inline, &mut rest)?,
            "-p" | "--vhost" => o.vhost = value_of(&name, inline, &mut rest)?,
            "--priority" => o.priority = Some(value_of(&name, inline, &mut rest)?),
            "--apply-to" => o.apply_to = Some(value_of(&name, inline, &mut rest)?),
            "--formatter" => {
                let f = value_of(&name, inline, &mut rest)?;
                o.formatter = match f.as_str() {
                    "table" => Formatter::Table,
                    "json" => Formatter::Json,
                    other => {
                        return Err(CliError::usage(format!(
                            "unsupported formatter {other:?}: use table or json"
                        )))
                    }
                }
            }
            "-t" | "--timeout" => {
                let t = value_of(&name, inline, &mut rest)?;
                let secs: f64 = t
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        CliError::usage(format!("{name}: not a positive number of seconds"))
                    })?;
                o.timeout = Duration::from_secs_f64(secs);
            }
            "-q" | "--quiet" => flag(&mut o, |o| o.quiet = true)?,
            "--global" => flag(&mut o, |o| o.global = true)?,
            "-s" | "--silent" => flag(&mut o, |o| o.silent = true)?,
            "--no-table-headers" => flag(&mut o, |o| o.table_headers = false)?,
            "-e" | "--if-empty" => flag(&mut o, |o| o.if_empty = true)?,
            "-u" | "--if-unused" => flag(&mut o, |o| o.if_unused = true)?,
            "-h" | "--help" | "-?" => flag(&mut o, |o| o.help = true)?,
            "-V" | "--version" => flag(&mut o, |o| o.version = true)?,
            _ => return Err(CliError::usage(format!("unknown option {name}"))),
        }
    }
    let mut positional = positional.into_iter();
    let verb = positional.next();
    match user_flag {
        Some(user) if verb.as_deref() == Some("list_user_limits") => o.limits_user = Some(user),
        Some(user) if !username_given => o.username = user,
        _ => {}
    }
    Ok(Invocation {
        options: o,
        verb,
        args: positional.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse_str(line: &str) -> CliResult<Invocation> {
        parse(line.split_whitespace().map(String::from), &no_env)
    }

    #[test]
    fn options_anywhere_and_defaults() {
        let inv = parse_str("-q list_queues -p /dev name --port=1234 messages_ready").unwrap();
        assert_eq!(inv.verb.as_deref(), Some("list_queues"));
        assert_eq!(inv.args, ["name", "messages_ready"]);
        assert_eq!(inv.options.vhost, "/dev");
        assert_eq!(inv.options.port, 1234);
        assert!(inv.options.quiet);
        assert_eq!(inv.options.host, "127.0.0.1");
        assert_eq!(inv.options.username, "guest");
        assert_eq!(inv.options.formatter, Formatter::Table);
    }

    #[test]
    fn user_is_the_login_except_for_list_user_limits() {
        let inv = parse_str("list_queues --user admin").unwrap();
        assert_eq!(inv.options.username, "admin");
        let inv = parse_str("list_user_limits --user bob --username admin").unwrap();
        assert_eq!(inv.options.limits_user.as_deref(), Some("bob"));
        assert_eq!(inv.options.username, "admin");
        let inv = parse_str("--user bob list_user_limits").unwrap();
        assert_eq!(inv.options.limits_user.as_deref(), Some("bob"));
        assert_eq!(inv.options.username, "guest");
    }

    #[test]
    fn double_dash_ends_options() {
        let inv = parse_str("add_user bob -- -secret-").unwrap();
        assert_eq!(inv.args, ["bob", "-secret-"]);
        let inv = parse_str("export_definitions -").unwrap();
        assert_eq!(inv.args, ["-"]);
    }

    #[test]
    fn policy_options() {
        let inv = parse_str("set_policy --priority 3 --apply_to=queues p ^a {}").unwrap();
        assert_eq!(inv.args, ["p", "^a", "{}"]);
        assert_eq!(inv.options.priority.as_deref(), Some("3"));
        assert_eq!(inv.options.apply_to.as_deref(), Some("queues"));
        // Checked by the verb, not here.
        let inv = parse_str("set_policy --priority=x p ^a {}").unwrap();
        assert_eq!(inv.options.priority.as_deref(), Some("x"));
    }

    #[test]
    fn env_then_flags() {
        let env = |k: &str| match k {
            ENV_PORT => Some("2000".to_string()),
            ENV_USERNAME => Some("admin".to_string()),
            _ => None,
        };
        let inv = parse(["status".to_string()], &env).unwrap();
        assert_eq!(
            (inv.options.port, inv.options.username.as_str()),
            (2000, "admin")
        );
        let inv = parse(["status".into(), "--port".into(), "3000".into()], &env).unwrap();
        assert_eq!(inv.options.port, 3000);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            "list_queues --bogus",
            "list_queues --port",
            "list_queues --port x",
            "list_queues --formatter xml",
            "list_queues -q=1",
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EX_USAGE, "{bad}");
        }
    }
}
