//! set_policy, clear_policy, list_policies and the operator-policy twins: what they print,
//! and that the broker applies what they set.

use serde_json::json;

use crate::harness::{eventually, start, Harness};

/// `name<TAB>policy` of every queue, as `list_queues -s name policy` prints it.
fn queue_policies(h: &Harness) -> String {
    h.ctl(&["-s", "list_queues", "name", "policy"])
        .ok()
        .to_string()
}

#[test]
fn set_list_and_clear_policies_and_queues_follow_them() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "cli-orders", true);
    h.declare(&c, "other", true);
    // No policy yet: an empty cell, as rabbitmqctl prints one.
    assert_eq!(queue_policies(&h), "cli-orders\t\nother\t\n");

    let out = h.ctl(&["set_policy", "cli1", "^cli", r#"{"max-length":5}"#]);
    assert_eq!(
        out.ok(),
        "Setting policy \"cli1\" for pattern \"^cli\" to \"{\"max-length\":5}\" \
         with priority \"0\" for vhost \"/\" ...\n"
    );
    let out = h.ctl(&[
        "set_policy",
        "--priority",
        "3",
        "--apply-to",
        "queues",
        "cli2",
        "^cli",
        r#"{"max-length":2, "message-ttl": 60000}"#,
    ]);
    assert_eq!(
        out.ok(),
        "Setting policy \"cli2\" for pattern \"^cli\" to \"{\"max-length\":2, \"message-ttl\": 60000}\" \
         with priority \"3\" for vhost \"/\" ...\n"
    );

    // Lowest priority first; definitions as compact JSON.
    let out = h.ctl(&["list_policies"]);
    assert_eq!(
        out.ok(),
        "Listing policies for vhost \"/\" ...\n\
         vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n\
         /\tcli1\t^cli\tall\t{\"max-length\":5}\t0\n\
         /\tcli2\t^cli\tqueues\t{\"max-length\":2,\"message-ttl\":60000}\t3\n"
    );
    let out = h.ctl(&["list_policies", "--no-table-headers"]);
    assert_eq!(
        out.ok(),
        "Listing policies for vhost \"/\" ...\n\
         /\tcli1\t^cli\tall\t{\"max-length\":5}\t0\n\
         /\tcli2\t^cli\tqueues\t{\"max-length\":2,\"message-ttl\":60000}\t3\n"
    );
    let out = h.ctl(&["-s", "list_policies"]);
    assert_eq!(
        out.ok(),
        "/\tcli1\t^cli\tall\t{\"max-length\":5}\t0\n\
         /\tcli2\t^cli\tqueues\t{\"max-length\":2,\"message-ttl\":60000}\t3\n"
    );
    // JSON: the definition is a string of JSON, as rabbitmqctl has it.
    let out = h.ctl(&["list_policies", "--formatter", "json"]);
    assert_eq!(
        out.ok(),
        "[\n\
         {\"vhost\":\"/\",\"name\":\"cli1\",\"pattern\":\"^cli\",\"apply-to\":\"all\",\
         \"definition\":\"{\\\"max-length\\\":5}\",\"priority\":0}\n\
         ,{\"vhost\":\"/\",\"name\":\"cli2\",\"pattern\":\"^cli\",\"apply-to\":\"queues\",\
         \"definition\":\"{\\\"max-length\\\":2,\\\"message-ttl\\\":60000}\",\"priority\":3}\n\
         ]\n"
    );

    // The higher priority wins, and the broker holds the queue to it.
    eventually("cli2 to apply to cli-orders", || {
        queue_policies(&h) == "cli-orders\tcli2\nother\t\n"
    });
    h.publish(&c, "cli-orders", 4);
    assert_eq!(
        h.ctl(&["-s", "list_queues"]).ok(),
        "cli-orders\t2\nother\t0\n"
    );
    // What the policy sets, beside the queue's own arguments.
    assert_eq!(
        h.ctl(&[
            "-s",
            "list_queues",
            "name",
            "arguments",
            "effective_policy_definition",
            "operator_policy"
        ])
        .ok(),
        "cli-orders\t[]\t[{\"max-length\",2}, {\"message-ttl\",60000}]\t\nother\t[]\t[]\t\n"
    );

    // Updating is setting again.
    let out = h.ctl(&[
        "set_policy",
        "--priority=4",
        "cli2",
        "^cli",
        r#"{"max-length":3}"#,
    ]);
    assert!(out.ok().contains("with priority \"4\""), "{out:?}");
    assert_eq!(
        h.ctl(&["-s", "list_policies"]).ok(),
        "/\tcli1\t^cli\tall\t{\"max-length\":5}\t0\n\
         /\tcli2\t^cli\tall\t{\"max-length\":3}\t4\n"
    );

    let out = h.ctl(&["clear_policy", "cli2"]);
    assert_eq!(out.ok(), "Clearing policy \"cli2\" on vhost \"/\" ...\n");
    eventually("cli1 to apply to cli-orders", || {
        queue_policies(&h) == "cli-orders\tcli1\nother\t\n"
    });
    let out = h.ctl(&["clear_policy", "cli2"]);
    assert_eq!(out.fails(70), "Error:\nParameter does not exist\n");
    assert_eq!(out.stdout, "Clearing policy \"cli2\" on vhost \"/\" ...\n");

    // The last one gone, the listing is the banner and an empty line, as rabbitmqctl's.
    h.bin(&["-q", "clear_policy", "cli1"]).ok();
    eventually("no policy to apply to cli-orders", || {
        queue_policies(&h) == "cli-orders\t\nother\t\n"
    });
    let out = h.ctl(&["list_policies"]);
    assert_eq!(out.ok(), "Listing policies for vhost \"/\" ...\n\n");
    let out = h.ctl(&["list_policies", "--formatter", "json"]);
    assert_eq!(out.json(), json!([]));
    h.close(c);
}

#[test]
fn policies_belong_to_the_vhost_of_p() {
    let h = start();
    h.ctl(&["add_vhost", "dev"]).ok();
    let out = h.ctl(&[
        "set_policy",
        "-p",
        "dev",
        "ttl",
        ".*",
        r#"{"message-ttl":1000}"#,
    ]);
    assert!(out.ok().ends_with("for vhost \"dev\" ...\n"), "{out:?}");
    let out = h.bin(&["list_policies", "--vhost=dev"]);
    assert_eq!(
        out.ok(),
        "Listing policies for vhost \"dev\" ...\n\
         vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n\
         dev\tttl\t.*\tall\t{\"message-ttl\":1000}\t0\n"
    );
    assert_eq!(
        h.ctl(&["list_policies"]).ok(),
        "Listing policies for vhost \"/\" ...\n\n"
    );
    // Not in / : nothing to clear there.
    h.ctl(&["clear_policy", "ttl"]).fails(70);
    let out = h.ctl(&["clear_policy", "-p", "dev", "ttl"]);
    assert_eq!(out.ok(), "Clearing policy \"ttl\" on vhost \"dev\" ...\n");
}

#[test]
fn operator_policies_cap_what_policies_allow() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "cli-capped", true);
    h.ctl(&["set_policy", "roomy", "^cli", r#"{"max-length":10}"#])
        .ok();

    let out = h.ctl(&[
        "set_operator_policy",
        "--priority",
        "2",
        "--apply-to",
        "queues",
        "op1",
        "^cli",
        r#"{"max-length":3,"expires":100000}"#,
    ]);
    assert_eq!(
        out.ok(),
        "Setting operator policy override \"op1\" for pattern \"^cli\" \
         to \"{\"max-length\":3,\"expires\":100000}\" with priority \"2\" for vhost \"/\" ...\n"
    );
    let out = h.ctl(&["list_operator_policies"]);
    assert_eq!(
        out.ok(),
        "Listing operator policy overrides for vhost \"/\" ...\n\
         vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n\
         /\top1\t^cli\tqueues\t{\"expires\":100000,\"max-length\":3}\t2\n"
    );
    // Operator policies are not policies.
    assert_eq!(
        h.ctl(&["-s", "list_policies"]).ok(),
        "/\troomy\t^cli\tall\t{\"max-length\":10}\t0\n"
    );
    let out = h.ctl(&["list_operator_policies", "--formatter", "json"]);
    assert_eq!(
        out.json(),
        json!([{
            "vhost": "/", "name": "op1", "pattern": "^cli", "apply-to": "queues",
            "definition": "{\"expires\":100000,\"max-length\":3}", "priority": 2,
        }])
    );

    // The lower limit wins: the operator's 3, not the policy's 10.
    eventually("roomy to apply to cli-capped", || {
        queue_policies(&h) == "cli-capped\troomy\n"
    });
    h.publish(&c, "cli-capped", 6);
    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "cli-capped\t3\n");

    let out = h.ctl(&["clear_operator_policy", "op1"]);
    assert_eq!(
        out.ok(),
        "Clearing operator policy \"op1\" on vhost \"/\" ...\n"
    );
    let out = h.ctl(&["list_operator_policies"]);
    assert_eq!(
        out.ok(),
        "Listing operator policy overrides for vhost \"/\" ...\n\n"
    );
    // Without the cap, the policy's 10 holds.
    h.publish(&c, "cli-capped", 9);
    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "cli-capped\t10\n");
    let out = h.ctl(&["clear_operator_policy", "op1"]);
    assert_eq!(out.fails(70), "Error:\nParameter does not exist\n");
    h.close(c);
}

