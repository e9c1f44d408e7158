//! Segment records, format 2.
//!
//! A segment is `header | frame*`; a frame is `len varint | crc32 u32 | body[len]`, the
//! checksum over the body. A body is
//!
//! ```text
//! flags u8
//! FULL:  seq - segment's first seq (varint) | enqueue time, ms (varint)
//! else:  seq - previous seq (varint)        | enqueue time - previous (zigzag varint)
//! EXPIRY:   expiry - enqueue time, ms (varint)
//! PRIORITY: priority u8
//! CONTEXT:  len varint | context      (absent: the previous record's context)
//! payload (the rest)
//! ```
//!
//! The context is what records of a queue usually share (for a message: its exchange, routing
//! key and properties), stored once per run. A FULL record (with CONTEXT) starts every block of
//! about `BLOCK_BYTES`: a reader can start at any block, and the segment's index lists them
//! (the seq -> offset index). A corrupt frame loses the records up to the next block, never
//! more. For 16-byte messages this makes a record about 24 bytes where format 1 took ~51.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use crate::format::{get_signed, get_varint, put_signed, put_varint};
use crate::record::MAX_RECORD;

/// A FULL record is written at least this often (bytes of frames).
pub const BLOCK_BYTES: u64 = 4 * 1024;

const PERSISTENT: u8 = 1;
const FULL: u8 = 2;
const CONTEXT: u8 = 4;
const EXPIRY: u8 = 8;
const PRIORITY: u8 = 16;

/// What a record carries besides its bytes: what time-driven and priority features need
/// without reading the payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// When the record was enqueued, in ms since the Unix epoch.
    pub enqueued_at: u64,
    /// When it expires, in ms since the Unix epoch.
    pub expires_at: Option<u64>,
    /// 0 when the record has no priority.
    pub priority: u8,
}

/// A record to append. The context is given in parts; nothing is copied to write a record
/// whose context is the previous one's.
pub struct NewRecord<'a> {
    pub seq: u64,
    pub persistent: bool,
    pub meta: RecordMeta,
    pub context: &'a [&'a [u8]],
    pub payload: &'a [u8],
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub seq: u64,
    pub persistent: bool,
    pub meta: RecordMeta,
    pub context: Bytes,
    pub payload: Bytes,
}

impl LogRecord {
    /// The record's bytes (context and payload), as queued bytes are counted.
    pub fn size(&self) -> u64 {
        (self.context.len() + self.payload.len()) as u64
    }
}

fn parts_eq(stored: &[u8], parts: &[&[u8]]) -> bool {
    let mut rest = stored;
    for p in parts {
        let Some((head, tail)) = rest.split_at_checked(p.len()) else {
            return false;
        };
        if head != *p {
            return false;
        }
        rest = tail;
    }
    rest.is_empty()
}

/// The writer's side of the delta encoding, for one segment.
pub(crate) struct Encoder {
    first_seq: u64,
    prev_seq: u64,
    prev_time: u64,
    context: Vec<u8>,
    /// Frame bytes since the last FULL record; None before the first record.
    since_full: Option<u64>,
}

impl Encoder {
    pub fn new(first_seq: u64) -> Encoder {
        Encoder {
            first_seq,
            prev_seq: first_seq,
            prev_time: 0,
            context: Vec::new(),
            since_full: None,
        }
    }

