//! A published message as queues hold it.

use bytes::{Bytes, BytesMut};
use warren_protocol::{BasicProperties, ShortStr};

/// A message, shared by every queue it was routed to (`Arc<Message>`), never copied.
#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Property flags and list exactly as the publisher sent them, passed on to consumers as is.
    pub properties: Bytes,
    pub body: Bytes,
    /// delivery_mode = 2.
    pub persistent: bool,
    /// The `expiration` property in milliseconds (a per-message TTL), if it has a valid one.
    /// A publish with an invalid one is refused before it becomes a message
    /// (`parse_expiration`).
    pub expiration: Option<u64>,
}

/// Bodies up to this size are copied into one allocation together with the names and the
/// properties. A slice of the connection's read buffer would pin the whole buffer (tens of KiB)
/// for as long as the message waits in a queue; a copy of a small body is cheaper than that.
/// Larger bodies are kept as the slices they arrived in.
const INLINE_BODY_MAX: usize = 4096;

impl Message {
    /// Builds a message from a publish. Small messages end up in a single allocation.
    pub fn new(
        exchange: &ShortStr,
        routing_key: &ShortStr,
        properties: &Bytes,
        body: Bytes,
    ) -> Message {
        let persistent = delivery_mode(properties) == Some(2);
        let expiration = expiration_property(properties).and_then(|e| parse_expiration(&e).ok());
        if body.len() > INLINE_BODY_MAX {
            return Message {
                exchange: compact(exchange),
                routing_key: compact(routing_key),
                properties: Bytes::copy_from_slice(properties),
                body,
                persistent,
                expiration,
            };
        }
        let mut buf = BytesMut::with_capacity(
            exchange.len() + routing_key.len() + properties.len() + body.len(),
        );
        buf.extend_from_slice(exchange.as_bytes());
        buf.extend_from_slice(routing_key.as_bytes());
        buf.extend_from_slice(properties);
        buf.extend_from_slice(&body);
        let mut all = buf.freeze();
        let exchange = ShortStr::from_bytes(all.split_to(exchange.len()));
        let routing_key = ShortStr::from_bytes(all.split_to(routing_key.len()));
        let properties = all.split_to(properties.len());
        Message {
            exchange,
            routing_key,
            properties,
            body: all,
            persistent,
            expiration,
        }
    }

    /// Decodes the properties; only routing on headers and the rare paths need this.
    pub fn decode_properties(&self) -> BasicProperties {
        BasicProperties::decode(&mut self.properties.clone()).unwrap_or_default()
    }

    /// The message's log record context, in parts: `len u8 | exchange | len u8 | routing key |
    /// properties` (the properties run to the end). The store keeps it once for a run of
    /// records that share it; the body is the record's payload.
    pub fn log_context<'a>(&'a self, lengths: &'a mut [u8; 2]) -> [&'a [u8]; 5] {
        lengths[0] = self.exchange.len() as u8;
        lengths[1] = self.routing_key.len() as u8;
        [
            &lengths[0..1],
            self.exchange.as_bytes(),
            &lengths[1..2],
            self.routing_key.as_bytes(),
            &self.properties,
        ]
    }

    /// Rebuilds a message from a log record's context and payload (slices; no copy).
    pub fn from_log(mut context: Bytes, body: Bytes, persistent: bool) -> Option<Message> {
        let exchange = take_short(&mut context)?;
        let routing_key = take_short(&mut context)?;
        Some(Message {
            exchange,
            routing_key,
            properties: context,
            body,
            persistent,
            // A message read back from a queue's log has its expiry in the record instead.
            expiration: None,
        })
    }

    /// Cuts a payload of store format 1 (`len u8 | exchange | len u8 | routing key | len u32 |
    /// properties | body`) into a format 2 context and the body's range, for the migration.
    pub fn split_format1(payload: &[u8]) -> Option<(Vec<u8>, std::ops::Range<usize>)> {
        let short = |at: usize| -> Option<usize> {
            let len = *payload.get(at)? as usize;
            (payload.len() >= at + 1 + len).then_some(at + 1 + len)
        };
        let after_exchange = short(0)?;
        let after_key = short(after_exchange)?;
        let plen = u32::from_be_bytes(payload.get(after_key..after_key + 4)?.try_into().ok()?);
        let props_start = after_key + 4;
        let body_start = props_start.checked_add(plen as usize)?;
        let properties = payload.get(props_start..body_start)?;
        let mut context = Vec::with_capacity(after_key + properties.len());
        context.extend_from_slice(&payload[..after_key]);
        context.extend_from_slice(properties);
        Some((context, body_start..payload.len()))
    }

    /// Bytes the message occupies, for memory accounting.
    pub fn size(&self) -> usize {
        self.body.len() + self.properties.len() + self.exchange.len() + self.routing_key.len()
    }
}

