//! Group commit: one thread flushes every log that was written to, fsyncs what must be
//! durable, and then announces the epoch that is now on disk.
//!
//! A writer takes its ticket (the current epoch) after writing, under its log's lock, and the
//! syncer bumps the epoch while taking the dirty list. A write with ticket `e` is therefore
//! flushed by round `e` or an earlier one. A write can get a ticket one ahead of the round that
//! flushes it (its log was already in that round's batch); so the syncer keeps going while
//! the highest ticket handed out is ahead of what it announced, or that writer would wait for
//! a round nothing else triggers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;
use tracing::error;

use crate::fault;

/// Something the syncer flushes: returns the files to fsync, or the error that kept its
/// buffered writes from reaching them (which fails the round, as a failed fsync does).
pub trait Flush: Send + Sync {
    fn flush_for_sync(&self) -> std::io::Result<Vec<Arc<std::fs::File>>>;
}

#[derive(Default)]
struct State {
    dirty: Vec<Arc<dyn Flush>>,
    stop: bool,
}

pub struct Syncer {
    state: Mutex<State>,
    wake: Condvar,
    epoch: AtomicU64,
    /// The highest ticket handed out.
    highest_ticket: AtomicU64,
    durable: watch::Sender<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Rounds whose fsync failed. Rare, so a short list; never cleared, since a publish that
    /// waited on such a round may ask about it at any later time.
    failed_rounds: Mutex<Vec<u64>>,
    /// Whether `failed_rounds` is non-empty, so that confirms need no lock in the usual case.
    ever_failed: std::sync::atomic::AtomicBool,
    /// Set by a failed fsync until `take_fault` reads it (the disk alarm's cue).
    fault: std::sync::atomic::AtomicBool,
}

impl Syncer {
    pub fn start() -> Arc<Syncer> {
        let (durable, _) = watch::channel(0);
        let syncer = Arc::new(Syncer {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            epoch: AtomicU64::new(1),
            highest_ticket: AtomicU64::new(0),
            durable,
            thread: Mutex::new(None),
            failed_rounds: Mutex::new(Vec::new()),
            ever_failed: std::sync::atomic::AtomicBool::new(false),
            fault: std::sync::atomic::AtomicBool::new(false),
        });
        let worker = syncer.clone();
        let handle = std::thread::Builder::new()
            .name("warren-syncer".into())
            .spawn(move || worker.run())
            .expect("spawn the syncer thread");
        *syncer.thread.lock() = Some(handle);
        syncer
    }

    /// The ticket for a write just made (call under the log's lock, after the write and after
    /// marking the log dirty): the write is durable once `durable()` reaches it.
    pub(crate) fn ticket(&self) -> u64 {
        let t = self.epoch.load(Ordering::Acquire);
        self.highest_ticket.fetch_max(t, Ordering::AcqRel);
        t
    }

    /// Announces durable epochs.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    pub fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Whether a write with `ticket` may have been lost to a failed fsync, although its epoch
    /// was announced. Such a write was flushed by round `ticket` or `ticket - 1` (see the
    /// module comment), so a failure of either means it is not known to be on disk.
    pub fn lost(&self, ticket: u64) -> bool {
        if !self.ever_failed.load(Ordering::Acquire) {
            return false;
        }
        self.failed_rounds
            .lock()
            .iter()
            .any(|&round| round == ticket || round + 1 == ticket)
    }

    /// Whether an fsync failed since the last call.
    pub fn take_fault(&self) -> bool {
        self.fault.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_dirty(&self, log: Arc<dyn Flush>) {
        let mut st = self.state.lock();
        st.dirty.push(log);
        self.wake.notify_one();
    }

    fn run(&self) {
        let mut announced = 0u64;
        loop {
            let (batch, epoch) = {
                let mut st = self.state.lock();
                let behind =
                    |announced: u64| self.highest_ticket.load(Ordering::Acquire) > announced;
                while st.dirty.is_empty() && !behind(announced) && !st.stop {
                    self.wake.wait(&mut st);
                }
                if st.dirty.is_empty() && !behind(announced) && st.stop {
                    return;
                }
                let epoch = self.epoch.fetch_add(1, Ordering::AcqRel);
                (std::mem::take(&mut st.dirty), epoch)
            };
            let mut files = Vec::new();
            let mut failed = false;
            for log in &batch {
                match log.flush_for_sync() {
                    Ok(more) => files.extend(more),
                    Err(e) => {
                        // Buffered records did not reach their file (a full disk, typically):
                        // the publishes waiting on this round are not stored.
                        error!(error = %e, round = epoch, "flushing a log failed; the round's publishes will be nacked");
                        failed = true;
                    }
                }
            }
            for f in &files {
                if let Err(e) = fault::point(fault::FSYNC).and_then(|()| f.sync_data()) {
                    // After a failed fsync the kernel may have dropped the dirty pages: what
                    // this round flushed is not on disk. Its publishes are nacked, not
                    // confirmed; later rounds that succeed are durable again.
                    error!(error = %e, round = epoch, "fsync failed; the round's publishes will be nacked");
                    failed = true;
                }
            }
            drop(files);
            if failed {
                self.failed_rounds.lock().push(epoch);
                self.ever_failed.store(true, Ordering::Release);
                self.fault.store(true, Ordering::Release);
            }
            announced = epoch;
            self.durable.send_replace(epoch);
        }
    }

    /// Flushes what is pending and stops the thread.
    pub fn shutdown(&self) {
        self.state.lock().stop = true;
        self.wake.notify_one();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}
