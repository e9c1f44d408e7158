//! Frames: the unit of the wire. Parsing is split mini-redis style: first check that a whole frame
//! is in the buffer (no allocation, no work for a partial frame), then take it out in one piece.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::codec::{get_u16, get_u64};
use crate::constants::{FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use crate::{DecodeError, Method, ShortStr};

/// What a client sends first: "AMQP", 0, then protocol 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Type (1), channel (2), payload size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
pub const FRAME_END: u8 = 0xCE;
/// Header plus end octet: what a frame costs beyond its payload.
const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;

/// A decoded frame. Payloads are slices of the read buffer, not copies.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method { channel: u16, method: Method },
    Header { channel: u16, header: ContentHeader },
    Body { channel: u16, payload: Bytes },
    Heartbeat { channel: u16 },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => *channel,
        }
    }
}

/// A content header frame. The properties stay encoded: the broker passes them through to
/// consumers untouched and decodes them only when it needs a value from them.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Property flags and property list, exactly as sent.
    pub properties: Bytes,
}

/// Why the byte stream is not a valid sequence of frames. All are connection errors.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FrameError {
    #[error("frame payload of {size} bytes exceeds the negotiated frame_max of {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("frame does not end with 0xCE (got {0:#04x})")]
    BadFrameEnd(u8),
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("cannot decode method on channel {channel}: {error}")]
    BadMethod { channel: u16, error: DecodeError },
    #[error("cannot decode content header on channel {channel}: {error}")]
    BadHeader { channel: u16, error: DecodeError },
}

/// Takes one whole frame off the front of `buf`, or returns `Ok(None)` if more bytes are needed.
///
/// `frame_max` is the negotiated maximum frame size; see the check below for how much payload
/// that admits.
pub fn parse_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let total = size + FRAME_OVERHEAD;
    // RabbitMQ's reader lets a payload of up to frame_max bytes through (its "fudge" of one
    // frame overhead), and clients that split bodies at frame_max rely on it; so does Warren.
    if frame_max != 0 && size > frame_max as usize {
        return Err(FrameError::TooLarge {
            size,
            max: frame_max,
        });
    }
    if buf.len() < total {
        // Reserve now so the next read lands in one allocation.
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let end = buf[total - 1];
    if end != FRAME_END {
        return Err(FrameError::BadFrameEnd(end));
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(FRAME_HEADER_SIZE);
    frame.truncate(size);
    let mut payload = frame;

    let frame = match kind {
        FRAME_METHOD => {
            let method = Method::decode(&mut payload)
                .map_err(|error| FrameError::BadMethod { channel, error })?;
            Frame::Method { channel, method }
        }
        FRAME_HEADER => {
            let header = decode_content_header(&mut payload)
                .map_err(|error| FrameError::BadHeader { channel, error })?;
            Frame::Header { channel, header }
        }
        FRAME_BODY => Frame::Body { channel, payload },
        FRAME_HEARTBEAT => Frame::Heartbeat { channel },
        other => return Err(FrameError::UnknownType(other)),
    };
    Ok(Some(frame))
}

fn decode_content_header(payload: &mut Bytes) -> Result<ContentHeader, DecodeError> {
    let class_id = get_u16(payload)?;
    let _weight = get_u16(payload)?;
    let body_size = get_u64(payload)?;
    // At least the flags word must be there.
    crate::codec::need(payload, 2)?;
    Ok(ContentHeader {
        class_id,
        body_size,
        properties: payload.clone(),
    })
}

/// Starts a frame of `kind` and returns where its size field is, to be patched by `end_frame`.
fn begin_frame(out: &mut BytesMut, kind: u8, channel: u16) -> usize {
    out.put_u8(kind);
    out.put_u16(channel);
    let at = out.len();
    out.put_u32(0);
    at
}

fn end_frame(out: &mut BytesMut, size_at: usize) {
    let size = (out.len() - size_at - 4) as u32;
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
}

/// A basic.deliver method frame written straight from borrowed names: the same bytes as
/// `encode_method_frame` with `Method::BasicDeliver`, without building (and refcounting) a
/// `Method` for every message delivered.
pub fn encode_basic_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &ShortStr,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &ShortStr,
    routing_key: &ShortStr,
) {
    out.reserve(
        FRAME_OVERHEAD + 4 + 3 + 9 + consumer_tag.len() + exchange.len() + routing_key.len(),
    );
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.put_u16(60);
    out.put_u16(60);
    put_short_str(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(u8::from(redelivered));
    put_short_str(out, exchange);
    put_short_str(out, routing_key);
    end_frame(out, at);
}

fn put_short_str(out: &mut BytesMut, s: &ShortStr) {
    out.put_u8(s.len() as u8);
    out.put_slice(s.as_bytes());
}

pub fn encode_method_frame(out: &mut BytesMut, channel: u16, method: &Method) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    method.encode(out);
    end_frame(out, at);
}

/// A content header frame with already-encoded properties (flags and list).
pub fn encode_content_header(
    out: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    properties: &[u8],
) {
    out.reserve(FRAME_OVERHEAD + 12 + properties.len());
    let at = begin_frame(out, FRAME_HEADER, channel);
    out.put_u16(class_id);
    out.put_u16(0); // weight: unused, always 0
    out.put_u64(body_size);
    out.put_slice(properties);
    end_frame(out, at);
}

/// The body split into frames that each fit in `frame_max`.
pub fn encode_body_frames(out: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    let chunk = (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1);
    out.reserve(body.len() + body.len().div_ceil(chunk) * FRAME_OVERHEAD);
    for piece in body.chunks(chunk) {
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(piece.len() as u32);
        out.put_slice(piece);
        out.put_u8(FRAME_END);
    }
}

pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BasicProperties, BasicPublish, FieldTable, FieldValue, QueueDeclare};

    fn parse_all(bytes: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(f) = parse_frame(&mut buf, 131072).unwrap() {
            frames.push(f);
        }
        assert!(buf.is_empty());
        frames
    }

    #[test]
    fn basic_deliver_written_directly_is_the_generated_encoding() {
        for (tag, redelivered, exchange, key) in [
            (1, false, "", "q"),
            (u64::MAX, true, "amq.topic", "a.b.c"),
            (7, false, "x", ""),
        ] {
            let consumer_tag = ShortStr::from("amq.ctag-123");
            let (exchange, routing_key) = (ShortStr::from(exchange), ShortStr::from(key));
            let mut direct = BytesMut::new();
            encode_basic_deliver(
                &mut direct,
                3,
                &consumer_tag,
                tag,
                redelivered,
                &exchange,
                &routing_key,
            );
            let mut generated = BytesMut::new();
            let method = Method::BasicDeliver(crate::BasicDeliver {
                consumer_tag,
                delivery_tag: tag,
                redelivered,
                exchange,
                routing_key,
            });
            encode_method_frame(&mut generated, 3, &method);
            assert_eq!(direct, generated);
        }
    }

    #[test]
    fn method_frame_golden_bytes() {
        let mut out = BytesMut::new();
        let m = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: true,
            immediate: false,
        });
        encode_method_frame(&mut out, 1, &m);
        assert_eq!(
            &out[..],
            &[1, 0, 1, 0, 0, 0, 10, 0, 60, 0, 40, 0, 0, 0, 1, b'q', 1, 0xCE]
        );
        assert_eq!(
            parse_all(&out),
            vec![Frame::Method {
                channel: 1,
                method: m
            }]
        );
    }

    #[test]
    fn bits_pack_into_one_octet() {
        let mut args = FieldTable::new();
        args.insert("x-max-length", FieldValue::I32(10));
        let m = Method::QueueDeclare(QueueDeclare {
            ticket: 0,
            queue: "jobs".into(),
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: true,
            nowait: false,
            arguments: args,
        });
        let mut out = BytesMut::new();
        m.encode(&mut out);
        // class, method, ticket, "jobs", then bits durable(1) | auto_delete(3).
        assert_eq!(out[11], 0b0000_1010);
        let mut b = out.freeze();
        assert_eq!(Method::decode(&mut b).unwrap(), m);
    }

    #[test]
    fn content_frames_round_trip_and_split_bodies() {
        let props = BasicProperties {
            content_type: Some("text/plain".into()),
            delivery_mode: Some(2),
            headers: Some(FieldTable::new()),
            ..Default::default()
        };
        let mut encoded_props = BytesMut::new();
        props.encode(&mut encoded_props);
        let body = vec![7u8; 300];
        let mut out = BytesMut::new();
        encode_content_header(&mut out, 3, 60, 300, &encoded_props);
        encode_body_frames(&mut out, 3, &body, 4096 / 32); // 128-byte frames: 120-byte pieces
        let frames = parse_all(&out);
        assert_eq!(frames.len(), 1 + 3);
        match &frames[0] {
            Frame::Header { channel: 3, header } => {
                assert_eq!(header.body_size, 300);
                let decoded = BasicProperties::decode(&mut header.properties.clone()).unwrap();
                assert_eq!(decoded, props);
            }
            other => panic!("unexpected {other:?}"),
        }
        let joined: Vec<u8> = frames[1..]
            .iter()
            .flat_map(|f| match f {
                Frame::Body { payload, .. } => payload.to_vec(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut out = BytesMut::new();
        encode_heartbeat(&mut out);
        for cut in 0..out.len() {
            let mut buf = BytesMut::from(&out[..cut]);
            assert_eq!(parse_frame(&mut buf, 4096).unwrap(), None);
        }
    }

    #[test]
    fn a_payload_of_exactly_frame_max_is_accepted_and_one_more_byte_is_not() {
        let frame_max = 4096u32;
        let mut out = BytesMut::new();
        let body = vec![7u8; frame_max as usize];
        encode_body_frames(&mut out, 1, &body, frame_max + FRAME_OVERHEAD as u32);
        let frame = parse_frame(&mut out, frame_max).unwrap().unwrap();
        assert!(matches!(frame, Frame::Body { payload, .. } if payload.len() == body.len()));
        let mut over = BytesMut::new();
        encode_body_frames(&mut over, 1, &[7u8; 4097], 4097 + FRAME_OVERHEAD as u32);
        assert_eq!(
            parse_frame(&mut over, frame_max),
            Err(FrameError::TooLarge {
                size: 4097,
                max: frame_max
            })
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut too_big = BytesMut::from(&[1u8, 0, 0, 0, 1, 0, 0][..]);
        assert!(matches!(
            parse_frame(&mut too_big, 4096),
            Err(FrameError::TooLarge { .. })
        ));
        let mut bad_end = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xAB][..]);
        assert_eq!(
            parse_frame(&mut bad_end, 4096),
            Err(FrameError::BadFrameEnd(0xAB))
        );
        let mut bad_type = BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(
            parse_frame(&mut bad_type, 4096),
            Err(FrameError::UnknownType(9))
        );
        let mut unknown = BytesMut::from(&[1u8, 0, 0, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE][..]);
        assert!(matches!(
            parse_frame(&mut unknown, 4096),
            Err(FrameError::BadMethod {
                error: DecodeError::UnknownMethod {
                    class_id: 99,
                    method_id: 1
                },
                ..
            })
        ));
    }
}
