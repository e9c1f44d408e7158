//! Definitions (vhosts, users, permissions, durable exchanges, queues, bindings) as an
//! append-only log of key/value puts and deletes. Each change is fsynced before it is
//! acknowledged; on open the log is replayed and rewritten with only the live entries.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::record::{read_record, write_record, ReadOutcome};

const PUT: u8 = 1;
const DELETE: u8 = 2;

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
        for (k, v) in entries {
            write_record(&mut out, &[&encode(PUT, k, v)])?;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
    }
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

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DefinitionsLog {
    /// Opens the log at `path`, returning what it holds. The file is compacted on the way.
    pub fn open(path: &Path) -> io::Result<(DefinitionsLog, Entries)> {
        let mut entries = BTreeMap::new();
        let mut valid_len = 0u64;
        if let Ok(file) = File::open(path) {
            let len = file.metadata()?.len();
            let mut reader = BufReader::new(file);
            let mut pos = 0u64;
            loop {
                match read_record(&mut reader, len - pos)? {
                    ReadOutcome::Record(body) => {
                        pos += 8 + body.len() as u64;
                        match decode(&body) {
                            Some((PUT, k, v)) => {
                                entries.insert(k.to_vec(), v.to_vec());
                            }
                            Some((DELETE, k, _)) => {
                                entries.remove(k);
                            }
                            _ => {
                                warn!(path = %path.display(), offset = pos, "unreadable definitions record skipped")
                            }
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

    /// Appends a record and fsyncs it. A record that could not be written whole is cut off
    /// again, or every record after it would be unreadable at the next start.
    fn append(&mut self, body: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(body.len() + 8);
        write_record(&mut buf, &[body])?;
        let written = self
            .file
            .write_all(&buf)
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
