//! `/api/bindings...`, and the bindings of a queue or an exchange.

use std::hash::{Hash, Hasher};

use axum::body::Bytes as Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_broker::auth::Access;
use warren_broker::exchange::Binding;
use warren_broker::VHost;
use warren_protocol::FieldTable;

use super::exchanges::find as find_exchange;
use super::queues::find as find_queue;
use super::{exchange_name, json, name_arg, no_content, parse_body, visible_vhost};
use crate::auth::AuthUser;
use crate::convert::{json_to_table, short_str, table_to_json};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

#[derive(Serialize, Clone, Debug)]
pub struct BindingJson {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: &'static str,
    pub routing_key: String,
    pub arguments: Value,
    pub properties_key: String,
    /// The arguments as stored, to unbind with exactly them.
    #[serde(skip)]
    pub raw_arguments: FieldTable,
}

/// Percent-encodes all but RFC 3986's unreserved characters (and `~`, which RabbitMQ uses
/// as a separator in properties keys).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RabbitMQ's way to name one binding among those between a source and a destination: the
/// quoted routing key (`~` if empty), plus `~` and a hash of the arguments if there are any.
pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    if arguments.is_empty() {
        if routing_key.is_empty() {
            return "~".into();
        }
        return quote(routing_key);
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table_to_json(arguments).to_string().hash(&mut hasher);
    let hash = URL_SAFE_NO_PAD.encode(hasher.finish().to_be_bytes());
    format!("{}~{hash}", quote(routing_key))
}

fn binding_json(vhost: &str, source: &str, b: &Binding) -> BindingJson {
    let routing_key = short_str(&b.routing_key);
    BindingJson {
        source: source.to_string(),
        vhost: vhost.to_string(),
        destination: short_str(b.destination.name()),
        destination_type: b.destination.kind(),
        properties_key: properties_key(&routing_key, &b.arguments),
        routing_key,
        arguments: table_to_json(&b.arguments),
        raw_arguments: b.arguments.clone(),
    }
}

/// Every binding of a vhost, the implicit ones from the default exchange included, sorted.
pub fn vhost_bindings(vhost: &VHost, keep: impl Fn(&BindingJson) -> bool) -> Vec<BindingJson> {
    let mut out = Vec::new();
    for q in vhost.queues() {
        let name = short_str(&q.name);
        let b = BindingJson {
            source: String::new(),
            vhost: vhost.name.to_string(),
            destination: name.clone(),
            destination_type: "queue",
            properties_key: quote(&name),
            routing_key: name,
            arguments: Value::Object(Default::default()),
            raw_arguments: FieldTable::new(),
        };
        if keep(&b) {
            out.push(b);
        }
    }
    for e in vhost.exchanges() {
        let source = short_str(&e.name);
        for b in e.bindings() {
            let b = binding_json(&vhost.name, &source, &b);
            if keep(&b) {
                out.push(b);
            }
        }
    }
    out.sort_by(|a, b| {
        (
            &a.source,
            a.destination_type,
            &a.destination,
            &a.routing_key,
            &a.properties_key,
        )
            .cmp(&(
                &b.source,
                b.destination_type,
                &b.destination,
                &b.routing_key,
                &b.properties_key,
            ))
    });
    out
}

fn listing(items: Vec<BindingJson>) -> Response {
    json(serde_json::to_value(items).unwrap_or_default())
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    let visible = user.visible_vhosts(&state.broker);
    let mut vhosts = state.broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut all = Vec::new();
    for v in vhosts.iter().filter(|v| visible.contains(&v.name)) {
        all.extend(vhost_bindings(v, |_| true));
    }
    Ok(listing(all))
}

pub async fn list_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    Ok(listing(vhost_bindings(&v, |_| true)))
}

pub async fn of_queue(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    find_queue(&v, &name)?;
    Ok(listing(vhost_bindings(&v, |b| {
        b.destination_type == "queue" && b.destination == name
    })))
}

pub async fn of_source(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    let e = find_exchange(&v, &name)?;
    if e.name.is_empty() {
        // RabbitMQ does not list the default exchange's implicit bindings here.
        return Ok(listing(Vec::new()));
    }
    let source = short_str(&e.name);
    Ok(listing(vhost_bindings(&v, |b| b.source == source)))
}

pub async fn of_exchange_destination(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    let e = find_exchange(&v, &name)?;
    let dest = short_str(&e.name);
    Ok(listing(vhost_bindings(&v, |b| {
        b.destination_type == "exchange" && b.destination == dest
    })))
}

