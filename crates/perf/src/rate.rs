//! Pacing a producer to a fixed rate.
//!
//! The pacer keeps the time the next message is due. A producer asks how many messages are
//! due now, sends that many as one batch, and otherwise sleeps until the next one is due. If
//! it falls behind (a stall, a slow broker), it catches up by at most `max_burst` messages at a
//! time and forgives debt older than that, so a stall is not followed by a flood.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Pacer {
    /// Nanoseconds between messages.
    interval: f64,
    /// When the next message is due, in nanoseconds since the run's start.
    next_due: f64,
    max_burst: u64,
}

impl Pacer {
    /// `rate` messages per second (must be > 0).
    pub fn new(rate: f64) -> Pacer {
        debug_assert!(rate > 0.0);
        Pacer {
            interval: 1e9 / rate,
            next_due: 0.0,
            // 10 ms worth of messages, and at least one.
            max_burst: ((rate / 100.0) as u64).max(1),
        }
    }

    /// How many messages may be sent at `now` (time since the run's start); counts them as sent.
    pub fn take(&mut self, now: Duration, want: u64) -> u64 {
        let now = now.as_nanos() as f64;
        if now < self.next_due || want == 0 {
            return 0;
        }
        let due = ((now - self.next_due) / self.interval) as u64 + 1;
        let n = due.min(self.max_burst).min(want);
        self.next_due += n as f64 * self.interval;
        if now - self.next_due > self.max_burst as f64 * self.interval {
            // Too far behind to catch up smoothly: forget the debt and resume the pace.
            self.next_due = now + self.interval;
        }
        n
    }

    /// When the next message is due, as time since the run's start.
    pub fn next_due(&self) -> Duration {
        Duration::from_nanos(self.next_due as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn paces_evenly() {
        let mut p = Pacer::new(1000.0);
        assert_eq!(p.take(ms(0), 100), 1);
        assert_eq!(p.take(ms(0), 100), 0);
        assert_eq!(p.next_due(), ms(1));
        assert_eq!(p.take(ms(1), 100), 1);
        // 3.5 ms later: messages due at 2 and 3 ms (and 4 ms is not yet due).
        assert_eq!(p.take(Duration::from_micros(3500), 100), 2);
        assert_eq!(p.next_due(), ms(4));
    }

    #[test]
    fn sends_the_rate_over_a_second() {
        let mut p = Pacer::new(5000.0);
        let mut sent = 0;
        // Wake up every 3 ms, as a coarse timer would.
        for t in (0..1000).step_by(3) {
            sent += p.take(ms(t), u64::MAX);
        }
        assert!((4990..=5000).contains(&sent), "{sent}");
    }

    #[test]
    fn caps_bursts_and_forgives_old_debt() {
        let mut p = Pacer::new(1000.0);
        assert_eq!(p.take(ms(0), 100), 1);
        // A 1 s stall: at most max_burst (10 ms worth, so 10) now, not 1000.
        assert_eq!(p.take(ms(1000), 1000), 10);
        // The debt is gone: from here on, the normal pace.
        assert_eq!(p.take(ms(1000), 1000), 0);
        assert_eq!(p.take(ms(1001), 1000), 1);
    }

    #[test]
    fn respects_what_the_caller_wants() {
        let mut p = Pacer::new(1_000_000.0);
        assert_eq!(p.take(ms(5), 3), 3);
        assert_eq!(p.take(ms(5), 0), 0);
    }

    #[test]
    fn slow_rates_work() {
        let mut p = Pacer::new(0.5);
        assert_eq!(p.take(ms(0), 10), 1);
        assert_eq!(p.take(ms(1999), 10), 0);
        assert_eq!(p.take(ms(2000), 10), 1);
    }
}
