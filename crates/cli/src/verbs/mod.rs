//! The verbs, one module per resource as the HTTP API has them, and the table that names
//! them. Each verb checks its arguments before it asks the broker anything, prints its
//! informational line, makes its calls and prints the result.

mod bindings;
mod connections;
mod definitions;
mod exchanges;
mod limits;
mod permissions;
mod policies;
mod queues;
mod status;
mod users;
mod vhosts;

use std::io::Read;

use serde_json::Value;

use crate::args::Options;
use crate::client::{quote, Client};
use crate::error::{CliError, CliResult};
use crate::output::{self, Column, Printer};

/// What a verb works with.
pub struct Ctx<'a> {
    pub client: Client,
    pub options: &'a Options,
    pub out: Printer<'a>,
    pub stdin: &'a mut dyn Read,
    /// How the user invoked us (`warrenctl` or `warren ctl`), for messages.
    pub prog: &'a str,
}

impl Ctx<'_> {
    /// The vhost of `-p`, as a path segment.
    pub fn vhost_segment(&self) -> String {
        quote(&self.options.vhost)
    }

    pub fn vhost(&self) -> &str {
        &self.options.vhost
    }

    /// A listing: `columns` of the items `path` answers.
    pub fn list(&mut self, banner: &str, path: &str, columns: &[Column]) -> CliResult<()> {
        self.out.banner(banner)?;
        let items = self.client.get(path)?;
        self.rows(columns, &items)
    }

    pub fn rows(&mut self, columns: &[Column], items: &Value) -> CliResult<()> {
        let items = items.as_array().map_or(&[][..], Vec::as_slice);
        self.out.rows(columns, items)
    }
}

pub struct Verb {
    pub name: &'static str,
    /// The arguments, as rabbitmqctl's usage line shows them.
    pub usage: &'static str,
    pub about: &'static str,
    pub run: fn(&mut Ctx, &[String]) -> CliResult<()>,
}

pub const VERBS: &[Verb] = &[
    queues::LIST,
    exchanges::LIST,
    bindings::LIST,
    connections::LIST_CONNECTIONS,
    connections::LIST_CHANNELS,
    connections::LIST_CONSUMERS,
    users::LIST,
    users::ADD,
    users::DELETE,
    users::CHANGE_PASSWORD,
    users::SET_TAGS,
    vhosts::ADD,
    vhosts::DELETE,
    vhosts::LIST,
    permissions::SET,
    permissions::CLEAR,
    permissions::LIST,
    permissions::LIST_USER,
    limits::SET_VHOST,
    limits::CLEAR_VHOST,
    limits::LIST_VHOST,
    limits::SET_USER,
    limits::CLEAR_USER,
    limits::LIST_USER,
    policies::SET,
    policies::CLEAR,
    policies::LIST,
    policies::SET_OPERATOR,
    policies::CLEAR_OPERATOR,
    policies::LIST_OPERATOR,
    queues::PURGE,
    queues::DELETE,
    definitions::EXPORT,
    definitions::IMPORT,
    status::STATUS,
    connections::CLOSE,
];

pub fn find(name: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| v.name == name)
}

/// Checks the number of positional arguments, as rabbitmqctl's validation does.
pub fn arity(verb: &'static str, args: &[String], min: usize, max: usize) -> CliResult<()> {
    let message = if args.len() < min {
        "not enough arguments."
    } else if args.len() > max {
        "too many arguments."
    } else {
        return Ok(());
    };
    Err(CliError::Usage {
        message: message.into(),
        verb: Some(verb),
    })
}

/// Columns for a listing verb; unknown ones are a usage error.
pub fn columns(
    verb: &'static str,
    args: &[String],
    defaults: &[&str],
    supported: &[Column],
) -> CliResult<Vec<Column>> {
    output::select(verb, args, defaults, supported)
}

/// `?columns=a,b.c` so the API serialises only what is shown (listing 10,000 queues).
pub fn columns_query(columns: &[Column]) -> String {
    let paths: Vec<String> = columns.iter().map(|c| quote(c.path)).collect();
    format!("?columns={}", paths.join(","))
}

/// The error for something the API says does not exist, worded for the command line.
pub fn api_error(status: u16, error: &str, reason: String) -> CliError {
    CliError::Api {
        status,
        error: error.into(),
        reason,
    }
}

/// rabbitmqctl's words for a `-p` (or named) vhost that does not exist.
pub fn no_such_vhost(name: &str) -> CliError {
    api_error(
        404,
        "no_such_vhost",
        format!("Virtual host '{name}' does not exist"),
    )
}
