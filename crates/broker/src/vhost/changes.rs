//! How a vhost's definitions change: the commands a change is planned as (cascades included)
//! and the one apply of each command. See `metadata.rs` for the steps every change takes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{error, warn};
use warren_protocol::ShortStr;
use warren_store::{QueueLog, Recovered};

use super::{destination_is_durable, queue_is_durable, VHost};
use crate::exchange::{Binding, Destination, Exchange, ExchangeConfig, ExchangeKind};
use crate::metadata::Command;
use crate::persistence::{self, BindingDef, ExchangeDef, NameDef, QueueDef};
use crate::queue::{Queue, QueueArguments, QueueConfig};
use crate::ConnectionId;

impl VHost {
    // ---- definitions of what exists -----------------------------------------------------

    pub(crate) fn exchange_def(&self, name: &ShortStr, config: &ExchangeConfig) -> ExchangeDef {
        ExchangeDef {
            vhost: self.name.to_string(),
            name: NameDef::from(name),
            kind: config.kind.as_str().to_string(),
            durable: config.durable,
            auto_delete: config.auto_delete,
            internal: config.internal,
            arguments: persistence::encode_table(&config.arguments),
        }
    }

    pub(crate) fn queue_def(
        &self,
        name: &ShortStr,
        config: &QueueConfig,
        owner: Option<ConnectionId>,
    ) -> QueueDef {
        QueueDef {
            vhost: self.name.to_string(),
            name: NameDef::from(name),
            durable: config.durable && !config.exclusive,
            exclusive_owner: owner.map(|c| c.0),
            auto_delete: config.auto_delete,
            arguments: persistence::encode_table(&config.arguments),
        }
    }

    pub(crate) fn binding_def(&self, source: &Exchange, b: &Binding) -> BindingDef {
        BindingDef {
            vhost: self.name.to_string(),
            durable: source.config.durable && destination_is_durable(&b.destination),
            source: NameDef::from(&source.name),
            destination: NameDef::from(b.destination.name()),
            destination_type: b.destination.kind().to_string(),
            routing_key: NameDef::from(&b.routing_key),
            arguments: persistence::encode_table(&b.arguments),
        }
    }

    // ---- apply --------------------------------------------------------------------------

    /// Commits a planned change and applies it. The caller holds the metadata lock.
    pub(super) fn run(&self, plan: &[Command]) -> std::io::Result<()> {
        self.metadata.commit(plan)?;
        plan.iter().for_each(|c| self.apply(c));
        Ok(())
    }

    /// Applies a committed command about this vhost's exchanges, queues or bindings. Recovery
    /// calls it with the stored definitions; every live change, after its commit.
    pub(crate) fn apply(&self, command: &Command) {
        match command {
            Command::DeclareExchange(def) => {
                self.install_exchange(def);
            }
            Command::DeleteExchange { name, .. } => {
                if let Some(name) = name.to_short_str() {
                    self.exchanges.write().remove(&name);
                    self.exchanges_generation.fetch_add(1, Ordering::Release);
                }
            }
            Command::DeclareQueue(def) => {
                let logs = match (&self.persistence, def.durable) {
                    (Some(p), true) => match def.name.to_short_str() {
                        Some(name) => {
                            let arguments = persistence::decode_table(&def.arguments);
                            let what = crate::error::resource("queue", &name, &self.name);
                            let levels =
                                QueueArguments::recovered(&arguments, &what).priority_levels();
                            match p.open_queue_logs(&self.name, name.as_bytes(), levels) {
                                Ok(logs) => logs,
                                Err(e) => {
                                    error!(queue = %name, error = %e, "cannot open the queue's log; queue skipped");
                                    return;
                                }
                            }
                        }
                        None => Vec::new(),
                    },
                    _ => Vec::new(),
                };
                self.install_queue(def, logs);
            }
            Command::DeleteQueue { name, .. } => {
                let removed = name
                    .to_short_str()
                    .and_then(|name| self.queues.write().remove(&name));
                if let Some(queue) = removed {
                    queue.mark_deleted();
                }
            }
            Command::SetPolicy(_) | Command::ClearPolicy { .. } => {
                self.apply_policy_command(command);
            }
            Command::Bind(def) => {
                if let Some((source, binding)) = self.resolve_binding(def) {
                    source.bind(binding);
                }
            }
            Command::Unbind(def) => {
                if let Some((source, b)) = self.resolve_binding(def) {
                    source.unbind(&b.destination, &b.routing_key, &b.arguments);
                }
            }
            _ => {}
        }
    }

