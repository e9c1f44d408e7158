//! Queues: the handle every part of the broker holds (`Queue`), and the queue types behind it.
//!
//! `Queue` is what is shared: its name, vhost, declared configuration, exclusive owner and
//! counters, as `Arc<Queue>` in the vhost's map, in bindings, in deliveries. What the queue
//! does (enqueue, consume, get, settle, purge, delete, counts, recovery) belongs to its type,
//! behind the `QueueBackend` trait, in the spirit of RabbitMQ's `rabbit_queue_type`:
//! `classic.rs` is today's one implementation, and a quorum queue or a stream is a new module
//! implementing the trait, chosen by `x-queue-type` in `Queue::open`.
//!
//! A queue is a data structure behind a short-held lock, not an actor: the publishing
//! connection enqueues and, when a consumer has credit, hands the delivery straight to the
//! consumer's connection. That is the only task hop between the two sockets.
//!
//! Every message gets a sequence number when enqueued. The ready list is kept in sequence
//! order, so a message that comes back (requeue, a closed channel) returns to its original
//! place. The same numbers are what a disk-backed queue indexes by.

pub mod arguments;
mod classic;
mod consumer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use warren_protocol::{FieldTable, ShortStr};
use warren_store::{QueueLog, Recovered};

pub use arguments::{QueueArguments, QueueType};
pub use classic::{RAM_HEAD_BYTES, RAM_HEAD_MESSAGES};
pub use consumer::{
    ChannelOutbox, ConsumerSpec, Delivery, Outbound, SOCKET_WINDOW, SOCKET_WINDOW_BYTES,
};

use crate::clock::{Millis, SystemClock, Timers};
use crate::error::{resource, AmqpError, AmqpResult};
use crate::message::Message;
use crate::persistence::Persistence;
use crate::policy::{self, Policy};
use crate::registry::ConsumerActivity;
use crate::vhost::VHost;
use crate::ConnectionId;

/// A message in a queue, or delivered from it and awaiting settlement.
#[derive(Clone, Debug)]
pub struct Queued {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// The message has a record in the queue's log (to be marked dead when settled).
    pub logged: bool,
    /// When its TTL runs out (broker time), if it has one: the queue's `x-message-ttl` or
    /// its own `expiration`, whichever is shorter, from when it was enqueued.
    pub expires_at: Option<Millis>,
    /// Its priority level in this queue: its `priority` property capped at the queue's
    /// `x-max-priority` (0 in a queue without). A requeued message goes back to this level.
    pub priority: u8,
}

/// `Queue::consumer_timeout` when neither arguments nor policy set one.
const NO_CONSUMER_TIMEOUT: u64 = u64::MAX;

/// What a queue needs from the broker around it: the timers its TTLs run on, and the vhost its
/// dead letters are published to (weak: the vhost owns its queues).
#[derive(Clone)]
pub struct QueueEnv {
    pub timers: Arc<Timers>,
    pub vhost: Weak<VHost>,
}

