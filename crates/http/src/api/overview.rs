//! `/api/overview`, `/api/whoami`, `/api/nodes`, health checks and the aliveness test.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use warren_broker::auth::Access;
use warren_broker::queue::QueueConfig;
use warren_broker::vhost::QueueDeclare;
use warren_broker::ConnectionId;
use warren_protocol::{BasicProperties, Bytes, ShortStr};

use super::exchanges::route_message;
use super::{json, visible_vhost, Totals};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::stats::Rate;
use crate::{system, AppState, RABBITMQ_COMPAT_VERSION};

const EXCHANGE_TYPES: &[(&str, &str)] = &[
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

fn exchange_types() -> Value {
    EXCHANGE_TYPES
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
        .collect()
}

fn listeners(state: &AppState) -> Value {
    state
        .config
        .listeners
        .iter()
        .map(|l| {
            json!({
                "node": state.broker.config.node_name,
                "protocol": l.protocol,
                "ip_address": l.addr.ip().to_string(),
                "port": l.addr.port(),
                "socket_opts": {},
            })
        })
        .collect()
}

fn contexts(state: &AppState) -> Value {
    state
        .config
        .listeners
        .iter()
        .filter(|l| l.protocol == "http")
        .map(|l| {
            json!({
                "node": state.broker.config.node_name,
                "description": "RabbitMQ Management",
                "path": "/",
                "port": l.addr.port().to_string(),
            })
        })
        .collect()
}

/// Global message counters and rates, with RabbitMQ's names.
pub fn global_message_stats(state: &AppState) -> Value {
    let t = state.broker.connections.totals();
    let r = state.sampler.global();
    json!({
        "publish": t.published, "publish_details": r.publish,
        "confirm": t.confirmed, "confirm_details": r.confirm,
        "return_unroutable": t.unroutable_returned, "return_unroutable_details": r.return_unroutable,
        "drop_unroutable": t.unroutable_dropped, "drop_unroutable_details": r.drop_unroutable,
        "deliver_get": t.delivered + t.delivered_no_ack + t.got + t.got_no_ack,
        "deliver_get_details": r.deliver_get,
        "deliver": t.delivered, "deliver_details": r.deliver,
        "deliver_no_ack": t.delivered_no_ack, "deliver_no_ack_details": r.deliver_no_ack,
        "get": t.got, "get_details": r.get,
        "get_no_ack": t.got_no_ack, "get_no_ack_details": r.get_no_ack,
        "get_empty": 0, "get_empty_details": Rate::default(),
        "ack": t.acked, "ack_details": r.ack,
        "redeliver": t.redelivered, "redeliver_details": r.redeliver,
    })
}

pub async fn overview(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    let broker = &state.broker;
    let visible = user.visible_vhosts(broker);
    let mut totals = Totals::default();
    let (mut queues, mut exchanges) = (0u64, 0u64);
    for vhost in broker.vhosts() {
        if !visible.contains(&vhost.name) {
            continue;
        }
        let qs = vhost.queues();
        queues += qs.len() as u64;
        exchanges += vhost.exchanges().len() as u64;
        for q in qs {
            let c = q.counts();
            totals.ready += c.ready as u64;
            totals.unacked += c.unacked as u64;
            totals.consumers += c.consumers as u64;
        }
    }
    let (mut connections, mut channels) = (0u64, 0u64);
    for c in broker.connections.list() {
        if user.is_monitor() || c.user == user.name {
            connections += 1;
            channels += c.channels.load(std::sync::atomic::Ordering::Relaxed) as u64;
        }
    }
    let (conn_opened, conn_closed, ch_opened, ch_closed) = broker.connections.churn();
    let message_stats = if user.is_monitor() {
        global_message_stats(&state)
    } else {
        json!({})
    };
    Ok(json(json!({
        "management_version": RABBITMQ_COMPAT_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": RABBITMQ_COMPAT_VERSION,
        "cluster_name": super::parameters::cluster_name(&state),
        "erlang_version": "none (Warren is written in Rust)",
        "erlang_full_version": "none",
        "disable_stats": false,
        "enable_queue_totals": true,
        "message_stats": message_stats,
        "churn_rates": {
            "connection_created": conn_opened, "connection_created_details": Rate::default(),
            "connection_closed": conn_closed, "connection_closed_details": Rate::default(),
            "channel_created": ch_opened, "channel_created_details": Rate::default(),
            "channel_closed": ch_closed, "channel_closed_details": Rate::default(),
        },
        "queue_totals": {
            "messages": totals.ready + totals.unacked,
            "messages_details": Rate::default(),
            "messages_ready": totals.ready,
            "messages_ready_details": Rate::default(),
            "messages_unacknowledged": totals.unacked,
            "messages_unacknowledged_details": Rate::default(),
        },
        "object_totals": {
            "channels": channels,
            "connections": connections,
            "consumers": totals.consumers,
            "exchanges": exchanges,
            "queues": queues,
        },
        "statistics_db_event_queue": 0,
        "node": state.broker.config.node_name,
        "listeners": listeners(&state),
        "contexts": contexts(&state),
    })))
}

pub async fn whoami(user: AuthUser) -> Response {
    json(json!({"name": user.name, "tags": user.tags}))
}

pub async fn auth_settings() -> Response {
    json(json!({"oauth_enabled": false}))
}

pub async fn empty_list(_user: AuthUser) -> Response {
    json(json!([]))
}

fn node_json(state: &AppState) -> Value {
    let alarms = state.broker.alarms.state();
    let uptime = state.started.elapsed().as_millis() as u64;
    let total = system::total_memory();
    json!({
        "name": state.broker.config.node_name,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "mem_used": system::resident_memory(),
        "mem_used_details": Rate::default(),
        // RabbitMQ's default high watermark: 40% of RAM.
        "mem_limit": total * 2 / 5,
        "mem_alarm": alarms.memory,
        "disk_free_limit": 50_000_000u64,
        "disk_free_alarm": alarms.disk,
        "fd_used": system::open_fds(),
        "fd_total": system::max_fds(),
        "sockets_used": state.broker.connections.len(),
        "sockets_total": system::max_fds(),
        "proc_used": 0,
        "proc_total": 0,
        "processors": system::processors(),
        "run_queue": 0,
        "uptime": uptime,
        "rates_mode": "basic",
        "net_ticktime": 60,
        "exchange_types": exchange_types(),
        "applications": [],
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
        "contexts": contexts(state),
        "listeners": listeners(state),
        "partitions": [],
        "cluster_links": [],
        "config_files": [],
        "log_files": [],
    })
}

pub async fn nodes(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_monitor()?;
    Ok(json(json!([node_json(&state)])))
}

/// Paths that name a node: this one is the only one (404 for any other name).
fn this_node(state: &AppState, name: &str) -> ApiResult<()> {
    if name == state.broker.config.node_name {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

pub async fn node(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_monitor()?;
    this_node(&state, &name)?;
    Ok(json(node_json(&state)))
}

/// `/api/nodes/{node}/memory`: RabbitMQ's breakdown by Erlang's categories. Warren has no
/// such categories: the resident set is split into what its queues hold (`queue_procs`) and
/// the rest (`other_proc`); every other category is 0.
pub async fn node_memory(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_monitor()?;
    this_node(&state, &name)?;
    let rss = system::resident_memory();
    let queued: u64 = state
        .broker
        .vhosts()
        .iter()
        .flat_map(|v| v.queues())
        .map(|q| q.ready_bytes() as u64)
        .sum::<u64>()
        .min(rss);
    let mut memory = serde_json::Map::new();
    for category in [
        "connection_readers",
        "connection_writers",
        "connection_channels",
        "connection_other",
        "quorum_queue_procs",
        "stream_queue_procs",
        "stream_queue_replica_reader_procs",
        "stream_queue_coordinator_procs",
        "plugins",
        "metadata_store",
        "metrics",
        "mgmt_db",
        "mnesia",
        "other_ets",
        "quorum_ets",
        "metadata_store_ets",
        "binary",
        "msg_index",
        "code",
        "atom",
        "other_system",
        "allocated_unused",
        "reserved_unallocated",
    ] {
        memory.insert(category.into(), json!(0));
    }
    memory.insert("queue_procs".into(), json!(queued));
    memory.insert("other_proc".into(), json!(rss - queued));
    memory.insert("strategy".into(), json!("rss"));
    memory.insert(
        "total".into(),
        json!({"rss": rss, "allocated": rss, "erlang": rss}),
    );
    Ok(json(json!({ "memory": memory })))
}

pub async fn health_ok(_user: AuthUser) -> Response {
    json(json!({"status": "ok"}))
}

/// 200 `{"status": "ok"}`, or 503 with the alarms in effect, as RabbitMQ answers.
pub async fn health_alarms(State(state): State<AppState>, _user: AuthUser) -> Response {
    let alarms = state.broker.alarms.state();
    if !alarms.any() {
        return json(json!({"status": "ok"}));
    }
    let node = &state.broker.config.node_name;
    let mut list = Vec::new();
    if alarms.memory {
        list.push(json!({"node": node, "resource": "memory"}));
    }
    if alarms.disk {
        list.push(json!({"node": node, "resource": "disk"}));
    }
    let body = json!({
        "status": "failed",
        "reason": "There are alarms in effect in the cluster",
        "alarms": list,
    });
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(body),
    )
        .into_response()
}

/// `/api/health/checks/protocol-listener/{protocol}`: 200 if a listener speaks it (RabbitMQ's
/// names: `amqp` or `amqp091`, `http`, `prometheus`), 503 otherwise.
pub async fn health_protocol_listener(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(protocol): Path<String>,
) -> Response {
    let normalise = |p: &str| match p {
        "amqp091" | "amqp0-9-1" | "amqp0.9.1" => "amqp".to_string(),
        other => other.to_string(),
    };
    let wanted = normalise(&protocol);
    let protocols: Vec<String> = state
        .config
        .listeners
        .iter()
        .map(|l| normalise(l.protocol))
        .collect();
    if protocols.contains(&wanted) {
        return json(json!({"status": "ok", "protocol": protocol}));
    }
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "status": "failed",
            "reason": format!("No active listener for protocol {protocol}"),
            "missing": protocol,
            "protocols": protocols,
        })),
    )
        .into_response()
}

