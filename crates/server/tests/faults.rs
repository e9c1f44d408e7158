//! Disk faults, injected where a real disk fails (`warren_store::fault`): an I/O error while
//! writing a segment, at an fsync, while writing a queue journal or the definitions log, and
//! when a drained segment's files are removed. Each time the broker must refuse what it could
//! not store (a nack, an error reply), say so (the storage fault the disk alarm reads), keep
//! serving what it holds, and store again once the fault is gone; a restart then finds
//! everything it confirmed.
//!
//! A binary of its own: fail points are process-wide, so these tests must not share a process
//! with tests that expect a healthy disk. `FailScenario` runs them one at a time.

#[allow(dead_code)]
#[path = "e2e/common.rs"]
mod common;

use amqprs::channel::{
    BasicAckArguments, BasicPublishArguments, ConfirmSelectArguments, QueueDeclareArguments,
};
use amqprs::BasicProperties;
use common::{start_persistent, within, Chan, Event, TestServer};
use fail::FailScenario;
use warren_store::fault;

const MIB: u64 = 1 << 20;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).finish()
}

fn bodies(prefix: &str, n: usize, size: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:05}{}", "x".repeat(size)))
        .collect()
}

/// Publishes every body (persistent) and waits until each is settled; returns which were
/// acked (true) and which nacked (false). Tags count from `first_tag`.
async fn publish_confirmed(ch: &Chan, queue: &str, bodies: &[String], first_tag: u64) -> Vec<bool> {
    for body in bodies {
        ch.publish_with(BasicPublishArguments::new("", queue), persistent(), body)
            .await;
    }
    let end = first_tag + bodies.len() as u64;
    let mut settled = vec![None; bodies.len()];
    let mut open = bodies.len();
    while open > 0 {
        let (tag, multiple, ack) = match ch.next_event().await {
            Event::Ack { tag, multiple } => (tag, multiple, true),
            Event::Nack { tag, multiple } => (tag, multiple, false),
            other => panic!("unexpected {other:?} while waiting for confirms"),
        };
        assert!(tag < end, "tag {tag} was never published");
        let from = if multiple { first_tag } else { tag };
        for t in from..=tag {
            let slot = &mut settled[(t - first_tag) as usize];
            if slot.is_none() {
                *slot = Some(ack);
                open -= 1;
            } else if !multiple {
                panic!("tag {t} settled twice");
            }
        }
    }
    settled.into_iter().map(Option::unwrap).collect()
}

async fn durable_queue(ch: &Chan, name: &str) {
    ch.declare_with(QueueDeclareArguments::new(name).durable(true).finish())
        .await;
}

async fn confirming_channel(server: &TestServer, queue: &str) -> (common::Client, Chan) {
    let client = server.connect().await;
    let ch = client.channel().await;
    durable_queue(&ch, queue).await;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    (client, ch)
}

async fn stop(server: TestServer) {
    server.shut_down();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.broker.shutdown();
}

/// The bodies a restarted broker holds in `queue`, in order.
async fn after_restart(dir: &std::path::Path, queue: &str) -> Vec<String> {
    let server = start_persistent(dir).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let bodies = ch.drain(queue).await;
    client.close().await;
    stop(server).await;
    bodies
}

/// Publishes while `point` fails: every publish is nacked, the fault is reported, what was
/// stored before can still be read; once the point is healthy publishes are acked again, and
/// after a restart every acked message is there (and the one taken is not).
async fn publishes_are_nacked_while(point: &str) {
    let _scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let before = bodies("before-", 50, 100);
    let during = bodies("during-", 50, 100);
    let after = bodies("after-", 50, 100);
    {
        let server = start_persistent(dir.path()).await;
        let (client, ch) = confirming_channel(&server, "q").await;
        let acked = publish_confirmed(&ch, "q", &before, 1).await;
        assert!(acked.iter().all(|a| *a), "a healthy disk confirms");
        assert!(!server.broker.take_storage_fault());

        fail::cfg(point, "return").unwrap();
        let acked = publish_confirmed(&ch, "q", &during, 51).await;
        assert!(
            acked.iter().all(|a| !*a),
            "{point}: {} of 50 publishes confirmed although nothing could be stored",
            acked.iter().filter(|a| **a).count()
        );
        assert!(
            server.broker.take_storage_fault(),
            "{point}: the fault was not reported (no disk alarm would be raised)"
        );
        // Reads are served meanwhile.
        let got = ch.get("q", true).await.expect("a stored message");
        assert_eq!(got.body, before[0]);

        fail::remove(point);
        // Every publish after the fault is confirmed, the first one too: a write's ticket is
        // the round that flushed it, so the failed round nacks only its own publishes.
        let acked = publish_confirmed(&ch, "q", &after, 101).await;
        assert!(
            acked.iter().all(|a| *a),
            "{point}: {} of 50 publishes nacked after the disk was healthy again",
            acked.iter().filter(|a| !**a).count()
        );
        client.close().await;
        stop(server).await;
    }
    let kept = after_restart(dir.path(), "q").await;
    let missing: Vec<&String> = before[1..]
        .iter()
        .chain(&after)
        .filter(|b| !kept.contains(b))
        .collect();
    assert!(
        missing.is_empty(),
        "{point}: confirmed but lost: {}",
        missing.len()
    );
    assert!(
        !kept.contains(&before[0]),
        "{point}: the message taken came back"
    );
}

