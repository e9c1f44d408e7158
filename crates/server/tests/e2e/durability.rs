//! Durability against a broker with a data directory: what is confirmed survives a restart,
//! transactions commit to disk, long queues page to disk and come back in order, and purges
//! give the space back.

use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, ConfirmSelectArguments, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments, QueuePurgeArguments,
};
use amqprs::BasicProperties;
use warren_protocol::ShortStr;

use crate::common::*;

#[path = "../../../broker/tests/support/small_disk.rs"]
mod small_disk;

use small_disk::SmallDisk;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).finish()
}

/// Waits until every publish up to `n` on `ch` is confirmed (acks may be cumulative).
async fn confirmed(ch: &Chan, n: u64) {
    let mut last = 0;
    while last < n {
        match ch.next_event().await {
            Event::Ack { tag, .. } => last = last.max(tag),
            other => panic!("unexpected {other:?} while waiting for confirms"),
        }
    }
}

async fn durable_queue(ch: &Chan, name: &str) {
    ch.declare_with(QueueDeclareArguments::new(name).durable(true).finish())
        .await;
}

/// Stops a server the way SIGTERM does: connections closed, logs flushed, syncer stopped.
async fn stop(server: TestServer) {
    server.shut_down();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    server.broker.shutdown();
}

#[tokio::test]
async fn confirmed_messages_and_definitions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = start_persistent(dir.path()).await;
        let client = server.connect().await;
        let ch = client.channel().await;
        durable_queue(&ch, "dq").await;
        ch.exchange_declare(
            ExchangeDeclareArguments::new("dx", "direct")
                .durable(true)
                .finish(),
        )
        .await
        .unwrap();
        ch.queue_bind(QueueBindArguments::new("dq", "dx", "k"))
            .await
            .unwrap();
        ch.confirm_select(ConfirmSelectArguments::default())
            .await
            .unwrap();
        for i in 0..5 {
            ch.publish_with(
                BasicPublishArguments::new("dx", "k"),
                persistent(),
                &format!("p{i}"),
            )
            .await;
        }
        ch.publish("dx", "k", "transient").await;
        confirmed(&ch, 6).await;
        // Delivered and left unacked when the broker stops.
        let held = ch.get("dq", false).await.expect("a message");
        assert_eq!(held.body, "p0");
        stop(server).await;
        drop(client);
    }
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    assert_eq!(
        ch.counts("dq").await.0,
        5,
        "persistent messages back, the transient one gone"
    );
    let first = ch.get("dq", true).await.unwrap();
    assert_eq!((first.body.as_str(), first.redelivered), ("p0", true));
    assert_eq!(ch.drain("dq").await, ["p1", "p2", "p3", "p4"]);
    // The durable exchange and its binding came back too.
    ch.publish("dx", "k", "after").await;
    assert_eq!(ch.drain("dq").await, ["after"]);
    client.close().await;
}

#[tokio::test]
async fn tx_commit_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = start_persistent(dir.path()).await;
        let client = server.connect().await;
        let ch = client.channel().await;
        durable_queue(&ch, "txq").await;
        ch.tx_select().await.unwrap();
        ch.publish_with(
            BasicPublishArguments::new("", "txq"),
            persistent(),
            "committed",
        )
        .await;
        within("tx.commit-ok", ch.tx_commit()).await.unwrap();
        stop(server).await;
        drop(client);
    }
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    assert_eq!(ch.drain("txq").await, ["committed"]);
    client.close().await;
}

#[tokio::test]
async fn long_queues_page_to_disk_and_come_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    // Past the RAM head (65,536 messages): the rest wait on disk.
    const N: usize = 80_000;
    let q = ch.declare("").await;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    for i in 0..N {
        ch.publish("", &q, &i.to_string()).await;
    }
    confirmed(&ch, N as u64).await;
    let queue = server
        .broker
        .vhost("/")
        .unwrap()
        .queue(&ShortStr::from(q.as_str()))
        .unwrap();
    assert!(
        queue.disk_bytes() > 0,
        "the tail of a long transient queue is on disk"
    );
    assert_eq!(ch.counts(&q).await.0, N as u32);
    let mut consumer = ch
        .consume(
            BasicConsumeArguments::new(&q, "")
                .manual_ack(false)
                .finish(),
        )
        .await;
    for (i, m) in consumer.take(N).await.into_iter().enumerate() {
        assert_eq!(m.body, i.to_string(), "message {i} out of order");
    }
    client.close().await;
}

#[tokio::test]
async fn purge_gives_disk_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    durable_queue(&ch, "big").await;
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    const N: u64 = 20_000;
    let body = "x".repeat(1000);
    for _ in 0..N {
        ch.publish_with(BasicPublishArguments::new("", "big"), persistent(), &body)
            .await;
    }
    confirmed(&ch, N).await;
    let queue = server
        .broker
        .vhost("/")
        .unwrap()
        .queue(&ShortStr::from("big"))
        .unwrap();
    let before = queue.disk_bytes();
    assert!(before > N * 1000, "{before} bytes on disk");
    ch.queue_purge(QueuePurgeArguments::new("big"))
        .await
        .unwrap();
    let after = queue.disk_bytes();
    assert!(after < before / 10, "purge left {after} of {before} bytes");
    stop(server).await;
    drop(client);
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    assert_eq!(ch.counts("big").await.0, 0, "purged messages stay purged");
    client.close().await;
}