/// `/api/health/checks/certificate-expiration/{within}/{unit}`: 503 and the TLS listeners
/// whose certificate or CA file holds a certificate that expires within the window (already
/// expired included), as RabbitMQ answers; only the expiring certificates' dates are listed.
pub async fn health_certificates(
    State(state): State<AppState>,
    _user: AuthUser,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult<Response> {
    let within: i64 = within
        .parse::<u32>()
        .map_err(|_| ApiError::bad_request(format!("invalid duration: {within}")))?
        .into();
    // RabbitMQ's units: a month is 30 days, a year 365.
    let unit_secs: i64 = match unit.as_str() {
        "days" => 86_400,
        "weeks" => 7 * 86_400,
        "months" => 30 * 86_400,
        "years" => 365 * 86_400,
        _ => return Err(ApiError::bad_request(format!("invalid unit: {unit}"))),
    };
    let deadline = unix_now().saturating_add(within * unit_secs);
    let expiring = |dates: &[(i64, String)]| -> Vec<String> {
        dates
            .iter()
            .filter(|(unix, _)| *unix <= deadline)
            .map(|(_, utc)| utc.clone())
            .collect()
    };
    let expired: Vec<Value> = state
        .config
        .listeners
        .iter()
        .filter_map(|listener| {
            let certs = (listener.certificates.as_ref()?.0)();
            let cert_dates = expiring(&certs.cert_not_after);
            let ca_dates = expiring(&certs.ca_not_after);
            if cert_dates.is_empty() && ca_dates.is_empty() {
                return None;
            }
            Some(json!({
                "node": state.broker.config.node_name,
                "protocol": listener.protocol,
                "interface": listener.addr.ip().to_string(),
                "port": listener.addr.port(),
                "certfile": certs.cert_file,
                "certfile_expires_on": cert_dates,
                "cacertfile": certs.ca_file,
                "cacertfile_expires_on": ca_dates,
            }))
        })
        .collect();
    if expired.is_empty() {
        return Ok(json(json!({"status": "ok"})));
    }
    Ok((
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "status": "failed",
            "reason": "Certificates expiring",
            "expired": expired,
        })),
    )
        .into_response())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `/api/healthchecks/node`, the check before 3.8's `/api/health/checks/*`: ok unless an
