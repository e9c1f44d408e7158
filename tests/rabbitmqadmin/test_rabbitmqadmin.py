"""The RabbitMQ team's own CLI, rabbitmqadmin v2 (the `rabbitmqadmin` crate, 2.35.0), as a real
client of Warren's management API: every command a single node offers must succeed, and what
it changes must be seen over AMQP and by the next command.

RABBITMQADMIN names the binary (run.sh installs it), MGMT_PORT and AMQP_PORT the broker
(guest/guest). The CLI strictly decodes what it gets (serde, required fields), so a command
that exits 0 here also checks the shape of the API's JSON."""

import json
import os
import subprocess
import tempfile
import time
import uuid

import pika
import pytest

BINARY = os.environ.get("RABBITMQADMIN", "rabbitmqadmin")
MGMT_PORT = int(os.environ.get("MGMT_PORT", "15672"))
AMQP_PORT = int(os.environ.get("AMQP_PORT", "5672"))
# A home of its own, so that no ~/.rabbitmqadmin.conf changes what it does.
HOME = tempfile.mkdtemp(prefix="rabbitmqadmin-home-")


def admin(*args, expect=0, vhost="/"):
    """Runs one command; returns its stdout, asserting the exit code."""
    cmd = [BINARY, "--host", "127.0.0.1", "--port", str(MGMT_PORT), "--username", "guest",
           "--password", "guest", "--vhost", vhost, "--non-interactive", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, HOME=HOME))
    assert r.returncode == expect, f"{' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def rows(out):
    """Non-interactive output: one row per line, cells separated by runs of spaces."""
    return [line.split() for line in out.splitlines() if line.strip()]


@pytest.fixture
def name():
    return f"admin-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def amqp():
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", AMQP_PORT, heartbeat=0))
    yield conn
    if conn.is_open:
        conn.close()


@pytest.mark.parametrize("command", [
    ["show", "overview"],
    ["show", "churn"],
    ["list", "nodes"],
    ["list", "vhosts"],
    ["list", "users"],
    ["list", "permissions"],
    ["list", "queues"],
    ["list", "exchanges"],
    ["list", "bindings"],
    ["list", "connections"],
    ["list", "channels"],
    ["list", "consumers"],
    ["list", "policies"],
    ["list", "operator_policies"],
    ["list", "parameters"],
    ["global_parameters", "list"],
    ["list", "vhost_limits"],
    ["list", "user_limits"],
    ["list", "feature_flags"],
    ["list", "deprecated_features"],
    ["health_check", "local_alarms"],
    ["health_check", "cluster_wide_alarms"],
    ["health_check", "node_is_quorum_critical"],
    ["health_check", "protocol_listener", "--protocol", "amqp"],
])
def test_every_listing_decodes(command):
    admin(*command)


def test_listings_decode_with_live_connections_channels_and_consumers(amqp, name):
    ch = amqp.channel()
    ch.queue_declare(name, auto_delete=True)
    ch.basic_consume(name, lambda *a: None)
    confirm = amqp.channel()
    confirm.confirm_delivery()
    amqp.process_data_events(time_limit=0.2)
    # The API's listings come from periodic statistics: wait for the consumer to show.
    deadline = time.time() + 15
    while name not in admin("list", "consumers") and time.time() < deadline:
        amqp.process_data_events(time_limit=0.5)
    assert name in admin("list", "consumers")
    assert admin("list", "connections").strip()
    assert len(rows(admin("list", "channels"))) >= 2
    assert admin("list", "user_connections", "--username", "guest").strip()
    node = rows(admin("list", "nodes"))[0][0]
    admin("show", "memory_breakdown_in_bytes", "--node", node)
    admin("health_check", "port_listener", "--port", str(AMQP_PORT))


def test_vhosts_users_and_permissions(name):
    admin("declare", "vhost", "--name", name, "--description", "made by rabbitmqadmin")
    assert name in admin("list", "vhosts")
    admin("declare", "user", "--name", name, "--password", "s3cret", "--tags", "management")
    users = {r[0]: r for r in rows(admin("list", "users"))}
    assert "management" in users[name]
    admin("declare", "permissions", "--username", name, "--configure", ".*", "--read", ".*",
          "--write", "^out", vhost=name)
    mine = [r for r in rows(admin("list", "permissions")) if r[:2] == [name, name]]
    assert len(mine) == 1 and "^out" in mine[0], mine
    # The password rabbitmqadmin hashed itself logs in over AMQP.
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", AMQP_PORT, name, pika.PlainCredentials(name, "s3cret"), heartbeat=0))
    conn.close()
    admin("delete", "permissions", "--username", name, vhost=name)
    admin("delete", "user", "--name", name)
    admin("delete", "vhost", "--name", name)
    assert name not in admin("list", "vhosts")
    admin("delete", "vhost", "--name", name, expect=65)
    admin("delete", "vhost", "--name", name, "--idempotently")


