//! Publishing: a message is routed and handed to every queue it reaches, and the result is one
//! outcome that the protocol layers turn into confirms, returns and errors. basic.publish and
//! the management API's publish share this path, so neither can forget a step.

use std::collections::HashSet;
use std::sync::Arc;

use std::sync::atomic::Ordering;

use tracing::warn;

use crate::dead_letter::{dead_lettered, is_cycle, DeadLetter, DeadLetterTarget, DeathReason};
use crate::error::AmqpResult;
use crate::exchange::Exchange;
use crate::message::Message;
use crate::queue::{Enqueued, Queue};
use crate::vhost::VHost;

/// Below this many destinations a linear scan de-duplicates faster than hashing.
const LINEAR_DEDUP_MAX: usize = 8;

/// The queues one publish reaches, each once. Kept by the publisher between publishes so that
/// routing allocates nothing in the steady state.
#[derive(Default)]
pub struct Routes {
    queues: Vec<Arc<Queue>>,
    /// Addresses of `queues`, filled only once a publish fans out past `LINEAR_DEDUP_MAX`, so
    /// that a fanout to thousands of queues costs linear, not quadratic, time.
    seen: HashSet<usize>,
    /// The exchange this publisher last published to (see `VHost::source_exchange`).
    pub(crate) source: Option<CachedSource>,
}

pub(crate) struct CachedSource {
    /// The vhost it belongs to, by address (a publisher's vhost outlives its `Routes`).
    pub vhost: usize,
    /// The vhost's exchange generation when it was looked up.
    pub generation: u64,
    pub exchange: Arc<Exchange>,
}

impl Routes {
    pub fn clear(&mut self) {
        self.queues.clear();
        self.seen.clear();
    }

    /// Adds a destination unless the publish already reaches it.
    pub fn add(&mut self, queue: Arc<Queue>) {
        let addr = Arc::as_ptr(&queue) as usize;
        if self.queues.len() < LINEAR_DEDUP_MAX {
            if self.queues.iter().any(|q| Arc::as_ptr(q) as usize == addr) {
                return;
            }
        } else {
            if self.seen.is_empty() {
                self.seen
                    .extend(self.queues.iter().map(|q| Arc::as_ptr(q) as usize));
            }
            if !self.seen.insert(addr) {
                return;
            }
        }
        self.queues.push(queue);
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn queues(&self) -> &[Arc<Queue>] {
        &self.queues
    }
}

/// What became of a publish.
#[derive(Debug)]
pub enum Published {
    /// No queue was bound to take it: the message comes back for a `basic.return` (mandatory)
    /// or is dropped.
    Unroutable(Message),
    /// Queues took it. A confirm is an ack when every queue accepted it, once the group commit
    /// `ticket` is durable (0: nothing to wait for); a nack when any queue rejected it.
    Routed { ticket: u64, rejected: bool },
}

impl VHost {
    /// Routes `message` from `exchange` and enqueues it on every queue it reaches.
    /// Errors are the routing's: a missing or internal exchange.
    pub fn publish(
        &self,
        exchange: &warren_protocol::ShortStr,
        message: Message,
        routes: &mut Routes,
    ) -> AmqpResult<Published> {
        routes.clear();
        self.route(exchange, &message, routes)?;
        if routes.is_empty() {
            return Ok(Published::Unroutable(message));
        }
        let message = Arc::new(message);
        let mut ticket = 0;
        let mut rejected = false;
        for queue in routes.queues.drain(..) {
            match queue.enqueue(message.clone()) {
                Enqueued::Accepted { ticket: t } => ticket = ticket.max(t),
                Enqueued::Rejected => rejected = true,
            }
        }
        routes.seen.clear();
        Ok(Published::Routed { ticket, rejected })
    }
}

impl VHost {
    /// Publishes what died in `queue` to its dead-letter exchange, as RabbitMQ 3.10 does: no
    /// confirm, no mandatory, dropped if the exchange does not exist, and kept from the queues
    /// that would close a cycle of automatic deaths. Returns the group-commit ticket that
    /// stores the letters (0: nothing to wait for), after which the source may forget them.
    /// A queue that refuses a letter (`reject-publish`, a failing disk) drops it, as RabbitMQ's
    /// would.
    pub(crate) fn publish_dead_letters(
        &self,
        from: &Queue,
        target: &DeadLetterTarget,
        letters: Vec<DeadLetter>,
    ) -> u64 {
        let Ok(exchange) = self.exchange(&target.exchange) else {
            return 0;
        };
        let mut ticket = 0;
        let now_secs = self.queue_env.timers.now() / 1000;
        let mut routes = Routes::default();
        for letter in letters {
            let message = Arc::new(dead_lettered(
                &letter.message,
                &from.name,
                letter.reason,
                now_secs,
                target,
            ));
            routes.clear();
            self.route_from(exchange.clone(), &message, &mut routes);
            for destination in routes.queues.drain(..) {
                if letter.reason != DeathReason::Rejected
                    && is_cycle(destination.name.as_bytes(), &message)
                {
                    // Once per queue, as RabbitMQ ("This cycle will NOT be reported again").
                    if !from.cycle_reported.swap(true, Ordering::Relaxed) {
                        warn!(
                            from = %from.name,
                            to = %destination.name,
                            vhost = %self.name,
                            "dead letters dropped: they would cycle back to a queue they expired \
                             or overflowed from (reported once per queue)"
                        );
                    }
                    continue;
                }
                if let Enqueued::Accepted { ticket: t } = destination.enqueue(message.clone()) {
                    ticket = ticket.max(t);
                }
            }
        }
        ticket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueConfig;
    use crate::ConnectionId;

    #[test]
    fn routes_are_deduplicated_at_any_width() {
        let v = VHost::new("/");
        let queues: Vec<Arc<Queue>> = (0..40)
            .map(|i| {
                v.declare_internal_queue(
                    ConnectionId(1),
                    format!("q{i}").as_str().into(),
                    QueueConfig::default(),
                )
                .unwrap()
            })
            .collect();
        let mut routes = Routes::default();
        for round in 0..3 {
            for q in queues.iter().rev().skip(round) {
                routes.add(q.clone());
            }
        }
        assert_eq!(routes.len(), 40);
        routes.clear();
        routes.add(queues[0].clone());
        routes.add(queues[0].clone());
        assert_eq!(routes.len(), 1);
    }
}
