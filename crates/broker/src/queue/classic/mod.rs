//! The classic queue: today's one queue type. Ready messages in seq order with the head in RAM
//! and the rest paged to the queue's log; consumers with credit; deliveries straight to the
//! consumer's connection. How messages die (TTL, length limits, rejection) and become dead
//! letters is in `deaths.rs`.

mod deaths;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::{error, warn};
use warren_store::{NewRecord, QueueLog, RecordMeta, Recovered};

use super::arguments::Overflow;
use super::consumer::Consumer;
use super::{
    ConsumerSpec, Delivery, Enqueued, Outbound, Queue, QueueArguments, QueueBackend, QueueCounts,
    Queued, Settlement,
};
use crate::clock::{Millis, TimerId};
use crate::dead_letter::{DeadLetter, DeathReason};
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use crate::persistence::Persistence;
use crate::registry::{now_millis, ConsumerActivity};
use crate::ConnectionId;
use deaths::Clock;

/// A queue keeps at most this many ready messages in RAM (and at most `RAM_HEAD_BYTES`); the
/// rest wait in its log on disk and are read back as the head drains. This is what bounds
/// memory by design: a few hundred bytes per message times this, per queue, and under memory
/// pressure (half the memory limit) every queue pages new messages whatever its head holds.
pub const RAM_HEAD_MESSAGES: usize = 65536;
/// ... and at most this many bytes of them, counting what each costs beyond its bytes
/// (`MESSAGE_OVERHEAD`).
pub const RAM_HEAD_BYTES: usize = 16 * 1024 * 1024;
/// What a message in RAM costs beyond its names, properties and body: its `Queued` entry, the
/// `Message` with its `Arc`, and the allocations' headers (about 200 bytes). Counted against
/// `RAM_HEAD_BYTES`, so that a head of small messages with large headers (dead letters with
/// `x-death`) is bounded by what it really takes.
const MESSAGE_OVERHEAD: usize = 200;
/// How much is read back from disk at a time.
const PAGE_IN_MESSAGES: usize = 2048;
const PAGE_IN_BYTES: usize = 4 * 1024 * 1024;

pub(super) struct ClassicQueue {
    persistence: Option<Arc<Persistence>>,
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    ready: VecDeque<Queued>,
    ready_bytes: usize,
    next_seq: u64,
    unacked: u32,
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    cursor: usize,
    next_consumer_id: u64,
    deleted: bool,
    /// Durable queues always have a log; others get one when they first page out.
    log: Option<QueueLog>,
    /// Ready messages that are only on disk: seqs from `tail_from` on, in the log.
    paged: u64,
    /// Body bytes of the paged messages.
    paged_bytes: u64,
    tail_from: u64,
    /// Messages up to this seq were delivered before the last restart: they come back flagged.
    delivered_before_restart: Option<u64>,
    /// The settings in effect: the declared arguments (policies will be merged in here).
    effective: QueueArguments,
    /// Body bytes of the ready messages in RAM (`paged_bytes` counts those on disk): what
    /// `x-max-length-bytes` limits.
    ready_body_bytes: u64,
    /// Some paged message may have an expiry (so the head on disk is worth reading for it).
    paged_may_expire: bool,
    /// Messages that died under the lock, published to the dead-letter exchange after it.
    dead_letters: Vec<DeadLetter>,
    /// Log records of messages that died under the lock, marked dead in one journal write.
    dead_seqs: Vec<u64>,
    /// The timer set for the head's expiry, and its deadline.
    expiry_timer: Option<(Millis, TimerId)>,
    /// Messages expired since the operation began (see `deaths::EXPIRY_BATCH`).
    expired_in_pass: usize,
    /// The seq of the message `enqueue` is offering to consumers (see `head_expired`).
    being_enqueued: Option<u64>,
}

