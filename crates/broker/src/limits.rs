//! Vhost and user limits, as RabbitMQ 3.10 has them: a vhost's `max-connections` and
//! `max-queues`, a user's `max-connections` and `max-channels`. A negative value is no limit
//! (RabbitMQ's -1). They are kept in the vhost's and the user's definitions, and checked where
//! a connection opens a vhost (`Broker::open_vhost`), a channel opens
//! (`Broker::check_channel_limit`) and a queue is created (`VHost::declare_queue`).

use std::collections::BTreeMap;

/// Limits by name.
pub type Limits = BTreeMap<String, i64>;

/// The limits a vhost may have.
pub const VHOST_LIMITS: &[&str] = &["max-connections", "max-queues"];
/// The limits a user may have.
pub const USER_LIMITS: &[&str] = &["max-connections", "max-channels"];

/// The limit `name`, if one is set that limits anything.
pub fn limit(limits: &Limits, name: &str) -> Option<u64> {
    limits.get(name).and_then(|&n| u64::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_is_no_limit_and_zero_is_a_limit() {
        let mut l = Limits::new();
        l.insert("max-queues".into(), -1);
        l.insert("max-connections".into(), 0);
        assert_eq!(limit(&l, "max-queues"), None);
        assert_eq!(limit(&l, "max-connections"), Some(0));
        assert_eq!(limit(&l, "max-channels"), None);
    }
}
