//! `/api/queues[/{vhost}[/{name}]]`, purge (`contents`) and get.

use std::sync::Arc;

use axum::body::Bytes as Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warren_broker::auth::Access;
use warren_broker::queue::QueueConfig;
use warren_broker::vhost::QueueDeclare;
use warren_broker::{ConnectionId, Queue, Settlement, VHost};

use super::connections::{collect_channels, consumer_json};
use super::exchanges::DeleteQuery;
use super::{created_or_existed, json, name_arg, no_content, parse_body, truthy, visible_vhost};
use crate::auth::AuthUser;
use crate::convert::{json_to_table, properties_to_json, short_str, table_to_json};
use crate::error::{ApiError, ApiResult};
use crate::listing::{self, num, ListQuery, Listable, SortKey};
use crate::stats::{QueueRates, Rate};
use crate::AppState;

/// Bytes a queue costs beyond its messages' own bytes (struct, locks, maps): an estimate.
const QUEUE_BASE_MEMORY: u64 = 2048;
/// Bytes each message costs a queue beyond its body and properties: an estimate.
const PER_MESSAGE_OVERHEAD: u64 = 120;

#[derive(Serialize)]
pub struct QueueMessageStats {
    publish: u64,
    publish_details: Rate,
    deliver_get: u64,
    deliver_get_details: Rate,
    ack: u64,
    ack_details: Rate,
    redeliver: u64,
    redeliver_details: Rate,
}

#[derive(Serialize)]
pub struct QueueJson<'a> {
    name: String,
    vhost: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    durable: bool,
    auto_delete: bool,
    exclusive: bool,
    arguments: Value,
    node: &'a str,
    state: &'static str,
    consumers: u32,
    consumer_capacity: f64,
    consumer_utilisation: f64,
    messages: u32,
    messages_details: Rate,
    messages_ready: u32,
    messages_ready_details: Rate,
    messages_unacknowledged: u32,
    messages_unacknowledged_details: Rate,
    message_bytes_ready: u64,
    memory: u64,
    policy: Option<String>,
    operator_policy: Option<String>,
    exclusive_consumer_tag: Option<&'static str>,
    owner_pid_details: Option<Value>,
    effective_policy_definition: Value,
    message_stats: QueueMessageStats,
}

impl Listable for QueueJson<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        self.vhost
    }
    fn sort_key(&self, field: &str) -> Option<SortKey> {
        let m = &self.message_stats;
        Some(match field {
            "messages" => num(self.messages),
            "messages_ready" => num(self.messages_ready),
            "messages_unacknowledged" => num(self.messages_unacknowledged),
            "consumers" => num(self.consumers),
            "memory" => SortKey::Num(self.memory as f64),
            "message_bytes_ready" => SortKey::Num(self.message_bytes_ready as f64),
            "message_stats.publish" => SortKey::Num(m.publish as f64),
            "message_stats.publish_details.rate" => num(m.publish_details.rate),
            "message_stats.deliver_get" => SortKey::Num(m.deliver_get as f64),
            "message_stats.deliver_get_details.rate" => num(m.deliver_get_details.rate),
            "message_stats.ack" => SortKey::Num(m.ack as f64),
            "message_stats.ack_details.rate" => num(m.ack_details.rate),
            _ => return None,
        })
    }
}

