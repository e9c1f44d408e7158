//! `/api/definitions[/{vhost}]`: export and import in RabbitMQ's JSON format, so that a file
//! exported from RabbitMQ imports here (users keep their passwords: the hashes are the same
//! salted SHA-256) and one exported here imports into RabbitMQ.

use axum::body::Bytes as Body;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{json, Map, Value};
use tracing::info;
use warren_broker::auth::Permissions;
use warren_broker::{ConnectionId, VHost};

use super::bindings::vhost_bindings;
use super::exchanges::{declaration as exchange_declaration, exchange_json};
use super::queues::declaration as queue_declaration;
use super::users::{user_from_body, user_json, UserBody};
use super::vhosts::tag_list;
use super::{exchange_name, json, name_arg, no_content, parse_body};
use crate::auth::AuthUser;
use crate::convert::{json_to_table, short_str, table_to_json};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, RABBITMQ_COMPAT_VERSION};
use warren_broker::limits::VHOST_LIMITS;
use warren_broker::persistence::VhostDef;
use warren_broker::policy::{PolicyDef, PolicyKind};

/// Exchanges every vhost has: not exported, not imported.
fn builtin_exchange(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

/// Queues, exchanges and bindings of a vhost, as definitions list them. `with_vhost` adds the
/// `vhost` field (the whole-broker format has it, the per-vhost one does not).
fn topology(vhost: &VHost, with_vhost: bool) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let tag = |mut v: Value| {
        if !with_vhost {
            if let Some(m) = v.as_object_mut() {
                m.remove("vhost");
            }
        }
        v
    };
    let mut queues: Vec<_> = vhost
        .queues()
        .into_iter()
        // Exclusive queues belong to a connection: they are not definitions.
        .filter(|q| !q.config.exclusive)
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    let exclusive: std::collections::HashSet<String> = vhost
        .queues()
        .iter()
        .filter(|q| q.config.exclusive)
        .map(|q| short_str(&q.name))
        .collect();
    let queues = queues
        .iter()
        .map(|q| {
            tag(json!({
                "name": short_str(&q.name),
                "vhost": &*vhost.name,
                "durable": q.config.durable,
                "auto_delete": q.config.auto_delete,
                "arguments": table_to_json(&q.config.arguments),
            }))
        })
        .collect();
    let mut exchanges: Vec<_> = vhost
        .exchanges()
        .iter()
        .map(|e| exchange_json(&vhost.name, e))
        .filter(|e| !builtin_exchange(&e.name))
        .collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    let exchanges = exchanges
        .into_iter()
        .map(|e| {
            tag(json!({
                "name": e.name,
                "vhost": e.vhost,
                "type": e.kind,
                "durable": e.durable,
                "auto_delete": e.auto_delete,
                "internal": e.internal,
                "arguments": e.arguments,
            }))
        })
        .collect();
    let bindings = vhost_bindings(vhost, |b| {
        let to_exclusive = b.destination_type == "queue" && exclusive.contains(&b.destination);
        !b.source.is_empty() && !to_exclusive
    })
    .into_iter()
    .map(|b| {
        tag(json!({
            "source": b.source,
            "vhost": b.vhost,
            "destination": b.destination,
            "destination_type": b.destination_type,
            "routing_key": b.routing_key,
            "arguments": b.arguments,
        }))
    })
    .collect();
    (queues, exchanges, bindings)
}

