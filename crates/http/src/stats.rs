//! Message rates: counters are sampled every few seconds off the hot path (RabbitMQ's
//! `collect_statistics_interval` is 5 s), and a rate is the change between the last two
//! samples.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use serde::Serialize;
use warren_broker::registry::StatsSnapshot;
use warren_broker::{Broker, ConnectionId, Queue};

/// `{"rate": 1.5}`, as in every `*_details` field.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Rate {
    pub rate: f64,
}

fn rate(now: u64, before: u64, secs: f64) -> Rate {
    Rate {
        rate: if secs > 0.0 {
            // Round like RabbitMQ's UI shows rates: one decimal is plenty.
            ((now.saturating_sub(before)) as f64 / secs * 10.0).round() / 10.0
        } else {
            0.0
        },
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct QueueRates {
    pub publish: Rate,
    pub deliver_get: Rate,
    pub ack: Rate,
    pub redeliver: Rate,
}

#[derive(Clone, Copy, Debug, Default)]
struct QueueCounters {
    published: u64,
    delivered: u64,
    acked: u64,
    redelivered: u64,
}

impl QueueCounters {
    fn of(q: &Queue) -> Self {
        QueueCounters {
            published: q.stats.published.load(Ordering::Relaxed),
            delivered: q.stats.delivered.load(Ordering::Relaxed),
            acked: q.stats.acked.load(Ordering::Relaxed),
            redelivered: q.stats.redelivered.load(Ordering::Relaxed),
        }
    }
}

struct QueueSample {
    /// Keeps the allocation (not the queue) alive, so the pointer key is not reused while
    /// this entry exists.
    _queue: Weak<Queue>,
    counters: QueueCounters,
    rates: QueueRates,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalRates {
    pub publish: Rate,
    pub deliver_get: Rate,
    pub deliver: Rate,
    pub deliver_no_ack: Rate,
    pub get: Rate,
    pub get_no_ack: Rate,
    pub ack: Rate,
    pub redeliver: Rate,
    pub confirm: Rate,
    pub return_unroutable: Rate,
    pub drop_unroutable: Rate,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionRates {
    pub recv_oct: Rate,
    pub send_oct: Rate,
}

#[derive(Default)]
struct Samples {
    at: Option<Instant>,
    global: StatsSnapshot,
    global_rates: GlobalRates,
    queues: HashMap<usize, QueueSample>,
    connections: HashMap<ConnectionId, (u64, u64, ConnectionRates)>,
}

pub struct Sampler {
    pub interval: Duration,
    samples: RwLock<Samples>,
}

impl Sampler {
    pub fn new(interval: Duration) -> Self {
        Sampler {
            interval,
            samples: RwLock::default(),
        }
    }

    pub fn global(&self) -> GlobalRates {
        self.samples.read().global_rates
    }

    pub fn queue(&self, q: &Arc<Queue>) -> QueueRates {
        let key = Arc::as_ptr(q) as usize;
        self.samples
            .read()
            .queues
            .get(&key)
            .map(|s| s.rates)
            .unwrap_or_default()
    }

    pub fn connection(&self, id: ConnectionId) -> ConnectionRates {
        self.samples
            .read()
            .connections
            .get(&id)
            .map(|c| c.2)
            .unwrap_or_default()
    }

    /// Takes one sample of every counter. Runs every `interval` on its own task.
    pub fn sample(&self, broker: &Broker) {
        let now = Instant::now();
        let totals = broker.connections.totals();
        let mut queues = Vec::new();
        for vhost in broker.vhosts() {
            queues.extend(vhost.queues());
        }
        let connections = broker.connections.list();

        // Compute outside the write lock; readers only wait for the swap.
        let prev = self.samples.read();
        let secs = prev
            .at
            .map(|t| now.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        let g = &prev.global;
        let t = &totals;
        let global_rates = GlobalRates {
            publish: rate(t.published, g.published, secs),
            deliver_get: rate(
                t.delivered + t.delivered_no_ack + t.got + t.got_no_ack,
                g.delivered + g.delivered_no_ack + g.got + g.got_no_ack,
                secs,
            ),
            deliver: rate(t.delivered, g.delivered, secs),
            deliver_no_ack: rate(t.delivered_no_ack, g.delivered_no_ack, secs),
            get: rate(t.got, g.got, secs),
            get_no_ack: rate(t.got_no_ack, g.got_no_ack, secs),
            ack: rate(t.acked, g.acked, secs),
            redeliver: rate(t.redelivered, g.redelivered, secs),
            confirm: rate(t.confirmed, g.confirmed, secs),
            return_unroutable: rate(t.unroutable_returned, g.unroutable_returned, secs),
            drop_unroutable: rate(t.unroutable_dropped, g.unroutable_dropped, secs),
        };
        let mut queue_samples = HashMap::with_capacity(queues.len());
        for q in &queues {
            let key = Arc::as_ptr(q) as usize;
            let c = QueueCounters::of(q);
            let rates = match prev.queues.get(&key) {
                Some(p) => QueueRates {
                    publish: rate(c.published, p.counters.published, secs),
                    deliver_get: rate(c.delivered, p.counters.delivered, secs),
                    ack: rate(c.acked, p.counters.acked, secs),
                    redeliver: rate(c.redelivered, p.counters.redelivered, secs),
                },
                None => QueueRates::default(),
            };
            queue_samples.insert(
                key,
                QueueSample {
                    _queue: Arc::downgrade(q),
                    counters: c,
                    rates,
                },
            );
        }
        let mut conn_samples = HashMap::with_capacity(connections.len());
        for c in &connections {
            let s = &c.stats;
            let (recv, send) = (
                s.recv_oct.load(Ordering::Relaxed),
                s.send_oct.load(Ordering::Relaxed),
            );
            let rates = match prev.connections.get(&c.id) {
                Some(&(r0, s0, _)) => ConnectionRates {
                    recv_oct: rate(recv, r0, secs),
                    send_oct: rate(send, s0, secs),
                },
                None => ConnectionRates::default(),
            };
            conn_samples.insert(c.id, (recv, send, rates));
        }
        drop(prev);
        let old = std::mem::replace(
            &mut *self.samples.write(),
            Samples {
                at: Some(now),
                global: totals,
                global_rates,
                queues: queue_samples,
                connections: conn_samples,
            },
        );
        // Free the old maps outside the lock.
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(rate(150, 100, 5.0).rate, 10.0);
        assert_eq!(rate(100, 150, 5.0).rate, 0.0);
        assert_eq!(rate(100, 0, 0.0).rate, 0.0);
    }
}
