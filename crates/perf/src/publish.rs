//! A publish, encoded once: `basic.publish`, the content header and the body frames. Each
//! message is a copy of these bytes with the send time patched into the body, so the hot
//! loop of a producer is a `memcpy` and an 8-byte store per message.

use bytes::BytesMut;
use warren_protocol::{
    encode_body_frames, encode_content_header, encode_method_frame, BasicProperties, BasicPublish,
    Method, FRAME_HEADER_SIZE,
};

/// Class id of `basic`, the content class of a publish.
const BASIC_CLASS: u16 = 60;

#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    /// Offset of the first 8 body bytes, where the timestamp goes (bodies of 8 bytes or more).
    stamp_at: Option<usize>,
}

impl PublishTemplate {
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        persistent: bool,
        priority: Option<u8>,
        size: usize,
        frame_max: u32,
    ) -> PublishTemplate {
        let mut out = BytesMut::new();
        let publish = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        });
        encode_method_frame(&mut out, channel, &publish);
        // Like PerfTest: no properties at all for transient messages, delivery_mode 2 otherwise
        // (and the priority, with --priorities).
        let properties = BasicProperties {
            delivery_mode: persistent.then_some(2),
            priority,
            ..Default::default()
        };
        let mut encoded = BytesMut::new();
        properties.encode(&mut encoded);
        encode_content_header(&mut out, channel, BASIC_CLASS, size as u64, &encoded);
        let body_at = out.len() + FRAME_HEADER_SIZE;
        if size > 0 {
            encode_body_frames(&mut out, channel, &vec![0u8; size], frame_max);
        }
        PublishTemplate {
            bytes: out.to_vec(),
            stamp_at: (size >= 8).then_some(body_at),
        }
    }

    /// Encoded size of one message, frames included.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    #[cfg(test)]
    pub fn carries_timestamp(&self) -> bool {
        self.stamp_at.is_some()
    }

    /// Appends one message stamped with `stamp` (nanoseconds since the run's start).
    #[inline]
    pub fn write(&self, out: &mut BytesMut, stamp: u64) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(s) = self.stamp_at {
            out[at + s..at + s + 8].copy_from_slice(&stamp.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::{parse_frame, Frame};

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = parse_frame(&mut buf, 4096).unwrap() {
            out.push(f);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn messages_are_valid_frames_with_the_stamp_in_front() {
        let t = PublishTemplate::new(1, "perf.direct", "perf.q", false, None, 16, 4096);
        let mut out = BytesMut::new();
        t.write(&mut out, 0x0102_0304_0506_0708);
        t.write(&mut out, 42);
        assert_eq!(out.len(), 2 * t.encoded_len());
        let f = frames(&out);
        assert_eq!(f.len(), 6);
        match &f[0] {
            Frame::Method {
                channel: 1,
                method: Method::BasicPublish(p),
            } => {
                assert_eq!(p.exchange, "perf.direct");
                assert_eq!(p.routing_key, "perf.q");
            }
            other => panic!("{other:?}"),
        }
        match &f[1] {
            Frame::Header { header, .. } => {
                assert_eq!(header.body_size, 16);
                let props = BasicProperties::decode(&mut header.properties.clone()).unwrap();
                assert_eq!(props, BasicProperties::default());
            }
            other => panic!("{other:?}"),
        }
        match (&f[2], &f[5]) {
            (Frame::Body { payload: a, .. }, Frame::Body { payload: b, .. }) => {
                assert_eq!(&a[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
                assert_eq!(&a[8..], &[0; 8]);
                assert_eq!(&b[..8], &42u64.to_be_bytes());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn large_bodies_split_and_persistent_sets_delivery_mode() {
        let t = PublishTemplate::new(1, "", "q", true, None, 10_000, 4096);
        let mut out = BytesMut::new();
        t.write(&mut out, 7);
        let f = frames(&out);
        // Method, header, then 10000 bytes in 4088-byte pieces: 3 body frames.
        assert_eq!(f.len(), 5);
        match &f[1] {
            Frame::Header { header, .. } => {
                let props = BasicProperties::decode(&mut header.properties.clone()).unwrap();
                assert_eq!(props.delivery_mode, Some(2));
            }
            other => panic!("{other:?}"),
        }
        match &f[2] {
            Frame::Body { payload, .. } => assert_eq!(&payload[..8], &7u64.to_be_bytes()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tiny_and_empty_bodies_carry_no_stamp() {
        let t = PublishTemplate::new(1, "x", "k", false, None, 4, 4096);
        assert!(!t.carries_timestamp());
        let mut out = BytesMut::new();
        t.write(&mut out, u64::MAX);
        match &frames(&out)[2] {
            Frame::Body { payload, .. } => assert_eq!(&payload[..], &[0; 4]),
            other => panic!("{other:?}"),
        }
        let empty = PublishTemplate::new(1, "x", "k", false, None, 0, 4096);
        let mut out = BytesMut::new();
        empty.write(&mut out, 1);
        assert_eq!(frames(&out).len(), 2);
    }
}
