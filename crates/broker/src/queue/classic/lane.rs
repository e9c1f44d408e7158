//! One priority level of a classic queue: its ready messages in seq order, the head in RAM and
//! the rest in a log of its own. A queue without `x-max-priority` has one lane; a priority
//! queue has one per level (0 to its maximum), each paged on its own, so that a deep level
//! costs disk and not RAM, and the next message out is the head of the highest lane that has
//! one. RabbitMQ's `rabbit_priority_queue` keeps one backing queue per level in the same way.

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::{error, warn};
use warren_protocol::ShortStr;
use warren_store::{QueueLog, Recovered};

use crate::message::Message;
use crate::queue::Queued;

/// How much is read back from disk at a time.
const PAGE_IN_MESSAGES: usize = 2048;
const PAGE_IN_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub(super) struct Lane {
    /// The head, in RAM, in seq order.
    pub(super) ready: VecDeque<Queued>,
    /// What the messages in `ready` hold (`Message::size`).
    pub(super) ready_bytes: usize,
    /// Their body bytes: what `x-max-length-bytes` counts, with `paged_bytes`.
    pub(super) ready_body_bytes: u64,
    /// A durable queue's lanes always have a log; others get one when they first page out.
    pub(super) log: Option<QueueLog>,
    /// Ready messages that are only on disk: seqs from `tail_from` on, in the log.
    pub(super) paged: u64,
    /// Body bytes of the paged messages.
    pub(super) paged_bytes: u64,
    pub(super) tail_from: u64,
    /// Some paged message may have an expiry (so the head on disk is worth reading for it).
    pub(super) paged_may_expire: bool,
    /// Log records of messages that died or were settled under the lock, marked dead in one
    /// journal write when the operation ends.
    pub(super) dead_seqs: Vec<u64>,
    /// Messages up to this seq were delivered before the last restart: they come back flagged.
    delivered_before_restart: Option<u64>,
}

impl Lane {
    /// A lane whose messages are in a recovered log, all of them still on disk.
    pub(super) fn recovered(log: QueueLog, recovered: Recovered) -> Lane {
        Lane {
            log: Some(log),
            paged: recovered.messages,
            paged_bytes: recovered.bytes,
            delivered_before_restart: recovered.delivered,
            // What the records say about expiry is learnt as they are read.
            paged_may_expire: recovered.messages > 0,
            ..Lane::default()
        }
    }

    /// Ready messages, in RAM and on disk.
    pub(super) fn len(&self) -> u64 {
        self.ready.len() as u64 + self.paged
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.paged == 0
    }

    /// Body bytes of the ready messages, in RAM and on disk.
    pub(super) fn body_bytes(&self) -> u64 {
        self.ready_body_bytes + self.paged_bytes
    }

    pub(super) fn push(&mut self, item: Queued) {
        self.ready_bytes += item.message.size();
        self.ready_body_bytes += item.message.body.len() as u64;
        self.ready.push_back(item);
    }

    pub(super) fn pop(&mut self) -> Option<Queued> {
        let item = self.ready.pop_front()?;
        self.ready_bytes -= item.message.size();
        self.ready_body_bytes -= item.message.body.len() as u64;
        Some(item)
    }

    /// Puts a message back at its place by sequence number.
    pub(super) fn requeue(&mut self, item: Queued) {
        self.ready_bytes += item.message.size();
        self.ready_body_bytes += item.message.body.len() as u64;
        match self.ready.front() {
            None => self.ready.push_back(item),
            Some(front) if item.seq < front.seq => self.ready.push_front(item),
            Some(_) => {
                let at = self.ready.partition_point(|q| q.seq < item.seq);
                self.ready.insert(at, item);
            }
        }
    }

    /// A message appended to the log instead of kept in RAM: it is behind everything.
    pub(super) fn paged_out(&mut self, seq: u64, body_len: usize, may_expire: bool) {
        if self.paged == 0 {
            self.tail_from = seq;
        }
        self.paged += 1;
        self.paged_bytes += body_len as u64;
        self.paged_may_expire |= may_expire;
    }

    /// Reads the next stretch of the on-disk tail into RAM. `priority` is this lane's level,
    /// which the messages read carry.
    pub(super) fn page_in(&mut self, queue: &ShortStr, priority: u8) {
        let Some(log) = self.log.as_ref() else {
            self.paged = 0;
            self.paged_bytes = 0;
            return;
        };
        let records = match log.read(self.tail_from, PAGE_IN_MESSAGES, PAGE_IN_BYTES) {
            Ok(r) => r,
            Err(e) => {
                error!(%queue, error = %e, "reading the queue log failed");
                Vec::new()
            }
        };
        if records.is_empty() {
            // Records that failed their checksum were skipped: what the count promised is gone.
            warn!(%queue, missing = self.paged, "queue log ended before its recorded length");
            self.paged = 0;
            self.paged_bytes = 0;
            return;
        }
        let before = self.delivered_before_restart;
        for r in records {
            self.tail_from = r.seq + 1;
            self.paged = self.paged.saturating_sub(1);
            self.paged_bytes = self.paged_bytes.saturating_sub(r.payload.len() as u64);
            let Some(message) = Message::from_log(r.context, r.payload, r.persistent) else {
                warn!(%queue, seq = r.seq, "undecodable message record skipped");
                continue;
            };
            self.push(Queued {
                seq: r.seq,
                message: Arc::new(message),
                redelivered: before.is_some_and(|d| r.seq <= d),
                logged: true,
                expires_at: r.meta.expires_at,
                priority,
            });
        }
        if self.paged == 0 {
            self.paged_may_expire = false;
        }
    }

    /// Drops every ready message (purge); returns how many there were. The records of those
    /// in RAM die first, then those on disk in one range, which frees the segments at once.
    pub(super) fn clear(&mut self, queue: &ShortStr, next_seq: u64) -> u64 {
        let n = self.len();
        let logged = self.ready.iter().filter(|q| q.logged).map(|q| q.seq);
        self.dead_seqs.extend(logged);
        self.kill_dead(queue);
        self.ready.clear();
        self.ready_bytes = 0;
        self.ready_body_bytes = 0;
        if self.paged > 0 {
            if let Some(log) = self.log.as_ref() {
                if let Err(e) = log.kill_range(self.tail_from, next_seq) {
                    error!(%queue, error = %e, "purging the queue log failed");
                }
            }
            self.paged = 0;
            self.paged_bytes = 0;
        }
        n
    }

    /// Marks `dead_seqs` dead in the log (acked, dropped, delivered without ack).
    pub(super) fn kill_dead(&mut self, queue: &ShortStr) {
        if self.dead_seqs.is_empty() {
            return;
        }
        let seqs = std::mem::take(&mut self.dead_seqs);
        if let Some(log) = self.log.as_ref() {
            if let Err(e) = log.kill(seqs.iter().copied()) {
                error!(%queue, error = %e, "recording acks in the queue journal failed");
            }
        }
        // The allocation is kept for the next operation.
        self.dead_seqs = seqs;
        self.dead_seqs.clear();
    }
}
