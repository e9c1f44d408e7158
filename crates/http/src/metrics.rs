//! Prometheus metrics with the names of RabbitMQ's `rabbitmq_prometheus` plugin: aggregated at
//! `/metrics` (its default), one series per queue at `/metrics/per-object`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use warren_broker::queue::QueueCounts;

use crate::{system, AppState, RABBITMQ_COMPAT_VERSION};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
}

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family: its HELP and TYPE lines and its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[derive(Default, Clone, Copy)]
struct QueueSums {
    queues: u64,
    ready: u64,
    unacked: u64,
    consumers: u64,
    ready_bytes: u64,
    published: u64,
}

fn common(state: &AppState, out: &mut Out, sums: &QueueSums) {
    let broker = &state.broker;
    let t = broker.connections.totals();
    let (conn_opened, conn_closed, ch_opened, ch_closed) = broker.connections.churn();
    let labels = format!(
        "rabbitmq_version=\"{RABBITMQ_COMPAT_VERSION}\",product_name=\"Warren\",product_version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    out.family(
        "rabbitmq_build_info",
        "untyped",
        "RabbitMQ/Erlang/OTP versions",
    );
    out.sample("rabbitmq_build_info", &labels, 1);
    out.family(
        "rabbitmq_identity_info",
        "untyped",
        "RabbitMQ node & cluster identity info",
    );
    out.sample(
        "rabbitmq_identity_info",
        &format!(
            "rabbitmq_node=\"{}\",rabbitmq_cluster=\"{}\"",
            escape(&state.broker.config.node_name),
            escape(&state.broker.cluster_name())
        ),
        1,
    );
    out.single(
        "rabbitmq_connections",
        "gauge",
        "Connections currently open",
        broker.connections.len(),
    );
    out.single(
        "rabbitmq_channels",
        "gauge",
        "Channels currently open",
        broker.connections.channel_count(),
    );
    out.single("rabbitmq_queues", "gauge", "Queues available", sums.queues);
    out.single(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        sums.consumers,
    );
    out.single(
        "rabbitmq_connections_opened_total",
        "counter",
        "Total number of connections opened",
        conn_opened,
    );
    out.single(
        "rabbitmq_connections_closed_total",
        "counter",
        "Total number of connections closed or terminated",
        conn_closed,
    );
    out.single(
        "rabbitmq_channels_opened_total",
        "counter",
        "Total number of channels opened",
        ch_opened,
    );
    out.single(
        "rabbitmq_channels_closed_total",
        "counter",
        "Total number of channels closed",
        ch_closed,
    );
    let globals: [(&str, &str, u64); 10] = [
        ("received", "Total number of messages received from publishers", t.published),
        ("routed", "Total number of messages routed to queues or streams", t.routed),
        (
            "unroutable_dropped",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
            t.unroutable_dropped,
        ),
        (
            "unroutable_returned",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
            t.unroutable_returned,
        ),
        ("confirmed", "Total number of messages confirmed to publishers", t.confirmed),
        (
            "delivered",
            "Total number of messages delivered to consumers",
            t.delivered + t.delivered_no_ack + t.got + t.got_no_ack,
        ),
        (
            "delivered_consume_manual_ack",
            "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
            t.delivered,
        ),
        (
            "delivered_consume_auto_ack",
            "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
            t.delivered_no_ack,
        ),
        ("redelivered", "Total number of messages redelivered to consumers", t.redelivered),
        ("acknowledged", "Total number of message acknowledgements received from consumers", t.acked),
    ];
    for (name, help, value) in globals {
        let metric = format!("rabbitmq_global_messages_{name}_total");
        out.single(&metric, "counter", help, value);
    }
    out.single(
        "rabbitmq_global_messages_get_manual_ack_total",
        "counter",
        "Total number of messages fetched with basic.get in manual acknowledgement mode",
        t.got,
    );
    out.single(
        "rabbitmq_global_messages_get_auto_ack_total",
        "counter",
        "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        t.got_no_ack,
    );
    out.single(
        "rabbitmq_tcp_socket_received_bytes_total",
        "counter",
        "Total number of bytes received from clients",
        t.recv_oct,
    );
    out.single(
        "rabbitmq_tcp_socket_sent_bytes_total",
        "counter",
        "Total number of bytes sent to clients",
        t.send_oct,
    );
    out.single(
        "rabbitmq_process_resident_memory_bytes",
        "gauge",
        "Memory used in bytes",
        system::resident_memory(),
    );
    out.single(
        "rabbitmq_process_open_fds",
        "gauge",
        "Open file descriptors",
        system::open_fds(),
    );
    out.single(
        "rabbitmq_process_max_fds",
        "gauge",
        "Open file descriptors limit",
        system::max_fds(),
    );
    out.single(
        "rabbitmq_erlang_uptime_seconds",
        "gauge",
        "Node uptime",
        state.started.elapsed().as_secs(),
    );
}

