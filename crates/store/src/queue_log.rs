//! One queue's messages on disk: segment files of records, an index beside each sealed
//! segment, and a journal of dead sequence numbers.
//!
//! Layout of a queue directory (format 2; see `segment.rs` for the records):
//! - `<first seq, 20 digits>.seg`: `header | first seq u64 | frame*`.
//! - `<first seq>.idx`: written when a segment is sealed: its last seq and its blocks (offset,
//!   seq range, persistent records and their bytes). Recovery reads these, not the segments,
//!   and readers seek with them.
//! - `journal`: dead ranges and the delivery frontier.
//!
//! Records are either persistent (they survive a restart) or transient (written only to page a
//! long queue out of memory; a restart drops them). A directory written by format 1 (no file
//! headers) is migrated when it is opened (`migrate_v1`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::fault;
use crate::format::{self, get_varint, put_varint, FileKind, Version, FILE_HEADER};
use crate::journal::{Journal, Replayed};
use crate::ranges::RangeSet;
use crate::record::{read_record, write_record, ReadOutcome};
use crate::segment::{
    frame_prefix, Decoder, Encoder, Frame, FrameReader, LogRecord, NewRecord, RecordMeta,
    PREFIX_MAX,
};
use crate::syncer::{Flush, Syncer};
use crate::v1;

/// Segments are sealed at this size: small enough that scanning the last one at recovery is
/// quick and that space comes back in useful steps, large enough to keep file counts low.
const SEGMENT_MAX: u64 = 16 * 1024 * 1024;
/// A segment file's header: the file header and the segment's first seq.
const SEGMENT_HEADER: u64 = FILE_HEADER as u64 + 8;
/// A fully acked active segment is deleted once it holds this much (see `free_drained_active`).
const ACTIVE_FREE_AT: u64 = 1024 * 1024;
/// The journal is rewritten in compact form once it grows past this.
const JOURNAL_COMPACT_AT: u64 = 4 * 1024 * 1024;

/// What a reopened log holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    /// Live persistent records, all of which are to be read back in order.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The sequence number to use for the next append.
    pub next_seq: u64,
    /// The highest sequence number that was ever handed to a consumer.
    pub delivered: Option<u64>,
}

/// A stretch of a segment that starts with a FULL record: where reading can begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    offset: u64,
    first_seq: u64,
    last_seq: u64,
    /// Persistent records in the block, and their payload bytes.
    persistent: u64,
    bytes: u64,
}

struct Segment {
    first_seq: u64,
    last_seq: u64,
    /// Records not yet dead.
    live: u64,
    blocks: Vec<Block>,
}

impl Segment {
    /// The offset to start reading at for `seq`: its block's, or the first block's.
    fn offset_for(&self, seq: u64) -> u64 {
        let i = self.blocks.partition_point(|b| b.first_seq <= seq);
        self.blocks
            .get(i.saturating_sub(1))
            .map_or(SEGMENT_HEADER, |b| b.offset)
    }

    fn record(&mut self, offset: u64, seq: u64, full: bool, persistent: bool, bytes: u64) {
        if full || self.blocks.is_empty() {
            self.blocks.push(Block {
                offset,
                first_seq: seq,
                last_seq: seq,
                persistent: 0,
                bytes: 0,
            });
        }
        let block = self.blocks.last_mut().expect("pushed above");
        block.last_seq = seq;
        if persistent {
            block.persistent += 1;
            block.bytes += bytes;
        }
        self.last_seq = seq;
    }
}

struct Cursor {
    segment_first: u64,
    reader: FrameReader,
    decoder: Decoder,
    /// The context records without one of their own share.
    context: Bytes,
}

struct Inner {
    dir: PathBuf,
    durable: bool,
    segment_max: u64,
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    active_file: Option<Arc<File>>,
    active_size: u64,
    encoder: Encoder,
    /// A record's header part (reused).
    head: Vec<u8>,
    journal: Journal,
    dead: RangeSet,
    delivered: Option<u64>,
    delivered_written: Option<u64>,
    /// Files of sealed segments and indexes awaiting their fsync.
    unsynced: Vec<Arc<File>>,
    needs_sync: bool,
    /// The group-commit round this log is registered for, until that round flushes it.
    registered: Option<u64>,
    /// Transient records below this were written before the last restart: dead.
    recovery_boundary: u64,
    cursor: Option<Cursor>,
    deleted: bool,
    /// First seqs of segments that are gone from `segments` but whose files are still to be
    /// removed: the group-commit thread removes them (`FlushHandle`), off the queue's lock.
    doomed: Vec<u64>,
    /// The journal has grown past `JOURNAL_COMPACT_AT`: the group-commit thread compacts it.
    compact_wanted: bool,
    /// The journal's size after its last compaction.
    journal_compacted: u64,
    me: Weak<Mutex<Inner>>,
}

