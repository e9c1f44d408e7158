//! Walking a consumer's read buffer without decoding deliveries into values.
//!
//! A consumer needs three facts from the stream: the delivery tag of each `basic.deliver`, where
//! a message's body starts, and the first 8 bytes of that body (the send time). Decoding each
//! frame into a `Frame` would slice the buffer three or four times per message (reference-count
//! traffic) for names it never looks at, so those three frame kinds are read in place; anything
//! else, and anything malformed, goes through `warren_protocol::parse_frame`.

use bytes::{Buf, BytesMut};
use warren_protocol::constants::{FRAME_BODY, FRAME_HEADER, FRAME_METHOD};
use warren_protocol::{parse_frame, Frame, FrameError, FRAME_END, FRAME_HEADER_SIZE};

/// `basic.deliver`: class 60, method 60.
const BASIC_DELIVER: [u8; 4] = [0, 60, 0, 60];

#[derive(Debug, PartialEq)]
pub enum Scanned {
    Deliver {
        delivery_tag: u64,
    },
    Header {
        body_size: u64,
    },
    /// A body frame, with its first 8 bytes when it has that many.
    Body {
        head: Option<u64>,
    },
    Other(Frame),
}

/// Takes the next whole frame off `buf`, or `Ok(None)` if more bytes are needed.
#[inline]
pub fn next_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Scanned>, FrameError> {
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    let total = FRAME_HEADER_SIZE + size + 1;
    let fast = buf.len() >= total
        && buf[total - 1] == FRAME_END
        && (frame_max == 0 || total <= frame_max as usize);
    if fast {
        let payload = &buf[FRAME_HEADER_SIZE..FRAME_HEADER_SIZE + size];
        let scanned = match buf[0] {
            FRAME_METHOD if payload.len() >= 5 && payload[..4] == BASIC_DELIVER => {
                // consumer-tag (short string), then the delivery tag.
                let at = 5 + payload[4] as usize;
                payload.get(at..at + 8).map(|tag| Scanned::Deliver {
                    delivery_tag: u64::from_be_bytes(tag.try_into().expect("8 bytes")),
                })
            }
            // class (2), weight (2), body size (8), then properties.
            FRAME_HEADER if payload.len() >= 14 => Some(Scanned::Header {
                body_size: u64::from_be_bytes(payload[4..12].try_into().expect("8 bytes")),
            }),
            FRAME_BODY => Some(Scanned::Body {
                head: payload
                    .get(..8)
                    .map(|h| u64::from_be_bytes(h.try_into().expect("8 bytes"))),
            }),
            _ => None,
        };
        if let Some(s) = scanned {
            buf.advance(total);
            return Ok(Some(s));
        }
    }
    Ok(parse_frame(buf, frame_max)?.map(Scanned::Other))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::{
        encode_body_frames, encode_content_header, encode_heartbeat, encode_method_frame, BasicAck,
        BasicDeliver, Method,
    };

    fn deliver(out: &mut BytesMut, tag: u64, body: &[u8]) {
        let m = Method::BasicDeliver(BasicDeliver {
            consumer_tag: "perf-c1".into(),
            delivery_tag: tag,
            redelivered: false,
            exchange: "perf.direct".into(),
            routing_key: "perf.perf-q-1".into(),
        });
        encode_method_frame(out, 1, &m);
        encode_content_header(out, 1, 60, body.len() as u64, &[0, 0]);
        encode_body_frames(out, 1, body, 4096);
    }

    fn all(buf: &mut BytesMut) -> Vec<Scanned> {
        let mut out = Vec::new();
        while let Some(s) = next_frame(buf, 4096).unwrap() {
            out.push(s);
        }
        out
    }

    #[test]
    fn reads_tags_and_stamps_in_place() {
        let mut buf = BytesMut::new();
        let mut body = 77u64.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 8]);
        deliver(&mut buf, 1, &body);
        deliver(&mut buf, 2, b"tiny");
        encode_heartbeat(&mut buf);
        let ack = Method::BasicAck(BasicAck {
            delivery_tag: 5,
            multiple: true,
        });
        encode_method_frame(&mut buf, 1, &ack);
        assert_eq!(
            all(&mut buf),
            vec![
                Scanned::Deliver { delivery_tag: 1 },
                Scanned::Header { body_size: 16 },
                Scanned::Body { head: Some(77) },
                Scanned::Deliver { delivery_tag: 2 },
                Scanned::Header { body_size: 4 },
                Scanned::Body { head: None },
                Scanned::Other(Frame::Heartbeat { channel: 0 }),
                Scanned::Other(Frame::Method {
                    channel: 1,
                    method: ack
                }),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn waits_for_whole_frames() {
        let mut whole = BytesMut::new();
        deliver(&mut whole, 9, &[1; 16]);
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            let mut seen = 0;
            while next_frame(&mut buf, 4096).unwrap().is_some() {
                seen += 1;
            }
            // Every frame that fits is taken; the partial one stays for the next read.
            assert!(seen <= 2, "cut {cut}");
            buf.extend_from_slice(&whole[cut..]);
            let rest = all(&mut buf).len();
            assert_eq!(seen + rest, 3, "cut {cut}");
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0, 1, 0, 0xAB][..]);
        assert_eq!(
            next_frame(&mut buf, 4096),
            Err(FrameError::BadFrameEnd(0xAB))
        );
        // A deliver too short to hold its tag is left to the real decoder, which refuses it.
        let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 6, 0, 60, 0, 60, 0, 0, 0xCE][..]);
        assert!(matches!(
            next_frame(&mut buf, 4096),
            Err(FrameError::BadMethod { .. })
        ));
    }
}
