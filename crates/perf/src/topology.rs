//! Declaring the exchange, queues and bindings a scenario needs, and removing them afterwards
//! so that one run leaves nothing behind for the next (a leftover backlog would skew it).

use warren_protocol::*;

use crate::args::QueueArg;
use crate::client::Connection;
use crate::{Config, PerfError};

/// Exchanges we must not declare: the default one, and the broker's own `amq.*` (RabbitMQ
/// refuses to declare those names).
fn ours_to_declare(exchange: &str) -> bool {
    !exchange.is_empty() && !exchange.starts_with("amq.")
}

pub async fn declare(cfg: &Config, conn: &mut Connection) -> Result<(), PerfError> {
    if ours_to_declare(&cfg.exchange) {
        conn.rpc(
            Method::ExchangeDeclare(ExchangeDeclare {
                exchange: cfg.exchange.as_str().into(),
                kind: cfg.exchange_type.as_str().into(),
                durable: cfg.durable,
                ..Default::default()
            }),
            |m| matches!(m, Method::ExchangeDeclareOk(_)),
        )
        .await?;
    }
    for (i, queue) in cfg.queues.iter().enumerate() {
        conn.rpc(
            Method::QueueDeclare(QueueDeclare {
                queue: queue.as_str().into(),
                durable: cfg.durable,
                arguments: queue_arguments(cfg),
                ..Default::default()
            }),
            |m| matches!(m, Method::QueueDeclareOk(_)),
        )
        .await?;
        // A queue left over from an interrupted run may hold messages: start empty.
        conn.rpc(
            Method::QueuePurge(QueuePurge {
                queue: queue.as_str().into(),
                ..Default::default()
            }),
            |m| matches!(m, Method::QueuePurgeOk(_)),
        )
        .await?;
        if !cfg.exchange.is_empty() {
            conn.rpc(
                Method::QueueBind(QueueBind {
                    queue: queue.as_str().into(),
                    exchange: cfg.exchange.as_str().into(),
                    routing_key: cfg.binding_key(i).into(),
                    ..Default::default()
                }),
                |m| matches!(m, Method::QueueBindOk(_)),
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn delete(cfg: &Config, conn: &mut Connection) -> Result<(), PerfError> {
    for queue in &cfg.queues {
        conn.rpc(
            Method::QueueDelete(QueueDelete {
                queue: queue.as_str().into(),
                ..Default::default()
            }),
            |m| matches!(m, Method::QueueDeleteOk(_)),
        )
        .await?;
    }
    if ours_to_declare(&cfg.exchange) {
        conn.rpc(
            Method::ExchangeDelete(ExchangeDelete {
                exchange: cfg.exchange.as_str().into(),
                ..Default::default()
            }),
            |m| matches!(m, Method::ExchangeDeleteOk(_)),
        )
        .await?;
    }
    Ok(())
}

/// `--queue-args` as an AMQP table.
fn queue_arguments(cfg: &Config) -> FieldTable {
    let mut table = FieldTable::new();
    for (key, value) in &cfg.queue_args {
        let value = match value {
            QueueArg::Int(n) => FieldValue::I64(*n),
            QueueArg::Bool(b) => FieldValue::Bool(*b),
            QueueArg::Text(s) => FieldValue::from(s.as_str()),
        };
        table.insert(key.as_str(), value);
    }
    table
}
