//! The classic queue: today's one queue type. Ready messages in seq order with the head in RAM
//! and the rest paged to the queue's log; consumers with credit; deliveries straight to the
//! consumer's connection. A priority queue (`x-max-priority`) keeps one such list per level
//! (`lane.rs`). How messages die (TTL, length limits, rejection) and become dead letters is in
//! `deaths.rs`.

mod deaths;
mod lane;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::error;
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
use crate::message::{priority_property, Message};
use crate::persistence::Persistence;
use crate::registry::{now_millis, ConsumerActivity};
use crate::ConnectionId;
use deaths::Clock;
use lane::Lane;

/// A queue keeps at most this many ready messages in RAM (and at most `RAM_HEAD_BYTES`); the
/// rest wait in its log on disk and are read back as the head drains. This is what bounds
/// memory by design: a few hundred bytes per message times this, per queue, and under memory
/// pressure (half the memory limit) every queue pages new messages whatever its head holds.
/// A priority queue's levels share the allowance.
pub const RAM_HEAD_MESSAGES: usize = 65536;
/// ... and at most this many bytes of them, counting what each costs beyond its bytes
/// (`MESSAGE_OVERHEAD`).
pub const RAM_HEAD_BYTES: usize = 16 * 1024 * 1024;
/// What a message in RAM costs beyond its names, properties and body: its `Queued` entry, the
/// `Message` with its `Arc`, and the allocations' headers (about 200 bytes). Counted against
/// `RAM_HEAD_BYTES`, so that a head of small messages with large headers (dead letters with
/// `x-death`) is bounded by what it really takes.
const MESSAGE_OVERHEAD: usize = 200;

pub(super) struct ClassicQueue {
    persistence: Option<Arc<Persistence>>,
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    /// One lane per priority level, lowest first: one unless the queue has `x-max-priority`.
    lanes: Vec<Lane>,
    next_seq: u64,
    unacked: u32,
    consumers: Vec<Consumer>,
    /// Round-robin position among consumers.
    cursor: usize,
    next_consumer_id: u64,
    deleted: bool,
    /// The settings in effect: the declared arguments with the policies merged in.
    effective: QueueArguments,
    /// Messages that died under the lock, published to the dead-letter exchange after it.
    dead_letters: Vec<DeadLetter>,
    /// The log records (level, seq) of the persistent ones: they die once the letters are
    /// stored (`deaths::settle_lettered`).
    lettered: Vec<(u8, u64)>,
    /// Records waiting for the group commit (ticket) that stores their dead letters.
    awaiting_letters: VecDeque<(u64, Vec<(u8, u64)>)>,
    /// A timer is set to look at `awaiting_letters` again.
    letters_timer: bool,
    /// The timer set for the next expiry at a lane's head, and its deadline.
    expiry_timer: Option<(Millis, TimerId)>,
    /// Messages expired since the operation began (see `deaths::EXPIRY_BATCH`).
    expired_in_pass: usize,
    /// The seq of the message `enqueue` is offering to consumers (see `head_expired`).
    being_enqueued: Option<u64>,
}

impl QueueState {
    fn ready_count(&self) -> u32 {
        self.lanes.iter().map(Lane::len).sum::<u64>() as u32
    }

    /// Body bytes of the ready messages, in RAM and on disk: what `x-max-length-bytes` limits.
    fn ready_body_bytes(&self) -> u64 {
        self.lanes.iter().map(Lane::body_bytes).sum()
    }

    /// The lane the next message comes from: the highest level that has one.
    fn head_lane(&self) -> Option<usize> {
        self.lanes.iter().rposition(|l| !l.is_empty())
    }

    /// The lane a message belongs in: its `priority` property, capped at the queue's maximum
    /// (RabbitMQ's rule); lane 0 when the queue has no priorities.
    fn lane_for(&self, message: &Message) -> u8 {
        if self.lanes.len() <= 1 {
            return 0;
        }
        let max = (self.lanes.len() - 1) as u8;
        priority_property(&message.properties).map_or(0, |p| p.min(max))
    }

