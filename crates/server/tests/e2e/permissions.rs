//! Every AMQP operation checks the permission RabbitMQ checks, on the resource RabbitMQ checks:
//! configure to declare and delete, write to publish and to be bound to, read to consume, get,
//! purge and to be bound from. A refusal is 403 on the channel; the connection goes on.

use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, ExchangeBindArguments,
    ExchangeDeclareArguments, ExchangeDeleteArguments, QueueBindArguments, QueueDeclareArguments,
    QueueDeleteArguments, QueuePurgeArguments,
};
use amqprs::BasicProperties;
use warren_broker::auth::Permissions;

use crate::common::*;

/// A user allowed only resources whose names start with "ok-", with some for it to use.
async fn setup(server: &TestServer) -> Client {
    let admin = server.connect().await;
    let ch = admin.channel().await;
    for q in ["ok-q", "no-q"] {
        ch.declare(q).await;
    }
    for x in ["ok-x", "no-x"] {
        ch.exchange_declare(ExchangeDeclareArguments::new(x, "direct"))
            .await
            .unwrap();
    }
    admin.close().await;
    server.broker.access.add_user("app", "app-pw", &[]).unwrap();
    let ok = "^ok-";
    server
        .broker
        .access
        .set_permissions("/", "app", Permissions::new(ok, ok, ok).unwrap())
        .unwrap();
    let args = server
        .args()
        .credentials(amqprs::security::SecurityCredentials::new_plain(
            "app", "app-pw",
        ))
        .finish();
    server.connect_with(&args).await.expect("app logs in")
}

/// `permission` is the one the operation needs; RabbitMQ's text names only the resource.
fn assert_refused(closed: Closed, permission: &str, resource: &str) {
    assert_eq!(closed.code, 403, "{closed:?}");
    assert!(
        closed
            .text
            .starts_with(&format!("ACCESS_REFUSED - access to {resource}"))
            && closed.text.ends_with("in vhost '/' refused for user 'app'"),
        "expected {permission} refused on {resource}: {closed:?}"
    );
}

#[tokio::test]
async fn configure_is_needed_to_declare_and_delete() {
    let server = start().await;
    let app = setup(&server).await;

    let ch = app.channel().await;
    let closed = ch
        .refused(ch.exchange_declare(ExchangeDeclareArguments::new("no-x2", "direct")))
        .await;
    assert_refused(closed, "configure", "exchange 'no-x2'");
    let ch = app.channel().await;
    ch.exchange_declare(ExchangeDeclareArguments::new("ok-x2", "direct"))
        .await
        .unwrap();

    let closed = ch
        .refused(ch.exchange_delete(ExchangeDeleteArguments::new("no-x")))
        .await;
    assert_refused(closed, "configure", "exchange 'no-x'");

    let ch = app.channel().await;
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new("no-q2")))
        .await;
    assert_refused(closed, "configure", "queue 'no-q2'");
    let ch = app.channel().await;
    assert_eq!(ch.declare("ok-q2").await, "ok-q2");
    // Server-named queues are checked under the name the server picks, as in RabbitMQ.
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new("")))
        .await;
    assert_refused(closed, "configure", "queue 'amq.gen-");

    let ch = app.channel().await;
    let closed = ch
        .refused(ch.queue_delete(QueueDeleteArguments::new("no-q")))
        .await;
    assert_refused(closed, "configure", "queue 'no-q'");
    // Passive declares need no permission: they change nothing.
    let ch = app.channel().await;
    ch.queue_declare(QueueDeclareArguments::new("no-q").passive(true).finish())
        .await
        .unwrap();
    app.close().await;
}

