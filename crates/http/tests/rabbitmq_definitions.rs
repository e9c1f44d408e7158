//! A definitions file exported from RabbitMQ 3.10 imports into Warren and works there as it
//! did in RabbitMQ.
//!
//! `fixtures/rabbitmq-3.10-definitions.json` is RabbitMQ's own `GET /api/definitions` output
//! (made by `fixtures/make-rabbitmq-definitions.sh`): two vhosts, users with RabbitMQ's salted
//! SHA-256 password hashes, permission regexes, exchanges of every type with arguments, an
//! exchange-to-exchange binding, queues with arguments Warren does not act on yet (TTL,
//! dead-lettering, length limits) and a headers binding. `fixtures/rabbitmq-3.10-expectations.json`
//! lists what RabbitMQ did with it: logins, routes and permission decisions, each checked
//! against that RabbitMQ node by `fixtures/check-rabbitmq.py`. These tests POST the file to an
//! in-process Warren's `/api/definitions` and hold Warren to the same list, over AMQP with
//! amqprs and over HTTP.

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel,
    ConfirmSelectArguments, ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
    QueueDeleteArguments, QueuePurgeArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::error::Error as ClientError;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use warren_http::HttpConfig;
use warren_server::ServerConfig;

const DEFINITIONS: &str = include_str!("fixtures/rabbitmq-3.10-definitions.json");
const EXPECTATIONS: &str = include_str!("fixtures/rabbitmq-3.10-expectations.json");

/// How long any one expected reply may take (generous: the machine is shared).
const WAIT: Duration = Duration::from_secs(10);

/// RabbitMQ's export, as a JSON value.
fn definitions() -> Value {
    serde_json::from_str(DEFINITIONS).expect("the fixture is JSON")
}

fn importable() -> String {
    definitions().to_string()
}

fn expectations() -> Value {
    serde_json::from_str(EXPECTATIONS).expect("the expectations are JSON")
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map_or(&[], Vec::as_slice)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("'{key}' is not a string in {v}"))
}

// ---- an in-process Warren with the definitions imported -----------------------------------

struct Node {
    rt: Runtime,
    http: String,
    amqp_port: u16,
    agent: ureq::Agent,
    _stop: watch::Sender<bool>,
}

fn start() -> Node {
    // The server offers heartbeats: amqprs cannot run a connection that negotiates none.
    let warren_testkit::Started {
        rt,
        amqp_port,
        http_port,
        stop,
        ..
    } = warren_testkit::start(ServerConfig::default(), |_, _| HttpConfig::default());
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .into();
    Node {
        rt,
        http: format!("http://127.0.0.1:{http_port}"),
        amqp_port,
        agent,
        _stop: stop,
    }
}

impl Node {
    /// `(status, body)` of a request with basic auth.
    fn call(
        &self,
        method: &str,
        path: &str,
        auth: (&str, &str),
        body: Option<&str>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.http);
        let header = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", auth.0, auth.1))
        );
        let result = match method {
            "GET" => self.agent.get(&url).header("Authorization", &header).call(),
            "POST" => self
                .agent
                .post(&url)
                .header("Authorization", &header)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or("{}")),
            other => panic!("unsupported method {other}"),
        };
        let mut r = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, ("guest", "guest"), None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A Warren that has imported the RabbitMQ file through `POST /api/definitions`.
fn imported() -> Node {
    let defs = definitions();
    assert!(
        text(&defs, "rabbit_version").starts_with("3.10."),
        "the fixture is a RabbitMQ 3.10 export"
    );
    let node = start();
    let (status, body) = node.call(
        "POST",
        "/api/definitions",
        ("guest", "guest"),
        Some(importable().as_str()),
    );
    assert_eq!(status, 204, "import refused: {body}");
    node
}

// ---- amqprs with the server's channel closes and confirms observable ------------------------

fn password(user: &str) -> String {
    expectations()["passwords"][user]
        .as_str()
        .unwrap_or("no-such-password")
        .to_string()
}

