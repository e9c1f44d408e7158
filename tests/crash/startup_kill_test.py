#!/usr/bin/env python3
"""Kill -9 during startup: nothing stored is lost when the broker dies while it compacts its
definitions log and recovers its queues.

A broker starts, is given many durable queues, bindings and a persistent message in every
tenth queue (with confirms), deletes half of the queues again (so that the definitions log
holds records that compaction drops), and is killed with SIGKILL. Then, round after round, it
is started and killed again after a random delay within the time a start takes: some kills
land while the definitions log is being rewritten (a new file written, fsynced, renamed over
the old one), some while queue logs are recovered, some after the listeners are up. A last
start must find exactly the definitions and messages there were.

Usage: startup_kill_test.py WARREN_BINARY [--queues 4000] [--rounds 30] [--port 25795]
Prints the counts and exits non-zero on any difference.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pika
import requests

PERSISTENT = pika.BasicProperties(delivery_mode=2)


class Broker:
    def __init__(self, binary, port, data_dir, log):
        self.binary, self.port, self.data_dir, self.log = binary, port, data_dir, log
        self.proc = None

    def spawn(self):
        env = dict(os.environ, WARREN_AMQP_PORT=str(self.port), WARREN_HTTP_PORT=str(self.port + 1),
                   WARREN_PROMETHEUS_PORT="0", WARREN_DATA_DIR=self.data_dir, WARREN_LOG="warn",
                   WARREN_BIND="127.0.0.1")
        self.proc = subprocess.Popen([self.binary], env=env, stdout=self.log, stderr=self.log)

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def start(self):
        """Spawns the broker and returns how long it took to accept connections."""
        t0 = time.monotonic()
        self.spawn()
        while time.monotonic() - t0 < 60:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.proc.returncode}")
            if self.listening():
                return time.monotonic() - t0
            time.sleep(0.01)
        raise RuntimeError("the broker did not start in 60 s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def api(self, path):
        r = requests.get(f"http://127.0.0.1:{self.port + 1}{path}", auth=("guest", "guest"),
                         timeout=30)
        r.raise_for_status()
        return r.json()


def populate(port, n):
    """Declares n durable queues bound to amq.direct, a persistent message in every tenth,
    then deletes the odd ones. Returns {queue: messages} for what must remain."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    ch = conn.channel()
    ch.confirm_delivery()
    expected = {}
    for i in range(n):
        q = f"startup.q{i:06}"
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, "amq.direct", routing_key=q)
        if i % 10 == 0:
            ch.basic_publish("amq.direct", q, f"m{i}".encode(), PERSISTENT)
        expected[q] = 1 if i % 10 == 0 else 0
    for i in range(1, n, 2):
        q = f"startup.q{i:06}"
        ch.queue_delete(q)
        del expected[q]
    conn.close()
    return expected


def observed(broker):
    queues = broker.api("/api/queues?columns=name,messages,durable")
    bindings = broker.api("/api/bindings")
    found = {q["name"]: q.get("messages", 0) for q in queues if q["name"].startswith("startup.")}
    bound = {b["destination"] for b in bindings
             if b["source"] == "amq.direct" and b["destination"] == b["routing_key"]}
    return found, bound


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--queues", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--port", type=int, default=25795)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    tmp = tempfile.mkdtemp(prefix="warren-startup-kill.")
    data = os.path.join(tmp, "data")
    log_path = os.path.join(tmp, "warren.log")
    failures = []
    with open(log_path, "ab") as log:
        broker = Broker(args.binary, args.port, data, log)
        broker.start()
        expected = populate(args.port, args.queues)
        broker.kill()

        starts, before_listening = [], 0
        startup = broker.start()
        broker.kill()
        for _ in range(args.rounds):
            delay = rng.uniform(0, startup * 1.2)
            broker.spawn()
            time.sleep(delay)
            if not broker.listening():
                before_listening += 1
            broker.kill()
            if os.path.exists(os.path.join(data, "definitions.tmp")):
                starts.append("tmp")
        startup_last = broker.start()
        try:
            found, bound = observed(broker)
        finally:
            broker.stop()

    lost = sorted(set(expected) - set(found))
    invented = sorted(set(found) - set(expected))
    wrong_counts = sorted(q for q in expected if q in found and found[q] != expected[q])
    unbound = sorted(set(expected) - bound)
    print(f"startup kill test (seed {seed}): {len(expected)} queues, "
          f"{sum(expected.values())} messages; start took {startup:.2f} s, last {startup_last:.2f} s; "
          f"{args.rounds} kills, {before_listening} before the listener was up, "
          f"{len(starts)} left a half-written compaction behind")
    print(f"  lost queues {len(lost)}, resurrected queues {len(invented)}, "
          f"wrong message counts {len(wrong_counts)}, lost bindings {len(unbound)}")
    for what, names in (("lost", lost), ("resurrected", invented), ("wrong count", wrong_counts),
                        ("unbound", unbound)):
        if names:
            failures.append(f"{what}: {names[:5]}")
    if failures:
        print("FAILED: " + "; ".join(failures) + f" (log {log_path})")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
