//! Priority queues on disk: each level pages to its own log, so a deep level costs disk and
//! not RAM, and a durable priority queue comes back after a restart with every message at its
//! level, in order.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use warren_broker::queue::RAM_HEAD_MESSAGES;
use warren_broker::{Broker, BrokerConfig, Message, Queue, Settlement};
use warren_protocol::{BasicProperties, FieldTable, FieldValue};

#[path = "support/queues.rs"]
mod queues;

fn priority_queue(broker: &Broker, durable: bool) -> Arc<Queue> {
    let mut args = FieldTable::new();
    args.insert("x-max-priority", FieldValue::I32(9));
    queues::declare(&broker.vhost("/").unwrap(), "prio", durable, args)
}

fn message(body: String, priority: u8, persistent: bool) -> Arc<Message> {
    let props = BasicProperties {
        priority: Some(priority),
        delivery_mode: persistent.then_some(2),
        ..Default::default()
    };
    let mut encoded = BytesMut::new();
    props.encode(&mut encoded);
    let props: Bytes = encoded.freeze();
    Arc::new(Message::new(
        &"".into(),
        &"prio".into(),
        &props,
        body.into(),
    ))
}

/// Takes every ready message with basic.get (no ack), as (body, redelivered).
fn drain(q: &Arc<Queue>) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some((item, _)) = q.get(true) {
        out.push((
            String::from_utf8(item.message.body.to_vec()).unwrap(),
            item.redelivered,
        ));
    }
    out
}

#[test]
fn a_deep_low_level_is_paged_and_a_high_level_still_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
    let q = priority_queue(&broker, false);
    // More low-priority messages than the RAM head holds: the rest go to level 0's log.
    let low = RAM_HEAD_MESSAGES as u64 + 10_000;
    for i in 0..low {
        q.enqueue(message(format!("low-{i}"), 0, false));
    }
    // High-priority messages arrive when the head is full: they page at their own level.
    for i in 0..1000 {
        q.enqueue(message(format!("high-{i}"), 7, false));
    }
    assert!(q.disk_bytes() > 0, "the backlog is on disk");
    assert_eq!(u64::from(q.counts().ready), low + 1000);
    let got = drain(&q);
    let expected: Vec<String> = (0..1000)
        .map(|i| format!("high-{i}"))
        .chain((0..low).map(|i| format!("low-{i}")))
        .collect();
    assert_eq!(got.len(), expected.len());
    assert!(
        got.iter().map(|(b, _)| b).eq(expected.iter()),
        "priority order, then publish order"
    );
    broker.shutdown();
}

#[test]
fn a_durable_priority_queue_recovers_every_level_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
        let q = priority_queue(&broker, true);
        for i in 0..30 {
            q.enqueue(message(format!("m{i}"), (i % 3 * 4) as u8, true));
        }
        // A transient message in a durable queue does not survive.
        q.enqueue(message("transient".into(), 9, false));
        // One taken and requeued: it comes back flagged, at its level.
        let (item, _) = q.get(false).unwrap();
        assert_eq!(&item.message.body[..], b"transient");
        q.settle([(None, item)], Settlement::Ack);
        let (item, _) = q.get(false).unwrap();
        assert_eq!(&item.message.body[..], b"m2");
        q.settle([(None, item)], Settlement::Requeue);
        broker.shutdown();
    }
    let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
    let q = priority_queue(&broker, true);
    assert_eq!(q.counts().ready, 30);
    let got = drain(&q);
    let mut expected = Vec::new();
    for level in [8, 4, 0] {
        for i in (0..30).filter(|i| i % 3 * 4 == level) {
            // m2 was delivered before the restart: it comes back flagged redelivered.
            expected.push((format!("m{i}"), i == 2));
        }
    }
    assert_eq!(got, expected);
    // Deleting the queue removes every level's files.
    let v = broker.vhost("/").unwrap();
    v.delete_queue(queues::CLIENT, &"prio".into(), false, false)
        .unwrap();
    let left = std::fs::read_dir(dir.path().join("queues"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "every level's directory is gone");
    broker.shutdown();
}