impl QueueState {
    fn push_ready(&mut self, item: Queued) {
        self.ready_bytes += item.message.size();
        self.ready_body_bytes += item.message.body.len() as u64;
        self.ready.push_back(item);
    }

    fn ready_count(&self) -> u32 {
        (self.ready.len() as u64 + self.paged) as u32
    }

    fn pop_ready(&mut self) -> Option<Queued> {
        let item = self.ready.pop_front()?;
        self.ready_bytes -= item.message.size();
        self.ready_body_bytes -= item.message.body.len() as u64;
        Some(item)
    }

    /// Puts a message back at its place by sequence number.
    fn requeue(&mut self, item: Queued) {
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

    /// The consumer to deliver to next: the highest priority among those with credit, and
    /// round-robin among equals.
    fn pick_consumer(&self) -> Option<usize> {
        if self.effective.single_active_consumer {
            // The earliest consumer still attached is the active one; the others wait for it
            // to go (consumers are kept in the order they came).
            return self.consumers.first().filter(|c| c.has_credit()).map(|_| 0);
        }
        let n = self.consumers.len();
        let mut best: Option<(i32, usize)> = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let c = &self.consumers[i];
            if c.has_credit() && best.is_none_or(|(p, _)| c.spec.priority > p) {
                best = Some((c.spec.priority, i));
            }
        }
        best.map(|(_, i)| i)
    }
}

impl ClassicQueue {
    /// A classic queue with `arguments` in effect; durable queues get their log (recovered),
    /// others get one only if they have to page out.
    pub(super) fn new(
        effective: QueueArguments,
        persistence: Option<Arc<Persistence>>,
        log: Option<(QueueLog, Recovered)>,
    ) -> ClassicQueue {
        let mut state = QueueState {
            effective,
            ..QueueState::default()
        };
        if let Some((log, recovered)) = log {
            state.log = Some(log);
            state.paged = recovered.messages;
            state.paged_bytes = recovered.bytes;
            state.next_seq = recovered.next_seq;
            state.delivered_before_restart = recovered.delivered;
            // What the records say about expiry is learnt as they are read.
            state.paged_may_expire = state.paged > 0;
        }
        ClassicQueue {
            persistence,
            state: Mutex::new(state),
        }
    }

    fn append(
        &self,
        st: &mut QueueState,
        seq: u64,
        persistent: bool,
        message: &Message,
        expires_at: Option<Millis>,
    ) -> std::io::Result<u64> {
        if st.log.is_none() {
            let p = self.persistence.as_ref().expect("paging needs persistence");
            st.log = Some(p.open_paging_log()?);
        }
        let mut lengths = [0u8; 2];
        let context = message.log_context(&mut lengths);
        let log = st.log.as_ref().expect("opened above");
        // A transient message in a durable queue's log is for paging only: not persistent.
        log.append(&NewRecord {
            seq,
            persistent,
            meta: RecordMeta {
                enqueued_at: now_millis(),
                expires_at,
                // Priorities are for a queue feature still to come.
                priority: 0,
            },
            context: &context,
            payload: &message.body,
        })
    }

    /// Reads the next stretch of the on-disk tail into the RAM head.
    fn page_in(&self, q: &Queue, st: &mut QueueState) {
        let Some(log) = st.log.as_ref() else {
            st.paged = 0;
            st.paged_bytes = 0;
            return;
        };
        let records = match log.read(st.tail_from, PAGE_IN_MESSAGES, PAGE_IN_BYTES) {
            Ok(r) => r,
            Err(e) => {
                error!(queue = %q.name, error = %e, "reading the queue log failed");
                Vec::new()
            }
        };
        if records.is_empty() {
            // Records that failed their checksum were skipped: what the count promised is gone.
            warn!(queue = %q.name, missing = st.paged, "queue log ended before its recorded length");
            st.paged = 0;
            st.paged_bytes = 0;
            return;
        }
        let before = st.delivered_before_restart;
        for r in records {
            st.tail_from = r.seq + 1;
            st.paged = st.paged.saturating_sub(1);
            st.paged_bytes = st.paged_bytes.saturating_sub(r.payload.len() as u64);
            let Some(message) = Message::from_log(r.context, r.payload, r.persistent) else {
                warn!(queue = %q.name, seq = r.seq, "undecodable message record skipped");
                continue;
            };
            let redelivered = before.is_some_and(|d| r.seq <= d);
            st.push_ready(Queued {
                seq: r.seq,
                message: Arc::new(message),
                redelivered,
                logged: true,
                expires_at: r.meta.expires_at,
            });
        }
        if st.paged == 0 {
            st.paged_may_expire = false;
        }
    }

