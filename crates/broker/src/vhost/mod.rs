//! A virtual host: a namespace of exchanges and queues, and what of them is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use smallvec::{smallvec, SmallVec};
use tracing::{error, warn};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::clock::Timers;
use crate::error::{resource, AmqpError, AmqpResult, ReplyCode};
use crate::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind, Routed};
use crate::limits;
use crate::message::Message;
use crate::metadata::{Command, Metadata};
use crate::names::server_generated_queue_name;
use crate::persistence::{Persistence, VhostDef};
use crate::policy::Policy;
use crate::publish::{CachedSource, Routes};
use crate::queue::arguments::{check_equivalent, type_name};
use crate::queue::{Queue, QueueArguments, QueueConfig, QueueEnv, QueueType};
use crate::ConnectionId;

mod changes;
mod policies;

use changes::Removal;

/// Exchanges every vhost has, as RabbitMQ creates them.
const STANDARD_EXCHANGES: &[(&str, ExchangeKind)] = &[
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// The name RabbitMQ's permission checks and management API use for the default exchange.
pub const DEFAULT_EXCHANGE_ALIAS: &str = "amq.default";

/// Hops allowed through exchange-to-exchange bindings before a route is cut, so a cycle of
/// bindings cannot loop forever.
const MAX_EXCHANGE_HOPS: usize = 32;

/// The exchange argument naming where unroutable messages go instead.
const ALTERNATE_EXCHANGE: &str = "alternate-exchange";

pub struct QueueDeclare {
    /// Empty asks the server to pick a name.
    pub name: ShortStr,
    /// The name was picked by the server (`names::server_generated_queue_name`) before the
    /// declare, so that permissions could be checked on it: its `amq.` prefix is expected.
    pub server_named: bool,
    pub passive: bool,
    pub config: QueueConfig,
}

pub struct ExchangeDeclare {
    pub name: ShortStr,
    pub kind: ShortStr,
    pub passive: bool,
    /// durable, auto_delete, internal
    pub config_flags: (bool, bool, bool),
    pub arguments: FieldTable,
}

/// What queue.declare answers.
pub struct DeclaredQueue {
    pub queue: Arc<Queue>,
    pub message_count: u32,
    pub consumer_count: u32,
    pub created: bool,
}

pub struct VHost {
    pub name: Arc<str>,
    /// Its definition: description, tags, default queue type (changed by `AddVhost` again).
    definition: RwLock<VhostDef>,
    exchanges: RwLock<foldhash::HashMap<ShortStr, Arc<Exchange>>>,
    /// Bumped after every change to `exchanges`: publishers keep the exchange they last
    /// published to (`Routes`) for as long as it stays the same.
    exchanges_generation: AtomicU64,
    queues: RwLock<foldhash::HashMap<ShortStr, Arc<Queue>>>,
    persistence: Option<Arc<Persistence>>,
    /// Orders and commits definition changes (see `metadata.rs` and `changes.rs`).
    metadata: Arc<Metadata>,
    /// What its queues are given: the broker's timers, and this vhost for their dead letters.
    pub(crate) queue_env: QueueEnv,
    /// Its policies and operator policies (`policies.rs`).
    policies: RwLock<Vec<Arc<Policy>>>,
}

fn reserved_prefix(kind: &str, name: &ShortStr) -> AmqpError {
    AmqpError::access_refused(format!(
        "{kind} name '{name}' contains reserved prefix 'amq.*'"
    ))
}

fn inequivalent(
    arg: &str,
    what: &str,
    received: impl std::fmt::Display,
    current: impl std::fmt::Display,
) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{arg}' for {what}: received '{received}' but current is '{current}'"
    ))
}

