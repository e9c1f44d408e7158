//! Field tables and field values, with every value type RabbitMQ accepts.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{
    get_longstr, get_shortstr, get_u16, get_u32, get_u64, get_u8, need, put_longstr, put_shortstr,
};
use crate::{DecodeError, ShortStr};

/// Tables and arrays nest; a hostile peer could nest them deep enough to exhaust the stack of a
/// recursive decoder (and of the recursive drop, clone and encode of what it built). Real
/// clients nest a few levels at most; below this depth a table or array is kept encoded
/// (`FieldValue::Nested`), as RabbitMQ, whose decoder has no depth limit, would deliver it.
pub const MAX_NESTING: usize = 64;

/// A field value. The type letters are RabbitMQ's (which differ from the 0-9-1 errata in `s`, `u`
/// and `x`, and which every client follows).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s`
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: scale (decimal places) and unscaled value.
    Decimal(u8, u32),
    /// `S`
    LongStr(Bytes),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    ByteArray(Bytes),
    /// A table or array nested deeper than `MAX_NESTING`: its encoding, type letter first,
    /// checked to be well formed (`skip_nested`) but not decoded, so that it is routed,
    /// delivered and dead-lettered byte for byte without a structure deep enough to overflow
    /// a stack.
    Nested(Bytes),
}

impl FieldValue {
    fn decode(buf: &mut Bytes, depth: usize) -> Result<FieldValue, DecodeError> {
        if depth >= MAX_NESTING && matches!(buf.first(), Some(b'A' | b'F')) {
            return skip_nested(buf);
        }
        let tag = get_u8(buf)?;
        Ok(match tag {
            b't' => FieldValue::Bool(get_u8(buf)? != 0),
            b'b' => FieldValue::I8(get_u8(buf)? as i8),
            b'B' => FieldValue::U8(get_u8(buf)?),
            b's' => FieldValue::I16(get_u16(buf)? as i16),
            b'u' => FieldValue::U16(get_u16(buf)?),
            b'I' => FieldValue::I32(get_u32(buf)? as i32),
            b'i' => FieldValue::U32(get_u32(buf)?),
            b'l' => FieldValue::I64(get_u64(buf)? as i64),
            b'f' => FieldValue::F32(f32::from_bits(get_u32(buf)?)),
            b'd' => FieldValue::F64(f64::from_bits(get_u64(buf)?)),
            b'D' => {
                let scale = get_u8(buf)?;
                FieldValue::Decimal(scale, get_u32(buf)?)
            }
            b'S' => FieldValue::LongStr(get_longstr(buf)?),
            b'A' => {
                let mut body = get_longstr(buf)?;
                let mut items = Vec::new();
                while body.has_remaining() {
                    items.push(FieldValue::decode(&mut body, depth + 1)?);
                }
                FieldValue::Array(items)
            }
            b'T' => FieldValue::Timestamp(get_u64(buf)?),
            b'F' => FieldValue::Table(FieldTable::decode(buf, depth + 1)?),
            b'V' => FieldValue::Void,
            b'x' => FieldValue::ByteArray(get_longstr(buf)?),
            other => return Err(DecodeError::UnknownFieldType(other)),
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        match self {
            FieldValue::Bool(v) => {
                out.put_u8(b't');
                out.put_u8(*v as u8);
            }
            FieldValue::I8(v) => {
                out.put_u8(b'b');
                out.put_i8(*v);
            }
            FieldValue::U8(v) => {
                out.put_u8(b'B');
                out.put_u8(*v);
            }
            FieldValue::I16(v) => {
                out.put_u8(b's');
                out.put_i16(*v);
            }
            FieldValue::U16(v) => {
                out.put_u8(b'u');
                out.put_u16(*v);
            }
            FieldValue::I32(v) => {
                out.put_u8(b'I');
                out.put_i32(*v);
            }
            FieldValue::U32(v) => {
                out.put_u8(b'i');
                out.put_u32(*v);
            }
            FieldValue::I64(v) => {
                out.put_u8(b'l');
                out.put_i64(*v);
            }
            FieldValue::F32(v) => {
                out.put_u8(b'f');
                out.put_f32(*v);
            }
            FieldValue::F64(v) => {
                out.put_u8(b'd');
                out.put_f64(*v);
            }
            FieldValue::Decimal(scale, v) => {
                out.put_u8(b'D');
                out.put_u8(*scale);
                out.put_u32(*v);
            }
            FieldValue::LongStr(v) => {
                out.put_u8(b'S');
                put_longstr(out, v);
            }
            FieldValue::Array(items) => {
                out.put_u8(b'A');
                with_length_prefix(out, |out| items.iter().for_each(|i| i.encode(out)));
            }
            FieldValue::Timestamp(v) => {
                out.put_u8(b'T');
                out.put_u64(*v);
            }
            FieldValue::Table(t) => {
                out.put_u8(b'F');
                t.encode(out);
            }
            FieldValue::Void => out.put_u8(b'V'),
            FieldValue::ByteArray(v) => {
                out.put_u8(b'x');
                put_longstr(out, v);
            }
            FieldValue::Nested(encoded) => out.extend_from_slice(encoded),
        }
    }

    /// The value as an integer, whatever integer width the client chose.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v as i64,
            FieldValue::U8(v) => v as i64,
            FieldValue::I16(v) => v as i64,
            FieldValue::U16(v) => v as i64,
            FieldValue::I32(v) => v as i64,
            FieldValue::U32(v) => v as i64,
            FieldValue::I64(v) => v,
            FieldValue::Timestamp(v) => v as i64,
            _ => return None,
        })
    }

    /// The value as bytes, for string-like values.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(v) | FieldValue::ByteArray(v) => Some(v),
            _ => None,
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}