/// A vhost's policies and operator policies as RabbitMQ exports them: policies in
/// `policies`, operator policies as runtime parameters of component `operator_policy`.
fn policies(vhost: &VHost) -> (Vec<Value>, Vec<Value>) {
    let policies = vhost
        .policies(PolicyKind::Policy)
        .iter()
        .map(|p| serde_json::to_value(super::policies::PolicyJson::from(p)).unwrap_or_default())
        .collect();
    let mut parameters: Vec<Value> = vhost
        .policies(PolicyKind::OperatorPolicy)
        .into_iter()
        .map(|p| {
            json!({
                "value": {
                    "pattern": p.pattern,
                    "definition": p.definition,
                    "priority": p.priority,
                    "apply-to": p.apply_to.as_str(),
                },
                "vhost": p.vhost,
                "component": PolicyKind::OperatorPolicy.component(),
                "name": p.name,
            })
        })
        .collect();
    let limits = vhost.definition().limits;
    if !limits.is_empty() {
        parameters.push(json!({
            "value": limits,
            "vhost": &*vhost.name,
            "component": VHOST_LIMITS_COMPONENT,
            "name": "limits",
        }));
    }
    (policies, parameters)
}

/// The runtime-parameter component RabbitMQ keeps vhost limits under (as one parameter named
/// `limits`).
const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

/// Runtime parameters other than operator policies and vhost limits (federation upstreams,
/// shovels) are for plugins Warren does not have: a file with any is refused before anything is
/// imported, rather than imported without them.
fn check_parameters(defs: &Value) -> ApiResult<()> {
    for p in items(defs, "parameters") {
        let component = str_field(p, "component", "parameter")?;
        if component != PolicyKind::OperatorPolicy.component()
            && component != VHOST_LIMITS_COMPONENT
        {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            return Err(ApiError::bad_request(format!(
                "parameter '{name}' of component '{component}': runtime parameters of plugins are not supported by Warren"
            )));
        }
    }
    Ok(())
}

/// Imports `policies` and the operator policies among `parameters`, validated as the API's
/// PUT validates them.
fn import_policies(state: &AppState, defs: &Value, vhost: Option<&str>) -> ApiResult<()> {
    let mut wanted = Vec::new();
    for p in items(defs, "policies") {
        wanted.push((PolicyKind::Policy, p, p));
    }
    for p in items(defs, "parameters") {
        let value = p.get("value").unwrap_or(&Value::Null);
        if p.get("component").and_then(Value::as_str) == Some(VHOST_LIMITS_COMPONENT) {
            let vhost_name = match vhost {
                Some(v) => v,
                None => str_field(p, "vhost", "vhost limits")?,
            };
            for (limit, n) in super::limits::parse_limits(value, VHOST_LIMITS)? {
                state.broker.set_vhost_limit(vhost_name, &limit, Some(n))?;
            }
            continue;
        }
        wanted.push((PolicyKind::OperatorPolicy, p, value));
    }
    for (kind, item, body) in wanted {
        let name = str_field(item, "name", "policy")?;
        let vhost_name = match vhost {
            Some(v) => v,
            None => str_field(item, "vhost", "policy")?,
        };
        let v = state.broker.vhost(vhost_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "policy '{name}': vhost '{vhost_name}' does not exist"
            ))
        })?;
        let def = PolicyDef::from_json(vhost_name, name, kind, body)
            .map_err(|e| ApiError::bad_request(format!("policy '{name}': {e}")))?;
        v.set_policy(def)?;
    }
    Ok(())
}

fn header() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("rabbit_version".into(), RABBITMQ_COMPAT_VERSION.into());
    m.insert("rabbitmq_version".into(), RABBITMQ_COMPAT_VERSION.into());
    m.insert("product_name".into(), "Warren".into());
    m.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
    m
}

