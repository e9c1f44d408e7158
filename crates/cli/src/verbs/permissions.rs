//! set_permissions, clear_permissions, list_permissions, list_user_permissions.

use serde_json::json;

use super::{api_error, arity, no_such_vhost, Ctx, Verb};
use crate::client::quote;
use crate::error::{CliError, CliResult};
use crate::output::{col, Column};

fn permission_path(ctx: &Ctx, user: &str) -> String {
    format!("/api/permissions/{}/{}", ctx.vhost_segment(), quote(user))
}

pub(super) fn no_such_user(name: &str) -> CliError {
    api_error(
        404,
        "no_such_user",
        format!("User \"{name}\" does not exist"),
    )
}

pub const SET: Verb = Verb {
    name: "set_permissions",
    usage: "set_permissions [-p <vhost>] <username> <conf> <write> <read>",
    about: "Sets a user's configure, write and read permission patterns in a vhost",
    run: set,
};

fn set(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(SET.name, args, 4, 4)?;
    let user = &args[0];
    ctx.out.banner(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost()
    ))?;
    let body = json!({"configure": args[1], "write": args[2], "read": args[3]});
    ctx.client.put(&permission_path(ctx, user), &body)
}

pub const CLEAR: Verb = Verb {
    name: "clear_permissions",
    usage: "clear_permissions [-p <vhost>] <username>",
    about: "Revokes a user's permissions in a vhost",
    run: clear,
};

fn clear(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(CLEAR.name, args, 1, 1)?;
    let user = &args[0];
    ctx.out.banner(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{}\" ...",
        ctx.vhost()
    ))?;
    match ctx.client.delete(&permission_path(ctx, user), &[]) {
        Err(e) if e.is_not_found() => {
            // Nothing to clear is fine, as in rabbitmqctl, if both user and vhost exist.
            let vhost = format!("/api/vhosts/{}", ctx.vhost_segment());
            match ctx.client.get(&vhost) {
                Err(e) if e.is_not_found() => return Err(no_such_vhost(ctx.vhost())),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            match ctx.client.get(&format!("/api/users/{}", quote(user))) {
                Err(e) if e.is_not_found() => Err(no_such_user(user)),
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        }
        other => other,
    }
}

pub const LIST: Verb = Verb {
    name: "list_permissions",
    usage: "list_permissions [-p <vhost>] [--no-table-headers]",
    about: "Lists the permissions of the users of a vhost",
    run: list,
};

const VHOST_COLUMNS: &[Column] = &[col("user"), col("configure"), col("write"), col("read")];

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(LIST.name, args, 0, 0)?;
    let banner = format!("Listing permissions for vhost \"{}\" ...", ctx.vhost());
    let path = format!("/api/vhosts/{}/permissions", ctx.vhost_segment());
    let vhost = ctx.vhost().to_string();
    ctx.list(&banner, &path, VHOST_COLUMNS)
        .map_err(|e| match e {
            e if e.is_not_found() => no_such_vhost(&vhost),
            other => other,
        })
}

pub const LIST_USER: Verb = Verb {
    name: "list_user_permissions",
    usage: "list_user_permissions [--no-table-headers] <username>",
    about: "Lists a user's permissions in every vhost",
    run: list_user,
};

const USER_COLUMNS: &[Column] = &[col("vhost"), col("configure"), col("write"), col("read")];

fn list_user(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(LIST_USER.name, args, 1, 1)?;
    let user = &args[0];
    let banner = format!("Listing permissions for user \"{user}\" ...");
    let path = format!("/api/users/{}/permissions", quote(user));
    ctx.list(&banner, &path, USER_COLUMNS).map_err(|e| match e {
        e if e.is_not_found() => no_such_user(user),
        other => other,
    })
}
