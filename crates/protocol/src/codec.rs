//! Reading and writing the primitive AMQP types. Every read checks the remaining length first,
//! so a short or lying payload is a `DecodeError`, never a panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{DecodeError, FieldTable, ShortStr};

pub(crate) fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

pub(crate) fn get_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

pub(crate) fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

pub(crate) fn get_shortstr(buf: &mut Bytes) -> Result<ShortStr, DecodeError> {
    let len = get_u8(buf)? as usize;
    need(buf, len)?;
    Ok(ShortStr::from_bytes_unchecked(buf.split_to(len)))
}

pub(crate) fn get_longstr(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u32(buf)? as usize;
    need(buf, len)?;
    Ok(buf.split_to(len))
}

pub(crate) fn get_table(buf: &mut Bytes) -> Result<FieldTable, DecodeError> {
    FieldTable::decode(buf, 0)
}

pub(crate) fn put_shortstr(out: &mut BytesMut, s: &ShortStr) {
    let bytes = s.as_bytes();
    // ShortStr guarantees at most 255 bytes, so the length fits in the octet.
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

pub(crate) fn put_longstr(out: &mut BytesMut, s: &[u8]) {
    out.put_u32(s.len() as u32);
    out.put_slice(s);
}

pub(crate) fn put_table(out: &mut BytesMut, table: &FieldTable) {
    table.encode(out);
}
