//! Builds valid values (field tables of every type, message properties, methods with every
//! argument type) from the fuzzer's bytes, sends them as a frame stream, and checks that the
//! stream parses back to exactly them whatever the read size, and that each value round-trips.
//! Where `frame_decoder` explores invalid input, this one reaches deep into valid input.

#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use warren_protocol::{
    encode_body_frames, encode_content_header, encode_heartbeat, encode_method_frame, parse_frame,
    BasicDeliver, BasicProperties, BasicPublish, Bytes, BytesMut, ConnectionStart,
    ConnectionStartOk, ConnectionTune, ExchangeDeclare, FieldTable, FieldValue, Frame, Method,
    QueueDeclare, QueueDeclareOk, ShortStr, FRAME_HEADER_SIZE,
};

/// Deep enough to reach nesting bugs, shallow enough to stay under the decoder's limit (64).
const MAX_DEPTH: usize = 6;

fn short(u: &mut Unstructured) -> Result<ShortStr> {
    let len = u.int_in_range(0..=255)?;
    Ok(ShortStr::from(u.bytes(len.min(u.len()))?))
}

fn long(u: &mut Unstructured) -> Result<Bytes> {
    let len = u.arbitrary_len::<u8>()?;
    Ok(Bytes::copy_from_slice(u.bytes(len)?))
}

fn value(u: &mut Unstructured, depth: usize) -> Result<FieldValue> {
    let nested = depth < MAX_DEPTH;
    Ok(match u.int_in_range(0..=if nested { 16 } else { 14 })? {
        0 => FieldValue::Bool(u.arbitrary()?),
        1 => FieldValue::I8(u.arbitrary()?),
        2 => FieldValue::U8(u.arbitrary()?),
        3 => FieldValue::I16(u.arbitrary()?),
        4 => FieldValue::U16(u.arbitrary()?),
        5 => FieldValue::I32(u.arbitrary()?),
        6 => FieldValue::U32(u.arbitrary()?),
        7 => FieldValue::I64(u.arbitrary()?),
        8 => FieldValue::F32(f32::from_bits(u.arbitrary()?)),
        9 => FieldValue::F64(f64::from_bits(u.arbitrary()?)),
        10 => FieldValue::Decimal(u.arbitrary()?, u.arbitrary()?),
        11 => FieldValue::LongStr(long(u)?),
        12 => FieldValue::Timestamp(u.arbitrary()?),
        13 => FieldValue::Void,
        14 => FieldValue::ByteArray(long(u)?),
        15 => FieldValue::Table(table(u, depth + 1)?),
        _ => {
            let n = u.int_in_range(0..=8)?;
            let items = (0..n).map(|_| value(u, depth + 1)).collect::<Result<_>>()?;
            FieldValue::Array(items)
        }
    })
}

fn table(u: &mut Unstructured, depth: usize) -> Result<FieldTable> {
    let n = u.int_in_range(0..=8)?;
    (0..n).map(|_| Ok((short(u)?, value(u, depth)?))).collect()
}

fn opt<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn properties(u: &mut Unstructured) -> Result<BasicProperties> {
    Ok(BasicProperties {
        content_type: opt(u, short)?,
        content_encoding: opt(u, short)?,
        headers: opt(u, |u| table(u, 0))?,
        delivery_mode: opt(u, |u| u.arbitrary())?,
        priority: opt(u, |u| u.arbitrary())?,
        correlation_id: opt(u, short)?,
        reply_to: opt(u, short)?,
        expiration: opt(u, short)?,
        message_id: opt(u, short)?,
        timestamp: opt(u, |u| u.arbitrary())?,
        kind: opt(u, short)?,
        user_id: opt(u, short)?,
        app_id: opt(u, short)?,
        cluster_id: opt(u, short)?,
    })
}

/// Methods that between them use every argument type (octet, short, long, longlong, bits packed
/// by the five, shortstr, longstr, table) in the positions real traffic has them.
fn method(u: &mut Unstructured) -> Result<Method> {
    Ok(match u.int_in_range(0..=7)? {
        0 => Method::ConnectionStart(ConnectionStart {
            version_major: u.arbitrary()?,
            version_minor: u.arbitrary()?,
            server_properties: table(u, 0)?,
            mechanisms: long(u)?,
            locales: long(u)?,
        }),
        1 => Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: table(u, 0)?,
            mechanism: short(u)?,
            response: long(u)?,
            locale: short(u)?,
        }),
        2 => Method::ConnectionTune(ConnectionTune {
            channel_max: u.arbitrary()?,
            frame_max: u.arbitrary()?,
            heartbeat: u.arbitrary()?,
        }),
        3 => Method::ExchangeDeclare(ExchangeDeclare {
            ticket: u.arbitrary()?,
            exchange: short(u)?,
            kind: short(u)?,
            passive: u.arbitrary()?,
            durable: u.arbitrary()?,
            auto_delete: u.arbitrary()?,
            internal: u.arbitrary()?,
            nowait: u.arbitrary()?,
            arguments: table(u, 0)?,
        }),
        4 => Method::QueueDeclare(QueueDeclare {
            ticket: u.arbitrary()?,
            queue: short(u)?,
            passive: u.arbitrary()?,
            durable: u.arbitrary()?,
            exclusive: u.arbitrary()?,
            auto_delete: u.arbitrary()?,
            nowait: u.arbitrary()?,
            arguments: table(u, 0)?,
        }),
        5 => Method::QueueDeclareOk(QueueDeclareOk {
            queue: short(u)?,
            message_count: u.arbitrary()?,
            consumer_count: u.arbitrary()?,
        }),
        6 => Method::BasicPublish(BasicPublish {
            ticket: u.arbitrary()?,
            exchange: short(u)?,
            routing_key: short(u)?,
            mandatory: u.arbitrary()?,
            immediate: u.arbitrary()?,
        }),
        _ => Method::BasicDeliver(BasicDeliver {
            consumer_tag: short(u)?,
            delivery_tag: u.arbitrary()?,
            redelivered: u.arbitrary()?,
            exchange: short(u)?,
            routing_key: short(u)?,
        }),
    })
}

