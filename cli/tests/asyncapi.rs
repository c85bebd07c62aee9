//! `generated-docs/asyncapi.yaml`: valid for the reference parser (`@asyncapi/parser`, no
//! diagnostic of severity error), and saying what the catalog says: every event a message on its
//! namespace's channel, with its payload, roles and owner. Needs `npm ci --prefix
//! clients/typescript` once (the parser is one of its development dependencies).

use std::path::{Path, PathBuf};
use std::process::Command;

use omnicast::CATALOG;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the parser on `file`: whether it found the document valid, and what it printed.
fn validate(file: &Path) -> (bool, String) {
    let dir = root().join("clients/typescript");
    assert!(
        dir.join("node_modules/@asyncapi/parser").is_dir(),
        "no @asyncapi/parser: run `npm ci --prefix clients/typescript` first"
    );
    let output = Command::new("node")
        .arg("scripts/validate-asyncapi.mjs")
        .arg(file)
        .current_dir(&dir)
        .output()
        .expect("node runs (Node 20 or later)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_reference_parser_accepts_it_and_refuses_a_broken_one() {
    let file = root().join("generated-docs/asyncapi.yaml");
    let (valid, report) = validate(&file);
    assert!(valid, "{report}");
    assert!(report.contains("valid: "), "{report}");
    assert!(!report.lines().any(|l| l.starts_with("error ")), "{report}");

    // The same document with an operation on a channel that does not exist: the parser must
    // say so, or the check above proves nothing.
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replacen("$ref: '#/channels/orders'", "$ref: '#/channels/nowhere'", 1);
    assert_ne!(broken, text);
    let path = std::env::temp_dir().join(format!("omnicast-asyncapi-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let (valid, report) = validate(&path);
    let _ = std::fs::remove_file(&path);
    assert!(!valid, "a broken document passed:\n{report}");
}

#[test]
fn every_event_is_a_message_of_its_namespace_with_who_receives_it() {
    let text = std::fs::read_to_string(root().join("generated-docs/asyncapi.yaml")).unwrap();
    let document: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert_eq!(document["info"]["version"], CATALOG.version);
    for entry in CATALOG.events {
        let d = entry.descriptor;
        let key = omnicast::runtime::names::schema_stem(d.name);
        let message = &document["components"]["messages"][&key];
        assert_eq!(message["name"], d.name, "{key}");
        assert_eq!(message["payload"]["properties"]["type"]["const"], d.name);
        let data = message["payload"]["properties"]["data"]["$ref"]
            .as_str()
            .unwrap();
        let schema = data.trim_start_matches("#/components/schemas/");
        assert_eq!(
            document["components"]["schemas"][schema]["title"],
            entry.payload(),
            "{key}"
        );
        let channel = &document["channels"][d.namespace];
        assert!(
            channel["messages"][&key].is_object(),
            "{key} is not on channel {}",
            d.namespace
        );
        assert_eq!(message["x-omnicast-owner"].as_str(), d.owner_field, "{key}");
        let roles = &message["x-omnicast-roles"];
        assert!(
            roles == "all" || roles.as_array().is_some_and(|r| !r.is_empty()),
            "{key}: {roles}"
        );
    }
    // The connection's own messages are there too, from the protocol's schemas.
    for tag in [
        "ready",
        "subscribed",
        "unsubscribed",
        "pong",
        "error",
        "subscribe",
        "unsubscribe",
        "ping",
    ] {
        assert!(document["components"]["messages"][tag].is_object(), "{tag}");
    }
    let ready = &document["components"]["messages"]["ready"]["payload"]["properties"];
    assert!(ready["catalogVersion"].is_object(), "{ready}");
}