impl QueueEnv {
    /// Timers on the system clock and no vhost: a queue on its own (unit tests).
    pub fn detached() -> QueueEnv {
        QueueEnv {
            timers: Timers::new(Arc::new(SystemClock)),
            vhost: Weak::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct QueueConfig {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// What a queue did with a message handed to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// The queue holds it. A persistent message in a durable queue is on disk once the group
    /// commit with this ticket is announced durable (0: nothing to wait for).
    Accepted { ticket: u64 },
    /// The queue could not take it (its log could not store it): the publisher gets a nack.
    Rejected,
}

/// How a delivery ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// Back to its place in the queue, flagged redelivered.
    Requeue,
    /// Rejected without requeue: dropped.
    Discard,
}

/// Counters for the management API; updated with relaxed atomics, read off the hot path.
#[derive(Default)]
pub struct QueueStats {
    pub published: AtomicU64,
    pub delivered: AtomicU64,
    pub acked: AtomicU64,
    pub redelivered: AtomicU64,
}

/// A point-in-time view of a queue's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub ready: u32,
    pub unacked: u32,
    pub consumers: u32,
}

/// What a queue type implements. The broker calls these through `Queue`; `q` is the queue
/// itself, for what it carries (name, configuration, counters) and for deliveries, which
/// name their queue.
pub trait QueueBackend: Send + Sync {
    /// The settings in effect now: the arguments with the policies merged in.
    fn effective_arguments(&self) -> QueueArguments;
    /// New settings from a policy change. What they lower takes effect at once (a shorter
    /// `max-length` drops from the head); a new TTL applies to messages enqueued from now.
    fn set_effective(&self, q: &Arc<Queue>, effective: QueueArguments);
    fn counts(&self) -> QueueCounts;
    /// Bytes of the ready messages.
    fn ready_bytes(&self) -> usize;
    fn is_deleted(&self) -> bool;
    /// The connections (and channels) the consumers are on.
    fn consumer_channels(&self) -> Vec<(ConnectionId, u16)>;

    /// Takes a message (at the tail) and delivers what consumers have credit for.
    fn enqueue(&self, q: &Arc<Queue>, message: Arc<Message>) -> Enqueued;
    /// Adds a consumer; returns its id.
    fn add_consumer(&self, q: &Arc<Queue>, spec: ConsumerSpec) -> AmqpResult<u64>;
    /// Removes a consumer; true if the queue is now unused and auto-delete.
    fn remove_consumer(&self, q: &Queue, id: u64) -> bool;
    /// Whether the consumer is delivered to (single active consumer), for the management API.
    fn consumer_activity(&self, id: u64) -> ConsumerActivity;
    /// Delivers again what credit allows (credit was returned elsewhere).
    fn kick(&self, q: &Arc<Queue>);
    /// basic.get: the head message and how many remain ready.
    fn get(&self, q: &Arc<Queue>, no_ack: bool) -> Option<(Queued, u32)>;
    /// Settles deliveries (`consumer` None for basic.get ones).
    fn settle(
        &self,
        q: &Arc<Queue>,
        deliveries: &mut dyn Iterator<Item = (Option<u64>, Queued)>,
        how: Settlement,
    );
    /// A delivery that never reached its connection's socket comes back.
    fn restore_unsent(&self, q: &Arc<Queue>, consumer: u64, no_ack: bool, item: Queued);
    /// `n` deliveries (`bytes` in all) of a consumer were written to its socket.
    fn written(&self, q: &Arc<Queue>, consumer: u64, n: u32, bytes: usize);
    /// Drops every ready message; returns how many there were.
    fn purge(&self, q: &Queue) -> u32;
    /// Drops (or dead-letters) what has expired at the head.
    fn expire(&self, q: &Arc<Queue>);
    /// Work a timer set for later (a classic queue: records whose dead letters are now
    /// stored).
    fn upkeep(&self, _q: &Arc<Queue>) {}
    /// The queue is deleted: consumers are told, storage is freed. Returns the ready count.
    fn delete(&self) -> u32;

    /// Bytes of the queue's storage on disk.
    fn disk_bytes(&self) -> u64;
    /// Writes buffered storage out (clean shutdown).
    fn flush(&self);
}

pub struct Queue {
    pub name: ShortStr,
    pub vhost: Arc<str>,
    pub config: QueueConfig,
    /// The connection that owns an exclusive queue.
    pub owner: Option<ConnectionId>,
    pub stats: QueueStats,
    pub(crate) env: QueueEnv,
    /// A cycle of dead letters from this queue was logged (it is, once).
    pub(crate) cycle_reported: AtomicBool,
    /// Its arguments as declared (`config.arguments`, typed); policies are merged into them.
    declared: QueueArguments,
    /// The policies that apply to it, for the management API.
    policies: parking_lot::Mutex<AppliedPolicies>,
    /// x-expires (or a policy's `expires`), in milliseconds, 0 for none: the queue is deleted
    /// once unused (no consumers, no basic.get, no redeclare) for this long.
    expires: AtomicU64,
    /// The consumer timeout in milliseconds its arguments or policy set (`NO_CONSUMER_TIMEOUT`
    /// when they set none: the broker's applies), read for every delivery.
    consumer_timeout: AtomicU64,
    /// When it was last used, and the deadline of the expiry timer set (if any).
    lease: parking_lot::Mutex<Lease>,
    backend: Box<dyn QueueBackend>,
}

/// The policy and operator policy that apply to a queue, and their merged definition
/// (`effective_policy_definition`).
#[derive(Clone, Default)]
pub struct AppliedPolicies {
    pub policy: Option<Arc<Policy>>,
    pub operator: Option<Arc<Policy>>,
    pub definition: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default)]
