//! export_definitions / import_definitions, through files and through stdout and stdin.

use crate::harness::{bin, start};

#[test]
fn export_then_import_round_trip() {
    let h = start();
    h.ctl(&["add_vhost", "shop"]).ok();
    h.ctl(&["add_user", "erin", "pw-erin"]).ok();
    h.ctl(&["set_user_tags", "erin", "management"]).ok();
    h.ctl(&["set_permissions", "-p", "shop", "erin", ".*", ".*", ".*"])
        .ok();
    let c = h.login("erin", "pw-erin", "shop").unwrap();
    h.declare(&c, "orders", true);
    h.declare_exchange(&c, "shop.events", "direct");
    h.bind(&c, "orders", "shop.events", "created");
    h.close(c);

    let dir = std::env::temp_dir().join(format!("warren-cli-defs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("defs.json");
    let path = file.to_str().unwrap();
    let out = h.ctl(&["export_definitions", path]);
    assert_eq!(
        out.ok(),
        format!("Exporting definitions in JSON to a file at \"{path}\" ...\n")
    );
    let defs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(defs["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "erin"));
    assert!(defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "orders"));

    // `-` writes to stdout, with no banner.
    let out = h.bin(&["export_definitions", "-"]);
    let from_stdout: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(from_stdout, defs);

    // Into a fresh broker, from the file.
    let fresh = start();
    let out = fresh.ctl(&["import_definitions", path]);
    assert_eq!(
        out.ok(),
        format!(
            "Importing definitions in JSON from a file at \"{path}\" ...\n\
             Successfully imported definitions.\n"
        )
    );
    assert_eq!(
        fresh
            .ctl(&["-s", "list_queues", "-p", "shop", "name", "durable"])
            .ok(),
        "orders\ttrue\n"
    );
    assert!(fresh
        .ctl(&["-s", "list_bindings", "-p", "shop"])
        .ok()
        .contains("shop.events\texchange\torders\tqueue\tcreated\t[]\n"));
    assert_eq!(
        fresh.ctl(&["-s", "list_users"]).ok(),
        "erin\t[management]\nguest\t[administrator]\n"
    );
    // The user keeps her password: the hash travelled.
    fresh.close(
        fresh
            .login("erin", "pw-erin", "shop")
            .expect("erin logs in"),
    );

    // And into another, from stdin through the binary.
    let third = start();
    let text = std::fs::read_to_string(&file).unwrap();
    let args: Vec<String> = [
        "--host",
        "127.0.0.1",
        "--port",
        &third.http_port.to_string(),
        "import_definitions",
        "-",
    ]
    .map(String::from)
    .to_vec();
    let out = bin(&args, &[], &text);
    assert_eq!(out.ok(), "");
    assert_eq!(third.ctl(&["-s", "list_vhosts"]).ok(), "/\nshop\n");

    // Broken input is a data error, before the broker is asked anything.
    std::fs::write(&file, "{not json").unwrap();
    let out = third.ctl(&["import_definitions", path]);
    assert!(out.fails(65).contains("Failed to deserialise input"));
    let out = third.ctl(&[
        "import_definitions",
        dir.join("missing.json").to_str().unwrap(),
    ]);
    out.fails(65);
    std::fs::remove_dir_all(&dir).unwrap();
}
