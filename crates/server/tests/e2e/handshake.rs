//! Connection handshake: login, vhosts, protocol header, server properties, shutdown.

use amqprs::security::SecurityCredentials;
use warren_protocol::{FieldTable, FieldValue, Method, PROTOCOL_HEADER};

use crate::common::*;

#[tokio::test]
async fn plain_login_opens_a_usable_connection() {
    let server = start().await;
    let client = server.connect().await;
    assert!(client.conn.is_open());
    let caps = client.conn.server_properties().capabilities();
    assert!(caps.publisher_confirms() && caps.consumer_cancel_notify() && caps.basic_nack());
    assert_eq!(client.conn.server_properties().product(), "Warren");
    let ch = client.channel().await;
    let q = ch.declare("handshake-q").await;
    assert_eq!(q, "handshake-q");
    client.close().await;
}

#[tokio::test]
async fn amqplain_login_works() {
    let server = start().await;
    let args = server
        .args()
        .credentials(SecurityCredentials::new_amqplain("guest", "guest"))
        .finish();
    let client = server.connect_with(&args).await.expect("AMQPLAIN login");
    let ch = client.channel().await;
    ch.declare("amqplain-q").await;
    client.close().await;

    // And a wrong AMQPLAIN password is refused like a wrong PLAIN one.
    let bad = server
        .args()
        .credentials(SecurityCredentials::new_amqplain("guest", "nope"))
        .finish();
    assert!(server.connect_with(&bad).await.is_err());
}

#[tokio::test]
async fn amqplain_login_over_a_raw_socket() {
    let server = start().await;
    // AMQPLAIN's response is a field table without its length prefix.
    let mut table = FieldTable::new();
    table.insert("LOGIN", "guest");
    table.insert("PASSWORD", "guest");
    let mut encoded = bytes::BytesMut::new();
    table.encode(&mut encoded);
    let (mut raw, _) = Raw::start(server.port).await;
    raw.start_ok("AMQPLAIN", &encoded[4..]).await;
    match raw.recv_method().await {
        (0, Method::ConnectionTune(t)) => assert_eq!(t.frame_max, 131_072),
        other => panic!("expected connection.tune after AMQPLAIN login, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_password_is_refused_with_403() {
    let server = start().await;
    // A client announcing authentication_failure_close is told why.
    let (mut raw, _) = Raw::start(server.port).await;
    raw.start_ok("PLAIN", b"\0guest\0wrong").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 403, "{close:?}");
    assert!(close.reply_text.to_string().starts_with("ACCESS_REFUSED"));
    assert_eq!((close.class_id, close.method_id), (10, 11));

    // amqprs does not announce that capability: it sees the socket close and fails to open.
    let args = amqprs::connection::OpenConnectionArguments::new(
        "127.0.0.1",
        server.port,
        "guest",
        "wrong",
    )
    .heartbeat(0)
    .finish();
    assert!(server.connect_with(&args).await.is_err());
    // An unknown user too.
    let (mut raw, _) = Raw::start(server.port).await;
    raw.start_ok("PLAIN", b"\0nobody\0guest").await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 403);
    assert_serving(&server).await;
}

#[tokio::test]
async fn unknown_vhost_is_refused_with_530() {
    let server = start().await;
    let (mut raw, answer) = Raw::handshake(server.port, 0, "no-such-vhost").await;
    match answer {
        Method::ConnectionClose(close) => {
            assert_eq!(close.reply_code, 530, "{close:?}");
            assert!(close.reply_text.to_string().starts_with("NOT_ALLOWED"));
            assert_eq!((close.class_id, close.method_id), (10, 40));
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    raw.send_method(
        0,
        Method::ConnectionCloseOk(warren_protocol::ConnectionCloseOk),
    )
    .await;
    raw.expect_eof().await;

    let args = server.args().virtual_host("no-such-vhost").finish();
    let err = server
        .connect_with(&args)
        .await
        .err()
        .expect("amqprs must fail to open");
    assert!(err.to_string().contains("530"), "{err}");
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_back_and_the_socket_closed() {
    let server = start().await;
    // Eight bytes each: the server reads exactly a header's worth, so closing leaves nothing
    // unread (unread input would turn the close into a reset).
    for header in [
        b"AMQP\x00\x00\x08\x00",
        b"AMQP\x01\x01\x00\x0a",
        b"HTTP/1.1",
    ] {
        let mut raw = Raw::connect(server.port).await;
        raw.send(header).await;
        assert_eq!(raw.read_to_end().await, PROTOCOL_HEADER, "for {header:?}");
    }
    assert_serving(&server).await;
}

#[tokio::test]
async fn server_properties_and_capabilities() {
    let server = start().await;
    let (_raw, start) = Raw::start(server.port).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let mechanisms = String::from_utf8(start.mechanisms.to_vec()).unwrap();
    let mechanisms: Vec<&str> = mechanisms.split(' ').collect();
    assert!(mechanisms.contains(&"PLAIN") && mechanisms.contains(&"AMQPLAIN"));
    assert!(String::from_utf8(start.locales.to_vec())
        .unwrap()
        .contains("en_US"));

    let props = &start.server_properties;
    let text = |name: &str| {
        let value = props.get(name).unwrap_or_else(|| panic!("no {name}"));
        String::from_utf8(value.as_bytes().expect("a string").to_vec()).unwrap()
    };
    assert_eq!(text("product"), "Warren");
    assert!(!text("version").is_empty());
    assert!(!text("platform").is_empty());
    let Some(FieldValue::Table(caps)) = props.get("capabilities") else {
        panic!("no capabilities table in {props:?}");
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(
            caps.get(cap),
            Some(&FieldValue::Bool(true)),
            "capability {cap}"
        );
    }
}

#[tokio::test]
async fn shutdown_closes_connections_with_320() {
    let server = start().await;
    let mut client = server.connect().await;
    let ch = client.channel().await;
    ch.declare("").await;
    server.shut_down();
    let close = client.closed_by_server().await;
    assert_eq!(close.code, 320, "{close:?}");
    assert!(close.text.starts_with("CONNECTION_FORCED"));
}
