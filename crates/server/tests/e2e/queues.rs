//! Queues: naming, passive declare, exclusivity, auto-delete, purge and delete.

use std::time::Duration;

use amqprs::channel::{
    BasicCancelArguments, BasicConsumeArguments, QueueDeclareArguments, QueueDeleteArguments,
    QueuePurgeArguments,
};

use crate::common::*;

#[tokio::test]
async fn server_named_queues() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let a = ch.declare("").await;
    let b = ch.declare("").await;
    assert!(a.starts_with("amq.gen-"), "{a}");
    assert!(b.starts_with("amq.gen-"), "{b}");
    assert_ne!(a, b);
    // The name is usable like any other.
    ch.publish("", &a, "hello").await;
    assert_eq!(ch.counts(&a).await, (1, 0));
    client.close().await;
}

#[tokio::test]
async fn declare_reports_counts_and_checks_equivalence() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.declare("counted").await;
    ch.publish("", "counted", "1").await;
    ch.publish("", "counted", "2").await;
    let _consumer = ch.consume_acked("counted").await;
    // Both messages went to the consumer: none ready, one consumer.
    let (_, ready, consumers) = ch
        .queue_declare(QueueDeclareArguments::new("counted"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((ready, consumers), (0, 1));

    let ch2 = client.channel().await;
    let closed = ch2
        .refused(ch2.queue_declare(QueueDeclareArguments::new("counted").durable(true).finish()))
        .await;
    assert_eq!(closed.code, 406, "{closed:?}");
    let ch3 = client.channel().await;
    let closed = ch3
        .refused(ch3.queue_declare(QueueDeclareArguments::new("amq.mine")))
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new("nope").passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    assert!(closed.text.starts_with("NOT_FOUND"), "{closed:?}");
    assert_eq!((closed.class_id, closed.method_id), (50, 10));
    client.close().await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_and_goes_with_it() {
    let server = start().await;
    let owner = server.connect().await;
    let och = owner.channel().await;
    let q = och
        .declare_with(QueueDeclareArguments::new("mine").exclusive(true).finish())
        .await;
    och.publish("", &q, "m").await;
    assert_eq!(och.counts(&q).await, (1, 0));

    let other = server.connect().await;
    // Declare, passive declare, consume, get, purge and delete: all 405 from elsewhere.
    let ch = other.channel().await;
    let c = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new(&q).exclusive(true).finish()))
        .await;
    assert_eq!(c.code, 405, "declare: {c:?}");
    let ch = other.channel().await;
    let c = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()))
        .await;
    assert_eq!(c.code, 405, "passive declare: {c:?}");
    let ch = other.channel().await;
    let c = ch
        .refused(ch.basic_consume_rx(BasicConsumeArguments::new(&q, "")))
        .await;
    assert_eq!(c.code, 405, "consume: {c:?}");
    let ch = other.channel().await;
    let c = ch
        .refused(ch.queue_purge(QueuePurgeArguments::new(&q)))
        .await;
    assert_eq!(c.code, 405, "purge: {c:?}");
    let ch = other.channel().await;
    let c = ch
        .refused(ch.queue_delete(QueueDeleteArguments::new(&q)))
        .await;
    assert_eq!(c.code, 405, "delete: {c:?}");
    // The owner still has its queue and message.
    assert_eq!(och.counts(&q).await, (1, 0));

    owner.close().await;
    // Deleted when its connection closes. The server deletes it right after its close-ok
    // went out, so give it a moment rather than assume an order the protocol does not give.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ch = other.channel().await;
        let passive = ch
            .queue_declare(QueueDeclareArguments::new(&q).passive(true).finish())
            .await;
        if passive.is_err() {
            assert_eq!(ch.closed_by_server().await.code, 404);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exclusive queue outlived its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.close().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch
        .declare_with(QueueDeclareArguments::transient_autodelete("ephemeral"))
        .await;
    let a = ch.consume_acked(&q).await;
    let b = ch.consume_acked(&q).await;
    assert_eq!(ch.counts(&q).await, (0, 2));
    ch.basic_cancel(BasicCancelArguments::new(&a.tag))
        .await
        .unwrap();
    assert_eq!(ch.counts(&q).await, (0, 1));
    ch.basic_cancel(BasicCancelArguments::new(&b.tag))
        .await
        .unwrap();
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");

    // A channel closing cancels its consumers too.
    let ch = client.channel().await;
    let q = ch
        .declare_with(QueueDeclareArguments::transient_autodelete("ephemeral2"))
        .await;
    let consuming = client.channel().await;
    let _c = consuming.consume_acked(&q).await;
    assert_eq!(ch.counts(&q).await, (0, 1));
    consuming.ch.close().await.unwrap();
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn purge_and_delete_return_counts() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    for i in 0..3 {
        ch.publish("", &q, &i.to_string()).await;
    }
    assert_eq!(
        ch.queue_purge(QueuePurgeArguments::new(&q)).await.unwrap(),
        Some(3)
    );
    assert_eq!(ch.counts(&q).await, (0, 0));
    assert_eq!(
        ch.queue_purge(QueuePurgeArguments::new(&q)).await.unwrap(),
        Some(0)
    );
    for i in 0..2 {
        ch.publish("", &q, &i.to_string()).await;
    }
    assert_eq!(
        ch.queue_delete(QueueDeleteArguments::new(&q))
            .await
            .unwrap(),
        Some(2)
    );
    let closed = ch
        .refused(ch.queue_declare(QueueDeclareArguments::new(&q).passive(true).finish()))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn delete_if_unused_and_if_empty() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("guarded").await;
    ch.publish("", &q, "x").await;

    let del = client.channel().await;
    let closed = del
        .refused(del.queue_delete(QueueDeleteArguments::new(&q).if_empty(true).finish()))
        .await;
    assert_eq!(closed.code, 406, "if_empty: {closed:?}");

    let _consumer = ch
        .consume(
            BasicConsumeArguments::new(&q, "holder")
                .manual_ack(true)
                .finish(),
        )
        .await;
    let del = client.channel().await;
    let closed = del
        .refused(del.queue_delete(QueueDeleteArguments::new(&q).if_unused(true).finish()))
        .await;
    assert_eq!(closed.code, 406, "if_unused: {closed:?}");

    // The queue survived both; once unused and empty both conditions pass.
    assert_eq!(ch.counts(&q).await.1, 1);
    ch.basic_cancel(BasicCancelArguments::new("holder"))
        .await
        .unwrap();
    ch.queue_purge(QueuePurgeArguments::new(&q)).await.unwrap();
    let del = client.channel().await;
    let n = del
        .queue_delete(
            QueueDeleteArguments::new(&q)
                .if_unused(true)
                .if_empty(true)
                .finish(),
        )
        .await
        .unwrap();
    assert_eq!(n, Some(0));
    client.close().await;
}
