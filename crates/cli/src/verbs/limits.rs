//! set_vhost_limits, clear_vhost_limits, list_vhost_limits and their user twins, through
//! `/api/vhost-limits` and `/api/user-limits` (which set and clear one limit at a time).

use serde_json::{json, Map, Value};

use super::permissions::no_such_user;
use super::{arity, no_such_vhost, Ctx, Verb};
use crate::client::quote;
use crate::error::{CliError, CliResult};
use crate::output::{col, Column};

/// A limits definition as rabbitmqctl takes it: a JSON object of names to integers.
fn parse_definition(text: &str) -> CliResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CliError::usage(format!(
            "the definition must be a JSON object, e.g. '{{\"max-connections\": 64}}': {text}"
        ))),
        Err(e) => Err(CliError::usage(format!(
            "the definition is not valid JSON ({e}): {text}"
        ))),
    }
}

/// The limits `path` (`/api/vhost-limits/v` or `/api/user-limits/u`) reports.
fn current(ctx: &Ctx, path: &str) -> CliResult<Map<String, Value>> {
    let listed = ctx.client.get(path)?;
    let value = listed
        .as_array()
        .and_then(|items| items.first())
        .and_then(|item| item.get("value"))
        .and_then(Value::as_object);
    Ok(value.cloned().unwrap_or_default())
}

fn put_each(ctx: &Ctx, path: &str, limits: &Map<String, Value>) -> CliResult<()> {
    for (name, value) in limits {
        ctx.client.put(
            &format!("{path}/{}", quote(name)),
            &json!({ "value": value }),
        )?;
    }
    Ok(())
}

fn delete_each<'a>(
    ctx: &Ctx,
    path: &str,
    names: impl Iterator<Item = &'a String>,
) -> CliResult<()> {
    for name in names {
        ctx.client.delete(&format!("{path}/{}", quote(name)), &[])?;
    }
    Ok(())
}

/// The limits of one vhost or user as rabbitmqctl prints them: a JSON object on one line.
fn print_one(ctx: &mut Ctx, limits: &Map<String, Value>) -> CliResult<()> {
    if limits.is_empty() {
        return Ok(());
    }
    ctx.out.raw(&format!("{}\n", Value::Object(limits.clone())))
}

/// Every vhost's or user's limits: `key` (vhost or user) and `limits` columns.
fn print_all(ctx: &mut Ctx, path: &str, key: &'static str) -> CliResult<()> {
    let listed = ctx.client.get(path)?;
    let rows: Vec<Value> = listed
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|item| {
            let value = item.get("value").cloned().unwrap_or(Value::Null);
            json!({ key: item.get(key), "limits": value.to_string() })
        })
        .collect();
    let columns: [Column; 2] = [col(key), col("limits")];
    ctx.out.rows(&columns, &rows)
}

fn vhost_path(ctx: &Ctx) -> String {
    format!("/api/vhost-limits/{}", ctx.vhost_segment())
}

/// A 404 from a limits path means the vhost (or user) itself is missing.
fn vhost_missing(vhost: &str) -> impl Fn(CliError) -> CliError + '_ {
    move |e| match e {
        e if e.is_not_found() => no_such_vhost(vhost),
        other => other,
    }
}

pub const SET_VHOST: Verb = Verb {
    name: "set_vhost_limits",
    usage: "set_vhost_limits [-p <vhost>] <definition>",
    about: "Sets the vhost's limits (max-connections, max-queues) to the JSON definition; \
            limits it leaves out are cleared, a negative value means no limit",
    run: set_vhost,
};

fn set_vhost(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(SET_VHOST.name, args, 1, 1)?;
    let limits = parse_definition(&args[0])?;
    let banner = format!(
        "Setting vhost limits to \"{}\" for vhost \"{}\" ...",
        args[0],
        ctx.vhost()
    );
    ctx.out.banner(&banner)?;
    let path = vhost_path(ctx);
    // rabbitmqctl replaces the vhost's whole set of limits.
    let old = current(ctx, &path).map_err(vhost_missing(ctx.options.vhost.as_str()))?;
    put_each(ctx, &path, &limits)?;
    delete_each(ctx, &path, old.keys().filter(|k| !limits.contains_key(*k)))
}