#[tokio::test]
async fn a_recovered_backlog_is_consumed_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 30_000;
    {
        let server = start_persistent(dir.path()).await;
        let client = server.connect().await;
        let ch = client.channel().await;
        durable_queue(&ch, "backlog").await;
        ch.confirm_select(ConfirmSelectArguments::default())
            .await
            .unwrap();
        for i in 0..N {
            ch.publish_with(
                BasicPublishArguments::new("", "backlog"),
                persistent(),
                &i.to_string(),
            )
            .await;
        }
        confirmed(&ch, N as u64).await;
        stop(server).await;
        drop(client);
    }
    let server = start_persistent(dir.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    assert_eq!(ch.counts("backlog").await.0, N as u32);
    ch.basic_qos(amqprs::channel::BasicQosArguments::new(0, 100, false))
        .await
        .unwrap();
    let mut consumer = ch.consume_acked("backlog").await;
    for i in 0..N {
        let m = within(&format!("message {i}"), consumer.next()).await;
        assert_eq!(m.body, i.to_string());
        ch.basic_ack(amqprs::channel::BasicAckArguments::new(
            m.delivery_tag,
            false,
        ))
        .await
        .unwrap();
    }
    client.close().await;
}

/// Publishes with confirms until every publish is settled; returns which were acked.
async fn publish_confirmed(ch: &Chan, queue: &str, bodies: &[String]) -> Vec<bool> {
    use std::collections::BTreeMap;
    for body in bodies {
        ch.publish_with(BasicPublishArguments::new("", queue), persistent(), body)
            .await;
    }
    let mut pending: BTreeMap<u64, ()> = (1..=bodies.len() as u64).map(|t| (t, ())).collect();
    let mut acked = vec![false; bodies.len()];
    while !pending.is_empty() {
        let (tag, multiple, ack) = match ch.next_event().await {
            Event::Ack { tag, multiple } => (tag, multiple, true),
            Event::Nack { tag, multiple } => (tag, multiple, false),
            other => panic!("unexpected {other:?} while waiting for confirms"),
        };
        let settled: Vec<u64> = if multiple {
            pending.range(..=tag).map(|(t, _)| *t).collect()
        } else {
            vec![tag]
        };
        for t in settled {
            assert!(pending.remove(&t).is_some(), "tag {t} settled twice");
            acked[t as usize - 1] = ack;
        }
    }
    acked
}

/// 20 MB of persistent messages into an 8 MiB file system, with no disk alarm to stop the
/// publisher: what could not be stored is nacked, everything acked survives a restart on the
/// still-full disk (the broker starts and serves it), and once the queue is drained the space
/// comes back and publishes are acked again.
#[tokio::test]
async fn a_full_disk_nacks_what_it_cannot_store_and_loses_nothing_confirmed() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let bodies: Vec<String> = (0..2000)
        .map(|i| format!("{i:05}{}", "x".repeat(10_000)))
        .collect();
    let acked = {
        let server = start_persistent(disk.path()).await;
        let client = server.connect().await;
        let ch = client.channel().await;
        durable_queue(&ch, "full").await;
        ch.confirm_select(ConfirmSelectArguments::default())
            .await
            .unwrap();
        let acked = publish_confirmed(&ch, "full", &bodies).await;
        stop(server).await;
        drop(client);
        acked
    };
    let n_acked = acked.iter().filter(|a| **a).count();
    eprintln!("full disk: {n_acked} of {} publishes acked", bodies.len());
    assert!(n_acked > 100, "some messages fit: {n_acked} acked");
    assert!(n_acked < 1000, "20 MB cannot fit in 8 MiB: {n_acked} acked");

    let server = start_persistent(disk.path()).await;
    let client = server.connect().await;
    let ch = client.channel().await;
    let mut present = vec![false; bodies.len()];
    for body in ch.drain("full").await {
        let i: usize = body[..5].parse().unwrap();
        present[i] = true;
    }
    let lost: Vec<usize> = (0..bodies.len())
        .filter(|&i| acked[i] && !present[i])
        .collect();
    assert!(lost.is_empty(), "confirmed but lost: {lost:?}");

    // Drained: the space is back, and new publishes are confirmed.
    ch.confirm_select(ConfirmSelectArguments::default())
        .await
        .unwrap();
    let again = publish_confirmed(&ch, "full", &bodies[..50]).await;
    assert!(
        again.iter().all(|a| *a),
        "after draining, publishes are acked again"
    );
    assert_eq!(ch.counts("full").await.0, 50);
}
