//! What the run shares between tasks (counters, the clock, the stop signal) and what it
//! reports: per-second samples and the final summary.
//!
//! The hot loops only add to atomics once per batch and record latencies into their own
//! histogram under a lock they take once per socket read; the once-a-second reporter takes
//! each histogram's interval and resets it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

/// Latencies are recorded in nanoseconds, up to a minute, to 3 significant digits.
const LATENCY_MAX_NS: u64 = 60_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("valid histogram bounds")
}

pub type SharedHistogram = Arc<Mutex<Histogram<u64>>>;

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub received: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Totals {
        Totals {
            sent: self.sent.load(Relaxed),
            confirmed: self.confirmed.load(Relaxed),
            nacked: self.nacked.load(Relaxed),
            received: self.received.load(Relaxed),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub sent: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub received: u64,
}

/// State every task of a run shares.
pub struct Shared {
    /// The run's time origin: timestamps in bodies are nanoseconds since this.
    pub origin: Instant,
    pub counters: Counters,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    pub producers_done: AtomicUsize,
    pub failures: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            origin: Instant::now(),
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
            producers_done: AtomicUsize::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    #[inline]
    pub fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    pub fn request_stop(&self) {
        self.stopping.store(true, Relaxed);
        self.stop.send_replace(true);
    }

    /// Resolves once a stop has been requested.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// A task failed: remember why, and end the run.
    pub fn fail(&self, who: &str, error: impl std::fmt::Display) {
        let text = format!("{who}: {error}");
        eprintln!("warren perf: {text}");
        self.failures.lock().expect("not poisoned").push(text);
        self.request_stop();
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p75: us(h.value_at_quantile(0.75)),
            p95: us(h.value_at_quantile(0.95)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

/// One line of the per-second report.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the start, at the end of the interval.
    pub time: f64,
    pub sent_rate: f64,
    pub confirmed_rate: f64,
    pub received_rate: f64,
    pub latency_us: Option<Latency>,
}

impl Sample {
    pub fn between(
        time: Duration,
        span: Duration,
        before: Totals,
        after: Totals,
        latency: Option<Latency>,
    ) -> Sample {
        let secs = span.as_secs_f64().max(1e-9);
        let rate = |a: u64, b: u64| (b - a) as f64 / secs;
        Sample {
            time: time.as_secs_f64(),
            sent_rate: rate(before.sent, after.sent),
            confirmed_rate: rate(before.confirmed, after.confirmed),
            received_rate: rate(before.received, after.received),
            latency_us: latency,
        }
    }

    /// PerfTest's line: `time: 1.0s, sent: N msg/s, received: M msg/s, min/median/75th/95th/99th
    /// consumer latency: a/b/c/d/e µs`.
    pub fn line(&self, confirms: bool) -> String {
        let mut s = format!("time: {:.1}s, sent: {:.0} msg/s", self.time, self.sent_rate);
        if confirms {
            s += &format!(", confirmed: {:.0} msg/s", self.confirmed_rate);
        }
        s += &format!(", received: {:.0} msg/s", self.received_rate);
        s += ", min/median/75th/95th/99th consumer latency: ";
        match &self.latency_us {
            Some(l) => {
                s += &format!(
                    "{:.0}/{:.0}/{:.0}/{:.0}/{:.0} µs",
                    l.min, l.p50, l.p75, l.p95, l.p99
                )
            }
            None => s += "-",
        }
        s
    }
}

/// The whole run, as printed at the end and written with --json.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub totals: Totals,
    pub send_rate: f64,
    pub confirm_rate: f64,
    pub receive_rate: f64,
    pub latency_us: Option<Latency>,
    /// CPU time of this process (all threads), and as a share of one core over the run.
    pub tool_cpu_s: Option<f64>,
    pub tool_cpu_percent: Option<f64>,
    pub errors: Vec<String>,
}

impl Summary {
    pub fn new(
        elapsed: Duration,
        totals: Totals,
        latency: Option<Latency>,
        tool_cpu: Option<Duration>,
        errors: Vec<String>,
    ) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let cpu = tool_cpu.map(|d| d.as_secs_f64());
        Summary {
            elapsed_s: elapsed.as_secs_f64(),
            totals,
            send_rate: totals.sent as f64 / secs,
            confirm_rate: totals.confirmed as f64 / secs,
            receive_rate: totals.received as f64 / secs,
            latency_us: latency,
            tool_cpu_s: cpu,
            tool_cpu_percent: cpu.map(|c| 100.0 * c / secs),
            errors,
        }
    }

    pub fn text(&self, confirms: bool) -> String {
        let t = &self.totals;
        let mut s = format!(
            "summary: {:.1} s, sent {} msg ({:.0} msg/s)",
            self.elapsed_s, t.sent, self.send_rate
        );
        if confirms {
            s += &format!(
                ", confirmed {} ({:.0} msg/s), nacked {}",
                t.confirmed, self.confirm_rate, t.nacked
            );
        }
        s += &format!(
            ", received {} msg ({:.0} msg/s)\n",
            t.received, self.receive_rate
        );
        match &self.latency_us {
            Some(l) => {
                s += &format!(
                    "latency µs: min {:.0}, p50 {:.0}, p75 {:.0}, p95 {:.0}, p99 {:.0}, p99.9 {:.0}, max {:.0} ({} samples)\n",
                    l.min, l.p50, l.p75, l.p95, l.p99, l.p999, l.max, l.count
                )
            }
            None => s += "latency: no samples\n",
        }
        if let (Some(c), Some(p)) = (self.tool_cpu_s, self.tool_cpu_percent) {
            s += &format!("tool CPU: {c:.2} s ({p:.0}% of one core)");
            if p > 85.0 {
                s += " -- the load generator may itself be the bottleneck";
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_in_microseconds() {
        let mut h = new_histogram();
        for us in 1..=100u64 {
            h.record(us * 1000).unwrap();
        }
        let l = Latency::of(&h).unwrap();
        // Three significant digits: values are exact to within 0.1%.
        let close = |a: f64, b: f64| (a - b).abs() <= b / 1000.0;
        assert_eq!(l.count, 100);
        assert!(close(l.min, 1.0), "{l:?}");
        assert!(close(l.p50, 50.0), "{l:?}");
        assert!(close(l.p99, 99.0), "{l:?}");
        assert!(close(l.max, 100.0), "{l:?}");
        assert!(close(l.mean, 50.5), "{l:?}");
        assert!(Latency::of(&new_histogram()).is_none());
    }

    #[test]
    fn sample_rates_and_line() {
        let before = Totals {
            sent: 100,
            confirmed: 50,
            nacked: 0,
            received: 90,
        };
        let after = Totals {
            sent: 2100,
            confirmed: 1050,
            nacked: 0,
            received: 1090,
        };
        let s = Sample::between(
            Duration::from_secs(3),
            Duration::from_millis(500),
            before,
            after,
            None,
        );
        assert_eq!(s.sent_rate, 4000.0);
        assert_eq!(s.received_rate, 2000.0);
        assert_eq!(
            s.line(false),
            "time: 3.0s, sent: 4000 msg/s, received: 2000 msg/s, \
             min/median/75th/95th/99th consumer latency: -"
        );
        let mut h = new_histogram();
        h.record(12_000).unwrap();
        let s = Sample {
            latency_us: Latency::of(&h),
            ..s
        };
        assert!(s
            .line(true)
            .ends_with("confirmed: 2000 msg/s, received: 2000 msg/s, min/median/75th/95th/99th consumer latency: 12/12/12/12/12 µs"));
    }

    #[test]
    fn summary_flags_a_saturated_tool() {
        let totals = Totals {
            sent: 1000,
            confirmed: 0,
            nacked: 0,
            received: 1000,
        };
        let s = Summary::new(
            Duration::from_secs(10),
            totals,
            None,
            Some(Duration::from_secs(9)),
            vec![],
        );
        assert_eq!(s.receive_rate, 100.0);
        assert_eq!(s.tool_cpu_percent, Some(90.0));
        assert!(s.text(false).contains("may itself be the bottleneck"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["received"], 1000);
        assert_eq!(json["tool_cpu_s"], 9.0);
    }

    #[test]
    fn stop_is_seen_by_waiters_and_pollers() {
        let shared = Shared::new();
        let stopped = shared.stopped();
        assert!(!shared.stopping());
        shared.request_stop();
        assert!(shared.stopping());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), stopped)
                .await
                .expect("resolves");
            // Subscribing after the fact resolves at once too.
            tokio::time::timeout(Duration::from_secs(1), shared.stopped())
                .await
                .expect("resolves");
        });
    }
}
