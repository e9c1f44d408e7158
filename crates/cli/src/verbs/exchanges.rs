//! list_exchanges.

use super::{columns, columns_query, Ctx, Verb};
use crate::error::CliResult;
use crate::output::{col, Column};

const COLUMNS: &[Column] = &[
    col("name"),
    col("type"),
    col("durable"),
    col("auto_delete"),
    col("internal"),
    col("arguments"),
    col("policy"),
    col("vhost"),
];

pub const LIST: Verb = Verb {
    name: "list_exchanges",
    usage: "list_exchanges [-p <vhost>] [--no-table-headers] [<column> ...]",
    about: "Lists exchanges (default columns: name type)",
    run: list,
};

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(LIST.name, args, &["name", "type"], COLUMNS)?;
    let banner = format!("Listing exchanges for vhost {} ...", ctx.vhost());
    let path = format!(
        "/api/exchanges/{}{}",
        ctx.vhost_segment(),
        columns_query(&cols)
    );
    ctx.list(&banner, &path, &cols)
}
