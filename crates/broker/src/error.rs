//! AMQP errors as the broker raises them: a reply code and RabbitMQ's text.

use std::fmt;

use thiserror::Error;

/// The reply codes Warren sends, with the names RabbitMQ prefixes its reply texts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCode {
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the connection; soft ones close only the channel.
    pub fn closes_connection(self) -> bool {
        !matches!(
            self,
            ReplyCode::ContentTooLarge
                | ReplyCode::NoRoute
                | ReplyCode::NoConsumers
                | ReplyCode::AccessRefused
                | ReplyCode::NotFound
                | ReplyCode::ResourceLocked
                | ReplyCode::PreconditionFailed
        )
    }
}

/// An error to report to the client: RabbitMQ formats the text as `NAME - detail`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct AmqpError {
    pub code: ReplyCode,
    pub detail: String,
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} - {}", self.code.name(), self.detail)
    }
}

impl AmqpError {
    pub fn new(code: ReplyCode, detail: impl Into<String>) -> Self {
        AmqpError {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, detail)
    }

    pub fn access_refused(detail: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, detail)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, detail)
    }

    pub fn resource_locked(detail: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, detail)
    }

    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotImplemented, detail)
    }

    /// The reply text as sent on the wire.
    pub fn reply_text(&self) -> String {
        self.to_string()
    }
}

pub type AmqpResult<T> = Result<T, AmqpError>;

/// RabbitMQ's way of naming a resource in error texts: `queue 'q' in vhost '/'`.
pub fn resource(kind: &str, name: &impl fmt::Display, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}
