//! RabbitMQ's consumer timeout: a delivery left unacknowledged past the limit closes its
//! channel with 406 and RabbitMQ's text, and the message goes back to its queue.

use std::time::Duration;

use amqprs::channel::BasicAckArguments;
use warren_server::ServerConfig;

use crate::common::*;

fn with_timeout(limit: Duration) -> ServerConfig {
    ServerConfig {
        consumer_timeout: Some(limit),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn an_unacknowledged_delivery_past_the_limit_closes_its_channel() {
    let server = start_with(with_timeout(Duration::from_millis(1500))).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.declare("slow").await;
    ch.publish("", "slow", "kept too long").await;
    let mut consumer = ch.consume_acked("slow").await;
    let first = consumer.next().await;
    assert!(!first.redelivered);
    // Within the limit nothing happens; past it (checked every second) the channel closes.
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 406, "{closed:?}");
    assert_eq!(
        closed.text,
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value \
         used: 1500 ms. This timeout value can be configured, see consumers doc guide to learn more"
    );
    // The message is back in its queue, for the next consumer.
    let other = client.channel().await;
    let got = other
        .get("slow", true)
        .await
        .expect("the message came back");
    assert!(got.redelivered);
    assert_eq!(got.body, "kept too long");
}

#[tokio::test]
async fn acknowledged_deliveries_never_time_out() {
    let server = start_with(with_timeout(Duration::from_millis(1000))).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    ch.declare("prompt").await;
    let mut consumer = ch.consume_acked("prompt").await;
    for i in 0..4 {
        ch.publish("", "prompt", &format!("m{i}")).await;
        let m = consumer.next().await;
        ch.basic_ack(BasicAckArguments::new(m.delivery_tag, false))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(ch.try_event().is_none(), "{:?}", ch.try_event());
    assert_eq!(ch.counts("prompt").await, (0, 1));
}

/// `x-consumer-timeout` (RabbitMQ 3.12's argument, and the `consumer-timeout` policy key) sets
/// a queue's own limit: here shorter than the broker's half hour.
#[tokio::test]
async fn a_queue_can_set_its_own_consumer_timeout() {
    let server = start_with(with_timeout(Duration::from_secs(30 * 60))).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let mut arguments = amqprs::FieldTable::new();
    arguments.insert(
        "x-consumer-timeout".try_into().unwrap(),
        amqprs::FieldValue::l(1000),
    );
    ch.declare_with(
        amqprs::channel::QueueDeclareArguments::new("hurried")
            .arguments(arguments)
            .finish(),
    )
    .await;
    ch.publish("", "hurried", "m").await;
    let mut consumer = ch.consume_acked("hurried").await;
    consumer.next().await;
    let closed = ch.closed_by_server().await;
    assert_eq!(closed.code, 406, "{closed:?}");
    assert!(
        closed.text.contains("Timeout value used: 1000 ms"),
        "{}",
        closed.text
    );
}
