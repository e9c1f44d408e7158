//! Warren's broker model: vhosts, exchanges and their routing, queues, consumers, deliveries,
//! acks, prefetch and permissions.
//!
//! It knows nothing about sockets or HTTP. Callers hand it decoded commands; queues hand
//! deliveries to consumers through a [`queue::ChannelOutbox`], whatever serves that channel.

pub mod alarms;
pub mod auth;
mod broker;
pub mod clock;
pub mod dead_letter;
pub mod error;
pub mod exchange;
pub mod limits;
pub mod message;
pub mod metadata;
pub mod names;
pub mod persistence;
pub mod policy;
pub mod publish;
pub mod queue;
pub mod registry;
pub mod topic_permissions;
pub mod vhost;

pub use broker::{
    hostname, node_name, Broker, BrokerConfig, CLUSTER_NAME, DEFAULT_MAX_MESSAGE_SIZE,
};
pub use error::{AmqpError, AmqpResult, ReplyCode};
pub use message::Message;
pub use publish::{Published, Routes};
pub use queue::{
    ChannelOutbox, ConsumerSpec, Delivery, Enqueued, Outbound, Queue, QueueConfig, Queued,
    Settlement,
};
pub use vhost::VHost;

/// Identifies a client connection (exclusive queues belong to one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);
