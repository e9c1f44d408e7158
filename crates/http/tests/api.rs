//! The management API over real HTTP: an in-process broker with its AMQP listener and the
//! HTTP API on ephemeral loopback ports, driven by a blocking HTTP client (and a bare AMQP
//! client where connections are needed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use warren_broker::Broker;
use warren_http::{AppState, HttpConfig};
use warren_server::ServerConfig;

const ADMIN: (&str, &str) = ("guest", "guest");

struct Harness {
    rt: Runtime,
    base: String,
    amqp_port: u16,
    broker: Arc<Broker>,
    agent: ureq::Agent,
    _stop: watch::Sender<bool>,
}

struct Resp {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn start() -> Harness {
    let warren_testkit::Started {
        rt,
        broker,
        amqp_port,
        http_port,
        stop,
    } = warren_testkit::start(
        ServerConfig {
            heartbeat: 0,
            ..ServerConfig::default()
        },
        |_, _| HttpConfig {
            stats_interval: Duration::from_millis(200),
            ..HttpConfig::default()
        },
    );
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    Harness {
        rt,
        base: format!("http://127.0.0.1:{http_port}"),
        amqp_port,
        broker,
        agent,
        _stop: stop,
    }
}

impl Harness {
    fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let header = auth.map(|(u, p)| format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))));
        macro_rules! with_auth {
            ($b:expr) => {{
                let b = $b;
                match &header {
                    Some(h) => b.header("Authorization", h),
                    None => b,
                }
            }};
        }
        let result = match method {
            "GET" => with_auth!(self.agent.get(&url)).call(),
            "DELETE" => with_auth!(self.agent.delete(&url)).call(),
            "PUT" | "POST" => {
                let b = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                let b = with_auth!(b).header("Content-Type", "application/json");
                b.send(body.unwrap_or(json!({})).to_string())
            }
            other => panic!("unsupported method {other}"),
        };
        let mut r = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str) -> Resp {
        self.request("GET", path, Some(ADMIN), None)
    }
    fn put(&self, path: &str, body: Value) -> Resp {
        self.request("PUT", path, Some(ADMIN), Some(body))
    }
    fn post(&self, path: &str, body: Value) -> Resp {
        self.request("POST", path, Some(ADMIN), Some(body))
    }
    fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, Some(ADMIN), None)
    }

    fn add_user(&self, name: &str, password: &str, tags: &str) {
        let r = self.put(
            &format!("/api/users/{name}"),
            json!({"password": password, "tags": tags}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

/// A bare AMQP client: enough to open a connection and see how the server closes it.
struct Raw {
    stream: tokio::net::TcpStream,
    buf: warren_protocol::BytesMut,
}

impl Raw {
    async fn send(&mut self, method: warren_protocol::Method) {
        self.send_on(0, method).await
    }

    async fn send_on(&mut self, channel: u16, method: warren_protocol::Method) {
        use tokio::io::AsyncWriteExt;
        let mut out = warren_protocol::BytesMut::new();
        warren_protocol::encode_method_frame(&mut out, channel, &method);
        self.stream.write_all(&out).await.unwrap();
    }

    async fn recv(&mut self) -> warren_protocol::Method {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(frame) = warren_protocol::parse_frame(&mut self.buf, 1 << 20).unwrap() {
                match frame {
                    warren_protocol::Frame::Method { method, .. } => return method,
                    _ => continue,
                }
            }
            let n =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the server answers")
                    .unwrap();
            assert!(n > 0, "socket closed without connection.close");
        }
    }

    /// guest/guest into `vhost`, without heartbeats.
    async fn open(port: u16, vhost: &str) -> Raw {
        use tokio::io::AsyncWriteExt;
        use warren_protocol::*;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(PROTOCOL_HEADER).await.unwrap();
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
        };
        assert!(matches!(raw.recv().await, Method::ConnectionStart(_)));
        let mut props = FieldTable::new();
        props.insert("product", "raw test client");
        props.insert("connection_name", "raw-1");
        raw.send(Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: props,
            mechanism: ShortStr::from("PLAIN"),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: ShortStr::from("en_US"),
        }))
        .await;
        let Method::ConnectionTune(tune) = raw.recv().await else {
            panic!("expected tune")
        };
        raw.send(Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 0,
        }))
        .await;
        raw.send(Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ShortStr::from(vhost),
            ..Default::default()
        }))
        .await;
        assert!(matches!(raw.recv().await, Method::ConnectionOpenOk(_)));
        raw
    }

    /// Opens channel 1, declares `queue` and consumes from it with prefetch 7.
    async fn consume(&mut self, queue: &str, tag: &str) {
        use warren_protocol::*;
        self.send_on(1, Method::ChannelOpen(ChannelOpen::default()))
            .await;
        assert!(matches!(self.recv().await, Method::ChannelOpenOk(_)));
        self.send_on(
            1,
            Method::QueueDeclare(QueueDeclare {
                queue: ShortStr::from(queue),
                ..Default::default()
            }),
        )
        .await;
        assert!(matches!(self.recv().await, Method::QueueDeclareOk(_)));
        self.subscribe(queue, tag).await;
    }

    /// Consumes from `queue` (which exists) on channel 1, opened already, with prefetch 7.
    async fn subscribe(&mut self, queue: &str, tag: &str) {
        use warren_protocol::*;
        self.send_on(
            1,
            Method::BasicQos(BasicQos {
                prefetch_count: 7,
                ..Default::default()
            }),
        )
        .await;
        assert!(matches!(self.recv().await, Method::BasicQosOk(_)));
        self.send_on(
            1,
            Method::BasicConsume(BasicConsume {
                queue: ShortStr::from(queue),
                consumer_tag: ShortStr::from(tag),
                ..Default::default()
            }),
        )
        .await;
        assert!(matches!(self.recv().await, Method::BasicConsumeOk(_)));
    }

    /// The reply code and text of the connection.close the server sends next (answered with
    /// close-ok).
    async fn closed(&mut self) -> (u16, String) {
        use warren_protocol::*;
        match self.recv().await {
            Method::ConnectionClose(c) => {
                self.send(Method::ConnectionCloseOk(ConnectionCloseOk))
                    .await;
                (c.reply_code, c.reply_text.to_string())
            }
            other => panic!("expected connection.close, got {other:?}"),
        }
    }
}