#[tokio::test]
async fn binding_needs_write_on_the_destination_and_read_on_the_source() {
    let server = start().await;
    let app = setup(&server).await;

    let ch = app.channel().await;
    let closed = ch
        .refused(ch.queue_bind(QueueBindArguments::new("no-q", "ok-x", "k")))
        .await;
    assert_refused(closed, "write", "queue 'no-q'");
    let ch = app.channel().await;
    let closed = ch
        .refused(ch.queue_bind(QueueBindArguments::new("ok-q", "no-x", "k")))
        .await;
    assert_refused(closed, "read", "exchange 'no-x'");
    let ch = app.channel().await;
    ch.queue_bind(QueueBindArguments::new("ok-q", "ok-x", "k"))
        .await
        .unwrap();

    let closed = ch
        .refused(ch.exchange_bind(ExchangeBindArguments::new("no-x", "ok-x", "k")))
        .await;
    assert_refused(closed, "write", "exchange 'no-x'");
    let ch = app.channel().await;
    let closed = ch
        .refused(ch.exchange_bind(ExchangeBindArguments::new("ok-x", "no-x", "k")))
        .await;
    assert_refused(closed, "read", "exchange 'no-x'");
    app.close().await;
}

#[tokio::test]
async fn publishing_needs_write_on_the_exchange() {
    let server = start().await;
    let app = setup(&server).await;

    let ch = app.channel().await;
    ch.publish("no-x", "k", "refused").await;
    assert_refused(ch.closed_by_server().await, "write", "exchange 'no-x'");
    // The default exchange is checked as "amq.default".
    let ch = app.channel().await;
    ch.publish("", "ok-q", "refused").await;
    assert_refused(
        ch.closed_by_server().await,
        "write",
        "exchange 'amq.default'",
    );

    let ch = app.channel().await;
    ch.queue_bind(QueueBindArguments::new("ok-q", "ok-x", "k"))
        .await
        .unwrap();
    ch.publish_with(
        BasicPublishArguments::new("ok-x", "k"),
        BasicProperties::default(),
        "allowed",
    )
    .await;
    assert_eq!(ch.drain("ok-q").await, ["allowed"]);
    app.close().await;
}

#[tokio::test]
async fn consuming_getting_and_purging_need_read_on_the_queue() {
    let server = start().await;
    let app = setup(&server).await;

    let ch = app.channel().await;
    let closed = ch
        .refused(ch.basic_get(BasicGetArguments::new("no-q")))
        .await;
    assert_refused(closed, "read", "queue 'no-q'");
    let ch = app.channel().await;
    let closed = ch
        .refused(ch.basic_consume_rx(BasicConsumeArguments::new("no-q", "")))
        .await;
    assert_refused(closed, "read", "queue 'no-q'");
    let ch = app.channel().await;
    let closed = ch
        .refused(ch.queue_purge(QueuePurgeArguments::new("no-q")))
        .await;
    assert_refused(closed, "read", "queue 'no-q'");

    let ch = app.channel().await;
    assert!(ch.get("ok-q", true).await.is_none());
    ch.queue_purge(QueuePurgeArguments::new("ok-q"))
        .await
        .unwrap();
    ch.consume_acked("ok-q").await;
    app.close().await;
}

#[tokio::test]
async fn a_user_without_permissions_on_a_vhost_cannot_open_it() {
    let server = start().await;
    server
        .broker
        .access
        .add_user("stranger", "pw", &[])
        .unwrap();
    let args = server
        .args()
        .credentials(amqprs::security::SecurityCredentials::new_plain(
            "stranger", "pw",
        ))
        .finish();
    assert!(
        server.connect_with(&args).await.is_err(),
        "connection.open must be refused (530)"
    );
    let (mut raw, _) = Raw::start(server.port).await;
    raw.start_ok("PLAIN", b"\0stranger\0pw").await;
    let _tune = raw.recv_method().await;
    raw.send_method(
        0,
        warren_protocol::Method::ConnectionTuneOk(Default::default()),
    )
    .await;
    let open = warren_protocol::ConnectionOpen {
        virtual_host: "/".into(),
        ..Default::default()
    };
    raw.send_method(0, warren_protocol::Method::ConnectionOpen(open))
        .await;
    match raw.recv_method().await {
        (0, warren_protocol::Method::ConnectionClose(c)) => {
            assert_eq!(c.reply_code, 530);
            assert!(
                c.reply_text
                    .to_string()
                    .contains("access to vhost '/' refused for user 'stranger'"),
                "{c:?}"
            );
        }
        other => panic!("expected connection.close 530, got {other:?}"),
    }
}
