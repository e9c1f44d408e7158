//! The root of the model: vhosts, users and permissions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::alarms::Alarms;
use crate::auth::{AccessControl, Permissions, User};
use crate::clock::{Clock, SystemClock, Timers};
use crate::error::{AmqpError, AmqpResult, ReplyCode};
use crate::persistence::{self, Definitions, Persistence, VhostDef};
use crate::registry::ConnectionRegistry;
use crate::vhost::VHost;
use crate::ConnectionId;

/// RabbitMQ's default `max_message_size`: 128 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Created with full permissions on `/` when there are no users yet.
    pub default_user: String,
    pub default_password: String,
    /// Users that may log in only from a loopback address (RabbitMQ: `loopback_users`).
    pub loopback_users: Vec<String>,
    pub max_message_size: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            default_user: "guest".into(),
            default_password: "guest".into(),
            loopback_users: vec!["guest".into()],
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

pub struct Broker {
    pub config: BrokerConfig,
    pub access: AccessControl,
    /// Open client connections (for the management API, metrics and forced closes).
    pub connections: ConnectionRegistry,
    /// Memory and disk alarms; publishers are blocked while one is on.
    pub alarms: Alarms,
    /// The broker clock and the timers everything time-driven uses (see `clock`). The server
    /// drives them with `Timers::run`; tests may drive them by hand with a `ManualClock`.
    pub timers: Arc<Timers>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    next_connection: AtomicU64,
    /// The data directory; None for a broker that keeps everything in memory (tests).
    persistence: Option<Arc<Persistence>>,
}

impl Broker {
    /// A broker with RabbitMQ's first-boot definitions: vhost `/` and the default user,
    /// an administrator with full permissions on it.
    pub fn new(config: BrokerConfig) -> Arc<Broker> {
        Self::new_with_clock(config, Arc::new(SystemClock))
    }

    /// As `new`, on the given clock.
    pub fn new_with_clock(config: BrokerConfig, clock: Arc<dyn Clock>) -> Arc<Broker> {
        let broker = Self::empty(config, None, clock);
        broker.first_boot();
        Arc::new(broker)
    }

    fn empty(
        config: BrokerConfig,
        persistence: Option<Arc<Persistence>>,
        clock: Arc<dyn Clock>,
    ) -> Broker {
        Broker {
            timers: Timers::new(clock),
            access: AccessControl::new(persistence.clone()),
            connections: ConnectionRegistry::default(),
            alarms: Alarms::default(),
            vhosts: RwLock::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            persistence,
            config,
        }
    }

    /// A broker whose durable state lives in `data_dir` (created if missing): definitions and
    /// durable queues with their persistent messages come back from it.
    pub fn open(config: BrokerConfig, data_dir: &std::path::Path) -> std::io::Result<Arc<Broker>> {
        Self::open_with_clock(config, data_dir, Arc::new(SystemClock))
    }