#[tokio::test]
async fn an_fsync_error_nacks_and_later_rounds_confirm() {
    publishes_are_nacked_while(fault::FSYNC).await;
}

#[tokio::test]
async fn a_segment_write_error_nacks_and_later_rounds_confirm() {
    publishes_are_nacked_while(fault::SEGMENT_WRITE).await;
}

#[tokio::test]
async fn a_journal_write_error_nacks_and_later_rounds_confirm() {
    publishes_are_nacked_while(fault::JOURNAL_WRITE).await;
}

/// Acks while the journal cannot be written are not lost either: once it can, they reach it,
/// and the acked messages do not come back after a restart.
#[tokio::test]
async fn acks_made_while_the_journal_fails_are_kept() {
    let _scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let messages = bodies("m-", 100, 100);
    {
        let server = start_persistent(dir.path()).await;
        let (client, ch) = confirming_channel(&server, "q").await;
        assert!(publish_confirmed(&ch, "q", &messages, 1)
            .await
            .iter()
            .all(|a| *a));
        fail::cfg(fault::JOURNAL_WRITE, "return").unwrap();
        for _ in 0..60 {
            let got = ch.get("q", false).await.expect("a message");
            within(
                "basic.ack",
                ch.basic_ack(BasicAckArguments::new(got.delivery_tag, false)),
            )
            .await
            .unwrap();
        }
        // A synchronous call after the acks: the broker has handled them.
        assert_eq!(ch.counts("q").await.0, 40);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        fail::remove(fault::JOURNAL_WRITE);
        client.close().await;
        stop(server).await;
    }
    assert_eq!(after_restart(dir.path(), "q").await, messages[60..]);
}

/// A durable declaration the definitions log cannot take is refused with 541 and not applied;
/// once the log can be written the same declaration succeeds and survives a restart.
#[tokio::test]
async fn a_definitions_write_error_refuses_the_change() {
    let _scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    {
        let server = start_persistent(dir.path()).await;
        let mut client = server.connect().await;
        let ch = client.channel().await;
        fail::cfg(fault::DEFINITIONS_WRITE, "return").unwrap();
        let declared = within(
            "the refused queue.declare",
            ch.queue_declare(QueueDeclareArguments::new("d").durable(true).finish()),
        )
        .await;
        assert!(declared.is_err(), "declared without storing: {declared:?}");
        let closed = client.closed_by_server().await;
        assert_eq!(closed.code, 541, "{closed:?}");
        fail::remove(fault::DEFINITIONS_WRITE);
        let client = server.connect().await;
        let ch = client.channel().await;
        assert!(
            server
                .broker
                .vhost("/")
                .unwrap()
                .queue(&"d".into())
                .is_err(),
            "a refused declaration is not applied"
        );
        durable_queue(&ch, "d").await;
        client.close().await;
        stop(server).await;
    }
    let server = start_persistent(dir.path()).await;
    assert!(server.broker.vhost("/").unwrap().queue(&"d".into()).is_ok());
    stop(server).await;
}

/// Drained segments whose files cannot be removed stay on disk, nothing else notices, and the
/// next start removes them without bringing back a message.
#[tokio::test]
async fn segments_that_cannot_be_removed_are_removed_at_the_next_start() {
    let _scenario = FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    // 40 MB: more than two 16 MiB segments.
    let messages = bodies("s-", 4000, 10_000);
    let last = bodies("last-", 1, 10);
    let disk_before;
    {
        let server = start_persistent(dir.path()).await;
        let (client, ch) = confirming_channel(&server, "q").await;
        assert!(publish_confirmed(&ch, "q", &messages, 1)
            .await
            .iter()
            .all(|a| *a));
        fail::cfg(fault::SEGMENT_REMOVE, "return").unwrap();
        let drained = ch.drain("q").await;
        assert_eq!(drained.len(), messages.len());
        // One more confirmed round: the group commit has had its turn at removing segments.
        assert!(publish_confirmed(&ch, "q", &last, 4001).await[0]);
        disk_before = dir_bytes(dir.path());
        assert!(
            disk_before > 32 * MIB,
            "drained segments are still on disk: {disk_before} bytes"
        );
        fail::remove(fault::SEGMENT_REMOVE);
        client.close().await;
        stop(server).await;
    }
    assert_eq!(after_restart(dir.path(), "q").await, last);
    let disk_after = dir_bytes(dir.path());
    // What is left is the last segment, which holds the one message still queued.
    assert!(
        disk_after < 17 * MIB,
        "the next start removed the drained segments: {disk_before} -> {disk_after} bytes"
    );
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