/// The reply code in an amqprs error that carries the server's connection.close.
fn reply_code(e: &ClientError) -> Option<u16> {
    let s = format!("{e:?}");
    let at = s.find("reply_code: ")? + "reply_code: ".len();
    let digits: String = s[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn connect(
    port: u16,
    user: &str,
    pass: &str,
    vhost: &str,
) -> Result<Connection, ClientError> {
    let args = OpenConnectionArguments::new("127.0.0.1", port, user, pass)
        .virtual_host(vhost)
        .finish();
    tokio::time::timeout(WAIT, Connection::open(&args))
        .await
        .unwrap_or_else(|_| panic!("{user}@{vhost}: no answer to the login"))
}

enum Event {
    Closed(u16, String),
    Ack,
    Nack,
}

struct Events(mpsc::UnboundedSender<Event>);

#[async_trait]
impl ChannelCallback for Events {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<(), ClientError> {
        let _ = self.0.send(Event::Closed(
            close.reply_code(),
            close.reply_text().clone(),
        ));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), ClientError> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, ClientError> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, _: Ack) {
        let _ = self.0.send(Event::Ack);
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {
        let _ = self.0.send(Event::Nack);
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

struct Chan {
    ch: Channel,
    events: mpsc::UnboundedReceiver<Event>,
}

async fn channel(conn: &Connection) -> Chan {
    let ch = conn.open_channel(None).await.expect("channel opens");
    let (tx, events) = mpsc::unbounded_channel();
    ch.register_callback(Events(tx)).await.unwrap();
    Chan { ch, events }
}

impl Chan {
    /// How the request just made ended: `Ok` or the code of the channel.close it drew.
    async fn outcome<T>(&mut self, result: Result<T, ClientError>) -> Result<(), (u16, String)> {
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(self
                .closed()
                .await
                .unwrap_or_else(|| panic!("failed without a close: {e}"))),
        }
    }

    async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(Event::Closed(code, text))) => return Some((code, text)),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Publishes in confirm mode and waits for the confirm (or the channel's close).
    async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        headers: Option<&Value>,
        body: &str,
    ) -> Result<(), (u16, String)> {
        self.ch
            .confirm_select(ConfirmSelectArguments::default())
            .await
            .expect("confirm.select");
        let mut props = BasicProperties::default();
        if let Some(h) = headers.and_then(Value::as_object) {
            let mut table = FieldTable::new();
            for (k, v) in h {
                let v = v.as_str().expect("string headers");
                table.insert(k.as_str().try_into().unwrap(), FieldValue::from(v));
            }
            props.with_headers(table);
        }
        self.ch
            .basic_publish(
                props.finish(),
                body.as_bytes().to_vec(),
                BasicPublishArguments::new(exchange, routing_key),
            )
            .await
            .expect("basic.publish is written");
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(Event::Ack)) => Ok(()),
            Ok(Some(Event::Nack)) => panic!("a publish to '{exchange}' was nacked"),
            Ok(Some(Event::Closed(code, text))) => Err((code, text)),
            _ => panic!("no confirm for a publish to '{exchange}'"),
        }
    }

    /// Takes every message from `queues`; returns the queues `body` was in.
    async fn drain_for(&self, queues: &[String], body: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for q in queues {
            while let Some((_, _, content)) = self
                .ch
                .basic_get(BasicGetArguments::new(q).no_ack(true).finish())
                .await
                .unwrap_or_else(|e| panic!("basic.get {q}: {e}"))
            {
                if content == body.as_bytes() {
                    found.insert(q.clone());
                }
            }
        }
        found
    }
}

/// The queues of `vhost` the definitions hold.
fn queues_of(vhost: &str) -> Vec<String> {
    items(&definitions(), "queues")
        .iter()
        .filter(|q| text(q, "vhost") == vhost)
        .map(|q| text(q, "name").to_string())
        .collect()
}

/// `"ok"` or a reply code, as the expectations write them.
fn expected(case: &Value) -> Result<(), u16> {
    match &case["expect"] {
        Value::String(s) if s == "ok" => Ok(()),
        Value::Number(n) => Err(n.as_u64().unwrap() as u16),
        other => panic!("bad expectation {other}"),
    }
}

// ---- the tests ---------------------------------------------------------------------------------

