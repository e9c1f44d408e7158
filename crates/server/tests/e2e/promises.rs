//! Promises a client must be able to rely on, each found broken once and kept here as a
//! regression test: no client input panics a connection, acks and frames at the edges of
//! their ranges mean what the spec says, memory stays bounded for consumers that cannot keep
//! up, names survive a restart byte for byte, and Warren is reachable wherever `localhost`
//! resolves.

use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, ExchangeUnbindArguments, QueueDeclareArguments, QueueUnbindArguments,
};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_broker::queue::{SOCKET_WINDOW, SOCKET_WINDOW_BYTES};
use warren_protocol::{
    constants::{FRAME_BODY, FRAME_HEADER},
    encode_content_header, BasicConsume, BasicPublish, Method, QueueDeclare, ShortStr, FRAME_END,
    PROTOCOL_HEADER,
};

use crate::common::*;

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue";

#[tokio::test]
async fn redeclaring_with_another_exclusive_flag_is_405_not_a_dead_connection() {
    let server = start().await;
    let owner = server.connect().await;
    let owner_ch = owner.channel().await;
    owner_ch.declare("shared").await;
    owner_ch
        .declare_with(QueueDeclareArguments::new("mine").exclusive(true).finish())
        .await;

    let other = server.connect().await;
    // Another client's non-exclusive queue, declared exclusive: RabbitMQ's 405.
    let ch = other.channel().await;
    let closed = ch
        .refused(
            ch.queue_declare(
                QueueDeclareArguments::new("shared")
                    .exclusive(true)
                    .finish(),
            ),
        )
        .await;
    assert_eq!(closed.code, 405, "{closed:?}");
    assert!(closed.text.starts_with(LOCKED), "{}", closed.text);
    assert_eq!((closed.class_id, closed.method_id), (50, 10));
    // Another client's exclusive queue, declared non-exclusive: the same 405.
    let ch = other.channel().await;
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new("mine")))
        .await;
    assert_eq!(closed.code, 405, "{closed:?}");
    // The owner itself redeclaring its own queue with the flag flipped: 405 as well.
    let ch = owner.channel().await;
    let closed = ch
        .refused(
            ch.queue_declare(
                QueueDeclareArguments::new("shared")
                    .exclusive(true)
                    .finish(),
            ),
        )
        .await;
    assert_eq!(closed.code, 405, "{closed:?}");

    // Both connections are alive and the registry lists exactly them.
    let ch = other.channel().await;
    ch.declare("still-serving").await;
    assert_eq!(server.broker.connections.len(), 2);
    other.close().await;
    within("the closed connection to leave the registry", async {
        while server.broker.connections.len() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_body_frame_of_exactly_frame_max_payload_is_accepted() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    // Raw::open accepts the offered frame_max (RabbitMQ's 131072).
    let frame_max = 131_072usize;
    raw.declare_queue(1, "big").await;
    raw.send_method(
        1,
        Method::BasicPublish(BasicPublish {
            routing_key: "big".into(),
            ..Default::default()
        }),
    )
    .await;
    let body = vec![b'x'; frame_max + 10];
    let mut header = BytesMut::new();
    encode_content_header(&mut header, 1, 60, body.len() as u64, &[0, 0]);
    raw.send(&header).await;
    // Split as several Python clients do: payloads of frame_max bytes, one overhead over.
    raw.send(&raw_frame(FRAME_BODY, 1, &body[..frame_max], FRAME_END))
        .await;
    raw.send(&raw_frame(FRAME_BODY, 1, &body[frame_max..], FRAME_END))
        .await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let got = ch
        .get("big", true)
        .await
        .expect("the large message arrived");
    assert_eq!(got.body.len(), body.len());
    // One byte more than frame_max is still a framing error.
    raw.send(&raw_frame(
        FRAME_HEADER,
        1,
        &vec![0u8; frame_max + 1],
        FRAME_END,
    ))
    .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 501, "{close:?}");
}