struct Lease {
    last_used: Millis,
    timer_due: Option<Millis>,
}

impl Queue {
    /// A classic queue that lives in memory only (no data directory).
    pub fn new(
        name: ShortStr,
        vhost: Arc<str>,
        config: QueueConfig,
        owner: Option<ConnectionId>,
    ) -> Arc<Queue> {
        let declared =
            QueueArguments::recovered(&config.arguments, &resource("queue", &name, &vhost));
        let backend = Box::new(classic::ClassicQueue::new(
            declared.clone(),
            None,
            Vec::new(),
        ));
        Self::with_backend(
            name,
            vhost,
            config,
            owner,
            QueueEnv::detached(),
            declared,
            backend,
        )
    }

    /// A queue of the type its arguments name, with its storage: a durable queue its logs
    /// (recovered, one per priority level: `Persistence::open_queue_logs`), others one only
    /// if they have to page out. Only classic queues exist yet:
    /// the other types are refused (declare refuses them earlier, with RabbitMQ's checks).
    pub fn open(
        name: ShortStr,
        vhost: Arc<str>,
        config: QueueConfig,
        owner: Option<ConnectionId>,
        env: QueueEnv,
        persistence: Option<Arc<Persistence>>,
        logs: Vec<(QueueLog, Recovered)>,
    ) -> AmqpResult<Arc<Queue>> {
        let what = resource("queue", &name, &vhost);
        let declared = QueueArguments::recovered(&config.arguments, &what);
        let backend: Box<dyn QueueBackend> = match declared.queue_type {
            QueueType::Classic => Box::new(classic::ClassicQueue::new(
                declared.clone(),
                persistence,
                logs,
            )),
            other => {
                return Err(AmqpError::not_implemented(format!(
                    "queues of type '{}' are not available in this version of Warren ({what})",
                    other.as_str()
                )))
            }
        };
        Ok(Self::with_backend(
            name, vhost, config, owner, env, declared, backend,
        ))
    }

    fn with_backend(
        name: ShortStr,
        vhost: Arc<str>,
        config: QueueConfig,
        owner: Option<ConnectionId>,
        env: QueueEnv,
        declared: QueueArguments,
        backend: Box<dyn QueueBackend>,
    ) -> Arc<Queue> {
        let expires = AtomicU64::new(declared.expires.unwrap_or(0));
        let consumer_timeout =
            AtomicU64::new(declared.consumer_timeout.unwrap_or(NO_CONSUMER_TIMEOUT));
        Arc::new(Queue {
            name,
            vhost,
            config,
            owner,
            stats: QueueStats::default(),
            env,
            cycle_reported: AtomicBool::new(false),
            declared,
            policies: parking_lot::Mutex::new(AppliedPolicies::default()),
            expires,
            consumer_timeout,
            lease: parking_lot::Mutex::new(Lease::default()),
            backend,
        })
    }

    /// `queue 'name' in vhost 'v'`, as RabbitMQ's error texts put it.
    pub fn describe(&self) -> String {
        resource("queue", &self.name, &self.vhost)
    }

