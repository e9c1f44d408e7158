//! Definitions (vhosts, users, permissions, durable exchanges, queues, bindings) as an
//! append-only log of key/value puts and deletes. Each change is fsynced before it is
//! acknowledged; on open the log is replayed and rewritten with only the live entries.
//!
//! A change of several entries (deleting a queue with its bindings) is one record, so it is
//! either replayed whole or, torn by a crash, not at all.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::fault;
use crate::format::{self, FileKind, Version, FILE_HEADER};
use crate::record::{read_record, write_record, ReadOutcome};

const PUT: u8 = 1;
const DELETE: u8 = 2;
/// A record holding several puts and deletes, each as `len u32 | PUT/DELETE body`.
const BATCH: u8 = 3;

/// One change to a definitions log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Delete { key: &'a [u8] },
}

impl Change<'_> {
    fn encode(&self) -> Vec<u8> {
        match *self {
            Change::Put { key, value } => encode(PUT, key, value),
            Change::Delete { key } => encode(DELETE, key, &[]),
        }
    }
}

/// The live entries of a definitions log, by key.
pub type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

pub struct DefinitionsLog {
    path: PathBuf,
    file: File,
    /// Bytes of whole records in the file: a failed append is cut back to this.
    len: u64,
}

/// Writes the live entries to a temporary file, fsyncs it, and renames it over the log.
fn compact(path: &Path, entries: &Entries) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut out = BufWriter::new(File::create(&tmp)?);
        format::write_header(&mut out, FileKind::Definitions)?;
        for (k, v) in entries {
            write_record(&mut out, &[&encode(PUT, k, v)])?;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    fault::point(fault::DEFINITIONS_COMPACT)?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn encode(op: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(5 + key.len() + value.len());
    body.push(op);
    body.extend_from_slice(&(key.len() as u32).to_be_bytes());
    body.extend_from_slice(key);
    body.extend_from_slice(value);
    body
}

fn decode(body: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let op = *body.first()?;
    let klen = u32::from_be_bytes(body.get(1..5)?.try_into().ok()?) as usize;
    let key = body.get(5..5 + klen)?;
    Some((op, key, &body[5 + klen..]))
}

fn encode_batch(changes: &[Change]) -> Vec<u8> {
    let mut body = vec![BATCH];
    for c in changes {
        let one = c.encode();
        body.extend_from_slice(&(one.len() as u32).to_be_bytes());
        body.extend_from_slice(&one);
    }
    body
}

/// Applies one record to `entries`; false if it cannot be read (nothing is applied then).
fn replay(body: &[u8], entries: &mut Entries) -> bool {
    if body.first() == Some(&BATCH) {
        let Some(parts) = batch_parts(&body[1..]) else {
            return false;
        };
        return parts.into_iter().all(|part| replay(part, entries));
    }
    match decode(body) {
        Some((PUT, k, v)) => {
            entries.insert(k.to_vec(), v.to_vec());
            true
        }
        Some((DELETE, k, _)) => {
            entries.remove(k);
            true
        }
        _ => false,
    }
}

/// The changes of a batch record, each checked to be a put or a delete before any is applied.
fn batch_parts(mut rest: &[u8]) -> Option<Vec<&[u8]>> {
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let part = rest.get(4..4 + len)?;
        if !matches!(decode(part), Some((PUT | DELETE, _, _))) {
            return None;
        }
        parts.push(part);
        rest = &rest[4 + len..];
    }
    Some(parts)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DefinitionsLog {
    /// Opens the log at `path`, returning what it holds. The file is compacted on the way.
    pub fn open(path: &Path) -> io::Result<(DefinitionsLog, Entries)> {
        let mut entries = BTreeMap::new();
        let mut valid_len = 0u64;
        if let Ok(mut file) = File::open(path) {
            let len = file.metadata()?.len();
            // Format 1 logs have no header; their records are read the same way, and the
            // compaction below rewrites them with one.
            let mut pos = match format::read_header(&mut file, len, FileKind::Definitions)? {
                Version::Current => FILE_HEADER as u64,
                Version::V1 | Version::Empty => 0,
            };
            file.seek(SeekFrom::Start(pos))?;
            let mut reader = BufReader::new(file);
            loop {
                match read_record(&mut reader, len - pos)? {
                    ReadOutcome::Record(body) => {
                        pos += 8 + body.len() as u64;
                        if !replay(&body, &mut entries) {
                            warn!(path = %path.display(), offset = pos, "unreadable definitions record skipped")
                        }
                    }
                    ReadOutcome::Corrupt { len } => {
                        warn!(path = %path.display(), offset = pos, "corrupt definitions record skipped");
                        pos += 8 + len as u64;
                    }
                    ReadOutcome::Torn => {
                        warn!(path = %path.display(), offset = pos, "torn definitions record at the end ignored");
                        break;
                    }
                    ReadOutcome::End => break,
                }
            }
            valid_len = pos;
        }
        // Rewrite with live entries only. On a full disk that cannot be done: the log is then
        // kept as it is (cut back to its last whole record) so that the broker still starts,
        // serves its queues, and lets consumers free the space.
        if let Err(e) = compact(path, &entries) {
            warn!(path = %path.display(), error = %e, "cannot compact the definitions log; keeping it as it is");
            let _ = fs::remove_file(path.with_extension("tmp"));
            if valid_len < fs::metadata(path).map_or(0, |m| m.len()) {
                OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .set_len(valid_len)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok((
            DefinitionsLog {
                path: path.to_path_buf(),
                file,
                len,
            },
            entries,
        ))
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.append(&encode(PUT, key, value))
    }

    pub fn delete(&mut self, key: &[u8]) -> io::Result<()> {
        self.append(&encode(DELETE, key, &[]))
    }

    /// Writes several changes as one record (fsynced): after a crash either all of them are
    /// replayed or none. No changes write nothing.
    pub fn commit(&mut self, changes: &[Change]) -> io::Result<()> {
        match changes {
            [] => Ok(()),
            [one] => self.append(&one.encode()),
            many => self.append(&encode_batch(many)),
        }
    }

    /// Appends a record and fsyncs it. A record that could not be written whole is cut off
    /// again, or every record after it would be unreadable at the next start.
    fn append(&mut self, body: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(body.len() + 8);
        write_record(&mut buf, &[body])?;
        let written = fault::point(fault::DEFINITIONS_WRITE)
            .and_then(|()| self.file.write_all(&buf))
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