#[test]
fn refusals_in_rabbitmqctls_words() {
    let h = start();

    // The definition is checked as JSON after the banner, as on a RabbitMQ node.
    let out = h.ctl(&["set_policy", "p", "^a", "{max-length:1}"]);
    assert_eq!(
        out.fails(65),
        "Error:\nJSON decoding error. Reason: badarg\n"
    );
    assert!(out.stdout.starts_with("Setting policy \"p\""), "{out:?}");

    // The API's validation failure, its HTML escapes undone.
    let out = h.ctl(&["set_policy", "p", "^a", r#"{"message-ttl":"abc"}"#]);
    assert_eq!(
        out.fails(70),
        "Error:\nValidation failed\n\n<<\"abc\">> is not a valid message TTL\n\n"
    );
    let out = h.ctl(&["set_operator_policy", "o", "^a", r#"{"message-ttl":"abc"}"#]);
    assert_eq!(
        out.fails(70),
        "Error:\nValidation failed\n\n<<\"abc\">> is not a valid message TTL\n\n"
    );
    let out = h.ctl(&[
        "set_operator_policy",
        "o",
        "^a",
        r#"{"overflow":"drop-head"}"#,
    ]);
    assert!(
        out.fails(70)
            .contains("[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings"),
        "{out:?}"
    );
    let out = h.ctl(&[
        "set_policy",
        "--apply-to",
        "nothing",
        "p",
        "^a",
        r#"{"max-length":1}"#,
    ]);
    assert!(
        out.fails(70)
            .contains("apply-to 'nothing' unrecognised; should be 'queues', 'exchanges' or 'all'"),
        "{out:?}"
    );

    for verb in [
        &[
            "set_policy",
            "-p",
            "nosuch",
            "p",
            "^a",
            r#"{"max-length":1}"#,
        ][..],
        &["clear_policy", "-p", "nosuch", "p"],
        &["list_policies", "-p", "nosuch"],
        &[
            "set_operator_policy",
            "-p",
            "nosuch",
            "o",
            "^a",
            r#"{"max-length":1}"#,
        ],
        &["clear_operator_policy", "-p", "nosuch", "o"],
        &["list_operator_policies", "-p", "nosuch"],
    ] {
        let out = h.ctl(verb);
        assert_eq!(
            out.fails(70),
            "Error:\nVirtual host 'nosuch' does not exist\n",
            "{verb:?}"
        );
    }

    // Nothing was set by any of that.
    assert_eq!(h.ctl(&["-s", "list_policies"]).ok(), "\n");
    assert_eq!(h.ctl(&["-s", "list_operator_policies"]).ok(), "\n");
}

#[test]
fn usage_errors_name_the_verb() {
    let h = start();
    let out = h.ctl(&["set_policy", "p", "^a"]);
    let err = out.fails(64);
    assert!(
        err.starts_with("Error (argument validation): not enough arguments.\n"),
        "{err}"
    );
    assert!(
        err.contains(
            "Usage: warrenctl [options] set_policy [-p <vhost>] [--priority <priority>] \
             [--apply-to <apply-to>] <name> <pattern> <definition>"
        ),
        "{err}"
    );
    let out = h.ctl(&["set_operator_policy", "--priority", "x", "o", "^a", "{}"]);
    let err = out.fails(64);
    assert!(
        err.starts_with(
            "Error (argument validation): Invalid options for this command:\n--priority : x\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("Usage: warrenctl [options] set_operator_policy"),
        "{err}"
    );
    assert_eq!(out.stdout, "", "nothing is set, nothing announced");
    for bad in [
        &["clear_policy"][..],
        &["clear_operator_policy", "a", "b"],
        &["list_policies", "name"],
        &["list_operator_policies", "extra"],
    ] {
        h.ctl(bad).fails(64);
    }

    let out = h.bin(&["help"]);
    for usage in [
        "set_policy [-p <vhost>] [--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>",
        "clear_policy [-p <vhost>] <name>",
        "list_policies [-p <vhost>] [--no-table-headers]",
        "set_operator_policy [-p <vhost>]",
        "clear_operator_policy [-p <vhost>] <name>",
        "list_operator_policies [-p <vhost>] [--no-table-headers]",
    ] {
        assert!(out.ok().contains(usage), "{usage} in {}", out.stdout);
    }
    let out = h.bin(&["help", "set_operator_policy"]);
    assert!(out
        .ok()
        .starts_with("Usage: warrenctl [options] set_operator_policy [-p <vhost>]"));
}