/// One queue's numbers.
struct QueueRow {
    vhost: String,
    name: String,
    counts: QueueCounts,
    ready_bytes: u64,
    published: u64,
}

/// Every queue, with its vhost, and the sums over them.
fn queues(state: &AppState) -> (Vec<QueueRow>, QueueSums) {
    let mut rows = Vec::new();
    let mut sums = QueueSums::default();
    for vhost in state.broker.vhosts() {
        for q in vhost.queues() {
            let row = QueueRow {
                vhost: vhost.name.to_string(),
                name: crate::convert::short_str(&q.name),
                counts: q.counts(),
                ready_bytes: q.ready_bytes() as u64,
                published: q.stats.published.load(Ordering::Relaxed),
            };
            sums.queues += 1;
            sums.ready += row.counts.ready as u64;
            sums.unacked += row.counts.unacked as u64;
            sums.consumers += row.counts.consumers as u64;
            sums.ready_bytes += row.ready_bytes;
            sums.published += row.published;
            rows.push(row);
        }
    }
    (rows, sums)
}

async fn aggregated(State(state): State<AppState>) -> impl IntoResponse {
    let (_, sums) = queues(&state);
    let mut out = Out(String::with_capacity(8 * 1024));
    common(&state, &mut out, &sums);
    let families: [(&str, &str, &str, u64); 5] = [
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            sums.ready,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            sums.unacked,
        ),
        (
            "rabbitmq_queue_messages",
            "gauge",
            "Sum of ready and unacknowledged messages - total queue depth",
            sums.ready + sums.unacked,
        ),
        (
            "rabbitmq_queue_consumers",
            "gauge",
            "Consumers on a queue",
            sums.consumers,
        ),
        (
            "rabbitmq_queue_messages_ready_bytes",
            "gauge",
            "Size in bytes of ready messages",
            sums.ready_bytes,
        ),
    ];
    for (name, kind, help, value) in families {
        out.single(name, kind, help, value);
    }
    out.single(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        sums.published,
    );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0)
}

async fn per_object(State(state): State<AppState>) -> impl IntoResponse {
    let (rows, sums) = queues(&state);
    let mut out = Out(String::with_capacity(8 * 1024 + rows.len() * 600));
    common(&state, &mut out, &sums);
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "vhost=\"{}\",queue=\"{}\"",
                escape(&r.vhost),
                escape(&r.name)
            )
        })
        .collect();
    type Getter = fn(&QueueRow) -> u64;
    let families: [(&str, &str, &str, Getter); 6] = [
        (
            "rabbitmq_queue_messages_ready",
            "gauge",
            "Messages ready to be delivered to consumers",
            |r| r.counts.ready as u64,
        ),
        (
            "rabbitmq_queue_messages_unacked",
            "gauge",
            "Messages delivered to consumers but not yet acknowledged",
            |r| r.counts.unacked as u64,
        ),
        (
            "rabbitmq_queue_messages",
            "gauge",
            "Sum of ready and unacknowledged messages - total queue depth",
            |r| r.counts.ready as u64 + r.counts.unacked as u64,
        ),
        (
            "rabbitmq_queue_consumers",
            "gauge",
            "Consumers on a queue",
            |r| r.counts.consumers as u64,
        ),
        (
            "rabbitmq_queue_messages_ready_bytes",
            "gauge",
            "Size in bytes of ready messages",
            |r| r.ready_bytes,
        ),
        (
            "rabbitmq_queue_messages_published_total",
            "counter",
            "Total number of messages published to queues",
            |r| r.published,
        ),
    ];
    for (name, kind, help, get) in families {
        out.family(name, kind, help);
        for (r, l) in rows.iter().zip(&labels) {
            out.sample(name, l, get(r));
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0)
}
