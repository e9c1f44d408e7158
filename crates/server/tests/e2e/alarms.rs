//! Resource alarms: publishers are blocked (connection.blocked, and not read) while an alarm
//! is on, and unblocked when it clears; connections that never published are left alone.

use std::time::Duration;

use bytes::BytesMut;
use warren_protocol::*;

use crate::common::*;

async fn declare(raw: &mut Raw, queue: &str) {
    raw.send_method(
        1,
        Method::QueueDeclare(QueueDeclare {
            queue: queue.into(),
            ..Default::default()
        }),
    )
    .await;
    match raw.recv_method().await {
        (1, Method::QueueDeclareOk(_)) => {}
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
}

async fn publish(raw: &mut Raw, queue: &str, body: &[u8]) {
    let mut out = BytesMut::new();
    let publish = Method::BasicPublish(BasicPublish {
        routing_key: queue.into(),
        ..Default::default()
    });
    encode_method_frame(&mut out, 1, &publish);
    let mut props = BytesMut::new();
    BasicProperties::default().encode(&mut props);
    encode_content_header(&mut out, 1, 60, body.len() as u64, &props);
    encode_body_frames(&mut out, 1, body, 131072);
    raw.send(&out).await;
}

#[tokio::test]
async fn publishers_are_blocked_during_an_alarm_and_resume_after_it() {
    let server = start().await;
    let mut publisher = Raw::open(server.port).await;
    let observer_conn = server.connect().await;
    let observer = observer_conn.channel().await;
    let queue = "alarm-q";
    declare(&mut publisher, queue).await;
    publish(&mut publisher, queue, b"before").await;
    within("first message", async {
        while observer.counts(queue).await.0 < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    server.broker.alarms.set_memory(true);
    match publisher.recv_method().await {
        (0, Method::ConnectionBlocked(b)) => assert_eq!(b.reason, "low on memory"),
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    // Connections that never published keep working during the alarm.
    let mut bystander = Raw::open(server.port).await;
    declare(&mut bystander, "alarm-bystander").await;

    publish(&mut publisher, queue, b"during").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        observer.counts(queue).await.0,
        1,
        "a blocked publisher's frames are not read"
    );

    server.broker.alarms.set_memory(false);
    match publisher.recv_method().await {
        (0, Method::ConnectionUnblocked(_)) => {}
        other => panic!("expected connection.unblocked, got {other:?}"),
    }
    within("the held-back message", async {
        while observer.counts(queue).await.0 < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(observer.drain(queue).await, ["before", "during"]);
}
