"""Queue expiry (x-expires) and single active consumer, asserted identically against Warren and
RabbitMQ 3.10."""

import time

import pika
import pytest


def exists(port, queue):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return False
    finally:
        if conn.is_open:
            conn.close()


def pump(connection, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        connection.process_data_events(time_limit=0.05)


def test_an_unused_queue_expires(port, channel, names):
    q = names.queue("lease")
    channel.queue_declare(q, arguments={"x-expires": 300})
    time.sleep(0.15)
    # basic.get and a redeclare renew the lease.
    channel.basic_get(q)
    time.sleep(0.2)
    channel.queue_declare(q, arguments={"x-expires": 300})
    time.sleep(0.2)
    assert exists(port, q)
    time.sleep(0.6)
    assert not exists(port, q)


def test_a_consumer_keeps_an_expiring_queue_until_it_leaves(port, connection, channel, names):
    q = names.queue("held")
    channel.queue_declare(q, arguments={"x-expires": 200})
    tag = channel.basic_consume(q, lambda *a: None, auto_ack=True)
    pump(connection, 0.6)
    assert exists(port, q)
    channel.basic_cancel(tag)
    pump(connection, 0.6)
    assert not exists(port, q)


def test_single_active_consumer_delivers_to_one_until_it_goes(port, connection, names):
    q = names.queue("sac")
    first, second = connection.channel(), connection.channel()
    first.queue_declare(q, arguments={"x-single-active-consumer": True})
    got = {"first": [], "second": []}
    tag = first.basic_consume(q, lambda ch, m, p, b: got["first"].append(b), auto_ack=True)
    second.basic_consume(q, lambda ch, m, p, b: got["second"].append(b), auto_ack=True)
    for i in range(4):
        first.basic_publish("", q, f"m{i}".encode())
    pump(connection, 0.5)
    assert got == {"first": [b"m0", b"m1", b"m2", b"m3"], "second": []}
    first.basic_cancel(tag)
    first.basic_publish("", q, b"m4")
    pump(connection, 0.5)
    assert got["second"] == [b"m4"]
