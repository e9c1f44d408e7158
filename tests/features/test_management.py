"""The management API beyond queues and policies, as operators' tools call it: topic
permissions (and their enforcement over AMQP), runtime and global parameters, the cluster name,
a user's connections, health checks, and the side effects RabbitMQ 3.10 has."""

import time
import uuid

import pika
import pytest


@pytest.fixture
def user(api, port):
    """A throwaway user with full permissions on /, and a way to connect as it."""
    name = f"feat-user-{uuid.uuid4().hex[:8]}"
    assert api("PUT", f"/api/users/{name}", {"password": "pw", "tags": "management"}).status_code == 201
    perms = {"configure": ".*", "write": ".*", "read": ".*"}
    assert api("PUT", f"/api/permissions/%2F/{name}", perms).status_code == 201

    class User:
        pass

    u = User()
    u.name = name
    u.connect = lambda: pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, credentials=pika.PlainCredentials(name, "pw"), heartbeat=0))
    yield u
    api("DELETE", f"/api/users/{name}")


def test_topic_permissions_are_listed_as_rabbitmq_shows_them(api, user):
    body = {"exchange": "amq.topic", "write": "^{username}\\.", "read": "^public\\."}
    assert api("PUT", f"/api/topic-permissions/%2F/{user.name}", body).status_code == 201
    assert api("PUT", f"/api/topic-permissions/%2F/{user.name}", body).status_code == 204
    mine = api("GET", f"/api/topic-permissions/%2F/{user.name}").json()
    assert mine == [{"user": user.name, "vhost": "/", "exchange": "amq.topic",
                     "write": "^{username}\\.", "read": "^public\\."}]
    assert list(mine[0]) == ["user", "vhost", "exchange", "write", "read"]
    listed = api("GET", f"/api/users/{user.name}/topic-permissions").json()
    assert listed == mine
    assert any(p["user"] == user.name for p in api("GET", "/api/topic-permissions").json())
    assert api("DELETE", f"/api/topic-permissions/%2F/{user.name}").status_code == 204
    assert api("GET", f"/api/topic-permissions/%2F/{user.name}").status_code == 404