    /// Exclusive queues may be used only by the connection that declared them.
    pub fn check_owner(&self, connection: ConnectionId) -> AmqpResult<()> {
        match self.owner {
            Some(owner) if owner != connection => Err(self.locked_error()),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's 405 for a queue another connection holds exclusively, or whose exclusive
    /// flag a redeclare does not match.
    pub fn locked_error(&self) -> AmqpError {
        AmqpError::resource_locked(format!(
            "cannot obtain exclusive access to locked {}. It could be originally declared on another \
             connection or the exclusive property value does not match that of the original declaration.",
            self.describe()
        ))
    }

    pub fn effective_arguments(&self) -> QueueArguments {
        self.backend.effective_arguments()
    }

    pub fn queue_type(&self) -> QueueType {
        self.declared.queue_type
    }

    /// The consumer timeout its arguments or policy set, in milliseconds (0: none for this
    /// queue); None: the broker's applies.
    pub fn consumer_timeout(&self) -> Option<u64> {
        let ms = self.consumer_timeout.load(Ordering::Relaxed);
        (ms != NO_CONSUMER_TIMEOUT).then_some(ms)
    }

    /// The policies that apply to it now.
    pub fn applied_policies(&self) -> AppliedPolicies {
        self.policies.lock().clone()
    }

    /// A policy change reached this queue: `policy` and `operator` are what apply now. If
    /// either differs from before, the settings are recomputed and handed to the queue's
    /// type, and an `expires` countdown starts again (as RabbitMQ restarts it).
    pub(crate) fn apply_policies(
        self: &Arc<Self>,
        policy: Option<Arc<Policy>>,
        operator: Option<Arc<Policy>>,
    ) {
        let same = |a: &Option<Arc<Policy>>, b: &Option<Arc<Policy>>| match (a, b) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        let definition = {
            let mut applied = self.policies.lock();
            if same(&applied.policy, &policy) && same(&applied.operator, &operator) {
                return;
            }
            let definition = policy::merged_definition(policy.as_deref(), operator.as_deref());
            *applied = AppliedPolicies {
                policy,
                operator,
                definition: definition.clone(),
            };
            definition
        };
        let effective =
            policy::effective_queue_arguments(&self.declared, &self.config.arguments, &definition);
        self.expires
            .store(effective.expires.unwrap_or(0), Ordering::Relaxed);
        self.consumer_timeout.store(
            effective.consumer_timeout.unwrap_or(NO_CONSUMER_TIMEOUT),
            Ordering::Relaxed,
        );
        self.backend.set_effective(self, effective);
        self.mark_used();
    }

    pub fn counts(&self) -> QueueCounts {
        self.backend.counts()
    }

    /// Bytes of the ready messages: those in RAM as they are held, those only on disk by
    /// their bodies.
    pub fn ready_bytes(&self) -> usize {
        self.backend.ready_bytes()
    }

    pub fn is_deleted(&self) -> bool {
        self.backend.is_deleted()
    }

    /// The connections (and channels) this queue's consumers are on, for the management API.
    pub fn consumer_channels(&self) -> Vec<(ConnectionId, u16)> {
        self.backend.consumer_channels()
    }

    /// Adds a message at the tail and delivers whatever consumers have credit for.
    /// A queue deleted meanwhile drops it, as a queue that no longer exists would; that still
    /// counts as accepted (RabbitMQ confirms such a publish too).
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>) -> Enqueued {
        self.backend.enqueue(self, message)
    }

    /// Re-runs dispatch, e.g. after a channel's shared credit was returned elsewhere.
    pub fn kick(self: &Arc<Self>) {
        self.backend.kick(self)
    }

    /// Adds a consumer; returns its id, used to settle its deliveries and to cancel it.
    pub fn add_consumer(self: &Arc<Self>, spec: ConsumerSpec) -> AmqpResult<u64> {
        self.backend.add_consumer(self, spec)
    }

    /// Whether the consumer is delivered to, as the management API shows it.
    pub fn consumer_activity(&self, id: u64) -> ConsumerActivity {
        self.backend.consumer_activity(id)
    }

    /// Removes a consumer. Returns whether the queue is now unused and auto-delete: then
    /// `VHost::cancel_consumer`, which called this, deletes it.
    pub(crate) fn remove_consumer(&self, id: u64) -> bool {
        self.backend.remove_consumer(self, id)
    }

    /// basic.get: the head message and how many remain ready.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(Queued, u32)> {
        self.mark_used();
        self.backend.get(self, no_ack)
    }

