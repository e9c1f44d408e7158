//! Users, password hashes and per-vhost permissions.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::RwLock;
use rand::RngCore;
use regex::bytes::{Regex, RegexBuilder};

use crate::limits::Limits;
use crate::metadata::{Command, Metadata};
use crate::persistence::{PermissionDef, UserDef};
use crate::topic_permissions::{TopicPermission, TopicPermissionDef};
use sha2::{Digest, Sha256};

/// A user as RabbitMQ stores one: `password_hash` is base64(salt ++ sha256(salt ++ password))
/// with a 4-byte salt (`rabbit_password_hashing_sha256`), so definitions exported from
/// RabbitMQ keep working passwords here.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    pub tags: Vec<String>,
    /// `max-connections`, `max-channels` (see `limits.rs`).
    pub limits: Limits,
}

pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut salt);
    hash_with_salt(&salt, password)
}

fn hash_with_salt(salt: &[u8], password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&hasher.finalize());
    STANDARD.encode(out)
}

fn verify_password(password_hash: &str, password: &str) -> bool {
    let Ok(raw) = STANDARD.decode(password_hash) else {
        return false;
    };
    if raw.len() != 4 + 32 {
        return false;
    }
    // Constant-time enough for our purposes: compare whole digests, not a prefix search.
    let expected = hash_with_salt(&raw[..4], password);
    expected.as_bytes() == password_hash.as_bytes()
}

/// Which of RabbitMQ's three permissions an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// A user's permissions in one vhost: three regexes over resource names.
#[derive(Clone, Debug)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
    compiled: [Option<Regex>; 3],
}

impl Permissions {
    /// Compiles the three patterns. An empty pattern grants nothing, as in RabbitMQ.
    ///
    /// RabbitMQ runs them with `re:run/3` and no `unicode` option: PCRE over the name's bytes,
    /// where `\w`, `\d` and `\s` are ASCII classes. So do we: in Unicode mode those classes
    /// would need tables this build leaves out, and a pattern using them would not compile.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, regex::Error> {
        let compile = |p: &str| {
            if p.is_empty() {
                Ok(None)
            } else {
                RegexBuilder::new(p).unicode(false).build().map(Some)
            }
        };
        Ok(Permissions {
            compiled: [compile(configure)?, compile(write)?, compile(read)?],
            configure: configure.to_string(),
            write: write.to_string(),
            read: read.to_string(),
        })
    }

    pub fn full() -> Permissions {
        Permissions::new(".*", ".*", ".*").expect("valid pattern")
    }

    /// RabbitMQ matches unanchored, like `re:run/3`.
    pub fn allows(&self, access: Access, resource: &str) -> bool {
        let idx = match access {
            Access::Configure => 0,
            Access::Write => 1,
            Access::Read => 2,
        };
        self.compiled[idx]
            .as_ref()
            .is_some_and(|r| r.is_match(resource.as_bytes()))
    }
}

/// A user's topic permissions in a vhost, one per exchange.
type TopicPermissions = Vec<Arc<TopicPermission>>;

/// Users and permissions, read on every login and (through caches) on every operation.
pub struct AccessControl {
    users: RwLock<HashMap<String, User>>,
    permissions: RwLock<HashMap<(String, String), Arc<Permissions>>>,
    /// Topic permissions by (vhost, user), one per exchange.
    topic_permissions: RwLock<HashMap<(String, String), TopicPermissions>>,
    /// Bumped on every change, so connections can cache permission decisions safely.
    generation: AtomicU64,
    metadata: Arc<Metadata>,
}

