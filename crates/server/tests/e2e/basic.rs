//! The basic class: publish, consume, cancel, get, acknowledgements, prefetch, redelivery.

use amqprs::channel::{
    BasicAckArguments, BasicCancelArguments, BasicConsumeArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, BasicRejectArguments, QueueDeleteArguments,
};
use amqprs::BasicProperties;
use warren_protocol::{encode_content_header, BasicPublish, ChannelOpen, Method, QueueDeclare};

use crate::common::*;

fn ack(tag: u64, multiple: bool) -> BasicAckArguments {
    BasicAckArguments::new(tag, multiple)
}

fn bodies(msgs: &[Msg]) -> Vec<&str> {
    msgs.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_with_312() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.publish_with(
        BasicPublishArguments::new("amq.direct", "nowhere")
            .mandatory(true)
            .finish(),
        BasicProperties::default(),
        "lost",
    )
    .await;
    match ch.next_event().await {
        Event::Returned(r) => {
            assert_eq!((r.code, r.text.as_str()), (312, "NO_ROUTE"));
            assert_eq!(
                (r.exchange.as_str(), r.routing_key.as_str()),
                ("amq.direct", "nowhere")
            );
            assert_eq!(r.body, "lost");
        }
        other => panic!("expected basic.return, got {other:?}"),
    }
    // The channel stays usable.
    let q = ch.declare("").await;
    ch.publish("", &q, "kept").await;
    assert_eq!(ch.drain(&q).await, ["kept"]);
    assert!(ch.try_event().is_none());
    client.close().await;
}

#[tokio::test]
async fn immediate_publish_closes_the_connection_with_540() {
    let server = start().await;
    let mut client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.publish_with(
        BasicPublishArguments::new("", &q).immediate(true).finish(),
        BasicProperties::default(),
        "now",
    )
    .await;
    let closed = client.closed_by_server().await;
    assert_eq!(closed.code, 540, "{closed:?}");
    assert!(closed.text.starts_with("NOT_IMPLEMENTED"), "{closed:?}");
    assert_eq!((closed.class_id, closed.method_id), (60, 40));
    assert_serving(&server).await;
}

#[tokio::test]
async fn consume_with_a_generated_tag() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let mut c = ch
        .consume(BasicConsumeArguments::new(&q, "").auto_ack(true).finish())
        .await;
    assert!(c.tag.starts_with("amq.ctag-"), "{}", c.tag);
    ch.publish("", &q, "hi").await;
    let m = c.next().await;
    assert_eq!(
        (m.consumer_tag.as_str(), m.body.as_str()),
        (c.tag.as_str(), "hi")
    );
    assert_eq!(
        (m.exchange.as_str(), m.routing_key.as_str()),
        ("", q.as_str())
    );
    assert!(!m.redelivered);
    client.close().await;
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_is_refused() {
    let server = start().await;
    let mut client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.consume(BasicConsumeArguments::new(&q, "same")).await;
    let r = ch
        .basic_consume_rx(BasicConsumeArguments::new(&q, "same"))
        .await;
    assert!(r.is_err());
    let closed = client.closed_by_server().await;
    assert_eq!(closed.code, 530, "{closed:?}");
}

#[tokio::test]
async fn exclusive_consumer_excludes_others() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let _only = ch
        .consume(
            BasicConsumeArguments::new(&q, "only")
                .exclusive(true)
                .finish(),
        )
        .await;
    let ch2 = client.channel().await;
    let closed = ch2
        .refused(ch2.basic_consume_rx(BasicConsumeArguments::new(&q, "second")))
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");

    // Nor can an exclusive consumer join a queue that already has consumers.
    let q2 = ch.declare("").await;
    let _shared = ch.consume(BasicConsumeArguments::new(&q2, "shared")).await;
    let ch3 = client.channel().await;
    let closed = ch3
        .refused(
            ch3.basic_consume_rx(
                BasicConsumeArguments::new(&q2, "greedy")
                    .exclusive(true)
                    .finish(),
            ),
        )
        .await;
    assert_eq!(closed.code, 403, "{closed:?}");
    client.close().await;
}

#[tokio::test]
async fn cancel_stops_deliveries() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let mut c = ch
        .consume(BasicConsumeArguments::new(&q, "c1").auto_ack(true).finish())
        .await;
    ch.publish("", &q, "before").await;
    assert_eq!(c.next().await.body, "before");
    let tag = ch
        .basic_cancel(BasicCancelArguments::new("c1"))
        .await
        .unwrap();
    assert_eq!(tag, "c1");
    assert_eq!(ch.counts(&q).await, (0, 0));
    ch.publish("", &q, "after").await;
    // Not delivered to the cancelled consumer: still in the queue.
    assert_eq!(ch.drain(&q).await, ["after"]);
    assert!(c.try_next().is_none());
    client.close().await;
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("doomed").await;
    let c = ch.consume_acked(&q).await;
    let other = client.channel().await;
    other
        .queue_delete(QueueDeleteArguments::new(&q))
        .await
        .unwrap();
    match ch.next_event().await {
        Event::Cancelled(tag) => assert_eq!(tag, c.tag),
        other => panic!("expected basic.cancel from the server, got {other:?}"),
    }
    // The channel is still open and usable.
    ch.declare("").await;
    client.close().await;
}

