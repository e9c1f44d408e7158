//! Property tests: every method, field table, set of message properties and frame stream that
//! can be generated survives encoding and decoding unchanged. The fuzz targets in `fuzz/` check
//! the same on arbitrary bytes; these keep checking it on every `cargo test`, without a fuzzer.
//!
//! Methods are generated from the spec JSON itself (the one `generated.rs` comes from), so every
//! method and every argument type is covered, not a hand-picked few: for each method the test
//! builds a well-formed argument list of random values, decodes it, and checks that encoding the
//! decoded method gives back the same bytes and that those bytes decode to the same method.

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use warren_protocol::{
    encode_body_frames, encode_content_header, encode_heartbeat, encode_method_frame, parse_frame,
    BasicProperties, Bytes, BytesMut, FieldTable, FieldValue, Frame, Method, ShortStr,
};

// ---- values -------------------------------------------------------------------------------

fn short_str() -> impl Strategy<Value = ShortStr> {
    // Mostly short names, sometimes right at the 255-byte limit.
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..16),
        1 => prop::collection::vec(any::<u8>(), 240..=255),
    ]
    .prop_map(|b| ShortStr::from(&b[..]))
}

fn long_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

/// Floats by bit pattern (so subnormals, infinities and signed zeros come up), minus NaN, which
/// is never equal to itself and would make `==` meaningless. NaN bits round-trip too: the codec
/// moves floats as raw bits (see `nan_round_trips_bit_for_bit`).
fn f32_not_nan() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("NaN", |f| !f.is_nan())
}

fn f64_not_nan() -> impl Strategy<Value = f64> {
    any::<u64>()
        .prop_map(f64::from_bits)
        .prop_filter("NaN", |f| !f.is_nan())
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        f32_not_nan().prop_map(FieldValue::F32),
        f64_not_nan().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(s, v)| FieldValue::Decimal(s, v)),
        long_bytes().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        long_bytes().prop_map(FieldValue::ByteArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
            prop::collection::vec((short_str(), inner), 0..6)
                .prop_map(|entries| FieldValue::Table(entries.into_iter().collect())),
        ]
    })
}

fn field_table() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec((short_str(), field_value()), 0..8)
        .prop_map(|entries| entries.into_iter().collect())
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    let o = |s: BoxedStrategy<ShortStr>| prop::option::of(s);
    let s = || short_str().boxed();
    (
        (o(s()), o(s()), prop::option::of(field_table())),
        (any::<Option<u8>>(), any::<Option<u8>>()),
        (o(s()), o(s()), o(s()), o(s())),
        (any::<Option<u64>>(), o(s()), o(s()), o(s()), o(s())),
    )
        .prop_map(|(a, b, c, d)| BasicProperties {
            content_type: a.0,
            content_encoding: a.1,
            headers: a.2,
            delivery_mode: b.0,
            priority: b.1,
            correlation_id: c.0,
            reply_to: c.1,
            expiration: c.2,
            message_id: c.3,
            timestamp: d.0,
            kind: d.1,
            user_id: d.2,
            app_id: d.3,
            cluster_id: d.4,
        })
}

// ---- methods, from the spec ---------------------------------------------------------------

/// A method as the spec lays it out: its ids and its argument types, in order.
#[derive(Debug, Clone)]
struct MethodSpec {
    name: String,
    class_id: u16,
    method_id: u16,
    args: Vec<String>,
}

fn spec_methods() -> &'static [MethodSpec] {
    static METHODS: OnceLock<Vec<MethodSpec>> = OnceLock::new();
    METHODS.get_or_init(|| {
        // The same file `tests/spec_drift.rs` generates the codec from.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/spec/amqp-rabbitmq-0.9.1.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let spec: Value = serde_json::from_str(&text).unwrap();
        let domains: Vec<(String, String)> = spec["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d[0].as_str().unwrap().into(), d[1].as_str().unwrap().into()))
            .collect();
        let mut methods = Vec::new();
        for class in spec["classes"].as_array().unwrap() {
            for m in class["methods"].as_array().unwrap() {
                let args = m["arguments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        let raw = a.get("type").or_else(|| a.get("domain"));
                        let raw = raw.and_then(Value::as_str).unwrap();
                        let base = domains.iter().find(|(d, _)| d == raw);
                        base.map_or(raw, |(_, t)| t.as_str()).to_string()
                    })
                    .collect();
                methods.push(MethodSpec {
                    name: format!(
                        "{}.{}",
                        class["name"].as_str().unwrap(),
                        m["name"].as_str().unwrap()
                    ),
                    class_id: class["id"].as_u64().unwrap() as u16,
                    method_id: m["id"].as_u64().unwrap() as u16,
                    args,
                });
            }
        }
        methods
    })
}