    /// The RAM head is full: new messages go to disk.
    fn ram_full(&self) -> bool {
        let (messages, bytes) = self
            .lanes
            .iter()
            .fold((0, 0), |(n, b), l| (n + l.ready.len(), b + l.ready_bytes));
        messages >= RAM_HEAD_MESSAGES || bytes + messages * MESSAGE_OVERHEAD >= RAM_HEAD_BYTES
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
    /// A classic queue with `arguments` in effect. A durable queue has a log per lane,
    /// recovered (`logs`); others get one only if they have to page out.
    pub(super) fn new(
        effective: QueueArguments,
        persistence: Option<Arc<Persistence>>,
        logs: Vec<(QueueLog, Recovered)>,
    ) -> ClassicQueue {
        let levels = effective.priority_levels();
        let mut lanes: Vec<Lane> = Vec::with_capacity(levels);
        let mut next_seq = 0;
        for (log, recovered) in logs.into_iter().take(levels) {
            next_seq = next_seq.max(recovered.next_seq);
            lanes.push(Lane::recovered(log, recovered));
        }
        lanes.resize_with(levels, Lane::default);
        let state = QueueState {
            lanes,
            next_seq,
            effective,
            ..QueueState::default()
        };
        ClassicQueue {
            persistence,
            state: Mutex::new(state),
        }
    }

    fn append(
        &self,
        st: &mut QueueState,
        lane: u8,
        seq: u64,
        persistent: bool,
        message: &Message,
        expires_at: Option<Millis>,
    ) -> std::io::Result<u64> {
        let lane_state = &mut st.lanes[usize::from(lane)];
        if lane_state.log.is_none() {
            let p = self.persistence.as_ref().expect("paging needs persistence");
            lane_state.log = Some(p.open_paging_log()?);
        }
        let mut lengths = [0u8; 2];
        let context = message.log_context(&mut lengths);
        let log = lane_state.log.as_ref().expect("opened above");
        // A transient message in a durable queue's log is for paging only: not persistent.
        log.append(&NewRecord {
            seq,
            persistent,
            meta: RecordMeta {
                enqueued_at: now_millis(),
                expires_at,
                priority: lane,
            },
            context: &context,
            payload: &message.body,
        })
    }

    /// Takes the head of `lane`, reading from disk if its RAM part is empty.
    fn take_ready(&self, q: &Queue, st: &mut QueueState, lane: usize) -> Option<Queued> {
        let l = &mut st.lanes[lane];
        if l.ready.is_empty() && l.paged > 0 {
            l.page_in(&q.name, lane as u8);
        }
        let item = l.pop()?;
        if item.logged && item.message.persistent {
            if let Some(log) = l.log.as_ref() {
                log.delivered(item.seq);
            }
        }
        Some(item)
    }

    /// Hands ready messages to consumers while both exist and consumers have credit.
    fn dispatch(&self, q: &Arc<Queue>, st: &mut QueueState) {
        let mut clock = Clock::new(q);
        while let Some(lane) = st.head_lane() {
            if st.lanes[lane].ready.is_empty() {
                st.lanes[lane].page_in(&q.name, lane as u8);
                // Nothing readable there (the lane is empty now): look again.
                continue;
            }
            let Some(i) = st.pick_consumer() else { return };
            // An expired message is never delivered (RabbitMQ drops it at the head first).
            if st.head_expired(lane, &mut clock) {
                if !self.drop_head(q, st, lane, DeathReason::Expired) {
                    return;
                }
                continue;
            }
            st.cursor = (i + 1) % st.consumers.len();
            let bytes = st.lanes[lane].ready.front().map_or(0, |q| q.message.size());
            if !st.consumers[i].acquire(bytes) {
                // Lost the channel-wide credit to another queue's consumer: try the others.
                if st.consumers.iter().all(|c| !c.has_credit()) {
                    return;
                }
                continue;
            }
            let Some(item) = self.take_ready(q, st, lane) else {
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
                        st.lanes[lane].dead_seqs.push(seq);
                    }
                    q.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(undelivered) => {
                    // The connection is gone; it will cancel this consumer. Keep the message.
                    let consumer = st.consumers.remove(i);
                    if !no_ack {
                        consumer.spec.outbox.release(1);
                    }
                    st.lanes[lane].requeue(undelivered.item);
                    if st.consumers.is_empty() {
                        return;
                    }
                    st.cursor %= st.consumers.len();
                }
            }
        }
    }
}
impl QueueBackend for ClassicQueue {
    /// The settings in effect now: the arguments with the policies merged in.
    fn effective_arguments(&self) -> QueueArguments {
        self.state.lock().effective.clone()
    }

    /// A policy changed the settings: a lower length limit drops from the head at once
    /// (under drop-head only, as RabbitMQ), a dead-letter exchange applies to the next death,
    /// a TTL to the next message.
    fn set_effective(&self, q: &Arc<Queue>, effective: QueueArguments) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        st.effective = effective;
        self.enforce_max_length(q, &mut st);
        self.finish(q, st);
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
        st.lanes
            .iter()
            .map(|l| l.ready_bytes + l.paged_bytes as usize)
            .sum()
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

