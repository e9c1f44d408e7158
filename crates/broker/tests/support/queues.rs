//! Declaring a queue as a client would, for the broker's integration tests (each test binary
//! includes it with `#[path]` and uses what it needs of it).
#![allow(dead_code)]

use std::sync::Arc;

use warren_broker::vhost::QueueDeclare;
use warren_broker::{ConnectionId, Queue, QueueConfig, VHost};
use warren_protocol::FieldTable;

pub const CLIENT: ConnectionId = ConnectionId(1);

/// Declares (or redeclares) `name`, neither exclusive nor auto-delete.
pub fn declare(v: &VHost, name: &str, durable: bool, arguments: FieldTable) -> Arc<Queue> {
    v.declare_queue(
        CLIENT,
        QueueDeclare {
            name: name.into(),
            server_named: false,
            passive: false,
            config: QueueConfig {
                durable,
                exclusive: false,
                auto_delete: false,
                arguments,
            },
        },
    )
    .unwrap()
    .queue
}
