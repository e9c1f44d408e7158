//! Definition changes through the command log: what a change and its cascades leave on disk
//! is exactly what the broker shows, before and after a restart.

use std::path::Path;
use std::sync::Arc;

use warren_broker::auth::Permissions;
use warren_broker::vhost::{ExchangeDeclare, QueueDeclare};
use warren_broker::{Broker, BrokerConfig, QueueConfig, VHost};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

#[path = "support/queues.rs"]
mod queues;
#[path = "support/small_disk.rs"]
mod small_disk;

use small_disk::SmallDisk;

use queues::CLIENT;

fn open(dir: &Path) -> Arc<Broker> {
    Broker::open(BrokerConfig::default(), dir).unwrap()
}

fn exchange(v: &VHost, name: &str, durable: bool, auto_delete: bool) {
    v.declare_exchange(ExchangeDeclare {
        name: name.into(),
        kind: "direct".into(),
        passive: false,
        config_flags: (durable, auto_delete, false),
        arguments: FieldTable::new(),
    })
    .unwrap();
}

fn queue(v: &VHost, name: &str, durable: bool) {
    queues::declare(v, name, durable, FieldTable::new());
}

fn bind(v: &VHost, queue: &str, exchange: &str, key: &str) {
    v.bind_queue(
        CLIENT,
        &queue.into(),
        &exchange.into(),
        key.into(),
        FieldTable::new(),
    )
    .unwrap();
}

/// Declared exchanges (not the standard ones) and queues, sorted.
fn topology(v: &VHost) -> (Vec<String>, Vec<String>) {
    let mut exchanges: Vec<String> = v
        .exchanges()
        .iter()
        .map(|e| e.name.to_string())
        .filter(|n| !n.is_empty() && !n.starts_with("amq."))
        .collect();
    let mut queues: Vec<String> = v.queues().iter().map(|q| q.name.to_string()).collect();
    exchanges.sort();
    queues.sort();
    (exchanges, queues)
}

fn bindings_of(v: &VHost, exchange: &str) -> Vec<String> {
    let mut keys: Vec<String> = v
        .exchange(&ShortStr::from(exchange))
        .map(|e| e.bindings())
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{}:{}", b.destination.name(), b.routing_key))
        .collect();
    keys.sort();
    keys
}

#[test]
fn deleting_a_queue_unbinds_it_and_auto_deletes_what_it_leaves_empty_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let v = broker.vhost("/").unwrap();
        exchange(&v, "jobs", true, true);
        exchange(&v, "keep", true, false);
        queue(&v, "work", true);
        queue(&v, "other", true);
        bind(&v, "work", "jobs", "a");
        bind(&v, "work", "keep", "a");
        bind(&v, "other", "keep", "b");

        v.delete_queue(CLIENT, &"work".into(), false, false)
            .unwrap();
        let expected = (vec!["keep".to_string()], vec!["other".to_string()]);
        assert_eq!(topology(&v), expected, "jobs lost its last binding");
        assert_eq!(bindings_of(&v, "keep"), ["other:b"]);
        broker.shutdown();
    }
    let broker = open(dir.path());
    let v = broker.vhost("/").unwrap();
    assert_eq!(
        topology(&v),
        (vec!["keep".to_string()], vec!["other".to_string()])
    );
    assert_eq!(bindings_of(&v, "keep"), ["other:b"]);
    broker.shutdown();
}

#[test]
fn a_deleted_vhost_and_user_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        assert!(broker.add_vhost("shop").unwrap());
        assert!(!broker.add_vhost("shop").unwrap(), "exists already");
        broker.access.add_user("erin", "pw", &[]).unwrap();
        broker
            .access
            .set_permissions("shop", "erin", Permissions::full())
            .unwrap();
        broker
            .access
            .set_permissions("/", "erin", Permissions::full())
            .unwrap();
        let v = broker.vhost("shop").unwrap();
        exchange(&v, "orders", true, false);
        queue(&v, "invoices", true);
        bind(&v, "invoices", "orders", "new");
        bind(&v, "invoices", "amq.topic", "#");

        assert!(broker.delete_vhost("shop").unwrap());
        assert!(broker.access.permissions("shop", "erin").is_none());
        assert!(broker.access.delete_user("erin").unwrap());
        assert!(!broker.access.delete_user("erin").unwrap());
        assert!(broker.access.permissions("/", "erin").is_none());
        // Declared again, the vhost starts empty.
        assert!(broker.add_vhost("shop").unwrap());
        broker.shutdown();
    }
    let broker = open(dir.path());
    let v = broker.vhost("shop").expect("re-added vhost recovered");
    assert_eq!(topology(&v), (vec![], vec![]));
    assert!(bindings_of(&v, "amq.topic").is_empty());
    assert!(broker.access.user("erin").is_none());
    assert!(broker.access.permissions("/", "erin").is_none());
    assert!(broker.access.permissions("/", "guest").is_some());
    broker.shutdown();
}

