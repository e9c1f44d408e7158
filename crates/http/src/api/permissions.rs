//! `/api/permissions[/{vhost}/{user}]`, `/api/users/{user}/permissions` and
//! `/api/vhosts/{vhost}/permissions`: administrators only.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use warren_broker::auth::Permissions;

use super::{created_or_existed, json, no_content, parse_body};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

#[derive(Serialize, Clone)]
pub struct PermissionJson {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// Every permission, filtered, sorted by vhost then user.
pub fn permissions(state: &AppState, keep: impl Fn(&str, &str) -> bool) -> Vec<PermissionJson> {
    let mut out: Vec<PermissionJson> = state
        .broker
        .access
        .all_permissions()
        .into_iter()
        .filter(|(v, u, _)| keep(v, u))
        .map(|(vhost, user, p)| PermissionJson {
            user,
            vhost,
            configure: p.configure.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.vhost.cmp(&b.vhost).then_with(|| a.user.cmp(&b.user)));
    out
}

fn listing(items: Vec<PermissionJson>) -> Response {
    json(serde_json::to_value(items).unwrap_or_default())
}

pub async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Response> {
    user.require_admin()?;
    Ok(listing(permissions(&state, |_, _| true)))
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
    Ok(listing(permissions(&state, |_, u| u == name)))
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
    Ok(listing(permissions(&state, |v, _| v == vhost)))
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let found = permissions(&state, |v, u| v == vhost && u == name);
    let p = found.into_iter().next().ok_or(ApiError::NotFound)?;
    Ok(json(serde_json::to_value(p).unwrap_or_default()))
}

#[derive(Deserialize)]
pub struct PermissionBody {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// Compiles the three patterns; a bad regex is a 400.
pub fn compile(body: &PermissionBody) -> ApiResult<Permissions> {
    Permissions::new(&body.configure, &body.write, &body.read)
        .map_err(|e| ApiError::bad_request(format!("invalid permission regex: {e}")))
}

pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: PermissionBody = parse_body(&body)?;
    let access = &state.broker.access;
    if state.broker.vhost(&vhost).is_none() {
        return Err(ApiError::bad_request(format!(
            "vhost '{vhost}' does not exist"
        )));
    }
    if access.user(&name).is_none() {
        return Err(ApiError::bad_request(format!(
            "user '{name}' does not exist"
        )));
    }
    let permissions = compile(&body)?;
    let created = access.permissions(&vhost, &name).is_none();
    access.set_permissions(&vhost, &name, permissions)?;
    Ok(created_or_existed(created))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.access.clear_permissions(&vhost, &name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}
