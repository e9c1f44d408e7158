use std::borrow::Borrow;
use std::fmt;

use bytes::Bytes;

/// An AMQP short string: at most 255 bytes, shared rather than copied.
///
/// Names (queues, exchanges, routing keys, consumer tags) are short strings. AMQP does not
/// require UTF-8, and neither does RabbitMQ, so the bytes are kept as they came; `Display`
/// shows them lossily.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

impl ShortStr {
    pub const MAX_LEN: usize = 255;

    /// Wraps bytes that the decoder has already bounded by a length octet.
    pub(crate) fn from_bytes_unchecked(bytes: Bytes) -> Self {
        debug_assert!(bytes.len() <= Self::MAX_LEN);
        ShortStr(bytes)
    }

    /// Wraps bytes, truncating to 255 bytes (on a UTF-8 boundary where the input is UTF-8).
    ///
    /// Truncation is what the server wants for texts it composes (a reply text naming a
    /// 255-byte queue would otherwise not fit); names from clients never exceed the limit.
    pub fn from_bytes(bytes: Bytes) -> Self {
        if bytes.len() <= Self::MAX_LEN {
            return ShortStr(bytes);
        }
        let mut end = Self::MAX_LEN;
        if let Ok(s) = std::str::from_utf8(&bytes) {
            while !s.is_char_boundary(end) {
                end -= 1;
            }
        }
        ShortStr(bytes.slice(..end))
    }

    /// Wraps a static string. Longer than 255 bytes is a programming error, caught when it is
    /// built (at compile time in const contexts), never a wrapped length on the wire.
    pub const fn from_static(s: &'static str) -> Self {
        assert!(
            s.len() <= Self::MAX_LEN,
            "a short string is at most 255 bytes"
        );
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_bytes_shared(&self) -> &Bytes {
        &self.0
    }

    /// The string as UTF-8, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        self.0.starts_with(prefix)
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        ShortStr::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        ShortStr::from_bytes(Bytes::from(s))
    }
}

impl From<&[u8]> for ShortStr {
    fn from(s: &[u8]) -> Self {
        ShortStr::from_bytes(Bytes::copy_from_slice(s))
    }
}

impl Borrow<[u8]> for ShortStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}