/// queue.declare's checks of a new queue's type and arguments, in RabbitMQ 3.10's order.
fn check_queue_type_and_arguments(
    config: &QueueConfig,
    server_named: bool,
    what: &str,
) -> AmqpResult<()> {
    let args = &config.arguments;
    // The channel checks the dead-letter exchange's type before anything else.
    if let Some(dlx) = args.get("x-dead-letter-exchange") {
        if !matches!(dlx, FieldValue::LongStr(_)) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid type '{}' for arg 'x-dead-letter-exchange' in {what}",
                type_name(dlx)
            )));
        }
    }
    let parsed = QueueArguments::parse(args, what)?;
    let queue_type = parsed.queue_type;
    if queue_type == QueueType::Classic {
        return Ok(());
    }
    let module = match queue_type {
        QueueType::Quorum => "rabbit_quorum_queue",
        _ => "rabbit_stream_queue",
    };
    if server_named {
        return Err(AmqpError::precondition_failed(format!(
            "Cannot declare a server-named queue for type {module}"
        )));
    }
    let invalid = |property: &str| {
        Err(AmqpError::precondition_failed(format!(
            "invalid property '{property}' for {what}"
        )))
    };
    if config.auto_delete {
        return invalid("auto-delete");
    }
    if config.exclusive {
        return invalid("exclusive-owner");
    }
    if !config.durable {
        return invalid("non-durable");
    }
    // Never a silent classic queue in its place.
    Err(AmqpError::not_implemented(format!(
        "queues of type '{}' are not available in this version of Warren ({what})",
        queue_type.as_str()
    )))
}

/// A definition could not be written: the change is refused (RabbitMQ would fail the same
/// operation with an internal error when its metadata store does).
fn not_stored(what: &str, e: std::io::Error) -> AmqpError {
    AmqpError::new(
        ReplyCode::InternalError,
        format!("cannot store {what}: {e}"),
    )
}

