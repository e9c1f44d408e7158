//! Output as rabbitmqctl 3.10 prints it.
//!
//! Table: an informational line (the "banner"), then the column names and one line per item,
//! tab-separated. `-q` drops the banner, `-s` the banner and the header, `--no-table-headers`
//! the header. As in rabbitmqctl the header comes with the first row, so an empty listing is
//! the banner alone.
//!
//! JSON: no banner (the output is for machines); a listing is `[`, one object per line (the
//! requested columns, in order; from the second on prefixed with `,`), then `]`.

use std::io::Write;

use serde_json::Value;

use crate::args::{Formatter, Options};
use crate::error::{CliError, CliResult};

/// A column a listing verb can show: its rabbitmqctl name and where the API's JSON has it.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub key: &'static str,
    /// A dotted path into the API's item (`connection_details.name`).
    pub path: &'static str,
}

pub const fn col(key: &'static str) -> Column {
    Column { key, path: key }
}

pub const fn col_at(key: &'static str, path: &'static str) -> Column {
    Column { key, path }
}

/// The columns `requested` names (or `defaults`, when none), checked against `supported`
/// before anything is asked of the broker, as rabbitmqctl validates its info keys.
pub fn select(
    verb: &'static str,
    requested: &[String],
    defaults: &[&str],
    supported: &[Column],
) -> CliResult<Vec<Column>> {
    let names: Vec<&str> = if requested.is_empty() {
        defaults.to_vec()
    } else {
        requested.iter().map(String::as_str).collect()
    };
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !supported.iter().any(|c| c.key == *n))
        .collect();
    if !unknown.is_empty() {
        let keys: Vec<&str> = supported.iter().map(|c| c.key).collect();
        return Err(CliError::Usage {
            message: format!(
                "Info key(s) {} are not supported. Supported keys: {}",
                unknown.join(", "),
                keys.join(", ")
            ),
            verb: Some(verb),
        });
    }
    Ok(names
        .iter()
        .filter_map(|n| supported.iter().find(|c| c.key == *n).copied())
        .collect())
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, part| v.get(part))
}

/// Control characters would break the tab-separated layout: escape them.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// A value as a table cell, the way rabbitmqctl renders the Erlang terms behind them:
/// strings bare, lists as `[a, b]`, argument tables as `[{"x-max-length",10}]`, nothing
/// (no value) as an empty cell.
pub fn cell(v: Option<&Value>, out: &mut String) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => escape(s, out),
        Some(Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                cell(Some(item), out);
            }
            out.push(']');
        }
        Some(Value::Object(map)) => {
            out.push('[');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('{');
                escape(&Value::from(k.as_str()).to_string(), out);
                out.push(',');
                escape(&v.to_string(), out);
                out.push('}');
            }
            out.push(']');
        }
        Some(other) => out.push_str(&other.to_string()),
    }
}

/// Where a verb writes, with the options that shape its output.
pub struct Printer<'a> {
    pub out: &'a mut dyn Write,
    pub options: &'a Options,
}

impl Printer<'_> {
    fn io(&mut self, text: &str) -> CliResult<()> {
        self.out
            .write_all(text.as_bytes())
            .map_err(|e| CliError::Data(format!("cannot write the output: {e}")))
    }

    pub fn json(&self) -> bool {
        self.options.formatter == Formatter::Json
    }

    /// The informational line, unless quiet, silent or machine-readable.
    pub fn banner(&mut self, text: &str) -> CliResult<()> {
        if self.options.quiet || self.options.silent || self.json() {
            return Ok(());
        }
        self.io(&format!("{text}\n"))
    }

    /// A result message (`Queue was successfully deleted with 3 messages`): dropped by -q and
    /// -s as rabbitmqctl drops it; as `{"message": ...}` for JSON.
    pub fn message(&mut self, text: &str) -> CliResult<()> {
        if self.json() {
            let v = serde_json::json!({ "message": text });
            return self.io(&format!("{v}\n"));
        }
        if self.options.quiet || self.options.silent {
            return Ok(());
        }
        self.io(&format!("{text}\n"))
    }

    /// Raw text, whatever the options (exported definitions, status).
    pub fn raw(&mut self, text: &str) -> CliResult<()> {
        self.io(text)
    }

    /// Items as rows of `columns`.
    pub fn rows(&mut self, columns: &[Column], items: &[Value]) -> CliResult<()> {
        let mut text = String::new();
        if self.json() {
            text.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                // By hand, to keep the columns in the order asked for.
                text.push('{');
                for (j, c) in columns.iter().enumerate() {
                    if j > 0 {
                        text.push(',');
                    }
                    text.push_str(&Value::from(c.key).to_string());
                    text.push(':');
                    let v = lookup(item, c.path).unwrap_or(&Value::Null);
                    text.push_str(&v.to_string());
                }
                text.push_str("}\n");
            }
            text.push_str("]\n");
            return self.io(&text);
        }
        let header = self.options.table_headers && !self.options.silent;
        if header && !items.is_empty() {
            let names: Vec<&str> = columns.iter().map(|c| c.key).collect();
            text.push_str(&names.join("\t"));
            text.push('\n');
        }
        for item in items {
            for (j, c) in columns.iter().enumerate() {
                if j > 0 {
                    text.push('\t');
                }
                cell(lookup(item, c.path), &mut text);
            }
            text.push('\n');
        }
        self.io(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(v: Value) -> String {
        let mut s = String::new();
        cell(Some(&v), &mut s);
        s
    }

    #[test]
    fn cells_look_like_rabbitmqctl() {
        assert_eq!(render(json!("q1")), "q1");
        assert_eq!(render(json!(true)), "true");
        assert_eq!(render(json!(12)), "12");
        assert_eq!(
            render(json!(["administrator", "monitoring"])),
            "[administrator, monitoring]"
        );
        assert_eq!(render(json!({})), "[]");
        assert_eq!(
            render(json!({"x-max-length": 10})),
            r#"[{"x-max-length",10}]"#
        );
        assert_eq!(render(json!("a\tb")), "a\\tb");
        assert_eq!(render(Value::Null), "");
    }

    #[test]
    fn unknown_columns_are_a_usage_error() {
        let supported = [col("name"), col("messages")];
        let e = select("list_queues", &["nope".into()], &["name"], &supported).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EX_USAGE);
        assert!(e.to_string().contains("nope"));
        let cols = select("list_queues", &[], &["name", "messages"], &supported).unwrap();
        assert_eq!(cols.len(), 2);
    }
}
