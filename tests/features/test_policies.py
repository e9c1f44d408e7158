"""Policies and operator policies: the management API's answers, and what they do to queues and
exchanges at run time, as RabbitMQ 3.10 does it."""

import time

import pika
import pytest

from helpers import drain


def publish(channel, queue, bodies, exchange="", **props):
    for body in bodies:
        channel.basic_publish(exchange, queue, body.encode(),
                              properties=pika.BasicProperties(**props))


def count(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


def eventually(check, timeout=10.0):
    """RabbitMQ applies policies to queues asynchronously: wait for `check` to hold."""
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.05)


def shows(api, name, key, expected):
    """Whether the queue's listing comes to show `key` as `expected`. RabbitMQ's listing shows
    the policy fields from the queue's periodic stats: they can lag by seconds."""
    got = []

    def check():
        info = api("GET", f"/api/queues/%2F/{name}").json()
        got.append(info.get(key, "<absent>"))
        return key in info and info[key] == expected
    assert eventually(check, timeout=15), f"{key} of {name}: {got[-1]!r}, not {expected!r}"
    return True


def test_put_creates_then_updates_and_get_shows_rabbitmqs_json(api, names, policies):
    r = policies("policies", "shape", "", {"message-ttl": 50000, "max-length": 10}, priority=1)
    assert r.status_code == 201, r.text
    full = f"{names.base}.shape"
    got = api("GET", f"/api/policies/%2F/{full}").json()
    assert got == {
        "vhost": "/", "name": full, "pattern": names.pattern_prefix, "apply-to": "queues",
        "definition": {"max-length": 10, "message-ttl": 50000}, "priority": 1,
    }
    assert list(got) == ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
    assert policies("policies", "shape", "", {"max-length": 5}, priority=1).status_code == 204
    listed = [p for p in api("GET", "/api/policies/%2F").json() if p["name"] == full]
    assert [p["definition"] for p in listed] == [{"max-length": 5}]
    assert api("DELETE", f"/api/policies/%2F/{full}").status_code == 204
    missing = api("DELETE", f"/api/policies/%2F/{full}")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Object Not Found", "reason": "Not Found"}


@pytest.mark.parametrize("body, reason", [
    ({"pattern": "x", "definition": {"message-ttl": "abc"}},
     'Validation failed\n\n&lt;&lt;"abc"&gt;&gt; is not a valid message TTL\n'),
    ({"pattern": "x", "definition": {"max-length": -1}},
     "Validation failed\n\n-1 is not a valid maximum length\n"),
    ({"pattern": "x", "definition": {"expires": 0}},
     "Validation failed\n\n0 is not a valid queue expiry\n"),
    ({"pattern": "x", "definition": {"foo": 1, "message-ttl": 5}},
     'Validation failed\n\n[{&lt;&lt;"foo"&gt;&gt;,1}] are not recognised policy settings\n'),
    ({"pattern": "x", "definition": {"max-length": 1}, "apply-to": "foo"},
     "Validation failed\n\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\n"),
    ({"pattern": "x", "definition": {}}, "Validation failed\n\nno policy provided\n"),
    ({"definition": {"max-length": 1}}, "[{key_missing,pattern}]"),
])
def test_invalid_policies_are_refused_with_rabbitmqs_reasons(api, names, body, reason):
    r = api("PUT", f"/api/policies/%2F/{names.base}.bad", body)
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": reason}


def test_operator_policies_accept_only_their_keys(api, names):
    r = api("PUT", f"/api/operator-policies/%2F/{names.base}.bad",
            {"pattern": "x", "definition": {"overflow": "drop-head"}})
    assert r.status_code == 400
    assert r.json()["reason"] == (
        'Validation failed\n\n[{<<"overflow">>,<<"drop-head">>}] are not recognised policy settings\n')


def test_a_lower_max_length_truncates_an_existing_queue_from_the_head(channel, api, names,
                                                                      policies):
    q = names.queue("trunc")
    channel.queue_declare(q)
    publish(channel, q, [f"m{i}" for i in range(10)])
    assert policies("policies", "trunc", r"\.trunc$", {"max-length": 3}).status_code == 201
    assert eventually(lambda: count(channel, q) == 3)
    assert drain(channel, q) == ["m7", "m8", "m9"]
    assert shows(api, q, "policy", f"{names.base}.trunc")
    assert shows(api, q, "effective_policy_definition", {"max-length": 3})
    assert shows(api, q, "operator_policy", None)


