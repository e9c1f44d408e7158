"""One connection declares tens of thousands of queues while another keeps publishing and
consuming; then the vhost's max-queues limit refuses the next declare as RabbitMQ 3.10 does.

RabbitMQ 3.10's refusal (rabbit_channel:check_vhost_queue_limit/2, confirmed on a live 3.10.8
node): channel.close 406 "PRECONDITION_FAILED - cannot declare queue 'NAME': queue limit in
vhost '/' (N) is reached", class 50, method 10."""

import threading
import time

import amqp
from broker import wait_for
from common import mib, pika_roundtrip, report, size

# Declares sent before their replies are read: enough to keep the broker busy, few enough
# that the replies fit in the socket buffers.
PIPELINE = 500
PROBE_LIMIT_S = 2.0


def declare_all(conn, names, **kw):
    for i in range(0, len(names), PIPELINE):
        chunk = names[i:i + PIPELINE]
        conn.send(b"".join(amqp.queue_declare(1, name, **kw) for name in chunk))
        for _ in chunk:
            conn.expect(1, amqp.QUEUE_DECLARE_OK)


def delete_all(conn, names):
    for i in range(0, len(names), PIPELINE):
        chunk = names[i:i + PIPELINE]
        conn.send(b"".join(amqp.queue_delete(1, name) for name in chunk))
        for _ in chunk:
            conn.expect(1, amqp.QUEUE_DELETE_OK)


def queue_total(warren):
    return warren.api("GET", "/api/overview").json()["object_totals"]["queues"]


def test_many_queues_and_the_vhost_queue_limit(warren):
    n = size(20_000, 100_000)
    port = warren.amqp_port
    names = [f"hostile.many.{i}" for i in range(n)]

    # A small publish -> consume round trip, over and over, while the declares run.
    probes = []
    declaring = threading.Event()
    declaring.set()

    def probe():
        while declaring.is_set():
            probes.append(pika_roundtrip(port, 100))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    conn = amqp.Connection(port)
    conn.open_channel(1)
    start = time.monotonic()
    declare_all(conn, names, durable=False, auto_delete=False)
    declare_seconds = time.monotonic() - start
    declaring.clear()
    prober.join()

    # The probe's own queues are auto-delete; wait for the count to be ours alone.
    count = wait_for(lambda: (lambda c: c if c == n else None)(queue_total(warren)), 10,
                     what=f"the API to count {n} queues")
    rss_with_queues = warren.rss()
    r = warren.api("PUT", "/api/vhost-limits/%2F/max-queues", {"value": count})
    assert r.status_code in (201, 204), r.text
    try:
        conn.declare(1, "hostile.over")
        refusal = None
    except amqp.AmqpClosed as e:
        refusal = (e.kind, e.code, e.text, e.class_id, e.method_id)
        if e.kind == "channel":
            conn.send(amqp.channel_close_ok(1))
    # Redeclaring an existing queue is not a new queue: the limit does not apply.
    conn.open_channel(2)
    assert conn.declare(2, names[0])[0] == names[0]

    r = warren.api("DELETE", "/api/vhost-limits/%2F/max-queues")
    assert r.status_code == 204, r.text
    conn.declare(2, "hostile.over")
    conn.open_channel(1)  # closed by the refusal
    start = time.monotonic()
    delete_all(conn, names + ["hostile.over"])
    delete_seconds = time.monotonic() - start
    conn.close()
    remaining = queue_total(warren)

    report("many queues", queues=n, declare_s=f"{declare_seconds:.1f}",
           declares_per_s=f"{n / declare_seconds:.0f}", delete_s=f"{delete_seconds:.1f}",
           probes=len(probes), probe_max_s=f"{max(probes):.2f}", rss_with_queues=mib(rss_with_queues),
           rss_after_delete=mib(warren.rss()))

    assert max(probes) < PROBE_LIMIT_S, \
        f"a 100-message round trip took {max(probes):.2f} s during the declares"
    rabbitmq_refusal = ("channel", 406, "PRECONDITION_FAILED - cannot declare queue 'hostile.over': "
                        f"queue limit in vhost '/' ({n}) is reached", 50, 10)
    assert refusal == rabbitmq_refusal
    assert remaining == 0
