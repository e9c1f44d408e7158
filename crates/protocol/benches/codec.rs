//! Codec micro-benchmarks: the per-message work of the publish and deliver paths.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use warren_protocol::*;

fn publish_frames() -> BytesMut {
    let mut out = BytesMut::new();
    let m = Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange: "".into(),
        routing_key: "bench-queue".into(),
        mandatory: false,
        immediate: false,
    });
    let mut props = BytesMut::new();
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .encode(&mut props);
    for _ in 0..100 {
        encode_method_frame(&mut out, 1, &m);
        encode_content_header(&mut out, 1, 60, 16, &props);
        encode_body_frames(&mut out, 1, &[0u8; 16], 131072);
    }
    out
}

fn bench(c: &mut Criterion) {
    let input = publish_frames();
    c.bench_function("parse 100 publishes (300 frames)", |b| {
        b.iter(|| {
            let mut buf = input.clone();
            let mut n = 0;
            while let Some(f) = parse_frame(&mut buf, 131072).unwrap() {
                black_box(&f);
                n += 1;
            }
            assert_eq!(n, 300);
        })
    });
    let deliver = Method::BasicDeliver(BasicDeliver {
        consumer_tag: "amq.ctag-0123456789".into(),
        delivery_tag: 42,
        redelivered: false,
        exchange: "".into(),
        routing_key: "bench-queue".into(),
    });
    let mut out = BytesMut::with_capacity(1 << 20);
    c.bench_function("encode deliver + header + 16-byte body", |b| {
        b.iter(|| {
            out.clear();
            encode_method_frame(&mut out, 1, black_box(&deliver));
            encode_content_header(&mut out, 1, 60, 16, &[0x10, 0, 2]);
            encode_body_frames(&mut out, 1, &[0u8; 16], 131072);
            black_box(&out);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
