//! A virtual host: a namespace of exchanges and queues, and what of them is durable.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tracing::{error, warn};
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::error::{resource, AmqpError, AmqpResult, ReplyCode};
use crate::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind, Routed};
use crate::message::Message;
use crate::names::server_generated_queue_name;
use crate::persistence::{self, BindingDef, ExchangeDef, NameDef, Persistence, QueueDef};
use crate::publish::Routes;
use crate::queue::arguments::{check_equivalent, type_name};
use crate::queue::{Queue, QueueArguments, QueueConfig, QueueType};
use crate::ConnectionId;

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
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
    /// Held across a whole queue.declare (see `declare_queue`).
    declaring: Mutex<()>,
    persistence: Option<Arc<Persistence>>,
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
    /// A vhost kept in memory only.
    pub fn new(name: &str) -> Arc<VHost> {
        Self::with_persistence(name, None)
    }

    pub fn with_persistence(name: &str, persistence: Option<Arc<Persistence>>) -> Arc<VHost> {
        let mut exchanges = HashMap::new();
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
        Arc::new(VHost {
            name: Arc::from(name),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            declaring: Mutex::new(()),
            persistence,
        })
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

    // ---- durability ---------------------------------------------------------------------

    fn exchange_key(&self, name: &ShortStr) -> Vec<u8> {
        persistence::key(&[b"exchange", self.name.as_bytes(), name.as_bytes()])
    }

    fn queue_key(&self, name: &ShortStr) -> Vec<u8> {
        persistence::key(&[b"queue", self.name.as_bytes(), name.as_bytes()])
    }

    fn binding_key(&self, source: &ShortStr, b: &Binding) -> Vec<u8> {
        persistence::key(&[
            b"binding",
            self.name.as_bytes(),
            source.as_bytes(),
            b.destination.kind().as_bytes(),
            b.destination.name().as_bytes(),
            b.routing_key.as_bytes(),
            persistence::encode_table(&b.arguments).as_bytes(),
        ])
    }

    /// Writes a durable exchange's definition; an error means it must not be created.
    fn persist_exchange(&self, e: &Exchange) -> AmqpResult<()> {
        let Some(p) = &self.persistence else {
            return Ok(());
        };
        if !e.config.durable {
            return Ok(());
        }
        p.put(
            &self.exchange_key(&e.name),
            &ExchangeDef {
                vhost: self.name.to_string(),
                name: NameDef::from(&e.name),
                kind: e.config.kind.as_str().to_string(),
                auto_delete: e.config.auto_delete,
                internal: e.config.internal,
                arguments: persistence::encode_table(&e.config.arguments),
            },
        )
        .map_err(|err| not_stored(&self.describe("exchange", &e.name), err))
    }

    /// Writes a durable binding's definition; an error means it must not be added.
    fn persist_binding(&self, source: &Exchange, b: &Binding) -> AmqpResult<()> {
        let Some(p) = &self.persistence else {
            return Ok(());
        };
        if !source.config.durable || !destination_is_durable(&b.destination) {
            return Ok(());
        }
        p.put(
            &self.binding_key(&source.name, b),
            &BindingDef {
                vhost: self.name.to_string(),
                source: NameDef::from(&source.name),
                destination: NameDef::from(b.destination.name()),
                destination_type: b.destination.kind().to_string(),
                routing_key: NameDef::from(&b.routing_key),
                arguments: persistence::encode_table(&b.arguments),
            },
        )
        .map_err(|err| not_stored(&format!("binding to {}", b.destination.name()), err))
    }

    fn forget_binding(&self, source: &Exchange, b: &Binding) {
        if let Some(p) = &self.persistence {
            if source.config.durable && destination_is_durable(&b.destination) {
                // A failed delete is logged by `delete`; the binding comes back at restart.
                let _ = p.delete(&self.binding_key(&source.name, b));
            }
        }
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
        let existing = self.exchanges.read().get(&d.name).cloned();
        if let Some(existing) = existing {
            let what = self.describe("exchange", &d.name);
            let c = &existing.config;
            if c.kind != kind {
                return Err(inequivalent("type", &what, kind.as_str(), c.kind.as_str()));
            }
            if c.durable != durable {
                return Err(inequivalent("durable", &what, durable, c.durable));
            }
            if c.auto_delete != auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &what,
                    auto_delete,
                    c.auto_delete,
                ));
            }
            if c.internal != internal {
                return Err(inequivalent("internal", &what, internal, c.internal));
            }
            return Ok(existing);
        }
        let config = ExchangeConfig {
            kind,
            durable,
            auto_delete,
            internal,
            arguments: d.arguments,
        };
        let exchange = Exchange::new(d.name.clone(), config);
        // On disk before anyone can route through it; routing is not stalled by the fsync.
        self.persist_exchange(&exchange)?;
        // A concurrent declare of the same name may have won; its exchange stands.
        Ok(self
            .exchanges
            .write()
            .entry(d.name)
            .or_insert(exchange)
            .clone())
    }

    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> AmqpResult<()> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with(b"amq.") {
            return Err(reserved_prefix("exchange", name));
        }
        let removed = {
            let mut exchanges = self.exchanges.write();
            let Some(exchange) = exchanges.get(name) else {
                // Deleting what does not exist succeeds, as in RabbitMQ.
                return Ok(());
            };
            if if_unused
                && (exchange.has_bindings() || self.is_bound_destination(&exchanges, exchange))
            {
                return Err(AmqpError::precondition_failed(format!(
                    "{} in use",
                    self.describe("exchange", name)
                )));
            }
            exchanges.remove(name)
        };
        if let Some(exchange) = removed {
            self.exchange_removed(&exchange);
        }
        Ok(())
    }

    /// Forgets a removed exchange's definition and its bindings both ways.
    fn exchange_removed(&self, exchange: &Arc<Exchange>) {
        for b in exchange.bindings() {
            self.forget_binding(exchange, &b);
        }
        if exchange.config.durable {
            if let Some(p) = &self.persistence {
                let _ = p.delete(&self.exchange_key(&exchange.name));
            }
        }
        self.remove_bindings_to(&Destination::Exchange(exchange.clone()));
    }

    fn is_bound_destination(
        &self,
        exchanges: &HashMap<ShortStr, Arc<Exchange>>,
        target: &Arc<Exchange>,
    ) -> bool {
        let dest = Destination::Exchange(target.clone());
        exchanges
            .values()
            .any(|e| e.bindings().iter().any(|b| b.destination.same_as(&dest)))
    }

    /// Removes bindings leading to a deleted queue or exchange, and auto-deletes the sources
    /// that thereby lose their last binding.
    fn remove_bindings_to(&self, destination: &Destination) {
        for source in self.exchanges() {
            let removed = source.unbind_all(destination);
            if !removed.is_empty() {
                for b in &removed {
                    self.forget_binding(&source, b);
                }
                self.auto_delete_if_unused(&source);
            }
        }
    }

    fn auto_delete_if_unused(&self, exchange: &Arc<Exchange>) {
        if !exchange.config.auto_delete || exchange.has_bindings() {
            return;
        }
        let removed = {
            let mut exchanges = self.exchanges.write();
            match exchanges.get(&exchange.name) {
                Some(e) if Arc::ptr_eq(e, exchange) => exchanges.remove(&exchange.name),
                _ => None,
            }
        };
        if let Some(e) = removed {
            self.exchange_removed(&e);
        }
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
        // Declares are serialized per vhost, so that the queue map is write-locked only for
        // the insert itself: creating a directory and writing the definition (fsynced) must not
        // stall publishers, which read the map.
        let _declaring = self.declaring.lock();
        if let Some(existing) = self.queues.read().get(&name) {
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
            let counts = existing.counts();
            return Ok(DeclaredQueue {
                queue: existing.clone(),
                message_count: counts.ready,
                consumer_count: counts.consumers,
                created: false,
            });
        }
        let what = self.describe("queue", &name);
        check_queue_type_and_arguments(&d.config, d.server_named, &what)?;
        let owner = d.config.exclusive.then_some(connection);
        let durable = d.config.durable && !d.config.exclusive;
        let storage_error = |e: std::io::Error| {
            error!(queue = %name, error = %e, "cannot store a new queue");
            not_stored(&self.describe("queue", &name), e)
        };
        let log = match (&self.persistence, durable) {
            (Some(p), true) => {
                // A fresh queue starts from nothing, whatever a deleted namesake left behind.
                let dir = p.queue_dir(&self.name, name.as_bytes());
                if dir.exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Some(
                    p.open_queue_log(&self.name, name.as_bytes())
                        .map_err(storage_error)?,
                )
            }
            _ => None,
        };
        let queue = Queue::with_log(
            name.clone(),
            self.name.clone(),
            d.config,
            owner,
            self.persistence.clone(),
            log,
        );
        // The definition is on disk before the queue exists for anyone, and before declare-ok.
        if durable {
            if let Some(p) = &self.persistence {
                let stored = p.put(
                    &self.queue_key(&queue.name),
                    &QueueDef {
                        vhost: self.name.to_string(),
                        name: NameDef::from(&queue.name),
                        auto_delete: queue.config.auto_delete,
                        arguments: persistence::encode_table(&queue.config.arguments),
                    },
                );
                if let Err(e) = stored {
                    queue.mark_deleted();
                    return Err(storage_error(e));
                }
            }
        }
        self.queues.write().insert(name, queue.clone());
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
        let mut queues = self.queues.write();
        if queues.contains_key(&name) {
            return Err(AmqpError::resource_locked(format!(
                "{} already exists",
                self.describe("queue", &name)
            )));
        }
        let owner = config.exclusive.then_some(connection);
        let queue = Queue::with_log(
            name.clone(),
            self.name.clone(),
            config,
            owner,
            self.persistence.clone(),
            None,
        );
        queues.insert(name, queue.clone());
        Ok(queue)
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
        Ok(self.remove_queue(&queue))
    }

    /// Removes a queue object (if it is still the one registered under its name).
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        {
            let mut queues = self.queues.write();
            match queues.get(&queue.name) {
                Some(q) if Arc::ptr_eq(q, queue) => {
                    queues.remove(&queue.name);
                }
                _ => return 0,
            }
        }
        let count = queue.mark_deleted();
        if queue_is_durable(queue) {
            if let Some(p) = &self.persistence {
                let _ = p.delete(&self.queue_key(&queue.name));
            }
        }
        self.remove_bindings_to(&Destination::Queue(queue.clone()));
        count
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
        // Written first (writing an existing binding again is harmless), applied after.
        self.persist_binding(source, &binding)?;
        source.bind(binding);
        Ok(())
    }

    fn remove_binding(
        &self,
        source: &Arc<Exchange>,
        destination: Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) {
        if source.unbind(&destination, routing_key, arguments) {
            let b = Binding {
                destination,
                routing_key: routing_key.clone(),
                arguments: arguments.clone(),
            };
            self.forget_binding(source, &b);
            self.auto_delete_if_unused(source);
        }
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
        // Unbinding from a queue or exchange that is gone succeeds, as in RabbitMQ 3.10:
        // clients clean up bindings of auto-deleted queues after the fact.
        let (Ok(q), Ok(source)) = (self.queue(queue), self.exchange(exchange)) else {
            return Ok(());
        };
        q.check_owner(connection)?;
        self.remove_binding(&source, Destination::Queue(q), routing_key, arguments);
        Ok(())
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
        let (Ok(dest), Ok(src)) = (self.exchange(destination), self.exchange(source)) else {
            return Ok(());
        };
        self.remove_binding(&src, Destination::Exchange(dest), routing_key, arguments);
        Ok(())
    }

    // ---- recovery -----------------------------------------------------------------------

    pub(crate) fn restore_exchange(&self, def: &ExchangeDef) {
        let Some(kind) = ExchangeKind::parse(def.kind.as_bytes()) else {
            warn!(exchange = ?def.name, kind = %def.kind, "stored exchange of unknown type skipped");
            return;
        };
        let Some(name) = def.name.to_short_str() else {
            warn!(exchange = ?def.name, "stored exchange with an undecodable name skipped");
            return;
        };
        let config = ExchangeConfig {
            kind,
            durable: true,
            auto_delete: def.auto_delete,
            internal: def.internal,
            arguments: persistence::decode_table(&def.arguments),
        };
        self.exchanges
            .write()
            .insert(name.clone(), Exchange::new(name, config));
    }

    pub(crate) fn restore_queue(&self, def: &QueueDef) {
        let Some(p) = &self.persistence else { return };
        let Some(name) = def.name.to_short_str() else {
            warn!(queue = ?def.name, "stored queue with an undecodable name skipped");
            return;
        };
        let log = match p.open_queue_log(&self.name, name.as_bytes()) {
            Ok(log) => log,
            Err(e) => {
                error!(queue = %name, error = %e, "cannot recover the queue's log; queue skipped");
                return;
            }
        };
        let config = QueueConfig {
            durable: true,
            exclusive: false,
            auto_delete: def.auto_delete,
            arguments: persistence::decode_table(&def.arguments),
        };
        let queue = Queue::with_log(
            name.clone(),
            self.name.clone(),
            config,
            None,
            Some(p.clone()),
            Some(log),
        );
        self.queues.write().insert(name, queue);
    }

    pub(crate) fn restore_binding(&self, def: &BindingDef) {
        let (Some(source), Some(dest_name), Some(routing_key)) = (
            def.source.to_short_str(),
            def.destination.to_short_str(),
            def.routing_key.to_short_str(),
        ) else {
            warn!(source = ?def.source, "stored binding with an undecodable name skipped");
            return;
        };
        let Ok(source) = self.exchange(&source) else {
            return;
        };
        let destination = match def.destination_type.as_str() {
            "queue" => self.queue(&dest_name).map(Destination::Queue),
            _ => self.exchange(&dest_name).map(Destination::Exchange),
        };
        let Ok(destination) = destination else { return };
        source.bind(Binding {
            destination,
            routing_key,
            arguments: persistence::decode_table(&def.arguments),
        });
    }

    // ---- publishing ---------------------------------------------------------------------

    /// Finds the queues a message published to `exchange` goes to, each once.
    pub fn route(
        &self,
        exchange: &ShortStr,
        message: &Message,
        out: &mut Routes,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            // The default exchange: every queue is bound by its own name.
            if let Some(q) = self.queues.read().get(&message.routing_key) {
                out.add(q.clone());
            }
            return Ok(());
        }
        let source = self.exchange(exchange)?;
        if source.config.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal {}",
                self.describe("exchange", exchange)
            )));
        }
        let mut pending = Routed::new();
        self.route_through(&source, message, &mut pending);
        let mut visited: Vec<*const Exchange> = vec![Arc::as_ptr(&source)];
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
        Ok(())
    }

    /// Routes through one exchange. What it routes nowhere goes on to its alternate exchange
    /// (the `alternate-exchange` argument, if that exchange exists), as in RabbitMQ; the
    /// caller's visited set and hop limit stop cycles of alternates too.
    fn route_through(&self, exchange: &Exchange, message: &Message, pending: &mut Routed) {
        let before = pending.len();
        exchange.route(message, pending);
        if pending.len() > before {
            return;
        }
        let Some(name) = exchange
            .config
            .arguments
            .get(ALTERNATE_EXCHANGE)
            .and_then(FieldValue::as_bytes)
        else {
            return;
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
