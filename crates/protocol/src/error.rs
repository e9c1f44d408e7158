use thiserror::Error;

/// Why a payload could not be decoded. The server maps these to connection errors
/// (502 SYNTAX_ERROR or 503 COMMAND_INVALID, as RabbitMQ does).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("payload ends in the middle of a field")]
    Truncated,
    #[error("unknown method {class_id}/{method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
    #[error("unknown field value type {0:?} in field table")]
    UnknownFieldType(u8),
}
