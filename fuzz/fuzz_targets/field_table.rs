//! Arbitrary bytes as a field table (with its length prefix): decoding must not panic, and a
//! table that decodes must encode back to as many bytes as it came from and decode to itself.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use warren_protocol::{Bytes, BytesMut, FieldTable};

fuzz_target!(|data: &[u8]| {
    let mut buf = Bytes::copy_from_slice(data);
    let Ok(table) = FieldTable::decode_from(&mut buf) else {
        return;
    };
    let consumed = data.len() - buf.len();
    // Not byte for byte: a `t` octet other than 0 or 1 reads as true and is written back as 1.
    // But every field keeps its size, so the length must match.
    let mut out = BytesMut::new();
    table.encode(&mut out);
    assert_eq!(out.len(), consumed, "{table:?} re-encodes to another size");
    common::check_table(&table);
});
