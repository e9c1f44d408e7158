//! Policies and operator policies, as RabbitMQ 3.10 has them (`rabbit_policy`,
//! `rabbit_policies`).
//!
//! A policy names a pattern (a regex searched for in queue and exchange names), what it applies
//! to, a priority and a definition (`message-ttl`, `max-length`, `dead-letter-exchange`, ...).
//! Of the policies of a vhost that match a queue, the one with the highest priority applies,
//! whole: definitions are never merged. An operator policy is chosen the same way among the
//! operator policies, and caps what the policy and the queue's arguments ask for: where both
//! set a limit, the lower wins (`merged_definition`). How the merged definition and the queue's
//! own `x-` arguments combine is `effective_queue_arguments`.
//!
//! A policy that sets something a queue's type does not support does not apply to that queue
//! at all (so a lower one may), as RabbitMQ's `is_policy_applicable` has it.

use std::cmp::Ordering;
use std::fmt::Write;
use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use warren_protocol::{FieldTable, ShortStr};

use crate::queue::arguments::Overflow;
use crate::queue::{QueueArguments, QueueType};

/// The two kinds: a policy (set by users with the policymaker tag) and an operator policy
/// (administrators' caps).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Policy,
    OperatorPolicy,
}

impl PolicyKind {
    /// The runtime-parameter component RabbitMQ files it under.
    pub fn component(self) -> &'static str {
        match self {
            PolicyKind::Policy => "policy",
            PolicyKind::OperatorPolicy => "operator_policy",
        }
    }
}

/// What a policy applies to (`apply-to`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    Queues,
    Exchanges,
    #[default]
    All,
}

impl ApplyTo {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// A policy as stored and shown: what the API's PUT gave, validated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub kind: PolicyKind,
    pub pattern: String,
    #[serde(rename = "apply-to")]
    pub apply_to: ApplyTo,
    /// Keys in order (a `Map` is sorted), as RabbitMQ shows them.
    pub definition: Map<String, Value>,
    /// Any JSON number, shown as it was given (RabbitMQ takes floats too).
    pub priority: Number,
}

/// A policy in force: its definition and compiled pattern.
#[derive(Debug)]
pub struct Policy {
    pub def: PolicyDef,
    pattern: Regex,
}

/// What a policy is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Queue(QueueType),
    Exchange,
}

