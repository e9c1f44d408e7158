"""A consumer with no prefetch limit that stops reading its socket, while a producer floods its
queue: the broker must not buffer the flood in RAM for it, and other clients must keep going."""

import threading
import time

import amqp
from broker import wait_for
from common import mib, pika_roundtrip, report, size

QUEUE = "hostile.stuck"
BODY = b"m" * 100
# One pre-built run of publishes, sent over and over: the producer then costs next to no
# Python time (sendall releases the GIL) and the probe measures the broker, not this process.
BATCH = 1000
# The queue keeps 64k messages / 16 MiB of its head in RAM and pages the rest to disk; the
# stuck consumer's window and the probe's traffic come on top. 150 MiB leaves room for
# allocator slack but not for a copy of the flood (100 MiB of frames at the full size).
RSS_GROWTH_LIMIT = 150 * 2**20
PROBE_MESSAGES = 5000
PROBE_LIMIT_S = 10.0


def test_non_reading_consumer_does_not_balloon_the_broker(warren):
    n = size(200_000, 1_000_000)
    port = warren.amqp_port
    quiet_probe = pika_roundtrip(port, PROBE_MESSAGES)

    # A consumer with prefetch 0 (unlimited) and manual acks that never reads a byte, on a
    # small receive window: everything the broker sends it piles up on the broker's side.
    stuck = amqp.Connection(port, rcvbuf=4096)
    stuck.open_channel(1)
    stuck.declare(1, QUEUE)
    stuck.send(amqp.basic_qos(1, 0))
    stuck.expect(1, amqp.BASIC_QOS_OK)
    stuck.send(amqp.basic_consume(1, QUEUE, tag="stuck", no_ack=False))
    stuck.expect(1, amqp.BASIC_CONSUME_OK)
    rss_before = warren.rss()

    producer = amqp.Connection(port)
    producer.open_channel(1)
    batch = amqp.basic_publish(1, QUEUE, BODY) * BATCH
    flood = {}

    def total():
        q = warren.queue_info(QUEUE)
        return q.get("messages_ready", 0) + q.get("messages_unacknowledged", 0)

    def publish():
        try:
            for _ in range(n // BATCH):
                producer.send(batch)
        except Exception as e:  # reported by the main thread
            flood["error"] = e

    peak = {"rss": rss_before}
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak["rss"] = max(peak["rss"], warren.rss())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    producer.sock.settimeout(120)
    publisher = threading.Thread(target=publish, daemon=True)
    start = time.monotonic()
    publisher.start()

    # The flood lasts until the broker has queued all of it (the kernel takes the producer's
    # bytes long before that). Meanwhile another client makes publish -> consume round trips
    # on a queue of its own; at least one, and each must finish in reasonable time.
    probes = []
    while True:
        probes.append(pika_roundtrip(port, PROBE_MESSAGES))
        if "error" in flood or total() == n:
            break
    publisher.join()
    assert "error" not in flood, f"the producer failed: {flood['error']!r}"
    wait_for(lambda: total() == n, 60, interval=0.1, what=f"{n} messages in {QUEUE}")
    flood["seconds"] = time.monotonic() - start
    sampling.set()
    sampler.join()
    peak_growth = peak["rss"] - rss_before
    unacked = warren.queue_info(QUEUE).get("messages_unacknowledged")

    # The consumer goes away without reading; what it was sent must go back to the queue.
    stuck.abort()
    wait_for(lambda: (lambda q: q.get("consumers") == 0 and q.get("messages_ready") == n)(
        warren.queue_info(QUEUE)), 30, interval=0.2, what="the stuck consumer's messages back in the queue")
    check = amqp.Connection(port)
    check.open_channel(1)
    _, passive_count, consumers = check.declare(1, QUEUE, passive=True)
    check.close()
    producer.close()

    report("stuck consumer", messages=n, flood_s=f"{flood['seconds']:.1f}",
           rate=f"{n / flood['seconds']:.0f}/s", rss_before=mib(rss_before),
           rss_peak_growth=mib(peak_growth), unacked_at_stuck_consumer=unacked,
           probe_quiet_s=f"{quiet_probe:.2f}", probes_during_flood=len(probes),
           probe_max_s=f"{max(probes):.2f}", passive_count=passive_count)

    assert peak_growth < RSS_GROWTH_LIMIT, f"RSS grew by {mib(peak_growth)} during the flood"
    assert max(probes) < PROBE_LIMIT_S, (f"{PROBE_MESSAGES}-message round trips took up to "
                                         f"{max(probes):.1f} s during the flood (quiet: {quiet_probe:.2f} s)")
    assert (passive_count, consumers) == (n, 0)
