"""Queue-feature tests that run unchanged against Warren and against RabbitMQ 3.10: the same
assertions passing on both is the comparison. AMQP_PORT names the broker (guest/guest on /)."""

import os
import uuid

import pika
import pytest


@pytest.fixture
def port():
    return int(os.environ.get("AMQP_PORT", "5672"))


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