/// Polls until `check` holds (management numbers may lag), failing after a few seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_api_path_wants_a_management_user() {
    let h = start();
    let anonymous = h.request("GET", "/api/overview", None, None);
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.headers.get("www-authenticate").unwrap(),
        "Basic realm=\"RabbitMQ Management\""
    );
    assert_eq!(anonymous.json()["error"], "not_authorised");
    assert_eq!(
        h.request("GET", "/api/queues", Some(("guest", "nope")), None)
            .status,
        401
    );
    assert_eq!(
        h.request("GET", "/api/overview", Some(("nobody", "x")), None)
            .status,
        401
    );

    h.add_user("plain", "pw", "");
    h.add_user("watcher", "pw", "monitoring");
    h.add_user("manager", "pw", "management");
    assert_eq!(
        h.request("GET", "/api/overview", Some(("plain", "pw")), None)
            .status,
        401
    );
    for user in ["watcher", "manager"] {
        let r = h.request("GET", "/api/overview", Some((user, "pw")), None);
        assert_eq!(r.status, 200, "{user}");
    }
    // Changing users, vhosts and permissions is for administrators.
    let r = h.request(
        "PUT",
        "/api/vhosts/x",
        Some(("manager", "pw")),
        Some(json!({})),
    );
    assert_eq!(r.status, 401);
    let r = h.request("GET", "/api/users", Some(("watcher", "pw")), None);
    assert_eq!(r.status, 401);

    let me = h.request("GET", "/api/whoami", Some(("manager", "pw")), None);
    assert_eq!(
        me.json(),
        json!({"name": "manager", "tags": ["management"]})
    );

    // The web UI page needs no login.
    let ui = h.request("GET", "/", None, None);
    assert_eq!(ui.status, 200);
    assert!(ui.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn overview_nodes_and_health() {
    let h = start();
    let o = h.get("/api/overview").json();
    assert_eq!(o["product_name"], "Warren");
    assert_eq!(o["object_totals"]["queues"], 0);
    assert_eq!(o["object_totals"]["exchanges"], 6);
    assert!(o["message_stats"]["publish_details"]["rate"].is_number());
    assert_eq!(h.get("/api/nodes").json()[0]["running"], true);
    assert_eq!(
        h.get("/api/health/checks/alarms").json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        h.get("/api/aliveness-test/%2F").json(),
        json!({"status": "ok"})
    );
    assert_eq!(h.get("/api/no/such/thing").status, 404);
    h.broker.alarms.set_memory(true);
    let r = h.get("/api/health/checks/alarms");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["alarms"][0]["resource"], "memory");
    assert_eq!(h.get("/api/nodes").json()[0]["mem_alarm"], true);
    h.broker.alarms.set_memory(false);
    assert_eq!(h.get("/api/health/checks/alarms").status, 200);
}