def test_a_message_ttl_policy_applies_to_messages_published_after_it(channel, names, policies):
    q = names.queue("ttl")
    channel.queue_declare(q)
    publish(channel, q, ["before"])
    policies("policies", "ttl", r"\.ttl$", {"message-ttl": 100})
    time.sleep(0.3)
    publish(channel, q, ["after"])
    time.sleep(0.5)
    assert drain(channel, q) == ["before"]


def test_a_dead_letter_policy_routes_rejected_messages(channel, names, policies):
    q = names.queue("work")
    dlq = names.queue("dead")
    channel.queue_declare(dlq)
    channel.queue_declare(q)
    policies("policies", "dlx", r"\.work$",
             {"dead-letter-exchange": "", "dead-letter-routing-key": dlq})
    time.sleep(0.3)
    publish(channel, q, ["bad"])
    method, _, _ = channel.basic_get(q)
    channel.basic_reject(method.delivery_tag, requeue=False)
    assert eventually(lambda: count(channel, dlq) == 1)
    _, props, body = channel.basic_get(dlq, auto_ack=True)
    assert body == b"bad"
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_arguments_and_operator_policies_combine_as_rabbitmq(channel, api, names, policies):
    q = names.queue("mix")
    channel.queue_declare(q, arguments={"x-max-length": 30, "x-overflow": "reject-publish"})
    policies("policies", "mix", r"\.mix$",
             {"max-length": 10, "overflow": "drop-head", "message-ttl": 60000})
    policies("operator-policies", "mix", r"\.mix$", {"max-length": 5})
    # The operator policy caps the policy (5 < 10), which caps the argument (10 < 30); the
    # argument's overflow wins over the policy's.
    assert shows(api, q, "effective_policy_definition", {
        "max-length": 5, "overflow": "drop-head", "message-ttl": 60000})
    assert shows(api, q, "operator_policy", f"{names.base}.mix")
    channel.confirm_delivery()
    publish(channel, q, [f"m{i}" for i in range(5)])
    with pytest.raises(pika.exceptions.NackError):
        publish(channel, q, ["over"])
    assert count(channel, q) == 5


def test_the_highest_priority_policy_applies_whole(channel, api, names, policies):
    q = names.queue("prio")
    channel.queue_declare(q)
    policies("policies", "low", r"\.prio$", {"max-length": 7}, priority=1)
    policies("policies", "high", r"\.prio$", {"message-ttl": 60000}, priority=5)
    assert eventually(
        lambda: api("GET", f"/api/queues/%2F/{q}").json().get("policy") == f"{names.base}.high")
    assert shows(api, q, "effective_policy_definition", {"message-ttl": 60000})
    # A policy with a key classic queues do not support does not apply to them at all.
    policies("policies", "quorum-only", r"\.prio$", {"delivery-limit": 5}, priority=9)
    time.sleep(0.5)
    assert shows(api, q, "policy", f"{names.base}.high")


def test_an_expires_policy_deletes_an_unused_queue(channel, api, names, policies):
    q = names.queue("temp")
    channel.queue_declare(q)
    policies("policies", "temp", r"\.temp$", {"expires": 300})
    # Watched through the API: a passive declare would count as a use and keep it alive.
    assert eventually(lambda: api("GET", f"/api/queues/%2F/{q}").status_code == 404, timeout=5)


def test_an_alternate_exchange_policy_takes_unroutable_messages(channel, names, policies):
    x = names.exchange("main")
    ae = names.exchange("ae")
    q = names.queue("unrouted")
    channel.exchange_declare(x, "direct")
    channel.exchange_declare(ae, "fanout")
    channel.queue_declare(q)
    channel.queue_bind(q, ae)
    r = policies("policies", "ae", r"\.x\.main$", {"alternate-exchange": ae},
                 apply_to="exchanges")
    assert r.status_code == 201
    time.sleep(0.3)
    publish(channel, "nowhere", ["lost"], exchange=x)
    assert eventually(lambda: count(channel, q) == 1)
