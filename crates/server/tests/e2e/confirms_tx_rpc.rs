//! Publisher confirms, transactions and direct reply-to.

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, ConfirmSelectArguments,
};
use amqprs::BasicProperties;

use crate::common::*;

/// Collects channel events until every publish up to `last` is confirmed; fails on a nack.
/// Returns the events in arrival order.
async fn until_confirmed(ch: &Chan, last: u64) -> Vec<Event> {
    let mut confirmed = 0u64;
    let mut events = Vec::new();
    while confirmed < last {
        let event = ch.next_event().await;
        match &event {
            Event::Ack { tag, multiple } => {
                assert!(
                    *tag > confirmed,
                    "ack {tag} after {confirmed} was confirmed"
                );
                assert!(
                    *multiple || *tag == confirmed + 1,
                    "single ack {tag} skips over {confirmed}+1"
                );
                confirmed = *tag;
            }
            Event::Nack { tag, multiple } => panic!("nack of {tag} (multiple: {multiple})"),
            Event::Closed(_) | Event::Cancelled(_) => panic!("unexpected {event:?}"),
            Event::Returned(_) => {}
        }
        events.push(event);
    }
    events
}

#[tokio::test]
async fn every_publish_is_confirmed() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    const N: u64 = 200;
    for i in 0..N {
        if i % 10 == 0 {
            // Unroutable and not mandatory: dropped, but still confirmed.
            ch.publish("amq.direct", "nowhere", "dropped").await;
        } else {
            ch.publish("", &q, &i.to_string()).await;
        }
    }
    let events = until_confirmed(&ch, N).await;
    assert!(
        events.iter().all(|e| matches!(e, Event::Ack { .. })),
        "{events:?}"
    );
    assert_eq!(ch.counts(&q).await.0, (N - N / 10) as u32);
    // Nothing more is owed.
    assert!(ch.try_event().is_none());
    client.close().await;
}

#[tokio::test]
async fn a_returned_message_is_returned_before_it_is_confirmed() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    let mandatory = |rk: &str| BasicPublishArguments::new("", rk).mandatory(true).finish();
    ch.publish_with(mandatory(&q), BasicProperties::default(), "routed")
        .await;
    ch.publish_with(
        mandatory("no-such-queue"),
        BasicProperties::default(),
        "returned",
    )
    .await;
    ch.publish_with(mandatory(&q), BasicProperties::default(), "routed too")
        .await;
    let events = until_confirmed(&ch, 3).await;
    let returned_at = events
        .iter()
        .position(|e| matches!(e, Event::Returned(r) if r.body == "returned" && r.code == 312))
        .unwrap_or_else(|| panic!("no basic.return in {events:?}"));
    let acked_2_at = events
        .iter()
        .position(|e| matches!(e, Event::Ack { tag, .. } if *tag >= 2))
        .unwrap();
    assert!(returned_at < acked_2_at, "{events:?}");
    assert_eq!(ch.drain(&q).await, ["routed", "routed too"]);
    client.close().await;
}

#[tokio::test]
async fn transactional_publishes_appear_at_commit_and_vanish_at_rollback() {
    let server = start().await;
    let client = server.connect().await;
    let tx = client.channel().await;
    let observer = client.channel().await;
    let q = observer.declare("").await;
    tx.tx_select().await.unwrap();
    tx.publish("", &q, "a").await;
    tx.publish("", &q, "b").await;
    assert_eq!(observer.counts(&q).await, (0, 0));
    tx.tx_commit().await.unwrap();
    assert_eq!(observer.counts(&q).await, (2, 0));

    tx.publish("", &q, "c").await;
    tx.tx_rollback().await.unwrap();
    // The rolled-back publish is gone for good: a later commit does not bring it back.
    tx.tx_commit().await.unwrap();
    assert_eq!(observer.drain(&q).await, ["a", "b"]);

    // A channel can't go from tx to confirm mode.
    let closed = tx
        .refused(tx.confirm_select(ConfirmSelectArguments::default()))
        .await;
    assert_eq!(closed.code, 406, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn acks_in_a_transaction_take_effect_at_commit() {
    let server = start().await;
    let client = server.connect().await;
    let observer = client.channel().await;
    let q = observer.declare("").await;
    observer.publish("", &q, "m1").await;
    observer.publish("", &q, "m2").await;

    let tx = client.channel().await;
    tx.tx_select().await.unwrap();
    let m1 = tx.get(&q, false).await.unwrap();
    let m2 = tx.get(&q, false).await.unwrap();
    tx.basic_ack(BasicAckArguments::new(m1.delivery_tag, false))
        .await
        .unwrap();
    tx.basic_ack(BasicAckArguments::new(m2.delivery_tag, false))
        .await
        .unwrap();
    // Rolled back: both are still unacked (not requeued).
    tx.tx_rollback().await.unwrap();
    assert_eq!(observer.counts(&q).await, (0, 0));
    // Ack m1 again and commit: only m1 is settled.
    tx.basic_ack(BasicAckArguments::new(m1.delivery_tag, false))
        .await
        .unwrap();
    tx.tx_commit().await.unwrap();
    tx.ch.close().await.unwrap();
    // Closing the channel requeues m2 alone.
    let back = observer.get(&q, true).await.unwrap();
    assert_eq!((back.body.as_str(), back.redelivered), ("m2", true));
    assert!(observer.get(&q, true).await.is_none());
    client.close().await;
}

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let server = start().await;
    let responder = server.connect().await;
    let rch = responder.channel().await;
    let rpc = rch.declare("rpc").await;
    let mut requests = rch
        .consume(
            BasicConsumeArguments::new(&rpc, "server")
                .auto_ack(true)
                .finish(),
        )
        .await;

    let requester = server.connect().await;
    let qch = requester.channel().await;
    let mut replies = qch
        .consume(
            BasicConsumeArguments::new("amq.rabbitmq.reply-to", "replies")
                .auto_ack(true)
                .finish(),
        )
        .await;
    qch.publish_with(
        BasicPublishArguments::new("", &rpc),
        BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to")
            .with_correlation_id("req-1")
            .finish(),
        "ping",
    )
    .await;

    let request = requests.next().await;
    assert_eq!(request.body, "ping");
    let reply_to = request.props.reply_to().expect("reply_to").clone();
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to."),
        "the server names the requester's reply queue: {reply_to}"
    );
    rch.publish_with(
        BasicPublishArguments::new("", &reply_to),
        BasicProperties::default()
            .with_correlation_id("req-1")
            .finish(),
        "pong",
    )
    .await;

    let reply = replies.next().await;
    assert_eq!(reply.body, "pong");
    assert_eq!(reply.consumer_tag, "replies");
    assert_eq!(
        reply.props.correlation_id().map(String::as_str),
        Some("req-1")
    );
    requester.close().await;
    responder.close().await;
}

#[tokio::test]
async fn direct_reply_to_needs_a_no_ack_reply_consumer() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    // Publishing a request with no reply consumer on the channel is refused.
    ch.publish_with(
        BasicPublishArguments::new("", &q),
        BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to")
            .finish(),
        "orphan",
    )
    .await;
    assert_eq!(ch.closed_by_server().await.code, 406);
    // And the reply consumer must be no-ack.
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.basic_consume_rx(BasicConsumeArguments::new("amq.rabbitmq.reply-to", "")))
        .await;
    assert_eq!(closed.code, 406, "{closed:?}");
    let ch = client.channel().await;
    assert!(ch.drain(&q).await.is_empty());
    client.close().await;
}
