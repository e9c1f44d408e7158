//! Reads off the callers' threads: a queue that runs low on messages in RAM asks for the next
//! stretch of its log here and goes on; a dedicated thread reads it (holding only the log's
//! lock) and hands the records to a callback. So disk reads happen neither under a queue's
//! lock nor on the async runtime's workers.

use std::io;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tracing::warn;

use crate::segment::LogRecord;
use crate::QueueLog;

type Done = Box<dyn FnOnce(io::Result<Vec<LogRecord>>) + Send>;

struct Job {
    log: Arc<QueueLog>,
    from: u64,
    max: usize,
    max_bytes: usize,
    done: Done,
}

/// The read thread. Jobs run in the order they were asked for.
pub struct Reader {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Reader {
    pub fn start() -> Arc<Reader> {
        let (tx, rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("warren-reader".into())
            .spawn(move || {
                for job in rx {
                    let records = job.log.read(job.from, job.max, job.max_bytes);
                    (job.done)(records);
                }
            })
            .expect("spawning the reader thread");
        Arc::new(Reader {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Reads live records of `log` with seq >= `from` (as `QueueLog::read`) on the read thread
    /// and calls `done` with them there. After `shutdown`, `done` gets an error at once.
    pub fn read(
        &self,
        log: Arc<QueueLog>,
        from: u64,
        max: usize,
        max_bytes: usize,
        done: impl FnOnce(io::Result<Vec<LogRecord>>) + Send + 'static,
    ) {
        let job = Job {
            log,
            from,
            max,
            max_bytes,
            done: Box::new(done),
        };
        let refused = match self.jobs.lock().as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            (job.done)(Err(io::Error::other("the reader has stopped")));
        }
    }

    /// Finishes the jobs already asked for and stops the thread.
    pub fn shutdown(&self) {
        self.jobs.lock().take();
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                warn!("the reader thread panicked");
            }
        }
    }
}
