//! set_policy, clear_policy, list_policies and their operator-policy twins, through
//! `/api/policies` and `/api/operator-policies`.

use serde_json::{json, Value};

use super::{api_error, arity, no_such_vhost, Ctx, Verb};
use crate::client::quote;
use crate::error::{CliError, CliResult};
use crate::output::{col, Column};

/// What tells a policy verb from its operator-policy twin: the API's collection and the
/// words rabbitmqctl uses in its banners.
struct Kind {
    /// `/api/{collection}/{vhost}/{name}`.
    collection: &'static str,
    /// One of them, as set_ names it.
    set_noun: &'static str,
    /// One of them, as clear_ names it.
    clear_noun: &'static str,
    /// Several, as list_ names them.
    list_noun: &'static str,
    /// `/api/policies` HTML-escapes `<` and `>` in its reasons (for browsers);
    /// `/api/operator-policies` does not.
    escapes_reasons: bool,
}

const POLICY: Kind = Kind {
    collection: "policies",
    set_noun: "policy",
    clear_noun: "policy",
    list_noun: "policies",
    escapes_reasons: true,
};

const OPERATOR_POLICY: Kind = Kind {
    collection: "operator-policies",
    set_noun: "operator policy override",
    clear_noun: "operator policy",
    list_noun: "operator policy overrides",
    escapes_reasons: false,
};

const COLUMNS: &[Column] = &[
    col("vhost"),
    col("name"),
    col("pattern"),
    col("apply-to"),
    col("definition"),
    col("priority"),
];

fn policy_path(ctx: &Ctx, kind: &Kind, name: &str) -> String {
    format!(
        "/api/{}/{}/{}",
        kind.collection,
        ctx.vhost_segment(),
        quote(name)
    )
}

pub const SET: Verb = Verb {
    name: "set_policy",
    usage: "set_policy [-p <vhost>] [--priority <priority>] [--apply-to <apply-to>] \
            <name> <pattern> <definition>",
    about: "Sets a policy: its JSON definition applies to the queues and/or exchanges \
            (--apply-to queues, exchanges or all, the default) whose names match the pattern; \
            of several that match, the one with the highest --priority (default 0) wins",
    run: set_policy,
};

fn set_policy(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    set(ctx, args, SET.name, &POLICY)
}

pub const SET_OPERATOR: Verb = Verb {
    name: "set_operator_policy",
    usage: "set_operator_policy [-p <vhost>] [--priority <priority>] [--apply-to <apply-to>] \
            <name> <pattern> <definition>",
    about: "Sets an operator policy: limits (expires, message-ttl, max-length, \
            max-length-bytes, delivery-limit ...) that apply on top of the policy of the \
            queues whose names match the pattern, the lower value winning",
    run: set_operator_policy,
};

fn set_operator_policy(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    set(ctx, args, SET_OPERATOR.name, &OPERATOR_POLICY)
}

/// --priority: an integer, 0 when not given.
fn priority(ctx: &Ctx, verb: &'static str) -> CliResult<i64> {
    let Some(given) = &ctx.options.priority else {
        return Ok(0);
    };
    given.parse().map_err(|_| CliError::Usage {
        message: format!("Invalid options for this command:\n--priority : {given}"),
        verb: Some(verb),
    })
}

fn set(ctx: &mut Ctx, args: &[String], verb: &'static str, kind: &Kind) -> CliResult<()> {
    arity(verb, args, 3, 3)?;
    let priority = priority(ctx, verb)?;
    let (name, pattern, definition) = (&args[0], &args[1], &args[2]);
    ctx.out.banner(&format!(
        "Setting {} \"{name}\" for pattern \"{pattern}\" to \"{definition}\" \
         with priority \"{priority}\" for vhost \"{}\" ...",
        kind.set_noun,
        ctx.vhost()
    ))?;
    // rabbitmqctl decodes the definition on the node, so after its banner: so do we. The
    // API would say only `not_json`, about the whole body.
    let definition: Value = serde_json::from_str(definition)
        .map_err(|_| CliError::Data("JSON decoding error. Reason: badarg".into()))?;
    let body = json!({
        "pattern": pattern,
        "definition": definition,
        "priority": priority,
        "apply-to": ctx.options.apply_to.as_deref().unwrap_or("all"),
    });
    let path = policy_path(ctx, kind, name);
    ctx.client.put(&path, &body).map_err(|e| match e {
        // A PUT names no object that could be missing but the vhost.
        e if e.is_not_found() => no_such_vhost(ctx.vhost()),
        other => unescaped(kind, other),
    })
}

/// A validation failure as rabbitmqctl prints it: `<<"abc">> is not a valid message TTL`,
/// the Erlang term bare.
fn unescaped(kind: &Kind, e: CliError) -> CliError {
    match e {
        CliError::Api {
            status,
            error,
            reason,
        } if kind.escapes_reasons => CliError::Api {
            status,
            error,
            reason: reason.replace("&lt;", "<").replace("&gt;", ">"),
        },
        other => other,
    }
}

