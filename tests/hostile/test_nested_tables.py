"""Field tables nested far deeper than any real client nests them (a recursive decoder's stack
is the target). Warren's decoder stops at MAX_NESTING = 64 (crates/protocol/src/table.rs).

What RabbitMQ 3.10.8 does (live, the same frames): it accepts every depth that fits in a frame
(tables to 18,000 levels, arrays to 26,000) in message headers and in queue.declare
arguments, routes on such headers, delivers the properties byte for byte and keeps them when
dead-lettering. Erlang's recursion has no fixed stack to overflow."""

import pytest

import amqp
from broker import wait_for
from common import pika_connection, pika_roundtrip, report

# The deepest nesting of each kind whose content header still fits in a 131,072-byte frame.
FRAME_FILLING = {"F": 18_000, "A": 26_000}


@pytest.fixture
def bystander(warren):
    """A connection opened before the abuse, with a message waiting for it: after the abuse it
    must still be served, and a newcomer too."""
    conn = pika_connection(warren.amqp_port)
    ch = conn.channel()
    ch.queue_declare("hostile.bystander")
    ch.basic_publish("", "hostile.bystander", b"before")
    yield
    _, _, body = ch.basic_get("hostile.bystander", auto_ack=True)
    assert body == b"before"
    conn.close()
    assert pika_roundtrip(warren.amqp_port, 100) < 5


@pytest.mark.parametrize("kind,depth", [("F", 65), ("F", 1000), ("F", 5000), ("F", FRAME_FILLING["F"]),
                                        ("A", 5000), ("A", FRAME_FILLING["A"])])
def test_deeply_nested_headers_in_a_publish(warren, bystander, kind, depth):
    headers = amqp.nested_table(depth, kind)
    conn = amqp.Connection(warren.amqp_port)
    conn.open_channel(1)
    conn.declare(1, "hostile.deep")
    rss_before = warren.rss()
    conn.send(amqp.basic_publish(1, "hostile.deep", b"deep", headers_table=headers))
    try:
        got = conn.get(1, "hostile.deep")
        outcome = "delivered" if got else "dropped"
    except amqp.AmqpClosed as e:
        got, outcome = None, str(e)
    report("nested headers", kind=kind, depth=depth, bytes=len(headers), outcome=outcome,
           rss_growth=warren.rss() - rss_before)
    assert warren.alive()
    # As RabbitMQ: the message is taken and delivered with its properties untouched.
    assert got == (amqp.properties_of(headers_table=headers), b"deep"), outcome
    conn.close()


@pytest.mark.parametrize("depth", [65, 5000])
def test_deeply_nested_queue_arguments(warren, bystander, depth):
    """queue.declare arguments are decoded with the method frame. RabbitMQ declares the queue;
    refusing it with a connection error is accepted too, as long as nothing else suffers."""
    conn = amqp.Connection(warren.amqp_port)
    conn.open_channel(1)
    conn.send(amqp.queue_declare(1, "hostile.deep-args", arguments_table=amqp.nested_table(depth)))
    try:
        conn.expect(1, amqp.QUEUE_DECLARE_OK)
        outcome = "declared"
        conn.close()
    except amqp.AmqpClosed as e:
        outcome = str(e)
        assert e.kind == "connection"
        conn.send(amqp.connection_close_ok())
        conn.abort()
    report("nested queue arguments", depth=depth, outcome=outcome)
    assert warren.alive()


# Headers 100 levels deep: past Warren's decoder limit, well within what RabbitMQ handles.
BEYOND_LIMIT = 100


def deep_headers_with(entries):
    return amqp.nested_table(BEYOND_LIMIT, extra=amqp.table_entries(entries))


def test_headers_exchange_routes_on_deeply_nested_headers(warren):
    conn = amqp.Connection(warren.amqp_port)
    conn.open_channel(1)
    conn.declare(1, "hostile.match")
    conn.send(amqp.method(1, (50, 20), b"\0\0" + amqp.shortstr("hostile.match") + amqp.shortstr("amq.match")
                          + amqp.shortstr("") + amqp.bits(False) + amqp.table({"x-match": "all", "k": "v"})))
    conn.expect(1, (50, 21))
    headers = deep_headers_with({"k": "v"})
    conn.send(amqp.basic_publish(1, "", b"routed", exchange="amq.match", headers_table=headers))
    try:
        got = wait_for(lambda: conn.get(1, "hostile.match"), 2, what="the routed message")
    except AssertionError:
        got = None
    conn.close()
    # RabbitMQ: routed by the top-level "k" header, delivered unchanged.
    assert got is not None, (f"headers nested {BEYOND_LIMIT} deep: the headers exchange did not "
                             "route the message on its top-level 'k'")
    assert got == (amqp.properties_of(headers_table=headers), b"routed")


def test_dead_lettering_keeps_deeply_nested_headers(warren):
    conn = amqp.Connection(warren.amqp_port)
    conn.open_channel(1)
    conn.declare(1, "hostile.dlq")
    conn.declare(1, "hostile.expiring", arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "hostile.dlq"})
    headers = deep_headers_with({"k": "v"})
    conn.send(amqp.basic_publish(1, "hostile.expiring", b"dead", content_type="text/plain",
                                 headers_table=headers))
    props, body = wait_for(lambda: conn.get(1, "hostile.dlq"), 5, what="the dead-lettered message")
    conn.close()
    # RabbitMQ adds x-death and keeps everything else: the content type, "k" and the deep "n".
    assert body == b"dead"
    assert b"x-death" in props
    content_type_kept = bool(props[0] & 0x80) and props[2:13] == amqp.shortstr("text/plain")
    assert content_type_kept, f"dead-lettering dropped the content type (property flags {props[:2].hex()})"
    for name, entry in (("k", amqp.table_entries({"k": "v"})), ("n", amqp.nested_table(BEYOND_LIMIT)[4:])):
        assert entry in props, f"dead-lettering dropped the original header {name!r}"
