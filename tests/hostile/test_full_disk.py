"""A disk that really fills: the data directory on a small tmpfs that nothing but this test's
filler and the broker write to, and `--disk-free-limit 0`, so the broker learns of the full
disk only from a failed write (the case a configured limit did not foresee). Publishes with
confirms must be nacked, never confirmed unless stored; the disk alarm must come on; reads
must still be served; freeing space must clear the alarm and let publishes confirm again;
and after a restart every confirmed message is there."""

import os
import subprocess
import tempfile

import pika
import pytest

from broker import wait_for
from common import report

TMPFS_MIB = 32
BODY = b"f" * 1024


def mount_tmpfs(path, mib):
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", path],
                            capture_output=True, text=True)
    return result.returncode == 0


@pytest.fixture
def small_disk():
    mountpoint = tempfile.mkdtemp(prefix="warren-full-disk.")
    if os.geteuid() != 0 or not mount_tmpfs(mountpoint, TMPFS_MIB):
        os.rmdir(mountpoint)
        pytest.skip("mounting a tmpfs needs root")
    yield mountpoint
    subprocess.run(["umount", "-l", mountpoint], check=False)
    os.rmdir(mountpoint)


def fill(path, leave_bytes):
    """Writes a filler file until `leave_bytes` remain free on the file system of `path`."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    with open(os.path.join(path, "filler"), "wb") as f:
        chunk = b"\0" * (1 << 20)
        remaining = max(0, free - leave_bytes)
        while remaining > 0:
            remaining -= f.write(chunk[:remaining])


def disk_alarm(warren):
    return warren.api("GET", "/api/nodes").json()[0]["disk_free_alarm"]


def connect(warren):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", warren.amqp_port, heartbeat=0, blocked_connection_timeout=5,
        socket_timeout=10))


def test_a_full_disk_nacks_raises_the_alarm_serves_reads_and_recovers(start_warren, small_disk):
    data_dir = os.path.join(small_disk, "data")
    warren = start_warren("--disk-free-limit", "0", data_dir=data_dir)
    connection = connect(warren)
    channel = connection.channel()
    channel.queue_declare("full", durable=True)
    channel.confirm_delivery()
    fill(small_disk, 1 << 20)

    confirmed = 0
    nacked = False
    persistent = pika.BasicProperties(delivery_mode=2)
    for _ in range(8 * 1024):   # 8 MiB of bodies: far more than the 1 MiB left
        try:
            channel.basic_publish("", "full", BODY, persistent)
            confirmed += 1
        except pika.exceptions.NackError:
            nacked = True
            break
        except pika.exceptions.ConnectionBlockedTimeout:
            break   # the alarm came on between two publishes: blocked, not confirmed
    assert nacked or confirmed < 1024, "the disk never filled"
    assert confirmed > 0, "nothing was stored before the disk filled"
    wait_for(lambda: disk_alarm(warren), 10, what="the disk alarm")
    try:
        connection.close()
    except pika.exceptions.AMQPError:
        pass

    # Reads are served while the alarm is on: a consumer can take what was stored.
    reader = connect(warren)
    read = reader.channel()
    method, _, body = read.basic_get("full")
    assert method is not None and body == BODY
    read.basic_nack(method.delivery_tag, requeue=True)
    # A nacked message may still be in the queue (a nack withdraws the promise to keep it, as
    # in RabbitMQ, where it may already have been delivered); a confirmed one must be.
    count = read.queue_declare("full", passive=True).method.message_count
    assert confirmed <= count <= confirmed + nacked, f"{count} in the queue, {confirmed} confirmed"
    reader.close()

    # Space comes back: the alarm clears and publishes confirm again.
    os.remove(os.path.join(small_disk, "filler"))
    wait_for(lambda: not disk_alarm(warren), 15, what="the disk alarm to clear")
    connection = connect(warren)
    channel = connection.channel()
    channel.confirm_delivery()
    for _ in range(100):
        channel.basic_publish("", "full", BODY, persistent)
    connection.close()
    confirmed += 100

    # Everything confirmed survives a restart.
    warren.stop()
    warren = start_warren("--disk-free-limit", "0", data_dir=data_dir)
    connection = connect(warren)
    channel = connection.channel()
    count = channel.queue_declare("full", passive=True).method.message_count
    bodies = []
    for _, _, body in channel.consume("full", auto_ack=True, inactivity_timeout=2):
        if body is None:
            break
        bodies.append(body)
    connection.close()
    assert len(bodies) == count and set(bodies) == {BODY}, "a message came back damaged"
    report("full disk", confirmed=confirmed, after_restart=count, nacked=nacked)
    assert confirmed <= count <= confirmed + nacked, f"{count} after a restart, {confirmed} confirmed"
