//! `/api/topic-permissions[/{vhost}/{user}]`, `/api/users/{user}/topic-permissions` and
//! `/api/vhosts/{vhost}/topic-permissions`: administrators only, as in RabbitMQ 3.10. A PUT
//! sets the permission of one exchange; a DELETE clears all of the user's in the vhost.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use warren_broker::topic_permissions::{TopicPermission, TopicPermissionDef};

use super::{created_or_existed, no_content, parse_body};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// As RabbitMQ shows one, in its key order.
#[derive(Serialize)]
pub struct TopicPermissionJson<'a> {
    user: &'a str,
    vhost: &'a str,
    exchange: &'a str,
    write: &'a str,
    read: &'a str,
}

impl<'a> From<&'a TopicPermissionDef> for TopicPermissionJson<'a> {
    fn from(p: &'a TopicPermissionDef) -> Self {
        TopicPermissionJson {
            user: &p.user,
            vhost: &p.vhost,
            exchange: &p.exchange,
            write: &p.write,
            read: &p.read,
        }
    }
}

/// Every topic permission `keep(vhost, user)` selects, sorted by vhost, user and exchange.
pub fn topic_permissions(
    state: &AppState,
    keep: impl Fn(&str, &str) -> bool,
) -> Vec<TopicPermissionDef> {
    state
        .broker
        .access
        .all_topic_permissions()
        .into_iter()
        .filter(|p| keep(&p.vhost, &p.user))
        .collect()
}

fn listing(items: &[TopicPermissionDef]) -> Response {
    let shown: Vec<TopicPermissionJson> = items.iter().map(TopicPermissionJson::from).collect();
    Json(shown).into_response()
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_admin()?;
    Ok(listing(&topic_permissions(&state, |_, _| true)))
}

pub async fn of_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if state.broker.access.user(&name).is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(listing(&topic_permissions(&state, |_, u| u == name)))
}

pub async fn of_vhost(
    State(state): State<AppState>,
    user: AuthUser,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(listing(&topic_permissions(&state, |v, _| v == vhost)))
}

/// A user's topic permissions in a vhost (a list: one per exchange); 404 if there are none.
pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let found = topic_permissions(&state, |v, u| v == vhost && u == name);
    if found.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(listing(&found))
}

#[derive(Deserialize)]
pub struct TopicPermissionBody {
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// Checks a body naming an existing vhost and user; a bad regex is a 400.
pub fn validated(
    state: &AppState,
    vhost: &str,
    user: &str,
    body: TopicPermissionBody,
) -> ApiResult<TopicPermissionDef> {
    if state.broker.vhost(vhost).is_none() {
        return Err(ApiError::bad_request(format!(
            "vhost '{vhost}' does not exist"
        )));
    }
    if state.broker.access.user(user).is_none() {
        return Err(ApiError::bad_request(format!(
            "user '{user}' does not exist"
        )));
    }
    let def = TopicPermissionDef {
        vhost: vhost.to_string(),
        user: user.to_string(),
        exchange: body.exchange,
        write: body.write,
        read: body.read,
    };
    TopicPermission::new(def.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid topic permission regex: {e}")))?;
    Ok(def)
}

pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: TopicPermissionBody = parse_body(&body)?;
    let def = validated(&state, &vhost, &name, body)?;
    let access = &state.broker.access;
    let created = !access
        .topic_permissions(&vhost, &name)
        .iter()
        .any(|p| p.def.exchange == def.exchange);
    access.set_topic_permission(def)?;
    Ok(created_or_existed(created))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state
        .broker
        .access
        .clear_topic_permissions(&vhost, &name, None)?
    {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
