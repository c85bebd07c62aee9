//! The omnicast command line: serve events, mint dev tokens, publish, validate the catalog and
//! regenerate its documentation. The binary is `src/main.rs`; this library is what it runs, so
//! the benchmark can start the very same server (`omnicast_cli::run`).

mod asyncapi;
mod changes;
pub mod config;
pub mod docs;
mod explain;

use std::ffi::OsString;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use omnicast::CATALOG;
use omnicast::runtime::{RedisConfig, Server, bind, mint_hs256};

use crate::config::BrokerChoice;

#[derive(Parser)]
#[command(
    name = "omnicast",
    version,
    about = "Schema-driven, permission-aware real-time events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSocket clients and the publish API (in-memory broker, or Redis for several nodes).
    Serve(Box<config::ServeArgs>),
    /// Mint an HS256 token for a user and role (development and tests).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// The role, one of the catalog's roles.
        #[arg(long)]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// The server's HS256 secret.
        #[arg(long, env = "OMNICAST_JWT_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// Publish one event through a running server's publish API.
    Emit {
        /// The event type (`order:created`).
        event: String,
        /// The payload, as JSON.
        data: String,
        /// Broadcast options as JSON (`{"roles": ["admin"], "userIds": ["u1"]}`).
        #[arg(long)]
        options: Option<String>,
        /// The server's base URL.
        #[arg(long, env = "OMNICAST_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A publish API key.
        #[arg(long, env = "OMNICAST_API_KEY", hide_env_values = true)]
        api_key: String,
    },
    /// Revoke a user's tokens (all, or issued before a time), a login session's or one token,
    /// through a node's `POST /api/revocations`: refused at the handshake, live connections
    /// closed (4003).
    Revoke {
        /// Every token of this user.
        #[arg(long)]
        user: Option<String>,
        /// With `--user`: only tokens issued before this time (seconds since the Unix epoch).
        #[arg(long, requires = "user")]
        issued_before: Option<u64>,
        /// Every token of this login session (the tokens' `sid`).
        #[arg(long)]
        session: Option<String>,
        /// The token with this id (`jti`).
        #[arg(long)]
        token_id: Option<String>,
        /// The server's base URL.
        #[arg(long, env = "OMNICAST_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A publish API key.
        #[arg(long, env = "OMNICAST_API_KEY", hide_env_values = true)]
        api_key: String,
    },
    /// Ask a user's connections to re-authorize (their role changed), through a node's
    /// `POST /api/reauthorizations`: each must refresh with a token issued from now on before
    /// the deadline, or is closed then (4001).
    Reauthorize {
        /// The user whose rights changed.
        #[arg(long)]
        user: String,
        /// Seconds the connections have to refresh (the server's default: 30).
        #[arg(long)]
        deadline_secs: Option<u64>,
        /// The server's base URL.
        #[arg(long, env = "OMNICAST_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A publish API key.
        #[arg(long, env = "OMNICAST_API_KEY", hide_env_values = true)]
        api_key: String,
    },
    /// Would a connection get an event, and if not, which rule says so (asks a node's
    /// `POST /api/explain`); or `--matrix`, the catalog's who-receives-what matrix.
    Explain(Box<explain::ExplainArgs>),
    /// Validate an events.yaml and print every problem found; with `--against`, also compare
    /// it with an older catalog and classify every change (exit 2: breaking, 4: widens who
    /// receives, 6: both; 1: an invalid catalog).
    Check {
        /// The catalog file.
        #[arg(default_value = "events.yaml")]
        catalog: PathBuf,
        /// The catalog to compare with: a file, or a git revision of the same file (`HEAD~1`,
        /// `origin/main`).
        #[arg(long, value_name = "FILE|REVISION")]
        against: Option<String>,
        /// How to print the changes.
        #[arg(long, value_enum, default_value = "human", requires = "against")]
        format: changes::Format,
        /// Accept a change: its id (`roles-added:order:created`) or a whole rule (`roles-added`).
        /// Repeatable.
        #[arg(long, value_name = "CHANGE", requires = "against")]
        allow: Vec<String>,
    },
    /// Write generated-docs/ (EVENTS.md and JSON Schemas) and the client's TypeScript types from
    /// the catalog this binary was built with.
    Gen {
        /// Where to write the docs.
        #[arg(long, default_value = "generated-docs")]
        out: PathBuf,
        /// Where to write the TypeScript types.
        #[arg(long, default_value = "clients/typescript/src/catalog.ts")]
        typescript: PathBuf,
        /// Only report drift; exit 1 if the directory is not up to date.
        #[arg(long)]
        check: bool,
    },
}