/// A handle to one queue's log. Cheap to share; all methods lock briefly.
pub struct QueueLog {
    inner: Arc<Mutex<Inner>>,
    syncer: Arc<Syncer>,
}

struct FlushHandle(Arc<Mutex<Inner>>);

/// The group-commit thread's turn with a dirty log: buffers out, the files to fsync, and the
/// upkeep the ack path leaves to it (compacting the journal, removing drained segments), so
/// that a queue's lock never waits for an fsync or the unlink of a large file.
impl Flush for FlushHandle {
    fn flush_for_sync(&self) -> io::Result<Vec<Arc<File>>> {
        let mut inner = self.0.lock();
        inner.registered = None;
        if inner.deleted {
            return Ok(Vec::new());
        }
        if let Err(e) = inner.flush_buffers() {
            warn!(dir = %inner.dir.display(), error = %e, "flushing a queue log failed");
            // What stayed buffered goes out with the round after the next append (the log
            // registers again then); retrying now would spin while the disk is full.
            return Err(e);
        }
        if std::mem::take(&mut inner.compact_wanted) {
            if let Err(e) = inner.compact() {
                warn!(dir = %inner.dir.display(), error = %e, "compacting a queue journal failed");
            }
        }
        let doomed = std::mem::take(&mut inner.doomed);
        let dir = inner.dir.clone();
        let files = if !inner.durable || !inner.needs_sync {
            inner.unsynced.clear();
            Vec::new()
        } else {
            inner.needs_sync = false;
            // The journal is not fsynced: it only ever makes messages come back
            // (at-least-once), never go missing, if a power cut takes its tail.
            let mut files = std::mem::take(&mut inner.unsynced);
            files.extend(inner.active_file.clone());
            files
        };
        drop(inner);
        remove_segments(&dir, &doomed);
        Ok(files)
    }
}

/// Removes the files of dead segments. A failure leaves a file recovery removes (its records
/// are all dead in the journal).
fn remove_segments(dir: &Path, firsts: &[u64]) {
    for &first in firsts {
        if fault::point(fault::SEGMENT_REMOVE).is_err() {
            continue;
        }
        let _ = fs::remove_file(seg_path(dir, first));
        let _ = fs::remove_file(idx_path(dir, first));
    }
}

/// The first seqs of the segments in `dir` (files `<first>.seg`, either format), in order.
pub(crate) fn segment_firsts(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    firsts.sort_unstable();
    Ok(firsts)
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn idx_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.idx"))
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Opens a segment for reading and checks its header.
fn open_segment(dir: &Path, first: u64) -> io::Result<File> {
    let path = seg_path(dir, first);
    let mut file = File::open(&path)?;
    let len = file.metadata()?.len();
    match format::read_header(&mut file, len, FileKind::Segment)? {
        Version::Current => {}
        other => {
            return Err(invalid(format!(
                "{}: segment header {other:?}",
                path.display()
            )))
        }
    }
    let mut seq = [0u8; 8];
    file.read_exact(&mut seq)?;
    if u64::from_be_bytes(seq) != first {
        return Err(invalid(format!("{}: wrong first seq", path.display())));
    }
    Ok(file)
}

/// What a scan of a whole segment finds.
struct Scan {
    blocks: Vec<Block>,
    last_seq: Option<u64>,
    /// Length of the valid prefix.
    valid_bytes: u64,
    /// Whether bytes after the valid prefix form no whole frame (a torn write).
    torn: bool,
}

/// Reads every frame of a segment (from `offset` to `end`), handing each decodable record to
/// `each` as (seq, persistent, bytes).
fn scan_frames(
    file: Arc<File>,
    first: u64,
    offset: u64,
    end: Option<u64>,
    mut each: impl FnMut(u64, u64, bool, bool, u64),
) -> io::Result<(u64, bool)> {
    let mut reader = FrameReader::new(file, offset)?;
    let mut decoder = Decoder::new(first);
    loop {
        if end.is_some_and(|e| reader.offset() >= e) {
            return Ok((reader.offset(), false));
        }
        match reader.next()? {
            Frame::Record { body, offset, .. } => {
                if let Some(h) = decoder.decode(&body) {
                    each(offset, h.seq, h.full, h.persistent, h.payload.len() as u64);
                }
            }
            Frame::Corrupt { offset, .. } => {
                warn!(first, offset, "corrupt record skipped");
                decoder.lose_sync();
            }
            Frame::Torn { offset } => return Ok((offset, true)),
            Frame::End => return Ok((reader.offset(), false)),
        }
    }
}

fn scan_segment(dir: &Path, first: u64) -> io::Result<Scan> {
    let file = Arc::new(open_segment(dir, first)?);
    let mut seg = Segment {
        first_seq: first,
        last_seq: first,
        live: 0,
        blocks: Vec::new(),
    };
    let mut last_seq = None;
    let (valid_bytes, torn) = scan_frames(
        file,
        first,
        SEGMENT_HEADER,
        None,
        |offset, seq, full, persistent, bytes| {
            seg.record(offset, seq, full, persistent, bytes);
            last_seq = Some(seq);
        },
    )?;
    Ok(Scan {
        blocks: seg.blocks,
        last_seq,
        valid_bytes,
        torn,
    })
}

fn write_index(dir: &Path, seg: &Segment) -> io::Result<File> {
    let mut body = Vec::with_capacity(16 + seg.blocks.len() * 12);
    put_varint(&mut body, seg.last_seq);
    put_varint(&mut body, seg.blocks.len() as u64);
    for b in &seg.blocks {
        put_varint(&mut body, b.offset);
        put_varint(&mut body, b.first_seq);
        put_varint(&mut body, b.last_seq - b.first_seq);
        put_varint(&mut body, b.persistent);
        put_varint(&mut body, b.bytes);
    }
    let mut out = BufWriter::new(File::create(idx_path(dir, seg.first_seq))?);
    format::write_header(&mut out, FileKind::Index)?;
    write_record(&mut out, &[&body])?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())
}

