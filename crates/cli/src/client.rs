//! A small blocking client of the management HTTP API: basic auth, JSON in and out, and
//! errors turned into [`CliError`]s (no answer at all vs. an answer that says no).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use crate::error::{CliError, CliResult};

pub struct Client {
    base: String,
    authorization: String,
    agent: ureq::Agent,
}

/// Percent-encodes a path segment: everything but RFC 3986's unreserved characters, so that
/// the default vhost `/` becomes `%2F` and connection names (`a:1 -> b:2`) survive intact.
pub fn quote(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    pub fn new(host: &str, port: u16, username: &str, password: &str, timeout: Duration) -> Self {
        // A bare IPv6 address needs brackets in a URL.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("warrenctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            base: format!("http://{host}:{port}"),
            authorization: format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            ),
            agent,
        }
    }

    /// GET `path`, the JSON it answers.
    pub fn get(&self, path: &str) -> CliResult<Value> {
        let body = self.call("GET", path, None, None)?;
        serde_json::from_str(&body).map_err(|e| CliError::Api {
            status: 200,
            error: "bad_response".into(),
            reason: format!("GET {path} did not answer JSON: {e}"),
        })
    }

    /// GET `path`, the body as it came (definitions are written out byte for byte).
    pub fn get_text(&self, path: &str) -> CliResult<String> {
        self.call("GET", path, None, None)
    }

    pub fn put(&self, path: &str, body: &Value) -> CliResult<()> {
        self.call("PUT", path, Some(body.to_string()), None)
            .map(drop)
    }

    pub fn post(&self, path: &str, body: String) -> CliResult<String> {
        self.call("POST", path, Some(body), None)
    }

    /// DELETE `path`, with extra headers (`X-Reason` when closing a connection).
    pub fn delete(&self, path: &str, headers: &[(&str, &str)]) -> CliResult<()> {
        self.call("DELETE", path, None, Some(headers)).map(drop)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: Option<&[(&str, &str)]>,
    ) -> CliResult<String> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json");
        for (name, value) in headers.unwrap_or(&[]) {
            request = request.header(*name, *value);
        }
        let result = match body {
            Some(body) => {
                let request = request
                    .header("Content-Type", "application/json")
                    .body(body)
                    .map_err(|e| CliError::usage(format!("bad request to {url}: {e}")))?;
                self.agent.run(request)
            }
            None => {
                let request = request
                    .body(())
                    .map_err(|e| CliError::usage(format!("bad request to {url}: {e}")))?;
                self.agent.run(request)
            }
        };
        let mut response = result.map_err(|e| unreachable(&self.base, e))?;
        let status = response.status().as_u16();
        // Definitions of a large broker can exceed ureq's default 10 MB limit.
        let text = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(|e| unreachable(&self.base, e))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(api_error(status, &text))
    }
}

fn unreachable(base: &str, e: ureq::Error) -> CliError {
    let reason = match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    };
    CliError::Unreachable {
        url: base.to_string(),
        reason,
    }
}

/// The API's `{"error": ..., "reason": ...}`, or the status and body when it is not that.
fn api_error(status: u16, body: &str) -> CliError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let error = field("error").unwrap_or_else(|| format!("HTTP {status}"));
    let reason = field("reason").unwrap_or_else(|| {
        let body = body.trim();
        if body.is_empty() {
            format!("the API answered HTTP {status}")
        } else {
            format!("the API answered HTTP {status}: {body}")
        }
    });
    CliError::Api {
        status,
        error,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_vhosts_and_connection_names() {
        assert_eq!(quote("/"), "%2F");
        assert_eq!(quote("a b"), "a%20b");
        assert_eq!(
            quote("127.0.0.1:5000 -> 127.0.0.1:5672"),
            "127.0.0.1%3A5000%20-%3E%20127.0.0.1%3A5672"
        );
        assert_eq!(quote("é"), "%C3%A9");
    }

    #[test]
    fn api_errors_carry_the_reason() {
        let e = api_error(401, r#"{"error":"not_authorised","reason":"Login failed"}"#);
        assert_eq!(e.to_string(), "Login failed");
        assert_eq!(e.exit_code(), crate::error::EX_SOFTWARE);
        let e = api_error(502, "bad gateway");
        assert_eq!(e.to_string(), "the API answered HTTP 502: bad gateway");
    }
}
