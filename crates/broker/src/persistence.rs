//! What the broker keeps on disk, and where: definitions in one log, each durable queue's
//! messages in a directory of its own, and paging space for long transient queues.
//!
//! Definitions are JSON values under keys `kind \0 vhost \0 name...`; field tables (arguments)
//! are stored as their AMQP encoding in base64, which round-trips every value type exactly.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{error, info, warn};
use warren_protocol::{FieldTable, ShortStr};
use warren_store::{Change, DefinitionsLog, QueueLog, Recovered, ReservedSpace, Syncer};

use crate::limits::Limits;
use crate::metadata::{Command, CommandLog};
use crate::policy::{PolicyDef, PolicyKind};
use crate::topic_permissions::TopicPermissionDef;

pub struct Persistence {
    pub data_dir: PathBuf,
    pub syncer: Arc<Syncer>,
    definitions: Mutex<DefinitionsLog>,
    next_spill: AtomicU64,
    /// Set while memory use is high: queues keep new messages on disk rather than in RAM.
    memory_pressure: AtomicBool,
    /// Set when a write to the data directory failed (see `report_io_error`).
    storage_fault: AtomicBool,
    /// Set from a failed write until the monitor sees space again: queues refuse persistent
    /// messages at once (nack) instead of writing into a full disk, so that what little space
    /// there is serves the writes that free more.
    refusing_writes: AtomicBool,
    reserve: ReservedSpace,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct VhostDef {
    pub name: String,
    /// What RabbitMQ keeps beside the name (`rabbit_vhost` metadata).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
    /// `max-connections`, `max-queues` (see `limits.rs`).
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct UserDef {
    pub name: String,
    pub password_hash: String,
    pub tags: Vec<String>,
    /// `max-connections`, `max-channels` (see `limits.rs`).
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PermissionDef {
    pub vhost: String,
    pub user: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// A name as stored: text when it is UTF-8 (readable, and what earlier releases wrote), its
/// bytes in base64 otherwise, so that every AMQP short string comes back exactly. A lossy
/// conversion would recover a queue under another name, with another directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum NameDef {
    Text(String),
    Bytes { base64: String },
}

impl From<&ShortStr> for NameDef {
    fn from(name: &ShortStr) -> NameDef {
        match name.as_str() {
            Some(text) => NameDef::Text(text.to_string()),
            None => NameDef::Bytes {
                base64: STANDARD.encode(name.as_bytes()),
            },
        }
    }
}

impl NameDef {
    /// The name; None for base64 that does not decode to a short string (a damaged entry).
    pub fn to_short_str(&self) -> Option<ShortStr> {
        let bytes = match self {
            NameDef::Text(text) => text.as_bytes().to_vec(),
            NameDef::Bytes { base64 } => STANDARD.decode(base64).ok()?,
        };
        (bytes.len() <= 255).then(|| ShortStr::from(bytes.as_slice()))
    }
}

/// Definitions written before commands carried durability were all durable.
fn durable_by_default() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: NameDef,
    pub kind: String,
    #[serde(default = "durable_by_default")]
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct QueueDef {
    pub vhost: String,
    pub name: NameDef,
    /// Durable and not exclusive: kept across restarts.
    #[serde(default = "durable_by_default")]
    pub durable: bool,
    /// Set for an exclusive queue: the connection it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BindingDef {
    pub vhost: String,
    /// Both ends durable: kept across restarts.
    #[serde(default = "durable_by_default")]
    pub durable: bool,
    pub source: NameDef,
    pub destination: NameDef,
    /// "queue" or "exchange".
    pub destination_type: String,
    pub routing_key: NameDef,
    pub arguments: String,
}

/// Everything the definitions log held at startup, by kind.
#[derive(Default)]
pub struct Definitions {
    pub vhosts: Vec<VhostDef>,
    pub users: Vec<UserDef>,
    pub permissions: Vec<PermissionDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
    pub policies: Vec<PolicyDef>,
    pub topic_permissions: Vec<TopicPermissionDef>,
    pub global_parameters: Vec<GlobalParameterDef>,
}

/// A global runtime parameter as stored.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct GlobalParameterDef {
    pub name: String,
    pub value: serde_json::Value,
}

impl Definitions {
    pub fn is_empty(&self) -> bool {
        self.vhosts.is_empty() && self.users.is_empty()
    }
}

/// A definition's key: its parts joined by NUL. Names are taken as bytes, so two names that
/// differ only in non-UTF-8 bytes never share a key.
pub fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(&0u8)
}

pub fn encode_table(t: &FieldTable) -> String {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    STANDARD.encode(&b)
}

pub fn decode_table(s: &str) -> FieldTable {
    STANDARD
        .decode(s)
        .ok()
        .and_then(|raw| FieldTable::decode_from(&mut Bytes::from(raw)).ok())
        .unwrap_or_default()
}

impl Persistence {
    /// Opens the data directory, recovering the definitions. Paging space left by a previous
    /// run is wiped: transient messages do not survive a restart.
    pub fn open(data_dir: &Path) -> io::Result<(Arc<Persistence>, Definitions)> {
        std::fs::create_dir_all(data_dir.join("queues"))?;
        let spill = data_dir.join("paging");
        if spill.exists() {
            std::fs::remove_dir_all(&spill)?;
        }
        std::fs::create_dir_all(&spill)?;
        let (log, entries) = DefinitionsLog::open(&data_dir.join("definitions.log"))?;
        let defs = parse(entries);
        let p = Persistence {
            data_dir: data_dir.to_path_buf(),
            syncer: Syncer::start(),
            definitions: Mutex::new(log),
            next_spill: AtomicU64::new(0),
            memory_pressure: AtomicBool::new(false),
            storage_fault: AtomicBool::new(false),
            refusing_writes: AtomicBool::new(false),
            reserve: ReservedSpace::open(data_dir),
        };
        Ok((Arc::new(p), defs))
    }