pub fn queue_json<'a>(state: &'a AppState, vhost: &'a str, q: &Arc<Queue>) -> QueueJson<'a> {
    let c = q.counts();
    let ready_bytes = q.ready_bytes() as u64;
    let rates: QueueRates = state.sampler.queue(q);
    let stats = &q.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let owner = q.owner.and_then(|id| state.broker.connections.get(id));
    let policies = q.applied_policies();
    QueueJson {
        name: short_str(&q.name),
        vhost,
        kind: "classic",
        durable: q.config.durable,
        auto_delete: q.config.auto_delete,
        exclusive: q.config.exclusive,
        arguments: table_to_json(&q.config.arguments),
        node: &state.broker.config.node_name,
        state: "running",
        consumers: c.consumers,
        consumer_capacity: if c.consumers > 0 { 1.0 } else { 0.0 },
        consumer_utilisation: if c.consumers > 0 { 1.0 } else { 0.0 },
        messages: c.ready + c.unacked,
        messages_details: Rate::default(),
        messages_ready: c.ready,
        messages_ready_details: Rate::default(),
        messages_unacknowledged: c.unacked,
        messages_unacknowledged_details: Rate::default(),
        message_bytes_ready: ready_bytes,
        memory: QUEUE_BASE_MEMORY
            + ready_bytes
            + PER_MESSAGE_OVERHEAD * (c.ready as u64 + c.unacked as u64),
        policy: policies.policy.as_ref().map(|p| p.def.name.clone()),
        operator_policy: policies.operator.as_ref().map(|p| p.def.name.clone()),
        exclusive_consumer_tag: None,
        owner_pid_details: owner.map(|o| {
            json!({"name": o.name, "peer_host": o.peer.ip().to_canonical().to_string(), "peer_port": o.peer.port()})
        }),
        effective_policy_definition: Value::Object(policies.definition),
        message_stats: QueueMessageStats {
            publish: load(&stats.published),
            publish_details: rates.publish,
            deliver_get: load(&stats.delivered),
            deliver_get_details: rates.deliver_get,
            ack: load(&stats.acked),
            ack_details: rates.ack,
            redeliver: load(&stats.redelivered),
            redeliver_details: rates.redeliver,
        },
    }
}

fn vhost_queues<'a>(state: &'a AppState, vhost: &'a VHost, out: &mut Vec<QueueJson<'a>>) {
    out.extend(
        vhost
            .queues()
            .iter()
            .map(|q| queue_json(state, &vhost.name, q)),
    );
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let visible = user.visible_vhosts(&state.broker);
    let vhosts: Vec<Arc<VHost>> = state
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| visible.contains(&v.name))
        .collect();
    let mut items = Vec::new();
    for v in &vhosts {
        vhost_queues(&state, v, &mut items);
    }
    listing::respond(items, &q)
}

pub async fn list_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost)?;
    let mut items = Vec::new();
    vhost_queues(&state, &vhost, &mut items);
    listing::respond(items, &q)
}

/// The queue a path names, or 404.
pub fn find(vhost: &VHost, name: &str) -> ApiResult<Arc<Queue>> {
    vhost
        .queue(&name_arg(name)?)
        .map_err(|_| ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let q = find(&vhost, &name)?;
    let mut v = serde_json::to_value(queue_json(&state, &vhost.name, &q))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut consumers = Vec::new();
    // Only the connections this queue's consumers are on are asked.
    let on = q.consumer_channels();
    if !on.is_empty() {
        for (conn, channel) in
            collect_channels(&state, |c| on.iter().any(|(id, _)| *id == c.id)).await
        {
            for c in &channel.consumers {
                if c.queue == q.name {
                    consumers.push(consumer_json(&state, &conn, &channel, c));
                }
            }
        }
    }
    v["consumer_details"] = Value::Array(consumers);
    v["deliveries"] = json!([]);
    v["incoming"] = json!([]);
    Ok(json(v))
}

/// The fields of a queue PUT (and of a definitions entry).
pub fn declaration(name: &str, body: &Value) -> ApiResult<QueueDeclare> {
    if truthy(body.get("exclusive"), false)? {
        return Err(ApiError::bad_request(
            "exclusive queues cannot be declared through the management API",
        ));
    }
    Ok(QueueDeclare {
        name: name_arg(name)?,
        server_named: false,
        passive: false,
        config: QueueConfig {
            // The management API declares durable queues unless told otherwise.
            durable: truthy(body.get("durable"), true)?,
            exclusive: false,
            auto_delete: truthy(body.get("auto_delete"), false)?,
            arguments: json_to_table(body.get("arguments").unwrap_or(&Value::Null))?,
        },
    })
}

pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let body: Value = parse_body(&body)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    user.check_permission(
        &state.broker,
        &vhost_name,
        Access::Configure,
        "queue",
        &name,
    )?;
    let declared = vhost.declare_queue(ConnectionId(0), declaration(&name, &body)?)?;
    Ok(created_or_existed(declared.created))
}