/// Well-formed wire bytes of one argument of type `kind`. Runs of bits are handled by the
/// caller, since they share octets.
fn argument(kind: &str) -> BoxedStrategy<Vec<u8>> {
    match kind {
        "octet" => any::<u8>().prop_map(|v| vec![v]).boxed(),
        "short" => any::<u16>().prop_map(|v| v.to_be_bytes().to_vec()).boxed(),
        "long" => any::<u32>().prop_map(|v| v.to_be_bytes().to_vec()).boxed(),
        "longlong" | "timestamp" => any::<u64>().prop_map(|v| v.to_be_bytes().to_vec()).boxed(),
        "shortstr" => short_str()
            .prop_map(|s| {
                let mut out = vec![s.len() as u8];
                out.extend_from_slice(s.as_bytes());
                out
            })
            .boxed(),
        "longstr" => long_bytes()
            .prop_map(|b| {
                let mut out = (b.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&b);
                out
            })
            .boxed(),
        "table" => field_table()
            .prop_map(|t| {
                let mut out = BytesMut::new();
                t.encode(&mut out);
                out.to_vec()
            })
            .boxed(),
        other => panic!("unknown AMQP type {other}"),
    }
}

/// A method's payload (class id, method id, arguments) with random argument values, encoded the
/// one canonical way: consecutive bits packed into octets low bit first, unused bits zero.
fn method_payload() -> impl Strategy<Value = (&'static MethodSpec, Vec<u8>)> {
    prop::sample::select(spec_methods().iter().collect::<Vec<_>>()).prop_flat_map(|spec| {
        let mut parts: Vec<BoxedStrategy<Vec<u8>>> =
            vec![
                Just([spec.class_id.to_be_bytes(), spec.method_id.to_be_bytes()].concat()).boxed(),
            ];
        let mut args = spec.args.iter().peekable();
        while let Some(kind) = args.next() {
            if kind != "bit" {
                parts.push(argument(kind));
                continue;
            }
            let mut run = 1;
            while run < 8 && args.next_if(|k| *k == "bit").is_some() {
                run += 1;
            }
            let mask = ((1u16 << run) - 1) as u8;
            parts.push(any::<u8>().prop_map(move |b| vec![b & mask]).boxed());
        }
        (Just(spec), parts).prop_map(|(spec, parts)| (spec, parts.concat()))
    })
}

fn method() -> impl Strategy<Value = Method> {
    method_payload().prop_map(|(spec, payload)| {
        Method::decode(&mut Bytes::from(payload))
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", spec.name))
    })
}

// ---- frames -------------------------------------------------------------------------------

/// What went onto the wire; a body is one entry even when it was split into several frames.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a handful per test case; boxing would only add noise
enum Sent {
    Method(u16, Method),
    Header(u16, u64, BasicProperties),
    Body(u16, Vec<u8>),
    Heartbeat,
}

