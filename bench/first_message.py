#!/usr/bin/env python3
"""Runs START_CMD and measures how long until QUEUE on PORT serves its first message.

Usage: first_message.py PORT QUEUE START_CMD...
Prints: seconds from launching START_CMD until basic.get returned a message. The message is
not acked (it goes back to the queue when the connection closes).
"""
import subprocess
import sys
import time

import pika

port, queue, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
t0 = time.monotonic()
proc = subprocess.Popen(cmd)
deadline = t0 + 600
while time.monotonic() < deadline:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30))
    except Exception:
        time.sleep(0.01)
        continue
    try:
        method, _, _ = conn.channel().basic_get(queue, auto_ack=False)
        if method is not None:
            print(f"{time.monotonic() - t0:.3f}")
            conn.close()
            proc.wait()
            sys.exit(0)
    except Exception:
        pass
    finally:
        if conn.is_open:
            conn.close()
    time.sleep(0.01)
sys.exit("no message within 600 s")
