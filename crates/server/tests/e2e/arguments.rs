//! Queue and consumer arguments over the wire: validated at declare with RabbitMQ 3.10's codes
//! and texts, compared on redeclare, and `x-queue-type` never silently ignored. The texts were
//! taken from RabbitMQ 3.10's source (`rabbit_amqqueue`, `rabbit_misc`).

use warren_protocol::{
    BasicConsume, ChannelOpen, FieldTable, FieldValue, Method, QueueDeclare, ShortStr,
};

use crate::common::*;

fn declare(name: &str, durable: bool, args: &[(&str, FieldValue)]) -> Method {
    let mut arguments = FieldTable::new();
    for (k, v) in args {
        arguments.insert(*k, v.clone());
    }
    Method::QueueDeclare(QueueDeclare {
        queue: ShortStr::from(name),
        durable,
        arguments,
        ..Default::default()
    })
}

/// Sends `method` on a fresh channel `n` and returns the channel.close it gets.
async fn refused_on(raw: &mut Raw, n: u16, method: Method) -> (u16, String, u16, u16) {
    raw.send_method(n, Method::ChannelOpen(ChannelOpen::default()))
        .await;
    assert!(matches!(
        raw.recv_method().await,
        (_, Method::ChannelOpenOk(_))
    ));
    raw.send_method(n, method).await;
    let close = raw.expect_channel_close(n).await;
    (
        close.reply_code,
        close.reply_text.to_string(),
        close.class_id,
        close.method_id,
    )
}

#[tokio::test]
async fn invalid_arguments_are_refused_as_rabbitmq_refuses_them() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    let cases: Vec<(Method, &str)> = vec![
        (
            declare("q", false, &[("x-max-length", FieldValue::I64(-1))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}",
        ),
        (
            declare("q", false, &[("x-message-ttl", FieldValue::from("60000"))]),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"",
        ),
        (
            declare("q", false, &[("x-dead-letter-exchange", FieldValue::I64(1))]),
            "PRECONDITION_FAILED - invalid type 'long' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'",
        ),
        (
            declare("q", false, &[("x-queue-type", FieldValue::from("fancy"))]),
            "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'fancy'\"",
        ),
        (
            declare("q", true, &[("x-queue-type", FieldValue::from("quorum")), ("x-max-priority", FieldValue::I64(5))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue",
        ),
        (
            declare("q", false, &[("x-queue-type", FieldValue::from("quorum"))]),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'",
        ),
    ];
    for (n, (method, text)) in cases.into_iter().enumerate() {
        let (code, got, class, id) = refused_on(&mut raw, n as u16 + 2, method).await;
        assert_eq!((code, got.as_str(), class, id), (406, text, 50, 10));
    }
    // Nothing was created by the refused declares.
    assert!(server
        .broker
        .vhost("/")
        .unwrap()
        .queue(&"q".into())
        .is_err());
}

#[tokio::test]
async fn a_quorum_or_stream_queue_is_never_a_silent_classic_one() {
    let server = start().await;
    for kind in ["quorum", "stream"] {
        let mut raw = Raw::open(server.port).await;
        raw.send_method(
            1,
            declare(
                "replicated",
                true,
                &[("x-queue-type", FieldValue::from(kind))],
            ),
        )
        .await;
        let close = raw.expect_connection_close().await;
        assert_eq!(close.reply_code, 540, "{close:?}");
        assert!(
            close
                .reply_text
                .to_string()
                .starts_with("NOT_IMPLEMENTED - queues of type"),
            "{close:?}"
        );
    }
    assert!(server
        .broker
        .vhost("/")
        .unwrap()
        .queue(&"replicated".into())
        .is_err());
    assert_serving(&server).await;
}

#[tokio::test]
async fn redeclares_compare_arguments() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    let ten = [("x-max-length", FieldValue::I64(10))];
    raw.send_method(1, declare("bounded", false, &ten)).await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::QueueDeclareOk(_))
    ));
    // Same value in another integer width, plus an argument classic queues do not compare.
    raw.send_method(
        1,
        declare(
            "bounded",
            false,
            &[
                ("x-max-length", FieldValue::U16(10)),
                ("x-custom", FieldValue::Bool(true)),
            ],
        ),
    )
    .await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::QueueDeclareOk(_))
    ));
    let (code, text, ..) = refused_on(
        &mut raw,
        2,
        declare("bounded", false, &[("x-max-length", FieldValue::I64(20))]),
    )
    .await;
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'bounded' in vhost '/': received '20' but current is '10'"
    );
    let (_, text, ..) = refused_on(&mut raw, 3, declare("bounded", false, &[])).await;
    assert_eq!(
        text,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'bounded' in vhost '/': received none but current is the value '10' of type 'long'"
    );
    // An explicit classic type equals an absent one.
    raw.send_method(
        1,
        declare(
            "bounded",
            false,
            &[
                ("x-max-length", FieldValue::I64(10)),
                ("x-queue-type", FieldValue::from("classic")),
            ],
        ),
    )
    .await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::QueueDeclareOk(_))
    ));
}

#[tokio::test]
async fn consumer_priority_must_be_an_integer() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.send_method(1, declare("work", false, &[])).await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::QueueDeclareOk(_))
    ));
    let mut arguments = FieldTable::new();
    arguments.insert("x-priority", FieldValue::from("high"));
    let (code, text, class, id) = refused_on(
        &mut raw,
        2,
        Method::BasicConsume(BasicConsume {
            queue: "work".into(),
            arguments,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        (code, text.as_str(), class, id),
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'work' in vhost '/': \"expected integer, got longstr\"",
            60,
            20
        )
    );
}
