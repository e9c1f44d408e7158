"""Out of file descriptors: a broker held to 256 descriptors (prlimit, so it cannot raise its
own soft limit) is filled with connections while more keep knocking. accept() then fails with
EMFILE and the pending connection stays in the backlog, so a naive accept loop spins at 100%
CPU. The broker must idle instead, keep serving what it has, and accept again once
descriptors are free."""

import asyncio
import socket
import time

import amqp
from common import pika_connection, report

NOFILE = 256
HANDSHAKE_WAIT = 2.0
KNOCK_SECONDS = 3.0
CPU_LIMIT = 0.2  # of one core, while clients knock


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])


async def try_open(port):
    """A whole handshake, or None if the broker does not answer in HANDSHAKE_WAIT seconds
    (it cannot accept the connection); the socket is then left to wait in the backlog."""
    try:
        return await asyncio.wait_for(amqp.open_async(port), HANDSHAKE_WAIT)
    except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        return None


def test_descriptor_exhaustion(start_warren):
    warren = start_warren(prlimit_nofile=NOFILE)
    port = warren.amqp_port
    assert soft_nofile(warren.pid) == NOFILE

    # Opened first; must keep working throughout.
    existing = pika_connection(port)
    ech = existing.channel()
    ech.queue_declare("hostile.existing")

    async def scenario():
        loop = asyncio.get_running_loop()
        conns = []
        # Fill the broker, a batch at a time, until a batch is not served in full.
        while True:
            batch = await asyncio.gather(*(try_open(port) for _ in range(16)))
            conns += [c for c in batch if c]
            if not all(batch) or len(conns) > 2 * NOFILE:
                break
        served, fds_full = len(conns), warren.fds()

        # Keep knocking, on the AMQP port and on the HTTP API's, while measuring CPU.
        knockers = []
        cpu_start, start = warren.cpu(), time.monotonic()
        while time.monotonic() - start < KNOCK_SECONDS:
            for p in (port, warren.http_port):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", p))
                except BlockingIOError:
                    pass
                knockers.append(s)
            await asyncio.sleep(0.05)
        cpu = (warren.cpu() - cpu_start) / (time.monotonic() - start)

        # What is open still works.
        def use_existing():
            ech.basic_publish("", "hostile.existing", b"still here")
            return ech.basic_get("hostile.existing", auto_ack=True)[2]

        existing_body = await loop.run_in_executor(None, use_existing)
        refused = await try_open(port)

        # Free some descriptors (and stop knocking): new connections are accepted again.
        for s in knockers:
            s.close()
        freed = 20
        await amqp.close_many(conns[:freed])
        conns = conns[freed:]
        recovered_after = None
        start = time.monotonic()
        while time.monotonic() - start < 15:
            newcomer = await try_open(port)
            if newcomer:
                recovered_after = time.monotonic() - start
                conns.append(newcomer)
                break
        api_status = await loop.run_in_executor(None, lambda: warren.api("GET", "/api/overview").status_code)
        for c in conns:
            c.abort()
        return {"connections": served,
                "fds_full": fds_full, "cpu": cpu, "knocks": len(knockers),
                "existing": existing_body, "refused_while_full": refused is None,
                "recovered_after": recovered_after, "api_after": api_status}

    r = asyncio.run(scenario())
    existing.close()
    report("fd exhaustion", nofile=NOFILE, connections_served=r["connections"], fds_when_full=r["fds_full"],
           knocks=r["knocks"], cpu_while_knocking=f"{r['cpu'] * 100:.1f}%",
           recovered_after_s=r["recovered_after"] and f"{r['recovered_after']:.2f}", api_after=r["api_after"])

    assert r["fds_full"] >= NOFILE - 5, "the broker stopped accepting before running out of descriptors"
    assert r["refused_while_full"], "a connection was served while the broker had no descriptors"
    assert r["cpu"] < CPU_LIMIT, f"the broker used {r['cpu'] * 100:.0f}% of a core while clients knocked"
    assert r["existing"] == b"still here"
    assert r["recovered_after"] is not None, "no new connection was accepted after descriptors were freed"
    assert r["api_after"] == 200
