"""Helpers for bench/api.sh: declare and delete the benchmark's queues over AMQP (pika), wait
for a management API to list them, time API requests (Warren and RabbitMQ alternately), and
poll the API while `warren perf` runs.

  api_queues.py declare AMQP_PORT COUNT PUBLISH_EVERY   queues api-bench-00001..; one message
                                                         to every PUBLISH_EVERY-th queue
  api_queues.py delete AMQP_PORT COUNT
  api_queues.py await HTTP_PORT COUNT                    until GET /api/queues lists COUNT
  api_queues.py time OUT.json N COUNT NAME=HTTP_PORT...  N rounds of each request, brokers
                                                         alternating within every round
  api_queues.py poll HTTP_PORT SECONDS                   overview, queues, connections, 1/s

The same code declares the queues on both brokers, so they see the same requests.
"""

import base64
import http.client
import json
import sys
import time

import pika

PREFIX = "api-bench-"
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()
REQUESTS = [
    ("all", "/api/queues"),
    ("page", "/api/queues?page=1&page_size=100&sort=name"),
]


def amqp(port):
    params = pika.ConnectionParameters("127.0.0.1", int(port), "/",
                                       pika.PlainCredentials("guest", "guest"), heartbeat=0)
    return pika.BlockingConnection(params)


def declare(port, count, every):
    conn = amqp(port)
    ch = conn.channel()
    t0 = time.monotonic()
    for i in range(1, count + 1):
        ch.queue_declare(f"{PREFIX}{i:05d}")
    ch.confirm_delivery()
    published = 0
    for i in range(1, count + 1, every):
        ch.basic_publish("", f"{PREFIX}{i:05d}", b"x" * 100)
        published += 1
    conn.close()
    print(f"declared {count} queues and published {published} messages in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)


def delete(port, count):
    conn = amqp(port)
    ch = conn.channel()
    for i in range(1, count + 1):
        ch.queue_delete(f"{PREFIX}{i:05d}")
    conn.close()


def get(port, path, timeout=120):
    """(seconds, status, body) of one GET on a fresh connection, as a browser's first
    request or a monitoring scrape makes it."""
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    t0 = time.perf_counter()
    c.request("GET", path, headers={"Authorization": AUTH})
    r = c.getresponse()
    body = r.read()
    elapsed = time.perf_counter() - t0
    c.close()
    return elapsed, r.status, body


def listed(port):
    _, status, body = get(port, "/api/queues?page=1&page_size=1&name=" + PREFIX)
    return json.loads(body)["filtered_count"] if status == 200 else -1


def wait_listed(port, count, deadline_s=300):
    deadline = time.monotonic() + deadline_s
    while (n := listed(port)) < count:
        if time.monotonic() > deadline:
            sys.exit(f"only {n} of {count} queues listed on :{port}")
        time.sleep(1)


def check(name, kind, status, body, count):
    if status != 200:
        sys.exit(f"{name} {kind}: HTTP {status}: {body[:200]!r}")
    doc = json.loads(body)
    items = doc if kind == "all" else doc["items"]
    want = count if kind == "all" else 100
    if len(items) < want:
        sys.exit(f"{name} {kind}: {len(items)} items, expected {want}")
    if kind == "page" and not items[0]["name"] <= items[-1]["name"]:
        sys.exit(f"{name} page: not sorted by name")
    return len(body)


def time_requests(out, rounds, brokers, count):
    # One untimed request each first: RabbitMQ's first listing warms caches, so does ours.
    for _, port in brokers:
        for _, path in REQUESTS:
            get(port, path)
    samples = {name: {kind: [] for kind, _ in REQUESTS} for name, _ in brokers}
    sizes = {}
    for r in range(rounds):
        for kind, path in REQUESTS:
            for name, port in brokers:
                elapsed, status, body = get(port, path)
                sizes[(name, kind)] = check(name, kind, status, body, count)
                samples[name][kind].append(elapsed)
        print(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {k} {samples[n][k][-1] * 1000:.1f} ms" for n, _ in brokers for k, _ in REQUESTS),
            file=sys.stderr)
    json.dump({"samples_s": samples,
               "response_bytes": {f"{n} {k}": v for (n, k), v in sizes.items()},
               "requests": dict(REQUESTS)}, open(out, "w"), indent=1)


def poll(port, seconds):
    end = time.monotonic() + float(seconds)
    worst = 0.0
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        for path in ("/api/overview", "/api/queues", "/api/connections"):
            elapsed, status, _ = get(port, path)
            worst = max(worst, elapsed)
            n += 1
            if status != 200:
                sys.exit(f"poll {path}: HTTP {status}")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    print(f"polled {n} requests, slowest {worst * 1000:.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "declare":
        declare(args[0], int(args[1]), int(args[2]))
    elif cmd == "delete":
        delete(args[0], int(args[1]))
    elif cmd == "await":
        wait_listed(args[0], int(args[1]))
    elif cmd == "time":
        out, rounds, count = args[0], int(args[1]), int(args[2])
        brokers = [tuple(a.split("=")) for a in args[3:]]
        time_requests(out, rounds, brokers, count)
    elif cmd == "poll":
        poll(args[0], args[1])
    else:
        sys.exit(__doc__)