/// The connection to act as on a queue: its owner if exclusive (the API may manage exclusive
/// queues, as RabbitMQ's does), else none in particular.
fn acting_connection(q: &Queue) -> ConnectionId {
    q.owner.unwrap_or(ConnectionId(0))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
    Query(dq): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let q = find(&vhost, &name)?;
    user.check_permission(
        &state.broker,
        &vhost_name,
        Access::Configure,
        "queue",
        &name,
    )?;
    vhost.delete_queue(
        acting_connection(&q),
        &q.name,
        dq.if_unused.as_deref() == Some("true"),
        dq.if_empty.as_deref() == Some("true"),
    )?;
    Ok(no_content())
}

pub async fn purge(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let q = find(&vhost, &name)?;
    user.check_permission(&state.broker, &vhost_name, Access::Read, "queue", &name)?;
    q.purge();
    Ok(no_content())
}

#[derive(Deserialize)]
struct GetBody {
    #[serde(default = "one")]
    count: Value,
    #[serde(default = "requeue")]
    ackmode: String,
    #[serde(default = "auto")]
    encoding: String,
    #[serde(default)]
    truncate: Value,
}

fn one() -> Value {
    Value::from(1)
}
fn requeue() -> String {
    "ack_requeue_true".into()
}
fn auto() -> String {
    "auto".into()
}

/// A count given as a number or a string of digits (the web UI sends strings).
fn count_of(v: &Value, what: &str) -> ApiResult<Option<usize>> {
    match v {
        Value::Null => Some(None),
        Value::Number(n) => n.as_u64().map(|n| Some(n as usize)),
        Value::String(s) if s.trim().is_empty() => Some(None),
        Value::String(s) => s.trim().parse().ok().map(Some),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request(format!("{what} must be a non-negative integer")))
}

pub async fn get_messages(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let q = find(&vhost, &name)?;
    user.check_permission(&state.broker, &vhost_name, Access::Read, "queue", &name)?;
    let body: GetBody = parse_body(&body)?;
    let count = count_of(&body.count, "count")?.unwrap_or(1);
    let truncate = count_of(&body.truncate, "truncate")?;
    let settlement = match body.ackmode.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => Settlement::Requeue,
        "ack_requeue_false" => Settlement::Ack,
        "reject_requeue_false" => Settlement::Discard,
        other => return Err(ApiError::bad_request(format!("invalid ackmode {other}"))),
    };
    let force_base64 = match body.encoding.as_str() {
        "auto" => false,
        "base64" => true,
        other => return Err(ApiError::bad_request(format!("invalid encoding {other}"))),
    };
    q.check_owner(acting_connection(&q))?;
    // Take them all first and settle after, so a requeued message is not fetched twice.
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count {
        let Some((item, remaining)) = q.get(false) else {
            break;
        };
        let m = &item.message;
        let body = &m.body[..truncate.map_or(m.body.len(), |t| t.min(m.body.len()))];
        let (payload, encoding) = match (force_base64, std::str::from_utf8(body)) {
            (false, Ok(text)) => (text.to_string(), "string"),
            _ => (STANDARD.encode(body), "base64"),
        };
        out.push(json!({
            "payload_bytes": m.body.len(),
            "redelivered": item.redelivered,
            "exchange": short_str(&m.exchange),
            "routing_key": short_str(&m.routing_key),
            "message_count": remaining,
            "properties": properties_to_json(&m.decode_properties()),
            "payload": payload,
            "payload_encoding": encoding,
        }));
        taken.push((None, item));
    }
    q.settle(taken, settlement);
    Ok(json(Value::Array(out)))
}
