//! A data directory written by the release before store format 2 (the fixture was made with
//! it: `fixtures/format1`, see the test) opens, is migrated, and holds what it held.

use std::path::Path;

use warren_broker::{Broker, BrokerConfig};
use warren_protocol::ShortStr;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// (body, redelivered, routing key) of every message left in `queue`, taken with basic.get
/// semantics and acked.
fn drain(broker: &Broker, queue: &str) -> Vec<(String, bool, String)> {
    let q = broker
        .vhost("/")
        .unwrap()
        .queue(&ShortStr::from(queue))
        .unwrap();
    let mut out = Vec::new();
    while let Some((item, _)) = q.get(true) {
        let m = &item.message;
        out.push((
            String::from_utf8(m.body.to_vec()).unwrap(),
            item.redelivered,
            m.routing_key.to_string(),
        ));
    }
    out
}

/// The fixture: with the format 1 release, a durable topic exchange `fixture-x` bound to the
/// durable queue `fixture-q` by `orders.#`, and an empty durable queue `fixture-empty`;
/// "message 0".."message 9" published persistent through the exchange (key `orders.N`,
/// content type text/plain, headers on every third); a transient message to `fixture-q`;
/// messages 0-2 got and acked, message 3 got and not acked (so delivered before the restart);
/// then a clean stop.
#[test]
fn a_format1_data_directory_is_migrated_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1"),
        &data,
    );
    let expected: Vec<(String, bool, String)> = (3..10)
        .map(|i| (format!("message {i}"), i == 3, format!("orders.{i}")))
        .collect();
    {
        let broker = Broker::open(BrokerConfig::default(), &data).unwrap();
        let v = broker.vhost("/").unwrap();
        let x = v.exchange(&"fixture-x".into()).unwrap();
        assert_eq!(x.bindings().len(), 1);
        assert!(v.queue(&"fixture-empty".into()).is_ok());
        let q = v.queue(&"fixture-q".into()).unwrap();
        assert_eq!(q.counts().ready, 7);
        assert_eq!(
            q.ready_bytes(),
            7 * 9,
            "the bodies' bytes, known before reading them"
        );
        let (first, _) = q.get(false).unwrap();
        let props = first.message.decode_properties();
        assert_eq!(
            props.content_type.map(|s| s.to_string()).as_deref(),
            Some("text/plain")
        );
        assert!(props.headers.is_some(), "message 3 has headers");
        broker.shutdown();
    }
    // Opened again, now in format 2, and drained.
    let broker = Broker::open(BrokerConfig::default(), &data).unwrap();
    assert_eq!(drain(&broker, "fixture-q"), expected);
    broker.shutdown();
    let journal_head = std::fs::read(
        std::fs::read_dir(data.join("queues"))
            .unwrap()
            .map(|e| e.unwrap().path().join("journal"))
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(&journal_head[..4], b"WJNL", "rewritten with a header");
    let defs = std::fs::read(data.join("definitions.log")).unwrap();
    assert_eq!(&defs[..4], b"WDEF");
}

/// A crash between the two renames of a migration's swap leaves the old log aside and the
/// new one half made: the next start puts the old one back and migrates it again.
#[test]
fn a_migration_interrupted_by_a_crash_is_done_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1"),
        &data,
    );
    let queues = data.join("queues");
    let q_dir = std::fs::read_dir(&queues)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("00000000000000000000.seg").exists())
        .unwrap();
    std::fs::rename(&q_dir, q_dir.with_extension("v1-old")).unwrap();
    std::fs::create_dir_all(q_dir.with_extension("v2-migrating")).unwrap();
    std::fs::write(
        q_dir.with_extension("v2-migrating").join("journal"),
        b"partial",
    )
    .unwrap();

    let broker = Broker::open(BrokerConfig::default(), &data).unwrap();
    let got = drain(&broker, "fixture-q");
    assert_eq!(got.len(), 7);
    assert_eq!(
        got[0],
        ("message 3".to_string(), true, "orders.3".to_string())
    );
    broker.shutdown();
    let left: Vec<String> = std::fs::read_dir(&queues)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|n| !n.contains('.')),
        "nothing left aside: {left:?}"
    );
}
