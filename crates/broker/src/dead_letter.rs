//! Dead-lettering, as RabbitMQ 3.10's `rabbit_dead_letter` does it: a message that a queue
//! rejects, expires or drops for its length limit is republished to the queue's dead-letter
//! exchange, with the story of its deaths in the `x-death` header.
//!
//! This module knows the message rewrite and the cycle rule; queues decide when a message dies
//! (`queue/classic.rs`) and the vhost routes the result (`VHost::dead_letter`).

use std::sync::Arc;

use bytes::BytesMut;
use warren_protocol::{FieldTable, FieldValue, ShortStr};

use tracing::warn;

use crate::message::Message;

/// Why a message died; the `reason` RabbitMQ writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    /// basic.reject or basic.nack without requeue.
    Rejected,
    /// Its TTL ran out.
    Expired,
    /// Dropped from the head for the queue's length limit, or refused by `reject-publish-dlx`.
    Maxlen,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
        }
    }
}

/// A message that died in a queue, on its way to the queue's dead-letter exchange.
pub struct DeadLetter {
    pub message: Arc<Message>,
    pub reason: DeathReason,
}

/// Where a queue's dead letters go: its `x-dead-letter-exchange`, and the routing key that
/// replaces theirs (`x-dead-letter-routing-key`) if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterTarget {
    pub exchange: ShortStr,
    pub routing_key: Option<ShortStr>,
}

/// The message a dead-letter exchange receives for `message`, which died in `queue` for
/// `reason` at `now_secs` (Unix seconds): published to the dead-letter exchange, with the
/// dead-letter routing key if the queue has one (the `CC` header then goes), its expiration
/// removed (kept in `x-death` as `original-expiration`), and `x-death` updated.
pub fn dead_lettered(
    message: &Message,
    queue: &ShortStr,
    reason: DeathReason,
    now_secs: u64,
    target: &DeadLetterTarget,
) -> Message {
    let mut props = message.decode_properties();
    let mut headers = props.headers.take().unwrap_or_default();
    let original_keys = routing_keys(message, &headers);
    // RabbitMQ's field order for a new entry (clients read it as a map either way).
    let mut entry = FieldTable::new();
    entry.insert("count", FieldValue::I64(1));
    entry.insert("reason", long_str(reason.as_str().as_bytes()));
    entry.insert("queue", long_str(queue.as_bytes()));
    entry.insert("time", FieldValue::Timestamp(now_secs));
    entry.insert("exchange", long_str(message.exchange.as_bytes()));
    entry.insert(
        "routing-keys",
        FieldValue::Array(original_keys.iter().map(|k| long_str(k)).collect()),
    );
    if let Some(expiration) = props.expiration.take() {
        entry.insert("original-expiration", long_str(expiration.as_bytes()));
    }
    record_death(&mut headers, entry, queue.as_bytes(), reason);
    let routing_key = match &target.routing_key {
        Some(key) => {
            headers.remove("CC");
            key.clone()
        }
        None => message.routing_key.clone(),
    };
    props.headers = Some(headers);
    let mut encoded = BytesMut::new();
    props.encode(&mut encoded);
    // delivery_mode, and with it persistence, is among the properties kept.
    Message::new(
        &target.exchange,
        &routing_key,
        &encoded.freeze(),
        message.body.clone(),
    )
}

/// Adds a death to `x-death`: the entry for the same queue and reason counts one more and
/// moves to the front (keeping the time, exchange and keys it first recorded), a new one goes
/// in front with count 1. The first death also sets the `x-first-death-*` headers. Entries
/// written over an existing array have their keys sorted, as RabbitMQ's are.
fn record_death(headers: &mut FieldTable, entry: FieldTable, queue: &[u8], reason: DeathReason) {
    // Taken and put back in its place: the array is rewritten, not copied.
    let existing = match headers.get_mut("x-death") {
        Some(FieldValue::Array(deaths)) => Some(std::mem::take(deaths)),
        Some(other) => {
            warn!(header = ?other, "message has an invalid x-death header; resetting it");
            Some(Vec::new())
        }
        None => None,
    };
    let Some(mut deaths) = existing else {
        let first = |key: &str| entry.get(key).cloned().unwrap_or(FieldValue::Void);
        headers.insert("x-first-death-exchange", first("exchange"));
        headers.insert("x-first-death-queue", first("queue"));
        headers.insert("x-first-death-reason", first("reason"));
        headers.insert("x-death", FieldValue::Array(vec![FieldValue::Table(entry)]));
        return;
    };
    let same = deaths.iter().position(|d| match d {
        FieldValue::Table(t) => {
            str_field(t, "queue") == Some(queue)
                && str_field(t, "reason") == Some(reason.as_str().as_bytes())
        }
        _ => false,
    });
    let front = match same {
        Some(i) => {
            let FieldValue::Table(mut old) = deaths.remove(i) else {
                unreachable!("matched a table above")
            };
            let count = old.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
            old.insert("count", FieldValue::I64(count + 1));
            old
        }
        None => entry,
    };
    let mut front = front;
    front.sort_by_name();
    deaths.insert(0, FieldValue::Table(front));
    headers.insert("x-death", FieldValue::Array(deaths));
}

