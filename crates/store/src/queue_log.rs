//! One queue's messages on disk: segment files of checksummed records, a sidecar index per
//! sealed segment, and a journal of dead sequence numbers.
//!
//! Layout of a queue directory:
//! - `<first seq, 20 digits>.seg`: records `seq u64 | flags u8 | payload`, framed by `record`.
//! - `<first seq>.idx`: written when a segment is sealed: its last seq and the seqs of its
//!   persistent records. Recovery reads these instead of the segments.
//! - `journal`: dead ranges and the delivery frontier.
//!
//! Records are either persistent (they survive a restart) or transient (written only to page a
//! long queue out of memory; a restart drops them).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::journal::Journal;
use crate::ranges::RangeSet;
use crate::record::{read_record, write_record, ReadOutcome, HEADER};
use crate::syncer::{Flush, Syncer};

/// Segments are sealed at this size: small enough that scanning the last one at recovery is
/// quick and that space comes back in useful steps, large enough to keep file counts low.
const SEGMENT_MAX: u64 = 16 * 1024 * 1024;
/// A fully acked active segment is deleted once it holds this much (see `free_drained_active`).
const ACTIVE_FREE_AT: u64 = 1024 * 1024;
/// The journal is rewritten in compact form once it grows past this.
const JOURNAL_COMPACT_AT: u64 = 4 * 1024 * 1024;
const PERSISTENT: u8 = 1;

/// A record read back for delivery.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub seq: u64,
    pub persistent: bool,
    pub payload: Bytes,
}

/// What a reopened log holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    /// Live persistent records, all of which are to be read back in order.
    pub messages: u64,
    /// The sequence number to use for the next append.
    pub next_seq: u64,
    /// The highest sequence number that was ever handed to a consumer.
    pub delivered: Option<u64>,
}

struct Segment {
    first_seq: u64,
    last_seq: u64,
    /// Records not yet dead.
    live: u64,
    /// Seqs of persistent records; kept only for the active segment (for its index).
    persistent: Vec<u64>,
}

struct Cursor {
    segment_first: u64,
    offset: u64,
    /// The segment's length when last looked at; looked at again only on reaching it, so
    /// reading does not cost a syscall per record.
    len: u64,
    reader: BufReader<File>,
}

struct Inner {
    dir: PathBuf,
    durable: bool,
    segment_max: u64,
    segments: Vec<Segment>,
    writer: Option<BufWriter<File>>,
    active_file: Option<Arc<File>>,
    active_size: u64,
    journal: Journal,
    dead: RangeSet,
    delivered: Option<u64>,
    delivered_written: Option<u64>,
    /// Files of sealed segments and indexes awaiting their fsync.
    unsynced: Vec<Arc<File>>,
    needs_sync: bool,
    registered: bool,
    /// Transient records below this were written before the last restart: dead.
    recovery_boundary: u64,
    cursor: Option<Cursor>,
    deleted: bool,
    me: Weak<Mutex<Inner>>,
}

/// A handle to one queue's log. Cheap to share; all methods lock briefly.
pub struct QueueLog {
    inner: Arc<Mutex<Inner>>,
    syncer: Arc<Syncer>,
}

struct FlushHandle(Arc<Mutex<Inner>>);

impl Flush for FlushHandle {
    fn flush_for_sync(&self) -> io::Result<Vec<Arc<File>>> {
        let mut inner = self.0.lock();
        inner.registered = false;
        if inner.deleted {
            return Ok(Vec::new());
        }
        if let Err(e) = inner.flush_buffers() {
            warn!(dir = %inner.dir.display(), error = %e, "flushing a queue log failed");
            // What stayed buffered goes out with the round after the next append (the log
            // registers again then); retrying now would spin while the disk is full.
            return Err(e);
        }
        if !inner.durable || !inner.needs_sync {
            inner.unsynced.clear();
            return Ok(Vec::new());
        }
        inner.needs_sync = false;
        // The journal is not fsynced: it only ever makes messages come back (at-least-once),
        // never go missing, if a power cut takes its tail.
        let mut files = std::mem::take(&mut inner.unsynced);
        files.extend(inner.active_file.clone());
        Ok(files)
    }
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn idx_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.idx"))
}

fn decode_header(body: &[u8]) -> Option<(u64, bool)> {
    let seq = u64::from_be_bytes(body.get(0..8)?.try_into().ok()?);
    let flags = *body.get(8)?;
    Some((seq, flags & PERSISTENT != 0))
}

