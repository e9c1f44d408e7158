//! How messages leave a classic queue other than by being consumed, as RabbitMQ 3.10's
//! `rabbit_amqqueue_process` decides it: their TTL runs out at the head (`x-message-ttl`, the
//! `expiration` property), the queue is over its length limit (`x-max-length`,
//! `x-max-length-bytes`, `x-overflow`), or a consumer rejects them. Each death is a dead letter
//! for the queue's `x-dead-letter-exchange` if it has one (`dead_letter.rs` writes `x-death`).
//!
//! Dead letters are collected under the queue's lock and published after it is released
//! (`finish`): a dead-letter route may lead back to this very queue. Expiry looks at the head
//! only, as RabbitMQ's does: a message behind one that does not expire waits for it, and
//! counts as ready until then. In a priority queue the head is the next message out, so an
//! expired message of a low level waits while a higher level holds a live one
//! (`rabbit_priority_queue:dropwhile` goes through the levels the same way).

use std::sync::Arc;

use parking_lot::MutexGuard;

use super::{ClassicQueue, QueueState};
use crate::clock::{Millis, Timers};
use crate::dead_letter::{DeadLetter, DeadLetterTarget, DeathReason};
use crate::message::Message;
use crate::queue::arguments::Overflow;
use crate::queue::Queue;

/// How often records waiting for their dead letters' group commit look again (a group commit
/// takes a few milliseconds).
const LETTERS_CHECK_MS: Millis = 5;

/// Expired messages removed under the lock in one go: the bound on how long a mass expiry
/// holds the lock and on the dead letters it gathers in RAM (the rest continues on the timer).
const EXPIRY_BATCH: usize = 4096;

/// The broker clock, read at most once per operation and only if a message has an expiry.
pub(super) struct Clock<'a> {
    timers: &'a Timers,
    now: Option<Millis>,
}

impl<'a> Clock<'a> {
    pub(super) fn new(q: &'a Queue) -> Clock<'a> {
        Clock {
            timers: &q.env.timers,
            now: None,
        }
    }

    fn now(&mut self) -> Millis {
        *self.now.get_or_insert_with(|| self.timers.now())
    }
}

impl QueueState {
    /// The head in RAM of `lane` has expired. The message being enqueued is exempt while
    /// consumers are offered it: RabbitMQ delivers even a TTL 0 message to a consumer that can
    /// take it at once, and expires it only if none can.
    pub(super) fn head_expired(&self, lane: usize, clock: &mut Clock) -> bool {
        self.lanes[lane].ready.front().is_some_and(|head| {
            head.expires_at.is_some_and(|at| at <= clock.now())
                && Some(head.seq) != self.being_enqueued
        })
    }

    /// When a message enqueued now expires: the shorter of the queue's TTL and its own.
    pub(super) fn expiry_of(&self, message: &Message, q: &Queue) -> Option<Millis> {
        let ttl = match (self.effective.message_ttl, message.expiration) {
            (None, None) => return None,
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(q.env.timers.now().saturating_add(ttl))
    }

    /// A publish of `message` would take the queue over a length limit (what `reject-publish`
    /// refuses). Ready messages count, unacknowledged ones do not; bytes are body bytes.
    pub(super) fn would_overflow(&self, message: &Message) -> bool {
        let args = &self.effective;
        args.max_length
            .is_some_and(|max| u64::from(self.ready_count()) + 1 > max)
            || args
                .max_length_bytes
                .is_some_and(|max| self.ready_body_bytes() + message.body.len() as u64 > max)
    }

    fn over_limit(&self) -> bool {
        let args = &self.effective;
        args.max_length
            .is_some_and(|max| u64::from(self.ready_count()) > max)
            || args
                .max_length_bytes
                .is_some_and(|max| self.ready_body_bytes() > max)
    }

    /// `message` died: it becomes a dead letter if the queue has somewhere to send it.
    /// `record` is its log record (level and seq), if it has one: a persistent message's
    /// record dies only once its dead letter is stored (`finish`), others' at once.
    pub(super) fn dead_letter(
        &mut self,
        message: Arc<Message>,
        reason: DeathReason,
        record: Option<(u8, u64)>,
    ) {
        let lettered = self.effective.dead_letter_exchange.is_some();
        if let Some((lane, seq)) = record {
            if lettered && message.persistent {
                self.lettered.push((lane, seq));
            } else {
                self.lanes[usize::from(lane)].dead_seqs.push(seq);
            }
        }
        if lettered {
            self.dead_letters.push(DeadLetter { message, reason });
        }
    }

    fn dead_letter_target(&self) -> Option<DeadLetterTarget> {
        Some(DeadLetterTarget {
            exchange: self.effective.dead_letter_exchange.clone()?,
            routing_key: self.effective.dead_letter_routing_key.clone(),
        })
    }
}

impl ClassicQueue {
    /// Removes the head of `lane` (reading it from disk if need be) because it died for
    /// `reason`. False if there is none, or if this pass has expired a batch already (length
    /// limits are enforced whole: they drop about one message per publish).
    pub(super) fn drop_head(
        &self,
        q: &Queue,
        st: &mut QueueState,
        lane: usize,
        reason: DeathReason,
    ) -> bool {
        if reason == DeathReason::Expired {
            if st.expired_in_pass >= EXPIRY_BATCH {
                return false;
            }
            st.expired_in_pass += 1;
        }
        let l = &mut st.lanes[lane];
        if l.ready.is_empty() && l.paged > 0 {
            l.page_in(&q.name, lane as u8);
        }
        let Some(item) = l.pop() else {
            return false;
        };
        let record = item.logged.then_some((lane as u8, item.seq));
        st.dead_letter(item.message, reason, record);
        true
    }