pub const CLEAR: Verb = Verb {
    name: "clear_policy",
    usage: "clear_policy [-p <vhost>] <name>",
    about: "Removes a policy",
    run: clear_policy,
};

fn clear_policy(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    clear(ctx, args, CLEAR.name, &POLICY)
}

pub const CLEAR_OPERATOR: Verb = Verb {
    name: "clear_operator_policy",
    usage: "clear_operator_policy [-p <vhost>] <name>",
    about: "Removes an operator policy",
    run: clear_operator_policy,
};

fn clear_operator_policy(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    clear(ctx, args, CLEAR_OPERATOR.name, &OPERATOR_POLICY)
}

fn clear(ctx: &mut Ctx, args: &[String], verb: &'static str, kind: &Kind) -> CliResult<()> {
    arity(verb, args, 1, 1)?;
    let name = &args[0];
    ctx.out.banner(&format!(
        "Clearing {} \"{name}\" on vhost \"{}\" ...",
        kind.clear_noun,
        ctx.vhost()
    ))?;
    match ctx.client.delete(&policy_path(ctx, kind, name), &[]) {
        Err(e) if e.is_not_found() => Err(not_there(ctx)),
        other => other,
    }
}

/// The API's bare 404 does not say whether the vhost or the policy is missing: ask which,
/// to say it in rabbitmqctl's words.
fn not_there(ctx: &Ctx) -> CliError {
    match ctx
        .client
        .get(&format!("/api/vhosts/{}", ctx.vhost_segment()))
    {
        Err(e) if e.is_not_found() => no_such_vhost(ctx.vhost()),
        Err(e) => e,
        Ok(_) => api_error(404, "not_found", "Parameter does not exist".into()),
    }
}

pub const LIST: Verb = Verb {
    name: "list_policies",
    usage: "list_policies [-p <vhost>] [--no-table-headers]",
    about: "Lists the policies of a vhost, lowest priority first",
    run: list_policies,
};

fn list_policies(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    list(ctx, args, LIST.name, &POLICY)
}

pub const LIST_OPERATOR: Verb = Verb {
    name: "list_operator_policies",
    usage: "list_operator_policies [-p <vhost>] [--no-table-headers]",
    about: "Lists the operator policies of a vhost, lowest priority first",
    run: list_operator_policies,
};

fn list_operator_policies(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    list(ctx, args, LIST_OPERATOR.name, &OPERATOR_POLICY)
}

/// rabbitmqctl shows a definition as compact JSON text, in the table and (as a string)
/// in JSON output, rather than as a nested object.
fn with_definition_as_text(mut policy: Value) -> Value {
    if let Some(definition) = policy.get_mut("definition") {
        *definition = Value::String(definition.to_string());
    }
    policy
}

fn list(ctx: &mut Ctx, args: &[String], verb: &'static str, kind: &Kind) -> CliResult<()> {
    arity(verb, args, 0, 0)?;
    ctx.out.banner(&format!(
        "Listing {} for vhost \"{}\" ...",
        kind.list_noun,
        ctx.vhost()
    ))?;
    let path = format!("/api/{}/{}", kind.collection, ctx.vhost_segment());
    // The API lists them lowest priority first already, as rabbitmqctl does.
    let policies: Vec<Value> = match ctx.client.get(&path) {
        Ok(Value::Array(items)) => items.into_iter().map(with_definition_as_text).collect(),
        Ok(_) => Vec::new(),
        Err(e) if e.is_not_found() => return Err(no_such_vhost(ctx.vhost())),
        Err(e) => return Err(e),
    };
    ctx.out.rows(COLUMNS, &policies)?;
    // rabbitmqctl formats these lists whole rather than as a stream of rows, and prints an
    // empty one as an empty line.
    if policies.is_empty() && !ctx.out.json() {
        ctx.out.raw("\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_shown_as_compact_json_text() {
        let policy = json!({"name": "p", "definition": {"max-length": 5, "expires": 1000}});
        assert_eq!(
            with_definition_as_text(policy)["definition"],
            r#"{"expires":1000,"max-length":5}"#
        );
    }

    #[test]
    fn only_the_policies_endpoint_escapes_its_reasons() {
        let refusal = || CliError::Api {
            status: 400,
            error: "bad_request".into(),
            reason: "&lt;&lt;\"abc\"&gt;&gt; is not a valid message TTL".into(),
        };
        assert_eq!(
            unescaped(&POLICY, refusal()).to_string(),
            "<<\"abc\">> is not a valid message TTL"
        );
        assert_eq!(
            unescaped(&OPERATOR_POLICY, refusal()).to_string(),
            refusal().to_string()
        );
    }
}