def test_queues_exchanges_bindings_publish_get_purge(name, amqp):
    q, x = f"{name}.q", f"{name}.x"
    admin("declare", "queue", "--name", q, "--type", "classic", "--durable", "true",
          "--arguments", '{"x-max-priority": 5}')
    shown = admin("queues", "show", "--name", q)
    assert q in shown and "x-max-priority" in shown
    admin("declare", "exchange", "--name", x, "--type", "topic")
    admin("declare", "binding", "--source", x, "--destination-type", "queue",
          "--destination", q, "--routing-key", "orders.#")
    assert any(r[:2] == ["/", x] for r in rows(admin("list", "bindings")))
    assert "routed" in admin("publish", "message", "--exchange", x, "--routing-key",
                             "orders.eu", "--payload", "first")
    # No --exchange: the default exchange (an empty path segment).
    admin("publish", "message", "--routing-key", q, "--payload", "second")
    ch = amqp.channel()
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    got = admin("get", "messages", "--queue", q, "--count", "2", "--ack-mode", "ack_requeue_true")
    assert "first" in got and "second" in got
    admin("purge", "queue", "--name", q)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    admin("list", "queues", "--page", "1", "--page-size", "10")
    admin("delete", "binding", "--source", x, "--destination-type", "queue",
          "--destination", q, "--routing-key", "orders.#")
    assert not any(r[:2] == ["/", x] for r in rows(admin("list", "bindings")))
    admin("delete", "exchange", "--name", x)
    admin("delete", "queue", "--name", q)
    admin("delete", "queue", "--name", q, expect=65)


def test_policies_operator_policies_and_parameters(name, amqp):
    q = f"{name}.capped"
    ch = amqp.channel()
    ch.queue_declare(q)
    for i in range(10):
        ch.basic_publish("", q, str(i).encode())
    admin("declare", "policy", "--name", name, "--pattern", f"^{name}\\.", "--apply-to",
          "queues", "--definition", '{"max-length": 4}', "--priority", "1")
    assert name in admin("list", "policies")
    assert ch.queue_declare(q, passive=True).method.message_count == 4
    admin("declare", "operator_policy", "--name", name, "--pattern", f"^{name}\\.",
          "--apply-to", "queues", "--definition", '{"max-length": 2}')
    assert name in admin("list", "operator_policies")
    assert name in admin("list", "parameters")
    assert ch.queue_declare(q, passive=True).method.message_count == 2
    admin("delete", "operator_policy", "--name", name)
    admin("delete", "policy", "--name", name)
    assert name not in admin("list", "policies")
    ch.queue_delete(q)


def test_global_parameters(name):
    admin("global_parameters", "set", "--name", name, "--value", '{"owner": "ops"}')
    assert name in admin("global_parameters", "list")
    admin("global_parameters", "clear", "--name", name)
    assert name not in admin("global_parameters", "list")


def test_definitions_export_and_import(name):
    admin("declare", "queue", "--name", name, "--durable", "true")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "defs.json")
        admin("definitions", "export", "--file", path)
        defs = json.load(open(path))
        assert any(q["name"] == name for q in defs["queues"])
        admin("delete", "queue", "--name", name)
        admin("definitions", "import", "--file", path)
    assert name in admin("list", "queues")
    transformed = admin("definitions", "export", "--transformations", "no_op", "--file", "-")
    assert name in transformed
    assert name in admin("definitions", "export_from_vhost", "--file", "-")
    admin("delete", "queue", "--name", name)


def test_closing_a_users_connections(amqp):
    admin("close", "user_connections", "--username", "guest")
    deadline = time.time() + 10
    while amqp.is_open and time.time() < deadline:
        try:
            amqp.process_data_events(time_limit=0.2)
        except pika.exceptions.ConnectionClosedByBroker:
            break
    assert not amqp.is_open


def test_vhost_and_user_limits(name, amqp):
    admin("declare", "vhost", "--name", name)
    admin("declare", "vhost_limit", "--name", "max-queues", "--value", "1", vhost=name)
    assert "max-queues" in admin("list", "vhost_limits", vhost=name)
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", AMQP_PORT, name, heartbeat=0))
    ch = conn.channel()
    ch.queue_declare("one")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("two")
    conn.close()
    admin("delete", "vhost_limit", "--name", "max-queues", vhost=name)
    assert "max-queues" not in admin("list", "vhost_limits", vhost=name)
    admin("declare", "user", "--name", name, "--password", "pw", "--tags", "")
    admin("declare", "user_limit", "--username", name, "--name", "max-channels", "--value", "5")
    assert "max-channels" in admin("list", "user_limits", "--username", name)
    admin("delete", "user_limit", "--username", name, "--name", "max-channels")
    admin("delete", "user", "--name", name)
    admin("delete", "vhost", "--name", name)