pub async fn export(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_admin()?;
    let broker = &state.broker;
    let mut users: Vec<_> = broker.access.users().into_iter().map(user_json).collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    let mut vhosts = broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    let vhost_list: Vec<Value> = vhosts
        .iter()
        .map(|v| {
            let meta = v.definition();
            json!({
                "name": &*v.name,
                "limits": [],
                "metadata": {"description": meta.description, "tags": meta.tags},
            })
        })
        .collect();
    let permissions = super::permissions::permissions(&state, |_, _| true);
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    let (mut policy_list, mut parameters) = (Vec::new(), Vec::new());
    for v in &vhosts {
        let (q, e, b) = topology(v, true);
        queues.extend(q);
        exchanges.extend(e);
        bindings.extend(b);
        let (p, o) = policies(v);
        policy_list.extend(p);
        parameters.extend(o);
    }
    let mut m = header();
    m.insert(
        "users".into(),
        serde_json::to_value(users).unwrap_or_default(),
    );
    m.insert("vhosts".into(), Value::Array(vhost_list));
    m.insert(
        "permissions".into(),
        serde_json::to_value(permissions).unwrap_or_default(),
    );
    let topic_permissions: Vec<Value> =
        super::topic_permissions::topic_permissions(&state, |_, _| true)
            .iter()
            .map(|p| {
                serde_json::to_value(super::topic_permissions::TopicPermissionJson::from(p))
                    .unwrap_or_default()
            })
            .collect();
    m.insert("topic_permissions".into(), Value::Array(topic_permissions));
    m.insert("parameters".into(), Value::Array(parameters));
    let globals: Vec<Value> = broker
        .global_parameters()
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    m.insert("global_parameters".into(), Value::Array(globals));
    m.insert("policies".into(), Value::Array(policy_list));
    m.insert("queues".into(), Value::Array(queues));
    m.insert("exchanges".into(), Value::Array(exchanges));
    m.insert("bindings".into(), Value::Array(bindings));
    Ok(json(Value::Object(m)))
}

pub async fn export_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let v = state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let (queues, exchanges, bindings) = topology(&v, false);
    let (policy_list, parameters) = policies(&v);
    let mut m = header();
    m.insert("parameters".into(), Value::Array(parameters));
    m.insert("policies".into(), Value::Array(policy_list));
    m.insert("queues".into(), Value::Array(queues));
    m.insert("exchanges".into(), Value::Array(exchanges));
    m.insert("bindings".into(), Value::Array(bindings));
    Ok(json(Value::Object(m)))
}

fn str_field<'a>(item: &'a Value, key: &str, what: &str) -> ApiResult<&'a str> {
    item.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{what}: '{key}' is missing or not a string")))
}

fn items<'a>(defs: &'a Value, key: &str) -> &'a [Value] {
    defs.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Imports queues, exchanges and bindings into vhosts; `vhost` forces one (per-vhost import).
fn import_topology(state: &AppState, defs: &Value, vhost: Option<&str>) -> ApiResult<()> {
    let vhost_of = |item: &Value, what: &str| -> ApiResult<std::sync::Arc<VHost>> {
        let name = match vhost {
            Some(v) => v,
            None => str_field(item, "vhost", what)?,
        };
        state
            .broker
            .vhost(name)
            .ok_or_else(|| ApiError::bad_request(format!("{what}: vhost '{name}' does not exist")))
    };
    import_policies(state, defs, vhost)?;
    for e in items(defs, "exchanges") {
        let name = str_field(e, "name", "exchange")?;
        if builtin_exchange(name) {
            continue;
        }
        let what = format!("exchange '{name}'");
        let v = vhost_of(e, &what)?;
        v.declare_exchange(exchange_declaration(name, e)?)
            .map_err(|err| ApiError::bad_request(format!("{what}: {err}")))?;
    }
    for q in items(defs, "queues") {
        let name = str_field(q, "name", "queue")?;
        let what = format!("queue '{name}'");
        let v = vhost_of(q, &what)?;
        v.declare_queue(ConnectionId(0), queue_declaration(name, q)?)
            .map_err(|err| ApiError::bad_request(format!("{what}: {err}")))?;
    }
    for b in items(defs, "bindings") {
        let source = str_field(b, "source", "binding")?;
        let destination = str_field(b, "destination", "binding")?;
        let what = format!("binding '{source}' -> '{destination}'");
        let v = vhost_of(b, &what)?;
        let routing_key = name_arg(b.get("routing_key").and_then(Value::as_str).unwrap_or(""))?;
        let arguments = json_to_table(b.get("arguments").unwrap_or(&Value::Null))?;
        let result = match b.get("destination_type").and_then(Value::as_str) {
            Some("queue") => v.bind_queue(
                ConnectionId(0),
                &name_arg(destination)?,
                &exchange_name(source),
                routing_key,
                arguments,
            ),
            Some("exchange") => v.bind_exchange(
                &exchange_name(destination),
                &exchange_name(source),
                routing_key,
                arguments,
            ),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "{what}: bad destination_type"
                )))
            }
        };
        result.map_err(|err| ApiError::bad_request(format!("{what}: {err}")))?;
    }
    Ok(())
}

