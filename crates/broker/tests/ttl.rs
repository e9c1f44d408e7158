//! Message TTL and dead-lettering on the broker clock, driven by hand: messages past their
//! deadline leave from the head as dead letters, whether they wait in RAM or on disk, and a
//! TTL keeps counting across a restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use warren_broker::clock::ManualClock;
use warren_broker::queue::RAM_HEAD_MESSAGES;
use warren_broker::{Broker, BrokerConfig, Message, Routes, VHost};
use warren_protocol::{FieldTable, FieldValue};

#[path = "support/queues.rs"]
mod queues;
/// delivery_mode = 2, as encoded property flags and list.
const PERSISTENT: &[u8] = &[0x10, 0x00, 2];
const START: u64 = 1_800_000_000_000;

fn declare(v: &VHost, name: &str, arguments: FieldTable) {
    queues::declare(v, name, true, arguments);
}

/// "work" expires its messages after a second into "dead", through the default exchange.
fn topology(v: &VHost) {
    declare(v, "dead", FieldTable::new());
    let mut args = FieldTable::new();
    args.insert("x-message-ttl", FieldValue::I64(1000));
    args.insert("x-dead-letter-exchange", FieldValue::from(""));
    args.insert("x-dead-letter-routing-key", FieldValue::from("dead"));
    declare(v, "work", args);
}

fn publish(v: &VHost, n: usize) {
    let mut routes = Routes::default();
    let properties = Bytes::from_static(PERSISTENT);
    for i in 0..n {
        let body = Bytes::from(format!("m{i}"));
        let m = Message::new(&"".into(), &"work".into(), &properties, body);
        v.publish(&"".into(), m, &mut routes).unwrap();
    }
}

fn ready(v: &VHost, queue: &str) -> u32 {
    v.queue(&queue.into()).unwrap().counts().ready
}

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Arc<Broker> {
    Broker::open_with_clock(BrokerConfig::default(), dir, clock.clone()).unwrap()
}

/// Fires due timers until none is left due (a mass expiry continues in batches).
fn run_timers(broker: &Broker) {
    while broker.timers.fire_due() > 0 {}
}

#[test]
fn messages_past_their_ttl_become_dead_letters_in_ram_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let broker = open(dir.path(), &clock);
    let v = broker.vhost("/").unwrap();
    topology(&v);
    // More than the RAM head holds: the rest is paged to the log with its deadline.
    let n = RAM_HEAD_MESSAGES + 5000;
    publish(&v, n);
    clock.advance(Duration::from_millis(999));
    run_timers(&broker);
    assert_eq!(ready(&v, "work") as usize, n, "nothing is due yet");
    clock.advance(Duration::from_millis(1));
    run_timers(&broker);
    assert_eq!(ready(&v, "work"), 0);
    assert_eq!(ready(&v, "dead") as usize, n);
    // In order, with their death recorded and the original publish's persistence.
    let dead = v.queue(&"dead".into()).unwrap();
    let (first, _) = dead.get(true).unwrap();
    assert_eq!(&first.message.body[..], b"m0");
    assert!(first.message.persistent);
    let headers = first.message.decode_properties().headers.unwrap();
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death in {headers:?}")
    };
    let FieldValue::Table(death) = &deaths[0] else {
        panic!()
    };
    assert_eq!(
        death.get("reason").and_then(FieldValue::as_bytes),
        Some(&b"expired"[..])
    );
    assert_eq!(
        death.get("time"),
        Some(&FieldValue::Timestamp((START + 1000) / 1000))
    );
}

#[test]
fn a_ttl_keeps_counting_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    {
        let broker = open(dir.path(), &clock);
        let v = broker.vhost("/").unwrap();
        topology(&v);
        publish(&v, 10);
        broker.shutdown();
    }
    clock.advance(Duration::from_millis(600));
    let broker = open(dir.path(), &clock);
    let v = broker.vhost("/").unwrap();
    run_timers(&broker);
    assert_eq!(
        ready(&v, "work"),
        10,
        "deadlines are absolute: 400 ms remain"
    );
    clock.advance(Duration::from_millis(400));
    run_timers(&broker);
    assert_eq!((ready(&v, "work"), ready(&v, "dead")), (0, 10));
    // The dead letters themselves are durable and persistent: they survive the next restart.
    broker.shutdown();
    drop((v, broker));
    let broker = open(dir.path(), &clock);
    let v = broker.vhost("/").unwrap();
    assert_eq!(ready(&v, "dead"), 10);
}

#[test]
fn a_queue_over_its_length_limit_drops_the_oldest_to_its_dead_letter_queue() {
    let broker = Broker::new(BrokerConfig::default());
    let v = broker.vhost("/").unwrap();
    declare(&v, "dead", FieldTable::new());
    let mut args = FieldTable::new();
    args.insert("x-max-length", FieldValue::I64(3));
    args.insert("x-dead-letter-exchange", FieldValue::from(""));
    args.insert("x-dead-letter-routing-key", FieldValue::from("dead"));
    declare(&v, "work", args);
    publish(&v, 10);
    assert_eq!((ready(&v, "work"), ready(&v, "dead")), (3, 7));
    let q: Arc<_> = v.queue(&"work".into()).unwrap();
    assert_eq!(&q.get(true).unwrap().0.message.body[..], b"m7");
}
