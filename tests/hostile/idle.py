#!/usr/bin/env python3
"""Memory per idle AMQP connection: opens N connections (whole handshake, heartbeat 0, no
channels), reads the broker's RSS before and after, closes them.

Used by test_idle_connections.py and by bench/idle_connections.sh, against Warren or RabbitMQ:

    idle.py --port 5672 --pid PID [--connections 10000] [--label NAME]   # a running broker
    idle.py --warren BIN [--connections 10000]      # starts a Warren of its own (free ports)

prints one line: `NAME: N idle connections, RSS before X MiB, after Y MiB, Z KiB per connection`.
"""

import argparse
import asyncio
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import amqp  # noqa: E402
from broker import Warren, rss_bytes, settled_rss  # noqa: E402


async def idle_rss(port, pid, n, *, while_open=None, concurrency=amqp.CONCURRENCY):
    """Opens n idle connections to `port`, measures the RSS of `pid` (settled) before and
    after, calls while_open() (blocking; run in a thread) while they are all open, then closes
    them cleanly. Returns the figures as a dict."""
    loop = asyncio.get_running_loop()
    before = await loop.run_in_executor(None, settled_rss, pid)
    start = time.monotonic()
    conns = await amqp.open_many(port, n, concurrency=concurrency)
    opened = time.monotonic() - start
    try:
        if while_open is not None:
            await loop.run_in_executor(None, while_open)
        after = await loop.run_in_executor(None, settled_rss, pid)
    finally:
        start = time.monotonic()
        await amqp.close_many(conns, concurrency=concurrency)
        closed = time.monotonic() - start
    return {
        "connections": n,
        "rss_before": before,
        "rss_after": after,
        "per_connection": (after - before) / n,
        "open_seconds": opened,
        "close_seconds": closed,
    }


def describe(label, f):
    return (f"{label}: {f['connections']} idle connections, RSS before {f['rss_before'] / 2**20:.1f} MiB, "
            f"after {f['rss_after'] / 2**20:.1f} MiB, {f['per_connection'] / 1024:.1f} KiB per connection "
            f"(opened in {f['open_seconds']:.1f} s, closed in {f['close_seconds']:.1f} s)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, help="the broker's AMQP port")
    p.add_argument("--pid", type=int, help="the broker's process, whose RSS is read")
    p.add_argument("--warren", metavar="BIN", help="start this Warren binary (fresh data dir) and measure it")
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--label", help="name printed with the figures (default: warren or broker)")
    args = p.parse_args()
    if not args.warren and (args.port is None or args.pid is None):
        p.error("give --port and --pid, or --warren")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections + 100 > hard:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for {args.connections} connections")
    warren = Warren(binary=args.warren) if args.warren else None
    try:
        port, pid = (warren.amqp_port, warren.pid) if warren else (args.port, args.pid)
        rss_bytes(pid)  # fail early on a wrong pid
        figures = asyncio.run(idle_rss(port, pid, args.connections))
        print(describe(args.label or ("warren" if warren else "broker"), figures), flush=True)
    finally:
        if warren:
            warren.stop()


if __name__ == "__main__":
    main()
