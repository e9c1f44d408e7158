//! The root of the model: vhosts, users and permissions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::auth::{AccessControl, Permissions, User};
use crate::error::{AmqpError, AmqpResult, ReplyCode};
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
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    next_connection: AtomicU64,
}

impl Broker {
    /// A broker with RabbitMQ's first-boot definitions: vhost `/` and the default user,
    /// an administrator with full permissions on it.
    pub fn new(config: BrokerConfig) -> Arc<Broker> {
        let broker = Broker {
            access: AccessControl::default(),
            connections: ConnectionRegistry::default(),
            vhosts: RwLock::new(HashMap::new()),
            next_connection: AtomicU64::new(1),
            config,
        };
        broker.add_vhost("/");
        broker.access.add_user(
            &broker.config.default_user,
            &broker.config.default_password,
            &["administrator"],
        );
        broker
            .access
            .set_permissions("/", &broker.config.default_user, Permissions::full());
        Arc::new(broker)
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
        vhosts.insert(name.to_string(), VHost::new(name));
        true
    }

    /// Deletes a vhost with its queues and exchanges; consumers are cancelled.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self.vhosts.write().remove(name) else {
            return false;
        };
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
