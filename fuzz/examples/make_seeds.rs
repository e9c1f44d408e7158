//! Writes the seed corpora in `fuzz/seeds/`: real traffic made with the protocol crate's own
//! encoders (a client's handshake and publishes, a server's handshake and deliveries), so the
//! fuzzers start from valid frames instead of having to discover the framing.
//!
//! `cargo run --example make_seeds` from `fuzz/` (plain build, no fuzzing flags needed).

use std::fs;
use std::path::Path;

use warren_protocol::{
    encode_body_frames, encode_content_header, encode_heartbeat, encode_method_frame, BasicAck,
    BasicConsume, BasicDeliver, BasicGetOk, BasicProperties, BasicPublish, BasicQos, Bytes,
    BytesMut, ChannelClose, ChannelOpen, ConfirmSelect, ConnectionClose, ConnectionOpen,
    ConnectionOpenOk, ConnectionStart, ConnectionStartOk, ConnectionTune, ConnectionTuneOk,
    FieldTable, FieldValue, Method, QueueBind, QueueDeclare,
};

fn capabilities() -> FieldTable {
    let mut caps = FieldTable::new();
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        caps.insert(name, true);
    }
    caps
}

fn peer_properties(product: &str) -> FieldTable {
    let mut t = FieldTable::new();
    t.insert("product", product);
    t.insert("version", "1.0.0");
    t.insert("platform", "Rust");
    t.insert("capabilities", FieldValue::Table(capabilities()));
    t
}

/// Every field value type, nested, as a publisher's headers might hold them.
fn rich_headers() -> FieldTable {
    let mut inner = FieldTable::new();
    inner.insert("count", FieldValue::I64(-3));
    inner.insert("reason", "expired");
    let mut t = FieldTable::new();
    t.insert("x-death", FieldValue::Array(vec![FieldValue::Table(inner)]));
    t.insert("bool", true);
    t.insert("i8", FieldValue::I8(-8));
    t.insert("u8", FieldValue::U8(8));
    t.insert("i16", FieldValue::I16(-16));
    t.insert("u16", FieldValue::U16(16));
    t.insert("i32", FieldValue::I32(-32));
    t.insert("u32", FieldValue::U32(32));
    t.insert("i64", FieldValue::I64(-64));
    t.insert("f32", FieldValue::F32(1.5));
    t.insert("f64", FieldValue::F64(-2.25));
    t.insert("decimal", FieldValue::Decimal(2, 12345));
    t.insert("timestamp", FieldValue::Timestamp(1_700_000_000));
    t.insert("void", FieldValue::Void);
    t.insert(
        "bytes",
        FieldValue::ByteArray(Bytes::from_static(&[0, 1, 0xCE])),
    );
    t
}

fn properties() -> BasicProperties {
    BasicProperties {
        content_type: Some("application/json".into()),
        content_encoding: Some("utf-8".into()),
        headers: Some(rich_headers()),
        delivery_mode: Some(2),
        priority: Some(5),
        correlation_id: Some("c-1".into()),
        reply_to: Some("amq.rabbitmq.reply-to".into()),
        expiration: Some("60000".into()),
        message_id: Some("m-1".into()),
        timestamp: Some(1_700_000_000),
        kind: Some("order.created".into()),
        user_id: Some("guest".into()),
        app_id: Some("seeds".into()),
        cluster_id: None,
    }
}

fn content(out: &mut BytesMut, channel: u16, props: &BasicProperties, body: &[u8], frame_max: u32) {
    let mut p = BytesMut::new();
    props.encode(&mut p);
    encode_content_header(out, channel, 60, body.len() as u64, &p);
    encode_body_frames(out, channel, body, frame_max);
}

