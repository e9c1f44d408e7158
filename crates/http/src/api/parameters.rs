//! Runtime parameters as RabbitMQ 3.10's management API serves them: `/api/global-parameters`
//! (any JSON value by name; `cluster_name` among them, also at `/api/cluster-name`) and
//! `/api/parameters` (per-vhost parameters of plugin components). Warren has no plugins: the
//! only components are `operator_policy` (the operator policies, as RabbitMQ lists them here)
//! and `policy` (left out of the full list, as in RabbitMQ); other components are refused.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use warren_broker::policy::{PolicyDef, PolicyKind};

use super::{created_or_existed, no_content};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub use warren_broker::CLUSTER_NAME;

/// The cluster's name: what was set through the API, else the node name.
pub fn cluster_name(state: &AppState) -> String {
    state.broker.cluster_name()
}

#[derive(Serialize)]
struct GlobalParameterJson<'a> {
    name: &'a str,
    value: &'a Value,
}

/// Every global parameter, by name (`cluster_name` only once it was set, as in RabbitMQ).
fn global_list(state: &AppState) -> Vec<(String, Value)> {
    state.broker.global_parameters()
}

pub async fn global_list_handler(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Response> {
    user.require_admin()?;
    let all = global_list(&state);
    let shown: Vec<GlobalParameterJson> = all
        .iter()
        .map(|(name, value)| GlobalParameterJson { name, value })
        .collect();
    Ok(Json(shown).into_response())
}

pub async fn global_show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let all = global_list(&state);
    let (name, value) = all
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(GlobalParameterJson { name, value }).into_response())
}

/// PUT `{"value": ...}` (RabbitMQ's body; `name` in it, if any, must agree with the path).
pub async fn global_put(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    let value = body
        .get("value")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))?;
    if name == CLUSTER_NAME && !value.is_string() {
        return Err(ApiError::bad_request("the cluster name must be a string"));
    }
    Ok(created_or_existed(
        state.broker.set_global_parameter(&name, value)?,
    ))
}

pub async fn global_delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.clear_global_parameter(&name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

/// GET `/api/cluster-name`: any management user may read it.
pub async fn cluster_name_show(State(state): State<AppState>, _user: AuthUser) -> Response {
    Json(json!({"name": cluster_name(&state)})).into_response()
}

/// PUT `/api/cluster-name` `{"name": "..."}`: administrators rename the cluster.
pub async fn cluster_name_put(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,name}]"))?;
    state
        .broker
        .set_global_parameter(CLUSTER_NAME, Value::from(name))?;
    Ok(no_content())
}

// ---- per-vhost parameters -------------------------------------------------------------------

/// The policy kind a component names, if Warren has it.
fn component_kind(component: &str) -> Option<PolicyKind> {
    match component {
        "operator_policy" => Some(PolicyKind::OperatorPolicy),
        "policy" => Some(PolicyKind::Policy),
        _ => None,
    }
}

fn parameter_json(p: &PolicyDef) -> Value {
    json!({
        "vhost": p.vhost,
        "component": p.kind.component(),
        "name": p.name,
        "value": {
            "pattern": p.pattern,
            "definition": p.definition,
            "priority": p.priority,
            "apply-to": p.apply_to.as_str(),
        },
    })
}

/// The parameters of `kinds` in the vhosts the user sees (or only `vhost`).
fn parameters(
    state: &AppState,
    user: &AuthUser,
    kinds: &[PolicyKind],
    vhost: Option<&str>,
) -> Value {
    let visible = user.visible_vhosts(&state.broker);
    let mut all: Vec<PolicyDef> = state
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| visible.contains(&v.name) && vhost.is_none_or(|o| o == &*v.name))
        .flat_map(|v| {
            kinds
                .iter()
                .flat_map(move |k| v.policies(*k))
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Value::Array(all.iter().map(parameter_json).collect())
}

/// GET `/api/parameters`: every parameter but policies (which have their own endpoint).
pub async fn list(State(state): State<AppState>, user: AuthUser) -> Response {
    Json(parameters(
        &state,
        &user,
        &[PolicyKind::OperatorPolicy],
        None,
    ))
    .into_response()
}

pub async fn of_component(
    State(state): State<AppState>,
    user: AuthUser,
    Path(component): Path<String>,
) -> ApiResult<Response> {
    let kinds: Vec<PolicyKind> = component_kind(&component).into_iter().collect();
    Ok(Json(parameters(&state, &user, &kinds, None)).into_response())
}

pub async fn of_component_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path((component, vhost)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.check_vhost_visible(&state.broker, &vhost)?;
    let kinds: Vec<PolicyKind> = component_kind(&component).into_iter().collect();
    Ok(Json(parameters(&state, &user, &kinds, Some(&vhost))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    user.check_vhost_visible(&state.broker, &vhost)?;
    let kind = component_kind(&component).ok_or(ApiError::NotFound)?;
    let v = state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let def = v.policy(kind, &name).ok_or(ApiError::NotFound)?;
    Ok(Json(parameter_json(&def)).into_response())
}

/// PUT `{"value": {...}}`: for the two policy components, the same as their own endpoints;
/// any other component is one of a plugin Warren does not have.
pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let Some(kind) = component_kind(&component) else {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\ncomponent {component} not found\n"
        )));
    };
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    let value = body
        .get("value")
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))?;
    let v = state
        .broker
        .vhost(&vhost)
        .ok_or_else(|| ApiError::NotFoundReason("vhost_not_found".into()))?;
    let def = PolicyDef::from_json(&vhost, &name, kind, value)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(created_or_existed(v.set_policy(def)?))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let kind = component_kind(&component).ok_or(ApiError::NotFound)?;
    let v = state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    if !v.clear_policy(kind, &name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
