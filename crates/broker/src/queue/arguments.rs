//! Queue arguments (`x-...`) as RabbitMQ 3.10 reads them: parsed and validated when a queue is
//! declared, with its reply codes and texts, and compared when a queue is declared again.
//!
//! The texts reproduce RabbitMQ's Erlang formatting (`{value_negative,-1}`, `"expected integer,
//! got longstr"`, `the value '10' of type 'long'`), because clients and operators match on them.
//! What each queue type accepts, and in which order keys are checked, follows
//! `rabbit_amqqueue:declare_args/0` and each type's `queue_arguments` capability.

use warren_protocol::{FieldTable, FieldValue, ShortStr};

use crate::error::{AmqpError, AmqpResult};

/// The kinds of queue RabbitMQ has; `x-queue-type` picks one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }

    /// The Erlang module RabbitMQ names in its texts.
    fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
            QueueType::Stream => "rabbit_stream_queue",
        }
    }

    /// The arguments this type knows, in the order RabbitMQ compares them on redeclare.
    fn known_arguments(self) -> &'static [&'static str] {
        match self {
            QueueType::Classic => &[
                "x-expires",
                "x-message-ttl",
                "x-dead-letter-exchange",
                "x-dead-letter-routing-key",
                "x-max-length",
                "x-max-length-bytes",
                "x-max-priority",
                "x-overflow",
                "x-queue-mode",
                "x-queue-version",
                "x-single-active-consumer",
                "x-queue-type",
                "x-queue-master-locator",
                "x-consumer-timeout",
            ],
            QueueType::Quorum => &[
                "x-dead-letter-exchange",
                "x-dead-letter-routing-key",
                "x-dead-letter-strategy",
                "x-expires",
                "x-max-length",
                "x-max-length-bytes",
                "x-max-in-memory-length",
                "x-max-in-memory-bytes",
                "x-overflow",
                "x-single-active-consumer",
                "x-queue-type",
                "x-quorum-initial-group-size",
                "x-delivery-limit",
                "x-message-ttl",
                "x-queue-leader-locator",
                "x-consumer-timeout",
            ],
            QueueType::Stream => &[
                "x-max-length-bytes",
                "x-queue-type",
                "x-max-age",
                "x-stream-max-segment-size-bytes",
                "x-initial-cluster-size",
                "x-queue-leader-locator",
            ],
        }
    }

    fn knows(self, key: &[u8]) -> bool {
        self.known_arguments().iter().any(|k| k.as_bytes() == key)
    }
}

/// What happens to a publish that would take a queue over its length limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// A classic queue's arguments, typed. Arguments of other types, and keys no type knows, stay
/// in the raw table only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueArguments {
    pub queue_type: QueueType,
    /// x-expires, in milliseconds.
    pub expires: Option<u64>,
    /// x-message-ttl, in milliseconds.
    pub message_ttl: Option<u64>,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    /// x-max-priority: 0 to 255.
    pub max_priority: Option<u8>,
    pub overflow: Overflow,
    /// x-queue-mode lazy (accepted; it changes nothing, as in RabbitMQ 3.12+, since every
    /// Warren queue pages to disk beyond its RAM head).
    pub lazy: bool,
    pub single_active_consumer: bool,
    /// x-consumer-timeout (RabbitMQ 3.12's, ahead of 3.10): how long, in milliseconds, a
    /// delivery from this queue may wait for its ack; 0 disables it. None: the broker's.
    pub consumer_timeout: Option<u64>,
}

/// Ten years in milliseconds: RabbitMQ 3.10.2+'s limit for x-expires and x-message-ttl.
const MAX_EXPIRY_MS: i64 = 315_360_000_000;

/// The order RabbitMQ runs its validators in (`declare_args/0`).
const VALIDATION_ORDER: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    "x-consumer-timeout",
];

/// An argument's value refused, as the Erlang term RabbitMQ prints for it.
type Refusal = String;

/// The AMQP field type names RabbitMQ uses in its texts.
pub(crate) fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(..) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "binary",
        FieldValue::Nested(b) if b.first() == Some(&b'A') => "array",
        FieldValue::Nested(_) => "table",
    }
}