fn client_session() -> BytesMut {
    let mut out = BytesMut::new();
    let m = |out: &mut BytesMut, ch, m: Method| encode_method_frame(out, ch, &m);
    m(
        &mut out,
        0,
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: peer_properties("seeds"),
            mechanism: "PLAIN".into(),
            response: Bytes::from_static(b"\0guest\0guest"),
            locale: "en_US".into(),
        }),
    );
    m(
        &mut out,
        0,
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        }),
    );
    m(
        &mut out,
        0,
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        }),
    );
    m(&mut out, 1, Method::ChannelOpen(ChannelOpen::default()));
    let mut args = FieldTable::new();
    args.insert("x-max-length", FieldValue::I32(1000));
    args.insert("x-queue-type", "classic");
    args.insert("x-dead-letter-exchange", "dlx");
    m(
        &mut out,
        1,
        Method::QueueDeclare(QueueDeclare {
            queue: "jobs".into(),
            durable: true,
            arguments: args,
            ..Default::default()
        }),
    );
    m(
        &mut out,
        1,
        Method::QueueBind(QueueBind {
            queue: "jobs".into(),
            exchange: "amq.topic".into(),
            routing_key: "jobs.#".into(),
            ..Default::default()
        }),
    );
    m(&mut out, 1, Method::ConfirmSelect(ConfirmSelect::default()));
    m(
        &mut out,
        1,
        Method::BasicQos(BasicQos {
            prefetch_count: 10,
            ..Default::default()
        }),
    );
    m(
        &mut out,
        1,
        Method::BasicConsume(BasicConsume {
            queue: "jobs".into(),
            consumer_tag: "ctag-1".into(),
            ..Default::default()
        }),
    );
    for (i, body) in [&b"{\"id\":1}"[..], b"", &[0xCE; 300][..]]
        .iter()
        .enumerate()
    {
        m(
            &mut out,
            1,
            Method::BasicPublish(BasicPublish {
                exchange: "amq.topic".into(),
                routing_key: "jobs.new".into(),
                mandatory: i == 1,
                ..Default::default()
            }),
        );
        content(&mut out, 1, &properties(), body, 128);
    }
    m(
        &mut out,
        1,
        Method::BasicAck(BasicAck {
            delivery_tag: 1,
            multiple: true,
        }),
    );
    encode_heartbeat(&mut out);
    m(
        &mut out,
        1,
        Method::ChannelClose(ChannelClose {
            reply_code: 200,
            reply_text: "bye".into(),
            ..Default::default()
        }),
    );
    m(
        &mut out,
        0,
        Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: "Goodbye".into(),
            ..Default::default()
        }),
    );
    out
}

fn server_session() -> BytesMut {
    let mut out = BytesMut::new();
    let m = |out: &mut BytesMut, ch, m: Method| encode_method_frame(out, ch, &m);
    m(
        &mut out,
        0,
        Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: peer_properties("Warren"),
            mechanisms: Bytes::from_static(b"PLAIN AMQPLAIN"),
            locales: Bytes::from_static(b"en_US"),
        }),
    );
    m(
        &mut out,
        0,
        Method::ConnectionTune(ConnectionTune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        }),
    );
    m(
        &mut out,
        0,
        Method::ConnectionOpenOk(ConnectionOpenOk::default()),
    );
    for tag in 1..=2u64 {
        m(
            &mut out,
            1,
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: "ctag-1".into(),
                delivery_tag: tag,
                redelivered: tag == 2,
                exchange: "amq.topic".into(),
                routing_key: "jobs.new".into(),
            }),
        );
        content(&mut out, 1, &properties(), b"hello", 4096);
    }
    m(
        &mut out,
        2,
        Method::BasicGetOk(BasicGetOk {
            delivery_tag: 3,
            redelivered: false,
            exchange: "".into(),
            routing_key: "jobs".into(),
            message_count: 7,
        }),
    );
    content(&mut out, 2, &BasicProperties::default(), b"minimal", 4096);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");

    // frame_decoder: byte 0 picks frame_max (1: 8192, 2: 131072), byte 1 the read size.
    let frames = root.join("frame_decoder");
    for (name, session) in [("client", client_session()), ("server", server_session())] {
        let mut seed = vec![2, 255];
        seed.extend_from_slice(&session);
        write(&frames, &format!("{name}_session"), &seed);
        let mut seed = vec![1, 6];
        seed.extend_from_slice(&session);
        write(&frames, &format!("{name}_session_small_reads"), &seed);
    }

    // field_table: length-prefixed tables.
    let tables = root.join("field_table");
    for (name, table) in [
        ("client_properties", peer_properties("seeds")),
        ("headers", rich_headers()),
        ("empty", FieldTable::new()),
    ] {
        let mut out = BytesMut::new();
        table.encode(&mut out);
        write(&tables, name, &out);
    }

    // structured: any bytes will do; a few of different sizes help it start.
    let structured = root.join("structured");
    write(
        &structured,
        "small",
        &[1, 7, 3, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    write(&structured, "client_session", &client_session()[..512]);
}
