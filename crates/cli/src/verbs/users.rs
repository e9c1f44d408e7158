//! list_users, add_user, delete_user, change_password, set_user_tags.

use std::io::BufRead;

use serde_json::{json, Value};

use super::{api_error, arity, Ctx, Verb};
use crate::client::quote;
use crate::error::{CliError, CliResult};
use crate::output::{col, col_at, Column};

const COLUMNS: &[Column] = &[col_at("user", "name"), col("tags")];

pub const LIST: Verb = Verb {
    name: "list_users",
    usage: "list_users [--no-table-headers]",
    about: "Lists users and their tags",
    run: list,
};

fn list(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(LIST.name, args, 0, 0)?;
    ctx.list("Listing users ...", "/api/users", COLUMNS)
}

fn user_path(name: &str) -> String {
    format!("/api/users/{}", quote(name))
}

fn no_such_user(name: &str) -> CliError {
    api_error(
        404,
        "no_such_user",
        format!("User \"{name}\" does not exist"),
    )
}

/// The user as the API has it, or `no_such_user`.
fn existing(ctx: &Ctx, name: &str) -> CliResult<Value> {
    ctx.client.get(&user_path(name)).map_err(|e| match e {
        e if e.is_not_found() => no_such_user(name),
        other => other,
    })
}

/// The password argument, or (as rabbitmqctl does when it is left out) a line of stdin, so
/// that it need not appear in `ps` or the shell's history.
fn password(ctx: &mut Ctx, args: &[String], verb: &'static str) -> CliResult<String> {
    if let Some(p) = args.get(1) {
        return Ok(p.clone());
    }
    let mut line = String::new();
    std::io::BufReader::new(&mut *ctx.stdin)
        .read_line(&mut line)
        .map_err(|e| CliError::Data(format!("cannot read the password from stdin: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(CliError::Usage {
            message: "not enough arguments: give the password, or a line of stdin".into(),
            verb: Some(verb),
        });
    }
    Ok(line.to_string())
}

pub const ADD: Verb = Verb {
    name: "add_user",
    usage: "add_user <username> [<password>]",
    about: "Creates a user (the password is read from stdin when not given)",
    run: add,
};

fn add(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(ADD.name, args, 1, 2)?;
    let name = &args[0];
    if name.is_empty() {
        return Err(CliError::Usage {
            message: "user cannot be an empty string".into(),
            verb: Some(ADD.name),
        });
    }
    let password = password(ctx, args, ADD.name)?;
    ctx.out.banner(&format!("Adding user \"{name}\" ..."))?;
    // The API's PUT would replace an existing user; rabbitmqctl refuses to.
    match ctx.client.get(&user_path(name)) {
        Ok(_) => {
            return Err(api_error(
                409,
                "user_already_exists",
                format!("User \"{name}\" already exists"),
            ))
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    ctx.client
        .put(&user_path(name), &json!({"password": password, "tags": ""}))?;
    let prog = ctx.prog;
    ctx.out.message(&format!(
        "Done. Don't forget to grant the user permissions to some virtual hosts! \
         See '{prog} help set_permissions' to learn more."
    ))
}

pub const DELETE: Verb = Verb {
    name: "delete_user",
    usage: "delete_user <username>",
    about: "Removes a user, and their permissions",
    run: delete,
};

fn delete(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(DELETE.name, args, 1, 1)?;
    let name = &args[0];
    ctx.out.banner(&format!("Deleting user \"{name}\" ..."))?;
    ctx.client
        .delete(&user_path(name), &[])
        .map_err(|e| match e {
            e if e.is_not_found() => no_such_user(name),
            other => other,
        })
}

fn tags_of(user: &Value) -> Vec<String> {
    match user.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        // RabbitMQ before 3.9 answered a comma-separated string.
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

pub const CHANGE_PASSWORD: Verb = Verb {
    name: "change_password",
    usage: "change_password <username> [<password>]",
    about: "Changes a user's password (read from stdin when not given)",
    run: change_password,
};

fn change_password(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(CHANGE_PASSWORD.name, args, 1, 2)?;
    let name = &args[0];
    let password = password(ctx, args, CHANGE_PASSWORD.name)?;
    ctx.out
        .banner(&format!("Changing password for user \"{name}\" ..."))?;
    // A PUT sets the tags too: keep the ones the user has.
    let tags = tags_of(&existing(ctx, name)?);
    ctx.client.put(
        &user_path(name),
        &json!({"password": password, "tags": tags.join(",")}),
    )
}

pub const SET_TAGS: Verb = Verb {
    name: "set_user_tags",
    usage: "set_user_tags <username> [<tag> ...]",
    about: "Sets a user's tags (administrator, monitoring, policymaker, management); \
            none clears them",
    run: set_tags,
};

fn set_tags(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(SET_TAGS.name, args, 1, usize::MAX)?;
    let (name, tags) = (&args[0], &args[1..]);
    ctx.out.banner(&format!(
        "Setting tags for user \"{name}\" to [{}] ...",
        tags.join(", ")
    ))?;
    existing(ctx, name)?;
    // Without a password or hash the API keeps the user's password as it is.
    ctx.client
        .put(&user_path(name), &json!({"tags": tags.join(",")}))
}