    fn take_ready(&self, q: &Queue, st: &mut QueueState) -> Option<Queued> {
        if st.ready.is_empty() && st.paged > 0 {
            self.page_in(q, st);
        }
        let item = st.pop_ready()?;
        if item.logged && item.message.persistent {
            if let Some(log) = st.log.as_ref() {
                log.delivered(item.seq);
            }
        }
        Some(item)
    }

    /// Hands ready messages to consumers while both exist and consumers have credit.
    fn dispatch(&self, q: &Arc<Queue>, st: &mut QueueState) {
        let mut clock = Clock::new(q);
        while st.ready_count() > 0 {
            if st.ready.is_empty() {
                self.page_in(q, st);
                if st.ready.is_empty() {
                    return;
                }
            }
            let Some(i) = st.pick_consumer() else { return };
            // An expired message is never delivered (RabbitMQ drops it at the head first).
            if st.head_expired(&mut clock) {
                if !self.drop_head(q, st, DeathReason::Expired) {
                    return;
                }
                continue;
            }
            st.cursor = (i + 1) % st.consumers.len();
            let bytes = st.ready.front().map_or(0, |q| q.message.size());
            if !st.consumers[i].acquire(bytes) {
                // Lost the channel-wide credit to another queue's consumer: try the others.
                if st.consumers.iter().all(|c| !c.has_credit()) {
                    return;
                }
                continue;
            }
            let Some(item) = self.take_ready(q, st) else {
                st.consumers[i].give_back(bytes);
                return;
            };
            let (seq, logged) = (item.seq, item.logged);
            let consumer = &st.consumers[i];
            let no_ack = consumer.spec.no_ack;
            let delivery = Delivery {
                channel: consumer.spec.outbox.channel,
                consumer_tag: consumer.spec.tag.clone(),
                consumer_id: consumer.id,
                no_ack,
                windowed: consumer.windowed(),
                queue: Arc::clone(q),
                item,
            };
            match consumer.spec.outbox.deliver(delivery) {
                Ok(()) => {
                    if !no_ack {
                        st.unacked += 1;
                    } else if logged {
                        // Delivered without ack: settled as it leaves.
                        self.kill_logged(q, st, [seq]);
                    }
                    q.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(undelivered) => {
                    // The connection is gone; it will cancel this consumer. Keep the message.
                    let consumer = st.consumers.remove(i);
                    if !no_ack {
                        consumer.spec.outbox.release(1);
                    }
                    st.requeue(undelivered.item);
                    if st.consumers.is_empty() {
                        return;
                    }
                    st.cursor %= st.consumers.len();
                }
            }
        }
    }

    /// Marks log records dead (their messages were acked, dropped or delivered without ack).
    fn kill_logged(&self, q: &Queue, st: &QueueState, seqs: impl IntoIterator<Item = u64>) {
        if let Some(log) = st.log.as_ref() {
            if let Err(e) = log.kill(seqs) {
                error!(queue = %q.name, error = %e, "recording acks in the queue journal failed");
            }
        }
    }
}

impl QueueBackend for ClassicQueue {
    /// The settings in effect now (arguments, later merged with policies).
    fn effective_arguments(&self) -> QueueArguments {
        self.state.lock().effective.clone()
    }

