//! A virtual host: a namespace of exchanges and queues.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use warren_protocol::{FieldTable, ShortStr};

use crate::error::{resource, AmqpError, AmqpResult, ReplyCode};
use crate::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind, Routed};
use crate::message::Message;
use crate::names::server_generated_queue_name;
use crate::queue::{Queue, QueueConfig};
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

pub struct QueueDeclare {
    pub name: ShortStr,
    pub passive: bool,
    pub config: QueueConfig,
}

pub struct ExchangeDeclare {
    pub name: ShortStr,
    pub kind: ShortStr,
    pub passive: bool,
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

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

impl VHost {
    pub fn new(name: &str) -> Arc<VHost> {
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
        let mut exchanges = self.exchanges.write();
        if let Some(existing) = exchanges.get(&d.name) {
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
            return Ok(existing.clone());
        }
        let config = ExchangeConfig {
            kind,
            durable,
            auto_delete,
            internal,
            arguments: d.arguments,
        };
        let exchange = Exchange::new(d.name.clone(), config);
        exchanges.insert(d.name, exchange.clone());
        Ok(exchange)
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
            self.remove_bindings_to(&Destination::Exchange(exchange));
        }
        Ok(())
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
        let sources = self.exchanges();
        for source in sources {
            if source.unbind_all(destination) > 0 {
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
            self.remove_bindings_to(&Destination::Exchange(e));
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
        } else if d.name.starts_with(b"amq.") {
            return Err(reserved_prefix("queue", &d.name));
        } else {
            d.name
        };
        let mut queues = self.queues.write();
        if let Some(existing) = queues.get(&name) {
            existing.check_owner(connection)?;
            let what = self.describe("queue", &name);
            let c = &existing.config;
            if c.durable != d.config.durable {
                return Err(inequivalent("durable", &what, d.config.durable, c.durable));
            }
            if c.exclusive != d.config.exclusive {
                return Err(existing.check_owner(ConnectionId(u64::MAX)).unwrap_err());
            }
            if c.auto_delete != d.config.auto_delete {
                return Err(inequivalent(
                    "auto_delete",
                    &what,
                    d.config.auto_delete,
                    c.auto_delete,
                ));
            }
            let counts = existing.counts();
            return Ok(DeclaredQueue {
                queue: existing.clone(),
                message_count: counts.ready,
                consumer_count: counts.consumers,
                created: false,
            });
        }
        let owner = d.config.exclusive.then_some(connection);
        let queue = Queue::new(name.clone(), self.name.clone(), d.config, owner);
        queues.insert(name, queue.clone());
        drop(queues);
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
    /// the queue behind direct reply-to).
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
        let queue = Queue::new(name.clone(), self.name.clone(), config, owner);
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
                "{} is not empty",
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
        let q = self.queue(queue)?;
        q.check_owner(connection)?;
        let source = self.exchange(exchange)?;
        source.bind(Binding {
            destination: Destination::Queue(q),
            routing_key,
            arguments,
        });
        Ok(())
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
        let q = self.queue(queue)?;
        q.check_owner(connection)?;
        let source = self.exchange(exchange)?;
        if source.unbind(&Destination::Queue(q), routing_key, arguments) {
            self.auto_delete_if_unused(&source);
        }
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
        let dest = self.exchange(destination)?;
        let src = self.exchange(source)?;
        src.bind(Binding {
            destination: Destination::Exchange(dest),
            routing_key,
            arguments,
        });
        Ok(())
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
        let dest = self.exchange(destination)?;
        let src = self.exchange(source)?;
        if src.unbind(&Destination::Exchange(dest), routing_key, arguments) {
            self.auto_delete_if_unused(&src);
        }
        Ok(())
    }

    // ---- publishing ---------------------------------------------------------------------

    /// Finds the queues a message published to `exchange` goes to, each once.
    pub fn route(
        &self,
        exchange: &ShortStr,
        message: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) -> AmqpResult<()> {
        if exchange.is_empty() {
            // The default exchange: every queue is bound by its own name.
            if let Some(q) = self.queues.read().get(&message.routing_key) {
                out.push(q.clone());
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
        source.route(message, &mut pending);
        let mut visited: Vec<*const Exchange> = vec![Arc::as_ptr(&source)];
        let mut hops = 0;
        while let Some(dest) = pending.pop() {
            match dest {
                Destination::Queue(q) => {
                    if !out.iter().any(|seen| Arc::ptr_eq(seen, &q)) {
                        out.push(q);
                    }
                }
                Destination::Exchange(e) => {
                    hops += 1;
                    if hops > MAX_EXCHANGE_HOPS || visited.contains(&Arc::as_ptr(&e)) {
                        continue;
                    }
                    visited.push(Arc::as_ptr(&e));
                    e.route(message, &mut pending);
                }
            }
        }
        Ok(())
    }
}