#[test]
fn transient_definitions_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let v = broker.vhost("/").unwrap();
        exchange(&v, "durable-x", true, false);
        exchange(&v, "transient-x", false, false);
        queue(&v, "durable-q", true);
        queue(&v, "transient-q", false);
        bind(&v, "durable-q", "durable-x", "kept");
        bind(&v, "transient-q", "durable-x", "dropped");
        bind(&v, "durable-q", "transient-x", "dropped");
        broker.shutdown();
    }
    let broker = open(dir.path());
    let v = broker.vhost("/").unwrap();
    assert_eq!(
        topology(&v),
        (vec!["durable-x".to_string()], vec!["durable-q".to_string()])
    );
    assert_eq!(bindings_of(&v, "durable-x"), ["durable-q:kept"]);
    broker.shutdown();
}

#[test]
fn an_auto_delete_queue_goes_with_its_last_consumer() {
    let broker = Broker::new(BrokerConfig::default());
    let v = broker.vhost("/").unwrap();
    exchange(&v, "events", false, true);
    v.declare_queue(
        CLIENT,
        QueueDeclare {
            name: "listener".into(),
            server_named: false,
            passive: false,
            config: QueueConfig {
                durable: false,
                exclusive: false,
                auto_delete: true,
                arguments: FieldTable::new(),
            },
        },
    )
    .unwrap();
    bind(&v, "listener", "events", "k");
    let q = v.queue(&"listener".into()).unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let outbox = warren_broker::ChannelOutbox::new(CLIENT, 1, tx);
    let spec = |tag: &str| warren_broker::ConsumerSpec {
        tag: tag.into(),
        outbox: outbox.clone(),
        no_ack: false,
        prefetch: 1,
        exclusive: false,
        priority: 0,
    };
    let first = q.add_consumer(spec("a")).unwrap();
    let second = q.add_consumer(spec("b")).unwrap();
    v.cancel_consumer(&q, first);
    assert!(v.queue(&"listener".into()).is_ok(), "one consumer left");
    v.cancel_consumer(&q, second);
    assert!(v.queue(&"listener".into()).is_err(), "auto-deleted");
    assert!(q.is_deleted());
    assert!(
        v.exchange(&"events".into()).is_err(),
        "the auto-delete exchange lost its only binding"
    );
}

#[test]
fn a_change_that_cannot_be_stored_is_refused_and_not_applied() {
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let data = disk.path().join("data");
    {
        let broker = open(&data);
        let v = broker.vhost("/").unwrap();
        queue(&v, "kept", true);
        let mut big = FieldTable::new();
        big.insert("padding", FieldValue::LongStr("x".repeat(9000).into()));
        v.bind_queue(
            CLIENT,
            &"kept".into(),
            &"amq.direct".into(),
            "k".into(),
            big.clone(),
        )
        .unwrap();
        let long_tag = "t".repeat(9000);
        disk.fill();
        // Each refused write also releases the broker's reserve, so the disk is filled
        // again before each attempt.
        assert!(broker.access.add_user("erin", "pw", &[&long_tag]).is_err());
        assert!(broker.access.user("erin").is_none(), "not applied");
        disk.fill();
        let shop = "s".repeat(9000);
        assert!(broker.add_vhost(&shop).is_err());
        assert!(broker.vhost(&shop).is_none());
        disk.fill();
        let err = v
            .delete_queue(CLIENT, &"kept".into(), false, false)
            .unwrap_err();
        assert_eq!(err.code.code(), 541, "{err:?}");
        assert!(v.queue(&"kept".into()).is_ok(), "the queue stays");
        disk.fill();
        let err = v
            .declare_exchange(ExchangeDeclare {
                name: "orders".into(),
                kind: "topic".into(),
                passive: false,
                config_flags: (true, false, false),
                arguments: big,
            })
            .unwrap_err();
        assert_eq!(err.code.code(), 541, "{err:?}");
        assert!(v.exchange(&"orders".into()).is_err());
        broker.shutdown();
    }
    std::fs::remove_file(disk.path().join("ballast")).unwrap();
    let broker = open(&data);
    let v = broker.vhost("/").unwrap();
    assert_eq!(topology(&v), (vec![], vec!["kept".to_string()]));
    assert!(broker.access.user("erin").is_none());
    assert_eq!(broker.vhosts().len(), 1);
    assert_eq!(bindings_of(&v, "amq.direct"), ["kept:k"]);
    broker.shutdown();
}

#[test]
fn a_vhost_keeps_its_description_and_tags() {
    use warren_broker::persistence::VhostDef;
    let dir = tempfile::tempdir().unwrap();
    let def = VhostDef {
        name: "shop".into(),
        description: "orders and invoices".into(),
        tags: vec!["prod".into()],
        default_queue_type: Some("classic".into()),
        limits: Default::default(),
    };
    {
        let broker = open(dir.path());
        assert!(broker.put_vhost(def.clone()).unwrap(), "created");
        assert!(!broker.put_vhost(def.clone()).unwrap(), "unchanged");
        let v = broker.vhost("shop").unwrap();
        queue(&v, "invoices", true);
        let renamed = VhostDef {
            description: "orders".into(),
            ..def.clone()
        };
        assert!(!broker.put_vhost(renamed).unwrap(), "changed, not created");
        assert_eq!(v.queues().len(), 1, "a redefined vhost keeps its queues");
        broker.shutdown();
    }
    let broker = open(dir.path());
    let v = broker.vhost("shop").unwrap();
    assert_eq!(v.definition().description, "orders");
    assert_eq!(v.definition().tags, ["prod"]);
    assert_eq!(v.queues().len(), 1);
    broker.shutdown();
}
