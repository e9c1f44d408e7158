//! `/api/policies[/{vhost}[/{name}]]` and `/api/operator-policies[/...]`, as RabbitMQ 3.10's
//! management plugin serves them: lists sorted by priority, PUT answering 201 for a new policy
//! and 204 for an update, validation failures as 400 with RabbitMQ's texts.
//!
//! Policies are for administrators and users tagged `policymaker` (in the vhosts they have
//! permissions in); operator policies for administrators.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Number, Value};
use warren_broker::policy::{PolicyDef, PolicyError, PolicyKind};

use super::{created_or_existed, no_content};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// A policy as the API shows it, in RabbitMQ's key order.
#[derive(Serialize)]
pub struct PolicyJson<'a> {
    vhost: &'a str,
    name: &'a str,
    pattern: &'a str,
    #[serde(rename = "apply-to")]
    apply_to: &'static str,
    definition: &'a Map<String, Value>,
    priority: &'a Number,
}

impl<'a> From<&'a PolicyDef> for PolicyJson<'a> {
    fn from(p: &'a PolicyDef) -> Self {
        PolicyJson {
            vhost: &p.vhost,
            name: &p.name,
            pattern: &p.pattern,
            apply_to: p.apply_to.as_str(),
            definition: &p.definition,
            priority: &p.priority,
        }
    }
}

/// Every policy of `kind` in the vhosts the user may see (or in `only`), lowest priority
/// first, as RabbitMQ lists them.
fn listing(state: &AppState, user: &AuthUser, kind: PolicyKind, only: Option<&str>) -> Response {
    let visible = user.visible_vhosts(&state.broker);
    let mut all: Vec<PolicyDef> = state
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| visible.contains(&v.name) && only.is_none_or(|o| o == &*v.name))
        .flat_map(|v| v.policies(kind))
        .collect();
    all.sort_by(|a, b| {
        let (pa, pb) = (a.priority.as_f64(), b.priority.as_f64());
        pa.partial_cmp(&pb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.vhost.cmp(&b.vhost))
            .then_with(|| a.name.cmp(&b.name))
    });
    let shown: Vec<PolicyJson> = all.iter().map(PolicyJson::from).collect();
    Json(shown).into_response()
}

/// Who may change policies of `kind` in `vhost`.
fn check_may_change(
    state: &AppState,
    user: &AuthUser,
    kind: PolicyKind,
    vhost: &str,
) -> ApiResult<()> {
    match kind {
        PolicyKind::OperatorPolicy => user.require_admin(),
        PolicyKind::Policy => {
            let in_vhost = state.broker.access.permissions(vhost, &user.name).is_some();
            if user.is_admin() || (user.has_tag("policymaker") && in_vhost) {
                Ok(())
            } else {
                Err(ApiError::not_authorised(
                    "User not authorised to access object",
                ))
            }
        }
    }
}

async fn list(state: AppState, user: AuthUser, kind: PolicyKind) -> Response {
    listing(&state, &user, kind, None)
}

async fn list_vhost(
    state: AppState,
    user: AuthUser,
    kind: PolicyKind,
    vhost: String,
) -> ApiResult<Response> {
    user.check_vhost_visible(&state.broker, &vhost)?;
    Ok(listing(&state, &user, kind, Some(&vhost)))
}

async fn show(
    state: AppState,
    user: AuthUser,
    kind: PolicyKind,
    (vhost, name): (String, String),
) -> ApiResult<Response> {
    user.check_vhost_visible(&state.broker, &vhost)?;
    let v = state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    let def = v.policy(kind, &name).ok_or(ApiError::NotFound)?;
    Ok(Json(PolicyJson::from(&def)).into_response())
}

async fn put(
    state: AppState,
    user: AuthUser,
    kind: PolicyKind,
    (vhost, name): (String, String),
    body: Bytes,
) -> ApiResult<Response> {
    check_may_change(&state, &user, kind, &vhost)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("not_json"))?;
    let v = state
        .broker
        .vhost(&vhost)
        .ok_or_else(|| ApiError::NotFoundReason("vhost_not_found".into()))?;
    let def = PolicyDef::from_json(&vhost, &name, kind, &body).map_err(|e| refused(kind, &e))?;
    Ok(created_or_existed(v.set_policy(def)?))
}

async fn delete(
    state: AppState,
    user: AuthUser,
    kind: PolicyKind,
    (vhost, name): (String, String),
) -> ApiResult<Response> {
    check_may_change(&state, &user, kind, &vhost)?;
    let v = state.broker.vhost(&vhost).ok_or(ApiError::NotFound)?;
    if !v.clear_policy(kind, &name)? {
        return Err(ApiError::NotFound);
    }
    Ok(no_content())
}

/// A 400 with RabbitMQ's reason. The policies endpoint escapes what looks like HTML in it
/// (`<<"abc">>` becomes `&lt;&lt;"abc"&gt;&gt;`); the operator policies one does not.
fn refused(kind: PolicyKind, e: &PolicyError) -> ApiError {
    let text = e.to_string();
    ApiError::bad_request(match kind {
        PolicyKind::Policy => text.replace('<', "&lt;").replace('>', "&gt;"),
        PolicyKind::OperatorPolicy => text,
    })
}

/// The handlers of one kind, for the router.
macro_rules! handlers {
    ($module:ident, $kind:expr) => {
        pub mod $module {
            use super::*;

            pub async fn list(State(state): State<AppState>, user: AuthUser) -> Response {
                super::list(state, user, $kind).await
            }

            pub async fn list_vhost(
                State(state): State<AppState>,
                user: AuthUser,
                Path(vhost): Path<String>,
            ) -> ApiResult<Response> {
                super::list_vhost(state, user, $kind, vhost).await
            }

            pub async fn show(
                State(state): State<AppState>,
                user: AuthUser,
                Path(path): Path<(String, String)>,
            ) -> ApiResult<Response> {
                super::show(state, user, $kind, path).await
            }

            pub async fn put(
                State(state): State<AppState>,
                user: AuthUser,
                Path(path): Path<(String, String)>,
                body: Bytes,
            ) -> ApiResult<Response> {
                super::put(state, user, $kind, path, body).await
            }

            pub async fn delete(
                State(state): State<AppState>,
                user: AuthUser,
                Path(path): Path<(String, String)>,
            ) -> ApiResult<Response> {
                super::delete(state, user, $kind, path).await
            }
        }
    };
}

handlers!(user_policies, PolicyKind::Policy);
handlers!(operator_policies, PolicyKind::OperatorPolicy);