/// What a full scan of a segment finds.
struct Scan {
    /// (seq, persistent) of every valid record.
    records: Vec<(u64, bool)>,
    /// Length of the valid prefix.
    valid_bytes: u64,
    /// Whether bytes after the valid prefix form no whole record (a torn write).
    torn: bool,
}

/// Scans a whole segment.
fn scan_segment(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut records = Vec::new();
    let mut good = 0u64;
    loop {
        match read_record(&mut reader, len - good)? {
            ReadOutcome::Record(body) => {
                if let Some(h) = decode_header(&body) {
                    records.push(h);
                }
                good += (HEADER + body.len()) as u64;
            }
            ReadOutcome::Corrupt { len } => {
                warn!(path = %path.display(), offset = good, "corrupt record skipped");
                good += (HEADER + len) as u64;
            }
            ReadOutcome::End => {
                return Ok(Scan {
                    records,
                    valid_bytes: good,
                    torn: false,
                })
            }
            ReadOutcome::Torn => {
                return Ok(Scan {
                    records,
                    valid_bytes: good,
                    torn: true,
                })
            }
        }
    }
}

fn write_index(dir: &Path, seg: &Segment) -> io::Result<File> {
    let mut body = Vec::with_capacity(16 + seg.persistent.len() * 8);
    body.extend_from_slice(&seg.last_seq.to_be_bytes());
    body.extend_from_slice(&(seg.persistent.len() as u64).to_be_bytes());
    for s in &seg.persistent {
        body.extend_from_slice(&s.to_be_bytes());
    }
    let mut out = BufWriter::new(File::create(idx_path(dir, seg.first_seq))?);
    write_record(&mut out, &[&body])?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())
}

