//! The listing verbs: table layout, -q/-s/--no-table-headers, JSON, column choice.

use serde_json::json;

use crate::harness::{eventually, start};

#[test]
fn list_queues_shows_ready_and_unacknowledged_as_table_and_json() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "orders", true);
    h.declare(&c, "audit", false);
    h.publish(&c, "orders", 3);
    h.get_unacked(&c, "orders");

    let out = h.ctl(&[
        "list_queues",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    assert_eq!(
        out.ok(),
        "Timeout: 60.0 seconds ...\n\
         Listing queues for vhost / ...\n\
         name\tmessages_ready\tmessages_unacknowledged\n\
         audit\t0\t0\n\
         orders\t2\t1\n"
    );

    // The default columns are name and messages.
    let out = h.ctl(&["list_queues", "-q"]);
    assert_eq!(out.ok(), "name\tmessages\naudit\t0\norders\t3\n");
    let out = h.ctl(&["-s", "list_queues"]);
    assert_eq!(out.ok(), "audit\t0\norders\t3\n");
    let out = h.ctl(&[
        "list_queues",
        "--no-table-headers",
        "name",
        "durable",
        "consumers",
    ]);
    assert_eq!(
        out.ok(),
        "Timeout: 60.0 seconds ...\nListing queues for vhost / ...\n\
         audit\tfalse\t0\norders\ttrue\t0\n"
    );

    // JSON: no banner, the columns asked for, in that order.
    let out = h.ctl(&[
        "list_queues",
        "--formatter",
        "json",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ]);
    assert_eq!(
        out.ok(),
        "[\n\
         {\"name\":\"audit\",\"messages_ready\":0,\"messages_unacknowledged\":0}\n\
         ,{\"name\":\"orders\",\"messages_ready\":2,\"messages_unacknowledged\":1}\n\
         ]\n"
    );
    assert_eq!(
        out.json(),
        json!([
            {"name": "audit", "messages_ready": 0, "messages_unacknowledged": 0},
            {"name": "orders", "messages_ready": 2, "messages_unacknowledged": 1},
        ])
    );

    // The same through the real binary.
    let out = h.bin(&[
        "list_queues",
        "-s",
        "name",
        "messages",
        "messages_unacknowledged",
    ]);
    assert_eq!(out.ok(), "audit\t0\t0\norders\t3\t1\n");
    let out = h.bin(&["--formatter=json", "list_queues", "name", "messages_ready"]);
    assert_eq!(
        out.json(),
        json!([{"name": "audit", "messages_ready": 0}, {"name": "orders", "messages_ready": 2}])
    );

    // When the channel closes, the unacknowledged message is ready again.
    h.close(c);
    eventually("the unacked message to be requeued", || {
        h.ctl(&["-s", "list_queues", "name", "messages_ready"])
            .stdout
            == "audit\t0\norders\t3\n"
    });
}

#[test]
fn an_empty_listing_is_the_banner_alone_or_an_empty_json_array() {
    let h = start();
    let out = h.ctl(&["list_queues"]);
    assert_eq!(
        out.ok(),
        "Timeout: 60.0 seconds ...\nListing queues for vhost / ...\n"
    );
    let out = h.ctl(&["list_queues", "--formatter", "json"]);
    assert_eq!(out.ok(), "[\n]\n");
    assert_eq!(out.json(), json!([]));
}

#[test]
fn exchanges_and_bindings() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "inbox", true);
    h.declare_exchange(&c, "events", "topic");
    h.bind(&c, "inbox", "events", "order.#");

    let out = h.ctl(&["list_exchanges"]);
    let text = out.ok();
    assert!(
        text.starts_with("Listing exchanges for vhost / ...\nname\ttype\n"),
        "{text}"
    );
    for row in [
        "\tdirect\n",
        "amq.direct\tdirect\n",
        "amq.topic\ttopic\n",
        "events\ttopic\n",
    ] {
        assert!(text.contains(row), "{row:?} in {text}");
    }
    let out = h.ctl(&[
        "-s",
        "list_exchanges",
        "name",
        "type",
        "durable",
        "internal",
    ]);
    assert!(
        out.ok().contains("events\ttopic\ttrue\tfalse\n"),
        "{}",
        out.stdout
    );

    let out = h.ctl(&["list_bindings"]);
    assert_eq!(
        out.ok(),
        "Listing bindings for vhost /...\n\
         source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments\n\
         \texchange\tinbox\tqueue\tinbox\t[]\n\
         events\texchange\tinbox\tqueue\torder.#\t[]\n"
    );
    let out = h.ctl(&[
        "list_bindings",
        "--formatter",
        "json",
        "source_name",
        "routing_key",
    ]);
    assert_eq!(
        out.json(),
        json!([
            {"source_name": "", "routing_key": "inbox"},
            {"source_name": "events", "routing_key": "order.#"},
        ])
    );
    h.close(c);
}