#[tokio::test]
async fn get_and_get_empty() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    assert!(ch.get(&q, false).await.is_none());
    ch.publish("", &q, "1").await;
    ch.publish("", &q, "2").await;
    let first = ch.get(&q, false).await.unwrap();
    assert_eq!((first.body.as_str(), first.message_count), ("1", 1));
    assert_eq!(first.routing_key, q);
    assert!(!first.redelivered);
    let second = ch.get(&q, true).await.unwrap();
    assert_eq!((second.body.as_str(), second.message_count), ("2", 0));
    assert_eq!(second.delivery_tag, first.delivery_tag + 1);
    assert!(ch.get(&q, false).await.is_none());
    // The unacked first message comes back when its channel closes.
    ch.ch.close().await.unwrap();
    let ch = client.channel().await;
    let again = ch.get(&q, true).await.unwrap();
    assert_eq!(again.body, "1");
    assert!(again.redelivered);
    client.close().await;
}

#[tokio::test]
async fn ack_nack_reject_with_multiple_and_requeue() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    for i in 1..=6 {
        ch.publish("", &q, &format!("m{i}")).await;
    }
    let mut tags = Vec::new();
    for i in 1..=6 {
        let got = ch.get(&q, false).await.unwrap();
        assert_eq!(got.body, format!("m{i}"));
        tags.push(got.delivery_tag);
    }
    assert_eq!(tags, [1, 2, 3, 4, 5, 6]);
    // m1, m2 acked.
    ch.basic_ack(ack(2, true)).await.unwrap();
    // m3, m4 back to the queue.
    ch.basic_nack(BasicNackArguments::new(4, true, true))
        .await
        .unwrap();
    // m5 dropped; m6 back.
    ch.basic_reject(BasicRejectArguments::new(5, false))
        .await
        .unwrap();
    ch.basic_reject(BasicRejectArguments::new(6, true))
        .await
        .unwrap();
    assert_eq!(ch.counts(&q).await, (3, 0));
    let mut back = Vec::new();
    while let Some(got) = ch.get(&q, false).await {
        assert!(got.redelivered, "{got:?}");
        back.push((got.body, got.delivery_tag));
    }
    assert_eq!(
        back,
        [("m3".into(), 7), ("m4".into(), 8), ("m6".to_string(), 9)]
    );
    // Nack without requeue drops; a single ack settles one.
    ch.basic_nack(BasicNackArguments::new(8, false, false))
        .await
        .unwrap();
    ch.basic_ack(ack(7, false)).await.unwrap();
    ch.basic_nack(BasicNackArguments::new(9, false, true))
        .await
        .unwrap();
    assert_eq!(ch.drain(&q).await, ["m6"]);
    // Nothing is left unacked: closing the channel requeues nothing.
    ch.ch.close().await.unwrap();
    let ch = client.channel().await;
    assert_eq!(ch.counts(&q).await, (0, 0));
    client.close().await;
}

#[tokio::test]
async fn ack_of_an_unknown_tag_closes_the_channel_with_406() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    ch.publish("", &q, "x").await;
    let got = ch.get(&q, false).await.unwrap();
    ch.basic_ack(ack(got.delivery_tag, false)).await.unwrap();
    // Acking it twice is acking an unknown tag.
    ch.basic_ack(ack(got.delivery_tag, false)).await.unwrap();
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 406, "{closed:?}");
    assert!(closed.text.contains("unknown delivery tag"), "{closed:?}");
    assert_eq!((closed.class_id, closed.method_id), (60, 80));

    // The connection is still usable.
    let ch = client.channel().await;
    ch.basic_ack(ack(42, false)).await.unwrap();
    assert_eq!(ch.closed_by_server().await.code, 406);
    let ch = client.channel().await;
    ch.publish("", &q, "y").await;
    assert_eq!(ch.drain(&q).await, ["y"]);
    client.close().await;
}

