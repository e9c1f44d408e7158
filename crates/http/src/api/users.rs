//! `/api/users[/{user}]`: administrators only.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use warren_broker::auth::{hash_password, User};
use warren_broker::limits::USER_LIMITS;

use super::vhosts::tag_list;
use super::{created_or_existed, json, no_content, parse_body};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::listing::{self, ListQuery, Listable};
use crate::AppState;

/// The only password hashing Warren verifies (and RabbitMQ's default since 3.6).
pub const HASHING_ALGORITHM: &str = "rabbit_password_hashing_sha256";

#[derive(Serialize)]
pub struct UserJson {
    pub name: String,
    pub password_hash: String,
    pub hashing_algorithm: &'static str,
    pub tags: Vec<String>,
    pub limits: Value,
}

impl Listable for UserJson {
    fn name(&self) -> &str {
        &self.name
    }
}

pub fn user_json(u: User) -> UserJson {
    UserJson {
        name: u.name,
        password_hash: u.password_hash,
        hashing_algorithm: HASHING_ALGORITHM,
        tags: u.tags,
        limits: serde_json::to_value(&u.limits).unwrap_or_default(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let items: Vec<UserJson> = state
        .broker
        .access
        .users()
        .into_iter()
        .map(user_json)
        .collect();
    listing::respond(items, &q)
}

pub async fn without_permissions(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Response> {
    user.require_admin()?;
    let perms = state.broker.access.all_permissions();
    let mut items: Vec<UserJson> = state
        .broker
        .access
        .users()
        .into_iter()
        .filter(|u| !perms.iter().any(|(_, name, _)| *name == u.name))
        .map(user_json)
        .collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(json(serde_json::to_value(items).unwrap_or_default()))
}

pub async fn show(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    let u = state.broker.access.user(&name).ok_or(ApiError::NotFound)?;
    Ok(json(serde_json::to_value(user_json(u)).unwrap_or_default()))
}

#[derive(Deserialize, Default)]
pub struct UserBody {
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub hashing_algorithm: Option<String>,
    pub tags: Option<Value>,
    /// In definitions files: the user's limits (`max-connections`, `max-channels`).
    pub limits: Option<Value>,
}

/// The user a PUT body (or a definitions entry) describes. `existing` keeps the password when
/// the body gives none.
pub fn user_from_body(name: &str, body: UserBody, existing: Option<User>) -> ApiResult<User> {
    if name.is_empty() {
        return Err(ApiError::bad_request("user name must not be empty"));
    }
    let password_hash = match (body.password, body.password_hash) {
        (Some(p), _) => hash_password(&p),
        (None, Some(h)) => {
            let algorithm = body
                .hashing_algorithm
                .as_deref()
                .unwrap_or(HASHING_ALGORITHM);
            if algorithm != HASHING_ALGORITHM {
                return Err(ApiError::bad_request(format!(
                    "unsupported hashing_algorithm {algorithm}: only {HASHING_ALGORITHM} is supported"
                )));
            }
            h
        }
        // No password: an existing user keeps theirs; a new one cannot log in with one.
        (None, None) => existing
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_default(),
    };
    let limits = match &body.limits {
        Some(value) => super::limits::parse_limits(value, USER_LIMITS)?,
        None => existing.map(|u| u.limits).unwrap_or_default(),
    };
    Ok(User {
        name: name.to_string(),
        password_hash,
        tags: tag_list(body.tags.as_ref())?,
        limits,
    })
}

pub async fn put(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: UserBody = parse_body(&body)?;
    let existing = state.broker.access.user(&name);
    let created = existing.is_none();
    let new = user_from_body(&name, body, existing)?;
    state.broker.access.put_user(new)?;
    Ok(created_or_existed(created))
}

pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    user.require_admin()?;
    if !state.broker.access.delete_user(&name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

#[derive(Deserialize)]
struct BulkDelete {
    users: Vec<String>,
}

pub async fn bulk_delete(
    State(state): State<AppState>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<Response> {
    user.require_admin()?;
    let body: BulkDelete = parse_body(&body)?;
    for name in body.users {
        state.broker.access.delete_user(&name)?;
    }
    Ok(no_content())
}