/// Reads a sealed segment's index: (last seq, blocks).
fn read_index(dir: &Path, first: u64) -> Option<(u64, Vec<Block>)> {
    let mut file = File::open(idx_path(dir, first)).ok()?;
    let len = file.metadata().ok()?.len();
    if format::read_header(&mut file, len, FileKind::Index).ok()? != Version::Current {
        return None;
    }
    let ReadOutcome::Record(body) = read_record(&mut file, len - FILE_HEADER as u64).ok()? else {
        return None;
    };
    let mut s = &body[..];
    let last = get_varint(&mut s)?;
    let n = get_varint(&mut s)?;
    let mut blocks = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let offset = get_varint(&mut s)?;
        let first_seq = get_varint(&mut s)?;
        let last_seq = first_seq.checked_add(get_varint(&mut s)?)?;
        blocks.push(Block {
            offset,
            first_seq,
            last_seq,
            persistent: get_varint(&mut s)?,
            bytes: get_varint(&mut s)?,
        });
    }
    s.is_empty().then_some((last, blocks))
}

/// Live persistent records of a sealed segment and their bytes, from its blocks; a block that
/// is only partly dead is read to count exactly.
fn count_live(dir: &Path, first: u64, blocks: &[Block], dead: &RangeSet) -> io::Result<(u64, u64)> {
    let (mut live, mut bytes) = (0, 0);
    let mut file: Option<Arc<File>> = None;
    for (i, b) in blocks.iter().enumerate() {
        if b.persistent == 0
            || dead.count_in(b.first_seq, b.last_seq + 1) == b.last_seq + 1 - b.first_seq
        {
            continue;
        }
        if dead.count_in(b.first_seq, b.last_seq + 1) == 0 {
            live += b.persistent;
            bytes += b.bytes;
            continue;
        }
        let f = match &file {
            Some(f) => f.clone(),
            None => file.insert(Arc::new(open_segment(dir, first)?)).clone(),
        };
        let end = blocks.get(i + 1).map(|n| n.offset);
        scan_frames(f, first, b.offset, end, |_, seq, _, persistent, n| {
            if persistent && !dead.contains(seq) {
                live += 1;
                bytes += n;
            }
        })?;
    }
    Ok((live, bytes))
}

/// Splits a format 1 payload into a context and the payload's range (the caller knows what
/// the payload is; the store does not).
pub type SplitV1<'a> = &'a dyn Fn(&[u8]) -> Option<(Vec<u8>, std::ops::Range<usize>)>;

