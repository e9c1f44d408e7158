"""Slowloris on the handshake: a thousand sockets that start the handshake and stall must not
slow anyone else down, and must be closed once --handshake-timeout passes."""

import asyncio
import time

import pytest

import amqp
from broker import wait_for
from common import pika_roundtrip, report, size

HANDSHAKE_TIMEOUT = 2.0
# Warren checks the deadline before the protocol header exactly, after it on its once-a-second
# tick; the rest is scheduling slack on a loaded 2-core machine.
CLOSE_SLACK = 3.0


async def stall(port, mode):
    """Connects and stalls: "partial-header" sends 3 of the 8 header bytes; "no-start-ok"
    sends the whole header, reads connection.start and never answers it. Returns the times
    before and after connecting: the broker's clock for this socket starts between them."""
    connecting = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    if mode == "partial-header":
        writer.write(amqp.PROTOCOL_HEADER[:3])
    else:
        writer.write(amqp.PROTOCOL_HEADER)
        await amqp.expect_async(reader, amqp.CONNECTION_START)
    return reader, writer, connecting, opened


async def closed_after(reader, writer, connecting, opened, limit):
    """How long the broker kept the socket open, as (at least, at most) seconds, and how it
    closed it ("eof" or "reset"); (None, None, "open") if it was still open `limit` seconds
    after connecting."""
    try:
        while await asyncio.wait_for(reader.read(65536), limit - (time.monotonic() - opened)):
            pass
        how = "eof"
    except (ConnectionResetError, BrokenPipeError):
        how = "reset"
    except asyncio.TimeoutError:
        return None, None, "open"
    finally:
        writer.transport.abort()
    now = time.monotonic()
    return now - opened, now - connecting, how


@pytest.mark.parametrize("mode", ["partial-header", "no-start-ok"])
def test_stalled_handshakes_are_closed_and_do_not_block_others(start_warren, mode):
    n = size(1000, 1000)
    warren = start_warren("--handshake-timeout", str(int(HANDSHAKE_TIMEOUT * 1000)))
    port = warren.amqp_port
    pika_roundtrip(port)  # whatever the broker sets up on first use is part of the baseline
    baseline_fds = warren.fds()

    async def scenario():
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        stalled = []
        # A batch at a time, each accepted by the broker (its descriptor count says so) before
        # the next: nothing answers a partial header, so without this the connects would
        # outrun the accept loop and overflow the listen backlog (see amqp.CONCURRENCY),
        # and the SYN retransmits would spread the stalls over longer than the timeout.
        for i in range(0, n, amqp.CONCURRENCY):
            batch = min(amqp.CONCURRENCY, n - i)
            stalled += await asyncio.gather(*(stall(port, mode) for _ in range(batch)))
            held = baseline_fds + len(stalled)
            await loop.run_in_executor(None, lambda: wait_for(
                lambda: warren.fds() >= held, HANDSHAKE_TIMEOUT / 2, interval=0.005,
                what=f"the broker to hold {len(stalled)} stalled sockets"))
        open_seconds = time.monotonic() - start
        watchers = [asyncio.ensure_future(closed_after(*s, HANDSHAKE_TIMEOUT + CLOSE_SLACK))
                    for s in stalled]
        # The broker holds them all, and a normal client still gets through at once (in a
        # thread: pika blocks, and the watchers must keep timing the closes meanwhile).
        rtt = await loop.run_in_executor(None, pika_roundtrip, port)
        still_stalled = sum(not w.done() for w in watchers)
        results = await asyncio.gather(*watchers)
        return open_seconds, rtt, still_stalled, results

    open_seconds, rtt, still_stalled, results = asyncio.run(scenario())
    shortest = min((at_most for _, at_most, how in results if how != "open"), default=None)
    longest = max((at_least for at_least, _, how in results if how != "open"), default=None)
    hows = {how: sum(1 for *_, h in results if h == how) for how in ("eof", "reset", "open")}
    fds_after = wait_for(lambda: (lambda f: f if f <= baseline_fds + 2 else None)(warren.fds()),
                         5, what="the broker's descriptors to return to baseline")
    report(f"stalled handshakes ({mode})", stalled=n, open_s=f"{open_seconds:.2f}",
           pika_roundtrip_s=f"{rtt:.3f}", stalled_during_roundtrip=still_stalled,
           closed_after_min_s=shortest and f"{shortest:.2f}", closed_after_max_s=longest and f"{longest:.2f}",
           closes=hows, fds_baseline=baseline_fds, fds_after=fds_after)

    assert rtt < 1.0, f"a normal client took {rtt:.2f} s for one round trip among {n} stalled handshakes"
    # The round trip really ran while the stalled sockets were held (not after they were shed).
    assert still_stalled == n
    assert hows["open"] == 0, \
        f"{hows['open']} stalled sockets still open {HANDSHAKE_TIMEOUT + CLOSE_SLACK} s after connecting"
    # Closed by the timeout, not before it.
    assert shortest >= HANDSHAKE_TIMEOUT
    assert hows["eof"] == n, f"expected a clean EOF on every stalled socket: {hows}"
