//! list_connections, list_channels, list_consumers, close_connection.
//!
//! rabbitmqctl's `pid` columns hold the Erlang process that `close_connection` takes. Warren
//! has no processes; the API's connection and channel names play that part, so `pid` shows
//! the name and `close_connection` takes it.

use super::{api_error, arity, columns, Ctx, Verb};
use crate::client::quote;
use crate::error::{CliError, CliResult};
use crate::output::{col, col_at, Column};

const CONNECTION_COLUMNS: &[Column] = &[
    col_at("pid", "name"),
    col("name"),
    col("port"),
    col("host"),
    col("peer_port"),
    col("peer_host"),
    col("ssl"),
    col("state"),
    col("channels"),
    col("protocol"),
    col("auth_mechanism"),
    col("user"),
    col("vhost"),
    col("timeout"),
    col("frame_max"),
    col("channel_max"),
    col("client_properties"),
    col("recv_oct"),
    col("recv_cnt"),
    col("send_oct"),
    col("send_cnt"),
    col("send_pend"),
    col("connected_at"),
    col("node"),
];

pub const LIST_CONNECTIONS: Verb = Verb {
    name: "list_connections",
    usage: "list_connections [--no-table-headers] [<column> ...]",
    about: "Lists AMQP 0-9-1 connections (default columns: user peer_host peer_port state)",
    run: list_connections,
};

fn list_connections(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(
        LIST_CONNECTIONS.name,
        args,
        &["user", "peer_host", "peer_port", "state"],
        CONNECTION_COLUMNS,
    )?;
    ctx.list("Listing connections ...", "/api/connections", &cols)
}

const CHANNEL_COLUMNS: &[Column] = &[
    col_at("pid", "name"),
    col_at("connection", "connection_details.name"),
    col("name"),
    col("number"),
    col("user"),
    col("vhost"),
    col("transactional"),
    col("confirm"),
    col("consumer_count"),
    col("messages_unacknowledged"),
    col("messages_uncommitted"),
    col("acks_uncommitted"),
    col("messages_unconfirmed"),
    col("prefetch_count"),
    col("global_prefetch_count"),
];

pub const LIST_CHANNELS: Verb = Verb {
    name: "list_channels",
    usage: "list_channels [--no-table-headers] [<column> ...]",
    about: "Lists channels (default columns: pid user consumer_count messages_unacknowledged)",
    run: list_channels,
};

fn list_channels(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(
        LIST_CHANNELS.name,
        args,
        &["pid", "user", "consumer_count", "messages_unacknowledged"],
        CHANNEL_COLUMNS,
    )?;
    ctx.list("Listing channels ...", "/api/channels", &cols)
}

const CONSUMER_COLUMNS: &[Column] = &[
    col_at("queue_name", "queue.name"),
    col_at("channel_pid", "channel_details.name"),
    col("consumer_tag"),
    col("ack_required"),
    col("prefetch_count"),
    col("active"),
    col("activity_status"),
    col("arguments"),
];

pub const LIST_CONSUMERS: Verb = Verb {
    name: "list_consumers",
    usage: "list_consumers [-p <vhost>] [--no-table-headers] [<column> ...]",
    about: "Lists consumers of the queues of a vhost",
    run: list_consumers,
};

fn list_consumers(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(
        LIST_CONSUMERS.name,
        args,
        &[
            "queue_name",
            "channel_pid",
            "consumer_tag",
            "ack_required",
            "prefetch_count",
            "active",
            "arguments",
        ],
        CONSUMER_COLUMNS,
    )?;
    let banner = format!("Listing consumers on vhost {} ...", ctx.vhost());
    let path = format!("/api/consumers/{}", ctx.vhost_segment());
    ctx.list(&banner, &path, &cols)
}

pub const CLOSE: Verb = Verb {
    name: "close_connection",
    usage: "close_connection <connection name> <explanation>",
    about: "Closes a connection (320 CONNECTION_FORCED) with the reason given; \
            the name is list_connections' name (or pid) column",
    run: close,
};

fn close(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(CLOSE.name, args, 2, 2)?;
    let (name, reason) = (&args[0], &args[1]);
    ctx.out
        .banner(&format!("Closing connection {name}, reason: {reason}..."))?;
    let path = format!("/api/connections/{}", quote(name));
    ctx.client
        .delete(&path, &[("X-Reason", reason)])
        .map_err(|e| match e {
            CliError::Api { status: 404, .. } => {
                api_error(404, "not_found", format!("connection '{name}' not found"))
            }
            other => other,
        })
}