#[test]
fn connections_channels_consumers_and_close_connection() {
    let h = start();
    let c = h.guest();
    h.declare(&c, "work", true);
    h.publish(&c, "work", 2);
    h.get_unacked(&c, "work");

    let out = h.ctl(&["-q", "list_connections"]);
    let text = out.ok();
    assert!(
        text.starts_with("user\tpeer_host\tpeer_port\tstate\nguest\t127.0.0.1\t"),
        "{text}"
    );
    assert!(text.ends_with("\trunning\n"), "{text}");

    let out = h.ctl(&[
        "-s",
        "list_connections",
        "name",
        "user",
        "vhost",
        "channels",
    ]);
    let line = out.ok().trim_end().to_string();
    let (name, rest) = line.split_once('\t').unwrap();
    assert_eq!(rest, "guest\t/\t1");
    assert!(name.contains(" -> "), "{name}");

    let out = h.ctl(&["list_channels", "--formatter", "json"]);
    let channels = out.json();
    assert_eq!(channels[0]["user"], "guest");
    assert_eq!(channels[0]["messages_unacknowledged"], 1);
    assert_eq!(channels[0]["pid"], format!("{name} (1)"));

    let out = h.ctl(&["list_consumers"]);
    assert_eq!(out.ok(), "Listing consumers on vhost / ...\n");
    let _deliveries = h.consume(&c, "work", "ctl-test");
    let out = h.ctl(&["list_consumers"]);
    assert_eq!(
        out.ok(),
        format!(
            "Listing consumers on vhost / ...\n\
             queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments\n\
             work\t{name} (1)\tctl-test\ttrue\t0\ttrue\t[]\n"
        )
    );
    let out = h.ctl(&["-s", "list_channels", "consumer_count", "connection"]);
    assert_eq!(out.ok(), format!("1\t{name}\n"));

    let out = h.ctl(&["close_connection", name, "maintenance window"]);
    assert_eq!(
        out.ok(),
        format!("Closing connection {name}, reason: maintenance window...\n")
    );
    eventually("the connection to go", || {
        h.ctl(&["-s", "list_connections"]).stdout.is_empty()
    });
    let out = h.ctl(&["close_connection", name, "again"]);
    assert!(out.fails(70).contains("not found"), "{out:?}");
}

#[test]
fn vhost_scoped_listings_follow_p() {
    let h = start();
    h.ctl(&["add_vhost", "staging"]).ok();
    h.ctl(&[
        "set_permissions",
        "-p",
        "staging",
        "guest",
        ".*",
        ".*",
        ".*",
    ])
    .ok();
    let c = h.login("guest", "guest", "staging").unwrap();
    h.declare(&c, "only-in-staging", true);

    assert_eq!(h.ctl(&["-s", "list_queues"]).ok(), "");
    assert_eq!(
        h.ctl(&["-s", "list_queues", "-p", "staging", "name", "vhost"])
            .ok(),
        "only-in-staging\tstaging\n"
    );
    let out = h.ctl(&["list_queues", "--vhost=staging"]);
    assert!(out.ok().contains("Listing queues for vhost staging ...\n"));
    h.close(c);

    let out = h.ctl(&["list_vhosts"]);
    assert_eq!(out.ok(), "Listing vhosts ...\nname\n/\nstaging\n");
}

#[test]
fn status_reports_the_node() {
    let h = start();
    let out = h.ctl(&["status"]);
    let text = out.ok();
    assert!(text.starts_with("Status of node warren@"), "{text}");
    for part in [
        "Runtime\n",
        "Listeners\n",
        "protocol: amqp",
        "Totals\n",
        "Virtual host count: 1\n",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    let out = h.ctl(&["status", "--formatter", "json"]);
    let v = out.json();
    assert_eq!(v["totals"]["virtual_host_count"], 1);
    assert_eq!(v["listeners"][0]["port"], h.amqp_port);
}