/// Whether delivering a dead letter to `queue` closes a loop that no client took part in: the
/// message already died in `queue`, and no death since then (that one included) was a
/// rejection. RabbitMQ drops the letter for such a queue, so that expiry or length limits
/// cannot bounce a message around for ever; a loop through a rejection is the client's to end.
/// Rejections themselves are never checked (`dead_letters_through_rejection_loop`).
pub fn is_cycle(queue: &[u8], dead_letter: &Message) -> bool {
    let props = dead_letter.decode_properties();
    let Some(FieldValue::Array(deaths)) = props.headers.as_ref().and_then(|h| h.get("x-death"))
    else {
        return false;
    };
    let tables = || {
        deaths.iter().map(|d| match d {
            FieldValue::Table(t) => Some(t),
            _ => None,
        })
    };
    let Some(back_to) =
        tables().position(|t| t.is_some_and(|t| str_field(t, "queue") == Some(queue)))
    else {
        return false;
    };
    tables()
        .take(back_to + 1)
        .all(|t| t.is_some_and(|t| str_field(t, "reason") != Some(b"rejected")))
}

/// The keys a message was routed by: its routing key and its `CC` header's keys.
fn routing_keys(message: &Message, headers: &FieldTable) -> Vec<Vec<u8>> {
    let mut keys = vec![message.routing_key.as_bytes().to_vec()];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        keys.extend(
            cc.iter()
                .filter_map(FieldValue::as_bytes)
                .map(<[u8]>::to_vec),
        );
    }
    keys
}

fn str_field<'a>(table: &'a FieldTable, key: &str) -> Option<&'a [u8]> {
    table.get(key).and_then(FieldValue::as_bytes)
}

fn long_str(bytes: &[u8]) -> FieldValue {
    FieldValue::LongStr(bytes::Bytes::copy_from_slice(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use warren_protocol::BasicProperties;

    fn message(exchange: &str, key: &str, props: &BasicProperties) -> Message {
        let mut encoded = BytesMut::new();
        props.encode(&mut encoded);
        Message::new(
            &exchange.into(),
            &key.into(),
            &encoded.freeze(),
            Bytes::from_static(b"b"),
        )
    }

    fn deaths(m: &Message) -> Vec<(String, String, i64)> {
        let Some(FieldValue::Array(deaths)) = headers_of(m).get("x-death").cloned() else {
            return Vec::new();
        };
        deaths
            .iter()
            .map(|d| {
                let FieldValue::Table(t) = d else {
                    panic!("{d:?}")
                };
                let s = |k| String::from_utf8(str_field(t, k).unwrap().to_vec()).unwrap();
                (
                    s("queue"),
                    s("reason"),
                    t.get("count").and_then(FieldValue::as_i64).unwrap(),
                )
            })
            .collect()
    }

    fn headers_of(message: &Message) -> FieldTable {
        message.decode_properties().headers.unwrap_or_default()
    }

    fn target(exchange: &str, key: Option<&str>) -> DeadLetterTarget {
        DeadLetterTarget {
            exchange: exchange.into(),
            routing_key: key.map(ShortStr::from),
        }
    }

    #[test]
    fn a_repeated_death_counts_up_and_moves_to_the_front() {
        let props = BasicProperties {
            expiration: Some("5".into()),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let m = message("", "work", &props);
        let to_retry = target("", Some("retry"));
        let to_work = target("", Some("work"));
        let m = dead_lettered(&m, &"work".into(), DeathReason::Rejected, 100, &to_retry);
        assert_eq!(m.routing_key.as_bytes(), b"retry");
        assert!(m.persistent && m.expiration.is_none());
        let m = dead_lettered(&m, &"retry".into(), DeathReason::Expired, 101, &to_work);
        let m = dead_lettered(&m, &"work".into(), DeathReason::Rejected, 102, &to_retry);
        assert_eq!(
            deaths(&m),
            [
                ("work".into(), "rejected".into(), 2),
                ("retry".into(), "expired".into(), 1)
            ]
        );
        let headers = headers_of(&m);
        assert_eq!(
            headers
                .get("x-first-death-reason")
                .and_then(FieldValue::as_bytes),
            Some(&b"rejected"[..])
        );
        // The first death's original expiration stays with its entry.
        let Some(FieldValue::Array(all)) = headers.get("x-death") else {
            panic!()
        };
        let FieldValue::Table(first) = &all[0] else {
            panic!()
        };
        assert_eq!(str_field(first, "original-expiration"), Some(&b"5"[..]));
    }

    #[test]
    fn only_loops_without_a_rejection_are_cycles() {
        let m = message("", "a", &BasicProperties::default());
        let to_b = target("", Some("b"));
        let to_a = target("", Some("a"));
        let expired_in_a = dead_lettered(&m, &"a".into(), DeathReason::Expired, 1, &to_b);
        assert!(!is_cycle(b"b", &expired_in_a));
        assert!(is_cycle(b"a", &expired_in_a));
        let rejected_in_b =
            dead_lettered(&expired_in_a, &"b".into(), DeathReason::Rejected, 2, &to_a);
        assert!(!is_cycle(b"a", &rejected_in_b));
        let expired_in_b = dead_lettered(&expired_in_a, &"b".into(), DeathReason::Maxlen, 2, &to_a);
        assert!(is_cycle(b"a", &expired_in_b));
    }
}