/// Applying a committed definition failed where it cannot (a name that does not decode).
fn internal_error(detail: String) -> AmqpError {
    AmqpError::new(ReplyCode::InternalError, detail)
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

/// Queues whose definitions outlive the broker: durable and not tied to a connection.
fn queue_is_durable(q: &Queue) -> bool {
    q.config.durable && !q.config.exclusive
}

fn destination_is_durable(d: &Destination) -> bool {
    match d {
        Destination::Queue(q) => queue_is_durable(q),
        Destination::Exchange(e) => e.config.durable,
    }
}

impl VHost {
    /// A vhost kept in memory only, on its own (unit tests).
    pub fn new(name: &str) -> Arc<VHost> {
        let def = VhostDef {
            name: name.to_string(),
            ..VhostDef::default()
        };
        Self::open(def, None, Metadata::new(None), QueueEnv::detached().timers)
    }

    /// A vhost of a broker: its changes go through the broker's `metadata`.
    pub(crate) fn open(
        definition: VhostDef,
        persistence: Option<Arc<Persistence>>,
        metadata: Arc<Metadata>,
        timers: Arc<Timers>,
    ) -> Arc<VHost> {
        let mut exchanges = foldhash::HashMap::default();
        let standard = |kind| ExchangeConfig {
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        };
        exchanges.insert(
            ShortStr::from(""),
            Exchange::new("".into(), standard(ExchangeKind::Direct)),
        );
        for (n, kind) in STANDARD_EXCHANGES {
            exchanges.insert(
                ShortStr::from(*n),
                Exchange::new((*n).into(), standard(*kind)),
            );
        }
        Arc::new_cyclic(|me| VHost {
            name: Arc::from(definition.name.as_str()),
            definition: RwLock::new(definition),
            exchanges: RwLock::new(exchanges),
            exchanges_generation: AtomicU64::new(0),
            queues: RwLock::new(foldhash::HashMap::default()),
            persistence,
            metadata,
            queue_env: QueueEnv {
                timers,
                vhost: me.clone(),
            },
            policies: RwLock::new(Vec::new()),
        })
    }

    /// The vhost's definition (name, description, tags, default queue type).
    pub fn definition(&self) -> VhostDef {
        self.definition.read().clone()
    }

    pub(crate) fn redefine(&self, definition: &VhostDef) {
        *self.definition.write() = definition.clone();
    }

    fn describe(&self, kind: &str, name: &ShortStr) -> String {
        resource(kind, name, &self.name)
    }

    // ---- lookups ------------------------------------------------------------------------

    pub fn exchange(&self, name: &ShortStr) -> AmqpResult<Arc<Exchange>> {
        self.exchanges
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| AmqpError::not_found(format!("no {}", self.describe("exchange", name))))
    }

    pub fn queue(&self, name: &ShortStr) -> AmqpResult<Arc<Queue>> {
        self.queues
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| AmqpError::not_found(format!("no {}", self.describe("queue", name))))
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    /// Every durable queue of this vhost writes its buffered log out (clean shutdown).
    pub fn flush_logs(&self) {
        for q in self.queues() {
            q.flush_log();
        }
    }

    // ---- exchanges ----------------------------------------------------------------------

    pub fn declare_exchange(&self, d: ExchangeDeclare) -> AmqpResult<Arc<Exchange>> {
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if d.passive {
            return self.exchange(&d.name);
        }
        let Some(kind) = ExchangeKind::parse(d.kind.as_bytes()) else {
            return Err(AmqpError::new(
                ReplyCode::CommandInvalid,
                format!("unknown exchange type '{}'", d.kind),
            ));
        };
        if d.name.starts_with(b"amq.") {
            return Err(reserved_prefix("exchange", &d.name));
        }
        let (durable, auto_delete, internal) = d.config_flags;
        let config = ExchangeConfig {
            kind,
            durable,
            auto_delete,
            internal,
            arguments: d.arguments,
        };
        // A redeclare needs no lock; a new exchange is checked again under it.
        if let Ok(existing) = self.exchange(&d.name) {
            return self.check_exchange_equivalent(existing, &config);
        }
        let _order = self.metadata.lock();
        if let Ok(existing) = self.exchange(&d.name) {
            return self.check_exchange_equivalent(existing, &config);
        }
        // On disk before anyone can route through it; routing is not stalled by the fsync.
        let def = self.exchange_def(&d.name, &config);
        self.metadata
            .commit(&[Command::DeclareExchange(def.clone())])
            .map_err(|e| not_stored(&self.describe("exchange", &d.name), e))?;
        self.install_exchange(&def)
            .ok_or_else(|| internal_error(format!("exchange {} not installed", d.name)))
    }

    fn check_exchange_equivalent(
        &self,
        existing: Arc<Exchange>,
        asked: &ExchangeConfig,
    ) -> AmqpResult<Arc<Exchange>> {
        let what = self.describe("exchange", &existing.name);
        let c = &existing.config;
        if c.kind != asked.kind {
            return Err(inequivalent(
                "type",
                &what,
                asked.kind.as_str(),
                c.kind.as_str(),
            ));
        }
        if c.durable != asked.durable {
            return Err(inequivalent("durable", &what, asked.durable, c.durable));
        }
        if c.auto_delete != asked.auto_delete {
            return Err(inequivalent(
                "auto_delete",
                &what,
                asked.auto_delete,
                c.auto_delete,
            ));
        }
        if c.internal != asked.internal {
            return Err(inequivalent("internal", &what, asked.internal, c.internal));
        }
        Ok(existing)
    }

    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> AmqpResult<()> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with(b"amq.") {
            return Err(reserved_prefix("exchange", name));
        }
        let _order = self.metadata.lock();
        let Ok(exchange) = self.exchange(name) else {
            // Deleting what does not exist succeeds, as in RabbitMQ.
            return Ok(());
        };
        if if_unused && (exchange.has_bindings() || self.is_bound_destination(&exchange)) {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                self.describe("exchange", name)
            )));
        }
        let mut removal = Removal::new(self);
        removal.delete_exchange(&exchange);
        self.run(&removal.commands)
            .map_err(|e| not_stored(&self.describe("exchange", name), e))
    }

    fn is_bound_destination(&self, target: &Arc<Exchange>) -> bool {
        let dest = Destination::Exchange(target.clone());
        self.exchanges()
            .iter()
            .any(|e| e.bindings().iter().any(|b| b.destination.same_as(&dest)))
    }

    // ---- queues -------------------------------------------------------------------------

    pub fn declare_queue(
        &self,
        connection: ConnectionId,
        d: QueueDeclare,
    ) -> AmqpResult<DeclaredQueue> {
        if d.passive {
            let queue = self.queue(&d.name)?;
            queue.check_owner(connection)?;
            let counts = queue.counts();
            return Ok(DeclaredQueue {
                queue,
                message_count: counts.ready,
                consumer_count: counts.consumers,
                created: false,
            });
        }
        let name = if d.name.is_empty() {
            server_generated_queue_name()
        } else if d.name.starts_with(b"amq.") && !d.server_named {
            return Err(reserved_prefix("queue", &d.name));
        } else {
            d.name
        };
        // Changes are serialized, so that the queue map is write-locked only for the insert
        // itself: creating a directory and writing the definition (fsynced) must not stall
        // publishers, which read the map.
        let _order = self.metadata.lock();
        if let Ok(existing) = self.queue(&name) {
            existing.check_owner(connection)?;
            let what = self.describe("queue", &name);
            let c = &existing.config;
            if c.exclusive != d.config.exclusive {
                // RabbitMQ answers an exclusive flag that does not match with the same 405 it
                // gives another connection's exclusive queue, before comparing anything else.
                return Err(existing.locked_error());
            }
            // An exclusive queue counts as non-durable, whatever was asked (as in RabbitMQ).
            let (was, now) = (
                c.durable && !c.exclusive,
                d.config.durable && !d.config.exclusive,
            );
            if was != now {
                return Err(inequivalent("durable", &what, now, was));
            }
            if c.auto_delete != d.config.auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &what,
                    d.config.auto_delete,
                    c.auto_delete,
                ));
            }
            check_equivalent(
                existing.queue_type(),
                &c.arguments,
                &d.config.arguments,
                &what,
            )?;
            // A redeclare renews an x-expires lease.
            existing.mark_used();
            let counts = existing.counts();
            return Ok(DeclaredQueue {
                queue: existing,
                message_count: counts.ready,
                consumer_count: counts.consumers,
                created: false,
            });
        }
        let what = self.describe("queue", &name);
        check_queue_type_and_arguments(&d.config, d.server_named, &what)?;
        if let Some(max) = limits::limit(&self.definition.read().limits, "max-queues") {
            if self.queues.read().len() as u64 >= max {
                return Err(AmqpError::precondition_failed(format!(
                    "cannot declare queue '{name}': queue limit in vhost '{}' ({max}) is reached",
                    self.name
                )));
            }
        }
        let owner = d.config.exclusive.then_some(connection);
        let def = self.queue_def(&name, &d.config, owner);
        let storage_error = |e: std::io::Error| {
            error!(queue = %name, error = %e, "cannot store a new queue");
            not_stored(&what, e)
        };
        let logs = match (&self.persistence, def.durable) {
            (Some(p), true) => {
                // A fresh queue starts from nothing, whatever a deleted namesake left behind.
                let dir = p.queue_dir(&self.name, name.as_bytes());
                if dir.exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                let levels =
                    QueueArguments::recovered(&d.config.arguments, &what).priority_levels();
                p.open_queue_logs(&self.name, name.as_bytes(), levels)
                    .map_err(storage_error)?
            }
            _ => Vec::new(),
        };
        // The definition is on disk before the queue exists for anyone, and before declare-ok.
        if let Err(e) = self.metadata.commit(&[Command::DeclareQueue(def.clone())]) {
            // The higher levels' logs are inside the lowest's directory: they go first.
            for (log, _) in logs.iter().rev() {
                log.destroy();
            }
            return Err(storage_error(e));
        }
        let queue = self
            .install_queue(&def, logs)
            .ok_or_else(|| internal_error(format!("{what} not installed")))?;
        // Every queue is bound to the default exchange by its name; that binding is implicit
        // (routing looks the name up), as in RabbitMQ where it cannot be removed either.
        Ok(DeclaredQueue {
            queue,
            message_count: 0,
            consumer_count: 0,
            created: true,
        })
    }

    /// Declares a queue under a name clients may not use themselves (`amq.` names such as
    /// the queue behind direct reply-to). It is never durable.
    pub fn declare_internal_queue(
        &self,
        connection: ConnectionId,
        name: ShortStr,
        config: QueueConfig,
    ) -> AmqpResult<Arc<Queue>> {
        let _order = self.metadata.lock();
        if self.queue(&name).is_ok() {
            return Err(AmqpError::resource_locked(format!(
                "{} already exists",
                self.describe("queue", &name)
            )));
        }
        let owner = config.exclusive.then_some(connection);
        let def = self.queue_def(&name, &config, owner);
        self.metadata
            .commit(&[Command::DeclareQueue(def.clone())])
            .map_err(|e| not_stored(&self.describe("queue", &name), e))?;
        self.install_queue(&def, Vec::new())
            .ok_or_else(|| internal_error(format!("queue {name} not installed")))
    }

    /// Deletes a queue; returns the number of ready messages it had. Deleting a missing queue
    /// succeeds with 0, as in RabbitMQ.
    pub fn delete_queue(
        &self,
        connection: ConnectionId,
        name: &ShortStr,
        if_unused: bool,
        if_empty: bool,
    ) -> AmqpResult<u32> {
        let _order = self.metadata.lock();
        let queue = match self.queue(name) {
            Ok(q) => q,
            Err(_) => return Ok(0),
        };
        queue.check_owner(connection)?;
        let counts = queue.counts();
        if if_unused && counts.consumers > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "{} in use",
                queue.describe()
            )));
        }
        if if_empty && counts.ready > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "{} not empty",
                queue.describe()
            )));
        }
        let mut removal = Removal::new(self);
        removal.delete_queue(&queue);
        self.metadata
            .commit(&removal.commands)
            .map_err(|e| not_stored(&queue.describe(), e))?;
        // The count is taken as the queue goes, so that it includes every message that
        // reached it.
        let ready = queue.mark_deleted();
        removal.commands.iter().for_each(|c| self.apply(c));
        Ok(ready)
    }

    /// Removes a queue the broker decided to delete (auto-delete, exclusive owner gone), if
    /// it is still the one registered under its name.
    fn remove_queue(&self, queue: &Arc<Queue>) {
        match self.queues.read().get(&queue.name) {
            Some(q) if Arc::ptr_eq(q, queue) => {}
            _ => return,
        }
        let mut removal = Removal::new(self);
        removal.delete_queue(queue);
        if let Err(e) = self.run(&removal.commands) {
            // Only a durable auto-delete queue has anything to write; it stays until the
            // disk has room and it is deleted by hand or loses a consumer again.
            warn!(queue = %queue.name, error = %e, "cannot store the removal of an auto-delete queue; it stays");
        }
    }

    /// Cancels a consumer. An auto-delete queue that thereby loses its last consumer is
    /// deleted, decided and done under the metadata lock so that no other change interleaves.
    pub fn cancel_consumer(&self, queue: &Arc<Queue>, consumer: u64) {
        let _order = self.metadata.lock();
        if queue.remove_consumer(consumer) {
            self.remove_queue(queue);
        } else if queue.counts().consumers == 0 {
            // Unused from now: an x-expires lease starts.
            queue.mark_used();
        }
    }

    /// An x-expires timer fired: the queue goes if it is still this vhost's and has been
    /// unused for its whole period (`Queue::expiry_due`), decided under the metadata lock.
    pub(crate) fn expire_unused_queue(&self, queue: &Arc<Queue>) {
        let _order = self.metadata.lock();
        if queue.expiry_due() {
            self.remove_queue(queue);
        }
    }

    /// Deletes the exclusive queues of a closed connection.
    pub fn delete_exclusive_queues(&self, connection: ConnectionId) {
        let owned: Vec<Arc<Queue>> = self
            .queues
            .read()
            .values()
            .filter(|q| q.owner == Some(connection))
            .cloned()
            .collect();
        if owned.is_empty() {
            return;
        }
        let _order = self.metadata.lock();
        for q in owned {
            self.remove_queue(&q);
        }
    }

    // ---- bindings -----------------------------------------------------------------------

    pub fn bind_queue(
        &self,
        connection: ConnectionId,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let _order = self.metadata.lock();
        // RabbitMQ names a missing exchange before a missing queue.
        let source = self.exchange(exchange)?;
        let q = self.queue(queue)?;
        q.check_owner(connection)?;
        self.add_binding(
            &source,
            Binding {
                destination: Destination::Queue(q),
                routing_key,
                arguments,
            },
        )
    }

    fn add_binding(&self, source: &Exchange, binding: Binding) -> AmqpResult<()> {
        let def = self.binding_def(source, &binding);
        // Committed first (storing an existing binding again is harmless), applied after.
        self.metadata
            .commit(&[Command::Bind(def)])
            .map_err(|e| not_stored(&format!("binding to {}", binding.destination.name()), e))?;
        source.bind(binding);
        Ok(())
    }

    fn remove_binding(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        let b = Binding {
            destination,
            routing_key: routing_key.clone(),
            arguments: arguments.clone(),
        };
        let exists = source
            .bindings()
            .iter()
            .any(|x| x.matches(&b.destination, routing_key, arguments));
        if !exists {
            return Ok(());
        }
        let mut removal = Removal::new(self);
        removal.remove_binding(source, &b);
        self.run(&removal.commands)
            .map_err(|e| not_stored(&format!("unbinding {}", b.destination.name()), e))
    }

    pub fn unbind_queue(
        &self,
        connection: ConnectionId,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let _order = self.metadata.lock();
        // Unbinding from a queue or exchange that is gone succeeds, as in RabbitMQ 3.10:
        // clients clean up bindings of auto-deleted queues after the fact.
        let (Ok(q), Ok(source)) = (self.queue(queue), self.exchange(exchange)) else {
            return Ok(());
        };
        q.check_owner(connection)?;
        self.remove_binding(&source, Destination::Queue(q), routing_key, arguments)
    }

    pub fn bind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> AmqpResult<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let _order = self.metadata.lock();
        // The source is named first when both are missing, as in RabbitMQ.
        let src = self.exchange(source)?;
        let dest = self.exchange(destination)?;
        self.add_binding(
            &src,
            Binding {
                destination: Destination::Exchange(dest),
                routing_key,
                arguments,
            },
        )
    }

    pub fn unbind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> AmqpResult<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let _order = self.metadata.lock();
        let (Ok(dest), Ok(src)) = (self.exchange(destination), self.exchange(source)) else {
            return Ok(());
        };
        self.remove_binding(&src, Destination::Exchange(dest), routing_key, arguments)
    }

    // ---- publishing ---------------------------------------------------------------------

    /// Finds the queues a message published to `exchange` goes to, each once.
    pub fn route(
        &self,
        exchange: &ShortStr,
        message: &Message,
        out: &mut Routes,
    ) -> AmqpResult<()> {
        let source = self.source_exchange(exchange, out)?;
        if source.config.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                self.describe("exchange", exchange)
            )));
        }
        self.route_from(source, message, out);
        Ok(())
    }

    /// Routes from an exchange (internal ones too: dead letters may go through them; the
    /// default one by queue name), through exchange-to-exchange bindings and alternate
    /// exchanges.
    pub(crate) fn route_from(&self, source: Arc<Exchange>, message: &Message, out: &mut Routes) {
        if source.name.is_empty() {
            // The default exchange: every queue is bound by its own name.
            if let Some(q) = self.queues.read().get(&message.routing_key) {
                out.add(q.clone());
            }
            return;
        }
        let mut pending = Routed::new();
        self.route_through(&source, message, &mut pending);
        let mut visited: SmallVec<[*const Exchange; 4]> = smallvec![Arc::as_ptr(&source)];
        let mut hops = 0;
        while let Some(dest) = pending.pop() {
            match dest {
                Destination::Queue(q) => out.add(q),
                Destination::Exchange(e) => {
                    hops += 1;
                    if hops > MAX_EXCHANGE_HOPS || visited.contains(&Arc::as_ptr(&e)) {
                        continue;
                    }
                    visited.push(Arc::as_ptr(&e));
                    self.route_through(&e, message, &mut pending);
                }
            }
        }
    }

    /// The exchange a publish names, from the publisher's cache while no exchange of this vhost
    /// has been declared or deleted since it was looked up.
    fn source_exchange(&self, name: &ShortStr, routes: &mut Routes) -> AmqpResult<Arc<Exchange>> {
        // Read before the lookup: a change after it makes the entry stale, never wrong.
        let generation = self.exchanges_generation.load(Ordering::Acquire);
        let vhost = self as *const VHost as usize;
        if let Some(hit) = routes
            .source
            .as_ref()
            .filter(|c| c.vhost == vhost && c.generation == generation && c.exchange.name == *name)
        {
            return Ok(hit.exchange.clone());
        }
        let exchange = self.exchange(name)?;
        routes.source = Some(CachedSource {
            vhost,
            generation,
            exchange: exchange.clone(),
        });
        Ok(exchange)
    }

    /// Routes through one exchange. What it routes nowhere goes on to its alternate exchange
    /// (the `alternate-exchange` argument or policy key, if that exchange exists), as in RabbitMQ; the
    /// caller's visited set and hop limit stop cycles of alternates too.
    fn route_through(&self, exchange: &Exchange, message: &Message, pending: &mut Routed) {
        let before = pending.len();
        exchange.route(message, pending);
        if pending.len() > before {
            return;
        }
        // The argument wins over a policy's `alternate-exchange`, as in RabbitMQ.
        let from_policy;
        let name = match exchange
            .config
            .arguments
            .get(ALTERNATE_EXCHANGE)
            .and_then(FieldValue::as_bytes)
        {
            Some(name) => name,
            None => {
                from_policy = exchange.policy_alternate();
                match &from_policy {
                    Some(name) => name.as_bytes(),
                    None => return,
                }
            }
        };
        if let Some(alternate) = self.exchanges.read().get(name) {
            pending.push(Destination::Exchange(alternate.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(v: &VHost, name: &str, kind: &str, arguments: FieldTable) {
        v.declare_exchange(ExchangeDeclare {
            name: name.into(),
            kind: kind.into(),
            passive: false,
            config_flags: (false, false, false),
            arguments,
        })
        .unwrap();
    }

    fn queue(v: &VHost, name: &str, bound_to: &str, key: &str) {
        v.declare_internal_queue(ConnectionId(1), name.into(), QueueConfig::default())
            .unwrap();
        v.bind_queue(
            ConnectionId(1),
            &name.into(),
            &bound_to.into(),
            key.into(),
            FieldTable::new(),
        )
        .unwrap();
    }

    fn routed(v: &VHost, exchange: &str, key: &str) -> Vec<String> {
        let m = Message::new(
            &exchange.into(),
            &key.into(),
            &Default::default(),
            "m".into(),
        );
        let mut out = Routes::default();
        v.route(&exchange.into(), &m, &mut out).unwrap();
        let mut names: Vec<String> = out.queues().iter().map(|q| q.name.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn unroutable_messages_go_to_the_alternate_exchange() {
        let v = VHost::new("/");
        let mut ae = FieldTable::new();
        ae.insert("alternate-exchange", FieldValue::from("unrouted"));
        exchange(&v, "orders", "direct", ae);
        exchange(&v, "unrouted", "fanout", FieldTable::new());
        queue(&v, "created", "orders", "created");
        queue(&v, "lost", "unrouted", "");
        assert_eq!(routed(&v, "orders", "created"), ["created"]);
        assert_eq!(routed(&v, "orders", "nope"), ["lost"]);

        // Through an exchange-to-exchange binding, and around a cycle of alternates.
        let mut back = FieldTable::new();
        back.insert("alternate-exchange", FieldValue::from("orders"));
        exchange(&v, "ingress", "topic", back);
        v.bind_exchange(
            &"orders".into(),
            &"ingress".into(),
            "#".into(),
            FieldTable::new(),
        )
        .unwrap();
        assert_eq!(routed(&v, "ingress", "created"), ["created"]);
        assert_eq!(routed(&v, "ingress", "nope"), ["lost"]);
        v.delete_exchange(&"unrouted".into(), false).unwrap();
        assert!(
            routed(&v, "orders", "nope").is_empty(),
            "a missing alternate is skipped"
        );
        let mut to_self = FieldTable::new();
        to_self.insert("alternate-exchange", FieldValue::from("loop"));
        exchange(&v, "loop", "direct", to_self);
        assert!(routed(&v, "loop", "x").is_empty());
    }
}
