//! list_queues, purge_queue, delete_queue.

use crate::output::{col, Column};

use super::{api_error, arity, columns, columns_query, Ctx, Verb};
use crate::client::quote;
use crate::error::CliResult;

const COLUMNS: &[Column] = &[
    col("name"),
    col("durable"),
    col("auto_delete"),
    col("arguments"),
    col("policy"),
    // Not in rabbitmqctl 3.10 (its management API has them): what the policies set.
    col("operator_policy"),
    col("effective_policy_definition"),
    col("exclusive"),
    col("messages_ready"),
    col("messages_unacknowledged"),
    col("messages"),
    col("message_bytes_ready"),
    col("consumers"),
    col("consumer_utilisation"),
    col("memory"),
    col("state"),
    col("type"),
    col("vhost"),
];

pub const LIST: Verb = Verb {
    name: "list_queues",
    usage: "list_queues [-p <vhost>] [--no-table-headers] [<column> ...]",
    about: "Lists queues and their properties (default columns: name messages)",
    run: list,
};

/// rabbitmqctl prints the timeout as Elixir prints a float: `60.0`.
fn seconds(ctx: &Ctx) -> String {
    let s = ctx.options.timeout.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.1}")
    } else {
        format!("{s}")
    }
}

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(LIST.name, args, &["name", "messages"], COLUMNS)?;
    ctx.out
        .banner(&format!("Timeout: {} seconds ...", seconds(ctx)))?;
    let banner = format!("Listing queues for vhost {} ...", ctx.vhost());
    let path = format!(
        "/api/queues/{}{}",
        ctx.vhost_segment(),
        columns_query(&cols)
    );
    ctx.list(&banner, &path, &cols)
}

fn queue_path(ctx: &Ctx, name: &str) -> String {
    format!("/api/queues/{}/{}", ctx.vhost_segment(), quote(name))
}

fn not_found(ctx: &Ctx, name: &str) -> String {
    format!("queue '{name}' in vhost '{}' not found", ctx.vhost())
}

pub const PURGE: Verb = Verb {
    name: "purge_queue",
    usage: "purge_queue [-p <vhost>] <queue>",
    about: "Purges a queue (removes all messages in it)",
    run: purge,
};

fn purge(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(PURGE.name, args, 1, 1)?;
    let name = &args[0];
    ctx.out.banner(&format!(
        "Purging queue '{name}' in vhost '{}' ...",
        ctx.vhost()
    ))?;
    let path = format!("{}/contents", queue_path(ctx, name));
    ctx.client
        .delete(&path, &[])
        .map_err(|e| e.with_context(|| not_found(ctx, name)))
}

pub const DELETE: Verb = Verb {
    name: "delete_queue",
    usage: "delete_queue [-p <vhost>] <queue> [--if-empty|-e] [--if-unused|-u]",
    about: "Deletes a queue",
    run: delete,
};

fn delete(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(DELETE.name, args, 1, 1)?;
    let name = &args[0];
    if name.is_empty() {
        return Err(crate::error::CliError::Usage {
            message: "queue name cannot be empty string.".into(),
            verb: Some(DELETE.name),
        });
    }
    let mut conditions = Vec::new();
    if ctx.options.if_empty {
        conditions.push("if queue is empty ");
    }
    if ctx.options.if_unused {
        conditions.push("if queue is unused ");
    }
    ctx.out.banner(&format!(
        "Deleting queue '{name}' on vhost '{}' {}...",
        ctx.vhost(),
        conditions.join("and ")
    ))?;
    let path = queue_path(ctx, name);
    // The API's DELETE does not say how many messages went with the queue; ask first.
    let queue = ctx
        .client
        .get(&path)
        .map_err(|e| e.with_context(|| not_found(ctx, name)))?;
    let messages = queue.get("messages").and_then(|m| m.as_u64()).unwrap_or(0);
    let mut query = Vec::new();
    if ctx.options.if_empty {
        query.push("if-empty=true");
    }
    if ctx.options.if_unused {
        query.push("if-unused=true");
    }
    let path = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    ctx.client.delete(&path, &[]).map_err(|e| match e {
        crate::error::CliError::Api { status: 404, .. } => {
            api_error(404, "not_found", not_found(ctx, name))
        }
        other => other,
    })?;
    ctx.out.message(&format!(
        "Queue was successfully deleted with {messages} messages"
    ))
}
