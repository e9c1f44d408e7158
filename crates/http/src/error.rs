//! Errors as the management API answers them: RabbitMQ's status codes and
//! `{"error": ..., "reason": ...}` bodies.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warren_broker::{AmqpError, ReplyCode};

#[derive(Debug)]
pub enum ApiError {
    /// 401, with the `WWW-Authenticate` challenge.
    NotAuthorised(String),
    /// 404 `Object Not Found`: the resource the path names does not exist.
    NotFound,
    /// 404 `not_found` with a reason: something the request refers to does not exist.
    NotFoundReason(String),
    /// 400 `bad_request`.
    BadRequest(String),
    /// 405, for methods a path does not take.
    MethodNotAllowed,
    /// 500, for what should not happen.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::BadRequest(reason.into())
    }

    pub fn not_authorised(reason: impl Into<String>) -> Self {
        ApiError::NotAuthorised(reason.into())
    }
}

/// As RabbitMQ's management plugin maps the channel errors it meets while doing what was
/// asked: 404 NOT_FOUND stays a 404, 403 ACCESS_REFUSED becomes 401, anything else is a 400
/// whose reason is the reply code and text (`406 PRECONDITION_FAILED - inequivalent arg ...`).
impl From<AmqpError> for ApiError {
    fn from(e: AmqpError) -> Self {
        match e.code {
            ReplyCode::NotFound => ApiError::NotFoundReason(e.reply_text()),
            ReplyCode::AccessRefused => ApiError::NotAuthorised(e.reply_text()),
            // The broker could not store the change (a full disk): not the request's fault.
            ReplyCode::InternalError => ApiError::Internal(e.reply_text()),
            _ => ApiError::BadRequest(format!("{} {}", e.code.code(), e.reply_text())),
        }
    }
}

/// A definition change that could not be stored: nothing was changed.
impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(format!("cannot store the change: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, reason) = match self {
            ApiError::NotAuthorised(reason) => (StatusCode::UNAUTHORIZED, "not_authorised", reason),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Object Not Found",
                "Not Found".to_string(),
            ),
            ApiError::NotFoundReason(reason) => (StatusCode::NOT_FOUND, "not_found", reason),
            ApiError::BadRequest(reason) => (StatusCode::BAD_REQUEST, "bad_request", reason),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed".to_string(),
            ),
            ApiError::Internal(reason) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", reason)
            }
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "error": error, "reason": reason }).to_string(),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}
