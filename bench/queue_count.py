#!/usr/bin/env python3
"""Prints QUEUE's ready message count on PORT (passive queue.declare: exact, unlike the
management API's counters, which lag). Usage: queue_count.py PORT QUEUE"""
import sys

import pika

conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
print(conn.channel().queue_declare(sys.argv[2], passive=True).method.message_count)
conn.close()