pub async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    body: Body,
) -> ApiResult<Response> {
    user.require_admin()?;
    let defs: Value = parse_body(&body)?;
    check_parameters(&defs)?;
    let broker = &state.broker;
    // Check every user before changing anything: a bad hash would lock someone out.
    let mut users = Vec::new();
    for u in items(&defs, "users") {
        let name = str_field(u, "name", "user")?;
        let body: UserBody = serde_json::from_value(u.clone())
            .map_err(|e| ApiError::bad_request(format!("user '{name}': {e}")))?;
        users.push(user_from_body(name, body, broker.access.user(name))?);
    }
    for u in users {
        broker.access.put_user(u)?;
    }
    for v in items(&defs, "vhosts") {
        let name = str_field(v, "name", "vhost")?;
        let meta = v.get("metadata").unwrap_or(v);
        broker.put_vhost(VhostDef {
            name: name.to_string(),
            description: meta
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            tags: tag_list(meta.get("tags"))?,
            default_queue_type: meta
                .get("default_queue_type")
                .and_then(Value::as_str)
                .map(String::from),
            // Vhost limits come as runtime parameters (`vhost-limits`), below.
            limits: broker
                .vhost(name)
                .map(|v| v.definition().limits)
                .unwrap_or_default(),
        })?;
    }
    for p in items(&defs, "permissions") {
        let (u, v) = (
            str_field(p, "user", "permission")?,
            str_field(p, "vhost", "permission")?,
        );
        if broker.vhost(v).is_none() || broker.access.user(u).is_none() {
            return Err(ApiError::bad_request(format!(
                "permission of '{u}' in '{v}': no such user or vhost"
            )));
        }
        let compiled = Permissions::new(
            str_field(p, "configure", "permission")?,
            str_field(p, "write", "permission")?,
            str_field(p, "read", "permission")?,
        )
        .map_err(|e| ApiError::bad_request(format!("permission of '{u}' in '{v}': {e}")))?;
        broker.access.set_permissions(v, u, compiled)?;
    }
    for g in items(&defs, "global_parameters") {
        let name = str_field(g, "name", "global parameter")?;
        // The id of the RabbitMQ cluster the file came from is not this one's.
        if name == "internal_cluster_id" {
            continue;
        }
        let value = g.get("value").cloned().unwrap_or(Value::Null);
        broker.set_global_parameter(name, value)?;
    }
    for p in items(&defs, "topic_permissions") {
        let (u, v) = (
            str_field(p, "user", "topic permission")?,
            str_field(p, "vhost", "topic permission")?,
        );
        let body = super::topic_permissions::TopicPermissionBody {
            exchange: str_field(p, "exchange", "topic permission")?.to_string(),
            write: str_field(p, "write", "topic permission")?.to_string(),
            read: str_field(p, "read", "topic permission")?.to_string(),
        };
        let def = super::topic_permissions::validated(&state, v, u, body)?;
        broker.access.set_topic_permission(def)?;
    }
    import_topology(&state, &defs, None)?;
    info!(user = %user.name, "definitions imported");
    Ok(no_content())
}

pub async fn import_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    user.require_admin()?;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    let defs: Value = parse_body(&body)?;
    check_parameters(&defs)?;
    import_topology(&state, &defs, Some(&vhost))?;
    info!(user = %user.name, %vhost, "vhost definitions imported");
    Ok(no_content())
}
