//! Group commit: one thread flushes every log that was written to, fsyncs what must be
//! durable, and then announces the epoch that is now on disk.
//!
//! A log joins the dirty list once per round (`mark_dirty`, under its own lock, after a
//! write), and the syncer bumps the epoch while taking that list, both under the syncer's
//! lock: a log registered while the epoch is `e` is flushed by round `e`, and so is every
//! write to it until that round flushes it (the log registers again after that). So a write's
//! ticket is exactly the round that carries it: it is durable once round `e` is announced,
//! and lost only if round `e` failed.

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

    /// Announces durable epochs.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    pub fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Whether a write with `ticket` may have been lost to a failed flush or fsync, although
    /// its epoch was announced: whether its round failed.
    pub fn lost(&self, ticket: u64) -> bool {
        self.ever_failed.load(Ordering::Acquire) && self.failed_rounds.lock().contains(&ticket)
    }

    /// Whether an fsync failed since the last call.
    pub fn take_fault(&self) -> bool {
        self.fault.swap(false, Ordering::AcqRel)
    }

    /// Puts a log in the next round (call under the log's lock, once until that round has
    /// flushed it). Returns that round: the ticket of every write to the log until then.
    pub(crate) fn mark_dirty(&self, log: Arc<dyn Flush>) -> u64 {
        let mut st = self.state.lock();
        st.dirty.push(log);
        self.wake.notify_one();
        // The epoch moves only under this lock, when a round takes the list.
        self.epoch.load(Ordering::Acquire)
    }

    /// The round the next registration would join (for a write with no log to register).
    pub(crate) fn next_round(&self) -> u64 {
        let _st = self.state.lock();
        self.epoch.load(Ordering::Acquire)
    }

    fn run(&self) {
        loop {
            let (batch, epoch) = {
                let mut st = self.state.lock();
                while st.dirty.is_empty() && !st.stop {
                    self.wake.wait(&mut st);
                }
                if st.dirty.is_empty() && st.stop {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::*;

    /// A log whose flush fails while `failing` is set (a full disk, say).
    struct Log {
        failing: AtomicBool,
    }

    impl Flush for Log {
        fn flush_for_sync(&self) -> std::io::Result<Vec<Arc<std::fs::File>>> {
            if self.failing.load(Ordering::Acquire) {
                Err(std::io::Error::other("no space left"))
            } else {
                Ok(Vec::new())
            }
        }
    }

    fn wait_durable(syncer: &Syncer, round: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while syncer.durable() < round {
            assert!(
                Instant::now() < deadline,
                "round {round} was never announced"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_failed_round_loses_its_own_writes_only() {
        let syncer = Syncer::start();
        let log = Arc::new(Log {
            failing: AtomicBool::new(true),
        });
        let bad = syncer.mark_dirty(log.clone());
        wait_durable(&syncer, bad);
        assert!(syncer.lost(bad));
        assert!(syncer.take_fault(), "the failure is the disk alarm's cue");

        log.failing.store(false, Ordering::Release);
        let good = syncer.mark_dirty(log.clone());
        assert_eq!(good, bad + 1, "nothing else ran in between");
        wait_durable(&syncer, good);
        assert!(
            !syncer.lost(good),
            "the round after a failed one is not lost"
        );
        assert!(!syncer.take_fault());
        syncer.shutdown();
    }
}
