//! A queue's journal: which sequence numbers are dead (acked, rejected, purged) and how far
//! delivery got (so that messages delivered before a restart come back flagged redelivered).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::ranges::RangeSet;
use crate::record::{read_record, write_record, ReadOutcome};

const DEAD_RANGE: u8 = 1;
const DELIVERED: u8 = 2;

pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    pub size: u64,
}

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
        let len = file.metadata()?.len();
        let mut reader = BufReader::new(&mut file);
        let mut replayed = Replayed {
            dead: RangeSet::new(),
            delivered: None,
        };
        let mut good = 0u64;
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
                file: BufWriter::new(file),
                size: good,
            },
            replayed,
        ))
    }

    fn append(&mut self, kind: u8, a: u64, b: u64) -> io::Result<()> {
        let mut body = [0u8; 17];
        body[0] = kind;
        body[1..9].copy_from_slice(&a.to_be_bytes());
        body[9..17].copy_from_slice(&b.to_be_bytes());
        self.size += write_record(&mut self.file, &[&body])? as u64;
        Ok(())
    }

    pub fn append_dead(&mut self, start: u64, end: u64) -> io::Result<()> {
        self.append(DEAD_RANGE, start, end)
    }

    pub fn append_delivered(&mut self, seq: u64) -> io::Result<()> {
        self.append(DELIVERED, seq, 0)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Replaces the journal with the compact form of what it says (write, fsync, rename).
    pub fn rewrite(&mut self, dead: &RangeSet, delivered: Option<u64>) -> io::Result<()> {
        self.file.flush()?;
        let tmp = self.path.with_extension("tmp");
        let mut size = 0u64;
        {
            let mut out = BufWriter::new(File::create(&tmp)?);
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
        self.file = BufWriter::new(file);
        self.size = size;
        Ok(())
    }
}
