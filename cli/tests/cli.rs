//! The `omnicast` binary, run as a user would, from the project's root.

use std::path::Path;
use std::process::Command;

/// The project's root, where `events.yaml` and `generated-docs/` are.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits in the project's root")
}

fn omnicast(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_omnicast"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Kills the server if the test fails before stopping it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn check_accepts_the_catalog() {
    let (ok, stdout, _) = omnicast(&["check"]);
    assert!(ok);
    assert_eq!(
        stdout,
        "events.yaml: ok (23 events in 6 namespaces, 4 roles)\n"
    );
}

#[test]
fn check_reports_every_problem_and_fails() {
    let (ok, stdout, stderr) = omnicast(&["check", "codegen/tests/invalid/unknown_type.yaml"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    let snapshot = root().join("codegen/tests/invalid/unknown_type.stderr");
    let expected = std::fs::read_to_string(snapshot).unwrap();
    // Same messages as the snapshot, with the path as given on the command line.
    assert_eq!(
        stderr,
        expected.replace("tests/invalid/", "codegen/tests/invalid/")
    );
}

#[test]
fn gen_check_reports_drift_without_writing() {
    let dir = std::env::temp_dir().join(format!("omnicast-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("docs");
    let ts = dir.join("ts/catalog.ts");
    let args = |check: bool| {
        let mut args = vec!["gen", "--out", out.to_str().unwrap()];
        args.extend(["--typescript", ts.to_str().unwrap()]);
        if check {
            args.push("--check");
        }
        args
    };
    let (ok, stdout, stderr) = omnicast(&args(true));
    assert!(!ok);
    assert!(
        stdout.contains("out of date: Missing(\"EVENTS.md\")"),
        "{stdout}"
    );
    assert!(stdout.contains("catalog.ts\")"), "{stdout}");
    assert!(stderr.contains("run `cargo run -- gen`"), "{stderr}");
    assert!(!dir.exists(), "--check must not write");

    let (ok, _, _) = omnicast(&args(false));
    assert!(ok);
    let (ok, stdout, _) = omnicast(&args(true));
    assert!(ok, "{stdout}");
    std::fs::write(&ts, "// edited by hand\n").unwrap();
    let (ok, stdout, _) = omnicast(&args(true));
    assert!(!ok && stdout.contains("Stale"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `omnicast serve` on its defaults (but an ephemeral port): the banner's secret and API key work
/// for a real client, `omnicast emit` publishes, and SIGTERM stops it cleanly.
#[test]
fn serve_on_defaults_then_token_emit_and_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_omnicast"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("OMNICAST_JWT_SECRET")
            .env_remove("OMNICAST_API_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    while banner.len() < 7 {
        banner.push(lines.next().expect("the banner").unwrap());
    }
    let find = |prefix: &str| {
        banner
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {banner:#?}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    let listening = banner
        .iter()
        .find(|l| l.starts_with("omnicast listening on ws://"))
        .expect("the address");
    let addr = listening["omnicast listening on ws://".len()..]
        .split("/ws")
        .next()
        .unwrap()
        .to_owned();
    let secret = find("dev JWT secret");
    let api_key = find("dev API key");
    assert!(banner.iter().any(|l| l.contains("(in-memory broker)")));

    let (ok, token, _) = omnicast(&[
        "token", "--secret", &secret, "--sub", "u1", "--role", "admin",
    ]);
    assert!(ok);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use futures_util::StreamExt;
        let url = format!("ws://{addr}/ws?token={}&namespaces=system", token.trim());
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the minted token works");
        let ready = ws.next().await.unwrap().unwrap();
        assert!(ready.to_text().unwrap().contains("\"ready\""));

        let url = format!("http://{addr}");
        let (ok, stdout, stderr) = omnicast(&[
            "emit",
            "--url",
            &url,
            "--api-key",
            &api_key,
            "system:maintenance",
            r#"{"message":"hello"}"#,
        ]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("\"id\""), "{stdout}");
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(event.to_text().unwrap().contains("\"hello\""), "{event:?}");

        let (ok, _, stderr) = omnicast(&[
            "emit",
            "--url",
            &url,
            "--api-key",
            &api_key,
            "system:maintenance",
            r#"{"msg":"x"}"#,
        ]);
        assert!(!ok);
        assert!(
            stderr.contains("422") && stderr.contains("data.msg"),
            "{stderr}"
        );

        // Explain, as an operator asks it: the connection above gets maintenance notices; a
        // staff member subscribed to `orders` only would not.
        let (ok, stdout, stderr) = omnicast(&[
            "explain",
            "--url",
            &url,
            "--api-key",
            &api_key,
            "--event",
            "system:maintenance",
            "--data",
            r#"{"message":"x"}"#,
            "--user",
            "u2",
            "--role",
            "staff",
            "--namespaces",
            "orders",
        ]);
        assert!(ok, "{stderr}");
        assert!(
            stdout
                .starts_with("not delivered: rule 1 (not_subscribed): not subscribed to `system`"),
            "{stdout}"
        );
        assert!(
            stdout.contains("live connections that receive it now: 1 (admin 1)"),
            "{stdout}"
        );
    });

    let (ok, _, stderr) = omnicast(&[
        "token", "--secret", &secret, "--sub", "u1", "--role", "admn",
    ]);
    assert!(!ok);
    assert!(stderr.contains("unknown role `admn`"), "{stderr}");

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit:?} after SIGTERM");
}

/// `explain --matrix` prints the reference's who-receives-what matrix, from events.yaml.
#[test]
fn explain_matrix_is_the_references() {
    let (ok, stdout, stderr) = omnicast(&["explain", "--matrix"]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("## Who Receives What"), "{stdout}");
    let reference = std::fs::read_to_string(root().join("generated-docs/EVENTS.md")).unwrap();
    assert!(reference.contains(&stdout), "{stdout}");
    assert!(stdout.contains("| `payment:received` |"), "{stdout}");
}

/// Configured credentials (flags, environment, config file, a Redis URL's password) never appear
/// in the server's output; the banner shows placeholders. Logs written to a pipe carry no ANSI colour codes.
#[test]
fn serve_never_prints_configured_secrets() {
    use std::io::Read;
    use std::process::Stdio;

    const SECRET: &str = "configured-jwt-secret-4242424242";
    const ENV_KEY: &str = "configured-env-api-key-1717171717";
    const FILE_KEY: &str = "configured-file-api-key-2323232323";
    // A Redis password in the broker URL (Redis is not there: the node logs that it retries).
    const REDIS_PASSWORD: &str = "configured-redis-password-9090909";
    let dir = std::env::temp_dir().join(format!("omnicast-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("omnicast.yaml");
    std::fs::write(
        &config,
        format!("api_keys: [{FILE_KEY}]\nbroker: redis://:{REDIS_PASSWORD}@127.0.0.1:1\n"),
    )
    .unwrap();

    for (args, env_key) in [
        (vec!["--jwt-secret", SECRET], Some(ENV_KEY)),
        (vec!["--config", config.to_str().unwrap()], None),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_omnicast"));
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(&args)
            .env("RUST_LOG", "debug")
            .env("OMNICAST_JWT_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The broker from the environment, or from the config file.
        match env_key {
            Some(key) => command.env("OMNICAST_API_KEY", key).env(
                "OMNICAST_BROKER",
                format!("redis://:{REDIS_PASSWORD}@127.0.0.1:1"),
            ),
            None => command
                .env_remove("OMNICAST_API_KEY")
                .env_remove("OMNICAST_BROKER"),
        };
        let mut child = Running(command.spawn().unwrap());
        // The banner's last line is written once the server listens.
        let mut stdout = child.0.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("or:            curl") {
            let n = stdout.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "serve exited early: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        let status = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        stdout.read_to_end(&mut seen).unwrap();
        let mut stderr = String::new();
        child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(child.0.wait().unwrap().success());
        let output = format!("{}{stderr}", String::from_utf8_lossy(&seen));
        for secret in [SECRET, ENV_KEY, FILE_KEY, REDIS_PASSWORD] {
            assert!(!output.contains(secret), "`{secret}` printed:\n{output}");
        }
        assert!(
            output.contains("(Redis broker at 127.0.0.1:1)")
                && output.contains("not following Redis"),
            "the broker's address, without its password, and its retries: {output}"
        );
        assert!(output.contains("--secret <your JWT secret>"), "{output}");
        assert!(output.contains("Bearer <your API key>"), "{output}");
        assert!(!output.contains("dev JWT secret") && !output.contains("dev API key"));
        assert!(
            output.contains("shutting down"),
            "logs are written: {output}"
        );
        assert!(
            !output.contains('\x1b'),
            "ANSI codes in piped logs: {output:?}"
        );
    }
}

/// `--log-format json`: one JSON object per line, and one event can be followed by its id from
/// the publish API's answer to its delivery.
#[test]
fn json_logs_follow_one_event_by_its_id() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_omnicast"))
            .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
            .env("OMNICAST_JWT_SECRET", "s3cret-for-json-logs-0123456789")
            .env("OMNICAST_API_KEY", "key-for-json-logs-0123456789")
            .env("RUST_LOG", "omnicast_runtime=debug,info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the banner").unwrap();
        if let Some(rest) = line.strip_prefix("omnicast listening on ws://") {
            break rest.split("/ws").next().unwrap().to_owned();
        }
    };
    let (ok, stdout, stderr) = omnicast(&[
        "emit",
        "--url",
        &format!("http://{addr}"),
        "--api-key",
        "key-for-json-logs-0123456789",
        "system:maintenance",
        r#"{"message":"follow me"}"#,
    ]);
    assert!(ok, "{stderr}");
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if !line.starts_with('{') {
            continue;
        }
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
        let fields = &entry["fields"];
        let names_it = fields["event_id"] == id.as_str()
            || fields["event_ids"]
                .as_str()
                .is_some_and(|ids| ids.contains(&id));
        if names_it {
            seen.push(fields["message"].as_str().unwrap_or_default().to_owned());
        }
        if seen.iter().any(|m| m == "delivered on this node")
            && seen.iter().any(|m| m == "publish accepted")
        {
            break;
        }
    }
    assert!(seen.contains(&"publish accepted".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"delivered on this node".to_owned()),
        "{seen:?}"
    );
    assert!(!format!("{seen:?}").contains("s3cret"));
}
