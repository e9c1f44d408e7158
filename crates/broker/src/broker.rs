//! The root of the model: vhosts, users and permissions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::alarms::Alarms;
use crate::auth::{AccessControl, Permissions, User};
use crate::clock::{Clock, SystemClock, Timers};
use crate::error::{AmqpError, AmqpResult, ReplyCode};
use crate::limits;
use crate::metadata::{Command, Metadata};
use crate::persistence::{Definitions, Persistence, VhostDef};
use crate::registry::ConnectionRegistry;
use crate::vhost::VHost;
use crate::ConnectionId;

/// The global parameter RabbitMQ keeps the cluster's name in.
pub const CLUSTER_NAME: &str = "cluster_name";

/// RabbitMQ's default `max_message_size`: 128 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// RabbitMQ's node name, `warren@HOSTNAME` by default (see `node_name`).
    pub node_name: String,
    /// Created with full permissions on `/` when there are no users yet.
    pub default_user: String,
    pub default_password: String,
    /// Users that may log in only from a loopback address (RabbitMQ: `loopback_users`).
    pub loopback_users: Vec<String>,
    pub max_message_size: u64,
}

/// A node name as RabbitMQ completes one: `NAME@HOST` as given, a bare `NAME` on this host,
/// `warren@HOST` when none is given.
pub fn node_name(given: Option<&str>) -> String {
    match given {
        Some(name) if name.contains('@') => name.to_owned(),
        Some(name) => format!("{name}@{}", hostname()),
        None => format!("warren@{}", hostname()),
    }
}