/// Why a policy was refused: RabbitMQ's texts. `Missing` is a body without a required key
/// (`[{key_missing,pattern}]`); `Invalid` lists what failed validation, one line each, shown
/// after "Validation failed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    Missing(&'static str),
    Invalid(Vec<String>),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Missing(key) => write!(f, "[{{key_missing,{key}}}]"),
            PolicyError::Invalid(errors) => {
                f.write_str("Validation failed\n\n")?;
                for e in errors {
                    writeln!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Numeric keys where a policy and an operator policy (and a queue argument) both setting a
/// value means the lower applies.
const LOWER_WINS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
];

/// The keys an operator policy may set: exactly the limits it caps.
const OPERATOR_KEYS: &[&str] = LOWER_WINS;

/// Keys a classic queue does not support: a policy with one of them skips classic queues.
const CLASSIC_UNSUPPORTED: &[&str] = &[
    "max-age",
    "stream-max-segment-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
    "delivery-limit",
    "dead-letter-strategy",
];

impl PolicyDef {
    /// Reads and validates a policy from the API's JSON body (`pattern`, `definition`,
    /// `priority` (0), `apply-to` ("all")), with RabbitMQ 3.10's rules and texts. Every
    /// failing part is reported, in RabbitMQ's order: definition, apply-to, pattern, priority.
    pub fn from_json(
        vhost: &str,
        name: &str,
        kind: PolicyKind,
        body: &Value,
    ) -> Result<PolicyDef, PolicyError> {
        let pattern = body.get("pattern").ok_or(PolicyError::Missing("pattern"))?;
        let definition = body
            .get("definition")
            .ok_or(PolicyError::Missing("definition"))?;
        let apply_to = body.get("apply-to");
        let priority = body.get("priority");
        let mut errors = Vec::new();
        let definition = match definition {
            Value::Object(map) => {
                if let Err(e) = validate_definition(kind, map) {
                    errors.push(e);
                }
                map.clone()
            }
            other => {
                errors.push(format!(
                    "{} is not a valid policy definition",
                    erlang(other)
                ));
                Map::new()
            }
        };
        let apply_to = match apply_to {
            None => Some(ApplyTo::All),
            Some(Value::String(s)) if s == "queues" => Some(ApplyTo::Queues),
            Some(Value::String(s)) if s == "exchanges" => Some(ApplyTo::Exchanges),
            Some(Value::String(s)) if s == "all" => Some(ApplyTo::All),
            Some(other) => {
                let shown = match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                errors.push(format!(
                    "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ));
                None
            }
        };
        let pattern = match pattern {
            Value::String(p) => {
                if let Err(e) = compile(p) {
                    errors.push(format!(
                        "pattern should be regular expression but is invalid: {e}"
                    ));
                }
                p.clone()
            }
            other => {
                errors.push(format!(
                    "pattern should be a binary but was {}",
                    erlang(other)
                ));
                String::new()
            }
        };
        let priority = match priority {
            None => Some(Number::from(0)),
            Some(Value::Number(n)) => Some(n.clone()),
            Some(other) => {
                errors.push(format!(
                    "priority should be a number, actually was {}",
                    erlang(other)
                ));
                None
            }
        };
        match (apply_to, priority) {
            (Some(apply_to), Some(priority)) if errors.is_empty() => Ok(PolicyDef {
                vhost: vhost.to_string(),
                name: name.to_string(),
                kind,
                pattern,
                apply_to,
                definition,
                priority,
            }),
            _ => Err(PolicyError::Invalid(errors)),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).unicode(false).build()
}

impl Policy {
    /// A validated definition, compiled. A stored pattern that no longer compiles matches
    /// nothing rather than everything.
    pub fn new(def: PolicyDef) -> Policy {
        let pattern = compile(&def.pattern).unwrap_or_else(|e| {
            tracing::warn!(policy = %def.name, error = %e, "stored policy pattern does not compile");
            compile("$.^").expect("a pattern that matches nothing")
        });
        Policy { def, pattern }
    }

    /// Whether the policy applies to `name`, a queue of some type or an exchange.
    pub fn matches(&self, target: Target, name: &[u8]) -> bool {
        let kind_ok = matches!(
            (self.def.apply_to, target),
            (ApplyTo::All, _)
                | (ApplyTo::Queues, Target::Queue(_))
                | (ApplyTo::Exchanges, Target::Exchange)
        );
        kind_ok && self.is_applicable(target) && self.pattern.is_match(name)
    }

    fn is_applicable(&self, target: Target) -> bool {
        let unsupported: &[&str] = match target {
            Target::Queue(QueueType::Classic) => CLASSIC_UNSUPPORTED,
            _ => &[],
        };
        !unsupported
            .iter()
            .any(|k| self.def.definition.contains_key(*k))
    }

    fn priority(&self) -> f64 {
        self.def.priority.as_f64().unwrap_or(0.0)
    }
}

/// Of `candidates`, the one that applies to `name`: the highest priority among those that
/// match; among equals, the first by name (RabbitMQ leaves ties to its table's order).
pub fn choose<'a>(
    candidates: impl IntoIterator<Item = &'a Arc<Policy>>,
    target: Target,
    name: &[u8],
) -> Option<&'a Arc<Policy>> {
    candidates
        .into_iter()
        .filter(|p| p.matches(target, name))
        .max_by(|a, b| {
            a.priority()
                .partial_cmp(&b.priority())
                .unwrap_or(Ordering::Equal)
                .then_with(|| b.def.name.cmp(&a.def.name))
        })
}

/// The policy's and the operator policy's definitions as one (RabbitMQ's
/// `effective_policy_definition`): every key of either; where both set a limit, the lower.
pub fn merged_definition(policy: Option<&Policy>, operator: Option<&Policy>) -> Map<String, Value> {
    let mut merged = policy.map(|p| p.def.definition.clone()).unwrap_or_default();
    for (key, value) in operator.map(|p| &p.def.definition).into_iter().flatten() {
        let lower = match (merged.get(key), value) {
            (Some(Value::Number(mine)), Value::Number(theirs))
                if LOWER_WINS.contains(&key.as_str()) =>
            {
                if theirs.as_f64() < mine.as_f64() {
                    value.clone()
                } else {
                    Value::Number(mine.clone())
                }
            }
            _ => value.clone(),
        };
        merged.insert(key.clone(), lower);
    }
    merged
}

/// What a classic queue does, from its declared arguments (`declared`, parsed from `table`)
/// and its merged policy definition, as `rabbit_amqqueue_process:process_args_policy` decides:
/// for TTLs, expiry and length limits the lower of argument and policy; for `overflow`,
/// the dead-letter exchange and routing key, the argument if there is one, else the policy.
pub fn effective_queue_arguments(
    declared: &QueueArguments,
    table: &FieldTable,
    policy: &Map<String, Value>,
) -> QueueArguments {
    let mut effective = declared.clone();
    if policy.is_empty() {
        return effective;
    }
    let number = |key: &str| policy.get(key).and_then(Value::as_u64);
    let text = |key: &str| {
        policy
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| s.len() <= ShortStr::MAX_LEN)
            .map(ShortStr::from)
    };
    let lower = |arg: Option<u64>, pol: Option<u64>| match (arg, pol) {
        (Some(a), Some(p)) => Some(a.min(p)),
        (a, p) => a.or(p),
    };
    effective.expires = lower(declared.expires, number("expires").filter(|&e| e > 0));
    effective.message_ttl = lower(declared.message_ttl, number("message-ttl"));
    effective.max_length = lower(declared.max_length, number("max-length"));
    effective.max_length_bytes = lower(declared.max_length_bytes, number("max-length-bytes"));
    effective.consumer_timeout = lower(declared.consumer_timeout, number("consumer-timeout"));
    if table.get("x-overflow").is_none() {
        effective.overflow = match policy.get("overflow").and_then(Value::as_str) {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
    }
    if declared.dead_letter_exchange.is_none() {
        effective.dead_letter_exchange = text("dead-letter-exchange");
    }
    if declared.dead_letter_routing_key.is_none() {
        effective.dead_letter_routing_key = text("dead-letter-routing-key");
    }
    if table.get("x-queue-mode").is_none() {
        effective.lazy = policy.get("queue-mode").and_then(Value::as_str) == Some("lazy");
    }
    effective
}

/// Checks a definition as `rabbit_policies` and the other validators of 3.10 do: the first
/// invalid known key (in key order) is the error; keys nobody knows are reported once the
/// known ones pass. An empty definition is refused.
fn validate_definition(kind: PolicyKind, definition: &Map<String, Value>) -> Result<(), String> {
    if definition.is_empty() {
        return Err("no policy provided".into());
    }
    let mut unknown = Vec::new();
    for (key, value) in definition {
        let known = match kind {
            PolicyKind::Policy => validate_key(key, value, definition),
            PolicyKind::OperatorPolicy if OPERATOR_KEYS.contains(&key.as_str()) => {
                validate_key(key, value, definition)
            }
            PolicyKind::OperatorPolicy => None,
        };
        match known {
            None => unknown.push(format!("{{{},{}}}", erlang_str(key), erlang(value))),
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => {}
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ))
    }
}

/// `None` for a key no validator knows; otherwise whether its value is valid.
fn validate_key(key: &str, value: &Value, all: &Map<String, Value>) -> Option<Result<(), String>> {
    let shown = erlang(value);
    let int_at_least = |min: i64, what: &str| match value.as_i64() {
        Some(n) if n >= min => Ok(()),
        _ => Err(format!("{shown} is not a valid {what}")),
    };
    let binary = |what: &str| match value {
        Value::String(_) => Ok(()),
        _ => Err(format!("{shown} is not a valid {what}")),
    };
    let one_of = |allowed: &[&str], what: &str| match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => Err(format!("{shown} is not a valid {what}")),
    };
    Some(match key {
        "alternate-exchange" => binary("alternate exchange name"),
        "dead-letter-exchange" => binary("dead letter exchange name"),
        "dead-letter-routing-key" => binary("dead letter routing key"),
        "dead-letter-strategy" => {
            one_of(&["at-most-once", "at-least-once"], "dead letter strategy")
        }
        "message-ttl" => int_at_least(0, "message TTL"),
        "expires" => int_at_least(1, "queue expiry"),
        "max-length" => int_at_least(0, "maximum length"),
        "max-length-bytes" => int_at_least(0, "maximum length in bytes"),
        "max-in-memory-length" | "max-in-memory-bytes" => {
            int_at_least(0, "maximum memory in bytes")
        }
        "delivery-limit" => int_at_least(0, "delivery limit"),
        // RabbitMQ 3.12's, ahead of 3.10 (which refuses the key): milliseconds, 0 disables.
        "consumer-timeout" => int_at_least(0, "consumer timeout"),
        "initial-cluster-size" => int_at_least(0, "cluster size"),
        "queue-mode" => one_of(&["default", "lazy"], "queue-mode value"),
        "queue-version" => match value.as_i64() {
            Some(1 | 2) => Ok(()),
            _ => Err(format!("{shown} is not a valid queue-version value")),
        },
        "overflow" => one_of(
            &["drop-head", "reject-publish", "reject-publish-dlx"],
            "overflow value",
        ),
        "max-age" => match value.as_str() {
            Some(s) if valid_max_age(s) => Ok(()),
            _ => Err(format!("{shown} is not a valid max age")),
        },
        "stream-max-segment-size-bytes" => match value.as_i64() {
            Some(n) if (0..=3_000_000_000).contains(&n) => Ok(()),
            _ => Err(format!("{shown} is not a valid segment size")),
        },
        "queue-leader-locator" => one_of(
            &["client-local", "balanced", "random", "least-leaders"],
            "queue leader locator value",
        ),
        "queue-master-locator" => match value.as_str() {
            Some("min-masters" | "client-local" | "random") => Ok(()),
            _ => Err(format!("{shown} invalid queue-master-locator value")),
        },
        "ha-mode"
        | "ha-params"
        | "ha-sync-mode"
        | "ha-sync-batch-size"
        | "ha-promote-on-shutdown"
        | "ha-promote-on-failure" => validate_ha(key, value, all),
        _ => return None,
    })
}