    pub(super) fn install_exchange(&self, def: &ExchangeDef) -> Option<Arc<Exchange>> {
        let Some(kind) = ExchangeKind::parse(def.kind.as_bytes()) else {
            warn!(exchange = ?def.name, kind = %def.kind, "exchange of unknown type skipped");
            return None;
        };
        let Some(name) = def.name.to_short_str() else {
            warn!(exchange = ?def.name, "exchange with an undecodable name skipped");
            return None;
        };
        let config = ExchangeConfig {
            kind,
            durable: def.durable,
            auto_delete: def.auto_delete,
            internal: def.internal,
            arguments: persistence::decode_table(&def.arguments),
        };
        let exchange = Exchange::new(name.clone(), config);
        self.apply_policy_to_exchange(&exchange);
        self.exchanges.write().insert(name, exchange.clone());
        self.exchanges_generation.fetch_add(1, Ordering::Release);
        Some(exchange)
    }

    /// Puts a queue under its name, with its log if it has one (opened, and recovered, by the
    /// caller: a live declare opens it before committing, so that a failure refuses the
    /// declare rather than losing a queue that was answered declare-ok).
    pub(super) fn install_queue(
        &self,
        def: &QueueDef,
        logs: Vec<(QueueLog, Recovered)>,
    ) -> Option<Arc<Queue>> {
        let Some(name) = def.name.to_short_str() else {
            warn!(queue = ?def.name, "queue with an undecodable name skipped");
            return None;
        };
        let owner = def.exclusive_owner.map(ConnectionId);
        let config = QueueConfig {
            durable: def.durable,
            exclusive: owner.is_some(),
            auto_delete: def.auto_delete,
            arguments: persistence::decode_table(&def.arguments),
        };
        let opened = Queue::open(
            name.clone(),
            self.name.clone(),
            config,
            owner,
            self.queue_env.clone(),
            self.persistence.clone(),
            logs,
        );
        let queue = match opened {
            Ok(queue) => queue,
            Err(e) => {
                warn!(queue = %name, error = %e.reply_text(), "queue skipped");
                return None;
            }
        };
        self.apply_policies_to_queue(&queue);
        self.queues.write().insert(name, queue.clone());
        // An x-expires lease starts when a queue is declared, and again at every start.
        queue.mark_used();
        if queue.effective_arguments().message_ttl.is_some() {
            // What expired while the broker was down leaves as soon as the timers run: after
            // recovery, when the dead-letter exchange and its bindings are back too.
            let weak = Arc::downgrade(&queue);
            let timers = &self.queue_env.timers;
            timers.schedule(timers.now(), move || {
                if let Some(queue) = weak.upgrade() {
                    queue.expire();
                }
            });
        }
        Some(queue)
    }

    /// The exchange and binding a binding definition names; None if either end is gone.
    fn resolve_binding(&self, def: &BindingDef) -> Option<(Arc<Exchange>, Binding)> {
        let (Some(source), Some(dest_name), Some(routing_key)) = (
            def.source.to_short_str(),
            def.destination.to_short_str(),
            def.routing_key.to_short_str(),
        ) else {
            warn!(source = ?def.source, "binding with an undecodable name skipped");
            return None;
        };
        let source = self.exchange(&source).ok()?;
        let destination = match def.destination_type.as_str() {
            "queue" => self.queue(&dest_name).map(Destination::Queue),
            _ => self.exchange(&dest_name).map(Destination::Exchange),
        }
        .ok()?;
        let binding = Binding {
            destination,
            routing_key,
            arguments: persistence::decode_table(&def.arguments),
        };
        Some((source, binding))
    }

    // ---- plans --------------------------------------------------------------------------