    /// Adds a message at the tail (of its lane) and delivers whatever consumers have credit
    /// for. A queue deleted meanwhile drops it, as a queue that no longer exists would; that
    /// still counts as accepted (RabbitMQ confirms such a publish too).
    fn enqueue(&self, q: &Arc<Queue>, message: Arc<Message>) -> Enqueued {
        q.stats.published.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        if st.deleted {
            return Enqueued::Accepted { ticket: 0 };
        }
        if st.effective.overflow != Overflow::DropHead && st.would_overflow(&message) {
            // reject-publish(-dlx): refused before any consumer sees it, even one waiting.
            if st.effective.overflow == Overflow::RejectPublishDlx {
                st.dead_letter(message, DeathReason::Maxlen, None);
            }
            self.finish(q, st);
            return Enqueued::Rejected;
        }
        let expires_at = st.expiry_of(&message, q);
        let priority = st.lane_for(&message);
        let lane = usize::from(priority);
        // The seq is used up even if the append fails: part of the record may reach the file.
        let seq = st.next_seq;
        st.next_seq += 1;
        let persist = q.config.durable && message.persistent && st.lanes[lane].log.is_some();
        let to_disk = self.persistence.is_some()
            && (st.lanes[lane].paged > 0
                || st.ram_full()
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
            match self.append(&mut st, priority, seq, persist, &message, expires_at) {
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
            let body_len = message.body.len();
            st.lanes[lane].paged_out(seq, body_len, expires_at.is_some());
        } else {
            st.lanes[lane].push(Queued {
                seq,
                message,
                redelivered: false,
                logged,
                expires_at,
                priority,
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
                let Some(lane) = st.head_lane() else {
                    break None;
                };
                if self.head_expired(q, &mut st, lane, &mut clock) {
                    if self.drop_head(q, &mut st, lane, DeathReason::Expired) {
                        continue;
                    }
                    // A batch of dead letters is waiting: out with them, then go on.
                    busy = true;
                    break None;
                }
                match self.take_ready(q, &mut st, lane) {
                    Some(item) => break Some(item),
                    // Nothing readable in that lane after all: it is empty now.
                    None => continue,
                }
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
                st.lanes[usize::from(item.priority)]
                    .dead_seqs
                    .push(item.seq);
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
        for (consumer, mut item) in deliveries {
            st.unacked = st.unacked.saturating_sub(1);
            if let Some(id) = consumer {
                if let Some(c) = st.consumers.iter_mut().find(|c| c.id == id) {
                    c.unacked = c.unacked.saturating_sub(1);
                }
            }
            if st.deleted {
                continue;
            }
            let lane = usize::from(item.priority).min(st.lanes.len() - 1);
            match how {
                Settlement::Requeue => {
                    item.redelivered = true;
                    q.stats.redelivered.fetch_add(1, Ordering::Relaxed);
                    st.lanes[lane].requeue(item);
                }
                Settlement::Ack => {
                    q.stats.acked.fetch_add(1, Ordering::Relaxed);
                    if item.logged {
                        st.lanes[lane].dead_seqs.push(item.seq);
                    }
                }
                Settlement::Discard => {
                    let record = item.logged.then_some((lane as u8, item.seq));
                    st.dead_letter(item.message, DeathReason::Rejected, record);
                }
            }
        }
        // The journal hears of the settled records before new deliveries go out.
        for lane in &mut st.lanes {
            lane.kill_dead(&q.name);
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
            let lane = usize::from(item.priority).min(st.lanes.len() - 1);
            st.lanes[lane].requeue(item);
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
        let next_seq = st.next_seq;
        let mut n = 0;
        for lane in &mut st.lanes {
            n += lane.clear(&q.name, next_seq);
        }
        n as u32
    }

    fn expire(&self, q: &Arc<Queue>) {
        self.expire_due(q);
    }

    fn upkeep(&self, q: &Arc<Queue>) {
        self.letters_upkeep(q);
    }

    /// Bytes of this queue's logs on disk.
    fn disk_bytes(&self) -> u64 {
        let st = self.state.lock();
        st.lanes
            .iter()
            .filter_map(|l| l.log.as_ref())
            .map(|l| l.disk_bytes())
            .sum()
    }

    /// Writes buffered log records out (clean shutdown).
    fn flush(&self) {
        let st = self.state.lock();
        for log in st.lanes.iter().filter_map(|l| l.log.as_ref()) {
            let _ = log.flush();
        }
    }

    /// Marks the queue deleted and tells its consumers. Returns the ready count it had.
    fn delete(&self) -> u32 {
        let mut st = self.state.lock();
        st.deleted = true;
        let n = st.ready_count();
        st.dead_letters.clear();
        st.lettered.clear();
        st.awaiting_letters.clear();
        // A pending expiry timer finds the queue deleted and does nothing.
        st.expiry_timer = None;
        // The higher levels' directories are inside the lowest's: they go first.
        for lane in st.lanes.iter_mut().rev() {
            let log = lane.log.take();
            *lane = Lane::default();
            if let Some(log) = log {
                // Files are closed before removal, so their space comes back now.
                log.destroy();
            }
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
