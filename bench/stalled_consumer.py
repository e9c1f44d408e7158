#!/usr/bin/env python3
"""A consumer that subscribes (manual acks, no prefetch limit) and then never reads its socket.
   stalled_consumer.py PORT QUEUE SECONDS"""
import sys
import time

import pika

port, queue, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
ch = conn.channel()
ch.basic_consume(queue, lambda *a: None, auto_ack=False)  # no basic.qos: prefetch 0
time.sleep(seconds)  # pika reads nothing meanwhile: TCP back-pressure holds the broker back
