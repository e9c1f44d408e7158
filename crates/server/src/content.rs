//! Assembling a published message from its method, header and body frames.

use bytes::{Bytes, BytesMut};
use warren_protocol::{BasicPublish, ContentHeader};

/// A publish whose content is still arriving.
pub struct PendingContent {
    pub publish: BasicPublish,
    pub header: Option<ContentHeader>,
    /// The body when it arrives in one frame (the common case: no copy at all).
    single: Option<Bytes>,
    /// The body when it arrives in several frames.
    joined: Option<BytesMut>,
    pub received: u64,
}

pub enum Progress {
    NeedMore,
    Complete {
        publish: BasicPublish,
        properties: Bytes,
        body: Bytes,
    },
    /// More body bytes than the header announced.
    Overflow,
}

impl PendingContent {
    pub fn new(publish: BasicPublish) -> Self {
        PendingContent {
            publish,
            header: None,
            single: None,
            joined: None,
            received: 0,
        }
    }

    pub fn expected(&self) -> u64 {
        self.header.as_ref().map_or(0, |h| h.body_size)
    }

    /// Call after the header is set: an empty body completes at once.
    pub fn check_complete(&mut self) -> Progress {
        if self.received == self.expected() {
            let header = self.header.take().expect("header set before completion");
            let body = match (self.single.take(), self.joined.take()) {
                (_, Some(joined)) => joined.freeze(),
                (Some(single), None) => single,
                (None, None) => Bytes::new(),
            };
            let publish = std::mem::take(&mut self.publish);
            return Progress::Complete {
                publish,
                properties: header.properties,
                body,
            };
        }
        Progress::NeedMore
    }

    pub fn add_body(&mut self, payload: Bytes) -> Progress {
        self.received += payload.len() as u64;
        if self.received > self.expected() {
            return Progress::Overflow;
        }
        let expected = self.expected() as usize;
        match (&mut self.single, &mut self.joined) {
            (None, None) => self.single = Some(payload),
            (Some(first), None) => {
                // The announced size was checked against the maximum message size, so this
                // allocation is bounded.
                let mut joined = BytesMut::with_capacity(expected);
                joined.extend_from_slice(first);
                joined.extend_from_slice(&payload);
                self.single = None;
                self.joined = Some(joined);
            }
            (_, Some(joined)) => joined.extend_from_slice(&payload),
        }
        self.check_complete()
    }
}
