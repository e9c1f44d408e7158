//! `/api/connections`, `/api/channels` and `/api/consumers`.
//!
//! Connections are listed from the broker's registry. Channels and consumers belong to the
//! connection tasks: each is asked for a description of its channels, all at once, and the
//! answers that arrive within a short deadline are shown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use warren_broker::registry::{ChannelSnapshot, ConnectionInfo, ConsumerSnapshot};

use super::{json, no_content, visible_vhost};
use crate::auth::AuthUser;
use crate::convert::{short_str, table_to_json};
use crate::error::{ApiError, ApiResult};
use crate::listing::{self, ListQuery, Listable};
use crate::stats::Rate;
use crate::AppState;

/// How long a listing of channels waits for connections to describe theirs.
const SNAPSHOT_DEADLINE: Duration = Duration::from_millis(500);

fn host(addr: &SocketAddr) -> String {
    addr.ip().to_canonical().to_string()
}

/// Connections the user may see: all for monitors, their own for others.
fn visible_connections(
    state: &AppState,
    user: &AuthUser,
    keep: impl Fn(&ConnectionInfo) -> bool,
) -> Vec<Arc<ConnectionInfo>> {
    state
        .broker
        .connections
        .list()
        .into_iter()
        .filter(|c| (user.is_monitor() || c.user == user.name) && keep(c))
        .collect()
}

pub struct Item {
    name: String,
    vhost: String,
    value: Value,
}

impl serde::Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl Listable for Item {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        &self.vhost
    }
}

fn client_properties(c: &ConnectionInfo) -> Value {
    table_to_json(&c.client.properties)
}

pub fn connection_json(state: &AppState, c: &ConnectionInfo) -> Value {
    let s = c.stats.snapshot();
    let rates = state.sampler.connection(c.id);
    let props = client_properties(c);
    let user_provided_name = props.get("connection_name").cloned();
    let mut v = json!({
        "name": c.name,
        "node": state.broker.config.node_name,
        "type": "network",
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "auth_mechanism": c.client.auth_mechanism,
        "ssl": c.tls.is_some(),
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "host": host(&c.local),
        "port": c.local.port(),
        "peer_host": host(&c.peer),
        "peer_port": c.peer.port(),
        "connected_at": c.connected_at,
        "timeout": c.heartbeat,
        "frame_max": c.frame_max,
        "channel_max": c.channel_max,
        "channels": c.channels.load(Ordering::Relaxed),
        "client_properties": props,
        "recv_oct": s.recv_oct,
        "recv_oct_details": rates.recv_oct,
        "recv_cnt": s.recv_cnt,
        "send_oct": s.send_oct,
        "send_oct_details": rates.send_oct,
        "send_cnt": s.send_cnt,
        "send_pend": 0,
    });
    if let Some(name) = user_provided_name {
        v["user_provided_name"] = name;
    }
    if let Some(tls) = &c.tls {
        v["ssl_protocol"] = json!(tls.protocol);
        v["ssl_key_exchange"] = json!(tls.key_exchange);
        v["ssl_cipher"] = json!(tls.cipher);
        v["ssl_hash"] = json!(tls.hash);
        if let Some(cert) = &tls.peer_cert {
            v["peer_cert_subject"] = json!(cert.subject);
            v["peer_cert_issuer"] = json!(cert.issuer);
            v["peer_cert_validity"] = json!(cert.validity);
        }
    }
    v
}

fn connection_items(state: &AppState, conns: &[Arc<ConnectionInfo>]) -> Vec<Item> {
    conns
        .iter()
        .map(|c| Item {
            name: c.name.clone(),
            vhost: c.vhost.clone(),
            value: connection_json(state, c),
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let conns = visible_connections(&state, &user, |_| true);
    listing::respond(connection_items(&state, &conns), &q)
}

pub async fn of_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    visible_vhost(&state, &user, &vhost)?;
    let conns = visible_connections(&state, &user, |c| c.vhost == vhost);
    listing::respond(connection_items(&state, &conns), &q)
}

/// `/api/connections/username/{user}`: a user's connections, for monitors, administrators
/// and the user itself.
pub async fn of_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    if !user.is_monitor() && user.name != name {
        return Err(ApiError::not_authorised("Not monitor user"));
    }
    let conns = visible_connections(&state, &user, |c| c.user == name);
    listing::respond(connection_items(&state, &conns), &q)
}