    fn counts(&self) -> QueueCounts {
        let st = self.state.lock();
        QueueCounts {
            ready: st.ready_count(),
            unacked: st.unacked,
            consumers: st.consumers.len() as u32,
        }
    }

    /// Bytes of the ready messages: those in RAM as they are held, those only on disk by
    /// their bodies.
    fn ready_bytes(&self) -> usize {
        let st = self.state.lock();
        st.ready_bytes + st.paged_bytes as usize
    }

    fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// The connections (and channels) this queue's consumers are on, for the management API.
    fn consumer_channels(&self) -> Vec<(ConnectionId, u16)> {
        let st = self.state.lock();
        st.consumers
            .iter()
            .map(|c| (c.spec.outbox.connection, c.spec.outbox.channel))
            .collect()
    }

    /// Adds a message at the tail and delivers whatever consumers have credit for.
    /// A queue deleted meanwhile drops it, as a queue that no longer exists would; that still
    /// counts as accepted (RabbitMQ confirms such a publish too).
    fn enqueue(&self, q: &Arc<Queue>, message: Arc<Message>) -> Enqueued {
        q.stats.published.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        if st.deleted {
            return Enqueued::Accepted { ticket: 0 };
        }
        if st.effective.overflow != Overflow::DropHead && st.would_overflow(&message) {
            // reject-publish(-dlx): refused before any consumer sees it, even one waiting.
            if st.effective.overflow == Overflow::RejectPublishDlx {
                st.dead_letter(message, DeathReason::Maxlen);
            }
            self.finish(q, st);
            return Enqueued::Rejected;
        }
        let expires_at = st.expiry_of(&message, q);
        // The seq is used up even if the append fails: part of the record may reach the file.
        let seq = st.next_seq;
        st.next_seq += 1;
        let persist = q.config.durable && message.persistent && st.log.is_some();
        let to_disk = self.persistence.is_some()
            && (st.paged > 0
                || st.ready.len() >= RAM_HEAD_MESSAGES
                || st.ready_bytes + st.ready.len() * MESSAGE_OVERHEAD >= RAM_HEAD_BYTES
                || self
                    .persistence
                    .as_ref()
                    .is_some_and(|p| p.memory_pressure()));
        let mut ticket = 0;
        let mut logged = false;
        if persist
            && self
                .persistence
                .as_ref()
                .is_some_and(|p| p.refusing_writes())
        {
            // The disk is full: refuse now rather than write into it (see `Persistence`).
            return Enqueued::Rejected;
        }
        if persist || to_disk {
            match self.append(&mut st, seq, persist, &message, expires_at) {
                Ok(t) => {
                    ticket = t;
                    logged = true;
                }
                Err(e) => {
                    error!(queue = %q.name, error = %e, "writing to the queue log failed");
                    if let Some(p) = &self.persistence {
                        p.report_io_error(&e);
                    }
                    // A persistent message that is not on disk must not be confirmed: the
                    // queue refuses it and the publisher gets a nack. A message that was only
                    // to be paged out stays in RAM instead.
                    if persist {
                        return Enqueued::Rejected;
                    }
                }
            }
        }
        if to_disk && logged {
            if st.paged == 0 {
                st.tail_from = seq;
            }
            st.paged += 1;
            st.paged_bytes += message.body.len() as u64;
            st.paged_may_expire |= expires_at.is_some();
        } else {
            st.push_ready(Queued {
                seq,
                message,
                redelivered: false,
                logged,
                expires_at,
            });
        }
        st.being_enqueued = expires_at.map(|_| seq);
        self.dispatch(q, &mut st);
        st.being_enqueued = None;
        // drop-head: consumers had their chance at the new message first.
        self.enforce_max_length(q, &mut st);
        self.finish(q, st);
        Enqueued::Accepted { ticket }
    }

