//! The framing every log file uses: `len u32 | crc32 u32 | body[len]`, big-endian, where the
//! checksum covers the body. A record whose checksum fails is never trusted.

use std::io::{self, Read, Write};

/// No record may claim more than this; a larger length is corruption, not a record.
pub const MAX_RECORD: u32 = 256 * 1024 * 1024;
pub const HEADER: usize = 8;

pub fn write_record(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<usize> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        crc.update(p);
    }
    out.write_all(&(len as u32).to_be_bytes())?;
    out.write_all(&crc.finalize().to_be_bytes())?;
    for p in parts {
        out.write_all(p)?;
    }
    Ok(HEADER + len)
}

pub enum ReadOutcome {
    Record(Vec<u8>),
    /// Clean end of file.
    End,
    /// Bytes at the end that do not form a whole record (a torn write).
    Torn,
    /// A whole record whose checksum fails; `len` bytes were skipped.
    Corrupt {
        len: usize,
    },
}

/// Reads the next record. `remaining` is how many bytes the file has from here.
pub fn read_record(input: &mut impl Read, remaining: u64) -> io::Result<ReadOutcome> {
    if remaining == 0 {
        return Ok(ReadOutcome::End);
    }
    if remaining < HEADER as u64 {
        return Ok(ReadOutcome::Torn);
    }
    let mut header = [0u8; HEADER];
    input.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD || len as u64 > remaining - HEADER as u64 {
        return Ok(ReadOutcome::Torn);
    }
    let mut body = vec![0u8; len as usize];
    input.read_exact(&mut body)?;
    if crc32fast::hash(&body) != crc {
        return Ok(ReadOutcome::Corrupt { len: len as usize });
    }
    Ok(ReadOutcome::Record(body))
}
