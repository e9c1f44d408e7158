//! One run: set up the topology, connect everyone, start the clock, report every second, stop,
//! clean up, summarise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::Connection;
use crate::stats::{new_histogram, Latency, Sample, Shared, SharedHistogram, Summary};
use crate::{consumer, cpu, producer, topology, Config, PerfError};

/// How long stopped tasks get to close their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Returns whether the run went without failures.
pub async fn run(cfg: Config) -> Result<bool, PerfError> {
    let cfg = Arc::new(cfg);
    println!("{}", describe(&cfg));

    let mut setup = Connection::open(&cfg.endpoint, "warren-perf setup").await?;
    if !cfg.predeclared {
        topology::declare(&cfg, &mut setup).await?;
    }
    // Everyone connects before the clock starts, consumers first, so no message waits for a
    // consumer that is still logging in.
    let mut consumers = Vec::with_capacity(cfg.consumers);
    for id in 0..cfg.consumers {
        consumers.push(consumer::connect(&cfg, id).await?);
    }
    let mut producers = Vec::with_capacity(cfg.producers);
    for id in 0..cfg.producers {
        producers.push(producer::connect(&cfg, id).await?);
    }

    let cpu_before = cpu::process_cpu();
    let shared = Arc::new(Shared::new());
    let histograms: Vec<SharedHistogram> = (0..cfg.consumers)
        .map(|_| Arc::new(Mutex::new(new_histogram())))
        .collect();
    let mut tasks = JoinSet::new();
    for (id, conn) in consumers.into_iter().enumerate() {
        tasks.spawn(consumer::run(
            id,
            conn,
            cfg.clone(),
            shared.clone(),
            histograms[id].clone(),
        ));
    }
    for (id, conn) in producers.into_iter().enumerate() {
        tasks.spawn(producer::run(id, conn, cfg.clone(), shared.clone()));
    }

    let (samples, mut total) = report(&cfg, &shared, &histograms).await;
    let elapsed = shared.elapsed();
    let totals = shared.counters.snapshot();
    let cpu_after = cpu::process_cpu();

    let grace = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if grace.is_err() {
        eprintln!("warren perf: some connections did not close in time");
        tasks.abort_all();
    }
    // Latencies recorded after the last report.
    for h in &histograms {
        let h = h.lock().expect("not poisoned");
        total.add(&*h).expect("same bounds");
    }
    if !cfg.predeclared {
        if let Err(e) = topology::delete(&cfg, &mut setup).await {
            eprintln!("warren perf: cleaning up the queues failed: {e}");
        }
    }
    setup.close().await;

    let tool_cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let errors = shared.failures.lock().expect("not poisoned").clone();
    let summary = Summary::new(elapsed, totals, Latency::of(&total), tool_cpu, errors);
    print!("{}", summary.text(cfg.confirm > 0));
    if cfg.size < 8 && cfg.consumers > 0 {
        println!("(bodies shorter than 8 bytes carry no timestamp: no latency measured)");
    }
    if let Some(path) = &cfg.json {
        let doc = serde_json::json!({
            "config": &*cfg,
            "summary": &summary,
            "samples": samples,
        });
        let text = serde_json::to_string_pretty(&doc).expect("serialisable");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("warren perf: cannot write {}: {e}", path.display());
            return Ok(false);
        }
    }
    Ok(summary.errors.is_empty())
}

/// Prints a line per second until the run should stop; returns the samples and the merged
/// latency histogram of the whole run so far.
async fn report(
    cfg: &Config,
    shared: &Shared,
    histograms: &[SharedHistogram],
) -> (Vec<Sample>, hdrhistogram::Histogram<u64>) {
    let start = Instant::from_std(shared.origin);
    let deadline = cfg.duration.map(|d| start + d);
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stopped = shared.stopped();
    tokio::pin!(stopped);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let mut samples = Vec::new();
    let mut total = new_histogram();
    let mut interval = new_histogram();
    let mut last = (start, shared.counters.snapshot());
    let mut running = true;
    while running {
        tokio::select! {
            biased;
            _ = &mut stopped => running = false,
            _ = tokio::time::sleep_until(deadline.unwrap_or(start)), if deadline.is_some() => {
                shared.request_stop();
                running = false;
            }
            _ = &mut ctrl_c => {
                eprintln!("warren perf: interrupted");
                shared.request_stop();
                running = false;
            }
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        if !running && now - last.0 < Duration::from_millis(100) {
            // The stop came right after a report: nothing worth a line.
            break;
        }
        let counters = shared.counters.snapshot();
        interval.reset();
        for h in histograms {
            let mut h = h.lock().expect("not poisoned");
            interval.add(&*h).expect("same bounds");
            h.reset();
        }
        total.add(&interval).expect("same bounds");
        let sample = Sample::between(
            now - start,
            now - last.0,
            last.1,
            counters,
            Latency::of(&interval),
        );
        println!("{}", sample.line(cfg.confirm > 0));
        samples.push(sample);
        last = (now, counters);
    }
    (samples, total)
}

fn describe(cfg: &Config) -> String {
    let e = &cfg.endpoint;
    let mut s = format!(
        "warren perf: {} producer(s), {} consumer(s), {} B {} messages, exchange {:?} ({}), {} queue(s), to {}:{} vhost {:?}",
        cfg.producers,
        cfg.consumers,
        cfg.size,
        if cfg.persistent { "persistent" } else { "transient" },
        cfg.exchange,
        cfg.exchange_type.as_str(),
        cfg.queues.len(),
        e.host,
        e.port,
        e.vhost
    );
    if cfg.rate > 0.0 {
        s += &format!(", rate {} msg/s per producer", cfg.rate);
    }
    if cfg.confirm > 0 {
        s += &format!(", confirms ({} in flight)", cfg.confirm);
    }
    if cfg.auto_ack {
        s += ", auto-ack";
    } else {
        s += &format!(", manual ack (prefetch {}", cfg.prefetch);
        match cfg.multi_ack_every {
            0 => s += ", one ack per read)",
            n => s += &format!(", ack every {n})"),
        }
    }
    s
}