    /// Re-runs dispatch, e.g. after a channel's shared credit was returned elsewhere.
    fn kick(&self, q: &Arc<Queue>) {
        let mut st = self.state.lock();
        self.dispatch(q, &mut st);
        self.finish(q, st);
    }

    /// Adds a consumer; returns its id, used to settle its deliveries and to cancel it.
    fn add_consumer(&self, q: &Arc<Queue>, spec: ConsumerSpec) -> AmqpResult<u64> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(AmqpError::not_found(format!("no {}", q.describe())));
        }
        if st.consumers.iter().any(|c| c.spec.exclusive)
            || (spec.exclusive && !st.consumers.is_empty())
        {
            return Err(AmqpError::access_refused(format!(
                "{} in exclusive use",
                q.describe()
            )));
        }
        let id = st.next_consumer_id;
        st.next_consumer_id += 1;
        st.consumers.push(Consumer::new(id, spec));
        self.dispatch(q, &mut st);
        self.finish(q, st);
        Ok(id)
    }

    /// Removes a consumer. Returns whether the queue is now unused and auto-delete: then
    /// `VHost::cancel_consumer`, which called this, deletes it.
    fn remove_consumer(&self, q: &Queue, id: u64) -> bool {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers.retain(|c| c.id != id);
        if st.consumers.len() == before {
            return false;
        }
        if !st.consumers.is_empty() {
            st.cursor %= st.consumers.len();
        }
        q.config.auto_delete && st.consumers.is_empty() && !st.deleted
    }

    fn consumer_activity(&self, id: u64) -> ConsumerActivity {
        let st = self.state.lock();
        if !st.effective.single_active_consumer {
            return ConsumerActivity::Up;
        }
        // The earliest attached is the active one (see `pick_consumer`).
        match st.consumers.first() {
            Some(c) if c.id == id => ConsumerActivity::SingleActive,
            _ => ConsumerActivity::Waiting,
        }
    }

    /// basic.get: the head message and how many remain ready.
    fn get(&self, q: &Arc<Queue>, no_ack: bool) -> Option<(Queued, u32)> {
        let (got, mut st) = loop {
            let mut st = self.state.lock();
            let mut clock = Clock::new(q);
            let mut busy = false;
            let got = loop {
                if st.ready.is_empty() && st.paged > 0 {
                    self.page_in(q, &mut st);
                }
                if st.head_expired(&mut clock) {
                    if self.drop_head(q, &mut st, DeathReason::Expired) {
                        continue;
                    }
                    // A batch of dead letters is waiting: out with them, then go on.
                    busy = true;
                    break None;
                }
                break self.take_ready(q, &mut st);
            };
            if !busy {
                break (got, st);
            }
            self.finish(q, st);
        };
        if let Some(item) = &got {
            if !no_ack {
                st.unacked += 1;
            } else if item.logged {
                st.dead_seqs.push(item.seq);
            }
            q.stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
        let result = got.map(|item| (item, st.ready_count()));
        self.finish(q, st);
        result
    }

    /// Settles deliveries of this queue (one lock for a whole batch of acks), then delivers
    /// what the freed credit allows. `consumer` is None for basic.get deliveries.
    fn settle(
        &self,
        q: &Arc<Queue>,
        deliveries: &mut dyn Iterator<Item = (Option<u64>, Queued)>,
        how: Settlement,
    ) {
        let mut st = self.state.lock();
        let mut dead: Vec<u64> = Vec::new();
        for (consumer, mut item) in deliveries {
            st.unacked = st.unacked.saturating_sub(1);
            if let Some(id) = consumer {
                if let Some(c) = st.consumers.iter_mut().find(|c| c.id == id) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            match how {
                Settlement::Requeue if !st.deleted => {
                    item.redelivered = true;
                    q.stats.redelivered.fetch_add(1, Ordering::Relaxed);
                    st.requeue(item);
                }
                _ => {
                    if how == Settlement::Ack {
                        q.stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    if item.logged {
                        dead.push(item.seq);
                    }
                    if how == Settlement::Discard && !st.deleted {
                        st.dead_letter(item.message, DeathReason::Rejected);
                    }
                }
            }
        }
        if !dead.is_empty() && !st.deleted {
            self.kill_logged(q, &st, dead);
        }
        self.dispatch(q, &mut st);
        self.finish(q, st);
    }

    /// Messages that were on their way to a connection that closed before writing them:
    /// back to their places, with the redelivered flag they had.
    fn restore_unsent(&self, q: &Arc<Queue>, consumer: u64, no_ack: bool, item: Queued) {
        let mut st = self.state.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.id == consumer) {
            c.sent(1, item.message.size());
            if !no_ack {
                c.unacked = c.unacked.saturating_sub(1);
            }
        }
        if !no_ack {
            st.unacked = st.unacked.saturating_sub(1);
        }
        if !st.deleted {
            st.requeue(item);
        }
        self.dispatch(q, &mut st);
        self.finish(q, st);
    }

    /// `n` deliveries (`bytes` in all) of a consumer reached its socket: its window opens.
    fn written(&self, q: &Arc<Queue>, consumer: u64, n: u32, bytes: usize) {
        let mut st = self.state.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.id == consumer) {
            c.sent(n, bytes);
        }
        self.dispatch(q, &mut st);
        self.finish(q, st);
    }

    /// Drops every ready message; returns how many there were.
    fn purge(&self, q: &Queue) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready_count();
        let logged: Vec<u64> = st
            .ready
            .iter()
            .filter(|q| q.logged)
            .map(|q| q.seq)
            .collect();
        st.ready.clear();
        st.ready_bytes = 0;
        st.ready_body_bytes = 0;
        if !logged.is_empty() {
            self.kill_logged(q, &st, logged);
        }
        if st.paged > 0 {
            if let Some(log) = st.log.as_ref() {
                if let Err(e) = log.kill_range(st.tail_from, st.next_seq) {
                    error!(queue = %q.name, error = %e, "purging the queue log failed");
                }
            }
            st.paged = 0;
            st.paged_bytes = 0;
        }
        n
    }

    fn expire(&self, q: &Arc<Queue>) {
        self.expire_due(q);
    }

    /// Bytes of this queue's log on disk.
    fn disk_bytes(&self) -> u64 {
        self.state.lock().log.as_ref().map_or(0, |l| l.disk_bytes())
    }

    /// Writes buffered log records out (clean shutdown).
    fn flush(&self) {
        if let Some(log) = self.state.lock().log.as_ref() {
            let _ = log.flush();
        }
    }

    /// Marks the queue deleted and tells its consumers. Returns the ready count it had.
    fn delete(&self) -> u32 {
        let mut st = self.state.lock();
        st.deleted = true;
        let n = st.ready_count();
        st.ready.clear();
        st.ready_bytes = 0;
        st.ready_body_bytes = 0;
        st.dead_letters.clear();
        // A pending expiry timer finds the queue deleted and does nothing.
        st.expiry_timer = None;
        st.paged = 0;
        st.paged_bytes = 0;
        if let Some(log) = st.log.take() {
            // Files are closed before removal, so their space comes back now.
            log.destroy();
        }
        for c in st.consumers.drain(..) {
            let _ = c.spec.outbox.send(Outbound::ConsumerCancelled {
                channel: c.spec.outbox.channel,
                consumer_tag: c.spec.tag.clone(),
            });
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ChannelOutbox, QueueConfig};
    use super::*;
    use bytes::Bytes;
    use tokio::sync::mpsc;

    fn msg(body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            &"".into(),
            &"q".into(),
            &Bytes::from_static(&[0, 0]),
            Bytes::from_static(body.as_bytes()),
        ))
    }

    fn consumer(outbox: &Arc<ChannelOutbox>, prefetch: u32) -> ConsumerSpec {
        ConsumerSpec {
            tag: "c".into(),
            outbox: outbox.clone(),
            no_ack: false,
            prefetch,
            exclusive: false,
            priority: 0,
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(Outbound::Deliver(d)) = rx.try_recv() {
            out.push(d);
        }
        out
    }

    #[test]
    fn prefetch_bounds_deliveries_and_acks_release_more() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = ChannelOutbox::new(ConnectionId(1), 1, tx);
        let q = Queue::new("q".into(), "/".into(), QueueConfig::default(), None);
        for b in ["a", "b", "c"] {
            q.enqueue(msg(b));
        }
        let id = q.add_consumer(consumer(&outbox, 2)).unwrap();
        let first = drain(&mut rx);
        assert_eq!(first.len(), 2);
        assert_eq!(
            q.counts(),
            QueueCounts {
                ready: 1,
                unacked: 2,
                consumers: 1
            }
        );
        let d = first.into_iter().next().unwrap();
        q.settle([(Some(id), d.item)], Settlement::Ack);
        assert_eq!(drain(&mut rx).len(), 1);
        assert_eq!(
            q.counts(),
            QueueCounts {
                ready: 0,
                unacked: 2,
                consumers: 1
            }
        );
    }

    #[test]
    fn requeued_messages_return_to_their_place_flagged() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = ChannelOutbox::new(ConnectionId(1), 1, tx);
        let q = Queue::new("q".into(), "/".into(), QueueConfig::default(), None);
        for b in ["a", "b", "c", "d"] {
            q.enqueue(msg(b));
        }
        let id = q.add_consumer(consumer(&outbox, 2)).unwrap();
        let got = drain(&mut rx);
        assert!(!q.remove_consumer(id));
        q.settle(
            got.into_iter().map(|d| (Some(d.consumer_id), d.item)).rev(),
            Settlement::Requeue,
        );
        let mut bodies = Vec::new();
        while let Some((item, _)) = q.get(true) {
            bodies.push((
                String::from_utf8(item.message.body.to_vec()).unwrap(),
                item.redelivered,
            ));
        }
        assert_eq!(
            bodies,
            [
                ("a".into(), true),
                ("b".into(), true),
                ("c".into(), false),
                ("d".into(), false)
            ]
        );
    }

    #[test]
    fn round_robin_and_priority() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = ChannelOutbox::new(ConnectionId(1), 1, tx);
        let q = Queue::new("q".into(), "/".into(), QueueConfig::default(), None);
        let a = q.add_consumer(consumer(&outbox, 0)).unwrap();
        let b = q.add_consumer(consumer(&outbox, 0)).unwrap();
        for _ in 0..4 {
            q.enqueue(msg("x"));
        }
        let ids: Vec<u64> = drain(&mut rx).iter().map(|d| d.consumer_id).collect();
        assert_eq!(ids, [a, b, a, b]);
        let mut high = consumer(&outbox, 0);
        high.priority = 5;
        let h = q.add_consumer(high).unwrap();
        q.enqueue(msg("y"));
        assert_eq!(drain(&mut rx)[0].consumer_id, h);
    }

    #[test]
    fn channel_wide_prefetch_is_shared() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let outbox = ChannelOutbox::new(ConnectionId(1), 1, tx);
        outbox.set_global_limit(3);
        let q1 = Queue::new("q1".into(), "/".into(), QueueConfig::default(), None);
        let q2 = Queue::new("q2".into(), "/".into(), QueueConfig::default(), None);
        for _ in 0..5 {
            q1.enqueue(msg("x"));
            q2.enqueue(msg("x"));
        }
        q1.add_consumer(consumer(&outbox, 0)).unwrap();
        q2.add_consumer(consumer(&outbox, 0)).unwrap();
        assert_eq!(drain(&mut rx).len(), 3);
    }
}