#[tokio::test]
async fn update_secret_is_answered_and_the_connection_goes_on() {
    let server = start().await;
    let client = server.connect().await;
    within(
        "connection.update-secret-ok",
        client.conn.update_secret("new-secret", "token refresh"),
    )
    .await
    .expect("update-secret-ok");
    let ch = client.channel().await;
    ch.declare("after-update").await;
    client.close().await;
}

/// A tag that was never delivered is refused as RabbitMQ refuses it (its collect_acks wants
/// the tag itself outstanding, multiple or not): 406, and the channel's deliveries go back to
/// their queue. Once this wrapped around (2^64-1 + 1) and settled nothing.
#[tokio::test]
async fn ack_multiple_with_an_unknown_largest_tag_is_406_and_loses_nothing() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    for i in 0..3 {
        ch.publish("", &q, &format!("m{i}")).await;
    }
    let mut consumer = ch.consume_acked(&q).await;
    consumer.take(3).await;
    ch.basic_ack(BasicAckArguments::new(u64::MAX, true))
        .await
        .unwrap();
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 406, "{closed:?}");
    assert_eq!(
        closed.text,
        "PRECONDITION_FAILED - unknown delivery tag 18446744073709551615"
    );
    let ch = client.channel().await;
    assert_eq!(ch.drain(&q).await, ["m0", "m1", "m2"]);
}

#[tokio::test]
async fn unbinding_what_no_longer_exists_is_ok_as_in_rabbitmq() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    within(
        "queue.unbind-ok",
        ch.queue_unbind(QueueUnbindArguments::new("gone", "amq.direct", "k")),
    )
    .await
    .expect("unbind of a missing queue is ok");
    within(
        "queue.unbind-ok",
        ch.queue_unbind(QueueUnbindArguments::new("gone", "no-such-exchange", "k")),
    )
    .await
    .expect("unbind from a missing exchange is ok");
    within(
        "exchange.unbind-ok",
        ch.exchange_unbind(ExchangeUnbindArguments::new("gone", "amq.fanout", "k")),
    )
    .await
    .expect("exchange.unbind of a missing exchange is ok");
    // The default exchange is still refused, as RabbitMQ refuses it.
    let closed = ch
        .refused(ch.queue_unbind(QueueUnbindArguments::new("gone", "", "k")))
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");
}