/// Parses `args` (the program name first) and runs the command.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    match Cli::parse_from(args).command {
        Command::Serve(args) => serve(*args),
        Command::Token {
            sub,
            role,
            ttl,
            secret,
        } => {
            if CATALOG.role(&role).is_none() {
                let roles: Vec<&str> = CATALOG.roles.iter().map(|r| r.name).collect();
                eprintln!(
                    "error: unknown role `{role}`; roles are {}",
                    roles.join(", ")
                );
                return ExitCode::FAILURE;
            }
            println!("{}", mint_hs256(secret.as_bytes(), &sub, &role, ttl));
            ExitCode::SUCCESS
        }
        Command::Emit {
            event,
            data,
            options,
            url,
            api_key,
        } => emit(&event, &data, options.as_deref(), &url, &api_key),
        Command::Explain(args) => explain::run(*args),
        Command::Revoke {
            user,
            issued_before,
            session,
            token_id,
            url,
            api_key,
        } => {
            let body = serde_json::json!({
                "userId": user,
                "issuedBefore": issued_before,
                "loginSession": session,
                "tokenId": token_id,
            });
            print_answer(post_json(&url, "/api/revocations", &api_key, &body))
        }
        Command::Reauthorize {
            user,
            deadline_secs,
            url,
            api_key,
        } => {
            let body = serde_json::json!({ "userId": user, "deadlineSecs": deadline_secs });
            print_answer(post_json(&url, "/api/reauthorizations", &api_key, &body))
        }
        Command::Check {
            catalog,
            against: Some(against),
            format,
            allow,
        } => changes::run(&catalog, &against, format, &allow),
        Command::Check { catalog, .. } => check(&catalog),
        Command::Gen {
            out,
            typescript,
            check,
        } => gen_docs(&out, &typescript, check),
    }
}