/// Reads a sealed segment's index: (last seq, persistent seqs).
fn read_index(dir: &Path, first: u64) -> Option<(u64, Vec<u64>)> {
    let mut file = File::open(idx_path(dir, first)).ok()?;
    let len = file.metadata().ok()?.len();
    let ReadOutcome::Record(body) = read_record(&mut file, len).ok()? else {
        return None;
    };
    let last = u64::from_be_bytes(body.get(0..8)?.try_into().ok()?);
    let n = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?) as usize;
    if body.len() != 16 + n * 8 {
        return None;
    }
    let seqs = body[16..]
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Some((last, seqs))
}

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
        let (journal, replayed) = Journal::open(&dir.join("journal"))?;
        let mut firsts: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();

        let dead = replayed.dead;
        let mut segments = Vec::new();
        let mut next_seq = 0u64;
        let mut messages = 0u64;
        let last = firsts.last().copied();
        let mut active_size = 0;
        for first in firsts {
            let is_last = Some(first) == last;
            let (last_seq, persistent) = match (is_last, read_index(dir, first)) {
                (false, Some(index)) => index,
                _ => {
                    let path = seg_path(dir, first);
                    let Scan {
                        records,
                        valid_bytes: good,
                        torn,
                    } = scan_segment(&path)?;
                    if torn {
                        warn!(path = %path.display(), valid_bytes = good, "torn record at the end of a segment truncated");
                        OpenOptions::new().write(true).open(&path)?.set_len(good)?;
                    }
                    if is_last {
                        active_size = good;
                    }
                    let last_seq = records.iter().map(|r| r.0).max().unwrap_or(first);
                    let persistent: Vec<u64> =
                        records.iter().filter(|r| r.1).map(|r| r.0).collect();
                    (last_seq, persistent)
                }
            };
            next_seq = next_seq.max(last_seq + 1);
            let live = persistent.iter().filter(|s| !dead.contains(**s)).count() as u64;
            messages += live;
            if live == 0 && !is_last {
                let _ = fs::remove_file(seg_path(dir, first));
                let _ = fs::remove_file(idx_path(dir, first));
                continue;
            }
            let mut seg = Segment {
                first_seq: first,
                last_seq,
                live,
                persistent,
            };
            if !is_last {
                // A sealed segment whose index was lost (a crash right after sealing) gets it back.
                if read_index(dir, first).is_none() {
                    write_index(dir, &seg)?;
                }
                seg.persistent = Vec::new();
            }
            segments.push(seg);
        }
        // A purge may have removed every segment; the journal still knows how far seqs went.
        if let Some((_, end)) = dead.iter().last() {
            next_seq = next_seq.max(end);
        }
        let (writer, active_file) = match segments.last() {
            Some(seg) if active_size < segment_max && Some(seg.first_seq) == last => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(seg_path(dir, seg.first_seq))?;
                let shared = Arc::new(file.try_clone()?);
                (
                    Some(BufWriter::with_capacity(64 * 1024, file)),
                    Some(shared),
                )
            }
            _ => (None, None),
        };
        if messages > 0 {
            info!(dir = %dir.display(), messages, segments = segments.len(), "recovered queue log");
        }
        let recovered = Recovered {
            messages,
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
                journal,
                dead,
                delivered: replayed.delivered,
                delivered_written: replayed.delivered,
                unsynced: Vec::new(),
                needs_sync: false,
                registered: false,
                recovery_boundary: next_seq,
                cursor: None,
                deleted: false,
                me: me.clone(),
            })
        });
        Ok((QueueLog { inner, syncer }, recovered))
    }

    /// Appends a record. Returns the group-commit ticket for persistent records of a durable
    /// log (0: nothing to wait for).
    pub fn append(&self, seq: u64, persistent: bool, payload: &[&[u8]]) -> io::Result<u64> {
        let mut inner = self.inner.lock();
        inner.append(seq, persistent, payload)?;
        let must_sync = persistent && inner.durable;
        if must_sync {
            inner.needs_sync = true;
        }
        self.register(&mut inner);
        Ok(if must_sync { self.syncer.ticket() } else { 0 })
    }

    fn register(&self, inner: &mut Inner) {
        if !inner.registered {
            inner.registered = true;
            if let Some(me) = inner.me.upgrade() {
                self.syncer.mark_dirty(Arc::new(FlushHandle(me)));
            }
        }
    }

    /// Marks records dead (acked, rejected, dropped); frees segments that become empty.
    /// The journal entry is written through at once, so a crash right after an ack does not
    /// bring the message back.
    pub fn kill(&self, seqs: impl IntoIterator<Item = u64>) -> io::Result<()> {
        let mut inner = self.inner.lock();
        let mut run: Option<(u64, u64)> = None;
        for seq in seqs {
            inner.kill_one(seq);
            run = match run {
                Some((s, e)) if e == seq => Some((s, seq + 1)),
                Some((s, e)) => {
                    inner.journal.append_dead(s, e)?;
                    Some((seq, seq + 1))
                }
                None => Some((seq, seq + 1)),
            };
        }
        if let Some((s, e)) = run {
            inner.journal.append_dead(s, e)?;
        }
        inner.free_drained_active()?;
        inner.write_delivered()?;
        inner.journal.flush()?;
        inner.maybe_compact()?;
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

impl Inner {
    fn append(&mut self, seq: u64, persistent: bool, payload: &[&[u8]]) -> io::Result<()> {
        if self.writer.is_none() || self.active_size >= self.segment_max {
            self.roll(seq)?;
        }
        let seq_bytes = seq.to_be_bytes();
        let flags = [if persistent { PERSISTENT } else { 0 }];
        let mut parts: Vec<&[u8]> = Vec::with_capacity(2 + payload.len());
        parts.push(&seq_bytes);
        parts.push(&flags);
        parts.extend_from_slice(payload);
        let writer = self.writer.as_mut().expect("rolled above");
        self.active_size += write_record(writer, &parts)? as u64;
        let seg = self.segments.last_mut().expect("rolled above");
        seg.last_seq = seq;
        seg.live += 1;
        if persistent {
            seg.persistent.push(seq);
        }
        Ok(())
    }

    /// Seals the active segment (its index goes next to it) and starts a new one at `first`.
    fn roll(&mut self, first: u64) -> io::Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()?;
            if let Some(f) = self.active_file.take() {
                self.unsynced.push(f);
            }
            if let Some(seg) = self.segments.last_mut() {
                let index = write_index(&self.dir, seg)?;
                self.unsynced.push(Arc::new(index));
                seg.persistent = Vec::new();
            }
            self.needs_sync = true;
            self.free_empty_segments(false)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.dir, first))?;
        self.active_file = Some(Arc::new(file.try_clone()?));
        self.writer = Some(BufWriter::with_capacity(64 * 1024, file));
        self.active_size = 0;
        self.segments.push(Segment {
            first_seq: first,
            last_seq: first,
            live: 0,
            persistent: Vec::new(),
        });
        Ok(())
    }

    fn flush_buffers(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
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

    fn kill_one(&mut self, seq: u64) {
        if self.dead.contains(seq) {
            return;
        }
        self.dead.insert(seq);
        if let Some(i) = self.segment_of(seq) {
            let seg = &mut self.segments[i];
            seg.live = seg.live.saturating_sub(1);
            if seg.live == 0 && i + 1 < self.segments.len() {
                // Sealed and fully dead: the ack path frees it (never fails when the active
                // segment is left alone).
                let _ = self.free_empty_segments(false);
            }
        }
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

    /// Deletes sealed segments with no live records: space comes back as acks arrive.
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
        let dir = self.dir.clone();
        let cursor_first = self.cursor.as_ref().map(|c| c.segment_first);
        let mut drop_cursor = false;
        self.segments.retain(|s| {
            let is_active = s.first_seq == active_first;
            if s.live > 0 || (is_active && !(include_active && active_live == 0)) {
                return true;
            }
            let _ = fs::remove_file(seg_path(&dir, s.first_seq));
            let _ = fs::remove_file(idx_path(&dir, s.first_seq));
            drop_cursor |= cursor_first == Some(s.first_seq);
            false
        });
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
            let records = scan_segment(&seg_path(&self.dir, first))?.records;
            let boundary = self.recovery_boundary;
            let live = records
                .iter()
                .filter(|(s, p)| !self.dead.contains(*s) && (*p || *s >= boundary))
                .count() as u64;
            self.segments[i].live = live;
        }
        self.free_empty_segments(true)
    }

    fn maybe_compact(&mut self) -> io::Result<()> {
        if self.journal.size < JOURNAL_COMPACT_AT {
            return Ok(());
        }
        if let Some(first) = self.segments.first().map(|s| s.first_seq) {
            if first > 0 {
                self.dead.insert_range(0, first);
            }
        }
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
        Ok(())
    }

    fn read(&mut self, from: u64, max: usize, max_bytes: usize) -> io::Result<Vec<LogRecord>> {
        let mut out = Vec::new();
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
            let seg_first = cursor.segment_first;
            match read_record(&mut cursor.reader, cursor.len.saturating_sub(cursor.offset))? {
                ReadOutcome::Record(body) => {
                    cursor.offset += (HEADER + body.len()) as u64;
                    let Some((seq, persistent)) = decode_header(&body) else {
                        continue;
                    };
                    if seq < from
                        || self.dead.contains(seq)
                        || (!persistent && seq < self.recovery_boundary)
                    {
                        continue;
                    }
                    bytes += body.len();
                    let payload = Bytes::from(body).slice(9..);
                    out.push(LogRecord {
                        seq,
                        persistent,
                        payload,
                    });
                }
                ReadOutcome::Corrupt { len } => {
                    let path = seg_path(&self.dir, seg_first);
                    warn!(path = %path.display(), offset = cursor.offset, "corrupt record skipped");
                    cursor.offset += (HEADER + len) as u64;
                }
                ReadOutcome::End | ReadOutcome::Torn => {
                    // The active segment may have grown since we looked.
                    let len = cursor.reader.get_ref().metadata()?.len();
                    if len > cursor.len {
                        cursor.len = len;
                        continue;
                    }
                    // The end of this segment: move on, unless it is the one being written.
                    let next = self
                        .segments
                        .iter()
                        .map(|s| s.first_seq)
                        .find(|&f| f > seg_first);
                    match next {
                        Some(next_first) => {
                            self.cursor = None;
                            if !self.open_cursor_at(next_first)? {
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

    /// Positions the cursor at the segment holding `from` (or the first after it).
    fn open_cursor(&mut self, from: u64) -> io::Result<bool> {
        let first = match self.segment_of(from) {
            Some(i) => self.segments[i].first_seq,
            None => match self.segments.first() {
                Some(s) => s.first_seq,
                None => return Ok(false),
            },
        };
        self.open_cursor_at(first)
    }

    fn open_cursor_at(&mut self, first: u64) -> io::Result<bool> {
        let file = match File::open(seg_path(&self.dir, first)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        reader.seek(SeekFrom::Start(0))?;
        self.cursor = Some(Cursor {
            segment_first: first,
            offset: 0,
            len,
            reader,
        });
        Ok(true)
    }
}
