"""Connection churn: connect, handshake, close, 500 times a second. Nothing may leak (descriptors,
registry entries, memory) and the broker must keep up."""

import asyncio
import itertools

import amqp
from broker import wait_for
from common import mib, pika_roundtrip, report, size

RATE = 500
WORKERS = 16
# Memory is compared from the end of the warm-up on: allocator pools, the registry's maps
# and the like reach their working size in the first seconds.
RSS_GROWTH_LIMIT = 4 * 2**20


async def churn(port, rate, duration, warmup, on_warm):
    """Paced open+handshake+close cycles: cycle i starts at i / rate seconds (or as soon as a
    worker is free, if the broker falls behind). Calls on_warm() (in a thread) once, `warmup`
    seconds in. Returns (cycles done, errors, seconds)."""
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    next_cycle = itertools.count()
    errors = []
    done = 0
    start = loop.time()

    async def worker():
        nonlocal done
        while (i := next(next_cycle)) < total:
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                conn = await asyncio.wait_for(amqp.open_async(port), 10)
                await asyncio.wait_for(conn.close(), 10)
                done += 1
            except Exception as e:  # counted and reported; any error fails the test
                errors.append(repr(e))

    async def warm():
        await asyncio.sleep(warmup)
        await loop.run_in_executor(None, on_warm)

    warm_task = asyncio.ensure_future(warm())
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = loop.time() - start
    await warm_task
    return done, errors, elapsed


def test_connection_churn_leaks_nothing(warren):
    duration = size(10, 60)
    warmup = size(3, 10)
    pika_roundtrip(warren.amqp_port)
    baseline_fds = warren.fds()
    rss_start = warren.rss()
    warm = {}

    def on_warm():
        warm["rss"] = warren.rss()

    done, errors, elapsed = asyncio.run(churn(warren.amqp_port, RATE, duration, warmup, on_warm))
    rss_end = warren.rss()
    wait_for(lambda: warren.connection_count() == 0, 2, what="the API to count 0 connections")
    fds_after = wait_for(lambda: (lambda c: c if c <= baseline_fds + 3 else None)(warren.fds()),
                         5, what="the broker's descriptors to return to baseline")
    rss_settled = warren.rss()
    achieved = done / elapsed
    report("churn", target_rate=RATE, seconds=f"{elapsed:.1f}", cycles=done,
           rate=f"{achieved:.0f}/s", errors=len(errors), rss_start=mib(rss_start),
           rss_after_warmup=mib(warm["rss"]), rss_end=mib(rss_end),
           growth_after_warmup=mib(rss_end - warm["rss"]), fds_baseline=baseline_fds,
           fds_after=fds_after)

    assert not errors, f"{len(errors)} cycles failed; first: {errors[0]}"
    assert achieved >= 0.9 * RATE, f"only {achieved:.0f} connections/s of {RATE}"
    assert max(rss_end, rss_settled) - warm["rss"] < RSS_GROWTH_LIMIT, \
        f"RSS grew by {mib(rss_end - warm['rss'])} after the warm-up"
