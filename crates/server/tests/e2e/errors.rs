//! Protocol errors that close the connection, sent over a raw socket. After each, the broker
//! must go on serving other connections.

use bytes::BytesMut;
use warren_protocol::{
    constants::{FRAME_BODY, FRAME_METHOD},
    encode_method_frame, ChannelOpen, Method, QueueDeclare, FRAME_END,
};

use crate::common::*;

/// The payload of a method frame for `method`, without the frame around it.
fn method_payload(method: &Method) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_method_frame(&mut out, 1, method);
    out[7..out.len() - 1].to_vec()
}

fn declare(name: &str) -> Method {
    Method::QueueDeclare(QueueDeclare {
        queue: name.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn bad_frame_end_is_501() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.send(&raw_frame(
        FRAME_METHOD,
        1,
        &method_payload(&declare("q")),
        0xAB,
    ))
    .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(close.reply_text.to_string().starts_with("FRAME_ERROR"));
    assert_serving(&server).await;
}

#[tokio::test]
async fn unknown_class_or_method_is_503() {
    let server = start().await;
    // Class 99 does not exist; neither does method 99 of class queue (50).
    for (class, method) in [(99u16, 1u16), (50, 99)] {
        let mut raw = Raw::open(server.port).await;
        let mut payload = class.to_be_bytes().to_vec();
        payload.extend_from_slice(&method.to_be_bytes());
        raw.send(&raw_frame(FRAME_METHOD, 1, &payload, FRAME_END))
            .await;
        let close = raw.expect_connection_close().await;
        assert!(
            close.reply_code == 503 || close.reply_code == 540,
            "{class}/{method}: {close:?}"
        );
        assert_eq!((close.class_id, close.method_id), (class, method));
    }
    assert_serving(&server).await;
}

#[tokio::test]
async fn method_on_an_unopened_channel_is_504() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.send_method(7, declare("q")).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 504, "{close:?}");
    assert!(close.reply_text.to_string().starts_with("CHANNEL_ERROR"));
    assert_eq!((close.class_id, close.method_id), (50, 10));

    // Opening a channel twice is a channel error too.
    let mut raw = Raw::open(server.port).await;
    raw.send_method(1, Method::ChannelOpen(ChannelOpen::default()))
        .await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 504);
    assert_serving(&server).await;
}

#[tokio::test]
async fn content_body_without_a_publish_is_505() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    raw.send(&raw_frame(FRAME_BODY, 1, b"stray body", FRAME_END))
        .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 505, "{close:?}");
    assert!(close.reply_text.to_string().starts_with("UNEXPECTED_FRAME"));
    assert_serving(&server).await;
}

#[tokio::test]
async fn frame_larger_than_frame_max_is_501() {
    let server = start().await;
    let mut raw = Raw::open(server.port).await;
    // The negotiated frame_max is 131072; announce a bigger frame. The server must refuse it
    // from the header alone, without waiting for (or buffering) the payload.
    let mut header = vec![FRAME_BODY, 0, 1];
    header.extend_from_slice(&(131_072u32 + 1).to_be_bytes());
    raw.send(&header).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(close.reply_text.to_string().starts_with("FRAME_ERROR"));
    assert_serving(&server).await;
}

#[tokio::test]
async fn channel_frames_before_open_are_refused() {
    let server = start().await;
    // A method on a channel before connection.open is answered with a connection error.
    let (mut raw, _) = Raw::start(server.port).await;
    raw.start_ok("PLAIN", PLAIN_GUEST).await;
    raw.send_method(1, Method::ChannelOpen(ChannelOpen::default()))
        .await;
    let close = loop {
        match raw.recv_method().await {
            (0, Method::ConnectionTune(_)) => continue,
            (0, Method::ConnectionClose(c)) => break c,
            other => panic!("expected connection.close, got {other:?}"),
        }
    };
    // A connection error; which one the spec leaves open (Warren: 504 CHANNEL_ERROR).
    assert!([503, 504, 505].contains(&close.reply_code), "{close:?}");
    assert_serving(&server).await;
}