/// This machine's short host name, as RabbitMQ puts in node names.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_name: node_name(None),
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
    /// Orders definition changes and commits them (see `metadata.rs`).
    metadata: Arc<Metadata>,
    /// RabbitMQ's global runtime parameters (`cluster_name`, and whatever tools store),
    /// by name.
    global_parameters: RwLock<std::collections::BTreeMap<String, serde_json::Value>>,
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
        broker
            .first_boot()
            .expect("a broker in memory stores nothing");
        Arc::new(broker)
    }

    fn empty(
        config: BrokerConfig,
        persistence: Option<Arc<Persistence>>,
        clock: Arc<dyn Clock>,
    ) -> Broker {
        let log = persistence
            .clone()
            .map(|p| p as Arc<dyn crate::metadata::CommandLog>);
        let metadata = Metadata::new(log);
        Broker {
            timers: Timers::new(clock),
            access: AccessControl::new(metadata.clone()),
            metadata,
            connections: ConnectionRegistry::default(),
            alarms: Alarms::default(),
            vhosts: RwLock::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            persistence,
            config,
            global_parameters: RwLock::default(),
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
            broker.first_boot()?;
        } else {
            broker.restore(defs);
        }
        Ok(Arc::new(broker))
    }

    /// Replays the stored definitions through the applies every change goes through.
    fn restore(&self, defs: Definitions) {
        let counts = [
            defs.vhosts.len(),
            defs.users.len(),
            defs.exchanges.len(),
            defs.queues.len(),
            defs.bindings.len(),
        ];
        for command in defs.into_commands() {
            self.apply(&command);
        }
        let [vhosts, users, exchanges, queues, bindings] = counts;
        tracing::info!(
            vhosts,
            users,
            exchanges,
            queues,
            bindings,
            "definitions recovered"
        );
    }

    /// Applies a committed command, whichever part of the model it changes.
    fn apply(&self, command: &Command) {
        match command {
            Command::AddVhost(def) => match self.vhost(&def.name) {
                Some(existing) => existing.redefine(def),
                None => {
                    let vhost = VHost::open(
                        def.clone(),
                        self.persistence.clone(),
                        self.metadata.clone(),
                        self.timers.clone(),
                    );
                    self.vhosts.write().insert(def.name.clone(), vhost);
                }
            },
            Command::SetGlobalParameter { name, value } => {
                self.global_parameters
                    .write()
                    .insert(name.clone(), value.clone());
            }
            Command::ClearGlobalParameter { name } => {
                self.global_parameters.write().remove(name);
            }
            Command::DeleteVhost { name } => {
                self.vhosts.write().remove(name);
                self.connections.close_vhost(name, "vhost is deleted");
            }
            Command::PutUser(_)
            | Command::DeleteUser { .. }
            | Command::SetPermissions(_)
            | Command::ClearPermissions { .. }
            | Command::SetTopicPermission(_)
            | Command::ClearTopicPermission { .. } => self.access.apply(command),
            Command::DeclareExchange(_)
            | Command::DeleteExchange { .. }
            | Command::DeclareQueue(_)
            | Command::DeleteQueue { .. }
            | Command::Bind(_)
            | Command::Unbind(_)
            | Command::SetPolicy(_)
            | Command::ClearPolicy { .. } => {
                let vhost = command.vhost().and_then(|name| self.vhost(name));
                match vhost {
                    Some(v) => v.apply(command),
                    None => tracing::warn!(?command, "definition for a missing vhost skipped"),
                }
            }
        }
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
    fn first_boot(&self) -> std::io::Result<()> {
        self.add_vhost("/")?;
        let user = &self.config.default_user;
        self.access
            .add_user(user, &self.config.default_password, &["administrator"])?;
        self.access.set_permissions("/", user, Permissions::full())
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

    /// Creates a vhost; false if it existed. An error means it could not be stored.
    pub fn add_vhost(&self, name: &str) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        if self.vhosts.read().contains_key(name) {
            return Ok(false);
        }
        self.run(&[Command::AddVhost(VhostDef {
            name: name.to_string(),
            ..VhostDef::default()
        })])
        .map(|()| true)
    }

    /// Creates a vhost or changes its description, tags and default queue type; true if it
    /// was created. An error means the change could not be stored.
    pub fn put_vhost(&self, definition: VhostDef) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        let existing = self.vhost(&definition.name);
        if existing
            .as_ref()
            .is_some_and(|v| v.definition() == definition)
        {
            return Ok(false);
        }
        self.run(&[Command::AddVhost(definition)])
            .map(|()| existing.is_none())
    }

    /// Commits and applies a planned change (the caller holds the metadata lock).
    fn run(&self, plan: &[Command]) -> std::io::Result<()> {
        self.metadata.commit(plan)?;
        plan.iter().for_each(|c| self.apply(c));
        Ok(())
    }

    /// Deletes a vhost with its queues, exchanges and permissions; its connections are
    /// closed. False if there was no such vhost.
    pub fn delete_vhost(&self, name: &str) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        let Some(vhost) = self.vhost(name) else {
            return Ok(false);
        };
        let mut plan = vhost.plan_clear();
        plan.extend(self.access.plan_clear_permissions(|v, _| v == name));
        plan.push(Command::DeleteVhost {
            name: name.to_string(),
        });
        self.run(&plan).map(|()| true)
    }

    /// The global runtime parameters, by name.
    pub fn global_parameters(&self) -> Vec<(String, serde_json::Value)> {
        let all = self.global_parameters.read();
        all.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn global_parameter(&self, name: &str) -> Option<serde_json::Value> {
        self.global_parameters.read().get(name).cloned()
    }

    /// The cluster's name: the global parameter `cluster_name` once set (the API's
    /// `/api/cluster-name`), else the node name, as in RabbitMQ.
    pub fn cluster_name(&self) -> String {
        match self.global_parameter(CLUSTER_NAME) {
            Some(serde_json::Value::String(name)) => name,
            _ => self.config.node_name.clone(),
        }
    }

    /// Sets a global parameter; true if it is new. An error means it could not be stored.
    pub fn set_global_parameter(
        &self,
        name: &str,
        value: serde_json::Value,
    ) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        let existing = self.global_parameter(name);
        if existing.as_ref() == Some(&value) {
            return Ok(false);
        }
        self.run(&[Command::SetGlobalParameter {
            name: name.to_string(),
            value,
        }])
        .map(|()| existing.is_none())
    }

    /// Clears a global parameter; false if there was none.
    pub fn clear_global_parameter(&self, name: &str) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        if self.global_parameter(name).is_none() {
            return Ok(false);
        }
        self.run(&[Command::ClearGlobalParameter {
            name: name.to_string(),
        }])
        .map(|()| true)
    }

    /// Sets (`Some`) or clears (`None`) one of a vhost's limits; false if there is no such
    /// vhost.
    pub fn set_vhost_limit(
        &self,
        vhost: &str,
        name: &str,
        value: Option<i64>,
    ) -> std::io::Result<bool> {
        let _order = self.metadata.lock();
        let Some(v) = self.vhost(vhost) else {
            return Ok(false);
        };
        let mut definition = v.definition();
        match value {
            Some(n) => definition.limits.insert(name.to_string(), n),
            None => definition.limits.remove(name),
        };
        self.run(&[Command::AddVhost(definition)]).map(|()| true)
    }

    /// connection.open: the vhost must exist, the user must have permissions in it, and
    /// neither the vhost's nor the user's `max-connections` may be reached (the connection
    /// opening is not counted yet: it registers once open).
    pub fn open_vhost(&self, user: &User, vhost: &str) -> AmqpResult<Arc<VHost>> {
        let not_allowed = |text: String| AmqpError::new(ReplyCode::NotAllowed, text);
        let Some(v) = self.vhost(vhost) else {
            return Err(not_allowed(format!("vhost {vhost} not found")));
        };
        if self.access.permissions(vhost, &user.name).is_none() {
            return Err(not_allowed(format!(
                "access to vhost '{vhost}' refused for user '{}'",
                user.name
            )));
        }
        if let Some(max) = limits::limit(&v.definition().limits, "max-connections") {
            let open = self
                .connections
                .list()
                .iter()
                .filter(|c| c.vhost == vhost)
                .count();
            if open as u64 >= max {
                return Err(not_allowed(format!(
                    "access to vhost '{vhost}' refused for user '{}': connection limit ({max}) is reached",
                    user.name
                )));
            }
        }
        let user_limits = self
            .access
            .user(&user.name)
            .map(|u| u.limits)
            .unwrap_or_default();
        if let Some(max) = limits::limit(&user_limits, "max-connections") {
            let open = self
                .connections
                .list()
                .iter()
                .filter(|c| c.user == user.name)
                .count();
            if open as u64 >= max {
                return Err(not_allowed(format!(
                    "connection refused for user '{}': user connection limit ({max}) is reached",
                    user.name
                )));
            }
        }
        Ok(v)
    }

    /// channel.open: the user's `max-channels` over all its connections (530, a connection
    /// error, as RabbitMQ's).
    pub fn check_channel_limit(&self, user: &str) -> AmqpResult<()> {
        let Some(u) = self.access.user(user) else {
            return Ok(());
        };
        let Some(max) = limits::limit(&u.limits, "max-channels") else {
            return Ok(());
        };
        let open: u64 = self
            .connections
            .list()
            .iter()
            .filter(|c| c.user == user)
            .map(|c| u64::from(c.channels.load(Ordering::Relaxed)))
            .sum();
        if open >= max {
            return Err(AmqpError::new(
                ReplyCode::NotAllowed,
                format!(
                    "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({max})"
                ),
            ));
        }
        Ok(())
    }
}