/// A field table: names and values in the order they were sent (RabbitMQ keeps order too, and
/// tables are small, so a vector beats a map).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// Decodes a length-prefixed table from the front of `buf`.
    pub fn decode_from(buf: &mut Bytes) -> Result<FieldTable, DecodeError> {
        FieldTable::decode(buf, 0)
    }

    pub(crate) fn decode(buf: &mut Bytes, depth: usize) -> Result<FieldTable, DecodeError> {
        let len = get_u32(buf)? as usize;
        need(buf, len)?;
        let mut body = buf.split_to(len);
        let mut entries = Vec::new();
        while body.has_remaining() {
            let name = get_shortstr(&mut body)?;
            let value = FieldValue::decode(&mut body, depth)?;
            entries.push((name, value));
        }
        Ok(FieldTable(entries))
    }

    pub fn encode(&self, out: &mut BytesMut) {
        with_length_prefix(out, |out| {
            for (name, value) in &self.0 {
                put_shortstr(out, name);
                value.encode(out);
            }
        });
    }

    /// The value of the first entry named `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of the first entry named `name`, to change in place.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut FieldValue> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets `name`, replacing an existing entry of that name.
    pub fn insert(&mut self, name: impl Into<ShortStr>, value: impl Into<FieldValue>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Takes out every entry named `name`; returns the first one's value.
    pub fn remove(&mut self, name: &str) -> Option<FieldValue> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        let (_, value) = self.0.remove(at);
        self.0.retain(|(n, _)| n != name);
        Some(value)
    }

    /// Puts the entries in order of their names' bytes (stable: duplicates keep their order).
    pub fn sort_by_name(&mut self) {
        self.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: I) -> Self {
        FieldTable(iter.into_iter().collect())
    }
}

