"""Sizes, reporting and the well-behaved pika client the hostile tests measure the broker with."""

import os
import time
import uuid

import pika

FULL = os.environ.get("HOSTILE_FULL") == "1"


def size(short, full):
    """The short-form figure, or the full one under HOSTILE_FULL=1."""
    return full if FULL else short


def report(name, **figures):
    """Prints a test's measured figures on one line (visible with -s); also appends it to the
    file named by $HOSTILE_REPORT, so a run's figures can be collected without -s."""
    line = f"[hostile] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    path = os.environ.get("HOSTILE_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def mib(n):
    return f"{n / 2**20:.1f}MiB"


def pika_connection(port):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, heartbeat=0, blocked_connection_timeout=60, socket_timeout=10))


def pika_roundtrip(port, n=1, body=b"x" * 100, timeout=60):
    """A normal client's whole life: connect, declare a queue of its own, publish n messages,
    consume them all, disconnect. Returns the seconds it took; raises if a message is
    missing after `timeout`."""
    start = time.monotonic()
    conn = pika_connection(port)
    try:
        ch = conn.channel()
        queue = f"probe.{uuid.uuid4().hex[:12]}"
        ch.queue_declare(queue, auto_delete=True)
        for _ in range(n):
            ch.basic_publish("", queue, body)
        got = 0
        deadline = start + timeout
        for method, _props, _body in ch.consume(queue, auto_ack=True, inactivity_timeout=1):
            if method is not None:
                got += 1
                if got == n:
                    break
            elif time.monotonic() > deadline:
                raise AssertionError(f"probe got {got} of {n} messages in {timeout} s")
        ch.cancel()
    finally:
        if conn.is_open:
            conn.close()
    return time.monotonic() - start