def test_topic_permissions_are_enforced_on_publish_and_bind(api, user, names):
    body = {"exchange": "amq.topic", "write": "^{username}\\.", "read": "^public\\."}
    api("PUT", f"/api/topic-permissions/%2F/{user.name}", body)
    conn = user.connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.topic", f"{user.name}.orders", b"mine")
        # Other exchanges (and other types) are not limited.
        ch.basic_publish("amq.direct", "anything", b"x")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.basic_publish("amq.topic", "someone-else.orders", b"theirs")
        assert refused.value.reply_code == 403
        assert refused.value.reply_text == (
            "ACCESS_REFUSED - access to topic 'someone-else.orders' in exchange 'amq.topic' "
            f"in vhost '/' refused for user '{user.name}'")
        ch = conn.channel()
        q = names.queue("topic")
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.topic", "public.news")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_bind(q, "amq.topic", "private.#")
        assert refused.value.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def announced_cluster_name(port):
    """The cluster_name a new connection's connection.start carries."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    try:
        value = conn._impl.server_properties["cluster_name"]
    finally:
        conn.close()
    return value.decode() if isinstance(value, bytes) else value


def test_global_parameters_and_the_cluster_name(api, port):
    name = f"feat-{uuid.uuid4().hex[:8]}"
    assert api("PUT", f"/api/global-parameters/{name}", {"value": {"a": 1}}).status_code == 201
    assert api("GET", f"/api/global-parameters/{name}").json() == {"name": name, "value": {"a": 1}}
    assert {"name": name, "value": {"a": 1}} in api("GET", "/api/global-parameters").json()
    assert api("DELETE", f"/api/global-parameters/{name}").status_code == 204
    assert api("GET", f"/api/global-parameters/{name}").status_code == 404
    original = api("GET", "/api/cluster-name").json()["name"]
    assert announced_cluster_name(port) == original
    try:
        assert api("PUT", "/api/cluster-name", {"name": "feature-cluster"}).status_code == 204
        assert api("GET", "/api/cluster-name").json() == {"name": "feature-cluster"}
        assert api("GET", "/api/overview").json()["cluster_name"] == "feature-cluster"
        assert announced_cluster_name(port) == "feature-cluster"
        assert {"name": "cluster_name", "value": "feature-cluster"} in api(
            "GET", "/api/global-parameters").json()
    finally:
        api("PUT", "/api/cluster-name", {"name": original})


def test_operator_policies_are_runtime_parameters(api, names):
    name = f"{names.base}.op"
    body = {"pattern": "^nothing$", "definition": {"max-length": 5}, "priority": 1,
            "apply-to": "queues"}
    assert api("PUT", f"/api/operator-policies/%2F/{name}", body).status_code == 201
    try:
        mine = [p for p in api("GET", "/api/parameters/operator_policy/%2F").json()
                if p["name"] == name]
        assert mine == [{"vhost": "/", "component": "operator_policy", "name": name,
                         "value": {"pattern": "^nothing$", "definition": {"max-length": 5},
                                   "priority": 1, "apply-to": "queues"}}]
        assert any(p["name"] == name for p in api("GET", "/api/parameters").json())
    finally:
        api("DELETE", f"/api/operator-policies/%2F/{name}")
    refused = api("PUT", "/api/parameters/federation-upstream/%2F/up",
                  {"value": {"uri": "amqp://elsewhere"}})
    assert refused.status_code == 400
    assert refused.json()["reason"] == "Validation failed\n\ncomponent federation-upstream not found\n"


def test_a_users_connections_are_listed_and_closed(api, user):
    conn = user.connect()
    try:
        def listed():
            return api("GET", f"/api/connections/username/{user.name}").json()
        deadline = time.time() + 15
        while not listed() and time.time() < deadline:
            time.sleep(0.2)
        found = listed()
        assert [c["user"] for c in found] == [user.name]
        assert api("DELETE", f"/api/connections/username/{user.name}").status_code == 204
        deadline = time.time() + 10
        while conn.is_open and time.time() < deadline:
            try:
                conn.process_data_events(time_limit=0.2)
            except pika.exceptions.ConnectionClosedByBroker as e:
                assert e.reply_code == 320
                break
        assert not conn.is_open
    finally:
        if conn.is_open:
            conn.close()


@pytest.mark.parametrize("path", [
    "/api/health/checks/alarms",
    "/api/health/checks/local-alarms",
    "/api/health/checks/virtual-hosts",
    "/api/health/checks/node-is-quorum-critical",
    "/api/health/checks/node-is-mirror-sync-critical",
    "/api/health/checks/protocol-listener/amqp",
    "/api/health/checks/certificate-expiration/1/months",
    "/api/healthchecks/node",
])
def test_health_checks_pass_on_a_healthy_node(api, path):
    r = api("GET", path)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


def test_protocol_listener_check_fails_for_a_protocol_nobody_speaks(api):
    r = api("GET", "/api/health/checks/protocol-listener/stomp")
    assert r.status_code == 503
    assert r.json()["status"] == "failed"


def test_a_vhost_created_through_the_api_grants_its_creator_full_permissions(api):
    vhost = f"feat-{uuid.uuid4().hex[:8]}"
    assert api("PUT", f"/api/vhosts/{vhost}", {}).status_code == 201
    try:
        perms = api("GET", f"/api/permissions/{vhost}/guest")
        assert perms.status_code == 200
        assert {k: perms.json()[k] for k in ("configure", "write", "read")} == {
            "configure": ".*", "write": ".*", "read": ".*"}
    finally:
        api("DELETE", f"/api/vhosts/{vhost}")
