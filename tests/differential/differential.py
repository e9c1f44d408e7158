#!/usr/bin/env python3
"""Differential runner: the same random AMQP operation sequences against Warren and RabbitMQ
3.10, with every answer compared (reply codes and texts, channel vs connection errors, message
counts, delivered bodies and flags, confirms and returns).

Each sequence is generated from its seed before it runs, independently of the answers, so both
brokers get exactly the same operations; a divergence is reported with the seed, the operation
and both answers, and the rest of that sequence is skipped (its state may differ from then on).

    differential.py --warren-port 5690 --rabbitmq-port 5673 --sequences 200 --ops 60
    differential.py ... --seed 17 --verbose        # replay one sequence, printing every step

Exit status: 0 when no divergence outside KNOWN_DIVERGENCES was found, 1 otherwise.
"""

import argparse
import random
import sys
import time

import pika
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    NackError,
    UnroutableError,
    AMQPConnectionError,
    ChannelWrongStateError,
    StreamLostError,
)

QUEUES = ["diff.q0", "diff.q1", "diff.q2"]
EXCHANGES = ["diff.x0", "diff.x1"]
EXCHANGE_TYPES = ["direct", "fanout", "topic", "headers", "nonsense"]

# Queue arguments drawn for declares: valid ones, invalid ones, other queue types.
ARGUMENTS = [
    {},
    {},
    {},
    {"x-max-length": 10},
    {"x-max-length": -1},
    {"x-message-ttl": "60000"},
    {"x-message-ttl": 60000},
    {"x-expires": 0},
    {"x-max-priority": 300},
    {"x-max-priority": 5},
    {"x-max-priority": 5},
    {"x-max-priority": 0},
    {"x-max-priority": 10, "x-max-length": 3},
    {"x-overflow": "drop-tail"},
    {"x-overflow": "reject-publish"},
    {"x-queue-mode": "lazy"},
    {"x-queue-mode": "eager"},
    {"x-dead-letter-routing-key": "k"},
    {"x-dead-letter-exchange": "diff.dlx", "x-dead-letter-routing-key": "k"},
    {"x-single-active-consumer": 1},
    {"x-queue-type": "classic"},
    {"x-queue-type": "fancy"},
    {"x-queue-type": "quorum", "x-max-priority": 5},
    {"x-delivery-limit": 5},
]

# Divergences that are understood and kept on purpose: (operation kind, reason).
KNOWN_DIVERGENCES = {
    # Warren has no quorum or stream queues yet: 540 instead of a created queue.
    "quorum-or-stream",
}


def generate(seed, n_ops):
    """The operations of one sequence: tuples of a kind and its parameters."""
    rng = random.Random(seed)
    ops = []
    for _ in range(n_ops):
        q = rng.choice(QUEUES)
        x = rng.choice(EXCHANGES)
        kind = rng.choices(
            [
                "declare", "declare_passive", "delete", "purge", "bind", "unbind",
                "exchange_declare", "exchange_delete", "publish", "get", "ack", "nack",
                "reject", "qos", "confirm", "tx", "commit", "rollback", "recover",
                "consume", "cancel", "close_channel",
            ],
            weights=[10, 3, 3, 3, 5, 3, 5, 2, 20, 8, 6, 3, 3, 2, 3, 2, 2, 1, 2, 3, 2, 1],
        )[0]
        if kind == "declare":
            ops.append((kind, q, rng.random() < 0.15, rng.random() < 0.2,
                        rng.random() < 0.1, dict(rng.choice(ARGUMENTS))))
        elif kind in ("declare_passive", "purge", "get", "consume"):
            ops.append((kind, q, rng.random() < 0.5))
        elif kind == "delete":
            ops.append((kind, q, rng.random() < 0.3, rng.random() < 0.3))
        elif kind in ("bind", "unbind"):
            ops.append((kind, q, rng.choice(EXCHANGES + ["amq.direct", ""]),
                        rng.choice(["k", "a.b", "#"])))
        elif kind == "exchange_declare":
            ops.append((kind, x, rng.choice(EXCHANGE_TYPES), rng.random() < 0.2))
        elif kind == "exchange_delete":
            ops.append((kind, x, rng.random() < 0.5))
        elif kind == "publish":
            ops.append((kind, rng.choice(EXCHANGES + ["", "amq.fanout", "diff.none"]),
                        rng.choice(QUEUES + ["k", "a.b"]), rng.random() < 0.3,
                        rng.randrange(1_000_000),
                        rng.choice([None, None, None, 0, 1, 5, 9, 200])))
        elif kind in ("ack", "nack", "reject"):
            ops.append((kind, rng.choice([1, 1, 2, 3, 1000]), rng.random() < 0.3,
                        rng.random() < 0.5))
        elif kind == "qos":
            ops.append((kind, rng.choice([0, 1, 2, 10]), rng.random() < 0.2))
        else:
            ops.append((kind,))
    return ops