    /// The head of `lane` has expired, reading it from disk if it is there and may have an
    /// expiry.
    pub(super) fn head_expired(
        &self,
        q: &Queue,
        st: &mut QueueState,
        lane: usize,
        clock: &mut Clock,
    ) -> bool {
        let l = &mut st.lanes[lane];
        if l.ready.is_empty() && l.paged > 0 && l.paged_may_expire {
            l.page_in(&q.name, lane as u8);
        }
        st.head_expired(lane, clock)
    }

    /// drop-head: what is over the limit leaves from the head (the highest priority first,
    /// as RabbitMQ's priority queue drops), dead-lettered as `maxlen`.
    pub(super) fn enforce_max_length(&self, q: &Queue, st: &mut QueueState) {
        // Under reject-publish a queue over a (lowered) limit keeps what it has and refuses
        // publishes until it is below.
        if st.effective.overflow != Overflow::DropHead {
            return;
        }
        while st.over_limit() {
            let Some(lane) = st.head_lane() else { break };
            // Each call takes a message or finds that the lane has none after all (its log
            // ended early): either way the loop moves on.
            self.drop_head(q, st, lane, DeathReason::Maxlen);
        }
    }

    /// The end of every operation: expired messages leave the head, the journal hears of the
    /// records that died, the timer is set for the next expiry, and, with the lock released,
    /// the dead letters go to the dead-letter exchange.
    pub(super) fn finish(&self, q: &Arc<Queue>, mut st: MutexGuard<QueueState>) {
        let mut clock = Clock::new(q);
        while let Some(lane) = st.head_lane() {
            if !self.head_expired(q, &mut st, lane, &mut clock)
                || !self.drop_head(q, &mut st, lane, DeathReason::Expired)
            {
                break;
            }
        }
        st.expired_in_pass = 0;
        for lane in &mut st.lanes {
            lane.kill_dead(&q.name);
        }
        self.settle_lettered(q, &mut st);
        self.arm_expiry_timer(q, &mut st);
        if st.dead_letters.is_empty() {
            return;
        }
        let letters = std::mem::take(&mut st.dead_letters);
        let lettered = std::mem::take(&mut st.lettered);
        let target = st.dead_letter_target();
        drop(st);
        let ticket = match (target, q.env.vhost.upgrade()) {
            (Some(target), Some(vhost)) => vhost.publish_dead_letters(q, &target, letters),
            _ => 0,
        };
        if lettered.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        st.awaiting_letters.push_back((ticket, lettered));
        self.settle_lettered(q, &mut st);
    }

    /// Kills the records of messages whose dead letters are now stored (their group commit
    /// is durable), and keeps checking, on a timer, for those still waiting. Dead-lettering
    /// is thus at least once for persistent messages: a crash in between brings a message
    /// back to die again, never loses it (RabbitMQ 3.10's classic queues lose it instead).
    fn settle_lettered(&self, q: &Arc<Queue>, st: &mut QueueState) {
        if st.awaiting_letters.is_empty() {
            return;
        }
        let syncer = self.persistence.as_ref().map(|p| &p.syncer);
        let durable = syncer.map_or(u64::MAX, |s| s.durable());
        while let Some((ticket, _)) = st.awaiting_letters.front() {
            if *ticket > durable {
                break;
            }
            let ticket = *ticket;
            let (_, records) = st.awaiting_letters.pop_front().expect("just looked");
            if st.deleted || syncer.is_some_and(|s| ticket > 0 && s.lost(ticket)) {
                // Deleted: nothing to kill. Lost: the letter is not on disk, so the source
                // record stays for the next start.
                continue;
            }
            for (lane, seq) in records {
                if let Some(l) = st.lanes.get_mut(usize::from(lane)) {
                    l.dead_seqs.push(seq);
                }
            }
        }
        for lane in &mut st.lanes {
            lane.kill_dead(&q.name);
        }
        if !st.awaiting_letters.is_empty() && !st.letters_timer {
            st.letters_timer = true;
            let queue = Arc::downgrade(q);
            let due = q.env.timers.now().saturating_add(LETTERS_CHECK_MS);
            q.env.timers.schedule(due, move || {
                if let Some(queue) = queue.upgrade() {
                    queue.upkeep();
                }
            });
        }
    }

    /// The dead-letter timer fired: see `settle_lettered`.
    pub(super) fn letters_upkeep(&self, q: &Arc<Queue>) {
        let mut st = self.state.lock();
        st.letters_timer = false;
        self.settle_lettered(q, &mut st);
    }

    /// Sets the timer for the head's expiry unless one is set for no later. A head that is
    /// already due (a pass stopped at `EXPIRY_BATCH`) gets a timer due now: the timer task
    /// runs it next, so a mass expiry proceeds in batches without holding the lock.
    fn arm_expiry_timer(&self, q: &Arc<Queue>, st: &mut QueueState) {
        let head = st.head_lane().and_then(|lane| st.lanes[lane].ready.front());
        let Some(due) = head.and_then(|head| head.expires_at) else {
            return;
        };
        if st.expiry_timer.is_some_and(|(at, _)| at <= due) {
            return;
        }
        if let Some((_, old)) = st.expiry_timer.take() {
            q.env.timers.cancel(old);
        }
        let queue = Arc::downgrade(q);
        let id = q.env.timers.schedule(due, move || {
            if let Some(queue) = queue.upgrade() {
                queue.expire();
            }
        });
        st.expiry_timer = Some((due, id));
    }

    /// The expiry timer fired: what is due leaves, a batch at a time.
    pub(super) fn expire_due(&self, q: &Arc<Queue>) {
        let mut st = self.state.lock();
        st.expiry_timer = None;
        if st.deleted {
            return;
        }
        self.finish(q, st);
    }
}