/// The value as Erlang's `~p` prints it (strings as their bytes, for `'~s'` contexts).
fn erlang_value(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::I8(n) => n.to_string(),
        FieldValue::U8(n) => n.to_string(),
        FieldValue::I16(n) => n.to_string(),
        FieldValue::U16(n) => n.to_string(),
        FieldValue::I32(n) => n.to_string(),
        FieldValue::U32(n) => n.to_string(),
        FieldValue::I64(n) => n.to_string(),
        FieldValue::Timestamp(n) => n.to_string(),
        FieldValue::F32(f) => erlang_float(*f as f64),
        FieldValue::F64(f) => erlang_float(*f),
        FieldValue::Decimal(scale, value) => format!("{{{scale},{value}}}"),
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => String::from_utf8_lossy(b).into(),
        FieldValue::Void => "undefined".into(),
        FieldValue::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| format!("{{{},{}}}", type_name(i), erlang_value(i)))
                .collect();
            format!("[{}]", inner.join(","))
        }
        FieldValue::Table(t) => {
            let inner: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{{<<\"{k}\">>,{},{}}}", type_name(v), erlang_value(v)))
                .collect();
            format!("[{}]", inner.join(","))
        }
        // Too deep to have been decoded (`MAX_NESTING`); not worth walking for an error text.
        FieldValue::Nested(_) => "[...]".into(),
    }
}

/// Erlang prints floats with at least one decimal (`1.0`, not `1`).
fn erlang_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// The integer types RabbitMQ accepts where it wants an integer (not timestamps, decimals or
/// floats).
fn integer(v: &FieldValue) -> Result<i64, Refusal> {
    match v {
        FieldValue::I8(n) => Ok(*n as i64),
        FieldValue::U8(n) => Ok(*n as i64),
        FieldValue::I16(n) => Ok(*n as i64),
        FieldValue::U16(n) => Ok(*n as i64),
        FieldValue::I32(n) => Ok(*n as i64),
        FieldValue::U32(n) => Ok(*n as i64),
        FieldValue::I64(n) => Ok(*n),
        other => Err(format!("\"expected integer, got {}\"", type_name(other))),
    }
}

fn non_negative(v: &FieldValue) -> Result<u64, Refusal> {
    let n = integer(v)?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    Ok(n as u64)
}

fn positive(v: &FieldValue) -> Result<u64, Refusal> {
    let n = non_negative(v)?;
    if n == 0 {
        return Err("{value_zero,0}".into());
    }
    Ok(n)
}

fn expiry(v: &FieldValue) -> Result<u64, Refusal> {
    let n = non_negative(v)?;
    if n as i64 > MAX_EXPIRY_MS {
        return Err(format!("{{value_too_large,{n}}}"));
    }
    Ok(n)
}

fn longstr(v: &FieldValue) -> Result<&[u8], Refusal> {
    match v {
        FieldValue::LongStr(b) => Ok(b),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

fn one_of<'a>(v: &'a FieldValue, allowed: &[&str], refusal: &str) -> Result<&'a [u8], Refusal> {
    let s = longstr(v)?;
    if allowed.iter().any(|a| a.as_bytes() == s) {
        Ok(s)
    } else {
        Err(refusal.into())
    }
}