/// Classic mirroring's settings (`rabbit_mirror_queue_misc:validate_policy`). A single node
/// has no mirrors to make, so they are accepted and change nothing, as on a one-node RabbitMQ.
fn validate_ha(key: &str, value: &Value, all: &Map<String, Value>) -> Result<(), String> {
    let mode = all.get("ha-mode").and_then(Value::as_str);
    match key {
        "ha-mode" => match (value.as_str(), all.get("ha-params")) {
            (Some("all"), None) => Ok(()),
            (Some("all"), Some(_)) => Err("ha-mode=\"all\" does not take parameters".into()),
            (Some("exactly"), Some(p)) if p.as_i64().is_some_and(|n| n > 0) => Ok(()),
            (Some("exactly"), Some(p)) => Err(format!(
                "ha-mode=\"exactly\" takes an integer, {} given",
                erlang(p)
            )),
            (Some("exactly"), None) => {
                Err("ha-mode=\"exactly\" takes an integer, none given".into())
            }
            (Some("nodes"), Some(Value::Array(nodes)))
                if !nodes.is_empty() && nodes.iter().all(Value::is_string) =>
            {
                Ok(())
            }
            (Some("nodes"), Some(p)) => Err(format!(
                "ha-mode=\"nodes\" takes a list, {} given",
                erlang(p)
            )),
            (Some("nodes"), None) => Err("ha-mode=\"nodes\" takes a list, none given".into()),
            _ => Err(format!("{} is not a valid ha-mode value", erlang(value))),
        },
        _ if mode.is_none() => Err(
            "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"
                .into(),
        ),
        "ha-sync-mode" => match value.as_str() {
            Some("manual" | "automatic") => Ok(()),
            _ => Err(format!(
                "ha-sync-mode must be \"manual\" or \"automatic\", got {}",
                erlang(value)
            )),
        },
        "ha-sync-batch-size" => match value.as_i64() {
            Some(n) if n > 0 => Ok(()),
            _ => Err(format!(
                "ha-sync-batch-size takes an integer greater than 0, {} given",
                erlang(value)
            )),
        },
        "ha-promote-on-shutdown" | "ha-promote-on-failure" => match value.as_str() {
            Some("always" | "when-synced") => Ok(()),
            _ => Err(format!(
                "{key} must be \"always\" or \"when-synced\", got {}",
                erlang(value)
            )),
        },
        // ha-params is checked with ha-mode.
        _ => Ok(()),
    }
}

