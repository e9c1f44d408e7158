//! Definition changes as commands.
//!
//! Every change to what the broker defines (vhosts, users, permissions, exchanges, queues,
//! bindings) goes the same way:
//!
//! 1. **plan**: under [`Metadata::lock`], the method that makes the change (`VHost::delete_queue`,
//!    `Broker::delete_vhost`, `AccessControl::put_user`, ...) checks it against the current
//!    state and writes it down as a list of [`Command`]s, cascades included (deleting a queue
//!    unbinds it and may auto-delete the exchanges it leaves without bindings);
//! 2. **commit**: [`Metadata::commit`] hands the list to the [`CommandLog`], which makes it
//!    durable as one unit (locally: one fsynced record of the definitions log; in a cluster it
//!    would be one entry of a replicated log) or fails, and then nothing is applied and the
//!    client gets an error;
//! 3. **apply**: each command is applied in order by the one function that applies that kind of
//!    command (`VHost::apply`, `AccessControl::apply`, `Broker::apply`).
//!
//! Recovery replays the stored definitions through the same applies. Holding the lock from plan
//! to apply makes the order of the log the order of application, so a replica replaying the
//! log reaches the same state.
//!
//! Commands for transient things (a non-durable queue, an exclusive one, a binding that
//! involves one) go through the same steps; the local log does not store them, since they do
//! not outlive the process.

use std::io;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};

use crate::persistence::{
    BindingDef, ExchangeDef, NameDef, PermissionDef, QueueDef, UserDef, VhostDef,
};
use crate::policy::{PolicyDef, PolicyKind};
use crate::topic_permissions::TopicPermissionDef;

/// One change to the broker's definitions.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    AddVhost(VhostDef),
    DeleteVhost {
        name: String,
    },
    PutUser(UserDef),
    DeleteUser {
        name: String,
    },
    SetPermissions(PermissionDef),
    ClearPermissions {
        vhost: String,
        user: String,
    },
    DeclareExchange(ExchangeDef),
    DeleteExchange {
        vhost: String,
        name: NameDef,
        durable: bool,
    },
    DeclareQueue(QueueDef),
    DeleteQueue {
        vhost: String,
        name: NameDef,
        durable: bool,
    },
    Bind(BindingDef),
    Unbind(BindingDef),
    SetGlobalParameter {
        name: String,
        value: serde_json::Value,
    },
    ClearGlobalParameter {
        name: String,
    },
    SetTopicPermission(TopicPermissionDef),
    ClearTopicPermission {
        vhost: String,
        user: String,
        exchange: String,
    },
    /// Sets a policy or operator policy (a new one, or a new version of one).
    SetPolicy(PolicyDef),
    ClearPolicy {
        vhost: String,
        kind: PolicyKind,
        name: String,
    },
}

impl Command {
    /// Whether the change outlives the process (and so must reach the disk before it applies).
    pub fn is_durable(&self) -> bool {
        match self {
            Command::DeclareExchange(ExchangeDef { durable, .. })
            | Command::DeleteExchange { durable, .. }
            | Command::DeclareQueue(QueueDef { durable, .. })
            | Command::DeleteQueue { durable, .. }
            | Command::Bind(BindingDef { durable, .. })
            | Command::Unbind(BindingDef { durable, .. }) => *durable,
            Command::AddVhost(_)
            | Command::DeleteVhost { .. }
            | Command::PutUser(_)
            | Command::DeleteUser { .. }
            | Command::SetPermissions(_)
            | Command::ClearPermissions { .. }
            | Command::SetPolicy(_)
            | Command::ClearPolicy { .. }
            | Command::SetTopicPermission(_)
            | Command::ClearTopicPermission { .. }
            | Command::SetGlobalParameter { .. }
            | Command::ClearGlobalParameter { .. } => true,
        }
    }

    /// The vhost the command changes something in, for commands a `VHost` applies.
    pub fn vhost(&self) -> Option<&str> {
        match self {
            Command::DeclareExchange(ExchangeDef { vhost, .. })
            | Command::DeleteExchange { vhost, .. }
            | Command::DeclareQueue(QueueDef { vhost, .. })
            | Command::DeleteQueue { vhost, .. }
            | Command::Bind(BindingDef { vhost, .. })
            | Command::Unbind(BindingDef { vhost, .. })
            | Command::SetPolicy(PolicyDef { vhost, .. })
            | Command::ClearPolicy { vhost, .. } => Some(vhost),
            _ => None,
        }
    }
}

/// Where committed commands go before they are applied.
pub trait CommandLog: Send + Sync {
    /// Makes `commands` durable as one unit: afterwards all of them survive a crash, or, on an
    /// error, none of them is applied.
    fn commit(&self, commands: &[Command]) -> io::Result<()>;
}

/// The order of definition changes, and the log they are committed to.
pub struct Metadata {
    log: Option<Arc<dyn CommandLog>>,
    order: Mutex<()>,
}

impl Metadata {
    /// Changes committed to `log`; `None` keeps everything in memory.
    pub fn new(log: Option<Arc<dyn CommandLog>>) -> Arc<Metadata> {
        Arc::new(Metadata {
            log,
            order: Mutex::new(()),
        })
    }

    /// Held from planning a change to applying it. Not reentrant: a method that holds it
    /// calls only the `plan_*` and `apply*` functions, never another public change.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.order.lock()
    }

    /// Commits a planned change (call with the lock held).
    pub fn commit(&self, commands: &[Command]) -> io::Result<()> {
        match &self.log {
            Some(log) if commands.iter().any(Command::is_durable) => log.commit(commands),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_serialize_with_their_kind() {
        let c = Command::DeleteQueue {
            vhost: "/".into(),
            name: NameDef::Text("orders".into()),
            durable: true,
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"command":"delete_queue","vhost":"/","name":"orders","durable":true}"#
        );
        let back: Command = serde_json::from_str(&json).unwrap();
        assert!(back.is_durable());
        assert_eq!(back.vhost(), Some("/"));
    }
}
