//! list_bindings.

use serde_json::Value;

use super::{columns, Ctx, Verb};
use crate::error::CliResult;
use crate::output::{col, col_at, Column};

const COLUMNS: &[Column] = &[
    col_at("source_name", "source"),
    col("source_kind"),
    col_at("destination_name", "destination"),
    col_at("destination_kind", "destination_type"),
    col("routing_key"),
    col("arguments"),
    col("vhost"),
];

const DEFAULTS: &[&str] = &[
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
];

pub const LIST: Verb = Verb {
    name: "list_bindings",
    usage: "list_bindings [-p <vhost>] [--no-table-headers] [<column> ...]",
    about: "Lists bindings, the default exchange's implicit ones included",
    run: list,
};

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(LIST.name, args, DEFAULTS, COLUMNS)?;
    // No space before the dots: rabbitmqctl's own spelling of this one.
    ctx.out
        .banner(&format!("Listing bindings for vhost {}...", ctx.vhost()))?;
    let mut items = ctx
        .client
        .get(&format!("/api/bindings/{}", ctx.vhost_segment()))?;
    // Sources are always exchanges in AMQP 0-9-1; the API does not say so.
    if let Some(list) = items.as_array_mut() {
        for b in list.iter_mut().filter_map(Value::as_object_mut) {
            b.insert("source_kind".into(), "exchange".into());
        }
    }
    ctx.rows(&cols, &items)
}