class Session:
    """One broker: a connection and a channel that is reopened whenever the broker closes it.
    Every operation returns a comparable answer."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.ch = None
        self.delivery_tags = []  # tags of unacked deliveries, oldest first
        self.confirming = False

    def connect(self):
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, heartbeat=0,
            credentials=pika.PlainCredentials("guest", "guest"),
            blocked_connection_timeout=10)
        self.conn = pika.BlockingConnection(params)
        self.open_channel()

    def open_channel(self):
        self.ch = self.conn.channel()
        self.delivery_tags = []
        self.confirming = False

    def reset(self):
        """A clean slate: the pools of names deleted on a fresh connection."""
        self.close()
        self.connect()
        for q in QUEUES + ["diff.dlx-q"]:
            self.ch.queue_delete(q)
        for x in EXCHANGES:
            self.ch.exchange_delete(x)

    def close(self):
        try:
            if self.conn and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = None

    def run(self, op):
        if self.conn is None or not self.conn.is_open:
            self.connect()
        elif not self.ch.is_open:
            self.open_channel()
        try:
            return ("ok",) + tuple(self._run(op))
        except ChannelClosedByBroker as e:
            return ("channel.close", e.reply_code, e.reply_text)
        except ConnectionClosedByBroker as e:
            self.conn = None
            return ("connection.close", e.reply_code, e.reply_text)
        except NackError:
            return ("nack",)
        except UnroutableError:
            return ("returned",)
        except (AMQPConnectionError, StreamLostError, ChannelWrongStateError) as e:
            self.conn = None
            return ("connection lost", type(e).__name__)

    def _drain(self, seen):
        """Lets consumer deliveries arrive: at least 300 ms, then until 100 ms pass without one
        (1 s at most)."""
        start = time.time()
        deadline = start + 1.0
        count = -1
        while (count != len(seen) or time.time() < start + 0.3) and time.time() < deadline:
            count = len(seen)
            self.conn.process_data_events(time_limit=0.1)

    def _run(self, op):
        kind, *a = op
        ch = self.ch
        if kind == "declare":
            q, durable, exclusive, auto_delete, args = a
            r = ch.queue_declare(q, durable=durable, exclusive=exclusive,
                                 auto_delete=auto_delete, arguments=args)
            return (r.method.message_count,)
        if kind == "declare_passive":
            r = ch.queue_declare(a[0], passive=True)
            return (r.method.message_count,)
        if kind == "delete":
            r = ch.queue_delete(a[0], if_unused=a[1], if_empty=a[2])
            return (r.method.message_count,)
        if kind == "purge":
            r = ch.queue_purge(a[0])
            return (r.method.message_count,)
        if kind == "bind":
            ch.queue_bind(a[0], a[1], routing_key=a[2])
            return ()
        if kind == "unbind":
            ch.queue_unbind(a[0], a[1], routing_key=a[2])
            return ()
        if kind == "exchange_declare":
            ch.exchange_declare(a[0], exchange_type=a[1], durable=a[2])
            return ()
        if kind == "exchange_delete":
            ch.exchange_delete(a[0], if_unused=a[1])
            return ()
        if kind == "publish":
            exchange, key, mandatory, body, priority = a
            props = pika.BasicProperties(priority=priority) if priority is not None else None
            ch.basic_publish(exchange, key, str(body).encode(), properties=props,
                             mandatory=mandatory)
            if not self.confirming:
                # A round trip, so that an asynchronous error (404) shows up now.
                self._sync()
            return ()
        if kind == "get":
            method, props, body = ch.basic_get(a[0], auto_ack=a[1])
            if method is None:
                return ("empty",)
            if not a[1]:
                self.delivery_tags.append(method.delivery_tag)
            return (body.decode(), method.redelivered, method.message_count)
        if kind in ("ack", "nack", "reject"):
            which, multiple, requeue = a
            if which == 1000 or not self.delivery_tags:
                tag = 1000
            else:
                tag = self.delivery_tags[min(which, len(self.delivery_tags)) - 1]
            if kind == "ack":
                ch.basic_ack(tag, multiple=multiple)
            elif kind == "nack":
                ch.basic_nack(tag, multiple=multiple, requeue=requeue)
            else:
                ch.basic_reject(tag, requeue=requeue)
            if multiple and kind != "reject":
                self.delivery_tags = [t for t in self.delivery_tags if t > tag]
            else:
                self.delivery_tags = [t for t in self.delivery_tags if t != tag]
            self._sync()
            return ()
        if kind == "qos":
            ch.basic_qos(prefetch_count=a[0], global_qos=a[1])
            return ()
        if kind == "confirm":
            ch.confirm_delivery()
            self.confirming = True
            return ()
        if kind == "tx":
            ch.tx_select()
            return ()
        if kind == "commit":
            ch.tx_commit()
            return ()
        if kind == "rollback":
            ch.tx_rollback()
            return ()
        if kind == "recover":
            ch.basic_recover(requeue=True)
            self.delivery_tags = []
            return ()
        if kind == "consume":
            got = []
            tag = ch.basic_consume(a[0], lambda c, m, p, b: got.append(
                (b.decode(), m.redelivered)), auto_ack=True)
            self._drain(got)
            ch.basic_cancel(tag)
            return (sorted(got),)
        if kind == "cancel":
            ch.basic_cancel("no-such-consumer")
            return ()
        if kind == "close_channel":
            ch.close()
            self.open_channel()
            return ()
        raise ValueError(kind)

    def _sync(self):
        # A passive declare of the default exchange: a round trip that changes nothing.
        self.ch.exchange_declare("amq.direct", passive=True)


def known(op, a, b):
    if op[0] == "declare" and op[5].get("x-queue-type") in ("quorum", "stream"):
        return "quorum-or-stream" in KNOWN_DIVERGENCES and (
            a[:2] == ("connection.close", 540) or b[:1] == ("ok",))
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warren-port", type=int, required=True)
    p.add_argument("--rabbitmq-port", type=int, required=True)
    p.add_argument("--sequences", type=int, default=50)
    p.add_argument("--ops", type=int, default=40)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--seed", type=int)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()

    seeds = [args.seed] if args.seed is not None else range(
        args.first_seed, args.first_seed + args.sequences)
    warren, rabbit = Session(args.warren_port), Session(args.rabbitmq_port)
    divergences, known_count, ops_run = [], 0, 0
    started = time.time()
    for seed in seeds:
        warren.reset()
        rabbit.reset()
        for i, op in enumerate(generate(seed, args.ops)):
            a, b = warren.run(op), rabbit.run(op)
            ops_run += 1
            if args.verbose:
                print(f"{seed}:{i} {op}\n    warren   {a}\n    rabbitmq {b}")
            if a == b:
                continue
            if known(op, a, b):
                known_count += 1
            else:
                divergences.append((seed, i, op, a, b))
            break
    warren.close()
    rabbit.close()
    for seed, i, op, a, b in divergences:
        print(f"DIVERGENCE seed {seed} op {i}: {op}\n    warren   {a}\n    rabbitmq {b}")
    print(f"differential: {len(list(seeds))} sequences, {ops_run} operations, "
          f"{len(divergences)} divergences, {known_count} known, "
          f"{time.time() - started:.0f} s")
    return 1 if divergences else 0


if __name__ == "__main__":
    sys.exit(main())