/// Takes one table or array value (type letter first) off the front of `buf` without
/// decoding it: `FieldValue::Nested`. Every value inside is checked as `FieldValue::decode`
/// would check it, walking with a stack on the heap, not the call stack, so no depth that fits
/// in a frame can overflow it.
fn skip_nested(buf: &mut Bytes) -> Result<FieldValue, DecodeError> {
    let whole = buf.clone();
    // The rest of each table or array still open, and whether it is a table (its values have
    // names).
    let mut open: Vec<(Bytes, bool)> = Vec::new();
    let tag = get_u8(buf)?;
    open.extend(skip_or_open(tag, buf)?);
    while let Some((mut body, is_table)) = open.pop() {
        if !body.has_remaining() {
            continue;
        }
        if is_table {
            get_shortstr(&mut body)?;
        }
        let tag = get_u8(&mut body)?;
        let inner = skip_or_open(tag, &mut body)?;
        open.push((body, is_table));
        open.extend(inner);
    }
    let used = whole.len() - buf.len();
    Ok(FieldValue::Nested(whole.slice(..used)))
}

/// Skips a scalar value of type `tag`, or takes the body of a table or array (returned, with
/// whether it is a table) for `skip_nested` to walk.
fn skip_or_open(tag: u8, buf: &mut Bytes) -> Result<Option<(Bytes, bool)>, DecodeError> {
    let size = match tag {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'l' | b'd' | b'T' => 8,
        b'S' | b'x' => {
            get_longstr(buf)?;
            return Ok(None);
        }
        b'A' | b'F' => return Ok(Some((get_longstr(buf)?, tag == b'F'))),
        other => return Err(DecodeError::UnknownFieldType(other)),
    };
    need(buf, size)?;
    buf.advance(size);
    Ok(None)
}

