"""Queue-feature tests that run unchanged against Warren and against RabbitMQ 3.10: the same
assertions passing on both is the comparison. AMQP_PORT and MGMT_PORT (the management API)
name the broker (guest/guest on /)."""

import os
import uuid

import pika
import pytest
import requests


@pytest.fixture
def port():
    return int(os.environ.get("AMQP_PORT", "5672"))


@pytest.fixture
def api():
    """The management API: api(method, path, json=None) -> requests.Response."""
    base = f"http://127.0.0.1:{int(os.environ.get('MGMT_PORT', '15672'))}"
    session = requests.Session()
    session.auth = ("guest", "guest")

    def call(method, path, json=None):
        return session.request(method, base + path, json=json, timeout=10)

    return call


@pytest.fixture
def connection(port):
    conn = pika.BlockingConnection(
        pika.ConnectionParameters("127.0.0.1", port, heartbeat=0, blocked_connection_timeout=30))
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def channel(connection):
    return connection.channel()


@pytest.fixture
def names(channel, port):
    """Unique queue/exchange names for a test, deleted afterwards (on a fresh connection, since
    a test may leave its own channel closed by the broker)."""
    prefix = f"feat.{uuid.uuid4().hex[:8]}"
    made = {"queues": [], "exchanges": []}

    class Names:
        # The prefix, and a regex anchored to it (for policies that must touch only this test).
        base = prefix
        pattern_prefix = "^" + prefix.replace(".", "\\.")

        def queue(self, suffix):
            name = f"{prefix}.{suffix}"
            made["queues"].append(name)
            return name

        def exchange(self, suffix):
            name = f"{prefix}.x.{suffix}"
            made["exchanges"].append(name)
            return name

    yield Names()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    ch = conn.channel()
    for q in made["queues"]:
        ch.queue_delete(q)
    for x in made["exchanges"]:
        ch.exchange_delete(x)
    conn.close()


@pytest.fixture
def policies(api, names):
    """Sets policies (kind "policies" or "operator-policies") named for the test, pattern under
    its prefix; clears them afterwards."""
    made = []

    def put(kind, name, pattern_suffix, definition, priority=0, apply_to="queues"):
        full = f"{names.base}.{name}"
        made.append((kind, full))
        body = {"pattern": names.pattern_prefix + pattern_suffix, "definition": definition,
                "priority": priority, "apply-to": apply_to}
        return api("PUT", f"/api/{kind}/%2F/{full}", body)

    yield put
    for kind, full in made:
        api("DELETE", f"/api/{kind}/%2F/{full}")