/// Validates one argument; `table` is there for the checks that look at another key.
fn validate(key: &str, v: &FieldValue, table: &FieldTable) -> Result<(), Refusal> {
    match key {
        "x-expires" => {
            positive(v)?;
            expiry(v).map(drop)
        }
        "x-message-ttl" => expiry(v).map(drop),
        "x-dead-letter-exchange" => longstr(v).map(drop),
        "x-dead-letter-routing-key" => {
            longstr(v)?;
            if table.get("x-dead-letter-exchange").is_none() {
                return Err("routing_key_but_no_dlx_defined".into());
            }
            Ok(())
        }
        "x-dead-letter-strategy" => one_of(
            v,
            &["at-most-once", "at-least-once"],
            "invalid_dlx_strategy",
        )
        .map(drop),
        "x-max-length"
        | "x-max-length-bytes"
        | "x-max-in-memory-length"
        | "x-max-in-memory-bytes" => non_negative(v).map(drop),
        "x-max-priority" => {
            let n = non_negative(v)?;
            if n > 255 {
                return Err(format!("{{max_value_exceeded,{n}}}"));
            }
            Ok(())
        }
        "x-overflow" => one_of(
            v,
            &["drop-head", "reject-publish", "reject-publish-dlx"],
            "invalid_overflow",
        )
        .map(drop),
        "x-queue-mode" => {
            let mode = longstr(v)?;
            if mode != b"default" && mode != b"lazy" {
                return Err(format!(
                    "\"unsupported queue mode '{}'\"",
                    String::from_utf8_lossy(mode)
                ));
            }
            Ok(())
        }
        "x-consumer-timeout" => non_negative(v).map(drop),
        "x-queue-version" => {
            let n = non_negative(v)?;
            if n != 1 && n != 2 {
                return Err(format!("\"unsupported queue version '{n}'\""));
            }
            Ok(())
        }
        "x-single-active-consumer" => match v {
            FieldValue::Bool(_) => Ok(()),
            other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
        },
        "x-quorum-initial-group-size" | "x-initial-cluster-size" => positive(v).map(drop),
        "x-max-age" => {
            let age = longstr(v)?;
            if max_age_ms(age).is_none() {
                return Err("invalid_max_age".into());
            }
            Ok(())
        }
        "x-stream-max-segment-size-bytes" => non_negative(v).map(drop),
        "x-queue-leader-locator" => one_of(
            v,
            &["client-local", "balanced", "random", "least-leaders"],
            "invalid_queue_locator_arg",
        )
        .map(drop),
        _ => Ok(()),
    }
}

/// x-max-age: a positive number and one unit of Y M D h m s.
fn max_age_ms(age: &[u8]) -> Option<u64> {
    let digits = age.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: u64 = std::str::from_utf8(&age[..digits]).ok()?.parse().ok()?;
    let unit_ms: u64 = match &age[digits..] {
        b"Y" => 365 * 86_400_000,
        b"M" => 30 * 86_400_000,
        b"D" => 86_400_000,
        b"h" => 3_600_000,
        b"m" => 60_000,
        b"s" => 1000,
        _ => return None,
    };
    (n > 0).then(|| n.saturating_mul(unit_ms))
}

fn invalid_arg(key: &str, queue: &str, refusal: &str) -> AmqpError {
    AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {refusal}"))
}

impl QueueArguments {
    /// Parses and validates the arguments of a queue being created, as RabbitMQ 3.10 does:
    /// `x-queue-type` first, then each argument the type knows in RabbitMQ's order, then keys
    /// that belong to another type. Keys no type knows are accepted and kept, as in RabbitMQ.
    /// `queue` is the queue as texts name it (`queue 'q' in vhost '/'`).
    pub fn parse(table: &FieldTable, queue: &str) -> AmqpResult<QueueArguments> {
        let queue_type = match table.get("x-queue-type") {
            None => QueueType::Classic,
            Some(v) => match longstr(v).map_err(|r| invalid_arg("x-queue-type", queue, &r))? {
                b"classic" => QueueType::Classic,
                b"quorum" => QueueType::Quorum,
                b"stream" => QueueType::Stream,
                other => {
                    let refusal = format!(
                        "\"unsupported queue type '{}'\"",
                        String::from_utf8_lossy(other)
                    );
                    return Err(invalid_arg("x-queue-type", queue, &refusal));
                }
            },
        };
        for key in VALIDATION_ORDER {
            if !queue_type.knows(key.as_bytes()) {
                continue;
            }
            if let Some(v) = table.get(key) {
                validate(key, v, table).map_err(|r| invalid_arg(key, queue, &r))?;
            }
        }
        for (key, _) in table.iter() {
            let known_elsewhere = [QueueType::Classic, QueueType::Quorum, QueueType::Stream]
                .iter()
                .any(|t| t.knows(key.as_bytes()));
            if known_elsewhere && !queue_type.knows(key.as_bytes()) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid arg '{key}' for {queue} of queue type {}",
                    queue_type.module()
                )));
            }
        }
        Ok(Self::from_valid(table, queue_type))
    }

    /// The typed view of a table that passed `parse` (or was stored after passing it).
    fn from_valid(table: &FieldTable, queue_type: QueueType) -> QueueArguments {
        let int = |key: &str| {
            table
                .get(key)
                .and_then(|v| integer(v).ok())
                .map(|n| n.max(0) as u64)
        };
        let text = |key: &str| {
            table
                .get(key)
                .and_then(|v| longstr(v).ok())
                .map(ShortStr::from)
        };
        let overflow = match table.get("x-overflow").and_then(|v| longstr(v).ok()) {
            Some(b"reject-publish") => Overflow::RejectPublish,
            Some(b"reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        QueueArguments {
            queue_type,
            expires: int("x-expires"),
            message_ttl: int("x-message-ttl"),
            dead_letter_exchange: text("x-dead-letter-exchange"),
            dead_letter_routing_key: text("x-dead-letter-routing-key"),
            max_length: int("x-max-length"),
            max_length_bytes: int("x-max-length-bytes"),
            max_priority: int("x-max-priority").map(|n| n.min(255) as u8),
            overflow,
            lazy: table.get("x-queue-mode").and_then(|v| longstr(v).ok()) == Some(b"lazy"),
            single_active_consumer: matches!(
                table.get("x-single-active-consumer"),
                Some(FieldValue::Bool(true))
            ),
            consumer_timeout: int("x-consumer-timeout"),
        }
    }

    /// How many priority levels the queue keeps: `x-max-priority` + 1, or 1 without it
    /// (RabbitMQ treats `x-max-priority` 0 as a priority queue of one level, which is the same).
    pub fn priority_levels(&self) -> usize {
        self.max_priority.map_or(1, |max| usize::from(max) + 1)
    }

    /// Arguments read back from a definition stored by this or an earlier release. They were
    /// validated when the queue was declared; whatever no longer parses is taken leniently.
    pub fn recovered(table: &FieldTable, queue: &str) -> QueueArguments {
        QueueArguments::parse(table, queue).unwrap_or_else(|e| {
            tracing::warn!(%queue, error = %e, "stored queue arguments no longer validate");
            let queue_type = match table.get("x-queue-type").and_then(|v| longstr(v).ok()) {
                Some(b"quorum") => QueueType::Quorum,
                Some(b"stream") => QueueType::Stream,
                _ => QueueType::Classic,
            };
            Self::from_valid(table, queue_type)
        })
    }
}

