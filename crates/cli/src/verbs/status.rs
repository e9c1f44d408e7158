//! status: rabbitmqctl's sections (runtime, memory, alarms, file descriptors, listeners,
//! totals), from `/api/overview`, `/api/nodes/{node}` and `/api/vhosts`.

use serde_json::{json, Value};

use super::{arity, Ctx, Verb};
use crate::client::quote;
use crate::error::CliResult;

pub const STATUS: Verb = Verb {
    name: "status",
    usage: "status",
    about: "Displays the node's status: versions, memory, alarms, listeners, totals",
    run: status,
};

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn num(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn gb(bytes: u64) -> String {
    format!("{:.4} gb", bytes as f64 / 1e9)
}

fn purpose(protocol: &str) -> &'static str {
    match protocol {
        "amqp" => "AMQP 0-9-1",
        "http" => "HTTP API",
        "http/prometheus" => "Prometheus exporter API over HTTP",
        _ => "",
    }
}

fn status(ctx: &mut Ctx, args: &[String]) -> CliResult<()> {
    arity(STATUS.name, args, 0, 0)?;
    let overview = ctx.client.get("/api/overview")?;
    let node_name = text(&overview, "node");
    ctx.out.banner(&format!("Status of node {node_name} ..."))?;
    // Node details need the monitoring tag; show what there is without them.
    let node = match ctx.client.get(&format!("/api/nodes/{}", quote(&node_name))) {
        Ok(n) => n,
        Err(crate::error::CliError::Api { .. }) => Value::Null,
        Err(e) => return Err(e),
    };
    let vhosts = ctx
        .client
        .get("/api/vhosts?columns=name")?
        .as_array()
        .map_or(0, Vec::len);
    let totals = overview.get("object_totals").cloned().unwrap_or_default();
    let listeners: Vec<Value> = overview
        .get("listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut alarms = Vec::new();
    if node.get("mem_alarm") == Some(&Value::Bool(true)) {
        alarms.push("memory");
    }
    if node.get("disk_free_alarm") == Some(&Value::Bool(true)) {
        alarms.push("free disk space");
    }

    if ctx.out.json() {
        let v = json!({
            "node_name": node_name,
            "pid": text(&node, "os_pid"),
            "uptime": num(&node, "uptime") / 1000,
            "product_name": text(&overview, "product_name"),
            "product_version": text(&overview, "product_version"),
            "rabbitmq_version": text(&overview, "rabbitmq_version"),
            "processors": num(&node, "processors"),
            "memory": {"total": num(&node, "mem_used"), "limit": num(&node, "mem_limit")},
            "alarms": alarms,
            "file_descriptors": {"used": num(&node, "fd_used"), "total": num(&node, "fd_total")},
            "listeners": listeners.iter().map(|l| json!({
                "interface": text(l, "ip_address"),
                "port": num(l, "port"),
                "protocol": text(l, "protocol"),
                "purpose": purpose(&text(l, "protocol")),
            })).collect::<Vec<_>>(),
            "totals": {
                "connection_count": num(&totals, "connections"),
                "queue_count": num(&totals, "queues"),
                "virtual_host_count": vhosts,
            },
        });
        return ctx.out.raw(&format!("{v}\n"));
    }

    let mut s = String::new();
    s.push_str("Runtime\n\n");
    if !node.is_null() {
        s.push_str(&format!("OS PID: {}\n", text(&node, "os_pid")));
        s.push_str(&format!(
            "Uptime (seconds): {}\n",
            num(&node, "uptime") / 1000
        ));
    }
    s.push_str(&format!(
        "Product name: {}\nProduct version: {}\nRabbitMQ version (compatible with): {}\nNode name: {node_name}\n",
        text(&overview, "product_name"),
        text(&overview, "product_version"),
        text(&overview, "rabbitmq_version"),
    ));
    if !node.is_null() {
        s.push_str(&format!(
            "\nMemory\n\nTotal memory used: {}\nCalculation strategy: rss\nMemory high watermark setting: {}\n",
            gb(num(&node, "mem_used")),
            gb(num(&node, "mem_limit")),
        ));
        s.push_str("\nAlarms\n\n");
        if alarms.is_empty() {
            s.push_str("(none)\n");
        }
        for a in &alarms {
            s.push_str(&format!("{a} alarm\n"));
        }
        s.push_str(&format!(
            "\nFile Descriptors\n\nTotal: {}, limit: {}\n",
            num(&node, "fd_used"),
            num(&node, "fd_total")
        ));
    }
    s.push_str("\nListeners\n\n");
    for l in &listeners {
        let protocol = text(l, "protocol");
        s.push_str(&format!(
            "Interface: {}, port: {}, protocol: {protocol}, purpose: {}\n",
            text(l, "ip_address"),
            num(l, "port"),
            purpose(&protocol),
        ));
    }
    s.push_str(&format!(
        "\nTotals\n\nConnection count: {}\nQueue count: {}\nVirtual host count: {vhosts}\n",
        num(&totals, "connections"),
        num(&totals, "queues"),
    ));
    ctx.out.raw(&s)
}
