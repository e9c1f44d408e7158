//! Durable storage for Warren. It stores opaque records and knows nothing of AMQP:
//!
//! - [`QueueLog`]: one queue's messages as an append-only, segmented log of checksummed
//!   records, plus a journal of which records are dead (acked, dropped) and how far delivery got.
//!   Recovery reads segment indexes and the journal, not message bodies. Every file starts
//!   with a magic number and the format version (`format.rs`); directories of format 1 are
//!   migrated when opened (`v1.rs`).
//! - [`DefinitionsLog`]: an append-only key-value log of definitions, compacted on open.
//! - [`ReservedSpace`]: room kept back so that a full disk can be drained.
//! - [`fault`]: named places where tests make the disk fail.
//! - [`Syncer`]: group commit. One thread flushes and fsyncs every dirty log, then announces the
//!   epoch that is now durable; publisher confirms wait for it.

mod definitions;
pub mod fault;
mod format;
mod journal;
mod queue_log;
mod ranges;
mod record;
mod reserve;
mod segment;
mod syncer;
mod v1;

pub use definitions::{Change, DefinitionsLog, Entries};
pub use queue_log::{QueueLog, Recovered, SplitV1};
pub use ranges::RangeSet;
pub use reserve::{free_disk, ReservedSpace, RESERVED_BYTES};
pub use segment::{LogRecord, NewRecord, RecordMeta};
pub use syncer::Syncer;