    /// Writes a record's body, header part, into `head` (cleared first): everything but the
    /// payload. Returns whether the record is FULL (starts a block).
    pub fn encode_head(&mut self, r: &NewRecord, head: &mut Vec<u8>) -> bool {
        head.clear();
        let full = self.since_full.is_none_or(|n| n >= BLOCK_BYTES);
        let new_context = full || !parts_eq(&self.context, r.context);
        let mut flags = 0;
        if r.persistent {
            flags |= PERSISTENT;
        }
        if full {
            flags |= FULL;
        }
        if new_context {
            flags |= CONTEXT;
        }
        if r.meta.expires_at.is_some() {
            flags |= EXPIRY;
        }
        if r.meta.priority != 0 {
            flags |= PRIORITY;
        }
        head.push(flags);
        let time = r.meta.enqueued_at;
        if full {
            put_varint(head, r.seq - self.first_seq);
            put_varint(head, time);
        } else {
            put_varint(head, r.seq - self.prev_seq);
            put_signed(head, time.wrapping_sub(self.prev_time) as i64);
        }
        if let Some(at) = r.meta.expires_at {
            put_varint(head, at.saturating_sub(time));
        }
        if r.meta.priority != 0 {
            head.push(r.meta.priority);
        }
        if new_context {
            let len: usize = r.context.iter().map(|p| p.len()).sum();
            put_varint(head, len as u64);
            self.context.clear();
            for p in r.context {
                head.extend_from_slice(p);
                self.context.extend_from_slice(p);
            }
        }
        self.prev_seq = r.seq;
        self.prev_time = time;
        full
    }

    /// The frame just encoded took `frame_bytes` on disk.
    pub fn wrote(&mut self, full: bool, frame_bytes: u64) {
        self.since_full = Some(if full {
            frame_bytes
        } else {
            self.since_full.unwrap_or(0) + frame_bytes
        });
    }
}

/// The most a frame's `len | crc` prefix takes.
pub(crate) const PREFIX_MAX: usize = 14;

/// Writes a frame's `len | crc` prefix for a body of the given parts; returns its length.
pub(crate) fn frame_prefix(parts: &[&[u8]], out: &mut [u8; PREFIX_MAX]) -> usize {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut crc = crc32fast::Hasher::new();
    for p in parts {
        crc.update(p);
    }
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    out[n + 1..n + 5].copy_from_slice(&crc.finalize().to_be_bytes());
    n + 5
}

/// A record's header, decoded; `context` and `payload` are ranges of the frame body.
pub(crate) struct Head {
    pub seq: u64,
    pub persistent: bool,
    pub full: bool,
    pub meta: RecordMeta,
    pub context: Option<Range<usize>>,
    pub payload: Range<usize>,
}

/// The reader's side of the delta encoding.
pub(crate) struct Decoder {
    first_seq: u64,
    prev_seq: u64,
    prev_time: u64,
    /// Whether the previous record was decoded (else only a FULL record can be).
    synced: bool,
}

impl Decoder {
    pub fn new(first_seq: u64) -> Decoder {
        Decoder {
            first_seq,
            prev_seq: first_seq,
            prev_time: 0,
            synced: false,
        }
    }

    /// A frame was lost (corrupt): what follows is undecodable until the next block.
    pub fn lose_sync(&mut self) {
        self.synced = false;
    }

    /// Decodes a frame body's header. None: malformed, or a delta record with nothing to be
    /// a delta from.
    pub fn decode(&mut self, body: &[u8]) -> Option<Head> {
        let head = self.decode_inner(body);
        self.synced = head.is_some();
        head
    }

    fn decode_inner(&mut self, body: &[u8]) -> Option<Head> {
        let (&flags, mut rest) = body.split_first()?;
        let full = flags & FULL != 0;
        if !full && !self.synced {
            return None;
        }
        let (seq, time) = if full {
            let seq = self.first_seq.checked_add(get_varint(&mut rest)?)?;
            (seq, get_varint(&mut rest)?)
        } else {
            let seq = self.prev_seq.checked_add(get_varint(&mut rest)?)?;
            let time = self.prev_time.wrapping_add(get_signed(&mut rest)? as u64);
            (seq, time)
        };
        let expires_at = if flags & EXPIRY != 0 {
            Some(time.saturating_add(get_varint(&mut rest)?))
        } else {
            None
        };
        let priority = if flags & PRIORITY != 0 {
            let (&p, r) = rest.split_first()?;
            rest = r;
            p
        } else {
            0
        };
        let context = if flags & CONTEXT != 0 {
            let len = usize::try_from(get_varint(&mut rest)?).ok()?;
            let start = body.len() - rest.len();
            rest = rest.get(len..)?;
            Some(start..start + len)
        } else {
            None
        };
        self.prev_seq = seq;
        self.prev_time = time;
        Some(Head {
            seq,
            persistent: flags & PERSISTENT != 0,
            full,
            meta: RecordMeta {
                enqueued_at: time,
                expires_at,
                priority,
            },
            context,
            payload: body.len() - rest.len()..body.len(),
        })
    }
}