/// What was sent, to compare with what parses back. A body is one logical frame here even if
/// it went out as several.
enum Sent {
    Method(u16, Method),
    Header(u16, u64, Bytes),
    Body(u16, Vec<u8>),
    Heartbeat,
}

fn build(u: &mut Unstructured, frame_max: u32, out: &mut BytesMut) -> Result<Vec<Sent>> {
    let mut sent = Vec::new();
    let frames = u.int_in_range(1..=8)?;
    for _ in 0..frames {
        let channel: u16 = u.arbitrary()?;
        match u.int_in_range(0..=3)? {
            0 => {
                let m = method(u)?;
                common::check_method(&m);
                let mut probe = BytesMut::new();
                m.encode(&mut probe);
                // A method must fit in one frame; skip one the fuzzer made too big for frame_max.
                if probe.len() + FRAME_HEADER_SIZE + 1 > frame_max as usize {
                    continue;
                }
                encode_method_frame(out, channel, &m);
                sent.push(Sent::Method(channel, m));
            }
            1 => {
                let p = properties(u)?;
                common::check_properties(&p);
                let mut encoded = BytesMut::new();
                p.encode(&mut encoded);
                if encoded.len() + FRAME_HEADER_SIZE + 13 > frame_max as usize {
                    continue;
                }
                let body_size = u.arbitrary()?;
                encode_content_header(out, channel, 60, body_size, &encoded);
                sent.push(Sent::Header(channel, body_size, encoded.freeze()));
            }
            2 => {
                let len = u.arbitrary_len::<u8>()?;
                let body = u.bytes(len)?.to_vec();
                encode_body_frames(out, channel, &body, frame_max);
                sent.push(Sent::Body(channel, body));
            }
            _ => {
                encode_heartbeat(out);
                sent.push(Sent::Heartbeat);
            }
        }
    }
    Ok(sent)
}

fn run(u: &mut Unstructured) -> Result<()> {
    let frame_max = common::FRAME_MAXES[u.choose_index(common::FRAME_MAXES.len())?];
    let read_size = u.int_in_range(1..=64)?;
    let mut stream = BytesMut::new();
    let sent = build(u, frame_max, &mut stream)?;

    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        while let Some(frame) = parse_frame(&mut buf, frame_max).expect("valid frames parse") {
            got.push(frame);
        }
    }
    assert!(buf.is_empty(), "bytes left over after the last frame");

    let mut got = got.into_iter();
    for s in sent {
        match s {
            Sent::Method(channel, m) => match got.next() {
                Some(Frame::Method { channel: c, method }) => {
                    assert_eq!(c, channel);
                    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
                    m.encode(&mut a);
                    method.encode(&mut b);
                    assert_eq!(a, b);
                    if !common::has_nan(&m) {
                        assert_eq!(method, m);
                    }
                }
                other => panic!("sent {m:?}, got {other:?}"),
            },
            Sent::Header(channel, body_size, props) => match got.next() {
                Some(Frame::Header { channel: c, header }) => {
                    assert_eq!(
                        (c, header.class_id, header.body_size),
                        (channel, 60, body_size)
                    );
                    assert_eq!(header.properties, props);
                }
                other => panic!("sent a header, got {other:?}"),
            },
            Sent::Body(channel, body) => {
                let mut joined = Vec::new();
                // An empty body is sent as no frame at all.
                while joined.len() < body.len() {
                    match got.next() {
                        Some(Frame::Body {
                            channel: c,
                            payload,
                        }) => {
                            assert_eq!(c, channel);
                            joined.extend_from_slice(&payload);
                        }
                        other => panic!("sent a body, got {other:?}"),
                    }
                }
                assert_eq!(joined, body);
            }
            Sent::Heartbeat => {
                assert!(matches!(got.next(), Some(Frame::Heartbeat { channel: 0 })));
            }
        }
    }
    assert!(got.next().is_none());
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
