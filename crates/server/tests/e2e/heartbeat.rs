//! Heartbeats: the server sends them, and drops a client that sends nothing.

use std::time::{Duration, Instant};

use warren_protocol::{encode_heartbeat, ChannelOpen, Frame, Method};

use crate::common::*;

#[tokio::test]
async fn silent_client_is_dropped_after_two_missed_intervals() {
    let server = start().await;
    let (mut raw, answer) = Raw::handshake(server.port, 1, "/").await;
    assert!(matches!(answer, Method::ConnectionOpenOk(_)), "{answer:?}");
    let silent_since = Instant::now();
    let mut heartbeats = 0;
    loop {
        match raw.recv().await {
            Some(Frame::Heartbeat { channel: 0 }) => heartbeats += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    let after = silent_since.elapsed();
    // Two intervals of 1 s, checked once a second: dropped between 2 and 3 s of silence.
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_millis(4000),
        "dropped after {after:?}"
    );
    assert!(heartbeats >= 1, "the server sent no heartbeat in {after:?}");
    assert_serving(&server).await;
}

#[tokio::test]
async fn client_that_sends_heartbeats_stays_connected() {
    let server = start().await;
    let (mut raw, answer) = Raw::handshake(server.port, 1, "/").await;
    assert!(matches!(answer, Method::ConnectionOpenOk(_)), "{answer:?}");
    let mut beat = bytes::BytesMut::new();
    encode_heartbeat(&mut beat);
    let began = Instant::now();
    let mut received = 0;
    // Longer than the 2 s after which a silent client is dropped.
    while began.elapsed() < Duration::from_millis(3500) {
        raw.send(&beat).await;
        // Each heartbeat from the server (every ~0.5-1 s) paces ours.
        match raw.recv().await {
            Some(Frame::Heartbeat { channel: 0 }) => received += 1,
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    assert!(received >= 3, "only {received} heartbeats in 3.5 s");
    raw.send_method(1, Method::ChannelOpen(ChannelOpen::default()))
        .await;
    assert!(matches!(
        raw.recv_method().await,
        (1, Method::ChannelOpenOk(_))
    ));
}