fn take_short(p: &mut Bytes) -> Option<ShortStr> {
    use bytes::Buf;
    let len = *p.first()? as usize;
    if p.len() < 1 + len {
        return None;
    }
    p.advance(1);
    Some(ShortStr::from_bytes(p.split_to(len)))
}

fn compact(s: &ShortStr) -> ShortStr {
    ShortStr::from(s.as_bytes())
}

/// The `expiration` property, if there is one. The flags are looked at first, so that
/// messages without it (nearly all) cost no decoding.
pub fn expiration_property(properties: &[u8]) -> Option<ShortStr> {
    let flags = u16::from_be_bytes([*properties.first()?, *properties.get(1)?]);
    if flags & (1 << 8) == 0 {
        return None;
    }
    BasicProperties::decode(&mut Bytes::copy_from_slice(properties))
        .ok()?
        .expiration
}

/// The longest per-message TTL RabbitMQ accepts: ten years, in milliseconds.
const MAX_EXPIRATION: u64 = 315_360_000_000;

/// Parses an `expiration` property as RabbitMQ 3.10 does (Erlang's `string:to_integer`, then
/// range checks). The error is the term RabbitMQ prints in its 406 text: `no_integer`,
/// `{leftover_string,"..."}`, `{value_negative,-1}`, `{value_too_large,N}`.
pub fn parse_expiration(value: &ShortStr) -> Result<u64, String> {
    let bytes = value.as_bytes();
    let (negative, digits_from) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let digits = bytes[digits_from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err("no_integer".into());
    }
    let end = digits_from + digits;
    if end < bytes.len() {
        let rest = String::from_utf8_lossy(&bytes[end..]);
        return Err(format!("{{leftover_string,{rest:?}}}"));
    }
    // The integer as Erlang prints it: no sign, no leading zeros.
    let digits = std::str::from_utf8(&bytes[digits_from..end]).unwrap_or("0");
    let digits = match digits.trim_start_matches('0') {
        "" => "0",
        d => d,
    };
    if negative && digits != "0" {
        return Err(format!("{{value_negative,-{digits}}}"));
    }
    match digits.parse::<u64>() {
        Ok(ms) if ms <= MAX_EXPIRATION => Ok(ms),
        _ => Err(format!("{{value_too_large,{digits}}}")),
    }
}

/// Reads delivery_mode without decoding the other properties.
///
/// Properties are encoded in flag order; delivery_mode (flag bit 12) comes after content-type
/// (15), content-encoding (14) and headers (13), so only those need skipping.
pub fn delivery_mode(properties: &[u8]) -> Option<u8> {
    octet_property(properties, 12)
}

/// The `priority` property, read like `delivery_mode` (it is the field after it).
pub fn priority_property(properties: &[u8]) -> Option<u8> {
    octet_property(properties, 11)
}

