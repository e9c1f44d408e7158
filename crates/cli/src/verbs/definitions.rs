//! export_definitions, import_definitions: RabbitMQ's definitions JSON, through
//! `/api/definitions`, to and from a file or (with `-`) stdout and stdin.

use std::io::Write;

use serde_json::Value;

use super::{arity, Ctx, Verb};
use crate::error::{CliError, CliResult};

pub const EXPORT: Verb = Verb {
    name: "export_definitions",
    usage: "export_definitions <file_path | \"-\">",
    about: "Exports users, vhosts, permissions, queues, exchanges and bindings as JSON",
    run: export,
};

fn export(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(EXPORT.name, args, 1, 1)?;
    let path = &args[0];
    let to_stdout = path == "-";
    if !to_stdout {
        // Check before asking the broker, as rabbitmqctl validates the directory first.
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            return Err(CliError::Usage {
                message: format!("Directory {} does not exist", dir.display()),
                verb: Some(EXPORT.name),
            });
        }
        ctx.out.banner(&format!(
            "Exporting definitions in JSON to a file at \"{path}\" ..."
        ))?;
    }
    let text = ctx.client.get_text("/api/definitions")?;
    if to_stdout {
        ctx.out.raw(&text)?;
        return ctx.out.raw("\n");
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| CliError::Data(format!("Could not write to file {path}: {e}")))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| CliError::Data(format!("Could not write to file {path}: {e}")))
}

pub const IMPORT: Verb = Verb {
    name: "import_definitions",
    usage: "import_definitions [<file_path | \"-\">]",
    about: "Imports definitions JSON (RabbitMQ's format) from a file, or stdin if none or -",
    run: import,
};

fn import(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(IMPORT.name, args, 0, 1)?;
    let path = args.first().filter(|p| *p != "-");
    let text = match path {
        Some(path) => {
            ctx.out.banner(&format!(
                "Importing definitions in JSON from a file at \"{path}\" ..."
            ))?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Data(format!("Could not read from file {path}: {e}")))?;
            if text.trim().is_empty() {
                return Err(CliError::Data(format!("File {path} is zero-sized")));
            }
            text
        }
        None => {
            // rabbitmqctl is silent when told `-` explicitly (the output may be piped on).
            if args.is_empty() {
                ctx.out
                    .banner("Importing definitions in JSON from standard input ...")?;
            }
            let mut text = String::new();
            ctx.stdin
                .read_to_string(&mut text)
                .map_err(|e| CliError::Data(format!("Could not read standard input: {e}")))?;
            text
        }
    };
    // Parse here so that a broken file is a data error, not whatever the API makes of it.
    let defs: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::Data(format!(
            "Failed to deserialise input (format: JSON) (error: {e})"
        ))
    })?;
    if !defs.is_object() {
        return Err(CliError::Data(
            "Failed to deserialise input (format: JSON) (error: not a JSON object)".into(),
        ));
    }
    ctx.client.post("/api/definitions", text)?;
    if args.first().is_some_and(|p| p == "-") {
        return Ok(());
    }
    ctx.out.message("Successfully imported definitions.")
}
