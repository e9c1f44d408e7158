//! Time, for everything in the broker that depends on it: message TTLs, queue expiry, consumer
//! timeouts, delayed messages. One clock and one timer facility, both injected, so that tests
//! move time by hand instead of sleeping, and production code never calls `now()` on its own.
//!
//! Broker time is milliseconds since the Unix epoch: expiry times are stored with messages and
//! must mean the same thing after a restart, which a monotonic clock cannot promise.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

/// The machine's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

/// A clock that moves only when told to (tests).
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start: Millis) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::Acquire)
    }
}

type Action = Box<dyn FnOnce() + Send>;

/// A scheduled action, for cancelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

#[derive(Default)]
struct Schedule {
    /// (deadline, id), earliest first. Cancelled ids stay here until they come due; their
    /// actions are gone from `actions`, so they fire as nothing.
    due: BinaryHeap<Reverse<(Millis, u64)>>,
    actions: HashMap<u64, Action>,
    next_id: u64,
}

/// The broker's timers: actions that run once their deadline on the broker clock has passed.
/// Whoever drives them calls [`Timers::fire_due`]: the task of [`Timers::run`] in the server,
/// a test with a [`ManualClock`] directly.
pub struct Timers {
    clock: Arc<dyn Clock>,
    schedule: Mutex<Schedule>,
    /// Woken when a deadline earlier than any before is scheduled.
    earlier: Notify,
}

impl Timers {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Timers> {
        Arc::new(Timers {
            clock,
            schedule: Mutex::new(Schedule::default()),
            earlier: Notify::new(),
        })
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Runs `action` once the clock reaches `deadline` (at the next firing if it already has).
    pub fn schedule(&self, deadline: Millis, action: impl FnOnce() + Send + 'static) -> TimerId {
        let mut s = self.schedule.lock();
        let id = s.next_id;
        s.next_id += 1;
        let earliest = s.due.peek().is_none_or(|Reverse((d, _))| deadline < *d);
        s.due.push(Reverse((deadline, id)));
        s.actions.insert(id, Box::new(action));
        drop(s);
        if earliest {
            self.earlier.notify_one();
        }
        TimerId(id)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel(&self, id: TimerId) -> bool {
        self.schedule.lock().actions.remove(&id.0).is_some()
    }

    /// Runs every action whose deadline has passed, in deadline order, outside the lock (an
    /// action may schedule more). Returns how many ran.
    pub fn fire_due(&self) -> usize {
        let now = self.clock.now();
        let mut ran = 0;
        loop {
            let action = {
                let mut s = self.schedule.lock();
                match s.due.peek() {
                    Some(Reverse((deadline, _))) if *deadline <= now => {
                        let Reverse((_, id)) = s.due.pop().expect("peeked");
                        s.actions.remove(&id)
                    }
                    _ => return ran,
                }
            };
            if let Some(action) = action {
                action();
                ran += 1;
            }
        }
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.schedule.lock().due.peek().map(|Reverse((d, _))| *d)
    }

    /// Drives the timers on the real clock until the runtime stops: sleeps until the earliest
    /// deadline (or until an earlier one is scheduled), then fires what is due.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.fire_due();
            let wait = self
                .next_deadline()
                .map(|d| Duration::from_millis(d.saturating_sub(self.now())));
            match wait {
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.earlier.notified() => {}
                    }
                }
                None => self.earlier.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn timers_fire_in_deadline_order_once_due_and_not_when_cancelled() {
        let clock = ManualClock::new(1_000);
        let timers = Timers::new(clock.clone());
        let log = Arc::new(Mutex::new(Vec::new()));
        for (deadline, name) in [(1_300, "c"), (1_100, "a"), (1_200, "b"), (1_250, "x")] {
            let log = log.clone();
            let id = timers.schedule(deadline, move || log.lock().push(name));
            if name == "x" {
                assert!(timers.cancel(id));
                assert!(!timers.cancel(id));
            }
        }
        assert_eq!(timers.fire_due(), 0);
        clock.advance(Duration::from_millis(250));
        assert_eq!(timers.fire_due(), 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(timers.fire_due(), 1);
        assert_eq!(*log.lock(), ["a", "b", "c"]);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn an_action_may_schedule_another() {
        let clock = ManualClock::new(0);
        let timers = Timers::new(clock.clone());
        let count = Arc::new(AtomicUsize::new(0));
        let (t, c) = (timers.clone(), count.clone());
        timers.schedule(10, move || {
            c.fetch_add(1, Ordering::Relaxed);
            let c = c.clone();
            t.schedule(5, move || {
                c.fetch_add(1, Ordering::Relaxed);
            });
        });
        clock.advance(Duration::from_millis(10));
        // The second one is already due when the first schedules it: both run in one firing.
        assert_eq!(timers.fire_due(), 2);
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_driver_wakes_for_an_earlier_deadline() {
        let timers = Timers::new(Arc::new(SystemClock));
        let fired = Arc::new(Notify::new());
        tokio::spawn(timers.clone().run());
        timers.schedule(timers.now() + 3_600_000, || {});
        // Let the driver go to sleep until the hour-long deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let f = fired.clone();
        timers.schedule(timers.now() + 10, move || f.notify_one());
        tokio::time::timeout(Duration::from_secs(5), fired.notified())
            .await
            .expect("the earlier timer fired without waiting for the hour-long one");
    }
}