/// The octet property behind flag `bit` (12: delivery-mode, 11: priority), found by skipping
/// the fields before it without decoding them.
fn octet_property(properties: &[u8], bit: u16) -> Option<u8> {
    let flags = u16::from_be_bytes([*properties.first()?, *properties.get(1)?]);
    if flags & (1 << bit) == 0 {
        return None;
    }
    let mut at = 2usize;
    // A continuation flag word would shift everything; basic never uses one, but be correct.
    if flags & 1 != 0 {
        let decoded = BasicProperties::decode(&mut Bytes::copy_from_slice(properties)).ok()?;
        return if bit == 12 {
            decoded.delivery_mode
        } else {
            decoded.priority
        };
    }
    for short_string in [15u16, 14] {
        if flags & (1 << short_string) != 0 {
            at += 1 + *properties.get(at)? as usize;
        }
    }
    if flags & (1 << 13) != 0 {
        let len = u32::from_be_bytes(properties.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4 + len;
    }
    if bit == 11 && flags & (1 << 12) != 0 {
        at += 1;
    }
    properties.get(at).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_protocol::{FieldTable, FieldValue};

    fn encode(p: &BasicProperties) -> Bytes {
        let mut b = BytesMut::new();
        p.encode(&mut b);
        b.freeze()
    }

    #[test]
    fn delivery_mode_is_found_behind_the_fields_before_it() {
        let mut headers = FieldTable::new();
        headers.insert("k", FieldValue::I32(1));
        let p = BasicProperties {
            content_type: Some("a/b".into()),
            content_encoding: Some("gzip".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(3),
            ..Default::default()
        };
        assert_eq!(delivery_mode(&encode(&p)), Some(2));
        assert_eq!(priority_property(&encode(&p)), Some(3));
        let alone = BasicProperties {
            priority: Some(7),
            ..Default::default()
        };
        assert_eq!(priority_property(&encode(&alone)), Some(7));
        assert_eq!(delivery_mode(&encode(&alone)), None);
        assert_eq!(
            priority_property(&encode(&BasicProperties::default())),
            None
        );
        assert_eq!(delivery_mode(&encode(&BasicProperties::default())), None);
        assert_eq!(
            delivery_mode(&[0x10]),
            None,
            "truncated input is not a panic"
        );
        assert_eq!(delivery_mode(&[0x10, 0]), None);
    }

    #[test]
    fn log_encoding_round_trips() {
        let props = encode(&BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        });
        let m = Message::new(
            &"ex".into(),
            &"key".into(),
            &props,
            Bytes::from_static(b"body"),
        );
        let mut lengths = [0u8; 2];
        let context: Vec<u8> = m.log_context(&mut lengths).concat();
        let back = Message::from_log(Bytes::from(context), m.body.clone(), true).unwrap();
        assert_eq!(
            (back.exchange, back.routing_key),
            ("ex".into(), "key".into())
        );
        assert_eq!(
            (back.properties, back.body),
            (m.properties.clone(), m.body.clone())
        );
        assert!(Message::from_log(Bytes::from_static(&[5, 1]), Bytes::new(), true).is_none());
    }

    #[test]
    fn a_format1_payload_splits_into_context_and_body() {
        // len u8 | exchange | len u8 | routing key | len u32 | properties | body
        let mut v1 = vec![2];
        v1.extend_from_slice(b"ex");
        v1.push(3);
        v1.extend_from_slice(b"key");
        v1.extend_from_slice(&3u32.to_be_bytes());
        v1.extend_from_slice(&[0x10, 0x00, 2]);
        v1.extend_from_slice(b"body");
        let (context, body) = Message::split_format1(&v1).unwrap();
        let m = Message::from_log(
            Bytes::from(context),
            Bytes::copy_from_slice(&v1[body]),
            true,
        )
        .unwrap();
        assert_eq!((m.exchange, m.routing_key), ("ex".into(), "key".into()));
        assert_eq!(
            (&m.properties[..], &m.body[..]),
            (&[0x10, 0x00, 2][..], &b"body"[..])
        );
        assert!(Message::split_format1(&v1[..9]).is_none(), "truncated");
    }

    #[test]
    fn small_messages_share_one_allocation() {
        let props = encode(&BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        });
        let m = Message::new(
            &"ex".into(),
            &"key".into(),
            &props,
            Bytes::from_static(b"hello"),
        );
        assert!(m.persistent);
        assert_eq!(m.exchange, "ex");
        assert_eq!(m.routing_key, "key");
        assert_eq!(&m.body[..], b"hello");
        assert_eq!(m.decode_properties().delivery_mode, Some(2));
    }

    #[test]
    fn expirations_parse_as_rabbitmq_reads_them() {
        let parse = |s: &str| parse_expiration(&ShortStr::from(s));
        assert_eq!(parse("60000"), Ok(60000));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("+5"), Ok(5));
        assert_eq!(parse("-0"), Ok(0));
        assert_eq!(parse("abc"), Err("no_integer".into()));
        assert_eq!(parse(""), Err("no_integer".into()));
        assert_eq!(parse("1.5"), Err("{leftover_string,\".5\"}".into()));
        assert_eq!(parse("-1"), Err("{value_negative,-1}".into()));
        assert_eq!(
            parse("315360000001"),
            Err("{value_too_large,315360000001}".into())
        );
        assert_eq!(parse("0315360000000"), Ok(315_360_000_000));
    }
}
