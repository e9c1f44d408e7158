//! `/api/vhost-limits[/{vhost}[/{name}]]` and `/api/user-limits[/{user}[/{name}]]`, as RabbitMQ
//! 3.10 serves them: lists of `{"vhost"|"user", "value": {limit: n}}` for those that have any,
//! a PUT of `{"value": n}` per limit, a DELETE per limit. Administrators only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use warren_broker::limits::{Limits, USER_LIMITS, VHOST_LIMITS};

use super::no_content;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Limits from JSON (`{"max-connections": 10}`), only the names `known` allows, integers only,
/// with RabbitMQ's texts.
pub fn parse_limits(value: &Value, known: &[&str]) -> ApiResult<Limits> {
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\n{value} is not a valid set of limits\n"
        )));
    };
    let mut limits = Limits::new();
    for (name, v) in map {
        limits.insert(name.clone(), limit_value(name, v, known)?);
    }
    Ok(limits)
}

fn limit_value(name: &str, v: &Value, known: &[&str]) -> ApiResult<i64> {
    if !known.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{v}}}] in limits\n"
        )));
    }
    v.as_i64().ok_or_else(|| {
        ApiError::bad_request(format!(
            "Validation failed\n\n{v} is not a valid value for limit {name}\n"
        ))
    })
}

fn limit_from_body(name: &str, body: &Bytes, known: &[&str]) -> ApiResult<i64> {
    let body: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::bad_request("not_json"))?;
    let value = body
        .get("value")
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))?;
    limit_value(name, value, known)
}

fn vhost_limits(state: &AppState, only: Option<&str>) -> Vec<Value> {
    let mut vhosts = state.broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    vhosts
        .iter()
        .filter(|v| only.is_none_or(|o| o == &*v.name))
        .map(|v| (v.name.clone(), v.definition().limits))
        .filter(|(_, limits)| !limits.is_empty())
        .map(|(name, limits)| json!({"vhost": &*name, "value": limits}))
        .collect()
}

pub async fn vhost_list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_admin()?;
    Ok(Json(vhost_limits(&state, None)).into_response())
}

pub async fn vhost_show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(vhost_limits(&state, Some(&vhost))).into_response())
}

pub async fn vhost_put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let value = limit_from_body(&name, &body, VHOST_LIMITS)?;
    if !state.broker.set_vhost_limit(&vhost, &name, Some(value))? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

pub async fn vhost_delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.set_vhost_limit(&vhost, &name, None)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

fn user_limits(state: &AppState, only: Option<&str>) -> Vec<Value> {
    let mut users = state.broker.access.users();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    users
        .into_iter()
        .filter(|u| only.is_none_or(|o| o == u.name) && !u.limits.is_empty())
        .map(|u| json!({"user": u.name, "value": u.limits}))
        .collect()
}

pub async fn user_list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_admin()?;
    Ok(Json(user_limits(&state, None)).into_response())
}

pub async fn user_show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if state.broker.access.user(&name).is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(Json(user_limits(&state, Some(&name))).into_response())
}

pub async fn user_put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((name, limit)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let value = limit_from_body(&limit, &body, USER_LIMITS)?;
    if !state
        .broker
        .access
        .set_user_limit(&name, &limit, Some(value))?
    {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

pub async fn user_delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((name, limit)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.access.set_user_limit(&name, &limit, None)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