/// alarm is in effect.
pub async fn health_node(State(state): State<AppState>, _user: AuthUser) -> Response {
    node_health(&state)
}

/// `/api/healthchecks/node/{node}`: this node only.
pub async fn health_node_named(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(node): Path<String>,
) -> ApiResult<Response> {
    this_node(&state, &node)?;
    Ok(node_health(&state))
}

fn node_health(state: &AppState) -> Response {
    let alarms = state.broker.alarms.state();
    if alarms.any() {
        let which: Vec<&str> = [("memory", alarms.memory), ("disk", alarms.disk)]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect();
        return json(json!({
            "status": "failed",
            "reason": format!("resource alarm(s) in effect: {}", which.join(", ")),
        }));
    }
    json(json!({"status": "ok"}))
}

pub async fn health_port_listener(
    State(state): State<AppState>,
    _user: AuthUser,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("invalid port"))?;
    if state.config.listeners.iter().any(|l| l.addr.port() == port) {
        Ok(json(json!({"status": "ok", "port": port})))
    } else {
        let ports: Vec<u16> = state
            .config
            .listeners
            .iter()
            .map(|l| l.addr.port())
            .collect();
        Ok(json(json!({
            "status": "failed",
            "reason": format!("No active listener on port {port}"),
            "missing": port,
            "ports": ports,
        })))
    }
}

/// RabbitMQ's aliveness test: declare `aliveness-test`, publish a message to it through the
/// default exchange and get it back.
pub async fn aliveness_test(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost_name): Path<String>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    const QUEUE: &str = "aliveness-test";
    for access in [Access::Configure, Access::Write, Access::Read] {
        let (kind, name) = match access {
            Access::Write => ("exchange", ""),
            _ => ("queue", QUEUE),
        };
        user.check_permission(&state.broker, &vhost_name, access, kind, name)?;
    }
    let name = ShortStr::from(QUEUE);
    let declared = vhost.declare_queue(
        ConnectionId(0),
        QueueDeclare {
            name: name.clone(),
            server_named: false,
            passive: false,
            config: QueueConfig::default(),
        },
    )?;
    route_message(
        &state.broker,
        &vhost,
        &ShortStr::from(""),
        &name,
        &BasicProperties::default(),
        Bytes::from_static(b"test_message"),
    )
    .await?;
    // The queue may have consumers (it is a normal queue): look for our message briefly.
    for _ in 0..50 {
        if let Some((item, _)) = declared.queue.get(true) {
            if item.message.body.as_ref() == b"test_message" {
                return Ok(json(json!({"status": "ok"})));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(json(
        json!({"status": "failed", "reason": "message not received"}),
    ))
}
