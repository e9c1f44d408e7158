//! add_vhost, delete_vhost, list_vhosts.

use super::{arity, columns, columns_query, no_such_vhost, Ctx, Verb};
use crate::client::quote;
use crate::error::CliResult;
use crate::output::{col, Column};

const COLUMNS: &[Column] = &[
    col("name"),
    col("description"),
    col("tags"),
    col("default_queue_type"),
    col("tracing"),
    col("messages"),
    col("messages_ready"),
    col("messages_unacknowledged"),
];

pub const LIST: Verb = Verb {
    name: "list_vhosts",
    usage: "list_vhosts [--no-table-headers] [<column> ...]",
    about: "Lists virtual hosts (default column: name)",
    run: list,
};

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    let cols = columns(LIST.name, args, &["name"], COLUMNS)?;
    let path = format!("/api/vhosts{}", columns_query(&cols));
    ctx.list("Listing vhosts ...", &path, &cols)
}

fn vhost_path(name: &str) -> String {
    format!("/api/vhosts/{}", quote(name))
}

pub const ADD: Verb = Verb {
    name: "add_vhost",
    usage: "add_vhost <vhost>",
    about: "Creates a virtual host (nothing happens if it exists)",
    run: add,
};

fn add(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(ADD.name, args, 1, 1)?;
    let name = &args[0];
    ctx.out.banner(&format!("Adding vhost \"{name}\" ..."))?;
    ctx.client.put(&vhost_path(name), &serde_json::json!({}))
}

pub const DELETE: Verb = Verb {
    name: "delete_vhost",
    usage: "delete_vhost <vhost>",
    about: "Deletes a virtual host and everything in it (its connections are closed)",
    run: delete,
};

fn delete(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(DELETE.name, args, 1, 1)?;
    let name = &args[0];
    ctx.out.banner(&format!("Deleting vhost \"{name}\" ..."))?;
    ctx.client
        .delete(&vhost_path(name), &[])
        .map_err(|e| match e {
            e if e.is_not_found() => no_such_vhost(name),
            other => other,
        })
}
