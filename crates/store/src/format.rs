//! The v2 file formats' common parts: file headers (a magic number and a version in every
//! file) and LEB128 varints.
//!
//! Varints are written by hand: a record header is a handful of them per message on the
//! publish path, encoded into a stack buffer; a crate would add a dependency for 20 lines.

use std::io::{self, Read, Write};

/// The format version this release writes. Version 1 files (earlier releases) had no header.
pub const FORMAT_VERSION: u16 = 2;
/// `magic[4] | version u16 | reserved u16`.
pub const FILE_HEADER: usize = 8;

/// What a file is, by its first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Segment,
    Index,
    Journal,
    Definitions,
}

impl FileKind {
    fn magic(self) -> &'static [u8; 4] {
        match self {
            FileKind::Segment => b"WSEG",
            FileKind::Index => b"WIDX",
            FileKind::Journal => b"WJNL",
            FileKind::Definitions => b"WDEF",
        }
    }
}

pub fn header(kind: FileKind) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..4].copy_from_slice(kind.magic());
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h
}

pub fn write_header(out: &mut impl Write, kind: FileKind) -> io::Result<()> {
    out.write_all(&header(kind))
}

/// What the start of a file says about its format.
#[derive(Debug, PartialEq, Eq)]
pub enum Version {
    /// Empty: nothing written yet.
    Empty,
    /// No header: written by a release before format 2. (A v1 file starts with a record
    /// length, big-endian and below 256 MiB, so its first byte is never a magic letter.)
    V1,
    Current,
}

/// Reads and checks a file's header; an unknown magic or a newer version is an error, never
/// guessed at.
pub fn read_header(input: &mut impl Read, len: u64, kind: FileKind) -> io::Result<Version> {
    if len == 0 {
        return Ok(Version::Empty);
    }
    let mut h = [0u8; FILE_HEADER];
    if len < FILE_HEADER as u64 {
        input.read_exact(&mut h[..1])?;
        return if h[0] < b'A' {
            Ok(Version::V1)
        } else {
            // A header torn by a crash as the file was created: it holds nothing.
            Ok(Version::Empty)
        };
    }
    input.read_exact(&mut h)?;
    if h[0] < b'A' {
        return Ok(Version::V1);
    }
    if &h[..4] != kind.magic() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not a {kind:?} file (magic {:?})",
                String::from_utf8_lossy(&h[..4])
            ),
        ));
    }
    let version = u16::from_be_bytes([h[4], h[5]]);
    if version != FORMAT_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{kind:?} file of format version {version}; this release reads version {FORMAT_VERSION}"),
        ));
    }
    Ok(Version::Current)
}

/// Appends `v` as an LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an LEB128 varint from the front of `input`, advancing it.
pub fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Signed values (time deltas; a wall clock may step back) as zigzag varints.
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn get_signed(input: &mut &[u8]) -> Option<i64> {
    let z = get_varint(input)?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut s = &b[..];
            assert_eq!(get_varint(&mut s), Some(v));
            assert!(s.is_empty());
        }
        for v in [0i64, -1, 1, -300, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_signed(&mut b, v);
            let mut s = &b[..];
            assert_eq!(get_signed(&mut s), Some(v));
        }
        assert_eq!(get_varint(&mut &[0x80u8][..]), None, "truncated");
    }

    #[test]
    fn headers_are_recognised() {
        let h = header(FileKind::Segment);
        assert_eq!(
            read_header(&mut &h[..], 8, FileKind::Segment).unwrap(),
            Version::Current
        );
        assert!(read_header(&mut &h[..], 8, FileKind::Journal).is_err());
        let v1 = [0u8, 0, 0, 17, 1, 2, 3, 4];
        assert_eq!(
            read_header(&mut &v1[..], 8, FileKind::Segment).unwrap(),
            Version::V1
        );
        let mut newer = header(FileKind::Segment);
        newer[5] = 9;
        assert!(read_header(&mut &newer[..], 8, FileKind::Segment).is_err());
    }
}
