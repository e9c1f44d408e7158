//! Checks shared by the fuzz targets. Each asserts, so a violation is a crash libFuzzer keeps.

#![allow(dead_code)] // each target uses a subset

use warren_protocol::{
    encode_body_frames, encode_content_header, encode_method_frame, parse_frame, BasicProperties,
    BytesMut, FieldTable, Frame, Method,
};

/// Frame sizes a connection can negotiate: the spec's minimum, RabbitMQ's default (Warren's
/// too), and a large one. 0 ("no limit") is left out on purpose: it lets a frame header ask for
/// a 4 GiB buffer, which is the caller's choice to allow, not a decoder bug.
pub const FRAME_MAXES: [u32; 4] = [4096, 8192, 131_072, 1 << 20];

/// Whether `v` holds a NaN somewhere (a float in a field table): then it is not equal to itself.
#[allow(clippy::eq_op)]
pub fn has_nan<T: PartialEq>(v: &T) -> bool {
    v != v
}

/// Float values make `==` useless on NaN (NaN != NaN), so a value that is not equal to itself is
/// compared through its encoding instead, which keeps the bits exactly.
fn same<T: PartialEq>(a: &T, b: &T, encode: impl Fn(&T, &mut BytesMut)) -> bool {
    if !has_nan(a) {
        return a == b;
    }
    let (mut x, mut y) = (BytesMut::new(), BytesMut::new());
    encode(a, &mut x);
    encode(b, &mut y);
    x == y
}

pub fn check_method(method: &Method) {
    let mut out = BytesMut::new();
    method.encode(&mut out);
    let encoded = out.clone().freeze();
    let mut buf = encoded.clone();
    let back = Method::decode(&mut buf).expect("an encoded method decodes");
    assert!(
        buf.is_empty(),
        "decode left {} bytes of {:?}",
        buf.len(),
        method
    );
    assert!(
        same(method, &back, |m, o| m.encode(o)),
        "round trip changed {method:?} into {back:?}"
    );
    let mut again = BytesMut::new();
    back.encode(&mut again);
    assert_eq!(
        &again[..],
        &encoded[..],
        "encoding is not stable for {method:?}"
    );
}

pub fn check_table(table: &FieldTable) {
    let mut out = BytesMut::new();
    table.encode(&mut out);
    let encoded = out.freeze();
    let mut buf = encoded.clone();
    let back = FieldTable::decode_from(&mut buf).expect("an encoded table decodes");
    assert!(buf.is_empty());
    assert!(
        same(table, &back, |t, o| t.encode(o)),
        "{table:?} came back as {back:?}"
    );
    let mut again = BytesMut::new();
    back.encode(&mut again);
    assert_eq!(&again[..], &encoded[..]);
}

pub fn check_properties(props: &BasicProperties) {
    let mut out = BytesMut::new();
    props.encode(&mut out);
    let encoded = out.freeze();
    let mut buf = encoded.clone();
    let back = BasicProperties::decode(&mut buf).expect("encoded properties decode");
    assert!(buf.is_empty());
    assert!(
        same(props, &back, |p, o| p.encode(o)),
        "{props:?} came back as {back:?}"
    );
}

/// Re-encodes a decoded frame and parses it back: the same frame must come out, whole.
pub fn check_frame(frame: &Frame, frame_max: u32) {
    let mut out = BytesMut::new();
    match frame {
        Frame::Method { channel, method } => {
            check_method(method);
            encode_method_frame(&mut out, *channel, method);
        }
        Frame::Header { channel, header } => {
            if let Ok(props) = BasicProperties::decode(&mut header.properties.clone()) {
                check_properties(&props);
            }
            encode_content_header(
                &mut out,
                *channel,
                header.class_id,
                header.body_size,
                &header.properties,
            );
        }
        Frame::Body { channel, payload } => {
            // A body is sent split to frame_max; the pieces must join back to it.
            encode_body_frames(&mut out, *channel, payload, frame_max);
            let mut joined = Vec::new();
            while let Some(f) = parse_frame(&mut out, frame_max).expect("body frames parse") {
                match f {
                    Frame::Body { payload, .. } => joined.extend_from_slice(&payload),
                    other => panic!("body came back as {other:?}"),
                }
            }
            assert!(out.is_empty());
            assert_eq!(&joined[..], &payload[..]);
            return;
        }
        Frame::Heartbeat { channel } => {
            out.extend_from_slice(&[8, (channel >> 8) as u8, *channel as u8, 0, 0, 0, 0, 0xCE]);
        }
    }
    // A re-encoded frame is never larger than the one it was decoded from (trailing bytes and
    // unused bits are dropped), so it fits the same frame_max.
    let back = parse_frame(&mut out, frame_max)
        .expect("a re-encoded frame parses")
        .expect("a re-encoded frame is whole");
    assert!(out.is_empty());
    if let (Frame::Method { method: a, .. }, Frame::Method { method: b, .. }) = (frame, &back) {
        assert!(same(a, b, |m, o| m.encode(o)));
        assert_eq!(frame.channel(), back.channel());
    } else {
        assert_eq!(&back, frame);
    }
}
