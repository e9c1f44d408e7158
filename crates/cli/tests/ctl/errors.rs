//! Exit codes and messages: usage errors (64), an unreachable API (69), refusals (70); help;
//! the environment variables.

use crate::harness::{bin, start};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn usage_errors_exit_64_without_a_broker() {
    // Nothing listens on port 1; none of these get as far as asking.
    for bad in [
        &[][..],
        &["frobnicate"],
        &["list_queues", "no_such_column"],
        &["list_queues", "--bogus"],
        &["add_user", "a", "b", "c"],
        &["set_permissions", "bob", ".*"],
        &["delete_queue"],
        &["list_users", "extra"],
        &["list_queues", "--formatter", "xml"],
        &["--port", "notaport", "status"],
    ] {
        let mut argv = args(&["--port", "1"]);
        argv.extend(args(bad));
        let out = bin(&argv, &[], "");
        let err = out.fails(64);
        assert!(
            err.starts_with("Error (argument validation): "),
            "{bad:?}: {err}"
        );
    }
    let out = bin(&args(&["list_queues", "nope"]), &[], "");
    assert!(
        out.stderr.contains("Info key(s) nope are not supported"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("Usage: warrenctl [options] list_queues"),
        "{out:?}"
    );
}

#[test]
fn help_and_version() {
    let out = bin(&args(&["help"]), &[], "");
    let text = out.ok();
    assert!(text.contains("list_queues [-p <vhost>]"), "{text}");
    assert!(text.contains("--formatter"), "{text}");
    let out = bin(&args(&["help", "set_permissions"]), &[], "");
    assert!(out
        .ok()
        .contains("set_permissions [-p <vhost>] <username> <conf> <write> <read>"));
    let out = bin(&args(&["purge_queue", "--help"]), &[], "");
    assert!(out
        .ok()
        .starts_with("Usage: warrenctl [options] purge_queue"));
    let out = bin(&args(&["--version"]), &[], "");
    assert!(out.ok().starts_with("warrenctl "));
}

#[test]
fn an_unreachable_api_exits_69_with_a_clear_message() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = bin(
        &args(&["--port", &port.to_string(), "list_queues"]),
        &[],
        "",
    );
    let err = out.fails(69);
    assert!(
        err.contains(&format!(
            "unable to reach Warren's management API at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn refusals_exit_70_with_the_api_reason() {
    let h = start();
    let out = h.ctl(&["--password", "wrong", "list_queues"]);
    assert!(out.fails(70).contains("Login failed"), "{out:?}");
    let out = h.ctl(&[
        "set_permissions",
        "-p",
        "nowhere",
        "guest",
        ".*",
        ".*",
        ".*",
    ]);
    assert!(
        out.fails(70).contains("vhost 'nowhere' does not exist"),
        "{out:?}"
    );
    let out = h.ctl(&["set_permissions", "guest", "(", ".*", ".*"]);
    assert!(
        out.fails(70).contains("invalid permission regex"),
        "{out:?}"
    );
}

#[test]
fn the_environment_names_the_broker_and_the_user() {
    let h = start();
    h.ctl(&["add_user", "ops", "ops-pw"]).ok();
    h.ctl(&["set_user_tags", "ops", "administrator"]).ok();
    let port = h.http_port.to_string();
    let env = [
        (warren_cli::ENV_PORT, port.as_str()),
        (warren_cli::ENV_USERNAME, "ops"),
        (warren_cli::ENV_PASSWORD, "ops-pw"),
    ];
    let out = bin(&args(&["-q", "list_users"]), &env, "");
    assert_eq!(
        out.ok(),
        "user\ttags\nguest\t[administrator]\nops\t[administrator]\n"
    );
    // A flag wins over the environment.
    let out = bin(&args(&["--password", "nope", "list_users"]), &env, "");
    out.fails(70);
}
