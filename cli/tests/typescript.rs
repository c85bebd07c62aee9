//! The TypeScript client's tests, run against this build's `omnicast` binary: `npm test` in
//! `clients/typescript` compiles the package and its type tests with `tsc` (strict), then runs
//! Node's test runner (the client against real servers, the React hooks in jsdom, and a page in
//! Debian's Chromium). Needs `npm ci --prefix clients/typescript` once, and `chromium`.

use std::path::Path;
use std::process::Command;

#[test]
fn typescript_client_against_the_real_server() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript");
    assert!(
        dir.join("node_modules").is_dir(),
        "clients/typescript has no node_modules: run `npm ci --prefix clients/typescript` first"
    );
    let output = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&dir)
        .env("OMNICAST_BIN", env!("CARGO_BIN_EXE_omnicast"))
        .output()
        .expect("npm runs (Node 20 or later)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# ") || l.trim_start().starts_with("not ok"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        output.status.success(),
        "npm test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        summary.iter().any(|l| l.starts_with("# pass ")) && !summary.contains(&"# pass 0"),
        "no test ran:\n{stdout}"
    );
}
