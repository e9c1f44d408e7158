//! `/api/vhosts[/{vhost}]`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warren_broker::auth::Permissions;
use warren_broker::persistence::VhostDef;

use super::{created_or_existed, json, no_content, parse_body, vhost_totals};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::listing::{self, ListQuery, Listable};
use crate::stats::Rate;
use crate::AppState;

/// Tags as a list or a comma-separated string.
pub fn tag_list(v: Option<&Value>) -> ApiResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .filter(|t| !matches!(t, Ok(s) if s.is_empty()))
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a list or a string")),
    }
}

#[derive(Serialize)]
struct VhostJson {
    name: String,
    description: String,
    tags: Vec<String>,
    default_queue_type: String,
    metadata: Value,
    tracing: bool,
    cluster_state: Value,
    messages: u64,
    messages_details: Rate,
    messages_ready: u64,
    messages_ready_details: Rate,
    messages_unacknowledged: u64,
    messages_unacknowledged_details: Rate,
}

impl Listable for VhostJson {
    fn name(&self) -> &str {
        &self.name
    }
}

fn vhost_json(state: &AppState, name: &str) -> Option<VhostJson> {
    let vhost = state.broker.vhost(name)?;
    let meta = vhost.definition();
    let t = vhost_totals(&vhost);
    let queue_type = meta
        .default_queue_type
        .clone()
        .unwrap_or_else(|| "classic".into());
    Some(VhostJson {
        name: name.to_string(),
        metadata: json!({
            "description": meta.description,
            "tags": meta.tags,
            "default_queue_type": queue_type,
        }),
        description: meta.description,
        tags: meta.tags,
        default_queue_type: queue_type,
        tracing: false,
        cluster_state: json!({ state.broker.config.node_name.clone(): "running" }),
        messages: t.ready + t.unacked,
        messages_details: Rate::default(),
        messages_ready: t.ready,
        messages_ready_details: Rate::default(),
        messages_unacknowledged: t.unacked,
        messages_unacknowledged_details: Rate::default(),
    })
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let visible = user.visible_vhosts(&state.broker);
    let items: Vec<VhostJson> = state
        .broker
        .vhosts()
        .iter()
        .filter(|v| visible.contains(&v.name))
        .filter_map(|v| vhost_json(&state, &v.name))
        .collect();
    listing::respond(items, &q)
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.check_vhost_visible(&state.broker, &name)?;
    let v = vhost_json(&state, &name).ok_or(ApiError::NotFound)?;
    Ok(json(serde_json::to_value(v).unwrap_or_default()))
}

#[derive(Deserialize, Default)]
struct VhostBody {
    description: Option<String>,
    tags: Option<Value>,
    default_queue_type: Option<String>,
}

pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: VhostBody = parse_body(&body)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("vhost name must not be empty"));
    }
    let mut meta = state
        .broker
        .vhost(&name)
        .map(|v| v.definition())
        .unwrap_or_else(|| VhostDef {
            name: name.clone(),
            ..VhostDef::default()
        });
    if let Some(d) = body.description {
        meta.description = d;
    }
    if body.tags.is_some() {
        meta.tags = tag_list(body.tags.as_ref())?;
    }
    if body.default_queue_type.is_some() {
        meta.default_queue_type = body.default_queue_type;
    }
    let created = state.broker.put_vhost(meta)?;
    if created {
        // As RabbitMQ's management plugin: whoever creates a vhost may use it.
        state
            .broker
            .access
            .set_permissions(&name, &user.name, Permissions::full())?;
    }
    Ok(created_or_existed(created))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.delete_vhost(&name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
