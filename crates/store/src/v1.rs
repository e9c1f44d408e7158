//! Reading queue directories written in format 1 (releases before file headers), for their
//! migration to format 2 (`queue_log::migrate_v1`).
//!
//! Format 1: segments `<first>.seg` of `len u32 | crc32 u32 | seq u64 | flags u8 | payload`
//! records (flags bit 0: persistent), `.idx` files (not needed here), and a `journal` of
//! 17-byte `kind u8 | a u64 | b u64` records (1: dead range [a, b), 2: delivered up to a).
//!
//! A migration writes the new log beside the old (`migration_dir`), fsyncs it, and swaps it in
//! with two renames (`swap_in`). `finish_interrupted_migration` makes sense of a crash at any
//! point: before the swap the old directory is untouched; between the renames the old one is
//! put back, and migrated again.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::ranges::RangeSet;
use crate::record::{read_record, ReadOutcome};

const PERSISTENT: u8 = 1;
const DEAD_RANGE: u8 = 1;
const DELIVERED: u8 = 2;

/// Where a migration writes the new log.
pub fn migration_dir(dir: &Path) -> PathBuf {
    dir.with_extension("v2-migrating")
}

/// Where the old log waits between the two renames of a swap.
fn old_dir(dir: &Path) -> PathBuf {
    dir.with_extension("v1-old")
}

/// Whether the file starts like format 1 (a big-endian record length, below 'A').
fn starts_v1(path: &Path) -> io::Result<bool> {
    let mut first = [0u8; 1];
    match File::open(path) {
        Ok(mut f) => Ok(f.read(&mut first)? == 1 && first[0] < b'A'),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `dir` holds a queue log in format 1.
pub fn is_v1(dir: &Path) -> io::Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    if starts_v1(&dir.join("journal"))? {
        return Ok(true);
    }
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "seg") && starts_v1(&path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Completes or undoes a migration a crash interrupted.
pub fn finish_interrupted_migration(dir: &Path) -> io::Result<()> {
    let (old, tmp) = (old_dir(dir), migration_dir(dir));
    if old.exists() {
        if dir.exists() {
            // Both renames happened; only the old copy's removal did not.
            fs::remove_dir_all(&old)?;
        } else {
            // Between the renames: the old log goes back and is migrated again.
            fs::rename(&old, dir)?;
        }
    }
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    Ok(())
}

/// Replaces `dir` with the migrated `tmp` (both complete and fsynced).
pub fn swap_in(dir: &Path, tmp: &Path) -> io::Result<()> {
    let old = old_dir(dir);
    let parent = dir.parent().unwrap_or(Path::new("."));
    fs::rename(dir, &old)?;
    fs::rename(tmp, dir)?;
    File::open(parent)?.sync_all()?;
    fs::remove_dir_all(&old)
}

/// A format 1 queue log, read-only.
pub struct OldLog {
    dir: PathBuf,
    firsts: Vec<u64>,
    dead: RangeSet,
    pub delivered: Option<u64>,
    /// How far seqs went (the next one to use).
    pub next_seq: u64,
}

impl OldLog {
    pub fn open(dir: &Path) -> io::Result<OldLog> {
        let mut dead = RangeSet::new();
        let mut delivered = None;
        let mut next_seq = 0;
        if let Ok(file) = File::open(dir.join("journal")) {
            let len = file.metadata()?.len();
            let mut reader = BufReader::new(file);
            let mut pos = 0u64;
            loop {
                match read_record(&mut reader, len - pos)? {
                    ReadOutcome::Record(body) => {
                        pos += 8 + body.len() as u64;
                        if body.len() != 17 {
                            continue;
                        }
                        let a = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
                        let b = u64::from_be_bytes(body[9..17].try_into().expect("8 bytes"));
                        match body[0] {
                            DEAD_RANGE => {
                                dead.insert_range(a, b);
                                next_seq = next_seq.max(b);
                            }
                            DELIVERED => delivered = delivered.max(Some(a)),
                            _ => {}
                        }
                    }
                    ReadOutcome::Corrupt { len } => pos += 8 + len as u64,
                    ReadOutcome::End | ReadOutcome::Torn => break,
                }
            }
        }
        let firsts = crate::queue_log::segment_firsts(dir)?;
        let mut log = OldLog {
            dir: dir.to_path_buf(),
            firsts,
            dead,
            delivered,
            next_seq,
        };
        // The highest seq written also counts (dead or not).
        let mut highest = None;
        log.for_each_record(|seq, _, _| {
            highest = highest.max(Some(seq));
            Ok(())
        })?;
        if let Some(h) = highest {
            log.next_seq = log.next_seq.max(h + 1);
        }
        Ok(log)
    }

    fn for_each_record(
        &self,
        mut each: impl FnMut(u64, bool, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        for first in &self.firsts {
            let path = self.dir.join(format!("{first:020}.seg"));
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            let mut pos = 0u64;
            loop {
                match read_record(&mut reader, len - pos)? {
                    ReadOutcome::Record(body) => {
                        pos += 8 + body.len() as u64;
                        if body.len() < 9 {
                            continue;
                        }
                        let seq = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
                        each(seq, body[8] & PERSISTENT != 0, &body[9..])?;
                    }
                    ReadOutcome::Corrupt { len } => {
                        warn!(path = %path.display(), offset = pos, "corrupt record skipped");
                        pos += 8 + len as u64;
                    }
                    ReadOutcome::End | ReadOutcome::Torn => break,
                }
            }
        }
        Ok(())
    }

    /// Every live persistent record, in seq order: (seq, payload).
    pub fn for_each_live(
        &self,
        mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.for_each_record(|seq, persistent, payload| {
            if persistent && !self.dead.contains(seq) {
                each(seq, payload)
            } else {
                Ok(())
            }
        })
    }
}