    /// As `open`, on the given clock.
    pub fn open_with_clock(
        config: BrokerConfig,
        data_dir: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Arc<Broker>> {
        let (persistence, defs) = Persistence::open(data_dir)?;
        let broker = Self::empty(config, Some(persistence), clock);
        if defs.is_empty() {
            broker.first_boot();
        } else {
            broker.restore(defs);
        }
        Ok(Arc::new(broker))
    }

    fn restore(&self, defs: Definitions) {
        for v in &defs.vhosts {
            self.vhosts.write().insert(
                v.name.clone(),
                VHost::with_persistence(&v.name, self.persistence.clone()),
            );
        }
        self.access.restore(&defs.users, &defs.permissions);
        let vhost = |name: &str| self.vhost(name);
        for e in &defs.exchanges {
            if let Some(v) = vhost(&e.vhost) {
                v.restore_exchange(e);
            }
        }
        for q in &defs.queues {
            if let Some(v) = vhost(&q.vhost) {
                v.restore_queue(q);
            }
        }
        for b in &defs.bindings {
            if let Some(v) = vhost(&b.vhost) {
                v.restore_binding(b);
            }
        }
        tracing::info!(
            vhosts = defs.vhosts.len(),
            users = defs.users.len(),
            exchanges = defs.exchanges.len(),
            queues = defs.queues.len(),
            bindings = defs.bindings.len(),
            "definitions recovered"
        );
    }

    /// Memory is short: queues keep new messages on disk instead of in RAM.
    pub fn set_memory_pressure(&self, on: bool) {
        if let Some(p) = &self.persistence {
            p.set_memory_pressure(on);
        }
    }

    /// The group-commit announcements (durable epochs), if the broker has a data directory.
    pub fn durability(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.persistence.as_ref().map(|p| p.syncer.subscribe())
    }

    /// Whether a write with this group-commit ticket was announced but lost to a failed fsync.
    pub fn durable_write_lost(&self, ticket: u64) -> bool {
        ticket != 0
            && self
                .persistence
                .as_ref()
                .is_some_and(|p| p.syncer.lost(ticket))
    }

    /// The monitor saw the disk recover after a failed write: persistent messages are
    /// accepted again.
    pub fn storage_recovered(&self) {
        if let Some(p) = &self.persistence {
            p.storage_recovered();
        }
    }

    /// Whether a write to the data directory failed since the last call (the monitor raises
    /// the disk alarm on it).
    pub fn take_storage_fault(&self) -> bool {
        self.persistence
            .as_ref()
            .is_some_and(|p| p.take_storage_fault())
    }

    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.persistence.as_ref().map(|p| p.data_dir.as_path())
    }

    /// Writes every log's buffers out and stops the group-commit thread (clean shutdown).
    pub fn shutdown(&self) {
        for v in self.vhosts() {
            v.flush_logs();
        }
        if let Some(p) = &self.persistence {
            p.shutdown();
        }
    }

    /// RabbitMQ's first-boot definitions.
    fn first_boot(&self) {
        let broker = self;
        broker.add_vhost("/");
        broker.access.add_user(
            &broker.config.default_user,
            &broker.config.default_password,
            &["administrator"],
        );
        broker
            .access
            .set_permissions("/", &broker.config.default_user, Permissions::full());
    }

    pub fn next_connection_id(&self) -> ConnectionId {
        ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed))
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    /// Creates a vhost; false if it existed.
    pub fn add_vhost(&self, name: &str) -> bool {
        let mut vhosts = self.vhosts.write();
        if vhosts.contains_key(name) {
            return false;
        }
        vhosts.insert(
            name.to_string(),
            VHost::with_persistence(name, self.persistence.clone()),
        );
        drop(vhosts);
        if let Some(p) = &self.persistence {
            let _ = p.put(
                &persistence::key(&[b"vhost", name.as_bytes()]),
                &VhostDef {
                    name: name.to_string(),
                },
            );
        }
        true
    }

    /// Deletes a vhost with its queues and exchanges; consumers are cancelled.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return false;
        };
        if let Some(p) = &self.persistence {
            let _ = p.delete(&persistence::key(&[b"vhost", name.as_bytes()]));
        }
        // Durable exchanges and bindings have definitions of their own to forget.
        for exchange in vhost.exchanges() {
            if !exchange.name.is_empty() && !exchange.name.starts_with(b"amq.") {
                let _ = vhost.delete_exchange(&exchange.name, false);
            }
        }
        for queue in vhost.queues() {
            vhost.remove_queue(&queue);
        }
        self.access.clear_vhost(name);
        self.connections.close_vhost(name, "vhost is deleted");
        true
    }

    /// connection.open: the vhost must exist and the user must have permissions in it.
    pub fn open_vhost(&self, user: &User, vhost: &str) -> AmqpResult<Arc<VHost>> {
        let Some(v) = self.vhost(vhost) else {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("vhost {vhost} not found"),
            ));
        };
        if self.access.permissions(vhost, &user.name).is_none() {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!("access to vhost '{vhost}' refused for user '{}'", user.name),
            ));
        }
        Ok(v)
    }
}