    /// Everything in this vhost, removed: bindings, exchanges, queues (for deleting the vhost).
    pub(crate) fn plan_clear(&self) -> Vec<Command> {
        let mut removal = Removal::new(self);
        for exchange in self.exchanges() {
            for b in exchange.bindings() {
                removal.unbind(&exchange, &b);
            }
        }
        for exchange in self.exchanges() {
            if !exchange.name.is_empty() && !exchange.name.starts_with(b"amq.") {
                removal.delete_exchange(&exchange);
            }
        }
        for queue in self.queues() {
            removal.commands.push(self.delete_queue_command(&queue));
        }
        removal.commands.extend(self.plan_clear_policies());
        removal.commands
    }

    fn delete_queue_command(&self, queue: &Queue) -> Command {
        Command::DeleteQueue {
            vhost: self.name.to_string(),
            name: NameDef::from(&queue.name),
            durable: queue_is_durable(queue),
        }
    }
}

/// A removal being planned: the commands so far, and the bindings they already remove, so
/// that an auto-delete exchange is seen to lose its last binding and each binding is removed
/// once.
pub(super) struct Removal<'a> {
    vhost: &'a VHost,
    pub(super) commands: Vec<Command>,
    unbound: HashSet<Vec<u8>>,
    deleted_exchanges: HashSet<ShortStr>,
}

/// A binding's identity within its vhost.
fn binding_identity(source: &Exchange, b: &Binding) -> Vec<u8> {
    persistence::key(&[
        source.name.as_bytes(),
        b.destination.kind().as_bytes(),
        b.destination.name().as_bytes(),
        b.routing_key.as_bytes(),
        persistence::encode_table(&b.arguments).as_bytes(),
    ])
}

impl<'a> Removal<'a> {
    pub(super) fn new(vhost: &'a VHost) -> Self {
        Removal {
            vhost,
            commands: Vec::new(),
            unbound: HashSet::new(),
            deleted_exchanges: HashSet::new(),
        }
    }

    /// Removes one binding; its source goes too if it is auto-delete and that was its last.
    pub(super) fn unbind(&mut self, source: &Arc<Exchange>, b: &Binding) {
        if self.unbound.insert(binding_identity(source, b)) {
            self.commands
                .push(Command::Unbind(self.vhost.binding_def(source, b)));
        }
    }

    fn auto_delete_if_unused(&mut self, source: &Arc<Exchange>) {
        if !source.config.auto_delete || self.deleted_exchanges.contains(&source.name) {
            return;
        }
        let unused = source
            .bindings()
            .iter()
            .all(|b| self.unbound.contains(&binding_identity(source, b)));
        if unused {
            self.delete_exchange(source);
        }
    }

    /// Unbinds one binding (as queue.unbind / exchange.unbind do), with the auto-delete rule.
    pub(super) fn remove_binding(&mut self, source: &Arc<Exchange>, b: &Binding) {
        self.unbind(source, b);
        self.auto_delete_if_unused(source);
    }

    /// Removes every binding leading to `destination`, with the auto-delete rule.
    fn remove_bindings_to(&mut self, destination: &Destination) {
        for source in self.vhost.exchanges() {
            let to_it: Vec<Binding> = source
                .bindings()
                .into_iter()
                .filter(|b| b.destination.same_as(destination))
                .collect();
            if to_it.is_empty() {
                continue;
            }
            for b in &to_it {
                self.unbind(&source, b);
            }
            self.auto_delete_if_unused(&source);
        }
    }

    /// Deletes an exchange with the bindings from it and to it.
    pub(super) fn delete_exchange(&mut self, exchange: &Arc<Exchange>) {
        if !self.deleted_exchanges.insert(exchange.name.clone()) {
            return;
        }
        for b in exchange.bindings() {
            self.unbind(exchange, &b);
        }
        self.remove_bindings_to(&Destination::Exchange(exchange.clone()));
        self.commands.push(Command::DeleteExchange {
            vhost: self.vhost.name.to_string(),
            name: NameDef::from(&exchange.name),
            durable: exchange.config.durable,
        });
    }

    /// Deletes a queue with the bindings to it.
    pub(super) fn delete_queue(&mut self, queue: &Arc<Queue>) {
        self.remove_bindings_to(&Destination::Queue(queue.clone()));
        self.commands.push(self.vhost.delete_queue_command(queue));
    }
}