    /// A write to the data directory failed. The monitor turns this into the disk alarm, so
    /// that publishers stop until space comes back.
    pub fn report_io_error(&self, e: &io::Error) {
        tracing::debug!(error = %e, "storage fault reported");
        self.storage_fault.store(true, Ordering::Release);
        if !self.refusing_writes.swap(true, Ordering::AcqRel) {
            warn!("refusing persistent messages until the disk has space again");
        }
        self.reserve.release();
    }

    /// Whether queues should refuse persistent messages (see `refusing_writes`).
    pub fn refusing_writes(&self) -> bool {
        self.refusing_writes.load(Ordering::Relaxed)
    }

    /// The disk has room again (the monitor decides): writes resume, the reserve is retaken.
    pub fn storage_recovered(&self) {
        if self.refusing_writes.swap(false, Ordering::AcqRel) {
            info!("the disk has space again: accepting persistent messages");
        }
        self.reserve.restore();
    }

    /// Whether a write failed since the last call.
    pub fn take_storage_fault(&self) -> bool {
        // Both flags are read and cleared: `|` rather than `||`.
        self.storage_fault.swap(false, Ordering::AcqRel) | self.syncer.take_fault()
    }

    /// A durable queue's directory: named by a hash, since names may be 255 bytes of anything.
    pub fn queue_dir(&self, vhost: &str, name: &[u8]) -> PathBuf {
        let mut h = Sha256::new();
        h.update(vhost.as_bytes());
        h.update([0]);
        h.update(name);
        let digest = h.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.data_dir.join("queues").join(hex)
    }

    /// A durable queue's logs, recovered: one per priority level (`levels`, 1 unless the queue
    /// has `x-max-priority`), the lowest in the queue's directory and each higher one in a
    /// `priority-N` directory inside it (so removing the queue's directory removes them all).
    /// A log written by a release before store format 2 is migrated first.
    pub fn open_queue_logs(
        &self,
        vhost: &str,
        name: &[u8],
        levels: usize,
    ) -> io::Result<Vec<(QueueLog, Recovered)>> {
        let dir = self.queue_dir(vhost, name);
        let mut logs = Vec::with_capacity(levels);
        logs.push(QueueLog::open_migrating(
            &dir,
            self.syncer.clone(),
            &crate::message::Message::split_format1,
        )?);
        for level in 1..levels {
            let lane_dir = dir.join(format!("priority-{level}"));
            logs.push(QueueLog::open(&lane_dir, true, self.syncer.clone())?);
        }
        Ok(logs)
    }

