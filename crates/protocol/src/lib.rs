//! AMQP 0-9-1 as data: frames, methods, content headers and field tables.
//!
//! Sans-IO: everything here turns bytes into values and values into bytes. Decoding works on
//! [`bytes::Bytes`] so that strings and bodies are slices of the buffer that was read, never
//! copies. The method definitions are generated from RabbitMQ's spec JSON (see `codegen/`).

mod codec;
mod error;
mod frame;
#[rustfmt::skip]
mod generated;
mod short_str;
mod table;

pub use error::DecodeError;
pub use frame::{
    encode_basic_deliver, encode_body_frames, encode_content_header, encode_heartbeat,
    encode_method_frame, parse_frame, ContentHeader, Frame, FrameError, FRAME_END,
    FRAME_HEADER_SIZE, PROTOCOL_HEADER,
};
pub use generated::*;
pub use short_str::ShortStr;
pub use table::{FieldTable, FieldValue, MAX_NESTING};

pub use bytes::{Bytes, BytesMut};