/// DELETE `/api/connections/username/{user}`: closes all of a user's connections
/// (administrators, or the user itself), with the `X-Reason` header as the reason.
pub async fn close_of_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !user.is_admin() && user.name != name {
        return Err(ApiError::not_authorised("Not administrator user"));
    }
    let reason = close_reason(&headers);
    for c in visible_connections(&state, &user, |c| c.user == name) {
        c.close(reason);
    }
    Ok(no_content())
}

/// The reason a forced close gives the client: the `X-Reason` header, or RabbitMQ's default.
fn close_reason(headers: &HeaderMap) -> &str {
    headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .unwrap_or("Closed via management plugin")
}

fn find_connection(
    state: &AppState,
    user: &AuthUser,
    name: &str,
) -> ApiResult<Arc<ConnectionInfo>> {
    let c = state
        .broker
        .connections
        .by_name(name)
        .ok_or(ApiError::NotFound)?;
    if !user.is_monitor() && c.user != user.name {
        return Err(ApiError::NotFound);
    }
    Ok(c)
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let c = find_connection(&state, &user, &name)?;
    Ok(json(connection_json(&state, &c)))
}

/// Closes a connection with 320 CONNECTION_FORCED; the `X-Reason` header gives the reason.
pub async fn close(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = find_connection(&state, &user, &name)?;
    if !user.is_admin() && c.user != user.name {
        return Err(ApiError::not_authorised("Not administrator user"));
    }
    c.close(close_reason(&headers));
    Ok(no_content())
}

/// Asks every connection that `keep` selects for its channels, and waits (briefly) for the
/// answers. Connections that closed meanwhile are left out.
pub async fn collect_channels(
    state: &AppState,
    keep: impl Fn(&ConnectionInfo) -> bool,
) -> Vec<(Arc<ConnectionInfo>, ChannelSnapshot)> {
    let pending: Vec<_> = state
        .broker
        .connections
        .list()
        .into_iter()
        .filter(|c| keep(c) && c.channels.load(Ordering::Relaxed) > 0)
        .filter_map(|c| c.request_channels().map(|rx| (c, rx)))
        .collect();
    let deadline = tokio::time::Instant::now() + SNAPSHOT_DEADLINE;
    let mut out = Vec::new();
    for (conn, rx) in pending {
        if let Ok(Ok(channels)) = tokio::time::timeout_at(deadline, rx).await {
            out.extend(channels.into_iter().map(|ch| (conn.clone(), ch)));
        }
    }
    out
}

fn channel_name(c: &ConnectionInfo, ch: &ChannelSnapshot) -> String {
    format!("{} ({})", c.name, ch.number)
}

fn connection_details(c: &ConnectionInfo) -> Value {
    json!({"name": c.name, "peer_host": host(&c.peer), "peer_port": c.peer.port()})
}

pub fn channel_json(state: &AppState, c: &ConnectionInfo, ch: &ChannelSnapshot) -> Value {
    json!({
        "name": channel_name(c, ch),
        "number": ch.number,
        "node": state.broker.config.node_name,
        "state": "running",
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
        "connection_details": connection_details(c),
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "consumer_count": ch.consumers.len(),
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": 0,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "message_stats": {
            "publish": ch.published, "publish_details": Rate::default(),
            "deliver_get": ch.delivered + ch.got, "deliver_get_details": Rate::default(),
            "deliver": ch.delivered, "get": ch.got,
            "ack": ch.acked, "ack_details": Rate::default(),
            "redeliver": ch.redelivered, "redeliver_details": Rate::default(),
        },
    })
}

