//! Generates `src/generated.rs` from the AMQP 0-9-1 spec JSON (RabbitMQ's edition).
//!
//! It lives beside the crate rather than in a build script so that the generated code is checked
//! in and readable, and the build needs no JSON parser. `tests/spec_drift.rs` runs it and fails
//! when the checked-in file differs from what the spec produces.

use serde_json::Value;
use std::fmt::Write;

struct Arg {
    rust_name: String,
    kind: &'static str,
}

struct MethodDef {
    class_name: String,
    class_id: u64,
    name: String,
    id: u64,
    rust_name: String,
    args: Vec<Arg>,
    synchronous: bool,
    content: bool,
}

fn camel(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.split('-'))
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `type` is a Rust keyword; the spec uses it for the exchange type and a message property.
fn field_name(spec_name: &str) -> String {
    match spec_name {
        "type" => "kind".to_string(),
        other => other.replace('-', "_"),
    }
}

fn resolve_kind(domains: &[(String, String)], arg: &Value) -> &'static str {
    let raw = arg
        .get("type")
        .or_else(|| arg.get("domain"))
        .and_then(Value::as_str)
        .expect("argument without type or domain");
    let base = domains
        .iter()
        .find(|(d, _)| d == raw)
        .map(|(_, t)| t.as_str())
        .unwrap_or(raw);
    match base {
        "bit" => "bit",
        "octet" => "octet",
        "short" => "short",
        "long" => "long",
        "longlong" => "longlong",
        "timestamp" => "timestamp",
        "shortstr" => "shortstr",
        "longstr" => "longstr",
        "table" => "table",
        other => panic!("unknown AMQP type {other}"),
    }
}

fn rust_type(kind: &str) -> &'static str {
    match kind {
        "bit" => "bool",
        "octet" => "u8",
        "short" => "u16",
        "long" => "u32",
        "longlong" | "timestamp" => "u64",
        "shortstr" => "ShortStr",
        "longstr" => "Bytes",
        "table" => "FieldTable",
        _ => unreachable!(),
    }
}

fn getter(kind: &str) -> &'static str {
    match kind {
        "octet" => "get_u8(buf)?",
        "short" => "get_u16(buf)?",
        "long" => "get_u32(buf)?",
        "longlong" | "timestamp" => "get_u64(buf)?",
        "shortstr" => "get_shortstr(buf)?",
        "longstr" => "get_longstr(buf)?",
        "table" => "get_table(buf)?",
        _ => unreachable!(),
    }
}

fn putter(kind: &str, expr: &str) -> String {
    match kind {
        "octet" => format!("out.put_u8({expr});"),
        "short" => format!("out.put_u16({expr});"),
        "long" => format!("out.put_u32({expr});"),
        "longlong" | "timestamp" => format!("out.put_u64({expr});"),
        "shortstr" => format!("put_shortstr(out, &{expr});"),
        "longstr" => format!("put_longstr(out, &{expr});"),
        "table" => format!("put_table(out, &{expr});"),
        _ => unreachable!(),
    }
}