    /// A fresh paging log for a transient queue that outgrew its RAM allowance.
    pub fn open_paging_log(&self) -> io::Result<QueueLog> {
        let n = self.next_spill.fetch_add(1, Ordering::Relaxed);
        let dir = self.data_dir.join("paging").join(n.to_string());
        QueueLog::open(&dir, false, self.syncer.clone()).map(|(log, _)| log)
    }

    pub fn set_memory_pressure(&self, on: bool) {
        self.memory_pressure.store(on, Ordering::Relaxed);
    }

    pub fn memory_pressure(&self) -> bool {
        self.memory_pressure.load(Ordering::Relaxed)
    }

    /// Flushes and stops the group-commit thread (clean shutdown).
    pub fn shutdown(&self) {
        self.syncer.shutdown();
    }
}

/// The local command log: each command of a change becomes a put or a delete of the entry
/// its definition is stored under, and the change one record of the definitions log (so the
/// log on disk holds the state, compacted at every start, in the format earlier releases wrote).
impl CommandLog for Persistence {
    fn commit(&self, commands: &[Command]) -> io::Result<()> {
        let entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = commands
            .iter()
            .filter(|c| c.is_durable())
            .filter_map(stored_entry)
            .collect();
        let changes: Vec<Change> = entries
            .iter()
            .map(|(key, value)| match value {
                Some(value) => Change::Put { key, value },
                None => Change::Delete { key },
            })
            .collect();
        self.definitions.lock().commit(&changes).inspect_err(|e| {
            error!(error = %e, "writing definitions failed");
            self.report_io_error(e);
        })
    }
}

/// The key a command's definition is stored under, and its new value (None: deleted).
/// None for a command whose names cannot be decoded (a damaged entry replayed).
fn stored_entry(command: &Command) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let name_bytes = |n: &NameDef| n.to_short_str().map(|s| s.as_bytes().to_vec());
    Some(match command {
        Command::AddVhost(v) => (key(&[b"vhost", v.name.as_bytes()]), json(v)),
        Command::DeleteVhost { name } => (key(&[b"vhost", name.as_bytes()]), None),
        Command::PutUser(u) => (key(&[b"user", u.name.as_bytes()]), json(u)),
        Command::DeleteUser { name } => (key(&[b"user", name.as_bytes()]), None),
        Command::SetPermissions(p) => (
            key(&[b"permission", p.vhost.as_bytes(), p.user.as_bytes()]),
            json(p),
        ),
        Command::ClearPermissions { vhost, user } => (
            key(&[b"permission", vhost.as_bytes(), user.as_bytes()]),
            None,
        ),
        Command::DeclareExchange(e) => (
            key(&[b"exchange", e.vhost.as_bytes(), &name_bytes(&e.name)?]),
            json(e),
        ),
        Command::DeleteExchange { vhost, name, .. } => (
            key(&[b"exchange", vhost.as_bytes(), &name_bytes(name)?]),
            None,
        ),
        Command::DeclareQueue(q) => (
            key(&[b"queue", q.vhost.as_bytes(), &name_bytes(&q.name)?]),
            json(q),
        ),
        Command::DeleteQueue { vhost, name, .. } => {
            (key(&[b"queue", vhost.as_bytes(), &name_bytes(name)?]), None)
        }
        Command::Bind(b) => (binding_key(b)?, json(b)),
        Command::Unbind(b) => (binding_key(b)?, None),
        Command::SetPolicy(p) => (policy_key(p.kind, &p.vhost, &p.name), json(p)),
        Command::SetGlobalParameter { name, value } => (
            key(&[b"global_parameter", name.as_bytes()]),
            json(&GlobalParameterDef {
                name: name.clone(),
                value: value.clone(),
            }),
        ),
        Command::ClearGlobalParameter { name } => {
            (key(&[b"global_parameter", name.as_bytes()]), None)
        }
        Command::SetTopicPermission(t) => (
            key(&[
                b"topic_permission",
                t.vhost.as_bytes(),
                t.user.as_bytes(),
                t.exchange.as_bytes(),
            ]),
            json(t),
        ),
        Command::ClearTopicPermission {
            vhost,
            user,
            exchange,
        } => (
            key(&[
                b"topic_permission",
                vhost.as_bytes(),
                user.as_bytes(),
                exchange.as_bytes(),
            ]),
            None,
        ),
        Command::ClearPolicy { vhost, kind, name } => (policy_key(*kind, vhost, name), None),
    })
}

