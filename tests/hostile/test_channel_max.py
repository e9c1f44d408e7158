"""A client that opens more channels than the negotiated channel_max: its connection is closed
with RabbitMQ 3.10's error; other connections do not notice.

RabbitMQ 3.10 (rabbit_reader:create_channel/2, confirmed against a live 3.10.8 node with
channel_max 2047 and with a client-negotiated 16) counts open channels rather than checking
the channel number, and refuses with a hard error on channel 0:
    connection.close 530 "NOT_ALLOWED - number of channels opened (16) has reached the
    negotiated channel_max (16)", class 0, method 0."""

import amqp
from common import pika_connection, pika_roundtrip

CHANNEL_MAX = 16
RABBITMQ_REPLY = (
    "connection", 530,
    f"NOT_ALLOWED - number of channels opened ({CHANNEL_MAX}) has reached the negotiated "
    f"channel_max ({CHANNEL_MAX})",
    0, 0,
)


def test_channel_open_beyond_channel_max(start_warren):
    warren = start_warren("--channel-max", str(CHANNEL_MAX))
    port = warren.amqp_port
    # A bystander with a message waiting for it, connected before and used after.
    bystander = pika_connection(port)
    bch = bystander.channel()
    bch.queue_declare("hostile.bystander")
    bch.basic_publish("", "hostile.bystander", b"before")

    conn = amqp.Connection(port)
    assert conn.tune[0] == CHANNEL_MAX
    for channel in range(1, CHANNEL_MAX + 1):
        conn.open_channel(channel)
    conn.send(amqp.channel_open(CHANNEL_MAX + 1))
    try:
        conn.expect(CHANNEL_MAX + 1, amqp.CHANNEL_OPEN_OK)
        reply = None
    except amqp.AmqpClosed as e:
        reply = (e.kind, e.code, e.text, e.class_id, e.method_id)
    assert reply is not None, f"channel.open on channel {CHANNEL_MAX + 1} succeeded"
    assert reply[0] == "connection", f"expected the connection to be closed, got {reply}"
    conn.send(amqp.connection_close_ok())
    assert amqp.wait_eof(conn.sock, 5)[0] in ("eof", "reset"), "the broker kept the socket open"
    conn.abort()

    # Unaffected: the bystander's connection and a newcomer's.
    method, _, body = bch.basic_get("hostile.bystander", auto_ack=True)
    assert body == b"before"
    bch.queue_delete("hostile.bystander")
    bystander.close()
    assert pika_roundtrip(port, 100) < 5

    assert reply == RABBITMQ_REPLY, f"\nWarren:         {reply}\nRabbitMQ 3.10:  {RABBITMQ_REPLY}"
