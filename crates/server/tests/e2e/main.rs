//! End-to-end tests: a real Warren server on a loopback port, driven by the amqprs client and,
//! where a library cannot misbehave on purpose, by a raw socket. One binary for the whole suite
//! (one link instead of one per file); one module per area.

mod common;

mod alarms;
mod arguments;
mod basic;
mod confirms_tx_rpc;
mod consumer_timeout;
mod durability;
mod errors;
mod exchanges;
mod handshake;
mod heartbeat;
mod model;
mod permissions;
mod promises;
mod queues;
mod tls;