pub const CLEAR_VHOST: Verb = Verb {
    name: "clear_vhost_limits",
    usage: "clear_vhost_limits [-p <vhost>]",
    about: "Clears every limit of the vhost",
    run: clear_vhost,
};

fn clear_vhost(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(CLEAR_VHOST.name, args, 0, 0)?;
    let banner = format!("Clearing vhost \"{}\" limits ...", ctx.vhost());
    ctx.out.banner(&banner)?;
    let path = vhost_path(ctx);
    let old = current(ctx, &path).map_err(vhost_missing(ctx.options.vhost.as_str()))?;
    delete_each(ctx, &path, old.keys())
}

pub const LIST_VHOST: Verb = Verb {
    name: "list_vhost_limits",
    usage: "list_vhost_limits [-p <vhost>] [--global] [--no-table-headers]",
    about: "Shows the vhost's limits as JSON; with --global, every vhost that has limits",
    run: list_vhost,
};

fn list_vhost(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(LIST_VHOST.name, args, 0, 0)?;
    if ctx.options.global {
        ctx.out.banner("Listing limits for all vhosts ...")?;
        return print_all(ctx, "/api/vhost-limits", "vhost");
    }
    let banner = format!("Listing limits for vhost \"{}\" ...", ctx.vhost());
    ctx.out.banner(&banner)?;
    let limits =
        current(ctx, &vhost_path(ctx)).map_err(vhost_missing(ctx.options.vhost.as_str()))?;
    print_one(ctx, &limits)
}

fn user_path(user: &str) -> String {
    format!("/api/user-limits/{}", quote(user))
}

fn user_missing(user: &str) -> impl Fn(CliError) -> CliError + '_ {
    move |e| match e {
        e if e.is_not_found() => no_such_user(user),
        other => other,
    }
}

pub const SET_USER: Verb = Verb {
    name: "set_user_limits",
    usage: "set_user_limits <username> <definition>",
    about: "Sets the user's limits (max-connections, max-channels) named in the JSON \
            definition; others stay as they are, a negative value means no limit",
    run: set_user,
};

fn set_user(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(SET_USER.name, args, 2, 2)?;
    let (user, definition) = (&args[0], &args[1]);
    let limits = parse_definition(definition)?;
    ctx.out.banner(&format!(
        "Setting user limits to \"{definition}\" for user \"{user}\" ..."
    ))?;
    // Unlike vhost limits, rabbitmqctl merges these into the user's existing ones.
    put_each(ctx, &user_path(user), &limits).map_err(user_missing(user))
}

pub const CLEAR_USER: Verb = Verb {
    name: "clear_user_limits",
    usage: "clear_user_limits <username> <limit_type> | all",
    about: "Clears one limit of the user (max-connections or max-channels), or all of them",
    run: clear_user,
};

fn clear_user(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(CLEAR_USER.name, args, 2, 2)?;
    let (user, which) = (&args[0], &args[1]);
    let path = user_path(user);
    if which == "all" {
        ctx.out
            .banner(&format!("Clearing all limits for user \"{user}\" ..."))?;
        let old = current(ctx, &path).map_err(user_missing(user))?;
        return delete_each(ctx, &path, old.keys());
    }
    ctx.out.banner(&format!(
        "Clearing \"{which}\" limit for user \"{user}\" ..."
    ))?;
    delete_each(ctx, &path, std::iter::once(which)).map_err(user_missing(user))
}

pub const LIST_USER: Verb = Verb {
    name: "list_user_limits",
    usage: "list_user_limits [--user <username>] [--global]",
    about: "Shows a user's limits as JSON (guest unless --user names another); with \
            --global, every user that has limits",
    run: list_user,
};

fn list_user(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(LIST_USER.name, args, 0, 0)?;
    if ctx.options.global {
        ctx.out.banner("Listing limits for all users ...")?;
        return print_all(ctx, "/api/user-limits", "user");
    }
    let user = ctx
        .options
        .limits_user
        .as_deref()
        .unwrap_or("guest")
        .to_owned();
    ctx.out
        .banner(&format!("Listing limits for user \"{user}\" ..."))?;
    let limits = current(ctx, &user_path(&user)).map_err(user_missing(&user))?;
    print_one(ctx, &limits)
}