fn policy_key(kind: PolicyKind, vhost: &str, name: &str) -> Vec<u8> {
    key(&[
        kind.component().as_bytes(),
        vhost.as_bytes(),
        name.as_bytes(),
    ])
}

fn binding_key(b: &BindingDef) -> Option<Vec<u8>> {
    Some(key(&[
        b"binding",
        b.vhost.as_bytes(),
        b.source.to_short_str()?.as_bytes(),
        b.destination_type.as_bytes(),
        b.destination.to_short_str()?.as_bytes(),
        b.routing_key.to_short_str()?.as_bytes(),
        b.arguments.as_bytes(),
    ]))
}

fn json(value: &impl Serialize) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).expect("definitions serialize"))
}

impl Definitions {
    /// The stored definitions as the commands that create them, in an order in which each
    /// applies (vhosts first, bindings last): recovery replays these.
    pub fn into_commands(self) -> Vec<Command> {
        let mut commands = Vec::new();
        commands.extend(
            self.global_parameters
                .into_iter()
                .map(|p| Command::SetGlobalParameter {
                    name: p.name,
                    value: p.value,
                }),
        );
        commands.extend(self.vhosts.into_iter().map(Command::AddVhost));
        commands.extend(self.users.into_iter().map(Command::PutUser));
        commands.extend(self.permissions.into_iter().map(Command::SetPermissions));
        commands.extend(
            self.topic_permissions
                .into_iter()
                .map(Command::SetTopicPermission),
        );
        // Before the queues and exchanges, which take their policies as they are installed.
        commands.extend(self.policies.into_iter().map(Command::SetPolicy));
        commands.extend(self.exchanges.into_iter().map(Command::DeclareExchange));
        commands.extend(self.queues.into_iter().map(Command::DeclareQueue));
        commands.extend(self.bindings.into_iter().map(Command::Bind));
        commands
    }
}

fn parse(entries: BTreeMap<Vec<u8>, Vec<u8>>) -> Definitions {
    let mut d = Definitions::default();
    for (k, v) in entries {
        let kind = k.split(|&b| b == 0).next().unwrap_or_default();
        let ok = match kind {
            b"vhost" => serde_json::from_slice(&v).map(|x| d.vhosts.push(x)),
            b"user" => serde_json::from_slice(&v).map(|x| d.users.push(x)),
            b"permission" => serde_json::from_slice(&v).map(|x| d.permissions.push(x)),
            b"exchange" => serde_json::from_slice(&v).map(|x| d.exchanges.push(x)),
            b"queue" => serde_json::from_slice(&v).map(|x| d.queues.push(x)),
            b"binding" => serde_json::from_slice(&v).map(|x| d.bindings.push(x)),
            b"global_parameter" => serde_json::from_slice(&v).map(|x| d.global_parameters.push(x)),
            b"topic_permission" => serde_json::from_slice(&v).map(|x| d.topic_permissions.push(x)),
            b"policy" | b"operator_policy" => {
                serde_json::from_slice(&v).map(|x| d.policies.push(x))
            }
            _ => Ok(()),
        };
        if let Err(e) = ok {
            error!(key = %String::from_utf8_lossy(&k), error = %e, "unreadable definition skipped");
        }
    }
    d
}
