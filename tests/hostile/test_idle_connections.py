"""Thousands of idle connections (heartbeat 0, no channels): what each costs the broker in RSS,
and that all of it is given back when they close."""

import asyncio

from broker import wait_for
from common import mib, pika_roundtrip, report, size
from idle import idle_rss

# The target: 10,000 idle connections in well under 200 MiB.
PER_CONNECTION_LIMIT = 16 * 1024


def test_idle_connections_are_cheap_and_released(warren):
    n = size(2000, 10_000)
    pika_roundtrip(warren.amqp_port)
    baseline_fds = warren.fds()
    counted = {}

    def while_open():
        counted["api"] = wait_for(lambda: (lambda c: c if c == n else None)(warren.connection_count()),
                                  15, interval=0.2, what=f"the API to count {n} connections")
        counted["fds"] = warren.fds()

    f = asyncio.run(idle_rss(warren.amqp_port, warren.pid, n, while_open=while_open))
    wait_for(lambda: warren.connection_count() == 0, 5, what="the API to count 0 connections")
    fds_after = wait_for(lambda: (lambda c: c if c <= baseline_fds + 2 else None)(warren.fds()),
                         5, what="the broker's descriptors to return to baseline")
    rss_closed = warren.rss()
    report("idle connections", connections=n, rss_before=mib(f["rss_before"]),
           rss_open=mib(f["rss_after"]), per_connection=f"{f['per_connection'] / 1024:.1f}KiB",
           rss_after_close=mib(rss_closed), open_s=f"{f['open_seconds']:.1f}",
           close_s=f"{f['close_seconds']:.1f}", fds_baseline=baseline_fds,
           fds_open=counted["fds"], fds_after=fds_after)

    assert counted["fds"] >= baseline_fds + n
    assert f["per_connection"] < PER_CONNECTION_LIMIT, \
        f"{f['per_connection'] / 1024:.1f} KiB of RSS per idle connection (target < 16 KiB)"