impl AccessControl {
    /// Access control whose changes go through `metadata` (see `metadata.rs`).
    pub fn new(metadata: Arc<Metadata>) -> Self {
        AccessControl {
            users: RwLock::default(),
            permissions: RwLock::default(),
            topic_permissions: RwLock::default(),
            generation: AtomicU64::new(0),
            metadata,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Applies a committed user or permission command (other commands are not ours).
    pub(crate) fn apply(&self, command: &Command) {
        match command {
            Command::PutUser(u) => {
                let user = User {
                    name: u.name.clone(),
                    password_hash: u.password_hash.clone(),
                    tags: u.tags.clone(),
                    limits: u.limits.clone(),
                };
                self.users.write().insert(u.name.clone(), user);
            }
            Command::DeleteUser { name } => {
                self.users.write().remove(name);
            }
            Command::SetPermissions(p) => match Permissions::new(&p.configure, &p.write, &p.read) {
                Ok(compiled) => {
                    let key = (p.vhost.clone(), p.user.clone());
                    self.permissions.write().insert(key, Arc::new(compiled));
                }
                Err(e) => {
                    tracing::warn!(user = %p.user, vhost = %p.vhost, error = %e, "stored permissions skipped")
                }
            },
            Command::ClearPermissions { vhost, user } => {
                self.permissions
                    .write()
                    .remove(&(vhost.clone(), user.clone()));
            }
            Command::SetTopicPermission(def) => match TopicPermission::new(def.clone()) {
                Ok(compiled) => {
                    let key = (def.vhost.clone(), def.user.clone());
                    let mut all = self.topic_permissions.write();
                    let list = all.entry(key).or_default();
                    list.retain(|p| p.def.exchange != def.exchange);
                    list.push(Arc::new(compiled));
                }
                Err(e) => {
                    tracing::warn!(user = %def.user, vhost = %def.vhost, error = %e, "stored topic permission skipped")
                }
            },
            Command::ClearTopicPermission {
                vhost,
                user,
                exchange,
            } => {
                let key = (vhost.clone(), user.clone());
                let mut all = self.topic_permissions.write();
                if let Some(list) = all.get_mut(&key) {
                    list.retain(|p| &p.def.exchange != exchange);
                    if list.is_empty() {
                        all.remove(&key);
                    }
                }
            }
            _ => return,
        }
        self.changed();
    }

    /// Commits and applies a planned change.
    fn run(&self, commands: &[Command]) -> io::Result<()> {
        self.metadata.commit(commands)?;
        commands.iter().for_each(|c| self.apply(c));
        Ok(())
    }

    /// Creates or replaces a user. An error means it could not be stored: nothing changed.
    pub fn put_user(&self, user: User) -> io::Result<()> {
        let _order = self.metadata.lock();
        self.run(&[Command::PutUser(UserDef {
            name: user.name,
            password_hash: user.password_hash,
            tags: user.tags,
            limits: user.limits,
        })])
    }

    pub fn add_user(&self, name: &str, password: &str, tags: &[&str]) -> io::Result<()> {
        self.put_user(User {
            name: name.to_string(),
            password_hash: hash_password(password),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            limits: Limits::new(),
        })
    }

    /// Sets (`Some`) or clears (`None`) one of a user's limits; false if there is no such
    /// user.
    pub fn set_user_limit(&self, user: &str, name: &str, value: Option<i64>) -> io::Result<bool> {
        let _order = self.metadata.lock();
        let Some(mut u) = self.user(user) else {
            return Ok(false);
        };
        match value {
            Some(v) => u.limits.insert(name.to_string(), v),
            None => u.limits.remove(name),
        };
        self.run(&[Command::PutUser(UserDef {
            name: u.name,
            password_hash: u.password_hash,
            tags: u.tags,
            limits: u.limits,
        })])
        .map(|()| true)
    }

    /// Deletes a user and its permissions; false if there was no such user.
    pub fn delete_user(&self, name: &str) -> io::Result<bool> {
        let _order = self.metadata.lock();
        if !self.users.read().contains_key(name) {
            return Ok(false);
        }
        let mut plan = self.plan_clear_permissions(|_, u| u == name);
        plan.push(Command::DeleteUser {
            name: name.to_string(),
        });
        self.run(&plan).map(|()| true)
    }

    /// Commands that clear the permissions (topic permissions too) matching
    /// `which(vhost, user)`.
    pub(crate) fn plan_clear_permissions(
        &self,
        which: impl Fn(&str, &str) -> bool,
    ) -> Vec<Command> {
        let mut plan: Vec<Command> = self
            .permissions
            .read()
            .keys()
            .filter(|(v, u)| which(v, u))
            .map(|(v, u)| Command::ClearPermissions {
                vhost: v.clone(),
                user: u.clone(),
            })
            .collect();
        for ((v, u), list) in self.topic_permissions.read().iter() {
            if which(v, u) {
                plan.extend(list.iter().map(|p| Command::ClearTopicPermission {
                    vhost: v.clone(),
                    user: u.clone(),
                    exchange: p.def.exchange.clone(),
                }));
            }
        }
        plan
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    pub fn users(&self) -> Vec<User> {
        self.users.read().values().cloned().collect()
    }

    /// Checks a login. The answer does not say whether the user exists.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<User> {
        let user = self.users.read().get(name).cloned()?;
        verify_password(&user.password_hash, password).then_some(user)
    }

    pub fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        permissions: Permissions,
    ) -> io::Result<()> {
        let _order = self.metadata.lock();
        self.run(&[Command::SetPermissions(PermissionDef {
            vhost: vhost.to_string(),
            user: user.to_string(),
            configure: permissions.configure,
            write: permissions.write,
            read: permissions.read,
        })])
    }

    /// Clears a user's permissions in a vhost; false if there were none.
    pub fn clear_permissions(&self, vhost: &str, user: &str) -> io::Result<bool> {
        let _order = self.metadata.lock();
        let key = (vhost.to_string(), user.to_string());
        if !self.permissions.read().contains_key(&key) {
            return Ok(false);
        }
        self.run(&[Command::ClearPermissions {
            vhost: key.0,
            user: key.1,
        }])
        .map(|()| true)
    }

    pub fn permissions(&self, vhost: &str, user: &str) -> Option<Arc<Permissions>> {
        self.permissions
            .read()
            .get(&(vhost.to_string(), user.to_string()))
            .cloned()
    }

    /// Sets a user's topic permission for one exchange (its patterns compile: the caller
    /// checked with `TopicPermission::new`).
    pub fn set_topic_permission(&self, def: TopicPermissionDef) -> io::Result<()> {
        let _order = self.metadata.lock();
        self.run(&[Command::SetTopicPermission(def)])
    }

    /// Clears a user's topic permissions in a vhost, for one exchange or all; false if there
    /// were none.
    pub fn clear_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> io::Result<bool> {
        let _order = self.metadata.lock();
        let plan: Vec<Command> = self
            .topic_permissions(vhost, user)
            .iter()
            .filter(|p| exchange.is_none_or(|x| x == p.def.exchange))
            .map(|p| Command::ClearTopicPermission {
                vhost: vhost.to_string(),
                user: user.to_string(),
                exchange: p.def.exchange.clone(),
            })
            .collect();
        if plan.is_empty() {
            return Ok(false);
        }
        self.run(&plan).map(|()| true)
    }

    /// A user's topic permissions in a vhost (none: every routing key is allowed).
    pub fn topic_permissions(&self, vhost: &str, user: &str) -> Vec<Arc<TopicPermission>> {
        self.topic_permissions
            .read()
            .get(&(vhost.to_string(), user.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    pub fn all_topic_permissions(&self) -> Vec<TopicPermissionDef> {
        let mut all: Vec<TopicPermissionDef> = self
            .topic_permissions
            .read()
            .values()
            .flatten()
            .map(|p| p.def.clone())
            .collect();
        all.sort_by(|a, b| (&a.vhost, &a.user, &a.exchange).cmp(&(&b.vhost, &b.user, &b.exchange)));
        all
    }

    pub fn all_permissions(&self) -> Vec<(String, String, Arc<Permissions>)> {
        self.permissions
            .read()
            .iter()
            .map(|((v, u), p)| (v.clone(), u.clone(), p.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hash_format_verifies() {
        // Computed with RabbitMQ's algorithm: salt 0x908DC60A, password "test12".
        let h = hash_with_salt(&[0x90, 0x8D, 0xC6, 0x0A], "test12");
        assert!(verify_password(&h, "test12"));
        assert!(!verify_password(&h, "test13"));
        assert!(!verify_password("not base64!", "x"));
        let fresh = hash_password("pw");
        assert!(verify_password(&fresh, "pw"));
    }

    #[test]
    fn permissions_are_unanchored_and_empty_denies() {
        let p = Permissions::new("^conf-", "", ".*").unwrap();
        assert!(p.allows(Access::Configure, "conf-queue"));
        assert!(!p.allows(Access::Configure, "x-conf-queue"));
        assert!(!p.allows(Access::Write, "anything"));
        assert!(p.allows(Access::Read, ""));
        let unanchored = Permissions::new("abc", "", "").unwrap();
        assert!(unanchored.allows(Access::Configure, "xxabcxx"));
    }

    #[test]
    fn perl_classes_are_ascii_as_in_rabbitmq() {
        let p = Permissions::new(r"^app\.[\w-]+$", r"^shard-\d+$", r"^\S+$").unwrap();
        assert!(p.allows(Access::Configure, "app.tmp-1"));
        assert!(!p.allows(Access::Configure, "app.tmp.1"));
        assert!(!p.allows(Access::Configure, "app.é"));
        assert!(p.allows(Access::Write, "shard-12"));
        assert!(!p.allows(Access::Write, "shard-x"));
        assert!(p.allows(Access::Read, "no-space"));
        assert!(!p.allows(Access::Read, "a space"));
        assert!(Permissions::new("(?i)^APP", "", "")
            .unwrap()
            .allows(Access::Configure, "app.x"));
    }
}
