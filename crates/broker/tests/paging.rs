//! A durable queue longer than its RAM head: the rest waits in its log and is read back as
//! the consumer drains the head, in order, across a restart too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use warren_broker::queue::RAM_HEAD_MESSAGES;
use warren_broker::{
    Broker, BrokerConfig, ChannelOutbox, ConsumerSpec, Message, Outbound, Queue, Settlement,
};
use warren_protocol::FieldTable;

#[path = "support/queues.rs"]
mod queues;
use queues::CLIENT;

/// delivery_mode = 2, as encoded property flags and list.
const PERSISTENT: &[u8] = &[0x10, 0x00, 2];

fn durable_queue(broker: &Broker) -> Arc<Queue> {
    queues::declare(&broker.vhost("/").unwrap(), "long", true, FieldTable::new())
}

/// Consumes `n` messages with acks, checking they come in publish order from `first`.
async fn consume_in_order(q: &Arc<Queue>, first: u64, n: u64) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outbox = ChannelOutbox::new(CLIENT, 1, tx);
    let id = q
        .add_consumer(ConsumerSpec {
            tag: "c".into(),
            outbox,
            no_ack: false,
            prefetch: 500,
            exclusive: false,
            priority: 0,
        })
        .unwrap();
    for expected in first..first + n {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        let Ok(Some(Outbound::Deliver(d))) = next else {
            panic!("no delivery for message {expected}");
        };
        let body = String::from_utf8(d.item.message.body.to_vec()).unwrap();
        assert_eq!(body, expected.to_string());
        q.settle([(Some(id), d.item)], Settlement::Ack);
    }
}

#[tokio::test]
async fn a_backlog_beyond_the_ram_head_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let total = RAM_HEAD_MESSAGES as u64 + 20_000;
    {
        let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
        let q = durable_queue(&broker);
        let props = Bytes::from_static(PERSISTENT);
        for i in 0..total {
            let m = Message::new(&"".into(), &"long".into(), &props, i.to_string().into());
            q.enqueue(Arc::new(m));
        }
        assert_eq!(q.counts().ready as u64, total);
        consume_in_order(&q, 0, 30_000).await;
        // What the consumer holds (its prefetch) is unacked; the rest still ready.
        let counts = q.counts();
        assert_eq!(u64::from(counts.ready + counts.unacked), total - 30_000);
        broker.shutdown();
    }
    // After a restart the whole rest is on disk.
    let broker = Broker::open(BrokerConfig::default(), dir.path()).unwrap();
    let q = durable_queue(&broker);
    assert_eq!(q.counts().ready as u64, total - 30_000);
    consume_in_order(&q, 30_000, total - 30_000).await;
    assert_eq!(q.counts().ready, 0);
    broker.shutdown();
}