#[test]
fn vhosts_users_and_permissions() {
    let h = start();
    assert_eq!(
        h.put("/api/vhosts/v1", json!({"description": "one"}))
            .status,
        201
    );
    assert_eq!(h.put("/api/vhosts/v1", json!({})).status, 204);
    let v = h.get("/api/vhosts/v1").json();
    assert_eq!(v["name"], "v1");
    assert_eq!(v["description"], "one");
    assert_eq!(h.get("/api/vhosts/%2F").json()["name"], "/");
    assert_eq!(h.get("/api/vhosts/nope").status, 404);

    // Tags as a list; a RabbitMQ password hash ("test12" with salt 908DC60A) is kept as is.
    let hash = "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR";
    let r = h.put(
        "/api/users/u1",
        json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256",
               "tags": ["management", "monitoring"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let u = h.get("/api/users/u1").json();
    assert_eq!(u["password_hash"], hash);
    assert!(h.broker.access.authenticate("u1", "test12").is_some());
    let r = h.request("GET", "/api/whoami", Some(("u1", "test12")), None);
    assert_eq!(r.status, 200);
    assert_eq!(u["tags"], json!(["management", "monitoring"]));
    assert_eq!(
        h.put(
            "/api/users/u2",
            json!({"password_hash": "x", "hashing_algorithm": "rabbit_password_hashing_md5"})
        )
        .status,
        400
    );

    let r = h.put(
        "/api/permissions/v1/u1",
        json!({"configure": "^a", "write": ".*", "read": ""}),
    );
    assert_eq!(r.status, 201);
    let r = h.put(
        "/api/permissions/v1/u1",
        json!({"configure": "^b", "write": ".*", "read": ""}),
    );
    assert_eq!(r.status, 204);
    let p = h.get("/api/permissions/v1/u1").json();
    assert_eq!(
        (p["configure"].as_str(), p["read"].as_str()),
        (Some("^b"), Some(""))
    );
    assert_eq!(
        h.get("/api/users/u1/permissions")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // u1's, and guest's: creating a vhost through the API grants the creator full
    // permissions on it, as RabbitMQ's management plugin does.
    let users: Vec<String> = h
        .get("/api/vhosts/v1/permissions")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(users, ["guest", "u1"]);
    let bad = h.put(
        "/api/permissions/v1/u1",
        json!({"configure": "(", "write": "", "read": ""}),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(
        h.put(
            "/api/permissions/v1/nobody",
            json!({"configure": "", "write": "", "read": ""})
        )
        .status,
        400
    );
    assert_eq!(h.delete("/api/permissions/v1/u1").status, 204);
    assert_eq!(h.delete("/api/permissions/v1/u1").status, 404);

    assert_eq!(h.delete("/api/users/u1").status, 204);
    assert_eq!(h.get("/api/users/u1").status, 404);
    assert_eq!(h.delete("/api/vhosts/v1").status, 204);
    assert_eq!(h.delete("/api/vhosts/v1").status, 404);
}

#[test]
fn queues_exchanges_bindings_publish_and_get() {
    let h = start();
    let r = h.put(
        "/api/exchanges/%2F/logs",
        json!({"type": "topic", "durable": false}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        h.put(
            "/api/exchanges/%2F/logs",
            json!({"type": "topic", "durable": false})
        )
        .status,
        204
    );
    let clash = h.put(
        "/api/exchanges/%2F/logs",
        json!({"type": "fanout", "durable": false}),
    );
    assert_eq!(clash.status, 400);
    assert!(clash.json()["reason"].as_str().unwrap().contains("406"));
    assert_eq!(
        h.put("/api/exchanges/%2F/x", json!({})).status,
        400,
        "type is required"
    );
    let e = h.get("/api/exchanges/%2F/logs").json();
    assert_eq!(
        (e["type"].as_str(), e["durable"].as_bool()),
        (Some("topic"), Some(false))
    );
    assert_eq!(h.get("/api/exchanges/%2F/amq.default").json()["name"], "");

    assert_eq!(
        h.put(
            "/api/queues/%2F/q1",
            json!({"arguments": {"x-max-length": 10}})
        )
        .status,
        201
    );
    assert_eq!(
        h.put(
            "/api/queues/%2F/q1",
            json!({"arguments": {"x-max-length": 10}})
        )
        .status,
        204
    );
    let q = h.get("/api/queues/%2F/q1").json();
    assert_eq!(
        q["durable"], true,
        "the API declares durable queues by default"
    );
    assert_eq!(q["arguments"]["x-max-length"], 10);
    assert_eq!(q["state"], "running");

    // A binding, found by its properties key through the Location header.
    let r = h.post(
        "/api/bindings/%2F/e/logs/q/q1",
        json!({"routing_key": "app.*", "arguments": {}}),
    );
    assert_eq!(r.status, 201);
    let location = r.headers["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/api/bindings/%2F/e/logs/q/q1/app.%252A");
    assert_eq!(h.get(&location).json()["routing_key"], "app.*");
    let qb = h.get("/api/queues/%2F/q1/bindings").json();
    assert_eq!(qb.as_array().unwrap().len(), 2, "default + logs: {qb}");
    assert_eq!(
        h.get("/api/exchanges/%2F/logs/bindings/source")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for (key, routed) in [("app.start", true), ("db.start", false)] {
        let r = h.post(
            "/api/exchanges/%2F/logs/publish",
            json!({"properties": {"delivery_mode": 2, "headers": {"n": 1}}, "routing_key": key,
                   "payload": "aGVsbG8=", "payload_encoding": "base64"}),
        );
        assert_eq!(r.json(), json!({"routed": routed}), "{key}");
    }
    let r = h.post(
        "/api/exchanges/%2F/amq.default/publish",
        json!({"properties": {}, "routing_key": "q1", "payload": "\u{0}\u{1}", "payload_encoding": "string"}),
    );
    assert_eq!(r.json()["routed"], true);
    assert_eq!(h.get("/api/queues/%2F/q1").json()["messages_ready"], 2);

    // Get and requeue: the message stays, marked redelivered.
    let got = h.post(
        "/api/queues/%2F/q1/get",
        json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 3}),
    );
    let got = got.json();
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["payload"], "hel");
    assert_eq!(got[0]["payload_bytes"], 5);
    assert_eq!(got[0]["properties"]["headers"]["n"], 1);
    assert_eq!(got[0]["routing_key"], "app.start");
    assert_eq!(got[1]["payload_encoding"], "string");
    let again = h.post(
        "/api/queues/%2F/q1/get",
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64"}),
    );
    let again = again.json();
    assert_eq!(again[0]["redelivered"], true);
    assert_eq!(again[0]["payload"], "aGVsbG8=");
    assert_eq!(h.get("/api/queues/%2F/q1").json()["messages"], 1);

    assert_eq!(h.delete("/api/queues/%2F/q1?if-empty=true").status, 400);
    assert_eq!(h.delete("/api/queues/%2F/q1/contents").status, 204);
    assert_eq!(h.get("/api/queues/%2F/q1").json()["messages"], 0);

    assert_eq!(h.delete(&location).status, 204);
    assert_eq!(h.get(&location).status, 404);
    assert_eq!(h.delete("/api/queues/%2F/q1?if-empty=true").status, 204);
    assert_eq!(h.get("/api/queues/%2F/q1").status, 404);
    assert_eq!(h.delete("/api/queues/%2F/q1").status, 404);
    assert_eq!(h.delete("/api/exchanges/%2F/logs").status, 204);
    assert_eq!(h.delete("/api/exchanges/%2F/amq.direct").status, 401);
}

#[test]
fn users_see_nothing_of_vhosts_they_have_no_permissions_in() {
    let h = start();
    for v in ["mine", "theirs"] {
        assert_eq!(h.put(&format!("/api/vhosts/{v}"), json!({})).status, 201);
        h.put(
            &format!("/api/permissions/{v}/guest"),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        );
        assert_eq!(
            h.put(&format!("/api/queues/{v}/q-{v}"), json!({})).status,
            201
        );
        h.put(
            &format!("/api/exchanges/{v}/x-{v}"),
            json!({"type": "fanout"}),
        );
        h.post(&format!("/api/bindings/{v}/e/x-{v}/q/q-{v}"), json!({}));
    }
    h.add_user("alice", "pw", "management");
    h.put(
        "/api/permissions/mine/alice",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    let alice = Some(("alice", "pw"));
    let get = |path: &str| h.request("GET", path, alice, None);

    let names = |v: Value, field: &str| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i[field].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(get("/api/vhosts").json(), "name"), ["mine"]);
    assert_eq!(names(get("/api/queues").json(), "vhost"), ["mine"]);
    assert!(names(get("/api/exchanges").json(), "vhost")
        .iter()
        .all(|v| v == "mine"));
    assert!(names(get("/api/bindings").json(), "vhost")
        .iter()
        .all(|v| v == "mine"));
    assert_eq!(get("/api/overview").json()["object_totals"]["queues"], 1);
    for path in [
        "/api/vhosts/theirs",
        "/api/queues/theirs",
        "/api/queues/theirs/q-theirs",
        "/api/queues/theirs/no-such-queue",
        "/api/exchanges/theirs",
        "/api/bindings/theirs",
        "/api/consumers/theirs",
        "/api/definitions",
        "/api/definitions/theirs",
        "/api/permissions",
    ] {
        assert_eq!(get(path).status, 401, "{path}");
    }
    for (method, path) in [
        ("PUT", "/api/queues/theirs/new"),
        ("DELETE", "/api/queues/theirs/q-theirs"),
        ("POST", "/api/queues/theirs/q-theirs/get"),
        ("DELETE", "/api/queues/theirs/q-theirs/contents"),
        ("POST", "/api/exchanges/theirs/x-theirs/publish"),
    ] {
        let r = h.request(method, path, alice, Some(json!({})));
        assert_eq!(r.status, 401, "{method} {path}");
    }
    assert_eq!(get("/api/queues/mine/q-mine").status, 200);
    // Within her vhost her permission regexes apply.
    h.put(
        "/api/permissions/mine/alice",
        json!({"configure": "^alice-", "write": "", "read": ""}),
    );
    let r = h.request("PUT", "/api/queues/mine/other", alice, Some(json!({})));
    assert_eq!(r.status, 401);
    let r = h.request("PUT", "/api/queues/mine/alice-q", alice, Some(json!({})));
    assert_eq!(r.status, 201);
    // Monitoring users see every vhost, as in RabbitMQ.
    h.add_user("mon", "pw", "monitoring");
    let r = h.request("GET", "/api/queues", Some(("mon", "pw")), None);
    assert_eq!(r.json().as_array().unwrap().len(), 3);
}

#[test]
fn definitions_export_then_import_round_trip() {
    let h = start();
    h.put("/api/vhosts/app", json!({"description": "the app"}));
    h.add_user("svc", "s3cret", "management");
    h.put(
        "/api/permissions/app/svc",
        json!({"configure": "", "write": "^ev", "read": "^jobs"}),
    );
    h.put(
        "/api/permissions/app/guest",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    h.put(
        "/api/exchanges/app/events",
        json!({"type": "direct", "arguments": {"alternate-exchange": "ae"}}),
    );
    h.put(
        "/api/exchanges/app/fan",
        json!({"type": "fanout", "auto_delete": false, "internal": true}),
    );
    h.put(
        "/api/queues/app/jobs",
        json!({"arguments": {"x-message-ttl": 60000}}),
    );
    h.post(
        "/api/bindings/app/e/events/q/jobs",
        json!({"routing_key": "job", "arguments": {"x-match": "all"}}),
    );
    h.post(
        "/api/bindings/app/e/events/e/fan",
        json!({"routing_key": "fan"}),
    );
    let r = h.put(
        "/api/policies/app/cap",
        json!({"pattern": "^jobs$", "definition": {"max-length": 100}, "priority": 2, "apply-to": "queues"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = h.put(
        "/api/operator-policies/app/limit",
        json!({"pattern": ".*", "definition": {"message-ttl": 30000}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    let exported = h.get("/api/definitions").json();
    assert_eq!(
        exported["policies"],
        json!([{"vhost": "app", "name": "cap", "pattern": "^jobs$", "apply-to": "queues",
                "definition": {"max-length": 100}, "priority": 2}])
    );
    assert_eq!(
        exported["parameters"],
        json!([{"vhost": "app", "component": "operator_policy", "name": "limit",
                "value": {"pattern": ".*", "definition": {"message-ttl": 30000},
                          "priority": 0, "apply-to": "all"}}])
    );
    assert_eq!(exported["rabbit_version"], "3.10.0");
    let svc = exported["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "svc")
        .unwrap()
        .clone();
    assert_eq!(svc["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(svc["tags"], json!(["management"]));
    assert_eq!(exported["queues"].as_array().unwrap().len(), 1);
    assert_eq!(
        exported["exchanges"].as_array().unwrap().len(),
        2,
        "no amq.* ones"
    );
    assert_eq!(
        exported["bindings"].as_array().unwrap().len(),
        2,
        "no default-exchange ones"
    );
    let per_vhost = h.get("/api/definitions/app").json();
    assert!(per_vhost["queues"][0].get("vhost").is_none());

    // Wipe it all, then import.
    assert_eq!(h.delete("/api/vhosts/app").status, 204);
    assert_eq!(h.delete("/api/users/svc").status, 204);
    assert!(h.broker.access.authenticate("svc", "s3cret").is_none());
    let r = h.post("/api/definitions", exported.clone());
    assert_eq!(r.status, 204, "{}", r.body);

    assert!(
        h.broker.access.authenticate("svc", "s3cret").is_some(),
        "password survives"
    );
    assert_eq!(h.get("/api/vhosts/app").json()["description"], "the app");
    assert_eq!(
        h.get("/api/queues/app/jobs").json()["arguments"]["x-message-ttl"],
        60000
    );
    assert_eq!(h.get("/api/exchanges/app/fan").json()["internal"], true);
    let jobs = h.get("/api/queues/app/jobs").json();
    assert_eq!(jobs["policy"], "cap");
    assert_eq!(jobs["operator_policy"], "limit");
    assert_eq!(
        jobs["effective_policy_definition"],
        json!({"max-length": 100, "message-ttl": 30000})
    );
    let again = h.get("/api/definitions").json();
    for key in [
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
        "policies",
        "parameters",
    ] {
        assert_eq!(again[key], exported[key], "{key}");
    }
    // The imported topology routes.
    let r = h.post(
        "/api/exchanges/app/events/publish",
        json!({"properties": {}, "routing_key": "job", "payload": "x", "payload_encoding": "string"}),
    );
    assert_eq!(r.json()["routed"], true);

    // Per-vhost import into another vhost.
    h.put("/api/vhosts/copy", json!({}));
    assert_eq!(h.post("/api/definitions/copy", per_vhost).status, 204);
    assert_eq!(h.get("/api/queues/copy/jobs").status, 200);
    // A plugin's runtime parameter is refused, not dropped.
    let r = h.post(
        "/api/definitions",
        json!({"parameters": [{"vhost": "app", "component": "federation-upstream", "name": "up", "value": {}}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // A broken file changes nothing it cannot do and says why.
    let r = h.post(
        "/api/definitions",
        json!({"queues": [{"name": "q", "vhost": "nope"}]}),
    );
    assert_eq!(r.status, 400);
}

/// Policies are for administrators and, in their vhosts, policymakers; operator policies for
/// administrators only. Anyone who may see a vhost may list them.
#[test]
fn who_may_set_policies_and_operator_policies() {
    let h = start();
    h.add_user("maker", "pw", "policymaker");
    h.add_user("watcher", "pw", "management");
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    h.put("/api/permissions/%2F/maker", all.clone());
    h.put("/api/permissions/%2F/watcher", all);
    h.put("/api/vhosts/other", json!({}));
    let body = json!({"pattern": "^q", "definition": {"max-length": 1}});
    let as_user = |user: &str, method: &str, path: &str| {
        h.request(method, path, Some((user, "pw")), Some(body.clone()))
            .status
    };
    assert_eq!(as_user("maker", "PUT", "/api/policies/%2F/p"), 201);
    assert_eq!(
        as_user("maker", "PUT", "/api/policies/other/p"),
        401,
        "no permissions there"
    );
    assert_eq!(as_user("maker", "PUT", "/api/operator-policies/%2F/o"), 401);
    assert_eq!(as_user("watcher", "PUT", "/api/policies/%2F/w"), 401);
    assert_eq!(as_user("watcher", "GET", "/api/policies/%2F"), 200);
    assert_eq!(as_user("watcher", "DELETE", "/api/policies/%2F/p"), 401);
    assert_eq!(as_user("maker", "DELETE", "/api/policies/%2F/p"), 204);
    let r = h.put("/api/policies/nowhere/p", body.clone());
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    assert_eq!(h.get("/api/policies/%2F/p").status, 404);
    assert_eq!(h.get("/api/policies/nowhere").status, 404);
}

#[test]
fn listings_page_filter_and_sort_like_rabbitmq() {
    let h = start();
    for i in 0..30 {
        assert_eq!(
            h.put(
                &format!("/api/queues/%2F/q{i:02}"),
                json!({"durable": false})
            )
            .status,
            201
        );
    }
    h.post(
        "/api/exchanges/%2F/amq.default/publish",
        json!({"properties": {}, "routing_key": "q07", "payload": "x", "payload_encoding": "string"}),
    );
    let all = h.get("/api/queues").json();
    assert_eq!(all.as_array().unwrap().len(), 30, "no page: a plain list");
    assert_eq!(all[0]["name"], "q00");

    let p = h
        .get("/api/queues?page=2&page_size=10&sort=name&sort_reverse=true")
        .json();
    assert_eq!(
        (
            p["page"].as_u64(),
            p["page_count"].as_u64(),
            p["page_size"].as_u64()
        ),
        (Some(2), Some(3), Some(10))
    );
    assert_eq!(
        (
            p["total_count"].as_u64(),
            p["filtered_count"].as_u64(),
            p["item_count"].as_u64()
        ),
        (Some(30), Some(30), Some(10))
    );
    assert_eq!(p["items"][0]["name"], "q19");

    let f = h.get("/api/queues/%2F?page=1&name=Q1").json();
    assert_eq!(f["filtered_count"], 10);
    let re = h
        .get("/api/queues?page=1&name=%5Eq0%5B0-4%5D%24&use_regex=true")
        .json();
    assert_eq!(re["filtered_count"], 5);
    let by_messages = h
        .get("/api/queues?sort=messages&sort_reverse=true&columns=name,messages")
        .json();
    assert_eq!(by_messages[0], json!({"name": "q07", "messages": 1}));
    assert_eq!(h.get("/api/queues?page=9").status, 400);
    assert_eq!(h.get("/api/queues?page=1&page_size=501").status, 400);
    assert_eq!(
        h.get("/api/exchanges?page=1&page_size=2").json()["item_count"],
        2
    );
}

#[test]
fn connections_channels_consumers_and_forced_close() {
    let h = start();
    let mut first = h.rt.block_on(async {
        let mut raw = Raw::open(h.amqp_port, "/").await;
        raw.consume("watched", "tag-1").await;
        raw
    });
    let conns = h.get("/api/connections").json();
    assert_eq!(conns.as_array().unwrap().len(), 1);
    let c = &conns[0];
    assert_eq!(
        (c["user"].as_str(), c["vhost"].as_str()),
        (Some("guest"), Some("/"))
    );
    assert_eq!(c["peer_host"], "127.0.0.1");
    assert!(c["client_properties"]["product"].is_string());
    let name = c["name"].as_str().unwrap().to_string();

    let channels = h.get("/api/channels").json();
    assert_eq!(channels[0]["consumer_count"], 1);
    assert_eq!(channels[0]["number"], 1);
    let consumers = h.get("/api/consumers").json();
    assert_eq!(consumers[0]["consumer_tag"], "tag-1");
    assert_eq!(consumers[0]["prefetch_count"], 7);
    assert_eq!(
        consumers[0]["queue"],
        json!({"name": "watched", "vhost": "/"})
    );
    let q = h.get("/api/queues/%2F/watched").json();
    assert_eq!(q["consumers"], 1);
    assert_eq!(q["consumer_details"][0]["consumer_tag"], "tag-1");

    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b' ' => "%20".to_string(),
            b'>' => "%3E".to_string(),
            b => (b as char).to_string(),
        })
        .collect();
    assert_eq!(
        h.get(&format!("/api/connections/{encoded}")).json()["name"],
        name
    );
    assert_eq!(
        h.get(&format!("/api/connections/{encoded}/channels"))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.delete(&format!("/api/connections/{encoded}")).status, 204);
    let (code, _) = h.rt.block_on(first.closed());
    assert_eq!(code, 320);
    eventually("the registry to forget it", || {
        h.get("/api/connections")
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    });
    assert_eq!(h.get(&format!("/api/connections/{encoded}")).status, 404);
    assert_eq!(h.get("/api/queues/%2F/watched").json()["consumers"], 0);

    // What the client is told: 320 CONNECTION_FORCED, with RabbitMQ's text.
    let mut raw = h.rt.block_on(Raw::open(h.amqp_port, "/"));
    let c = h.get("/api/connections").json()[0].clone();
    assert_eq!(c["user_provided_name"], "raw-1");
    let path = format!(
        "/api/connections/{}",
        c["name"]
            .as_str()
            .unwrap()
            .replace(' ', "%20")
            .replace('>', "%3E")
    );
    assert_eq!(h.delete(&path).status, 204);
    let (code, text) = h.rt.block_on(raw.closed());
    assert_eq!(
        (code, text.as_str()),
        (320, "CONNECTION_FORCED - Closed via management plugin")
    );

    // Deleting a vhost closes its connections.
    h.put("/api/vhosts/doomed", json!({}));
    h.put(
        "/api/permissions/doomed/guest",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    );
    let mut doomed = h.rt.block_on(Raw::open(h.amqp_port, "doomed"));
    assert_eq!(
        h.get("/api/vhosts/doomed/connections")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.delete("/api/vhosts/doomed").status, 204);
    let (code, text) = h.rt.block_on(doomed.closed());
    assert_eq!(
        (code, text.as_str()),
        (320, "CONNECTION_FORCED - vhost is deleted")
    );
    drop((first, raw, doomed));
    eventually("the registry to forget them", || {
        h.get("/api/connections")
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    });
    let o = h.get("/api/overview").json();
    assert_eq!(o["object_totals"]["connections"], 0);
    assert!(o["churn_rates"]["connection_closed"].as_u64().unwrap() >= 2);
}

/// Consumers of a single-active-consumer queue show which one is delivered to, with
/// RabbitMQ's `active` and `activity_status`; the next takes over when the active one goes.
#[test]
fn single_active_consumers_show_which_one_is_active() {
    use warren_broker::vhost::QueueDeclare;
    use warren_broker::{ConnectionId, QueueConfig};
    let h = start();
    let mut arguments = warren_protocol::FieldTable::new();
    arguments.insert("x-single-active-consumer", true);
    h.broker
        .vhost("/")
        .unwrap()
        .declare_queue(
            ConnectionId(0),
            QueueDeclare {
                name: "sac".into(),
                server_named: false,
                passive: false,
                config: QueueConfig {
                    durable: false,
                    exclusive: false,
                    auto_delete: false,
                    arguments,
                },
            },
        )
        .unwrap();
    let open_and_subscribe = |tag: &'static str| {
        h.rt.block_on(async {
            use warren_protocol::*;
            let mut raw = Raw::open(h.amqp_port, "/").await;
            raw.send_on(1, Method::ChannelOpen(ChannelOpen::default()))
                .await;
            assert!(matches!(raw.recv().await, Method::ChannelOpenOk(_)));
            raw.subscribe("sac", tag).await;
            raw
        })
    };
    let first = open_and_subscribe("first");
    let _second = open_and_subscribe("second");
    let status = |h: &Harness| -> Vec<(String, bool, String)> {
        let mut all: Vec<_> = h
            .get("/api/consumers")
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["consumer_tag"].as_str().unwrap().to_string(),
                    c["active"].as_bool().unwrap(),
                    c["activity_status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(
        status(&h),
        [
            ("first".into(), true, "single_active".into()),
            ("second".into(), false, "waiting".into())
        ]
    );
    drop(first);
    eventually("the second consumer takes over", || {
        status(&h) == [("second".into(), true, "single_active".into())]
    });
}

#[test]
fn guest_is_refused_from_a_non_loopback_address() {
    let h = start();
    h.add_user("ops", "pw", "administrator");
    // The same API, but every request appears to come from 10.1.2.3.
    let state = AppState::new(h.broker.clone(), HttpConfig::default());
    let remote = std::net::SocketAddr::from(([10, 1, 2, 3], 40000));
    let port = h.rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = state
            .router()
            .layer(axum::extract::connect_info::MockConnectInfo(remote));
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    });
    let remote_h = Harness {
        base: format!("http://127.0.0.1:{port}"),
        ..h
    };
    let r = remote_h.request("GET", "/api/overview", Some(ADMIN), None);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "User can only log in via localhost");
    let r = remote_h.request("GET", "/api/overview", Some(("ops", "pw")), None);
    assert_eq!(r.status, 200);
}