pub fn generate(spec_json: &str) -> String {
    let spec: Value = serde_json::from_str(spec_json).expect("spec is JSON");
    let domains: Vec<(String, String)> = spec["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d[0].as_str().unwrap().to_string(),
                d[1].as_str().unwrap().to_string(),
            )
        })
        .collect();

    let mut methods = Vec::new();
    let mut properties = Vec::new();
    for class in spec["classes"].as_array().unwrap() {
        let class_name = class["name"].as_str().unwrap();
        let class_id = class["id"].as_u64().unwrap();
        for m in class["methods"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let args = m["arguments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| Arg {
                    rust_name: field_name(a["name"].as_str().unwrap()),
                    kind: resolve_kind(&domains, a),
                })
                .collect();
            methods.push(MethodDef {
                class_name: class_name.to_string(),
                class_id,
                name: name.to_string(),
                id: m["id"].as_u64().unwrap(),
                rust_name: camel(&[class_name, name]),
                args,
                synchronous: m
                    .get("synchronous")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                content: m.get("content").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        if class_name == "basic" {
            for p in class["properties"].as_array().unwrap() {
                properties.push((
                    field_name(p["name"].as_str().unwrap()),
                    resolve_kind(&domains, p),
                ));
            }
        }
    }

    let mut o = String::new();
    o.push_str(
        "// @generated by crates/protocol/codegen from shared/spec/amqp-rabbitmq-0.9.1.json.\n",
    );
    o.push_str("// Do not edit: run `WARREN_REGENERATE=1 cargo test -p warren-protocol --test spec_drift`.\n\n");
    o.push_str("#![allow(clippy::all)]\n\n");
    o.push_str("use bytes::{Buf, BufMut, Bytes, BytesMut};\n\n");
    o.push_str("use crate::codec::*;\nuse crate::{DecodeError, FieldTable, ShortStr};\n\n");

    // Constants.
    o.push_str("/// Frame types, sizes and reply codes from the spec.\npub mod constants {\n");
    for c in spec["constants"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap().replace('-', "_");
        let value = c["value"].as_u64().unwrap();
        let ty = if name.starts_with("FRAME_") && value < 256 {
            "u8"
        } else if name == "FRAME_MIN_SIZE" {
            "u32"
        } else {
            "u16"
        };
        let ty = if name == "FRAME_MIN_SIZE" { "u32" } else { ty };
        writeln!(o, "    pub const {name}: {ty} = {value};").unwrap();
    }
    o.push_str("}\n\n");

    // Method structs.
    for m in &methods {
        writeln!(
            o,
            "/// `{}.{}` ({}, {}).",
            m.class_name, m.name, m.class_id, m.id
        )
        .unwrap();
        o.push_str("#[derive(Debug, Clone, PartialEq, Default)]\n");
        if m.args.is_empty() {
            writeln!(o, "pub struct {};\n", m.rust_name).unwrap();
            continue;
        }
        writeln!(o, "pub struct {} {{", m.rust_name).unwrap();
        for a in &m.args {
            writeln!(o, "    pub {}: {},", a.rust_name, rust_type(a.kind)).unwrap();
        }
        o.push_str("}\n\n");
    }

    // The enum.
    o.push_str("/// Every AMQP 0-9-1 method, RabbitMQ's extensions included.\n");
    o.push_str("#[derive(Debug, Clone, PartialEq)]\npub enum Method {\n");
    for m in &methods {
        writeln!(o, "    {0}({0}),", m.rust_name).unwrap();
    }
    o.push_str("}\n\n");

    o.push_str("impl Method {\n");
    // ids
    o.push_str("    /// The (class id, method id) pair that identifies this method on the wire.\n");
    o.push_str("    pub fn id(&self) -> (u16, u16) {\n        match self {\n");
    for m in &methods {
        writeln!(
            o,
            "            Method::{}(_) => ({}, {}),",
            m.rust_name, m.class_id, m.id
        )
        .unwrap();
    }
    o.push_str("        }\n    }\n\n");
    // names
    o.push_str(
        "    /// The spec's name, e.g. `basic.publish`, as RabbitMQ's error texts print it.\n",
    );
    o.push_str("    pub fn name(&self) -> &'static str {\n        method_name(self.id().0, self.id().1)\n    }\n\n");
    // content
    o.push_str("    /// Whether a content header and body frames follow this method.\n");
    o.push_str("    pub fn carries_content(&self) -> bool {\n        matches!(self, ");
    let content: Vec<String> = methods
        .iter()
        .filter(|m| m.content)
        .map(|m| format!("Method::{}(_)", m.rust_name))
        .collect();
    o.push_str(&content.join(" | "));
    o.push_str(")\n    }\n\n");
    // synchronous
    o.push_str("    /// Whether the spec marks this method as a request that expects a reply.\n");
    o.push_str("    pub fn is_synchronous(&self) -> bool {\n        matches!(self, ");
    let sync: Vec<String> = methods
        .iter()
        .filter(|m| m.synchronous)
        .map(|m| format!("Method::{}(_)", m.rust_name))
        .collect();
    o.push_str(&sync.join(" | "));
    o.push_str(")\n    }\n\n");

    // decode
    o.push_str("    /// Decodes a method frame's payload (class id, method id, arguments).\n");
    o.push_str("    pub fn decode(buf: &mut Bytes) -> Result<Method, DecodeError> {\n");
    o.push_str("        let class_id = get_u16(buf)?;\n        let method_id = get_u16(buf)?;\n");
    o.push_str("        let method = match (class_id, method_id) {\n");
    for m in &methods {
        writeln!(o, "            ({}, {}) => {{", m.class_id, m.id).unwrap();
        if m.args.is_empty() {
            writeln!(
                o,
                "                Method::{}({})",
                m.rust_name, m.rust_name
            )
            .unwrap();
        } else {
            let mut bit_index = 0usize;
            for a in &m.args {
                if a.kind == "bit" {
                    if bit_index == 0 {
                        o.push_str("                let bits = get_u8(buf)?;\n");
                    }
                    writeln!(
                        o,
                        "                let {} = bits & (1 << {}) != 0;",
                        a.rust_name, bit_index
                    )
                    .unwrap();
                    bit_index = (bit_index + 1) % 8;
                } else {
                    bit_index = 0;
                    writeln!(
                        o,
                        "                let {} = {};",
                        a.rust_name,
                        getter(a.kind)
                    )
                    .unwrap();
                }
            }
            let fields: Vec<&str> = m.args.iter().map(|a| a.rust_name.as_str()).collect();
            writeln!(
                o,
                "                Method::{}({} {{ {} }})",
                m.rust_name,
                m.rust_name,
                fields.join(", ")
            )
            .unwrap();
        }
        o.push_str("            }\n");
    }
    o.push_str("            (class_id, method_id) => return Err(DecodeError::UnknownMethod { class_id, method_id }),\n");
    o.push_str("        };\n        Ok(method)\n    }\n\n");

    // encode
    o.push_str("    /// Encodes class id, method id and arguments (a method frame's payload).\n");
    o.push_str("    pub fn encode(&self, out: &mut BytesMut) {\n");
    o.push_str("        let (class_id, method_id) = self.id();\n        out.put_u16(class_id);\n        out.put_u16(method_id);\n");
    o.push_str("        match self {\n");
    for m in &methods {
        if m.args.is_empty() {
            writeln!(o, "            Method::{}(_) => {{}}", m.rust_name).unwrap();
            continue;
        }
        writeln!(o, "            Method::{}(m) => {{", m.rust_name).unwrap();
        let mut pending_bits: Vec<String> = Vec::new();
        let flush = |o: &mut String, bits: &mut Vec<String>| {
            if bits.is_empty() {
                return;
            }
            let terms: Vec<String> = bits
                .iter()
                .enumerate()
                .map(|(i, b)| format!("(m.{b} as u8) << {i}"))
                .collect();
            writeln!(o, "                out.put_u8({});", terms.join(" | ")).unwrap();
            bits.clear();
        };
        for a in &m.args {
            if a.kind == "bit" {
                pending_bits.push(a.rust_name.clone());
                if pending_bits.len() == 8 {
                    flush(&mut o, &mut pending_bits);
                }
            } else {
                flush(&mut o, &mut pending_bits);
                let expr = format!("m.{}", a.rust_name);
                writeln!(o, "                {}", putter(a.kind, &expr)).unwrap();
            }
        }
        flush(&mut o, &mut pending_bits);
        o.push_str("            }\n");
    }
    o.push_str("        }\n    }\n}\n\n");

    // names table
    o.push_str("/// The spec's name of a method id pair, or `unknown`.\n");
    o.push_str("pub fn method_name(class_id: u16, method_id: u16) -> &'static str {\n    match (class_id, method_id) {\n");
    for m in &methods {
        writeln!(
            o,
            "        ({}, {}) => \"{}.{}\",",
            m.class_id, m.id, m.class_name, m.name
        )
        .unwrap();
    }
    o.push_str("        _ => \"unknown\",\n    }\n}\n\n");

    // Properties.
    o.push_str(
        "/// The 14 properties of the `basic` content class. Absent properties are `None`.\n",
    );
    o.push_str("#[derive(Debug, Clone, PartialEq, Default)]\npub struct BasicProperties {\n");
    for (name, kind) in &properties {
        writeln!(o, "    pub {}: Option<{}>,", name, rust_type(kind)).unwrap();
    }
    o.push_str("}\n\n");
    o.push_str("impl BasicProperties {\n");
    o.push_str(
        "    /// Decodes the property flags and the present properties of a content header.\n",
    );
    o.push_str("    pub fn decode(buf: &mut Bytes) -> Result<BasicProperties, DecodeError> {\n");
    o.push_str("        let mut flags = get_u16(buf)?;\n        let mut all_flags = flags;\n");
    o.push_str("        // Bit 0 says another flag word follows; basic defines no properties there, so skip them.\n");
    o.push_str("        while flags & 1 != 0 {\n            flags = get_u16(buf)?;\n        }\n");
    o.push_str("        all_flags &= !1;\n        let mut p = BasicProperties::default();\n");
    for (i, (name, kind)) in properties.iter().enumerate() {
        let bit = 15 - i;
        writeln!(o, "        if all_flags & (1 << {bit}) != 0 {{\n            p.{name} = Some({});\n        }}", getter(kind)).unwrap();
    }
    o.push_str("        Ok(p)\n    }\n\n");
    o.push_str("    /// Encodes the property flags and the present properties.\n");
    o.push_str("    pub fn encode(&self, out: &mut BytesMut) {\n        let mut flags: u16 = 0;\n");
    for (i, (name, _)) in properties.iter().enumerate() {
        let bit = 15 - i;
        writeln!(
            o,
            "        if self.{name}.is_some() {{\n            flags |= 1 << {bit};\n        }}"
        )
        .unwrap();
    }
    o.push_str("        out.put_u16(flags);\n");
    for (name, kind) in &properties {
        let put = putter(kind, "*v").replace("&*v", "v");
        writeln!(
            o,
            "        if let Some(v) = &self.{name} {{\n            {put}\n        }}"
        )
        .unwrap();
    }
    o.push_str("    }\n}\n");
    // Make sure Buf is used even if no getter needs it directly.
    o.push_str("\n#[allow(dead_code)]\nfn _uses(b: &mut Bytes) -> usize {\n    b.remaining()\n}\n");
    o
}
