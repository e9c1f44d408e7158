//! Reserved space: a file of zeros kept in the data directory and given up when a write finds
//! the disk full. Draining a full disk needs a few bytes of its own (the journal entries that
//! record acks, the definition deletes); without a reserve those writes fail too, nothing is
//! freed, and a broker on a full disk could never recover by itself.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{info, warn};

/// How much is kept in reserve: room for tens of thousands of journal entries.
pub const RESERVED_BYTES: u64 = 1024 * 1024;

pub struct ReservedSpace {
    path: PathBuf,
    held: AtomicBool,
}

impl ReservedSpace {
    /// Takes the reserve in `data_dir`, creating it if the disk has room to spare.
    pub fn open(data_dir: &Path) -> ReservedSpace {
        let path = data_dir.join("reserved-space");
        let held = fs::metadata(&path).is_ok_and(|m| m.len() == RESERVED_BYTES);
        let reserve = ReservedSpace {
            path,
            held: AtomicBool::new(held),
        };
        if !held {
            reserve.restore();
        }
        reserve
    }

    /// Gives the reserve up (once): the disk is full and the space is needed now.
    pub fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            match fs::remove_file(&self.path) {
                Ok(()) => {
                    warn!(
                        bytes = RESERVED_BYTES,
                        "disk full: released the reserved space"
                    )
                }
                Err(e) => warn!(error = %e, "cannot release the reserved space"),
            }
        }
    }

    /// Takes the reserve again if it was given up and the disk has room for it (four times
    /// its size, so that taking it does not itself fill the disk).
    pub fn restore(&self) {
        if self.held.load(Ordering::Acquire) {
            return;
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if free_disk(dir).is_none_or(|free| free < 4 * RESERVED_BYTES) {
            return;
        }
        match write_zeros(&self.path, RESERVED_BYTES) {
            Ok(()) => {
                self.held.store(true, Ordering::Release);
                info!(
                    bytes = RESERVED_BYTES,
                    "reserved space for recovering from a full disk"
                );
            }
            Err(e) => {
                let _ = fs::remove_file(&self.path);
                warn!(error = %e, "cannot reserve space for recovering from a full disk");
            }
        }
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

/// Written out, not sparse: a sparse file would hold no space at all.
fn write_zeros(path: &Path, len: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    let chunk = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_disk(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_taken_released_and_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = ReservedSpace::open(dir.path());
        assert!(reserve.is_held());
        let file = dir.path().join("reserved-space");
        assert_eq!(fs::metadata(&file).unwrap().len(), RESERVED_BYTES);
        reserve.release();
        assert!(!file.exists() && !reserve.is_held());
        reserve.release(); // twice is harmless
        reserve.restore();
        assert!(reserve.is_held() && file.exists());
        assert!(ReservedSpace::open(dir.path()).is_held());
    }
}