/// The path's `{kind}`: `q` or `e`.
fn destination_type(kind: &str) -> ApiResult<&'static str> {
    match kind {
        "q" => Ok("queue"),
        "e" => Ok("exchange"),
        _ => Err(ApiError::NotFound),
    }
}

/// Checks that both ends exist (404 otherwise) and returns the bindings between them.
fn between_ends(
    vhost: &VHost,
    source: &str,
    kind: &str,
    destination: &str,
) -> ApiResult<Vec<BindingJson>> {
    let dtype = destination_type(kind)?;
    let source = short_str(&find_exchange(vhost, source)?.name);
    let destination = match dtype {
        "queue" => short_str(&find_queue(vhost, destination)?.name),
        _ => short_str(&find_exchange(vhost, destination)?.name),
    };
    Ok(vhost_bindings(vhost, |b| {
        b.source == source && b.destination_type == dtype && b.destination == destination
    }))
}

pub async fn between(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    Ok(listing(between_ends(&v, &source, &kind, &destination)?))
}

fn find_binding(
    vhost: &VHost,
    source: &str,
    kind: &str,
    destination: &str,
    props: &str,
) -> ApiResult<BindingJson> {
    between_ends(vhost, source, kind, destination)?
        .into_iter()
        .find(|b| b.properties_key == props || unquote(&b.properties_key) == props)
        .ok_or(ApiError::NotFound)
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    let v = visible_vhost(&state, &user, &vhost)?;
    let b = find_binding(&v, &source, &kind, &destination, &props)?;
    Ok(json(serde_json::to_value(b).unwrap_or_default()))
}

#[derive(Deserialize, Default)]
struct BindingBody {
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Value,
}

/// Permission checks for a binding, as queue.bind / exchange.bind make them.
fn check_bind_permissions(
    state: &AppState,
    user: &AuthUser,
    vhost: &str,
    source: &str,
    dtype: &str,
    destination: &str,
) -> ApiResult<()> {
    user.check_permission(&state.broker, vhost, Access::Write, dtype, destination)?;
    user.check_permission(&state.broker, vhost, Access::Read, "exchange", source)
}

pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, source, kind, destination)): Path<(String, String, String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let dtype = destination_type(&kind)?;
    let body: BindingBody = parse_body(&body)?;
    // 404 unless both ends exist.
    between_ends(&vhost, &source, &kind, &destination)?;
    let src = exchange_name(&source);
    check_bind_permissions(
        &state,
        &user,
        &vhost_name,
        &short_str(&src),
        dtype,
        &destination,
    )?;
    let routing_key = name_arg(&body.routing_key)?;
    let arguments = json_to_table(&body.arguments)?;
    let props = properties_key(&body.routing_key, &arguments);
    if dtype == "queue" {
        let q = find_queue(&vhost, &destination)?;
        let acting = q.owner.unwrap_or(warren_broker::ConnectionId(0));
        vhost.bind_queue(acting, &q.name, &src, routing_key, arguments)?;
    } else {
        let dest = exchange_name(&destination);
        vhost.bind_exchange(&dest, &src, routing_key, arguments)?;
    }
    let location = format!(
        "/api/bindings/{}/e/{}/{kind}/{}/{}",
        quote(&vhost_name),
        quote(&source),
        quote(&destination),
        quote(&props)
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost_name, source, kind, destination, props)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
) -> ApiResult<Response> {
    let vhost = visible_vhost(&state, &user, &vhost_name)?;
    let b = find_binding(&vhost, &source, &kind, &destination, &props)?;
    check_bind_permissions(
        &state,
        &user,
        &vhost_name,
        &b.source,
        b.destination_type,
        &b.destination,
    )?;
    let arguments = b.raw_arguments;
    let routing_key = name_arg(&b.routing_key)?;
    let src = exchange_name(&b.source);
    if b.destination_type == "queue" {
        let q = find_queue(&vhost, &b.destination)?;
        let acting = q.owner.unwrap_or(warren_broker::ConnectionId(0));
        vhost.unbind_queue(acting, &q.name, &src, &routing_key, &arguments)?;
    } else {
        let dest = exchange_name(&b.destination);
        vhost.unbind_exchange(&dest, &src, &routing_key, &arguments)?;
    }
    Ok(no_content())
}
