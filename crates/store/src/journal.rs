//! A queue's journal: which sequence numbers are dead (acked, rejected, purged) and how far
//! delivery got (so that messages delivered before a restart come back flagged redelivered).
//!
//! `header | record*`, each record `kind u8 | a u64 | b u64` in `record` framing.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::fault;
use crate::format::{self, FileKind, Version, FILE_HEADER};
use crate::ranges::RangeSet;
use crate::record::{read_record, write_record, ReadOutcome};

const DEAD_RANGE: u8 = 1;
const DELIVERED: u8 = 2;

pub struct Journal {
    path: PathBuf,
    /// None: the log does not outlive the process (a transient queue's, removed at every
    /// start), so what dies in it need not be written anywhere. Paging a transient queue then
    /// costs no journal write per ack.
    file: Option<BufWriter<File>>,
    pub size: u64,
}

#[derive(Default)]
pub struct Replayed {
    pub dead: RangeSet,
    pub delivered: Option<u64>,
}

impl Journal {
    pub fn open(path: &Path) -> io::Result<(Journal, Replayed)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut len = file.metadata()?.len();
        match format::read_header(&mut file, len, FileKind::Journal)? {
            Version::Current => {}
            Version::Empty => {
                file.set_len(0)?;
                format::write_header(&mut file, FileKind::Journal)?;
                len = FILE_HEADER as u64;
            }
            Version::V1 => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: format 1 journal (migrate the log first)",
                        path.display()
                    ),
                ))
            }
        }
        file.seek(SeekFrom::Start(FILE_HEADER as u64))?;
        let mut reader = BufReader::new(&mut file);
        let mut replayed = Replayed {
            dead: RangeSet::new(),
            delivered: None,
        };
        let mut good = FILE_HEADER as u64;
        loop {
            match read_record(&mut reader, len - good)? {
                ReadOutcome::Record(body) if body.len() == 17 => {
                    let a = u64::from_be_bytes(body[1..9].try_into().expect("8 bytes"));
                    let b = u64::from_be_bytes(body[9..17].try_into().expect("8 bytes"));
                    match body[0] {
                        DEAD_RANGE => replayed.dead.insert_range(a, b),
                        DELIVERED => replayed.delivered = replayed.delivered.max(Some(a)),
                        other => {
                            warn!(path = %path.display(), kind = other, "unknown journal record skipped")
                        }
                    }
                    good += 8 + 17;
                }
                ReadOutcome::Record(body) => {
                    warn!(path = %path.display(), len = body.len(), "malformed journal record skipped");
                    good += 8 + body.len() as u64;
                }
                ReadOutcome::Corrupt { len } => {
                    warn!(path = %path.display(), offset = good, "corrupt journal record skipped");
                    good += 8 + len as u64;
                }
                ReadOutcome::End => break,
                ReadOutcome::Torn => {
                    warn!(path = %path.display(), offset = good, "torn journal tail truncated");
                    file.set_len(good)?;
                    break;
                }
            }
        }
        file.seek(SeekFrom::End(0))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Some(BufWriter::new(file)),
                size: good,
            },
            replayed,
        ))
    }

    /// A journal that writes nothing, for a log that is thrown away at the next start.
    pub fn unwritten() -> Journal {
        Journal {
            path: PathBuf::new(),
            file: None,
            size: 0,
        }
    }

    fn append(&mut self, kind: u8, a: u64, b: u64) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut body = [0u8; 17];
        body[0] = kind;
        body[1..9].copy_from_slice(&a.to_be_bytes());
        body[9..17].copy_from_slice(&b.to_be_bytes());
        self.size += write_record(file, &[&body])? as u64;
        Ok(())
    }

    pub fn append_dead(&mut self, start: u64, end: u64) -> io::Result<()> {
        self.append(DEAD_RANGE, start, end)
    }

    pub fn append_delivered(&mut self, seq: u64) -> io::Result<()> {
        self.append(DELIVERED, seq, 0)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => fault::point(fault::JOURNAL_WRITE).and_then(|()| file.flush()),
            None => Ok(()),
        }
    }

    pub fn sync(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => {
                file.flush()?;
                file.get_ref().sync_all()
            }
            None => Ok(()),
        }
    }

    /// Replaces the journal with the compact form of what it says (write, fsync, rename).
    pub fn rewrite(&mut self, dead: &RangeSet, delivered: Option<u64>) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.flush()?;
        let tmp = self.path.with_extension("tmp");
        let mut size = FILE_HEADER as u64;
        {
            let mut out = BufWriter::new(File::create(&tmp)?);
            format::write_header(&mut out, FileKind::Journal)?;
            for (s, e) in dead.iter() {
                let mut body = [0u8; 17];
                body[0] = DEAD_RANGE;
                body[1..9].copy_from_slice(&s.to_be_bytes());
                body[9..17].copy_from_slice(&e.to_be_bytes());
                size += write_record(&mut out, &[&body])? as u64;
            }
            if let Some(d) = delivered {
                let mut body = [0u8; 17];
                body[0] = DELIVERED;
                body[1..9].copy_from_slice(&d.to_be_bytes());
                size += write_record(&mut out, &[&body])? as u64;
            }
            out.flush()?;
            out.get_ref().sync_data()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        self.file = Some(BufWriter::new(file));
        self.size = size;
        Ok(())
    }
}
