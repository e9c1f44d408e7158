//! The `/api` routes, one module per resource as RabbitMQ's management plugin has them.

pub mod bindings;
pub mod connections;
pub mod definitions;
pub mod exchanges;
pub mod limits;
pub mod overview;
pub mod parameters;
pub mod permissions;
pub mod policies;
pub mod queues;
pub mod topic_permissions;
pub mod users;
pub mod vhosts;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::Value;
use warren_broker::vhost::DEFAULT_EXCHANGE_ALIAS;
use warren_broker::VHost;
use warren_protocol::ShortStr;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    use bindings as b;
    use connections as c;
    use definitions as d;
    use exchanges as e;
    use limits as lim;
    use overview as o;
    use parameters as par;
    use permissions as p;
    use policies::operator_policies as op;
    use policies::user_policies as pol;
    use queues as q;
    use topic_permissions as tp;
    use users as u;
    use vhosts as v;
    Router::new()
        .route("/api/overview", get(o::overview))
        .route("/api/whoami", get(o::whoami))
        .route(
            "/api/cluster-name",
            get(par::cluster_name_show).put(par::cluster_name_put),
        )
        .route("/api/nodes", get(o::nodes))
        .route("/api/nodes/{node}", get(o::node))
        .route("/api/nodes/{node}/memory", get(o::node_memory))
        // Warren has no feature flags (nothing to enable) and nothing deprecated in use.
        .route("/api/feature-flags", get(o::empty_list))
        .route("/api/deprecated-features", get(o::empty_list))
        .route("/api/deprecated-features/used", get(o::empty_list))
        .route("/api/vhost-limits", get(lim::vhost_list))
        .route("/api/vhost-limits/{vhost}", get(lim::vhost_show))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(lim::vhost_put).delete(lim::vhost_delete),
        )
        .route("/api/user-limits", get(lim::user_list))
        .route("/api/user-limits/{user}", get(lim::user_show))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(lim::user_put).delete(lim::user_delete),
        )
        .route("/api/extensions", get(o::empty_list))
        .route("/api/auth", get(o::auth_settings))
        .route("/api/parameters", get(par::list))
        .route("/api/parameters/{component}", get(par::of_component))
        .route(
            "/api/parameters/{component}/{vhost}",
            get(par::of_component_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(par::show).put(par::put).delete(par::delete),
        )
        .route("/api/policies", get(pol::list))
        .route("/api/policies/{vhost}", get(pol::list_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(pol::show).put(pol::put).delete(pol::delete),
        )
        .route("/api/operator-policies", get(op::list))
        .route("/api/operator-policies/{vhost}", get(op::list_vhost))
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(op::show).put(op::put).delete(op::delete),
        )
        .route("/api/global-parameters", get(par::global_list_handler))
        .route(
            "/api/global-parameters/{name}",
            get(par::global_show)
                .put(par::global_put)
                .delete(par::global_delete),
        )
        .route("/api/topic-permissions", get(tp::list))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(tp::show).put(tp::put).delete(tp::delete),
        )
        .route("/api/users/{user}/topic-permissions", get(tp::of_user))
        .route("/api/health/checks/alarms", get(o::health_alarms))
        .route("/api/health/checks/local-alarms", get(o::health_alarms))
        .route("/api/health/checks/virtual-hosts", get(o::health_ok))
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(o::health_ok),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(o::health_ok),
        )
        .route(
            "/api/health/checks/port-listener/{port}",
            get(o::health_port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(o::health_protocol_listener),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(o::health_certificates),
        )
        .route("/api/healthchecks/node", get(o::health_node))
        .route("/api/healthchecks/node/{node}", get(o::health_node_named))
        .route("/api/aliveness-test/{vhost}", get(o::aliveness_test))
        .route("/api/vhosts", get(v::list))
        .route(
            "/api/vhosts/{vhost}",
            get(v::show).put(v::put).delete(v::delete),
        )
        .route("/api/vhosts/{vhost}/permissions", get(p::of_vhost))
        .route("/api/vhosts/{vhost}/topic-permissions", get(tp::of_vhost))
        .route("/api/vhosts/{vhost}/connections", get(c::of_vhost))
        .route("/api/vhosts/{vhost}/channels", get(c::channels_of_vhost))
        .route("/api/users", get(u::list))
        .route(
            "/api/users/without-permissions",
            get(u::without_permissions),
        )
        .route("/api/users/bulk-delete", post(u::bulk_delete))
        .route(
            "/api/users/{user}",
            get(u::show).put(u::put).delete(u::delete),
        )
        .route("/api/users/{user}/permissions", get(p::of_user))
        .route("/api/permissions", get(p::list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(p::show).put(p::put).delete(p::delete),
        )
        .route("/api/exchanges", get(e::list))
        .route("/api/exchanges/{vhost}", get(e::list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(e::show).put(e::put).delete(e::delete),
        )
        .route("/api/exchanges/{vhost}/{name}/publish", post(e::publish))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(b::of_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(b::of_exchange_destination),
        )
        .route("/api/queues", get(q::list))
        .route("/api/queues/{vhost}", get(q::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(q::show).put(q::put).delete(q::delete),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(q::purge),
        )
        .route("/api/queues/{vhost}/{name}/get", post(q::get_messages))
        .route("/api/queues/{vhost}/{name}/bindings", get(b::of_queue))
        .route("/api/bindings", get(b::list))
        .route("/api/bindings/{vhost}", get(b::list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(b::between).post(b::create),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(b::show).delete(b::delete),
        )
        .route("/api/definitions", get(d::export).post(d::import))
        .route(
            "/api/definitions/{vhost}",
            get(d::export_vhost).post(d::import_vhost),
        )
        .route("/api/connections", get(c::list))
        .route(
            "/api/connections/username/{user}",
            get(c::of_user).delete(c::close_of_user),
        )
        .route("/api/connections/{name}", get(c::show).delete(c::close))
        .route(
            "/api/connections/{name}/channels",
            get(c::channels_of_connection),
        )
        .route("/api/channels", get(c::channels))
        .route("/api/channels/{name}", get(c::channel))
        .route("/api/consumers", get(c::consumers))
        .route("/api/consumers/{vhost}", get(c::consumers_of_vhost))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// A JSON request body; an empty body is `{}` (clients often send none with PUT).
pub fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

pub fn json(v: Value) -> Response {
    Json(v).into_response()
}

/// 201 when something was created, 204 when it existed (RabbitMQ's PUT answers).
pub fn created_or_existed(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The vhost a path names, if the user may see it (404 / 401 otherwise).
pub fn visible_vhost(state: &AppState, user: &AuthUser, name: &str) -> ApiResult<Arc<VHost>> {
    user.check_vhost_visible(&state.broker, name)?;
    state.broker.vhost(name).ok_or(ApiError::NotFound)
}

/// An exchange name from a path: the API calls the default exchange `amq.default`.
pub fn exchange_name(name: &str) -> ShortStr {
    if name == DEFAULT_EXCHANGE_ALIAS {
        ShortStr::from("")
    } else {
        ShortStr::from(name)
    }
}

/// Names longer than AMQP's short strings cannot exist.
pub fn name_arg(name: &str) -> ApiResult<ShortStr> {
    if name.len() > ShortStr::MAX_LEN {
        return Err(ApiError::bad_request("name is longer than 255 bytes"));
    }
    Ok(ShortStr::from(name))
}

/// `true` / `false` in query strings and JSON bodies (the web UI sends strings).
pub fn truthy(v: Option<&Value>, default: bool) -> ApiResult<bool> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!("not a boolean: {other}"))),
    }
}

/// `messages` and friends summed over some queues.
#[derive(Default, Clone, Copy)]
pub struct Totals {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u64,
}

pub fn vhost_totals(vhost: &VHost) -> Totals {
    let mut t = Totals::default();
    for q in vhost.queues() {
        let c = q.counts();
        t.ready += c.ready as u64;
        t.unacked += c.unacked as u64;
        t.consumers += c.consumers as u64;
    }
    t
}