impl QueueLog {
    /// Opens (or creates) the log in `dir`, recovering what a previous run left.
    /// A non-durable log is only for paging and starts empty.
    pub fn open(
        dir: &Path,
        durable: bool,
        syncer: Arc<Syncer>,
    ) -> io::Result<(QueueLog, Recovered)> {
        Self::open_with_segment_size(dir, durable, syncer, SEGMENT_MAX)
    }

    /// As `open`, migrating a directory written in format 1 first: `split` cuts its payloads
    /// into context and payload.
    pub fn open_migrating(
        dir: &Path,
        syncer: Arc<Syncer>,
        split: SplitV1,
    ) -> io::Result<(QueueLog, Recovered)> {
        v1::finish_interrupted_migration(dir)?;
        if v1::is_v1(dir)? {
            migrate_v1(dir, syncer.clone(), split)?;
        }
        Self::open(dir, true, syncer)
    }

    /// As `open`, with segments sealed at `segment_max` bytes (tests use small ones).
    pub fn open_with_segment_size(
        dir: &Path,
        durable: bool,
        syncer: Arc<Syncer>,
        segment_max: u64,
    ) -> io::Result<(QueueLog, Recovered)> {
        if !durable && dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        let (journal, replayed) = if durable {
            Journal::open(&dir.join("journal"))?
        } else {
            (Journal::unwritten(), Replayed::default())
        };
        let firsts = segment_firsts(dir)?;
        let dead = replayed.dead;
        let mut segments = Vec::new();
        let mut next_seq = 0u64;
        let (mut messages, mut bytes) = (0u64, 0u64);
        let last = firsts.last().copied();
        let mut active_size = 0;
        for first in firsts {
            let is_last = Some(first) == last;
            let indexed = if is_last {
                None
            } else {
                read_index(dir, first)
            };
            let (last_seq, blocks) = match indexed {
                Some(index) => index,
                None => {
                    let scan = scan_segment(dir, first)?;
                    if scan.torn {
                        let path = seg_path(dir, first);
                        warn!(path = %path.display(), valid_bytes = scan.valid_bytes, "torn record at the end of a segment truncated");
                        OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(scan.valid_bytes)?;
                    }
                    if is_last {
                        active_size = scan.valid_bytes;
                    }
                    (scan.last_seq.unwrap_or(first), scan.blocks)
                }
            };
            next_seq = next_seq.max(last_seq + 1);
            let (live, live_bytes) = count_live(dir, first, &blocks, &dead)?;
            messages += live;
            bytes += live_bytes;
            if live == 0 && !is_last {
                let _ = fs::remove_file(seg_path(dir, first));
                let _ = fs::remove_file(idx_path(dir, first));
                continue;
            }
            let seg = Segment {
                first_seq: first,
                last_seq,
                live,
                blocks,
            };
            // A sealed segment whose index was lost (a crash right after sealing) gets it back.
            if !is_last && read_index(dir, first).is_none() {
                write_index(dir, &seg)?;
            }
            segments.push(seg);
        }
        // A purge may have removed every segment; the journal still knows how far seqs went.
        if let Some((_, end)) = dead.iter().last() {
            next_seq = next_seq.max(end);
        }
        let (writer, active_file, encoder) = match segments.last() {
            Some(seg) if active_size < segment_max && Some(seg.first_seq) == last => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(seg_path(dir, seg.first_seq))?;
                let shared = Arc::new(file.try_clone()?);
                // Appends continue the segment with a FULL record: no state to resume.
                (
                    Some(BufWriter::with_capacity(64 * 1024, file)),
                    Some(shared),
                    Encoder::new(seg.first_seq),
                )
            }
            _ => (None, None, Encoder::new(next_seq)),
        };
        if messages > 0 {
            info!(dir = %dir.display(), messages, bytes, segments = segments.len(), "recovered queue log");
        }
        let recovered = Recovered {
            messages,
            bytes,
            next_seq,
            delivered: replayed.delivered,
        };
        let inner = Arc::new_cyclic(|me| {
            Mutex::new(Inner {
                dir: dir.to_path_buf(),
                durable,
                segment_max,
                segments,
                writer,
                active_file,
                active_size,
                encoder,
                head: Vec::with_capacity(64),
                journal,
                dead,
                delivered: replayed.delivered,
                delivered_written: replayed.delivered,
                unsynced: Vec::new(),
                needs_sync: false,
                registered: None,
                recovery_boundary: next_seq,
                cursor: None,
                deleted: false,
                doomed: Vec::new(),
                compact_wanted: false,
                journal_compacted: 0,
                me: me.clone(),
            })
        });
        Ok((QueueLog { inner, syncer }, recovered))
    }

    /// Appends a record. Returns the group-commit ticket for persistent records of a durable
    /// log (0: nothing to wait for).
    pub fn append(&self, record: &NewRecord) -> io::Result<u64> {
        let mut inner = self.inner.lock();
        inner.append(record)?;
        let must_sync = record.persistent && inner.durable;
        if must_sync {
            inner.needs_sync = true;
        }
        // A transient log's buffer goes out when it fills or a read needs it: nothing of it
        // has to reach the disk, so the group-commit thread is not woken for it.
        if !inner.durable {
            return Ok(0);
        }
        let round = self.register(&mut inner);
        Ok(if must_sync { round } else { 0 })
    }

    /// Puts the log in a group-commit round if it is in none; returns the round that will
    /// flush what was just written.
    fn register(&self, inner: &mut Inner) -> u64 {
        if let Some(round) = inner.registered {
            return round;
        }
        let Some(me) = inner.me.upgrade() else {
            // The log is being dropped, and its Drop flushes the buffers.
            return self.syncer.next_round();
        };
        let round = self.syncer.mark_dirty(Arc::new(FlushHandle(me)));
        inner.registered = Some(round);
        round
    }

    /// Marks records dead (acked, rejected, dropped); frees segments that become empty.
    /// The journal entry is written through at once, so a crash right after an ack does not
    /// bring the message back.
    pub fn kill(&self, seqs: impl IntoIterator<Item = u64>) -> io::Result<()> {
        let mut inner = self.inner.lock();
        // Settled together, deliveries mostly come in runs of consecutive seqs: each run is
        // one update of the dead set, the live counts and the journal.
        let mut run: Option<(u64, u64)> = None;
        for seq in seqs {
            run = match run {
                Some((s, e)) if e == seq => Some((s, seq + 1)),
                Some((s, e)) => {
                    inner.kill_run(s, e)?;
                    Some((seq, seq + 1))
                }
                None => Some((seq, seq + 1)),
            };
        }
        if let Some((s, e)) = run {
            inner.kill_run(s, e)?;
        }
        inner.free_drained_active()?;
        inner.write_delivered()?;
        inner.journal.flush()?;
        // Compacted once it doubled since the last time: a journal whose compact form is
        // itself long (acks far out of order) is not rewritten on every round.
        if inner.journal.size >= JOURNAL_COMPACT_AT.max(2 * inner.journal_compacted) {
            inner.compact_wanted = true;
        }
        if inner.compact_wanted || !inner.doomed.is_empty() {
            self.register(&mut inner);
        }
        Ok(())
    }

    /// Marks every record in [start, end) dead (a purge of the part that lives only on disk).
    pub fn kill_range(&self, start: u64, end: u64) -> io::Result<()> {
        let mut inner = self.inner.lock();
        if start >= end {
            return Ok(());
        }
        inner.dead.insert_range(start, end);
        inner.journal.append_dead(start, end)?;
        inner.journal.flush()?;
        inner.cursor = None;
        inner.recount_after_range_kill(start, end)?;
        // A purge frees the disk at once.
        let doomed = std::mem::take(&mut inner.doomed);
        remove_segments(&inner.dir, &doomed);
        Ok(())
    }

    /// Records that delivery reached `seq` (written with the next journal write).
    pub fn delivered(&self, seq: u64) {
        let mut inner = self.inner.lock();
        if inner.delivered.is_none_or(|d| seq > d) {
            inner.delivered = Some(seq);
        }
    }

    /// Reads live records with seq >= `from`, in order, up to `max` records or `max_bytes`.
    pub fn read(&self, from: u64, max: usize, max_bytes: usize) -> io::Result<Vec<LogRecord>> {
        let mut inner = self.inner.lock();
        inner.read(from, max, max_bytes)
    }

    /// Writes buffered records and journal entries to the files (no fsync).
    pub fn flush(&self) -> io::Result<()> {
        self.inner.lock().flush_buffers()
    }

    /// Writes everything out and fsyncs it now (a migration, not the publish path).
    fn sync_now(&self) -> io::Result<()> {
        let mut inner = self.inner.lock();
        inner.flush_buffers()?;
        let mut files = std::mem::take(&mut inner.unsynced);
        files.extend(inner.active_file.clone());
        for f in files {
            f.sync_all()?;
        }
        inner.journal.sync()?;
        File::open(&inner.dir)?.sync_all()
    }

    /// Closes the files and removes the directory: the queue is gone.
    pub fn destroy(&self) {
        let mut inner = self.inner.lock();
        inner.deleted = true;
        inner.writer = None;
        inner.active_file = None;
        inner.cursor = None;
        inner.unsynced.clear();
        if let Err(e) = fs::remove_dir_all(&inner.dir) {
            warn!(dir = %inner.dir.display(), error = %e, "removing a deleted queue's files failed");
        }
    }

    /// Bytes the log occupies on disk (segments, indexes, journal).
    pub fn disk_bytes(&self) -> u64 {
        let inner = self.inner.lock();
        fs::read_dir(&inner.dir)
            .map(|it| {
                it.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for QueueLog {
    /// Buffered records reach the file when the queue lets go of its log (clean shutdown).
    fn drop(&mut self) {
        let mut inner = self.inner.lock();
        if !inner.deleted {
            let _ = inner.flush_buffers();
        }
    }
}

/// Rewrites a format 1 queue directory in format 2: its live persistent records (transient
/// ones are dead after a restart anyway), with the same seqs, the delivery frontier and how
/// far seqs went. Written beside it, fsynced, then swapped in (see `v1` for a crash midway).
fn migrate_v1(dir: &Path, syncer: Arc<Syncer>, split: SplitV1) -> io::Result<()> {
    let started = std::time::Instant::now();
    let old = v1::OldLog::open(dir)?;
    let tmp = v1::migration_dir(dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    let (log, _) = QueueLog::open(&tmp, true, syncer)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (mut copied, mut skipped) = (0u64, 0u64);
    old.for_each_live(|seq, payload| {
        let Some((context, range)) = split(payload) else {
            skipped += 1;
            return Ok(());
        };
        let Some(body) = payload.get(range) else {
            skipped += 1;
            return Ok(());
        };
        log.inner.lock().append(&NewRecord {
            seq,
            persistent: true,
            meta: RecordMeta {
                enqueued_at: now,
                ..RecordMeta::default()
            },
            context: &[&context],
            payload: body,
        })?;
        copied += 1;
        Ok(())
    })?;
    {
        let mut inner = log.inner.lock();
        // Seqs that were used but are not in the new log stay used.
        let next = inner.segments.last().map_or(0, |s| s.last_seq + 1);
        if old.next_seq > next {
            inner.journal.append_dead(next, old.next_seq)?;
        }
        if let Some(d) = old.delivered {
            inner.journal.append_delivered(d)?;
        }
    }
    log.sync_now()?;
    drop(log);
    v1::swap_in(dir, &tmp)?;
    info!(
        dir = %dir.display(),
        messages = copied,
        undecodable = skipped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "queue log migrated from format 1 to format 2"
    );
    Ok(())
}

impl Inner {
    fn append(&mut self, r: &NewRecord) -> io::Result<()> {
        // Records are delta-encoded by seq: a queue appends its seqs in increasing order.
        if let Some(last) = self.segments.last().filter(|s| !s.blocks.is_empty()) {
            if r.seq <= last.last_seq {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("seq {} appended after {}", r.seq, last.last_seq),
                ));
            }
        }
        if self.writer.is_none() || self.active_size >= self.segment_max {
            self.roll(r.seq)?;
        }
        let full = self.encoder.encode_head(r, &mut self.head);
        let parts: [&[u8]; 2] = [&self.head, r.payload];
        let mut prefix = [0u8; PREFIX_MAX];
        let prefix_len = frame_prefix(&parts, &mut prefix);
        let payload = r.payload;
        let writer = self.writer.as_mut().expect("rolled above");
        writer.write_all(&prefix[..prefix_len])?;
        writer.write_all(parts[0])?;
        writer.write_all(parts[1])?;
        let frame = (prefix_len + parts[0].len() + parts[1].len()) as u64;
        let offset = self.active_size;
        self.active_size += frame;
        self.encoder.wrote(full, frame);
        let seg = self.segments.last_mut().expect("rolled above");
        seg.record(offset, r.seq, full, r.persistent, payload.len() as u64);
        seg.live += 1;
        Ok(())
    }

    /// Seals the active segment (its index goes next to it) and starts a new one at `first`.
    fn roll(&mut self, first: u64) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
            let sealed = self.active_file.take();
            // Only a durable log is read again after a restart: it alone needs the index and
            // the fsyncs.
            if self.durable {
                self.unsynced.extend(sealed);
                if let Some(seg) = self.segments.last() {
                    let index = write_index(&self.dir, seg)?;
                    self.unsynced.push(Arc::new(index));
                }
                self.needs_sync = true;
            }
            self.free_empty_segments(false)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(seg_path(&self.dir, first))?;
        format::write_header(&mut file, FileKind::Segment)?;
        file.write_all(&first.to_be_bytes())?;
        self.active_file = Some(Arc::new(file.try_clone()?));
        self.writer = Some(BufWriter::with_capacity(64 * 1024, file));
        self.active_size = SEGMENT_HEADER;
        self.encoder = Encoder::new(first);
        self.segments.push(Segment {
            first_seq: first,
            last_seq: first,
            live: 0,
            blocks: Vec::new(),
        });
        Ok(())
    }

    fn flush_buffers(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            fault::point(fault::SEGMENT_WRITE)?;
            w.flush()?;
        }
        self.write_delivered()?;
        self.journal.flush()
    }

    fn write_delivered(&mut self) -> io::Result<()> {
        if self.delivered > self.delivered_written {
            if let Some(d) = self.delivered {
                self.journal.append_delivered(d)?;
            }
            self.delivered_written = self.delivered;
        }
        Ok(())
    }

    fn segment_of(&self, seq: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.first_seq <= seq);
        (i > 0).then(|| i - 1)
    }

    /// Marks [start, end) dead: every seq in it is a record of this log (the caller's run of
    /// consecutive logged seqs). Seqs already dead are not counted twice.
    fn kill_run(&mut self, start: u64, end: u64) -> io::Result<()> {
        let mut emptied_sealed = false;
        let first = self.segment_of(start).unwrap_or(0);
        for i in first..self.segments.len() {
            let seg_first = self.segments[i].first_seq;
            if seg_first >= end {
                break;
            }
            let seg_end = self.segments.get(i + 1).map_or(u64::MAX, |s| s.first_seq);
            let (lo, hi) = (start.max(seg_first), end.min(seg_end));
            if lo >= hi {
                continue;
            }
            let newly = (hi - lo) - self.dead.count_in(lo, hi);
            let seg = &mut self.segments[i];
            seg.live = seg.live.saturating_sub(newly);
            emptied_sealed |= newly > 0 && seg.live == 0 && i + 1 < self.segments.len();
        }
        self.dead.insert_range(start, end);
        self.journal.append_dead(start, end)?;
        if emptied_sealed {
            // Sealed and fully dead: the ack path frees it (never fails when the active
            // segment is left alone).
            let _ = self.free_empty_segments(false);
        }
        Ok(())
    }

    /// A drained log gives its active segment back too, once it is big enough to be worth
    /// a new file: otherwise a queue that filled a disk and was then drained would keep up to
    /// a segment's worth of dead records on it.
    fn free_drained_active(&mut self) -> io::Result<()> {
        match self.segments.last() {
            Some(active) if active.live == 0 && self.active_size >= ACTIVE_FREE_AT => {
                self.free_empty_segments(true)
            }
            _ => Ok(()),
        }
    }

    /// Drops sealed segments with no live records (their files go to `doomed`): space comes
    /// back as acks arrive.
    ///
    /// The active segment goes too when `include_active` (a purge): its range is journaled as
    /// dead first, so that recovery never hands out its sequence numbers again. The ack path
    /// leaves it alone, or a queue that keeps draining to empty would create and delete a file
    /// per message.
    fn free_empty_segments(&mut self, include_active: bool) -> io::Result<()> {
        let Some(active) = self.segments.last() else {
            return Ok(());
        };
        let (active_first, active_last, active_live) =
            (active.first_seq, active.last_seq, active.live);
        if include_active && active_live == 0 {
            self.journal.append_dead(active_first, active_last + 1)?;
            self.journal.flush()?;
            self.dead.insert_range(active_first, active_last + 1);
            self.writer = None;
            self.active_file = None;
            self.active_size = 0;
        }
        let cursor_first = self.cursor.as_ref().map(|c| c.segment_first);
        let mut drop_cursor = false;
        let mut doomed = Vec::new();
        self.segments.retain(|s| {
            let is_active = s.first_seq == active_first;
            if s.live > 0 || (is_active && !(include_active && active_live == 0)) {
                return true;
            }
            doomed.push(s.first_seq);
            drop_cursor |= cursor_first == Some(s.first_seq);
            false
        });
        self.doomed.extend(doomed);
        if drop_cursor {
            self.cursor = None;
        }
        Ok(())
    }

    /// After a range kill, live counts are recomputed from the segments that overlap it.
    fn recount_after_range_kill(&mut self, start: u64, end: u64) -> io::Result<()> {
        let last = self.segments.len().saturating_sub(1);
        for i in 0..self.segments.len() {
            let (first, last_seq) = (self.segments[i].first_seq, self.segments[i].last_seq);
            if last_seq < start || first >= end {
                continue;
            }
            if i == last {
                if let Some(w) = self.writer.as_mut() {
                    w.flush()?;
                }
            }
            let file = Arc::new(open_segment(&self.dir, first)?);
            let (boundary, dead) = (self.recovery_boundary, &self.dead);
            let mut live = 0;
            scan_frames(
                file,
                first,
                SEGMENT_HEADER,
                None,
                |_, seq, _, persistent, _| {
                    if !dead.contains(seq) && (persistent || seq >= boundary) {
                        live += 1;
                    }
                },
            )?;
            self.segments[i].live = live;
        }
        self.free_empty_segments(true)
    }

    /// Rewrites the journal with what it says in compact form (write, fsync, rename).
    fn compact(&mut self) -> io::Result<()> {
        // Ranges below the first segment carry no information beyond "all dead".
        let first = self.segments.first().map_or(u64::MAX, |s| s.first_seq);
        let mut compact = RangeSet::new();
        for (s, e) in self.dead.iter() {
            if e <= first {
                continue;
            }
            compact.insert_range(s.max(first), e);
        }
        if first > 0 && first != u64::MAX {
            compact.insert_range(0, first);
        }
        self.dead = compact;
        let (dead, delivered) = (self.dead.clone(), self.delivered);
        self.journal.rewrite(&dead, delivered)?;
        self.delivered_written = delivered;
        self.journal_compacted = self.journal.size;
        Ok(())
    }

    fn read(&mut self, from: u64, max: usize, max_bytes: usize) -> io::Result<Vec<LogRecord>> {
        let mut out = Vec::with_capacity(max.min(4096));
        let mut bytes = 0usize;
        // Whatever is buffered must be visible to the reader.
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
        }
        while out.len() < max && bytes < max_bytes {
            if self.cursor.is_none() && !self.open_cursor(from)? {
                break;
            }
            let cursor = self.cursor.as_mut().expect("opened above");
            match cursor.reader.next()? {
                Frame::Record { body, .. } => {
                    let Some(head) = cursor.decoder.decode(&body) else {
                        continue;
                    };
                    let body = Bytes::from(body);
                    if let Some(c) = head.context {
                        cursor.context = body.slice(c);
                    }
                    let seq = head.seq;
                    if seq < from
                        || self.dead.contains(seq)
                        || (!head.persistent && seq < self.recovery_boundary)
                    {
                        continue;
                    }
                    let record = LogRecord {
                        seq,
                        persistent: head.persistent,
                        meta: head.meta,
                        context: cursor.context.clone(),
                        payload: body.slice(head.payload),
                    };
                    bytes += record.size() as usize;
                    out.push(record);
                }
                Frame::Corrupt { offset, .. } => {
                    let path = seg_path(&self.dir, cursor.segment_first);
                    warn!(path = %path.display(), offset, "corrupt record skipped");
                    cursor.decoder.lose_sync();
                }
                Frame::End | Frame::Torn { .. } => {
                    // The end of this segment (the reader has looked at the file's length
                    // again): move on, unless it is the one being written.
                    let seg_first = cursor.segment_first;
                    let next = self
                        .segments
                        .iter()
                        .map(|s| s.first_seq)
                        .find(|&f| f > seg_first);
                    self.cursor = None;
                    match next {
                        Some(next_first) => {
                            if !self.open_cursor_at(next_first, next_first)? {
                                break;
                            }
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(out)
    }

    /// Positions the cursor at the block holding `from` (or the first after it).
    fn open_cursor(&mut self, from: u64) -> io::Result<bool> {
        let first = match self.segment_of(from) {
            Some(i) => self.segments[i].first_seq,
            None => match self.segments.first() {
                Some(s) => s.first_seq,
                None => return Ok(false),
            },
        };
        self.open_cursor_at(first, from)
    }

    fn open_cursor_at(&mut self, first: u64, from: u64) -> io::Result<bool> {
        let file = match open_segment(&self.dir, first) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let offset = self
            .segments
            .iter()
            .find(|s| s.first_seq == first)
            .map_or(SEGMENT_HEADER, |s| s.offset_for(from));
        self.cursor = Some(Cursor {
            segment_first: first,
            reader: FrameReader::new(Arc::new(file), offset)?,
            decoder: Decoder::new(first),
            context: Bytes::new(),
        });
        Ok(true)
    }
}