fn channel_items(
    state: &AppState,
    channels: &[(Arc<ConnectionInfo>, ChannelSnapshot)],
) -> Vec<Item> {
    channels
        .iter()
        .map(|(c, ch)| Item {
            name: channel_name(c, ch),
            vhost: c.vhost.clone(),
            value: channel_json(state, c, ch),
        })
        .collect()
}

fn user_filter<'a>(user: &'a AuthUser) -> impl Fn(&ConnectionInfo) -> bool + 'a {
    move |c| user.is_monitor() || c.user == user.name
}

pub async fn channels(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let filter = user_filter(&user);
    let channels = collect_channels(&state, filter).await;
    listing::respond(channel_items(&state, &channels), &q)
}

pub async fn channels_of_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    visible_vhost(&state, &user, &vhost)?;
    let filter = user_filter(&user);
    let channels = collect_channels(&state, |c| filter(c) && c.vhost == vhost).await;
    listing::respond(channel_items(&state, &channels), &q)
}

pub async fn channels_of_connection(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let conn = find_connection(&state, &user, &name)?;
    let channels = collect_channels(&state, |c| c.id == conn.id).await;
    listing::respond(channel_items(&state, &channels), &q)
}

pub async fn channel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    // "peer -> local (N)"
    let (conn_name, number) = name
        .rsplit_once(" (")
        .and_then(|(c, n)| Some((c, n.strip_suffix(')')?.parse::<u16>().ok()?)))
        .ok_or(ApiError::NotFound)?;
    let conn = find_connection(&state, &user, conn_name)?;
    let channels = collect_channels(&state, |c| c.id == conn.id).await;
    let (c, ch) = channels
        .iter()
        .find(|(_, ch)| ch.number == number)
        .ok_or(ApiError::NotFound)?;
    let mut v = channel_json(&state, c, ch);
    v["consumer_details"] = ch
        .consumers
        .iter()
        .map(|k| consumer_json(&state, c, ch, k))
        .collect();
    Ok(json(v))
}

pub fn consumer_json(
    state: &AppState,
    c: &ConnectionInfo,
    ch: &ChannelSnapshot,
    k: &ConsumerSnapshot,
) -> Value {
    json!({
        "consumer_tag": short_str(&k.tag),
        "channel_details": {
            "name": channel_name(c, ch),
            "number": ch.number,
            "node": state.broker.config.node_name,
            "connection_name": c.name,
            "peer_host": host(&c.peer),
            "peer_port": c.peer.port(),
            "user": c.user,
        },
        "queue": {"name": short_str(&k.queue), "vhost": c.vhost},
        "ack_required": k.ack_required,
        "prefetch_count": k.prefetch_count,
        "exclusive": k.exclusive,
        "arguments": table_to_json(&k.arguments),
        "active": k.activity.is_active(),
        "activity_status": k.activity.as_str(),
        // In milliseconds, as RabbitMQ 3.12+ shows it (tools expect it; 0: no limit).
        "consumer_timeout": state.config.consumer_timeout.map_or(0, |t| t.as_millis() as u64),
    })
}

fn consumers_json(
    state: &AppState,
    channels: &[(Arc<ConnectionInfo>, ChannelSnapshot)],
) -> Vec<Value> {
    let mut out = Vec::new();
    for (c, ch) in channels {
        for k in &ch.consumers {
            out.push(consumer_json(state, c, ch, k));
        }
    }
    out
}

pub async fn consumers(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    let visible = user.visible_vhosts(&state.broker);
    let channels = collect_channels(&state, |c| visible.contains(&c.vhost)).await;
    Ok(json(Value::Array(consumers_json(&state, &channels))))
}

pub async fn consumers_of_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    visible_vhost(&state, &user, &vhost)?;
    let channels = collect_channels(&state, |c| c.vhost == vhost).await;
    Ok(json(Value::Array(consumers_json(&state, &channels))))
}
