//! Fault injection for tests: the places where the disk can fail, by name. A test built with
//! the `failpoints` feature makes one of them return an I/O error (through the `fail` crate:
//! `fail::cfg(fault::FSYNC, "return")`); in every other build a point compiles to nothing.
//!
//! Real disks fail in ways a test cannot provoke on demand (an fsync that reports EIO, an
//! unlink that fails): these points let the tests show what the broker does then.

use std::io;

/// Writing buffered records to a segment file.
pub const SEGMENT_WRITE: &str = "store.segment_write";
/// An fsync of the group commit (segment, index or journal files).
pub const FSYNC: &str = "store.fsync";
/// Writing a queue journal (dead ranges, delivery progress).
pub const JOURNAL_WRITE: &str = "store.journal_write";
/// Appending a record to the definitions log.
pub const DEFINITIONS_WRITE: &str = "store.definitions_write";
/// Compacting the definitions log, after the new file is written and before it replaces the
/// old one (where a crash leaves both on disk).
pub const DEFINITIONS_COMPACT: &str = "store.definitions_compact";
/// Removing the files of a drained segment.
pub const SEGMENT_REMOVE: &str = "store.segment_remove";

/// Fails with an I/O error when a test enabled the point `name`.
#[inline(always)]
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub(crate) fn point(name: &str) -> io::Result<()> {
    fail::fail_point!(name, |_| Err(io::Error::other(format!(
        "injected fault at {name}"
    ))));
    Ok(())
}