fn sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        (any::<u16>(), method()).prop_map(|(c, m)| Sent::Method(c, m)),
        (any::<u16>(), any::<u64>(), properties()).prop_map(|(c, s, p)| Sent::Header(c, s, p)),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 1..600))
            .prop_map(|(c, b)| Sent::Body(c, b)),
        Just(Sent::Heartbeat),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_method_round_trips((spec, payload) in method_payload()) {
        let mut buf = Bytes::from(payload.clone());
        let m = Method::decode(&mut buf).unwrap();
        prop_assert!(buf.is_empty(), "{} left {} bytes", spec.name, buf.len());
        prop_assert_eq!(m.id(), (spec.class_id, spec.method_id));
        prop_assert_eq!(m.name(), spec.name.as_str());
        let mut out = BytesMut::new();
        m.encode(&mut out);
        prop_assert_eq!(&out[..], &payload[..], "{} encodes differently", spec.name);
        prop_assert_eq!(Method::decode(&mut out.freeze()).unwrap(), m);
    }

    #[test]
    fn field_tables_round_trip(table in field_table()) {
        let mut out = BytesMut::new();
        table.encode(&mut out);
        let mut bytes = out.freeze();
        prop_assert_eq!(FieldTable::decode_from(&mut bytes).unwrap(), table);
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn properties_round_trip(props in properties()) {
        let mut out = BytesMut::new();
        props.encode(&mut out);
        let mut bytes = out.freeze();
        prop_assert_eq!(BasicProperties::decode(&mut bytes).unwrap(), props);
        prop_assert!(bytes.is_empty());
    }

    /// A stream of frames read back in arbitrary pieces gives the frames that were sent.
    #[test]
    fn frame_streams_round_trip(
        sent in prop::collection::vec(sent(), 1..12),
        frame_max in prop::sample::select(vec![4096u32, 131_072]),
        read_size in 1usize..200,
    ) {
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        for s in &sent {
            match s {
                Sent::Method(channel, m) => {
                    let mut probe = BytesMut::new();
                    m.encode(&mut probe);
                    if probe.len() + 8 > frame_max as usize {
                        continue; // too big for one frame at this frame_max
                    }
                    encode_method_frame(&mut stream, *channel, m);
                    expected.push(s.clone());
                }
                Sent::Header(channel, size, p) => {
                    let mut props = BytesMut::new();
                    p.encode(&mut props);
                    if props.len() + 20 > frame_max as usize {
                        continue;
                    }
                    encode_content_header(&mut stream, *channel, 60, *size, &props);
                    expected.push(s.clone());
                }
                Sent::Body(channel, body) => {
                    encode_body_frames(&mut stream, *channel, body, frame_max);
                    expected.push(s.clone());
                }
                Sent::Heartbeat => {
                    encode_heartbeat(&mut stream);
                    expected.push(s.clone());
                }
            }
        }

        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for read in stream.chunks(read_size) {
            buf.extend_from_slice(read);
            while let Some(f) = parse_frame(&mut buf, frame_max).unwrap() {
                frames.push(f);
            }
        }
        prop_assert!(buf.is_empty());

        let mut frames = frames.into_iter();
        for s in expected {
            match (s, frames.next()) {
                (Sent::Method(c, m), Some(Frame::Method { channel, method })) => {
                    prop_assert_eq!((channel, method), (c, m));
                }
                (Sent::Header(c, size, p), Some(Frame::Header { channel, header })) => {
                    prop_assert_eq!((channel, header.class_id, header.body_size), (c, 60, size));
                    let back = BasicProperties::decode(&mut header.properties.clone()).unwrap();
                    prop_assert_eq!(back, p);
                }
                (Sent::Body(c, body), Some(mut f)) => {
                    let mut joined = Vec::new();
                    loop {
                        let Frame::Body { channel, payload } = f else {
                            return Err(TestCaseError::fail(format!("expected a body, got {f:?}")));
                        };
                        prop_assert_eq!(channel, c);
                        joined.extend_from_slice(&payload);
                        if joined.len() >= body.len() {
                            break;
                        }
                        f = frames.next().unwrap();
                    }
                    prop_assert_eq!(joined, body);
                }
                (Sent::Heartbeat, Some(Frame::Heartbeat { channel: 0 })) => {}
                (s, f) => return Err(TestCaseError::fail(format!("sent {s:?}, got {f:?}"))),
            }
        }
        prop_assert!(frames.next().is_none());
    }
}

#[test]
fn every_spec_method_is_generated() {
    // The generator above draws from this list; make sure it is the whole protocol.
    assert_eq!(spec_methods().len(), 66);
}

#[test]
fn nan_round_trips_bit_for_bit() {
    let table: FieldTable = vec![
        ("f".into(), FieldValue::F32(f32::from_bits(0x7fc0_1234))),
        (
            "d".into(),
            FieldValue::F64(f64::from_bits(0xfff8_0000_0000_beef)),
        ),
    ]
    .into_iter()
    .collect();
    let mut out = BytesMut::new();
    table.encode(&mut out);
    let back = FieldTable::decode_from(&mut out.clone().freeze()).unwrap();
    let mut again = BytesMut::new();
    back.encode(&mut again);
    assert_eq!(out, again);
}