#[tokio::test]
async fn recover_redelivers_unacked_messages() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let mut c = ch.consume_acked(&q).await;
    ch.publish("", &q, "a").await;
    ch.publish("", &q, "b").await;
    let first = c.take(2).await;
    assert_eq!(bodies(&first), ["a", "b"]);
    assert!(first.iter().all(|m| !m.redelivered));
    ch.basic_recover(true).await.unwrap();
    let again = c.take(2).await;
    assert_eq!(bodies(&again), ["a", "b"]);
    assert!(again.iter().all(|m| m.redelivered));
    assert_eq!(
        again.iter().map(|m| m.delivery_tag).collect::<Vec<_>>(),
        [3, 4]
    );
    ch.basic_ack(ack(4, true)).await.unwrap();
    ch.basic_cancel(BasicCancelArguments::new(&c.tag))
        .await
        .unwrap();
    assert_eq!(ch.counts(&q).await, (0, 0));
    client.close().await;
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    for i in 0..5 {
        ch.publish("", &q, &i.to_string()).await;
    }
    ch.basic_qos(BasicQosArguments::new(0, 2, false))
        .await
        .unwrap();
    let mut c = ch.consume_acked(&q).await;
    let got = c.take(2).await;
    assert_eq!(bodies(&got), ["0", "1"]);
    // Exactly two left the queue.
    assert_eq!(ch.counts(&q).await, (3, 1));
    ch.basic_ack(ack(got[0].delivery_tag, false)).await.unwrap();
    assert_eq!(c.next().await.body, "2");
    assert_eq!(ch.counts(&q).await, (2, 1));
    // Multiple acks free as many slots.
    ch.basic_ack(ack(3, true)).await.unwrap();
    assert_eq!(bodies(&c.take(2).await), ["3", "4"]);
    assert_eq!(ch.counts(&q).await, (0, 1));

    // global=false is per consumer: two consumers on one channel get a window each.
    let (q1, q2) = (ch.declare("").await, ch.declare("").await);
    for q in [&q1, &q2] {
        for i in 0..3 {
            ch.publish("", q, &i.to_string()).await;
        }
    }
    ch.basic_qos(BasicQosArguments::new(0, 1, false))
        .await
        .unwrap();
    let mut c1 = ch.consume_acked(&q1).await;
    let mut c2 = ch.consume_acked(&q2).await;
    c1.next().await;
    c2.next().await;
    assert_eq!(ch.counts(&q1).await, (2, 1));
    assert_eq!(ch.counts(&q2).await, (2, 1));
    client.close().await;
}

#[tokio::test]
async fn global_prefetch_is_shared_by_the_channel() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let (q1, q2) = (ch.declare("").await, ch.declare("").await);
    for q in [&q1, &q2] {
        for i in 0..3 {
            ch.publish("", q, &i.to_string()).await;
        }
    }
    ch.basic_qos(BasicQosArguments::new(0, 2, true))
        .await
        .unwrap();
    let mut c1 = ch.consume_acked(&q1).await;
    let mut c2 = ch.consume_acked(&q2).await;
    let ready = |a: (u32, u32), b: (u32, u32)| a.0 + b.0;
    // Two unacked at most across both consumers: c1 took both before c2 existed.
    assert_eq!(ready(ch.counts(&q1).await, ch.counts(&q2).await), 4);
    let got = c1.take(2).await;
    assert!(c2.try_next().is_none());
    // One ack, one more delivery, to either consumer.
    ch.basic_ack(ack(got[0].delivery_tag, false)).await.unwrap();
    assert_eq!(ready(ch.counts(&q1).await, ch.counts(&q2).await), 3);
    client.close().await;
}

#[tokio::test]
async fn consumers_of_a_queue_take_turns() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let other = client.channel().await;
    let mut a = ch
        .consume(BasicConsumeArguments::new(&q, "a").auto_ack(true).finish())
        .await;
    let mut b = other
        .consume(BasicConsumeArguments::new(&q, "b").auto_ack(true).finish())
        .await;
    for i in 0..6 {
        ch.publish("", &q, &i.to_string()).await;
    }
    assert_eq!(bodies(&a.take(3).await), ["0", "2", "4"]);
    assert_eq!(bodies(&b.take(3).await), ["1", "3", "5"]);
    client.close().await;
}

