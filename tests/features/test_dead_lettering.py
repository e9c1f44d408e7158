"""Message TTL, dead-lettering and length limits (x-message-ttl, expiration, x-dead-letter-*,
x-max-length(-bytes), x-overflow), asserted identically against Warren and RabbitMQ 3.10."""

import time

import pika
import pytest


def wait_get(ch, queue, timeout=5.0, auto_ack=True):
    """The next message of `queue`, polling with basic.get until one arrives."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method:
            return method, props, body
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived in {queue} within {timeout}s")


def ready(ch, queue):
    return ch.queue_declare(queue, passive=True).method.message_count


def dead_letter_pair(ch, names, kind="fanout", key=""):
    """A dead-letter exchange and the queue its letters land in."""
    dlx, dlq = names.exchange("dlx"), names.queue("dlq")
    ch.exchange_declare(dlx, kind)
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx, key)
    return dlx, dlq


def entry(death):
    """An x-death entry without its time (checked separately)."""
    return {k: v for k, v in death.items() if k != "time"}


def test_an_expired_message_is_dead_lettered_with_its_death_recorded(channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("ttl")
    channel.queue_declare(q, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": dlx})
    before = int(time.time())
    channel.basic_publish("", q, b"m1", pika.BasicProperties(headers={"h": 1}, delivery_mode=2))
    method, props, body = wait_get(channel, dlq)
    assert body == b"m1"
    assert (method.exchange, method.routing_key) == (dlx, q)
    assert props.delivery_mode == 2 and props.expiration is None
    headers = props.headers
    assert headers["h"] == 1
    deaths = headers["x-death"]
    assert [entry(d) for d in deaths] == [
        {"count": 1, "reason": "expired", "queue": q, "exchange": "", "routing-keys": [q]}]
    assert before - 1 <= deaths[0]["time"].timestamp() <= time.time() + 1
    assert (headers["x-first-death-reason"], headers["x-first-death-queue"],
            headers["x-first-death-exchange"]) == ("expired", q, "")
    assert ready(channel, q) == 0


def test_a_per_message_expiration_moves_into_x_death(channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("plain")
    channel.queue_declare(q, arguments={"x-dead-letter-exchange": dlx})
    channel.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
    channel.basic_publish("", q, b"long", pika.BasicProperties(expiration="60000"))
    _, props, body = wait_get(channel, dlq)
    assert body == b"short"
    assert props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "50"
    # The one that has not expired is delivered with its expiration intact.
    method, props, body = channel.basic_get(q, auto_ack=True)
    assert body == b"long" and props.expiration == "60000"


def test_the_shorter_of_queue_and_message_ttl_wins(channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("both")
    channel.queue_declare(q, arguments={"x-message-ttl": 60000, "x-dead-letter-exchange": dlx})
    channel.basic_publish("", q, b"m", pika.BasicProperties(expiration="30"))
    _, props, _ = wait_get(channel, dlq)
    assert props.headers["x-death"][0]["reason"] == "expired"


def test_a_rejected_message_goes_to_the_dead_letter_routing_key(channel, names):
    dlx, dlq = dead_letter_pair(channel, names, kind="direct", key="dead")
    q = names.queue("work")
    channel.queue_declare(q, arguments={"x-dead-letter-exchange": dlx,
                                        "x-dead-letter-routing-key": "dead"})
    channel.basic_publish("", q, b"bad")
    method, _, _ = channel.basic_get(q)
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = wait_get(channel, dlq)
    assert (body, method.routing_key) == (b"bad", "dead")
    assert [entry(d) for d in props.headers["x-death"]] == [
        {"count": 1, "reason": "rejected", "queue": q, "exchange": "", "routing-keys": [q]}]
    # Nack without requeue dead-letters too; with requeue it does not.
    channel.basic_publish("", q, b"nacked")
    method, _, _ = channel.basic_get(q)
    channel.basic_nack(method.delivery_tag, requeue=False)
    assert wait_get(channel, dlq)[2] == b"nacked"
    channel.basic_publish("", q, b"requeued")
    method, _, _ = channel.basic_get(q)
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert channel.basic_get(q, auto_ack=True)[2] == b"requeued"
    assert ready(channel, dlq) == 0


def test_a_retry_loop_counts_each_death_and_keeps_the_latest_first(channel, names):
    work, retry = names.queue("work"), names.queue("retry")
    channel.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": retry})
    channel.queue_declare(retry, arguments={"x-message-ttl": 50, "x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": work})
    channel.basic_publish("", work, b"job")
    for attempt in (1, 2):
        method, props, _ = wait_get(channel, work, auto_ack=False)
        if attempt == 2:
            deaths = props.headers["x-death"]
            assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
                (retry, "expired", 1), (work, "rejected", 1)]
            assert deaths[0]["routing-keys"] == [retry]
        channel.basic_reject(method.delivery_tag, requeue=False)
    _, props, _ = wait_get(channel, work)
    deaths = props.headers["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        (retry, "expired", 2), (work, "rejected", 2)]
    assert props.headers["x-first-death-queue"] == work
    assert props.headers["x-first-death-reason"] == "rejected"


def test_an_expiry_cycle_without_a_rejection_is_dropped(channel, names):
    q = names.queue("loop")
    channel.queue_declare(q, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": q})
    channel.basic_publish("", q, b"round and round")
    time.sleep(0.5)
    assert ready(channel, q) == 0


def test_a_missing_dead_letter_exchange_drops_the_message(channel, names):
    q = names.queue("nowhere")
    channel.queue_declare(q, arguments={"x-message-ttl": 30,
                                        "x-dead-letter-exchange": names.exchange("absent")})
    channel.basic_publish("", q, b"gone")
    time.sleep(0.3)
    assert ready(channel, q) == 0


def test_ttl_zero_reaches_a_waiting_consumer_and_dead_letters_otherwise(connection, channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("now")
    channel.queue_declare(q, arguments={"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
    channel.basic_publish("", q, b"nobody")
    assert wait_get(channel, dlq)[2] == b"nobody"
    got = []
    channel.basic_consume(q, lambda ch, m, p, b: got.append(b), auto_ack=True)
    channel.basic_publish("", q, b"somebody")
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert got == [b"somebody"]


def test_max_length_drops_the_oldest_as_maxlen_dead_letters(channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("bounded")
    channel.queue_declare(q, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    channel.confirm_delivery()  # each publish has reached the queue before the next step
    for i in range(1, 6):
        channel.basic_publish("", q, f"m{i}".encode())
    assert ready(channel, q) == 2
    assert [channel.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"m4", b"m5"]
    dead = [wait_get(channel, dlq) for _ in range(3)]
    assert [body for _, _, body in dead] == [b"m1", b"m2", b"m3"]
    assert {p.headers["x-death"][0]["reason"] for _, p, _ in dead} == {"maxlen"}


def test_max_length_bytes_counts_body_bytes(channel, names):
    q = names.queue("bytes")
    channel.queue_declare(q, arguments={"x-max-length-bytes": 10})
    channel.confirm_delivery()
    for body in (b"aaaaa", b"bbbbb", b"cc"):
        channel.basic_publish("", q, body)
    assert [channel.basic_get(q, auto_ack=True)[2] for _ in range(2)] == [b"bbbbb", b"cc"]
    assert ready(channel, q) == 0


def test_reject_publish_nacks_the_publish_that_would_overflow(channel, names):
    q = names.queue("full")
    channel.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"first")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", q, b"second")
    assert ready(channel, q) == 1
    assert channel.basic_get(q, auto_ack=True)[2] == b"first"
    channel.basic_publish("", q, b"third")


def test_reject_publish_dlx_nacks_and_dead_letters(channel, names):
    dlx, dlq = dead_letter_pair(channel, names)
    q = names.queue("full-dlx")
    channel.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                        "x-dead-letter-exchange": dlx})
    channel.confirm_delivery()
    channel.basic_publish("", q, b"kept")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", q, b"refused")
    _, props, body = wait_get(channel, dlq)
    assert body == b"refused"
    assert props.headers["x-death"][0]["reason"] == "maxlen"


@pytest.mark.parametrize("expiration,term", [
    ("abc", "no_integer"),
    ("1.5", '{leftover_string,".5"}'),
    ("-1", "{value_negative,-1}"),
])
def test_an_invalid_expiration_closes_the_channel(channel, names, expiration, term):
    q = names.queue("x")
    channel.queue_declare(q)
    channel.basic_publish("", q, b"m", pika.BasicProperties(expiration=expiration))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.queue_declare(q, passive=True)
    assert closed.value.reply_code == 406
    assert closed.value.reply_text == \
        f"PRECONDITION_FAILED - invalid expiration '{expiration}': {term}"
