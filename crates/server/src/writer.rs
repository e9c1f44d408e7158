//! The connection's outgoing buffer. Everything a connection sends in one turn of its loop is
//! encoded here and written with one syscall.

use bytes::BytesMut;
use warren_broker::Message;
use warren_protocol::{
    encode_basic_deliver, encode_body_frames, encode_content_header, encode_heartbeat,
    encode_method_frame, Method, ShortStr,
};

/// Class id of `basic`, the only content class.
const BASIC_CLASS: u16 = 60;

/// Above this many buffered bytes, the connection writes before encoding more.
pub const FLUSH_THRESHOLD: usize = 256 * 1024;

pub struct Writer {
    pub buf: BytesMut,
    pub frame_max: u32,
}

impl Writer {
    pub fn new(frame_max: u32) -> Self {
        // No buffer until there is output: an idle connection holds none, a busy one grows
        // it to its turns' size once and keeps it while it stays busy.
        Writer {
            buf: BytesMut::new(),
            frame_max,
        }
    }

    /// Drops the buffer if it is empty and larger than `max` (a quiet connection's).
    pub fn shrink_to(&mut self, max: usize) {
        if self.buf.is_empty() && self.buf.capacity() > max {
            self.buf = BytesMut::new();
        }
    }

    pub fn method(&mut self, channel: u16, method: &Method) {
        encode_method_frame(&mut self.buf, channel, method);
    }

    /// A method followed by the message's content header and body frames.
    pub fn content(&mut self, channel: u16, method: &Method, message: &Message) {
        encode_method_frame(&mut self.buf, channel, method);
        self.content_frames(channel, message);
    }

    /// The content header and body frames of `message`.
    fn content_frames(&mut self, channel: u16, message: &Message) {
        encode_content_header(
            &mut self.buf,
            channel,
            BASIC_CLASS,
            message.body.len() as u64,
            &message.properties,
        );
        if !message.body.is_empty() {
            encode_body_frames(&mut self.buf, channel, &message.body, self.frame_max);
        }
    }

    /// basic.deliver and the message: `content` with the method written in place.
    pub fn delivery(
        &mut self,
        channel: u16,
        consumer_tag: &ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        message: &Message,
    ) {
        encode_basic_deliver(
            &mut self.buf,
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            &message.exchange,
            &message.routing_key,
        );
        self.content_frames(channel, message);
    }

    pub fn heartbeat(&mut self) {
        encode_heartbeat(&mut self.buf);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn wants_flush(&self) -> bool {
        self.buf.len() >= FLUSH_THRESHOLD
    }
}