/// `rabbit_amqqueue:check_max_age`: a number and a unit (Y, M, D, h, m, s).
fn valid_max_age(s: &str) -> bool {
    let digits = s.trim_end_matches(['Y', 'M', 'D', 'h', 'm', 's']);
    let unit = &s[digits.len()..];
    unit.len() == 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A JSON value as Erlang prints the term RabbitMQ decoded it to (`~p`): strings are
/// binaries, `<<"abc">>`.
fn erlang(value: &Value) -> String {
    match value {
        Value::String(s) => erlang_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(erlang).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Object(map) => {
            let mut out = String::from("#{");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{} => {}", erlang_str(k), erlang(v));
            }
            out.push('}');
            out
        }
        other => other.to_string(),
    }
}

fn erlang_str(s: &str) -> String {
    format!("<<{}>>", Value::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(kind: PolicyKind, body: Value) -> Result<PolicyDef, String> {
        PolicyDef::from_json("/", "p", kind, &body).map_err(|e| e.to_string())
    }

    fn policy(name: &str, pattern: &str, priority: i64, definition: Value) -> Arc<Policy> {
        let body = json!({"pattern": pattern, "priority": priority, "definition": definition});
        Arc::new(Policy::new(
            PolicyDef::from_json("/", name, PolicyKind::Policy, &body).unwrap(),
        ))
    }

    #[test]
    fn apply_to_and_priority_have_rabbitmqs_defaults() {
        let d = def(
            PolicyKind::Policy,
            json!({"pattern": "^a", "definition": {"max-length": 1}}),
        )
        .unwrap();
        assert_eq!(d.apply_to, ApplyTo::All);
        assert_eq!(d.priority, Number::from(0));
    }

    #[test]
    fn validation_texts_are_rabbitmqs() {
        let cases = [
            (json!({"definition": {"a": 1}}), "[{key_missing,pattern}]"),
            (
                json!({"pattern": "x", "definition": {"message-ttl": "abc"}}),
                "Validation failed\n\n<<\"abc\">> is not a valid message TTL\n",
            ),
            (
                json!({"pattern": "x", "definition": {"max-length": -1}}),
                "Validation failed\n\n-1 is not a valid maximum length\n",
            ),
            (
                json!({"pattern": "x", "definition": {"expires": 0}}),
                "Validation failed\n\n0 is not a valid queue expiry\n",
            ),
            (
                json!({"pattern": "x", "definition": {"foo": 1, "bar": "x", "message-ttl": 5}}),
                "Validation failed\n\n[{<<\"bar\">>,<<\"x\">>},{<<\"foo\">>,1}] are not recognised policy settings\n",
            ),
            (
                json!({"pattern": "x", "definition": {}}),
                "Validation failed\n\nno policy provided\n",
            ),
            (
                json!({"pattern": 5, "definition": {"max-length": 1}, "apply-to": "foo", "priority": "5"}),
                "Validation failed\n\napply-to 'foo' unrecognised; should be 'queues', 'exchanges' or 'all'\npattern should be a binary but was 5\npriority should be a number, actually was <<\"5\">>\n",
            ),
        ];
        for (body, text) in cases {
            assert_eq!(
                def(PolicyKind::Policy, body.clone()).unwrap_err(),
                text,
                "{body}"
            );
        }
        assert_eq!(
            def(
                PolicyKind::OperatorPolicy,
                json!({"pattern": "x", "definition": {"overflow": "drop-head"}})
            )
            .unwrap_err(),
            "Validation failed\n\n[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n"
        );
    }

    #[test]
    fn the_highest_priority_applies_whole_and_type_filters_apply() {
        let low = policy("low", "^q", 1, json!({"max-length": 7}));
        let high = policy(
            "high",
            "^q",
            10,
            json!({"delivery-limit": 5, "max-length": 2}),
        );
        let all = [low, high];
        let classic = Target::Queue(QueueType::Classic);
        let quorum = Target::Queue(QueueType::Quorum);
        let pick = |t, n: &str| choose(&all, t, n.as_bytes()).map(|p| p.def.name.clone());
        // delivery-limit is not for classic queues: the whole policy skips them.
        assert_eq!(pick(classic, "q1").as_deref(), Some("low"));
        assert_eq!(pick(quorum, "q1").as_deref(), Some("high"));
        // The pattern is searched for, not anchored unless it says so.
        assert_eq!(pick(classic, "aq").as_deref(), None);
        let unanchored = policy("u", "q", 0, json!({"max-length": 1}));
        assert!(unanchored.matches(classic, b"aqa"));
    }

    #[test]
    fn operator_policies_cap_and_arguments_combine_as_rabbitmq() {
        let p = policy(
            "p",
            ".",
            0,
            json!({"max-length": 10, "message-ttl": 50000, "dead-letter-exchange": "dx", "overflow": "reject-publish"}),
        );
        let body = json!({"pattern": ".", "definition": {"max-length": 5, "expires": 100000}});
        let op =
            Policy::new(PolicyDef::from_json("/", "o", PolicyKind::OperatorPolicy, &body).unwrap());
        let merged = merged_definition(Some(&p), Some(&op));
        assert_eq!(
            Value::Object(merged.clone()),
            json!({"dead-letter-exchange": "dx", "expires": 100000, "max-length": 5, "message-ttl": 50000, "overflow": "reject-publish"})
        );
        let mut table = FieldTable::new();
        table.insert("x-max-length", warren_protocol::FieldValue::I32(3));
        table.insert("x-message-ttl", warren_protocol::FieldValue::I32(90000));
        table.insert("x-overflow", warren_protocol::FieldValue::from("drop-head"));
        table.insert(
            "x-dead-letter-exchange",
            warren_protocol::FieldValue::from("argdlx"),
        );
        let declared = QueueArguments::parse(&table, "queue 'q'").unwrap();
        let effective = effective_queue_arguments(&declared, &table, &merged);
        assert_eq!(effective.max_length, Some(3), "the lower wins");
        assert_eq!(effective.message_ttl, Some(50000), "the lower wins");
        assert_eq!(effective.expires, Some(100000));
        assert_eq!(effective.overflow, Overflow::DropHead, "the argument wins");
        assert_eq!(
            effective.dead_letter_exchange,
            Some(ShortStr::from("argdlx"))
        );
    }
}
