"""Vhost limits (max-connections, max-queues) and user limits (max-connections, max-channels):
the management API that sets them and RabbitMQ 3.10's refusals over AMQP."""

import uuid

import pika
import pytest


@pytest.fixture
def vhost(api):
    """A throwaway vhost (guest gets full permissions on it, as its creator)."""
    name = f"feat-{uuid.uuid4().hex[:8]}"
    assert api("PUT", f"/api/vhosts/{name}", {}).status_code == 201
    yield name
    api("DELETE", f"/api/vhosts/{name}")


@pytest.fixture
def user(api):
    name = f"feat-user-{uuid.uuid4().hex[:8]}"
    assert api("PUT", f"/api/users/{name}", {"password": "pw", "tags": ""}).status_code == 201
    perms = {"configure": ".*", "write": ".*", "read": ".*"}
    assert api("PUT", f"/api/permissions/%2F/{name}", perms).status_code == 201
    yield name
    api("DELETE", f"/api/users/{name}")


def connect(port, vhost="/", user="guest", password="guest"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials(user, password), heartbeat=0,
        connection_attempts=1))


def refusal(port, **kw):
    """How the broker refuses a connection: (reply code, text)."""
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(port, **kw)
    return str(e.value)


def test_vhost_limits_are_listed_set_and_cleared(api, vhost):
    assert api("PUT", f"/api/vhost-limits/{vhost}/max-connections", {"value": 5}).status_code == 204
    assert api("PUT", f"/api/vhost-limits/{vhost}/max-queues", {"value": 10}).status_code == 204
    assert api("GET", f"/api/vhost-limits/{vhost}").json() == [
        {"vhost": vhost, "value": {"max-connections": 5, "max-queues": 10}}]
    assert {"vhost": vhost, "value": {"max-connections": 5, "max-queues": 10}} in api(
        "GET", "/api/vhost-limits").json()
    assert api("DELETE", f"/api/vhost-limits/{vhost}/max-connections").status_code == 204
    assert api("GET", f"/api/vhost-limits/{vhost}").json() == [
        {"vhost": vhost, "value": {"max-queues": 10}}]
    bad = api("PUT", f"/api/vhost-limits/{vhost}/max-bananas", {"value": 1})
    assert bad.status_code == 400


def test_vhost_max_connections_refuses_the_next_connection(api, port, vhost):
    api("PUT", f"/api/vhost-limits/{vhost}/max-connections", {"value": 1})
    first = connect(port, vhost)
    try:
        assert "connection limit (1) is reached" in refusal(port, vhost=vhost)
    finally:
        first.close()
    connect(port, vhost).close()


def test_vhost_max_queues_refuses_a_new_queue(api, port, vhost):
    api("PUT", f"/api/vhost-limits/{vhost}/max-queues", {"value": 1})
    conn = connect(port, vhost)
    try:
        ch = conn.channel()
        ch.queue_declare("first")
        ch.queue_declare("first")  # an existing queue is not a new one
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("second")
        assert e.value.reply_code == 406
        assert e.value.reply_text == (
            f"PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost "
            f"'{vhost}' (1) is reached")
    finally:
        conn.close()


def test_user_limits_refuse_connections_and_channels(api, port, user):
    assert api("PUT", f"/api/user-limits/{user}/max-connections", {"value": 1}).status_code == 204
    assert api("PUT", f"/api/user-limits/{user}/max-channels", {"value": 1}).status_code == 204
    assert api("GET", f"/api/user-limits/{user}").json() == [
        {"user": user, "value": {"max-channels": 1, "max-connections": 1}}]
    conn = connect(port, user=user, password="pw")
    try:
        assert "user connection limit (1) is reached" in refusal(port, user=user, password="pw")
        conn.channel()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.channel()
        assert e.value.reply_code == 530
        assert e.value.reply_text == (
            f"NOT_ALLOWED - number of channels opened for user '{user}' has reached the "
            "maximum allowed user limit of (1)")
    finally:
        if conn.is_open:
            conn.close()
    assert api("DELETE", f"/api/user-limits/{user}/max-connections").status_code == 204
    assert api("GET", f"/api/user-limits/{user}").json() == [
        {"user": user, "value": {"max-channels": 1}}]
