#!/usr/bin/env python3
"""Crash test: nothing confirmed is lost, nothing acked comes back, across kill -9.

Publishers (with publisher confirms) write persistent messages into durable queues while a
killer SIGKILLs the broker and starts it again several times; a consumer acks what it gets.
At the end every confirmed message must have been received at least once, and no message
whose ack the broker had certainly processed may have come back.

"Certainly processed": after acking, the consumer makes a synchronous call on the same
channel; frames on a channel are handled in order, so once the reply arrives the broker has
handled the ack. Acks still in flight when the broker dies may legitimately come back; those
are counted as duplicates.

With --ttl MS the durable queues also have a message TTL and dead-letter what expires into a
durable dead-letter queue, which the consumer reads too: a confirmed message must then arrive
from its queue or as a dead letter. Dead-lettering is at least once, so a message that expired
just before a kill may be dead-lettered again after the restart: those repeats are counted
apart (dead_letter_repeats), and "nothing acked comes back" is checked on the queues the
messages were published to.

Usage: crash_test.py WARREN_BINARY [--rounds 5] [--port 25790] [--ttl MS]
Prints the counts and exits non-zero on any loss or resurrected ack.
"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pika
import pika.exceptions

QUEUES = [f"crash.q{i}" for i in range(3)]
DEAD_LETTERS = "crash.dlq"
PERSISTENT = pika.BasicProperties(delivery_mode=2)
# The queues' arguments: with --ttl, a TTL and the dead-letter queue.
ARGUMENTS = {}


def declare_all(ch):
    for q in QUEUES:
        ch.queue_declare(q, durable=True, arguments=ARGUMENTS)
    if ARGUMENTS:
        ch.queue_declare(DEAD_LETTERS, durable=True)


class Broker:
    def __init__(self, binary, port, data_dir, log):
        self.binary, self.port, self.data_dir, self.log = binary, port, data_dir, log
        self.proc = None

    def start(self):
        env = dict(os.environ, WARREN_AMQP_PORT=str(self.port), WARREN_HTTP_PORT=str(self.port + 1),
                   WARREN_PROMETHEUS_PORT=str(self.port + 2), WARREN_DATA_DIR=self.data_dir,
                   WARREN_LOG="warn")
        self.proc = subprocess.Popen([self.binary], env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("broker did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


def connect(port):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, connection_attempts=1, socket_timeout=3, stack_timeout=5,
        blocked_connection_timeout=10, heartbeat=0))


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.confirmed = set()
        self.received = {}          # body -> times received
        self.acked_for_sure = set()  # from the queues they were published to
        self.resurrected = set()
        self.dead_lettered = set()   # received as a dead letter
        self.dead_letter_repeats = 0
        self.publishing = True
        self.done = False


def close_quietly(conn):
    try:
        if conn is not None and conn.is_open:
            conn.close()
    except Exception:  # the broker is gone; nothing to close
        pass


def publisher(port, state, start):
    n = start
    while state.publishing:
        conn = None
        try:
            conn = connect(port)
            ch = conn.channel()
            ch.confirm_delivery()
            declare_all(ch)
            while state.publishing:
                body = f"m-{n}".encode()
                n += 1
                ch.basic_publish("", QUEUES[n % len(QUEUES)], body, PERSISTENT, mandatory=True)
                with state.lock:
                    state.confirmed.add(body)
            conn.close()
        except (pika.exceptions.AMQPError, OSError):
            close_quietly(conn)
            time.sleep(0.05)  # the broker is down or restarting: this message is unconfirmed


def consumer(port, state):
    """Acks what arrives. With --ttl the published-to queues are read slowly (prefetch 1 on a
    channel of their own) so that most messages expire and are dead-lettered while the kills
    happen; the dead-letter queue is read at full speed on another channel."""
    while not state.done:
        conn = None
        try:
            conn = connect(port)
            plans = [(QUEUES, 1 if ARGUMENTS else 200)]
            if ARGUMENTS:
                plans.append(([DEAD_LETTERS], 200))
            channels = []
            for queues, prefetch in plans:
                ch = conn.channel()
                ch.basic_qos(prefetch_count=prefetch)
                declare_all(ch)
                pending = []

                def on_message(channel, method, properties, body, pending=pending):
                    dead = method.routing_key == DEAD_LETTERS
                    with state.lock:
                        if dead:
                            if body in state.dead_lettered:
                                state.dead_letter_repeats += 1
                            state.dead_lettered.add(body)
                        elif body in state.acked_for_sure:
                            state.resurrected.add(body)
                        state.received[body] = state.received.get(body, 0) + 1
                    pending.append((method.delivery_tag, body, dead))

                for q in queues:
                    ch.basic_consume(q, on_message)
                channels.append((ch, pending))
            while not state.done:
                conn.process_data_events(time_limit=0.05)
                if ARGUMENTS:
                    time.sleep(0.02)  # slow enough that most messages expire first
                for ch, pending in channels:
                    if not pending:
                        continue
                    ch.basic_ack(pending[-1][0], multiple=True)
                    ch.queue_declare(QUEUES[0], passive=True)  # sync: acks handled
                    with state.lock:
                        state.acked_for_sure.update(b for _, b, dead in pending if not dead)
                    pending.clear()
            conn.close()
        except (pika.exceptions.AMQPError, OSError):
            close_quietly(conn)
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--port", type=int, default=25790)
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument("--ttl", type=int, default=0,
                    help="message TTL (ms) of the queues, which dead-letter into crash.dlq")
    args = ap.parse_args()
    if args.ttl:
        ARGUMENTS.update({"x-message-ttl": args.ttl, "x-dead-letter-exchange": "",
                          "x-dead-letter-routing-key": DEAD_LETTERS})

    data_dir = tempfile.mkdtemp(prefix="warren-crash-")
    log = open(os.path.join(data_dir, "..", os.path.basename(data_dir) + ".log"), "ab")
    broker = Broker(args.binary, args.port, data_dir, log)
    broker.start()
    state = State()
    publishers = [threading.Thread(target=publisher, args=(args.port, state, i * 10_000_000), daemon=True)
                  for i in range(args.publishers)]
    consumers = [threading.Thread(target=consumer, args=(args.port, state), daemon=True)]
    for t in publishers + consumers:
        t.start()

    started = time.monotonic()
    for r in range(args.rounds):
        time.sleep(random.uniform(1.0, 3.0))
        with state.lock:
            before = len(state.confirmed)
        broker.kill()
        print(f"round {r + 1}: SIGKILL after {before} confirmed", flush=True)
        time.sleep(random.uniform(0.05, 0.5))
        broker.start()

    time.sleep(1.0)
    state.publishing = False
    # A publish in progress may still be confirmed: wait for the publishers to finish.
    for t in publishers:
        t.join(timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with state.lock:
            missing = state.confirmed - state.received.keys()
        if not missing:
            break
        time.sleep(0.2)
    state.done = True
    for t in consumers:
        t.join(timeout=10)
    broker.stop()

    with state.lock:
        confirmed = len(state.confirmed)
        lost = len(state.confirmed - state.received.keys())
        received = len(state.received)
        duplicates = sum(c - 1 for c in state.received.values())
        resurrected = len(state.resurrected)
        dead_lettered = len(state.dead_lettered)
        repeats = state.dead_letter_repeats
    ttl = f" (TTL {args.ttl} ms, dead_lettered={dead_lettered} dead_letter_repeats={repeats})" \
        if args.ttl else ""
    print(f"crash test: {args.rounds} kill -9 rounds in {time.monotonic() - started:.0f}s: "
          f"confirmed={confirmed} received={received} lost={lost} duplicates={duplicates} "
          f"acked_came_back={resurrected}{ttl}")
    if lost or resurrected or confirmed == 0:
        with state.lock:
            missing = sorted(state.confirmed - state.received.keys())[:20]
        print(f"crash test FAILED; data in {data_dir}; missing (first 20): {missing}", flush=True)
        return 1
    print("crash test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
