"""Priority queues (x-max-priority): delivery in priority order then FIFO, requeued messages
back at their place, priorities above the maximum capped, and what limits and TTLs do to them."""

import time

import pika
import pytest

from helpers import drain


def publish(channel, queue, body, priority=None, **props):
    properties = pika.BasicProperties(priority=priority, **props)
    channel.basic_publish("", queue, body.encode(), properties=properties)


def test_messages_come_out_by_priority_then_in_order(channel, names):
    q = names.queue("prio")
    channel.queue_declare(q, arguments={"x-max-priority": 10})
    # Confirmed, so that RabbitMQ's count includes them (its publishes reach queues
    # asynchronously; a basic.get after them on the same channel is ordered, a count is not).
    channel.confirm_delivery()
    for body, priority in [("a", None), ("b", 5), ("c", 1), ("d", 5), ("e", 10), ("f", 0)]:
        publish(channel, q, body, priority)
    assert channel.queue_declare(q, passive=True).method.message_count == 6
    assert drain(channel, q) == ["e", "b", "d", "c", "a", "f"]


def test_a_priority_above_the_maximum_counts_as_the_maximum(channel, names):
    q = names.queue("capped")
    channel.queue_declare(q, arguments={"x-max-priority": 3})
    publish(channel, q, "three", 3)
    publish(channel, q, "two-hundred", 200)
    publish(channel, q, "two", 2)
    # 200 is capped to 3 and so queues behind the earlier 3.
    assert drain(channel, q) == ["three", "two-hundred", "two"]


def test_a_queue_without_x_max_priority_ignores_priorities(channel, names):
    q = names.queue("plain")
    channel.queue_declare(q)
    publish(channel, q, "low", 1)
    publish(channel, q, "high", 9)
    assert drain(channel, q) == ["low", "high"]


def test_a_requeued_message_goes_back_to_its_place(channel, names):
    q = names.queue("requeue")
    channel.queue_declare(q, arguments={"x-max-priority": 5})
    for body, priority in [("low1", 1), ("high1", 5), ("high2", 5), ("low2", 1)]:
        publish(channel, q, body, priority)
    method, _, body = channel.basic_get(q)
    assert body == b"high1"
    channel.basic_nack(method.delivery_tag, requeue=True)
    got = []
    while True:
        method, _, body = channel.basic_get(q, auto_ack=True)
        if method is None:
            break
        got.append((body.decode(), method.redelivered))
    assert got == [("high1", True), ("high2", False), ("low1", False), ("low2", False)]


def test_consumers_receive_by_priority(connection, channel, names):
    q = names.queue("consume")
    channel.queue_declare(q, arguments={"x-max-priority": 9})
    for i in range(10):
        publish(channel, q, f"m{i}", i % 3 * 4)
    seen = []
    channel.basic_qos(prefetch_count=1)

    def on_message(ch, method, _props, body):
        seen.append(body.decode())
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(q, on_message)
    deadline = time.time() + 5
    while len(seen) < 10 and time.time() < deadline:
        connection.process_data_events(time_limit=0.1)
    assert seen == ["m2", "m5", "m8", "m1", "m4", "m7", "m0", "m3", "m6", "m9"]


def test_max_length_drops_the_highest_priority_head(channel, names):
    # RabbitMQ's priority queue drops from the head it would deliver next: the highest level.
    q = names.queue("bounded")
    channel.queue_declare(q, arguments={"x-max-priority": 5, "x-max-length": 2})
    publish(channel, q, "low", 1)
    publish(channel, q, "high", 5)
    publish(channel, q, "mid", 3)
    assert drain(channel, q) == ["mid", "low"]


def test_expiry_looks_at_the_head_of_the_whole_queue(channel, names):
    # As RabbitMQ's priority queue: expired messages leave from the head in delivery order,
    # so an expired low-priority message waits while a higher level holds a live one.
    q = names.queue("ttl")
    dlq = names.queue("ttl.dead")
    channel.queue_declare(dlq)
    channel.queue_declare(q, arguments={
        "x-max-priority": 5, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    publish(channel, q, "keep", 5)
    publish(channel, q, "expire-low", 1, expiration="50")
    publish(channel, q, "expire-high", 5, expiration="50")
    time.sleep(0.5)
    assert drain(channel, dlq) == []
    assert channel.queue_declare(q, passive=True).method.message_count == 3
    assert drain(channel, q) == ["keep"]
    time.sleep(0.2)
    assert drain(channel, dlq) == ["expire-high", "expire-low"]


@pytest.mark.parametrize("value, text", [
    (256, "{max_value_exceeded,256}"),
    (-1, "{value_negative,-1}"),
])
def test_an_invalid_max_priority_is_refused(channel, names, value, text):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        channel.queue_declare(names.queue("bad"), arguments={"x-max-priority": value})
    assert e.value.reply_code == 406
    assert text in e.value.reply_text
