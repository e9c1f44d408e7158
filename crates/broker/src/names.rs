//! Names the server makes up: `amq.gen-...` queues and `amq.ctag-...` consumer tags.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use warren_protocol::ShortStr;

fn random_suffix(prefix: &str) -> ShortStr {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut name);
    ShortStr::from(name)
}

/// Like RabbitMQ's: `amq.gen-` and 22 URL-safe base64 characters of randomness.
pub fn server_generated_queue_name() -> ShortStr {
    random_suffix("amq.gen-")
}

pub fn server_generated_consumer_tag() -> ShortStr {
    random_suffix("amq.ctag-")
}

/// The private queue behind a channel's direct reply-to consumer.
pub fn direct_reply_to_name() -> ShortStr {
    random_suffix("amq.rabbitmq.reply-to.")
}
