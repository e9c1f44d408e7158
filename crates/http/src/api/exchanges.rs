//! `/api/exchanges[/{vhost}[/{name}]]` and publishing through the API.

use std::sync::Arc;

use axum::body::Bytes as Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warren_broker::auth::Access;
use warren_broker::exchange::Exchange;
use warren_broker::message::parse_expiration;
use warren_broker::vhost::{ExchangeDeclare, DEFAULT_EXCHANGE_ALIAS};
use warren_broker::{Broker, Message, Published, Routes, VHost};
use warren_protocol::{BasicProperties, Bytes, BytesMut, ShortStr};

use super::{
    created_or_existed, exchange_name, json, name_arg, no_content, parse_body, truthy,
    visible_vhost,
};
use crate::auth::AuthUser;
use crate::convert::{json_to_properties, json_to_table, short_str, table_to_json};
use crate::error::{ApiError, ApiResult};
use crate::listing::{self, ListQuery, Listable};
use crate::AppState;

#[derive(Serialize)]
pub struct ExchangeJson {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Value,
    /// Absent when no policy applies, as in RabbitMQ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub user_who_performed_action: &'static str,
}

impl Listable for ExchangeJson {
    fn name(&self) -> &str {
        &self.name
    }
    fn vhost(&self) -> &str {
        &self.vhost
    }
}

pub fn exchange_json(vhost: &str, e: &Exchange) -> ExchangeJson {
    ExchangeJson {
        name: short_str(&e.name),
        vhost: vhost.to_string(),
        kind: e.config.kind.as_str(),
        durable: e.config.durable,
        auto_delete: e.config.auto_delete,
        internal: e.config.internal,
        arguments: table_to_json(&e.config.arguments),
        policy: e.policy_name(),
        user_who_performed_action: "rmq-internal",
    }
}

fn of_vhost(vhost: &VHost, out: &mut Vec<ExchangeJson>) {
    out.extend(
        vhost
            .exchanges()
            .iter()
            .map(|e| exchange_json(&vhost.name, e)),
    );
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let visible = user.visible_vhosts(&state.broker);
    let mut items = Vec::new();
    for vhost in state.broker.vhosts() {
        if visible.contains(&vhost.name) {
            of_vhost(&vhost, &mut items);
        }
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
    of_vhost(&vhost, &mut items);
    listing::respond(items, &q)
}

/// The exchange a path names, or 404.
pub fn find(vhost: &VHost, name: &str) -> ApiResult<Arc<Exchange>> {
    let name = exchange_name(name);
    vhost.exchange(&name).map_err(|_| ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    let e = find(&v, &name)?;
    Ok(json(
        serde_json::to_value(exchange_json(&vhost, &e)).unwrap_or_default(),
    ))
}

/// The fields of an exchange PUT (and of a definitions entry).
pub fn declaration(name: &str, body: &Value) -> ApiResult<ExchangeDeclare> {
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("type is required"))?;
    Ok(ExchangeDeclare {
        name: name_arg(name)?,
        kind: ShortStr::from(kind),
        passive: false,
        // The management API declares durable exchanges unless told otherwise.
        config_flags: (
            truthy(body.get("durable"), true)?,
            truthy(body.get("auto_delete"), false)?,
            truthy(body.get("internal"), false)?,
        ),
        arguments: json_to_table(body.get("arguments").unwrap_or(&Value::Null))?,
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
    if name == DEFAULT_EXCHANGE_ALIAS || name.is_empty() {
        return Err(ApiError::not_authorised(
            "ACCESS_REFUSED - operation not permitted on the default exchange",
        ));
    }
    user.check_permission(
        &state.broker,
        &vhost_name,
        Access::Configure,
        "exchange",
        &name,
    )?;
    let declare = declaration(&name, &body)?;
    let existed = vhost.exchange(&declare.name).is_ok();
    vhost.declare_exchange(declare)?;
    Ok(created_or_existed(!existed))
}

#[derive(Deserialize, Default)]
pub struct DeleteQuery {
    #[serde(rename = "if-unused")]
    pub if_unused: Option<String>,
    #[serde(rename = "if-empty")]
    pub if_empty: Option<String>,
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let e = find(&vhost, &name)?;
    user.check_permission(
        &state.broker,
        &vhost_name,
        Access::Configure,
        "exchange",
        &name,
    )?;
    let if_unused = q.if_unused.as_deref() == Some("true");
    vhost.delete_exchange(&e.name, if_unused)?;
    Ok(no_content())
}

/// Publishes a message as basic.publish with confirms would: returns whether it reached a
/// queue, once it is as safe as a confirm would promise (on disk, for a persistent message in
/// a durable queue). A queue that refused it is an error, as a nack would be.
pub async fn route_message(
    broker: &Broker,
    vhost: &VHost,
    exchange: &ShortStr,
    routing_key: &ShortStr,
    properties: &BasicProperties,
    body: Bytes,
) -> ApiResult<bool> {
    if let Some(expiration) = &properties.expiration {
        parse_expiration(expiration).map_err(|term| {
            ApiError::BadRequest(format!("invalid expiration '{expiration}': {term}"))
        })?;
    }
    let mut encoded = BytesMut::new();
    properties.encode(&mut encoded);
    let message = Message::new(exchange, routing_key, &encoded.freeze(), body);
    let (ticket, rejected) = match vhost.publish(exchange, message, &mut Routes::default())? {
        Published::Unroutable(_) => return Ok(false),
        Published::Routed { ticket, rejected } => (ticket, rejected),
    };
    if ticket != 0 {
        if let Some(mut durable) = broker.durability() {
            // The syncer announces every epoch it finishes, so this wait ends.
            let _ = durable.wait_for(|&epoch| epoch >= ticket).await;
        }
    }
    if rejected || broker.durable_write_lost(ticket) {
        return Err(ApiError::Internal(
            "the message could not be stored (the disk refused it)".into(),
        ));
    }
    Ok(true)
}

#[derive(Deserialize)]
struct PublishBody {
    #[serde(default)]
    properties: Value,
    routing_key: String,
    payload: String,
    payload_encoding: String,
}

pub async fn publish(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, name)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let exchange = find(&vhost, &name)?;
    let body: PublishBody = parse_body(&body)?;
    user.check_permission(
        &state.broker,
        &vhost_name,
        Access::Write,
        "exchange",
        &short_str(&exchange.name),
    )?;
    let payload = match body.payload_encoding.as_str() {
        "string" => Bytes::from(body.payload.into_bytes()),
        "base64" => Bytes::from(
            STANDARD
                .decode(body.payload.trim())
                .map_err(|e| ApiError::bad_request(format!("invalid base64 payload: {e}")))?,
        ),
        other => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding must be string or base64, not {other}"
            )))
        }
    };
    let properties = json_to_properties(&body.properties)?;
    let max = state.broker.config.max_message_size;
    if payload.len() as u64 > max {
        return Err(ApiError::bad_request(format!(
            "message size {} is larger than configured max size {max}",
            payload.len()
        )));
    }
    let routed = route_message(
        &state.broker,
        &vhost,
        &exchange.name,
        &name_arg(&body.routing_key)?,
        &properties,
        payload,
    )
    .await?;
    Ok(json(json!({ "routed": routed })))
}