fn serve(args: config::ServeArgs) -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match args.log_format {
        // Colour only for a terminal: logs piped to files or collectors stay plain text.
        config::LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
        // One object per line, every field and the current spans' fields included.
        config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init(),
    }
    let resolved = match config::resolve(args) {
        Ok(resolved) => resolved,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    runtime.block_on(async move {
        let listener = match bind(resolved.bind, resolved.backlog, resolved.send_buffer_bytes) {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("error: cannot listen on {}: {err}", resolved.bind);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .expect("a bound socket has an address");
        let api_key = resolved.server.api_keys[0].clone();
        let started = match &resolved.broker {
            BrokerChoice::Memory => {
                Server::new(&CATALOG, resolved.server.clone()).map_err(|err| err.to_string())
            }
            BrokerChoice::Redis(url) => {
                Server::with_redis(&CATALOG, resolved.server.clone(), RedisConfig::new(url))
                    .map_err(|err| err.to_string())
            }
        };
        let server = match started {
            Ok(server) => server,
            Err(err) => {
                eprintln!("error: {err}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = shutdown_signal();
        print_banner(addr, &resolved, &api_key);
        match server.serve(listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Tells a developer how to use the server. Only credentials the server generated itself (dev
/// mode) are printed; configured ones never appear in output or logs, so placeholders stand in.
fn print_banner(addr: std::net::SocketAddr, resolved: &config::Resolved, api_key: &str) {
    let broker = match &resolved.broker {
        config::BrokerChoice::Memory => "in-memory broker".to_owned(),
        config::BrokerChoice::Redis(url) => {
            format!("Redis broker at {}", RedisConfig::new(url).address())
        }
    };
    println!("omnicast listening on ws://{addr}/ws ({broker})");
    let secret = match (&resolved.jwt_secret, resolved.generated_secret) {
        (Some(secret), true) => {
            println!("dev JWT secret (generated; set OMNICAST_JWT_SECRET to keep one): {secret}");
            Some(secret.as_str())
        }
        (Some(_), false) => Some("<your JWT secret>"),
        (None, _) => None,
    };
    if let Some(secret) = secret {
        println!("mint a token:  cargo run -- token --secret {secret} --sub u1 --role admin");
    }
    let api_key = if resolved.generated_api_key {
        println!("dev API key (generated; set OMNICAST_API_KEY to keep one): {api_key}");
        api_key
    } else {
        "<your API key>"
    };
    println!(
        "connect:       ws://{addr}/ws?token=<token>&namespaces=orders,system\n\
         publish:       cargo run -- emit --url http://{addr} --api-key {api_key} system:maintenance '{{\"message\":\"hello\"}}'\n\
         or:            curl -X POST http://{addr}/api/events -H 'Authorization: Bearer {api_key}' \
         -H 'Content-Type: application/json' -d '{{\"type\":\"system:maintenance\",\"data\":{{\"message\":\"hello\"}}}}'"
    );
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is called, not when it is first
/// polled: a signal that arrives right after the banner must shut down, not kill, the server.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {},
                        _ = terminate.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn emit(event: &str, data: &str, options: Option<&str>, url: &str, api_key: &str) -> ExitCode {
    let parse = |what: &str, text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| format!("{what} is not JSON: {e}"))
    };
    let body = match (
        parse("the payload", data),
        options.map(|o| parse("--options", o)).transpose(),
    ) {
        (Ok(data), Ok(options)) => {
            let mut body = serde_json::json!({ "type": event, "data": data });
            if let Some(options) = options {
                body["options"] = options;
            }
            body
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    print_answer(post_json(url, "/api/events", api_key, &body))
}

/// Prints a node's JSON answer, or why there is none (and fails).
fn print_answer(answer: Result<serde_json::Value, String>) -> ExitCode {
    match answer {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `POST`s `body` to a node's `path` with an API key; the JSON answer of a 2xx, or why not.
pub(crate) fn post_json(
    url: &str,
    path: &str,
    api_key: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let mut response = agent
        .post(&endpoint)
        .header("Authorization", &format!("Bearer {api_key}"))
        .send_json(body)
        .map_err(|err| format!("{endpoint}: {err}"))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    serde_json::from_str(&text)
        .map_err(|err| format!("{endpoint} answered {status} with `{text}`: {err}"))
}

fn check(catalog: &std::path::Path) -> ExitCode {
    match omnicast_codegen::load(catalog) {
        Ok(model) => {
            println!(
                "{}: ok ({} events in {} namespaces, {} roles)",
                catalog.display(),
                model.events.len(),
                model.namespaces.len(),
                model.roles.len()
            );
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            ExitCode::FAILURE
        }
    }
}

fn gen_docs(out: &std::path::Path, typescript: &std::path::Path, check: bool) -> ExitCode {
    let result = if check {
        docs::drift(out).and_then(|d| Ok((d, docs::typescript_drift(typescript)?)))
    } else {
        docs::write(out).and_then(|d| Ok((d, docs::write_typescript(typescript)?)))
    };
    let (drift, ts_drift) = match result {
        Ok(drift) => drift,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let verb = if check { "out of date" } else { "updated" };
    for d in &drift {
        println!("{verb}: {d:?}");
    }
    if let Some(d) = &ts_drift {
        println!("{verb}: {d:?}");
    }
    if drift.is_empty() && ts_drift.is_none() {
        println!("{} and {}: up to date", out.display(), typescript.display());
        ExitCode::SUCCESS
    } else if check {
        eprintln!(
            "{} or {} is stale: run `cargo run -- gen`",
            out.display(),
            typescript.display()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
