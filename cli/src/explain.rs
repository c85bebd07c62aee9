//! `omnicast explain`: asks a node's `POST /api/explain` whether a connection gets an event and,
//! if not, which rule says so; or, with `--matrix`, prints the catalog's who-receives-what matrix
//! from events.yaml (no node needed), for diffing in CI.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

/// `omnicast explain` options.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Print the who-receives-what matrix of `--catalog` instead.
    #[arg(long)]
    matrix: bool,
    /// The catalog file `--matrix` reads.
    #[arg(long, default_value = "events.yaml")]
    catalog: PathBuf,
    /// The event type (`order:created`), with `--data`.
    #[arg(long, conflicts_with = "id")]
    event: Option<String>,
    /// The payload, as JSON.
    #[arg(long, requires = "event")]
    data: Option<String>,
    /// The publisher's options, as JSON (`{"roles": ["admin"], "userIds": ["u1"]}`).
    #[arg(long, requires = "event")]
    options: Option<String>,
    /// Or the id of a published event still in its namespace's history.
    #[arg(long)]
    id: Option<String>,
    /// The connection asked about: its user, with `--role`.
    #[arg(long, requires = "role")]
    user: Option<String>,
    /// Its role.
    #[arg(long, requires = "user")]
    role: Option<String>,
    /// Its namespaces (comma-separated; the role's default when left out).
    #[arg(long, value_delimiter = ',', requires = "role")]
    namespaces: Option<Vec<String>>,
    /// Or a live session's id.
    #[arg(long, conflicts_with = "user")]
    session: Option<String>,
    /// Also decide for each live session of this user.
    #[arg(long, value_name = "USER")]
    sessions_of: Option<String>,
    /// Print the node's JSON answer as it is.
    #[arg(long)]
    json: bool,
    /// The node's base URL.
    #[arg(long, env = "OMNICAST_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A publish API key.
    #[arg(long, env = "OMNICAST_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Runs `omnicast explain`.
pub fn run(args: ExplainArgs) -> ExitCode {
    if args.matrix {
        return match omnicast_codegen::load(&args.catalog) {
            Ok(model) => {
                print!(
                    "{}",
                    omnicast_codegen::generate::markdown::matrix_section(&model)
                );
                ExitCode::SUCCESS
            }
            Err(diagnostics) => fail(&diagnostics.to_string()),
        };
    }
    let body = match request(&args) {
        Ok(body) => body,
        Err(why) => return fail(&why),
    };
    let Some(api_key) = &args.api_key else {
        return fail("give a publish API key: --api-key or OMNICAST_API_KEY");
    };
    let answer = match crate::post_json(&args.url, "/api/explain", api_key, &body) {
        Ok(answer) => answer,
        Err(why) => return fail(&why),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).expect("JSON values serialize")
        );
    } else {
        print!("{}", words(&answer));
    }
    ExitCode::SUCCESS
}

fn fail(why: &str) -> ExitCode {
    eprintln!("error: {why}");
    ExitCode::FAILURE
}

/// The request body the options describe.
fn request(args: &ExplainArgs) -> Result<Value, String> {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<Value>(text).map_err(|e| format!("{what} is not JSON: {e}"))
    };
    let mut body = match (&args.event, &args.id) {
        (Some(event), None) => {
            let data = parse("--data", args.data.as_deref().unwrap_or("{}"))?;
            let mut event = json!({ "type": event, "data": data });
            if let Some(options) = &args.options {
                event["options"] = parse("--options", options)?;
            }
            json!({ "event": event })
        }
        (None, Some(id)) => json!({ "id": id }),
        _ => return Err("give an event (--event and --data) or an --id, or --matrix".into()),
    };
    if let Some(session) = &args.session {
        body["subject"] = json!({ "sessionId": session });
    } else if let (Some(user), Some(role)) = (&args.user, &args.role) {
        body["subject"] = json!({ "userId": user, "role": role });
        if let Some(namespaces) = &args.namespaces {
            body["subject"]["namespaces"] = json!(namespaces);
        }
    }
    if let Some(user) = &args.sessions_of {
        body["userId"] = json!(user);
    }
    Ok(body)
}

/// The answer in sentences.
fn words(answer: &Value) -> String {
    let mut out = String::new();
    let decision = |d: &Value| {
        let verdict = if d["delivered"] == true {
            "delivered".to_owned()
        } else {
            format!(
                "not delivered: rule {} ({})",
                d["ruleNumber"],
                d["rule"].as_str().unwrap_or_default()
            )
        };
        format!(
            "{verdict}: {}\n  compared: {}\n",
            d["because"].as_str().unwrap_or_default(),
            d["compared"]
        )
    };
    if let Some(d) = answer.get("decision") {
        out.push_str(&decision(d));
    }
    let recipients = &answer["recipients"];
    let by_role: Vec<String> = recipients["byRole"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(role, n)| format!("{role} {n}"))
        .collect();
    out.push_str(&format!(
        "live connections that receive it now: {}{}\n",
        recipients["total"],
        if by_role.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_role.join(", "))
        }
    ));
    for session in answer["sessions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "session {} ({}; {}): {}",
            session["sessionId"].as_str().unwrap_or_default(),
            session["role"].as_str().unwrap_or_default(),
            session["namespaces"]
                .as_array()
                .map(|n| n
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            decision(&session["decision"])
        ));
    }
    out
}
