#!/usr/bin/env python3
"""Scenario (f): N persistent messages with a 1 s TTL into a durable queue whose dead-letter
exchange routes them to a durable dead-letter queue, no consumer. Measures how long until all
are dead-lettered (from the first publish), the broker's peak RSS (VmHWM) and its CPU per
message (utime+stime over the whole run). One broker per run; bench/ttl_dead_letter.sh runs
Warren and RabbitMQ 3.10 side by side.

  ttl_dead_letter.py --port P --pid PID --perf target/release/warren [--messages N] [--json F]
"""

import argparse
import json
import os
import subprocess
import time

import pika

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def peak_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--perf", required=True, help="the warren binary (for `warren perf`)")
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--ttl", type=int, default=1000)
    p.add_argument("--json")
    a = p.parse_args()

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", a.port, heartbeat=0))
    ch = conn.channel()
    for q in ("f-ttl-1", "f-dead"):
        ch.queue_delete(q)
    ch.queue_declare("f-dead", durable=True)
    ch.queue_declare("f-ttl-1", durable=True, arguments={
        "x-message-ttl": a.ttl, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "f-dead"})

    cpu0, t0 = cpu_seconds(a.pid), time.monotonic()
    subprocess.run([a.perf, "perf", "--port", str(a.port), "--predeclared", "-e", "",
                    "--queue-prefix", "f-ttl", "-y", "0", "-C", str(a.messages),
                    "--persistent", "--confirm", "1000"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    published = time.monotonic() - t0
    while True:
        dead = ch.queue_declare("f-dead", passive=True).method.message_count
        if dead >= a.messages:
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit(f"only {dead} of {a.messages} dead-lettered after 600 s")
        time.sleep(0.05)
    done = time.monotonic() - t0
    cpu = cpu_seconds(a.pid) - cpu0
    left = ch.queue_declare("f-ttl-1", passive=True).method.message_count
    result = {
        "messages": a.messages,
        "publish_s": round(published, 3),
        "publish_msg_s": round(a.messages / published),
        "all_dead_lettered_s": round(done, 3),
        "after_publish_s": round(done - published, 3),
        "left_in_queue": left,
        "peak_rss_mib": round(peak_rss_bytes(a.pid) / 2**20, 1),
        "cpu_s": round(cpu, 2),
        "cpu_us_per_msg": round(cpu * 1e6 / a.messages, 2),
    }
    for q in ("f-ttl-1", "f-dead"):
        ch.queue_delete(q)
    conn.close()
    print(json.dumps(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