/// Validates basic.consume's arguments as RabbitMQ 3.10 does for a queue of `queue_type`, and
/// returns the consumer's priority (`x-priority`, 0 by default; wider values are clamped).
pub fn consumer_priority(args: &FieldTable, queue_type: QueueType, queue: &str) -> AmqpResult<i32> {
    let known: &[&str] = match queue_type {
        QueueType::Classic => &["x-cancel-on-ha-failover", "x-priority", "x-credit"],
        QueueType::Quorum => &["x-priority", "x-credit"],
        QueueType::Stream => &["x-stream-offset", "x-credit"],
    };
    let mut priority = 0;
    if let Some(v) = args
        .get("x-priority")
        .filter(|_| known.contains(&"x-priority"))
    {
        let n = integer(v).map_err(|r| invalid_arg("x-priority", queue, &r))?;
        priority = n.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    }
    if let Some(v) = args
        .get("x-cancel-on-ha-failover")
        .filter(|_| known.contains(&"x-cancel-on-ha-failover"))
    {
        if !matches!(v, FieldValue::Bool(_)) {
            let refusal = format!("{{unacceptable_type,{}}}", type_name(v));
            return Err(invalid_arg("x-cancel-on-ha-failover", queue, &refusal));
        }
    }
    const ANY_TYPE: &[&str] = &[
        "x-cancel-on-ha-failover",
        "x-credit",
        "x-priority",
        "x-stream-offset",
    ];
    for (key, _) in args.iter() {
        let foreign = ANY_TYPE.iter().any(|k| k.as_bytes() == key.as_bytes())
            && !known.iter().any(|k| k.as_bytes() == key.as_bytes());
        if foreign {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for {queue} of queue type {}",
                queue_type.module()
            )));
        }
    }
    Ok(priority)
}

/// RabbitMQ's check of a redeclare's arguments against the queue's: only the keys the
/// existing queue's type knows, in its order; the first difference is a 406.
pub fn check_equivalent(
    queue_type: QueueType,
    current: &FieldTable,
    received: &FieldTable,
    queue: &str,
) -> AmqpResult<()> {
    for key in queue_type.known_arguments() {
        let (was, now) = (current.get(key), received.get(key));
        if equivalent(key, was, now) {
            continue;
        }
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg '{key}' for {queue}: received {} but current is {}",
            described(now, was.is_some() && now.is_some()),
            described(was, was.is_some() && now.is_some()),
        )));
    }
    Ok(())
}