#[tokio::test]
async fn unacked_messages_of_a_closed_channel_return_in_order_flagged_redelivered() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    for i in 0..6 {
        ch.publish("", &q, &format!("m{i}")).await;
    }
    let consuming = client.channel().await;
    consuming
        .basic_qos(BasicQosArguments::new(0, 4, false))
        .await
        .unwrap();
    let mut c = consuming.consume_acked(&q).await;
    let got = c.take(4).await;
    assert_eq!(bodies(&got), ["m0", "m1", "m2", "m3"]);
    // m1 is acked, which frees the slot m4 then takes: m0, m2, m3 and m4 are out when the
    // channel closes.
    consuming
        .basic_ack(ack(got[1].delivery_tag, false))
        .await
        .unwrap();
    assert_eq!(c.next().await.body, "m4");
    consuming.ch.close().await.unwrap();
    let mut back = Vec::new();
    while let Some(got) = ch.get(&q, true).await {
        back.push((got.body, got.redelivered));
    }
    let expect = [
        ("m0", true),
        ("m2", true),
        ("m3", true),
        ("m4", true),
        ("m5", false),
    ];
    assert_eq!(
        back,
        expect.map(|(b, r)| (b.to_string(), r)),
        "requeued messages go back to their original places"
    );

    // The same when the whole connection goes.
    for i in 0..3 {
        ch.publish("", &q, &format!("n{i}")).await;
    }
    let gone = server.connect().await;
    let gch = gone.channel().await;
    let mut c = gch.consume_acked(&q).await;
    assert_eq!(bodies(&c.take(3).await), ["n0", "n1", "n2"]);
    // The server requeues before it answers connection.close.
    gone.close().await;
    let mut back = Vec::new();
    while let Some(got) = ch.get(&q, true).await {
        assert!(got.redelivered, "{got:?}");
        back.push(got.body);
    }
    assert_eq!(back, ["n0", "n1", "n2"]);
    client.close().await;
}

#[tokio::test]
async fn body_larger_than_128_mib_is_refused_with_406() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.send_method(
        1,
        Method::BasicPublish(BasicPublish {
            exchange: "amq.direct".into(),
            routing_key: "k".into(),
            ..Default::default()
        }),
    )
    .await;
    let mut header = bytes::BytesMut::new();
    // Property flags 0: no properties. The body itself is never sent.
    encode_content_header(&mut header, 1, 60, 128 * 1024 * 1024 + 1, &[0, 0]);
    raw.send(&header).await;
    let close = raw.expect_channel_close(1).await;
    assert_eq!(close.reply_code, 406, "{close:?}");
    assert!(
        close
            .reply_text
            .to_string()
            .contains("larger than configured max size"),
        "{close:?}"
    );

    // The connection goes on: another channel works.
    raw.send_method(2, Method::ChannelOpen(ChannelOpen::default()))
        .await;
    assert!(matches!(
        raw.recv_method().await,
        (2, Method::ChannelOpenOk(_))
    ));
    raw.send_method(
        2,
        Method::QueueDeclare(QueueDeclare {
            queue: "after-big".into(),
            ..Default::default()
        }),
    )
    .await;
    match raw.recv_method().await {
        (2, Method::QueueDeclareOk(ok)) => assert_eq!(ok.queue, "after-big"),
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
}

#[tokio::test]
async fn bodies_and_properties_pass_through_unchanged() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let mut c = ch
        .consume(BasicConsumeArguments::new(&q, "").auto_ack(true).finish())
        .await;
    // Larger than a frame (131072): the body crosses several body frames both ways.
    let big: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let mut h = amqprs::FieldTable::new();
    h.insert("trace".try_into().unwrap(), "t-1".into());
    let props = BasicProperties::default()
        .with_content_type("text/plain")
        .with_delivery_mode(2)
        .with_message_id("id-7")
        .with_priority(3)
        .with_headers(h)
        .finish();
    ch.publish_with(BasicPublishArguments::new("", &q), props.clone(), &big)
        .await;
    ch.publish("", &q, "").await;
    let m = c.next().await;
    assert_eq!(m.body.len(), big.len());
    assert!(m.body == big, "the large body arrived altered");
    assert_eq!(
        m.props.content_type().map(String::as_str),
        Some("text/plain")
    );
    assert_eq!(m.props.delivery_mode(), Some(2));
    assert_eq!(m.props.message_id().map(String::as_str), Some("id-7"));
    assert_eq!(m.props.priority(), Some(3));
    assert_eq!(m.props.headers(), props.headers());
    let empty = c.next().await;
    assert_eq!(empty.body, "");
    client.close().await;
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_404() {
    let server = start().await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.publish("no-such-exchange", "k", "x").await;
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 404, "{closed:?}");
    assert_eq!((closed.class_id, closed.method_id), (60, 40));
    // Binding to what does not exist is 404 too.
    let ch = client.channel().await;
    let q = ch.declare("").await;
    let closed = ch
        .refused(ch.queue_bind(amqprs::channel::QueueBindArguments::new(
            &q,
            "no-such-exchange",
            "k",
        )))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    let ch = client.channel().await;
    let closed = ch
        .refused(ch.queue_bind(amqprs::channel::QueueBindArguments::new(
            "no-such-queue",
            "amq.direct",
            "k",
        )))
        .await;
    assert_eq!(closed.code, 404, "{closed:?}");
    client.close().await;
}