/// A consumer without a prefetch limit whose client stops reading its socket: the queue hands
/// its connection no more than the socket window, and the rest of the backlog stays queued
/// (on disk, for a long one) instead of piling up in the broker's memory.
#[tokio::test]
async fn a_consumer_that_stops_reading_holds_only_a_window_of_deliveries() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.declare_queue(1, "backlog").await;
    raw.send_method(
        1,
        Method::BasicConsume(BasicConsume {
            queue: "backlog".into(),
            consumer_tag: "stalled".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::BasicConsumeOk(_))
    ));
    // From here on the raw client reads nothing.
    let publisher = server.connect().await;
    let ch = publisher.channel().await;
    let body = "x".repeat(1024);
    let total = 60_000u32;
    for _ in 0..total {
        ch.publish("", "backlog", &body).await;
    }
    let queue = server
        .broker
        .vhost("/")
        .unwrap()
        .queue(&"backlog".into())
        .unwrap();
    within("the publishes to reach the queue", async {
        while queue.counts().ready + queue.counts().unacked < total {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counts = queue.counts();
    // What left the queue is the window plus what the kernel's socket buffers took (a few
    // MiB on loopback), far from the whole backlog.
    let socket_buffers = 16 * 1024 * 1024 / 1024;
    let bound = SOCKET_WINDOW.min((SOCKET_WINDOW_BYTES / 1024) as u32) + socket_buffers;
    assert!(
        counts.unacked <= bound,
        "{} deliveries left the queue for a client that reads nothing (bound {bound})",
        counts.unacked
    );
    assert!(counts.ready >= total - bound, "{counts:?}");
    // The stalled client does not hold up anyone else.
    ch.publish("", "other", "x").await;
    ch.declare("other").await;
    ch.publish("", "other", "y").await;
    assert_eq!(ch.get("other", true).await.unwrap().body, "y");
    drop(raw);
}

#[tokio::test]
async fn non_utf8_queue_names_survive_a_restart_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let name = ShortStr::from(&b"q-\xff\xfe-\xc3"[..]);
    let declare = |durable| {
        Method::QueueDeclare(QueueDeclare {
            queue: name.clone(),
            durable,
            ..Default::default()
        })
    };
    {
        let server = start_persistent(dir.path()).await;
        let mut raw = Raw::open(server.port).await;
        raw.send_method(1, declare(true)).await;
        assert!(matches!(
            raw.recv_method().await,
            (1, Method::QueueDeclareOk(_))
        ));
        // A second queue whose name differs only in the bytes a lossy conversion replaces.
        let twin = ShortStr::from(&b"q-\xfe\xff-\xc3"[..]);
        raw.send_method(
            1,
            Method::QueueDeclare(QueueDeclare {
                queue: twin,
                durable: true,
                ..Default::default()
            }),
        )
        .await;
        assert!(matches!(
            raw.recv_method().await,
            (1, Method::QueueDeclareOk(_))
        ));
        // amqprs takes names as &str; the raw client publishes by the byte name instead.
        raw.send_method(
            1,
            Method::BasicPublish(BasicPublish {
                routing_key: name.clone(),
                ..Default::default()
            }),
        )
        .await;
        let mut header = BytesMut::new();
        encode_content_header(&mut header, 1, 60, 4, &[0x10, 0, 2]);
        raw.send(&header).await;
        raw.send(&raw_frame(FRAME_BODY, 1, b"kept", FRAME_END)[..])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.shut_down();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.broker.shutdown();
    }
    let server = start_persistent(dir.path()).await;
    let vhost = server.broker.vhost("/").unwrap();
    let queue = vhost
        .queue(&name)
        .expect("the queue came back under its own name");
    assert_eq!(queue.counts().ready, 1);
    assert_eq!(vhost.queues().len(), 2, "both twins came back");
    let mut raw = Raw::open(server.port).await;
    raw.send_method(
        1,
        Method::QueueDeclare(QueueDeclare {
            queue: name.clone(),
            passive: true,
            ..Default::default()
        }),
    )
    .await;
    match raw.recv_method().await {
        (1, Method::QueueDeclareOk(ok)) => {
            assert_eq!(ok.queue, name);
            assert_eq!(ok.message_count, 1);
        }
        other => panic!("expected declare-ok, got {other:?}"),
    }
}

/// Where `localhost` is ::1 (Node 17+, many distributions) clients must reach Warren too: the
/// default listener is dual stack.
#[tokio::test]
async fn the_default_listener_takes_ipv4_and_ipv6_clients() {
    let listener = warren_server::bind("[::]:0".parse().unwrap())
        .await
        .expect("bind [::]");
    let port = listener.local_addr().unwrap().port();
    let broker = warren_broker::Broker::new(Default::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(warren_server::serve(
        warren_server::AmqpListener::plain(listener),
        broker,
        Default::default(),
        stop_rx,
    ));
    let mut addresses = vec!["127.0.0.1"];
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        addresses.push("::1");
    } else {
        eprintln!("no IPv6 loopback on this machine: only IPv4 is checked");
    }
    for host in addresses {
        let mut stream = within("connect", tokio::net::TcpStream::connect((host, port)))
            .await
            .unwrap_or_else(|e| panic!("connect to {host}: {e}"));
        stream.write_all(PROTOCOL_HEADER).await.unwrap();
        let mut first = [0u8; 1];
        within("connection.start", stream.read_exact(&mut first))
            .await
            .unwrap();
        assert_eq!(first[0], 1, "a method frame (connection.start) from {host}");
    }
}