fn equivalent(key: &str, was: Option<&FieldValue>, now: Option<&FieldValue>) -> bool {
    match (was, now) {
        (None, None) => true,
        (Some(a), Some(b)) => same_value(a, b),
        // An absent x-queue-type means classic.
        (Some(FieldValue::LongStr(t)), None) | (None, Some(FieldValue::LongStr(t))) => {
            key == "x-queue-type" && t.as_ref() == b"classic"
        }
        _ => false,
    }
}

/// Erlang's comparison after RabbitMQ's `type_class`: integers of any width are equal when
/// their values are, floats likewise; other types must match exactly.
fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    if let (Ok(x), Ok(y)) = (integer(a), integer(b)) {
        return x == y;
    }
    let float = |v: &FieldValue| match v {
        FieldValue::F32(f) => Some(*f as f64),
        FieldValue::F64(f) => Some(*f),
        _ => None,
    };
    if let (Some(x), Some(y)) = (float(a), float(b)) {
        return x == y;
    }
    a == b
}

/// How a compared value is printed: `'10'` when both sides have one, `none` or `the value
/// '10' of type 'long'` when only one side does.
fn described(v: Option<&FieldValue>, both: bool) -> String {
    match v {
        None => "none".into(),
        Some(v) if both => format!("'{}'", erlang_value(v)),
        Some(v) => format!("the value '{}' of type '{}'", erlang_value(v), type_name(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "queue 'q' in vhost '/'";

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    fn refused(pairs: &[(&str, FieldValue)]) -> String {
        QueueArguments::parse(&table(pairs), Q)
            .unwrap_err()
            .reply_text()
    }

    #[test]
    fn values_are_refused_with_rabbitmqs_terms() {
        let cases: &[(&[(&str, FieldValue)], &str)] = &[
            (
                &[("x-max-length", FieldValue::I64(-1))],
                "invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}",
            ),
            (
                &[("x-max-length", FieldValue::from("10"))],
                "invalid arg 'x-max-length' for queue 'q' in vhost '/': \"expected integer, got longstr\"",
            ),
            (
                &[("x-expires", FieldValue::I32(0))],
                "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}",
            ),
            (
                &[("x-message-ttl", FieldValue::I64(315_360_000_001))],
                "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_too_large,315360000001}",
            ),
            (
                &[("x-max-priority", FieldValue::I32(256))],
                "invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}",
            ),
            (
                &[("x-overflow", FieldValue::from("drop-tail"))],
                "invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow",
            ),
            (
                &[("x-overflow", FieldValue::I8(1))],
                "invalid arg 'x-overflow' for queue 'q' in vhost '/': {unacceptable_type,byte}",
            ),
            (
                &[("x-queue-mode", FieldValue::from("eager"))],
                "invalid arg 'x-queue-mode' for queue 'q' in vhost '/': \"unsupported queue mode 'eager'\"",
            ),
            (
                &[("x-single-active-consumer", FieldValue::I64(1))],
                "invalid arg 'x-single-active-consumer' for queue 'q' in vhost '/': {unacceptable_type,long}",
            ),
            (
                &[("x-dead-letter-routing-key", FieldValue::from("k"))],
                "invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined",
            ),
            (
                &[("x-queue-type", FieldValue::from("fancy"))],
                "invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'fancy'\"",
            ),
            (
                &[("x-queue-type", FieldValue::I64(1))],
                "invalid arg 'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,long}",
            ),
            (
                &[("x-delivery-limit", FieldValue::I64(5))],
                "invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue",
            ),
            (
                &[
                    ("x-queue-type", FieldValue::from("quorum")),
                    ("x-max-priority", FieldValue::I64(5)),
                ],
                "invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue",
            ),
        ];
        for (args, text) in cases {
            assert_eq!(refused(args), format!("PRECONDITION_FAILED - {text}"));
        }
    }

    #[test]
    fn the_first_failing_validator_in_rabbitmqs_order_wins() {
        // x-message-ttl is validated before x-max-length whatever the wire order.
        let text = refused(&[
            ("x-max-length", FieldValue::I64(-2)),
            ("x-message-ttl", FieldValue::I64(-1)),
        ]);
        assert!(text.contains("'x-message-ttl'"), "{text}");
        // A value check of the type's own keys runs before the check of foreign keys.
        let text = refused(&[
            ("x-max-in-memory-length", FieldValue::I64(-1)),
            ("x-max-length", FieldValue::I64(-1)),
        ]);
        assert!(text.contains("'x-max-length'"), "{text}");
    }

    #[test]
    fn valid_arguments_are_typed_and_unknown_keys_kept() {
        let t = table(&[
            ("x-message-ttl", FieldValue::I32(60_000)),
            ("x-dead-letter-exchange", FieldValue::from("dlx")),
            ("x-max-priority", FieldValue::U8(10)),
            ("x-overflow", FieldValue::from("reject-publish")),
            ("x-queue-mode", FieldValue::from("lazy")),
            ("x-single-active-consumer", FieldValue::Bool(true)),
            ("x-custom", FieldValue::from("anything")),
        ]);
        let args = QueueArguments::parse(&t, Q).unwrap();
        assert_eq!(args.message_ttl, Some(60_000));
        assert_eq!(args.dead_letter_exchange.as_ref().unwrap(), "dlx");
        assert_eq!(args.max_priority, Some(10));
        assert_eq!(args.overflow, Overflow::RejectPublish);
        assert!(args.lazy && args.single_active_consumer);
        assert_eq!(args.queue_type, QueueType::Classic);
    }

    #[test]
    fn redeclares_are_compared_as_rabbitmq_compares_them() {
        let ten = table(&[("x-max-length", FieldValue::I64(10))]);
        let text = |r: AmqpResult<()>| r.unwrap_err().reply_text();
        assert_eq!(
            text(check_equivalent(
                QueueType::Classic,
                &ten,
                &table(&[("x-max-length", FieldValue::I64(20))]),
                Q
            )),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received '20' but current is '10'"
        );
        assert_eq!(
            text(check_equivalent(QueueType::Classic, &ten, &FieldTable::new(), Q)),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received none but current is the value '10' of type 'long'"
        );
        // Integer widths do not matter; keys the type does not compare are ignored.
        let same = table(&[
            ("x-max-length", FieldValue::U8(10)),
            ("x-other", true.into()),
        ]);
        check_equivalent(QueueType::Classic, &ten, &same, Q).unwrap();
        // An absent x-queue-type is classic.
        let classic = table(&[("x-queue-type", FieldValue::from("classic"))]);
        check_equivalent(QueueType::Classic, &FieldTable::new(), &classic, Q).unwrap();
        let quorum = table(&[("x-queue-type", FieldValue::from("quorum"))]);
        assert_eq!(
            text(check_equivalent(QueueType::Classic, &FieldTable::new(), &quorum, Q)),
            "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none"
        );
    }

    #[test]
    fn consumer_arguments_are_checked_as_rabbitmq_checks_them() {
        let prio =
            |v: FieldValue| consumer_priority(&table(&[("x-priority", v)]), QueueType::Classic, Q);
        assert_eq!(prio(FieldValue::I16(5)).unwrap(), 5);
        assert_eq!(prio(FieldValue::I64(i64::MAX)).unwrap(), i32::MAX);
        assert_eq!(
            prio(FieldValue::from("high")).unwrap_err().reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q' in vhost '/': \"expected integer, got longstr\""
        );
        let offset = table(&[("x-stream-offset", FieldValue::from("first"))]);
        assert_eq!(
            consumer_priority(&offset, QueueType::Classic, Q).unwrap_err().reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
        );
        let unknown = table(&[("x-whatever", FieldValue::from("x"))]);
        assert_eq!(
            consumer_priority(&unknown, QueueType::Classic, Q).unwrap(),
            0
        );
    }

    #[test]
    fn max_age_follows_rabbitmqs_grammar() {
        assert_eq!(max_age_ms(b"7D"), Some(7 * 86_400_000));
        assert_eq!(max_age_ms(b"1h"), Some(3_600_000));
        for bad in [&b"0h"[..], b"10", b"10 h", b"1.5h", b"", b"h"] {
            assert_eq!(max_age_ms(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