/// One step of reading frames.
pub(crate) enum Frame {
    /// A whole frame whose checksum holds: its body, and its offset in the file.
    Record {
        body: Vec<u8>,
        offset: u64,
    },
    /// A whole frame whose checksum fails, at `offset`.
    Corrupt {
        offset: u64,
    },
    /// Bytes at the end that are no whole frame (a torn write), from `offset`.
    Torn {
        offset: u64,
    },
    End,
}

/// Reads frames from a segment with positional reads, so that any number of readers share
/// the file (and its writer) without seeking it.
pub(crate) struct FrameReader {
    file: Arc<File>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    buf: Vec<u8>,
    /// Consumed bytes of `buf`.
    at: usize,
    /// The file's length as last seen; looked at again on reaching it.
    len: u64,
}

const READ_CHUNK: usize = 256 * 1024;

impl FrameReader {
    pub fn new(file: Arc<File>, offset: u64) -> io::Result<FrameReader> {
        let len = file.metadata()?.len();
        Ok(FrameReader {
            file,
            buf_offset: offset,
            buf: Vec::new(),
            at: 0,
            len,
        })
    }

    /// The file offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.at as u64
    }

    /// Makes sure `want` bytes from the current position are buffered, if the file has them.
    fn fill(&mut self, want: usize) -> io::Result<bool> {
        if self.buf.len() - self.at >= want {
            return Ok(true);
        }
        self.buf.drain(..self.at);
        self.buf_offset += self.at as u64;
        self.at = 0;
        let end = self.buf_offset + self.buf.len() as u64;
        if end + (want - self.buf.len()) as u64 > self.len {
            self.len = self.file.metadata()?.len();
        }
        while self.buf.len() < want {
            let end = self.buf_offset + self.buf.len() as u64;
            if end >= self.len {
                return Ok(false);
            }
            let chunk = READ_CHUNK.max(want - self.buf.len());
            let take = chunk.min((self.len - end) as usize);
            let old = self.buf.len();
            self.buf.resize(old + take, 0);
            let n = self.file.read_at(&mut self.buf[old..], end)?;
            self.buf.truncate(old + n);
            if n == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn next(&mut self) -> io::Result<Frame> {
        let offset = self.offset();
        // A length varint is at most 10 bytes; the checksum 4.
        self.fill(14)?;
        let mut prefix = &self.buf[self.at..];
        if prefix.is_empty() {
            return Ok(Frame::End);
        }
        let Some(len) = get_varint(&mut prefix) else {
            return Ok(Frame::Torn { offset });
        };
        if len > u64::from(MAX_RECORD) || prefix.len() < 4 {
            return Ok(Frame::Torn { offset });
        }
        let crc = u32::from_be_bytes(prefix[..4].try_into().expect("4 bytes"));
        let head = self.buf.len() - self.at - prefix.len() + 4;
        let size = head + len as usize;
        if !self.fill(size)? {
            return Ok(Frame::Torn { offset });
        }
        let body = &self.buf[self.at + head..self.at + size];
        let ok = crc32fast::hash(body) == crc;
        let body = ok.then(|| body.to_vec());
        self.at += size;
        Ok(match body {
            Some(body) => Frame::Record { body, offset },
            None => Frame::Corrupt { offset },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn frame(enc: &mut Encoder, r: &NewRecord, out: &mut Vec<u8>) {
        let mut head = Vec::new();
        let full = enc.encode_head(r, &mut head);
        let parts: [&[u8]; 2] = [&head, r.payload];
        let mut prefix = [0u8; PREFIX_MAX];
        let n = frame_prefix(&parts, &mut prefix);
        let before = out.len();
        out.extend_from_slice(&prefix[..n]);
        for p in &parts {
            out.extend_from_slice(p);
        }
        enc.wrote(full, (out.len() - before) as u64);
    }

    #[test]
    fn records_round_trip_with_shared_context_and_deltas() {
        let mut enc = Encoder::new(100);
        let mut bytes = Vec::new();
        let ctx: &[&[u8]] = &[b"exchange", b"key"];
        let other: &[&[u8]] = &[b"other"];
        let metas = [
            (
                100,
                RecordMeta {
                    enqueued_at: 5_000,
                    expires_at: None,
                    priority: 0,
                },
                ctx,
            ),
            (
                101,
                RecordMeta {
                    enqueued_at: 5_000,
                    expires_at: Some(6_000),
                    priority: 0,
                },
                ctx,
            ),
            (
                105,
                RecordMeta {
                    enqueued_at: 4_990,
                    expires_at: None,
                    priority: 7,
                },
                other,
            ),
            (
                106,
                RecordMeta {
                    enqueued_at: 5_010,
                    expires_at: None,
                    priority: 0,
                },
                other,
            ),
        ];
        let mut sizes = Vec::new();
        for (seq, meta, context) in metas {
            let before = bytes.len();
            frame(
                &mut enc,
                &NewRecord {
                    seq,
                    persistent: seq != 105,
                    meta,
                    context,
                    payload: b"0123456789abcdef",
                },
                &mut bytes,
            );
            sizes.push(bytes.len() - before);
        }
        assert!(
            sizes[3] <= 24,
            "a record sharing its context is small: {sizes:?}"
        );
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut reader = FrameReader::new(Arc::new(file), 0).unwrap();
        let mut dec = Decoder::new(100);
        for (seq, meta, context) in metas {
            let Frame::Record { body, .. } = reader.next().unwrap() else {
                panic!("a record")
            };
            let h = dec.decode(&body).unwrap();
            assert_eq!((h.seq, h.meta, h.persistent), (seq, meta, seq != 105));
            if let Some(c) = h.context {
                assert_eq!(body[c].to_vec(), context.concat());
            }
            assert_eq!(&body[h.payload], b"0123456789abcdef");
        }
        assert!(matches!(reader.next().unwrap(), Frame::End));
    }

    #[test]
    fn a_corrupt_frame_costs_its_block_only_and_a_torn_tail_is_seen() {
        let mut enc = Encoder::new(0);
        let mut bytes = Vec::new();
        let payload = vec![7u8; 1000];
        let mut starts = Vec::new();
        for seq in 0..200u64 {
            starts.push(bytes.len());
            frame(
                &mut enc,
                &NewRecord {
                    seq,
                    persistent: true,
                    meta: RecordMeta::default(),
                    context: &[b"c"],
                    payload: &payload,
                },
                &mut bytes,
            );
        }
        // Damage a byte of record 3's payload, and tear the last record.
        bytes[starts[4] - 1] ^= 0xff;
        bytes.truncate(bytes.len() - 10);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut reader = FrameReader::new(Arc::new(file), 0).unwrap();
        let mut dec = Decoder::new(0);
        let mut seen = Vec::new();
        loop {
            match reader.next().unwrap() {
                Frame::Record { body, .. } => {
                    if let Some(h) = dec.decode(&body) {
                        seen.push(h.seq);
                    }
                }
                Frame::Corrupt { .. } => dec.lose_sync(),
                Frame::Torn { offset } => {
                    assert_eq!(offset as usize, starts[199]);
                    break;
                }
                Frame::End => panic!("the torn tail is reported"),
            }
        }
        assert_eq!(&seen[..3], &[0, 1, 2]);
        // Blocks are ~4 KiB: records of ~1 KiB resume at the next FULL one, a few on.
        let resumed = seen[3];
        assert!((4..=6).contains(&resumed), "resumed at {resumed}");
        assert_eq!(seen.len(), 3 + (199 - resumed as usize));
    }
}
