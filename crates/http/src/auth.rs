//! HTTP basic auth for every `/api` path, and what a user may see and do.
//!
//! As in RabbitMQ: the user must exist, the password must verify and the user must carry a
//! management tag. Administrators manage users, vhosts and permissions; administrators and
//! monitoring users see every vhost; other management users see only the vhosts they have
//! permissions in. Operations on resources inside a vhost (declare, delete, bind, publish,
//! get, purge) are checked against the user's permission regexes, whatever the tags, because
//! RabbitMQ performs them as that user over an internal AMQP connection.

use std::collections::HashSet;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tracing::info;
use warren_broker::auth::Access;
use warren_broker::vhost::DEFAULT_EXCHANGE_ALIAS;
use warren_broker::Broker;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Tags that let a user into the management API.
const MANAGEMENT_TAGS: &[&str] = &["management", "policymaker", "monitoring", "administrator"];

/// The authenticated user of a request.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub name: String,
    pub tags: Vec<String>,
}

fn has_tag(tags: &[String], tag: &str) -> bool {
    tags.iter().any(|t| t == tag)
}

/// `user:password` from an `Authorization: Basic ...` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some((name, password)) = basic_credentials(parts) else {
            return Err(ApiError::not_authorised("Login failed"));
        };
        let broker = &state.broker;
        let Some(user) = broker.access.authenticate(&name, &password) else {
            info!(user = %name, "HTTP access denied: invalid credentials");
            return Err(ApiError::not_authorised("Login failed"));
        };
        if broker.config.loopback_users.contains(&user.name) {
            let loopback = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback());
            if !loopback {
                info!(user = %name, "HTTP access denied: user can only log in via localhost");
                return Err(ApiError::not_authorised(
                    "User can only log in via localhost",
                ));
            }
        }
        if !user
            .tags
            .iter()
            .any(|t| MANAGEMENT_TAGS.contains(&t.as_str()))
        {
            info!(user = %name, "HTTP access denied: not a management user");
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(AuthUser {
            name: user.name,
            tags: user.tags,
        })
    }
}

/// The vhosts a user may look at.
pub enum Visible {
    All,
    Only(HashSet<String>),
}

impl Visible {
    pub fn contains(&self, vhost: &str) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(set) => set.contains(vhost),
        }
    }
}

impl AuthUser {
    pub fn has_tag(&self, tag: &str) -> bool {
        has_tag(&self.tags, tag)
    }

    pub fn is_admin(&self) -> bool {
        has_tag(&self.tags, "administrator")
    }

    /// Administrators and monitoring users see every vhost, connection and channel.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || has_tag(&self.tags, "monitoring")
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> ApiResult<()> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }

    pub fn visible_vhosts(&self, broker: &Broker) -> Visible {
        if self.is_monitor() {
            return Visible::All;
        }
        Visible::Only(
            broker
                .access
                .all_permissions()
                .into_iter()
                .filter(|(_, u, _)| *u == self.name)
                .map(|(v, _, _)| v)
                .collect(),
        )
    }

    /// For paths naming a vhost: 404 if it does not exist, 401 if the user may not see it.
    /// A user who may not see a vhost cannot tell whether it exists.
    pub fn check_vhost_visible(&self, broker: &Broker, vhost: &str) -> ApiResult<()> {
        let exists = broker.vhost(vhost).is_some();
        let allowed = self.is_monitor() || broker.access.permissions(vhost, &self.name).is_some();
        match (allowed, exists) {
            (true, true) => Ok(()),
            (true, false) => Err(ApiError::NotFound),
            (false, _) => Err(ApiError::not_authorised(
                "User not authorised to access virtual host",
            )),
        }
    }

    /// Whether the user's permission regexes allow `access` to a resource.
    pub fn check_permission(
        &self,
        broker: &Broker,
        vhost: &str,
        access: Access,
        kind: &str,
        name: &str,
    ) -> ApiResult<()> {
        let Some(permissions) = broker.access.permissions(vhost, &self.name) else {
            return Err(ApiError::not_authorised(format!(
                "access to vhost '{vhost}' refused for user '{}'",
                self.name
            )));
        };
        let resource = if kind == "exchange" && name.is_empty() {
            DEFAULT_EXCHANGE_ALIAS
        } else {
            name
        };
        if permissions.allows(access, resource) {
            Ok(())
        } else {
            Err(ApiError::not_authorised(format!(
                "ACCESS_REFUSED - {} access to {kind} '{resource}' in vhost '{vhost}' refused for user '{}'",
                access.as_str(),
                self.name
            )))
        }
    }
}