/// Every queue, exchange and binding arrives with its arguments, including those Warren does
/// not act on yet, and a re-export gives them back as RabbitMQ wrote them.
#[test]
fn definitions_import_and_export_back_unchanged() {
    let node = imported();
    let ours = node.get_json("/api/definitions");
    let theirs = definitions();

    let users = |d: &Value| -> BTreeSet<String> {
        items(d, "users")
            .iter()
            .map(|u| {
                format!(
                    "{} {} {} {}",
                    u["name"], u["password_hash"], u["hashing_algorithm"], u["tags"]
                )
            })
            .collect()
    };
    assert_eq!(
        users(&ours),
        users(&theirs),
        "users keep RabbitMQ's hashes and tags"
    );
    let names = |d: &Value, key: &str| -> BTreeSet<String> {
        items(d, key)
            .iter()
            .map(|v| v["name"].to_string())
            .collect()
    };
    assert_eq!(names(&ours, "vhosts"), names(&theirs, "vhosts"));
    let fields = |d: &Value, key: &str, keep: &[&str]| -> BTreeSet<String> {
        items(d, key)
            .iter()
            .map(|v| {
                keep.iter()
                    .map(|k| v[*k].to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let perm = ["user", "vhost", "configure", "write", "read"];
    assert_eq!(
        fields(&ours, "permissions", &perm),
        fields(&theirs, "permissions", &perm)
    );
    let queue = ["vhost", "name", "durable", "auto_delete", "arguments"];
    assert_eq!(
        fields(&ours, "queues", &queue),
        fields(&theirs, "queues", &queue)
    );
    let exchange = [
        "vhost",
        "name",
        "type",
        "durable",
        "auto_delete",
        "internal",
        "arguments",
    ];
    assert_eq!(
        fields(&ours, "exchanges", &exchange),
        fields(&theirs, "exchanges", &exchange)
    );
    let binding = [
        "vhost",
        "source",
        "destination",
        "destination_type",
        "routing_key",
        "arguments",
    ];
    assert_eq!(
        fields(&ours, "bindings", &binding),
        fields(&theirs, "bindings", &binding)
    );

    // The queue API shows the arguments too (what the UI and rabbitmqadmin read).
    let shipped = node.get_json("/api/queues/orders/orders.shipped");
    assert_eq!(shipped["arguments"]["x-message-ttl"], 60000);
    assert_eq!(shipped["arguments"]["x-dead-letter-exchange"], "orders.dlx");

    // Importing the same file again changes nothing (RabbitMQ's import is idempotent too).
    let (status, body) = node.call(
        "POST",
        "/api/definitions",
        ("guest", "guest"),
        Some(importable().as_str()),
    );
    assert_eq!(status, 204, "{body}");
    let again = node.get_json("/api/definitions");
    assert_eq!(
        fields(&again, "bindings", &binding),
        fields(&theirs, "bindings", &binding)
    );
}

/// Users log in with the passwords they had in RabbitMQ (its hashes verify here), over AMQP
/// and the management API, and only to the vhosts RabbitMQ let them into.
#[test]
fn imported_users_log_in_with_their_rabbitmq_passwords() {
    let node = imported();
    let exp = expectations();
    for case in items(&exp, "logins") {
        let (user, vhost) = (text(case, "user"), text(case, "vhost"));
        let pass = case["password"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| password(user));
        let got = node.rt.block_on(async {
            match connect(node.amqp_port, user, &pass, vhost).await {
                Ok(conn) => {
                    conn.close().await.unwrap();
                    Ok(())
                }
                Err(e) => Err(match reply_code(&e) {
                    Some(code) => code,
                    // RabbitMQ answers a failed login with connection.close 403 only to clients
                    // that announce `authentication_failure_close` (pika does, amqprs does not);
                    // the others see the socket close during the handshake, here as there.
                    None if matches!(e, ClientError::NetworkError(_)) => 403,
                    None => panic!("{user}@{vhost}: {e}"),
                }),
            }
        });
        assert_eq!(
            got,
            expected(case),
            "login of {user} to {vhost} with {pass:?}"
        );
    }
    for case in items(&exp, "management") {
        let user = text(case, "user");
        let (status, body) = node.call("GET", "/api/whoami", (user, &password(user)), None);
        assert_eq!(
            Some(status as u64),
            case["expect"].as_u64(),
            "{user}: {body}"
        );
        if let Some(tags) = case.get("tags") {
            let me: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(&me["tags"], tags, "{user}");
        }
    }
}

/// Messages published to the imported exchanges reach exactly the queues RabbitMQ routed them
/// to: direct, topic, fanout and headers bindings, exchange-to-exchange bindings, the default
/// exchange, a binding from `amq.direct`, and an alternate exchange for the unroutable.
#[test]
fn imported_topology_routes_as_in_rabbitmq() {
    let node = imported();
    let exp = expectations();
    node.rt.block_on(async {
        // One reader per vhost, allowed to read everything there.
        let mut readers = std::collections::HashMap::new();
        for vhost in ["/", "orders"] {
            let conn = connect(node.amqp_port, "ops-admin", &password("ops-admin"), vhost)
                .await
                .expect("ops-admin logs in");
            let ch = channel(&conn).await;
            ch.drain_for(&queues_of(vhost), "").await;
            readers.insert(vhost, (conn, ch));
        }
        for (n, case) in items(&exp, "routes").iter().enumerate() {
            let (user, vhost) = (text(case, "user"), text(case, "vhost"));
            let (exchange, key) = (text(case, "exchange"), text(case, "routing_key"));
            let body = format!("route-{n}");
            let conn = connect(node.amqp_port, user, &password(user), vhost)
                .await
                .unwrap_or_else(|e| panic!("{user}@{vhost}: {e}"));
            let mut ch = channel(&conn).await;
            ch.publish(exchange, key, case.get("headers"), &body)
                .await
                .unwrap_or_else(|c| panic!("{user} may publish to '{exchange}': {c:?}"));
            conn.close().await.unwrap();
            let landed = readers[vhost].1.drain_for(&queues_of(vhost), &body).await;
            let want: BTreeSet<String> = case["queues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q.as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                landed, want,
                "publish to '{exchange}' in {vhost} with key '{key}' and headers {}",
                case["headers"]
            );
        }
        for (_, (conn, _)) in readers {
            conn.close().await.unwrap();
        }
    });
}

/// The imported permission regexes allow and refuse exactly what they did in RabbitMQ, each
/// refusal a 403 on the channel (the connection goes on).
#[test]
fn imported_permissions_decide_as_in_rabbitmq() {
    let node = imported();
    let exp = expectations();
    for case in items(&exp, "operations") {
        let (user, vhost, op) = (text(case, "user"), text(case, "vhost"), text(case, "op"));
        let name = |k: &str| case[k].as_str().unwrap_or_default().to_string();
        let got = node.rt.block_on(async {
            let conn = connect(node.amqp_port, user, &password(user), vhost)
                .await
                .unwrap_or_else(|e| panic!("{user}@{vhost}: {e}"));
            let mut ch = channel(&conn).await;
            let c = &ch.ch;
            let result = match op {
                "queue.declare" => {
                    let passive = case["passive"].as_bool().unwrap_or(false);
                    let args = QueueDeclareArguments::new(&name("queue"))
                        .passive(passive)
                        .finish();
                    let r = c.queue_declare(args).await;
                    ch.outcome(r).await
                }
                "queue.bind" => {
                    let args = QueueBindArguments::new(
                        &name("queue"),
                        &name("exchange"),
                        &name("routing_key"),
                    );
                    let r = c.queue_bind(args).await;
                    ch.outcome(r).await
                }
                "queue.purge" => {
                    let r = c
                        .queue_purge(QueuePurgeArguments::new(&name("queue")))
                        .await;
                    ch.outcome(r).await
                }
                "queue.delete" => {
                    let r = c
                        .queue_delete(QueueDeleteArguments::new(&name("queue")))
                        .await;
                    ch.outcome(r).await
                }
                "exchange.declare" => {
                    let r = c
                        .exchange_declare(ExchangeDeclareArguments::new(
                            &name("exchange"),
                            &name("type"),
                        ))
                        .await;
                    ch.outcome(r).await
                }
                "basic.get" => {
                    let r = c
                        .basic_get(BasicGetArguments::new(&name("queue")).no_ack(true).finish())
                        .await;
                    ch.outcome(r).await
                }
                "basic.consume" => {
                    let args = BasicConsumeArguments::new(&name("queue"), "permission-check");
                    let r = c.basic_consume_rx(args).await;
                    ch.outcome(r).await
                }
                "basic.publish" => {
                    ch.publish(&name("exchange"), &name("routing_key"), None, "op")
                        .await
                }
                other => panic!("unknown operation {other}"),
            };
            // A refusal closes the channel only: the connection still opens channels. (Closed
            // explicitly: amqprs closes a dropped channel in the background, which races the
            // connection's close.)
            if result.is_ok() {
                ch.ch
                    .close()
                    .await
                    .expect("channel.close after an allowed operation");
            }
            let probe = channel(&conn).await;
            if let Err(e) = probe.ch.close().await {
                panic!("{user} {op} in {vhost} ({result:?}): no channel after it: {e}");
            }
            conn.close().await.expect("connection.close");
            result
        });
        let target = case.get("queue").or(case.get("exchange")).unwrap();
        match (got, expected(case)) {
            (Ok(()), Ok(())) => {}
            (Err((code, text)), Err(want)) => {
                assert_eq!(code, want, "{user} {op} {target} in {vhost}: {text}");
                assert!(
                    text.starts_with("ACCESS_REFUSED"),
                    "{user} {op} {target}: {text}"
                );
            }
            (got, want) => {
                panic!("{user} {op} {target} in {vhost}: got {got:?}, RabbitMQ {want:?}")
            }
        }
    }
}
