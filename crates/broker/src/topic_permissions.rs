//! Topic permissions, as RabbitMQ 3.10 has them (`rabbit_auth_backend_internal`'s
//! `check_topic_access`): per user, vhost and exchange, a `write` regex over the routing keys
//! the user may publish with and a `read` regex over those it may bind with. They act only on
//! topic exchanges; a user without any for an exchange may use every routing key, as in
//! RabbitMQ. The patterns may name `{username}` and `{vhost}`, replaced (regex-escaped) before
//! matching.

use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::auth::Access;

/// One topic permission, as stored and shown.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TopicPermissionDef {
    pub vhost: String,
    pub user: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// A topic permission with its patterns compiled for its user and vhost.
#[derive(Debug)]
pub struct TopicPermission {
    pub def: TopicPermissionDef,
    write: Option<Regex>,
    read: Option<Regex>,
}

impl TopicPermission {
    /// Compiles both patterns (after expanding `{username}` and `{vhost}`). An empty pattern
    /// allows nothing.
    pub fn new(def: TopicPermissionDef) -> Result<TopicPermission, regex::Error> {
        let compile = |p: &str| -> Result<Option<Regex>, regex::Error> {
            if p.is_empty() {
                return Ok(None);
            }
            let expanded = p
                .replace("{username}", &regex::escape(&def.user))
                .replace("{vhost}", &regex::escape(&def.vhost));
            RegexBuilder::new(&expanded)
                .unicode(false)
                .build()
                .map(Some)
        };
        Ok(TopicPermission {
            write: compile(&def.write)?,
            read: compile(&def.read)?,
            def,
        })
    }

    /// Whether `routing_key` may be used to `access` (write: publish, read: bind).
    pub fn allows(&self, access: Access, routing_key: &[u8]) -> bool {
        let pattern = match access {
            Access::Write => &self.write,
            Access::Read => &self.read,
            Access::Configure => return true,
        };
        pattern.as_ref().is_some_and(|r| r.is_match(routing_key))
    }
}

/// RabbitMQ's refusal (403 ACCESS_REFUSED, a channel error).
pub fn refusal(routing_key: &str, exchange: &str, vhost: &str, user: &str) -> String {
    format!(
        "access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost}' refused for user '{user}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(write: &str, read: &str) -> TopicPermission {
        TopicPermission::new(TopicPermissionDef {
            vhost: "/".into(),
            user: "app.1".into(),
            exchange: "amq.topic".into(),
            write: write.into(),
            read: read.into(),
        })
        .unwrap()
    }

    #[test]
    fn patterns_expand_the_user_and_vhost_and_match_unanchored() {
        let p = perm("^{username}\\.", "");
        assert!(p.allows(Access::Write, b"app.1.orders"));
        assert!(
            !p.allows(Access::Write, b"appx1.orders"),
            "the name is escaped"
        );
        assert!(
            !p.allows(Access::Read, b"app.1.orders"),
            "empty allows nothing"
        );
        let q = perm("orders", ".*");
        assert!(q.allows(Access::Write, b"eu.orders.new"));
        assert!(q.allows(Access::Read, b""));
    }
}