/// Writes a u32 length, then whatever `body` writes, then patches the length in.
fn with_length_prefix(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let at = out.len();
    out.put_u32(0);
    body(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_changed_in_place_removed_and_sorted_by_name() {
        let mut t: FieldTable = [("b", 1), ("a", 2), ("b", 3)]
            .into_iter()
            .map(|(k, v)| (ShortStr::from(k), FieldValue::I32(v)))
            .collect();
        if let Some(FieldValue::I32(v)) = t.get_mut("a") {
            *v = 20;
        }
        assert_eq!(t.get("a"), Some(&FieldValue::I32(20)));
        assert_eq!(t.remove("b"), Some(FieldValue::I32(1)));
        assert_eq!(t.len(), 1, "every entry of that name goes");
        assert_eq!(t.remove("b"), None);
        t.insert("c", FieldValue::I32(4));
        t.insert("0", FieldValue::I32(5));
        t.sort_by_name();
        let names: Vec<&str> = t
            .iter()
            .map(|(k, _)| std::str::from_utf8(k.as_bytes()).unwrap())
            .collect();
        assert_eq!(names, ["0", "a", "c"]);
    }

    fn round_trip(t: &FieldTable) -> FieldTable {
        let mut out = BytesMut::new();
        t.encode(&mut out);
        let mut bytes = out.freeze();
        let back = FieldTable::decode(&mut bytes, 0).unwrap();
        assert!(bytes.is_empty());
        back
    }

    #[test]
    fn every_value_type_round_trips() {
        let mut inner = FieldTable::new();
        inner.insert("x", FieldValue::I32(-5));
        let t: FieldTable = vec![
            ("t".into(), FieldValue::Bool(true)),
            ("b".into(), FieldValue::I8(-1)),
            ("B".into(), FieldValue::U8(255)),
            ("s".into(), FieldValue::I16(-300)),
            ("u".into(), FieldValue::U16(60000)),
            ("I".into(), FieldValue::I32(-70000)),
            ("i".into(), FieldValue::U32(4_000_000_000)),
            ("l".into(), FieldValue::I64(-1 << 40)),
            ("f".into(), FieldValue::F32(1.5)),
            ("d".into(), FieldValue::F64(-2.25)),
            ("D".into(), FieldValue::Decimal(2, 12345)),
            ("S".into(), "hello".into()),
            (
                "A".into(),
                FieldValue::Array(vec![FieldValue::U8(1), "two".into()]),
            ),
            ("T".into(), FieldValue::Timestamp(1_700_000_000)),
            ("F".into(), FieldValue::Table(inner)),
            ("V".into(), FieldValue::Void),
            (
                "x".into(),
                FieldValue::ByteArray(Bytes::from_static(&[0, 1, 2])),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(round_trip(&t), t);
    }

    #[test]
    fn golden_bytes_of_a_simple_table() {
        let mut t = FieldTable::new();
        t.insert("a", FieldValue::Bool(true));
        let mut out = BytesMut::new();
        t.encode(&mut out);
        assert_eq!(&out[..], &[0, 0, 0, 4, 1, b'a', b't', 1]);
    }

    #[test]
    fn unknown_type_and_truncation_are_errors() {
        let mut bad = Bytes::from_static(&[0, 0, 0, 3, 1, b'a', b'Z']);
        assert_eq!(
            FieldTable::decode(&mut bad, 0),
            Err(DecodeError::UnknownFieldType(b'Z'))
        );
        let mut short = Bytes::from_static(&[0, 0, 0, 9, 1, b'a']);
        assert_eq!(
            FieldTable::decode(&mut short, 0),
            Err(DecodeError::Truncated)
        );
        let mut lying = Bytes::from_static(&[0, 0, 0, 3, 1, b'a', b'I', 0]);
        assert_eq!(
            FieldTable::decode(&mut lying, 0),
            Err(DecodeError::Truncated)
        );
    }

    /// A table whose entry `a` holds `depth` levels of tables (`F{a:F{a:...F{}}}`) or of
    /// arrays (`A[A[...A[]]]`), encoded by hand, front to back (each level's length is known:
    /// building it inside out would copy the whole thing once per level).
    fn nested(depth: usize, tag: u8) -> Bytes {
        let name: &[u8] = if tag == b'F' { &[1, b'a'] } else { &[] };
        // A level is its type letter and length, then (in a table) the inner entry's name.
        let level = 5 + name.len();
        let mut out = BytesMut::new();
        out.put_u32((2 + level * depth - name.len()) as u32);
        out.put_slice(&[1, b'a']);
        for inside in (0..depth).rev() {
            out.put_u8(tag);
            let body = if inside == 0 { 0 } else { level * inside };
            out.put_u32(body as u32);
            if inside > 0 {
                out.put_slice(name);
            }
        }
        out.freeze()
    }

    #[test]
    fn deep_nesting_is_kept_encoded_not_a_stack_overflow() {
        for tag in [b'F', b'A'] {
            // Far deeper than a recursive decoder (or drop) could take on a small stack.
            let encoded = nested(100_000, tag);
            let mut bytes = encoded.clone();
            let table = FieldTable::decode(&mut bytes, 0).unwrap();
            assert!(bytes.is_empty());
            let mut out = BytesMut::new();
            table.encode(&mut out);
            assert_eq!(out.freeze(), encoded, "re-encoded byte for byte");
        }
        // Up to the limit everything is decoded; below it, kept as is.
        let mut value = &FieldValue::Table(FieldTable::decode(&mut nested(70, b'F'), 0).unwrap());
        let mut levels = 0;
        while let FieldValue::Table(t) = value {
            value = t.get("a").unwrap();
            levels += 1;
        }
        assert_eq!(
            levels,
            1 + MAX_NESTING,
            "the top-level table and MAX_NESTING below it"
        );
        assert!(matches!(value, FieldValue::Nested(b) if b[0] == b'F'));
    }

    #[test]
    fn deep_nesting_is_still_checked() {
        // A bad type letter, and a length that lies, 200 levels down.
        let mut bad = BytesMut::from(&nested(200, b'A')[..]);
        let innermost = bad.len() - 5;
        bad[innermost] = b'Z';
        assert_eq!(
            FieldTable::decode(&mut bad.freeze(), 0),
            Err(DecodeError::UnknownFieldType(b'Z'))
        );
        let mut lying = BytesMut::from(&nested(200, b'F')[..]);
        let last = lying.len() - 4;
        lying[last..].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            FieldTable::decode(&mut lying.freeze(), 0),
            Err(DecodeError::Truncated)
        );
    }
}