    /// Settles deliveries of this queue (one lock for a whole batch of acks), then delivers
    /// what the freed credit allows. `consumer` is None for basic.get deliveries.
    pub fn settle(
        self: &Arc<Self>,
        deliveries: impl IntoIterator<Item = (Option<u64>, Queued)>,
        how: Settlement,
    ) {
        self.backend.settle(self, &mut deliveries.into_iter(), how)
    }

    /// Messages that were on their way to a connection that closed before writing them:
    /// back to their places, with the redelivered flag they had.
    pub fn restore_unsent(self: &Arc<Self>, consumer: u64, no_ack: bool, item: Queued) {
        self.backend.restore_unsent(self, consumer, no_ack, item)
    }

    /// `n` deliveries (`bytes` in all) of a consumer reached its socket: its window opens.
    pub fn written(self: &Arc<Self>, consumer: u64, n: u32, bytes: usize) {
        self.backend.written(self, consumer, n, bytes)
    }

    /// Drops every ready message; returns how many there were.
    pub fn purge(&self) -> u32 {
        self.backend.purge(self)
    }

    /// Bytes of this queue's log on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.backend.disk_bytes()
    }

    /// Drops (or dead-letters) the expired messages at the head; the timer of the head's
    /// expiry calls it.
    pub fn expire(self: &Arc<Self>) {
        self.backend.expire(self)
    }

    /// Runs the work the queue's type set a timer for.
    pub(crate) fn upkeep(self: &Arc<Self>) {
        self.backend.upkeep(self)
    }

    /// The queue was used (declared, redeclared, read with basic.get, left by its last
    /// consumer): an x-expires lease runs from now. Nothing for a queue without x-expires.
    pub fn mark_used(self: &Arc<Self>) {
        let expires = self.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return;
        }
        let now = self.env.timers.now();
        let mut lease = self.lease.lock();
        lease.last_used = now;
        self.arm_lease(&mut lease, now.saturating_add(expires));
    }

    /// Sets the expiry timer unless one is due no later (it re-arms itself when it fires
    /// early).
    fn arm_lease(self: &Arc<Self>, lease: &mut Lease, due: Millis) {
        if lease.timer_due.is_some_and(|d| d <= due) {
            return;
        }
        lease.timer_due = Some(due);
        let queue = Arc::downgrade(self);
        self.env.timers.schedule(due, move || {
            let Some(queue) = queue.upgrade() else { return };
            queue.lease.lock().timer_due = None;
            if let Some(vhost) = queue.env.vhost.upgrade() {
                vhost.expire_unused_queue(&queue);
            }
        });
    }

    /// Whether the x-expires period has run out unused; if not, and the queue has no
    /// consumers, the timer is set for when it would.
    pub(crate) fn expiry_due(self: &Arc<Self>) -> bool {
        let expires = self.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return false;
        }
        if self.is_deleted() || self.counts().consumers > 0 {
            // In use: the lease starts again when its last consumer goes.
            return false;
        }
        let mut lease = self.lease.lock();
        let due = lease.last_used.saturating_add(expires);
        if self.env.timers.now() >= due {
            return true;
        }
        self.arm_lease(&mut lease, due);
        false
    }

    /// Writes buffered log records out (clean shutdown).
    pub fn flush_log(&self) {
        self.backend.flush()
    }

    /// Marks the queue deleted and tells its consumers. Returns the ready count it had.
    pub(crate) fn mark_deleted(&self) -> u32 {
        self.backend.delete()
    }
}
