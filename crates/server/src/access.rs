//! Permission checks for one connection's user in its vhost, with a cache that is dropped
//! whenever any permission changes (so the publish path rarely runs a regex).

use std::sync::Arc;

use warren_broker::auth::{Access, Permissions};
use warren_broker::exchange::ExchangeKind;
use warren_broker::topic_permissions::{self, TopicPermission};
use warren_broker::vhost::DEFAULT_EXCHANGE_ALIAS;
use warren_broker::{AmqpError, AmqpResult, Broker, VHost};
use warren_protocol::ShortStr;

pub struct AccessCheck {
    broker: Arc<Broker>,
    user: String,
    vhost: String,
    generation: u64,
    permissions: Option<Arc<Permissions>>,
    /// The user's topic permissions in the vhost: nearly always none, and then routing keys
    /// are never looked at.
    topic: Vec<Arc<TopicPermission>>,
    decisions: foldhash::HashMap<(u8, ShortStr), bool>,
    /// The last resource allowed: a publisher names the same exchange message after message,
    /// and comparing it is cheaper than hashing it.
    last_allowed: Option<(Access, ShortStr)>,
}

/// Entries kept before the cache is cleared: names are client-chosen, so bound it.
const MAX_CACHED: usize = 1024;

impl AccessCheck {
    /// Drops what is cached if any permission changed since.
    fn refresh(&mut self) {
        let generation = self.broker.access.generation();
        if generation != self.generation {
            self.generation = generation;
            self.permissions = self.broker.access.permissions(&self.vhost, &self.user);
            self.topic = self
                .broker
                .access
                .topic_permissions(&self.vhost, &self.user);
            self.decisions.clear();
            self.last_allowed = None;
        }
    }

    /// 403 unless the user's topic permission (if it has one for `exchange`, a topic
    /// exchange) lets `routing_key` be used to `access`: write to publish, read to bind.
    /// Called after `check` on the exchange, which refreshed the cache.
    pub fn check_topic(
        &self,
        access: Access,
        vhost: &VHost,
        exchange: &ShortStr,
        routing_key: &ShortStr,
    ) -> AmqpResult<()> {
        if self.topic.is_empty() {
            return Ok(());
        }
        let Some(permission) = self
            .topic
            .iter()
            .find(|p| p.def.exchange.as_bytes() == exchange.as_bytes())
        else {
            return Ok(());
        };
        let is_topic = vhost
            .exchange(exchange)
            .is_ok_and(|x| x.config.kind == ExchangeKind::Topic);
        if !is_topic || permission.allows(access, routing_key.as_bytes()) {
            return Ok(());
        }
        Err(AmqpError::access_refused(topic_permissions::refusal(
            &routing_key.to_string(),
            &exchange.to_string(),
            &self.vhost,
            &self.user,
        )))
    }

    pub fn new(broker: Arc<Broker>, user: &str, vhost: &str) -> Self {
        let permissions = broker.access.permissions(vhost, user);
        let topic = broker.access.topic_permissions(vhost, user);
        AccessCheck {
            topic,
            generation: broker.access.generation(),
            broker,
            user: user.to_string(),
            vhost: vhost.to_string(),
            permissions,
            decisions: foldhash::HashMap::default(),
            last_allowed: None,
        }
    }

    /// 403 unless the user may `access` the resource. `kind` is "queue" or "exchange".
    pub fn check(&mut self, access: Access, kind: &str, name: &ShortStr) -> AmqpResult<()> {
        self.refresh();
        if self
            .last_allowed
            .as_ref()
            .is_some_and(|(a, n)| *a == access && n == name)
        {
            return Ok(());
        }
        let key = (access as u8, name.clone());
        let allowed = match self.decisions.get(&key) {
            Some(&allowed) => allowed,
            None => {
                let resource = if kind == "exchange" && name.is_empty() {
                    DEFAULT_EXCHANGE_ALIAS.to_string()
                } else {
                    name.to_string()
                };
                let allowed = self
                    .permissions
                    .as_ref()
                    .is_some_and(|p| p.allows(access, &resource));
                if self.decisions.len() >= MAX_CACHED {
                    self.decisions.clear();
                }
                self.decisions.insert(key, allowed);
                allowed
            }
        };
        if allowed {
            self.last_allowed = Some((access, name.clone()));
            Ok(())
        } else {
            let shown = if kind == "exchange" && name.is_empty() {
                ShortStr::from(DEFAULT_EXCHANGE_ALIAS)
            } else {
                name.clone()
            };
            // RabbitMQ 3.10's text, which does not say which permission was missing.
            Err(AmqpError::access_refused(format!(
                "access to {kind} '{shown}' in vhost '{}' refused for user '{}'",
                self.vhost, self.user
            )))
        }
    }
}
