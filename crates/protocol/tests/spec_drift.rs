//! The generated protocol code must match what the spec produces today.
//!
//! Regenerate after changing the generator or the spec with:
//! `WARREN_REGENERATE=1 cargo test -p warren-protocol --test spec_drift`

#[path = "../codegen/mod.rs"]
mod codegen;

use std::path::Path;

#[test]
fn generated_code_matches_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec_path = root.join("../../../shared/spec/amqp-rabbitmq-0.9.1.json");
    let spec = match std::fs::read_to_string(&spec_path) {
        Ok(s) => s,
        // The spec lives outside the repository; without it there is nothing to compare.
        Err(e) => panic!("cannot read {}: {e}", spec_path.display()),
    };
    let generated = codegen::generate(&spec);
    let target = root.join("src/generated.rs");
    if std::env::var_os("WARREN_REGENERATE").is_some() {
        std::fs::write(&target, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&target).unwrap_or_default();
    assert!(
        current == generated,
        "src/generated.rs has drifted from the spec; rerun with WARREN_REGENERATE=1"
    );
}
