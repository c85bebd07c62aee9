//! `omnicast serve` configuration: flags, then environment, then a config file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use omnicast::runtime::{JwtConfig, JwtKey, ServerConfig};
use serde::Deserialize;

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags (each also readable from its `OMNICAST_*` environment variable).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How logs are written to stdout: `text` (coloured on a terminal) or `json`, one object
    /// per line with every field, for log pipelines.
    #[arg(long, env = "OMNICAST_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A YAML config file with the same settings (snake_case keys).
    #[arg(long, env = "OMNICAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OMNICAST_BIND")]
    pub bind: Option<SocketAddr>,
    /// HS256 secret for connection tokens [default: generated and printed].
    #[arg(long, env = "OMNICAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// What the key sealing event ids is derived from; every node must have the same [default:
    /// the JWT secret; with an RS256/ES256 key, required on Redis, random alone].
    #[arg(long, env = "OMNICAST_POSITION_SECRET", hide_env_values = true)]
    pub position_secret: Option<String>,
    /// Verify tokens with this RS256 public key (PEM file) instead of a secret.
    #[arg(long, env = "OMNICAST_JWT_RS256_PUBLIC_KEY")]
    pub jwt_rs256_public_key: Option<PathBuf>,
    /// Verify tokens with this ES256 public key (PEM file) instead of a secret.
    #[arg(long, env = "OMNICAST_JWT_ES256_PUBLIC_KEY")]
    pub jwt_es256_public_key: Option<PathBuf>,
    /// The token claim holding the user id [default: sub].
    #[arg(long, env = "OMNICAST_USER_CLAIM")]
    pub user_claim: Option<String>,
    /// The token claim holding the role [default: role].
    #[arg(long, env = "OMNICAST_ROLE_CLAIM")]
    pub role_claim: Option<String>,
    /// Publish API keys, comma-separated [default: one generated and printed].
    #[arg(
        long,
        env = "OMNICAST_API_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_key: Option<Vec<String>>,
    /// Largest client message in bytes; larger ones close the connection with 1009 [default: 65536].
    #[arg(long, env = "OMNICAST_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Frames queued per connection before it is closed as a slow consumer [default: 1024].
    #[arg(long, env = "OMNICAST_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Seconds between heartbeat pings [default: 30].
    #[arg(long, env = "OMNICAST_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// The most events a resuming client may have missed in one namespace; further behind it is
    /// told `recovered: false` [default: 1000].
    #[arg(long, env = "OMNICAST_MAX_RECOVERY")]
    pub max_recovery: Option<u64>,
    /// The longest a token may be valid, in seconds: how long a revocation is kept [default:
    /// 86400].
    #[arg(long, env = "OMNICAST_MAX_TOKEN_LIFETIME_SECS")]
    pub max_token_lifetime_secs: Option<u64>,
    /// Seconds without any frame from a client before it is closed [default: 75].
    #[arg(long, env = "OMNICAST_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a user whose last connection closed may take to come back before the offline
    /// presence event; 0: at once [default: 5].
    #[arg(long, env = "OMNICAST_PRESENCE_GRACE_SECS")]
    pub presence_grace_secs: Option<u64>,
    /// Browser origins allowed to connect, comma-separated [default: any].
    #[arg(long, env = "OMNICAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Listen backlog for connection bursts [default: 4096].
    #[arg(long, env = "OMNICAST_BACKLOG")]
    pub backlog: Option<u32>,
    /// Kernel send buffer per connection, in bytes: with the queue, what a client that stops
    /// reading can hold on the server before it is closed (4008) [default: the kernel's
    /// autotuning, up to `net.ipv4.tcp_wmem`'s maximum].
    #[arg(long, env = "OMNICAST_SEND_BUFFER_BYTES")]
    pub send_buffer_bytes: Option<u32>,
    /// Accepted token audiences, comma-separated; a token must name one in `aud` [default: not checked].
    #[arg(long, env = "OMNICAST_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Option<Vec<String>>,
    /// Accepted token issuers, comma-separated; a token's `iss` must be one [default: not checked].
    #[arg(long, env = "OMNICAST_JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Option<Vec<String>>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds [default: 5].
    #[arg(long, env = "OMNICAST_JWT_LEEWAY_SECS")]
    pub jwt_leeway_secs: Option<u64>,
    /// Most connections one user may hold [default: 64].
    #[arg(long, env = "OMNICAST_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<usize>,
    /// Subscription changes (`subscribe`, `unsubscribe`) one connection may make at once (an
    /// `error` `subscribe_rate_exceeded` beyond) [default: 100].
    #[arg(long, env = "OMNICAST_SUBSCRIBE_BURST")]
    pub subscribe_burst: Option<u32>,
    /// Subscription changes one connection regains per second [default: 20].
    #[arg(long, env = "OMNICAST_SUBSCRIBES_PER_SEC")]
    pub subscribes_per_sec: Option<f64>,
    /// Publish requests one API key may make per second (429 `publish_rate_exceeded` beyond;
    /// a batch is one request) [default: no limit].
    #[arg(long, env = "OMNICAST_PUBLISHES_PER_SEC")]
    pub publishes_per_sec: Option<f64>,
    /// Publish requests one API key may make at once before the rate applies [default: the
    /// rate's one second's worth, at least 1].
    #[arg(long, env = "OMNICAST_PUBLISH_BURST", requires = "publishes_per_sec")]
    pub publish_burst: Option<u32>,
    /// The most WebSocket connections this node holds; past it a handshake gets 503 `server_full`
    /// [default: 100000].
    #[arg(long, env = "OMNICAST_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// The most connections one source address may hold on this node (429
    /// `too_many_connections_from_address`) [default: no limit].
    #[arg(long, env = "OMNICAST_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Connects one user may make at once before the rate applies [default: 30].
    #[arg(long, env = "OMNICAST_USER_CONNECT_BURST")]
    pub user_connect_burst: Option<u32>,
    /// Connects per second one user regains [default: 5].
    #[arg(long, env = "OMNICAST_USER_CONNECTS_PER_SEC")]
    pub user_connects_per_sec: Option<f64>,
    /// Seconds a client may take to send a request's headers, or a publish request's body [default: 10].
    #[arg(long, env = "OMNICAST_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Seconds shutdown may take to deliver what is queued and close connections [default: 10].
    #[arg(long, env = "OMNICAST_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// `memory` (one node), `redis://host:port[/db]` (several nodes sharing one Redis) or
    /// `redis-cluster://host:port[,host:port…]` (several nodes on a Redis Cluster, given its
    /// seed nodes) [default: memory].
    #[arg(long, env = "OMNICAST_BROKER", hide_env_values = true)]
    pub broker: Option<String>,
}

/// Where publications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// The embedded broker: one node.
    Memory,
    /// Redis at this URL: several nodes.
    Redis(String),
}

/// The config file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    bind: Option<SocketAddr>,
    jwt_secret: Option<Secret<String>>,
    position_secret: Option<Secret<String>>,
    jwt_rs256_public_key: Option<PathBuf>,
    jwt_es256_public_key: Option<PathBuf>,
    user_claim: Option<String>,
    role_claim: Option<String>,
    api_keys: Option<Secret<Vec<String>>>,
    max_message_bytes: Option<usize>,
    queue_capacity: Option<usize>,
    heartbeat_secs: Option<u64>,
    max_recovery: Option<u64>,
    max_token_lifetime_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    presence_grace_secs: Option<u64>,
    allowed_origins: Option<Vec<String>>,
    backlog: Option<u32>,
    send_buffer_bytes: Option<u32>,
    jwt_audience: Option<Vec<String>>,
    jwt_issuer: Option<Vec<String>>,
    jwt_leeway_secs: Option<u64>,
    max_connections_per_user: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    publishes_per_sec: Option<f64>,
    publish_burst: Option<u32>,
    subscribe_burst: Option<u32>,
    subscribes_per_sec: Option<f64>,
    user_connect_burst: Option<u32>,
    user_connects_per_sec: Option<f64>,
    request_timeout_secs: Option<u64>,
    shutdown_timeout_secs: Option<u64>,
    broker: Option<Secret<String>>,
}

/// A secret setting of the config file (the JWT secret, the API keys, the broker's URL, which
/// may carry a password): when it does not parse, the error names what was expected and never
/// shows the value, as serde would (`invalid type: string "prod-api-key-…"`).
struct Secret<T>(T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// What a secret setting must be, in words.
trait Expected {
    const EXPECTED: &'static str;
}

impl Expected for String {
    const EXPECTED: &'static str = "a string";
}

impl Expected for Vec<String> {
    const EXPECTED: &'static str = "a list of strings (`[key-1, key-2]`)";
}

impl<'de, T: serde::de::DeserializeOwned + Expected> Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any YAML value is read; only its conversion can fail, and that error is replaced.
        let value = serde_yaml::Value::deserialize(deserializer)?;
        serde_yaml::from_value(value).map(Secret).map_err(|_| {
            serde::de::Error::custom(format!(
                "expected {}; the value is not shown, as it is secret",
                T::EXPECTED
            ))
        })
    }
}

impl FileConfig {
    /// Reads a config file; every problem is an error naming the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The path names the setting, which a secret's error needs (it does not show the value).
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&text)).map_err(|e| {
            let (setting, err) = (e.path().to_string(), e.into_inner());
            match setting.as_str() {
                "." => format!("{}: {err}", path.display()),
                _ => format!("{}: `{setting}`: {err}", path.display()),
            }
        })
    }
}

/// The resolved settings, and what was generated for development.
pub struct Resolved {
    /// The listen address.
    pub bind: SocketAddr,
    /// The listen backlog.
    pub backlog: u32,
    /// Every connection's kernel send buffer; `None`: the kernel's autotuning.
    pub send_buffer_bytes: Option<u32>,
    /// The server's settings.
    pub server: ServerConfig,
    /// The HS256 secret, when one is used (to print how to mint tokens).
    pub jwt_secret: Option<String>,
    /// Whether the JWT secret was generated (and so may be printed).
    pub generated_secret: bool,
    /// Whether the API key was generated (and so may be printed).
    pub generated_api_key: bool,
    /// The broker.
    pub broker: BrokerChoice,
}

/// Flags and environment over the file over the defaults.
pub fn resolve(args: ServeArgs) -> Result<Resolved, String> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let rs256 = args.jwt_rs256_public_key.or(file.jwt_rs256_public_key);
    let es256 = args.jwt_es256_public_key.or(file.jwt_es256_public_key);
    let secret = args.jwt_secret.or(file.jwt_secret.map(|s| s.0));
    let read_pem =
        |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (key, jwt_secret, generated_secret) = match (rs256, es256) {
        (Some(_), Some(_)) => {
            return Err("give either an RS256 or an ES256 public key, not both".into());
        }
        (Some(path), None) => (JwtKey::Rs256PublicPem(read_pem(&path)?), None, false),
        (None, Some(path)) => (JwtKey::Es256PublicPem(read_pem(&path)?), None, false),
        (None, None) => {
            let (secret, generated) = match secret {
                Some(secret) if secret.len() < 16 => {
                    return Err("the JWT secret must be at least 16 bytes".into());
                }
                Some(secret) => (secret, false),
                None => (random_hex(32), true),
            };
            (
                JwtKey::Hs256(secret.clone().into_bytes()),
                Some(secret),
                generated,
            )
        }
    };
    let mut jwt = JwtConfig::hs256(Vec::new());
    jwt.key = key;
    if let Some(claim) = args.user_claim.or(file.user_claim) {
        jwt.user_claim = claim;
    }
    if let Some(claim) = args.role_claim.or(file.role_claim) {
        jwt.role_claim = claim;
    }
    if let Some(audiences) = args.jwt_audience.or(file.jwt_audience) {
        jwt.audiences = audiences;
    }
    if let Some(issuers) = args.jwt_issuer.or(file.jwt_issuer) {
        jwt.issuers = issuers;
    }
    if let Some(secs) = args.jwt_leeway_secs.or(file.jwt_leeway_secs) {
        jwt.leeway_secs = secs;
    }
    let (api_keys, generated_api_key) = match args.api_key.or(file.api_keys.map(|s| s.0)) {
        Some(keys) if keys.iter().any(|k| k.len() < 16) => {
            return Err("API keys must be at least 16 characters".into());
        }
        Some(keys) if !keys.is_empty() => (keys, false),
        _ => (vec![random_hex(24)], true),
    };
    let mut server = ServerConfig::new(jwt, api_keys);
    if let Some(bytes) = args.max_message_bytes.or(file.max_message_bytes) {
        server.max_message_bytes = bytes;
    }
    if let Some(capacity) = args.queue_capacity.or(file.queue_capacity) {
        server.queue_capacity = capacity;
    }
    if let Some(secs) = args.heartbeat_secs.or(file.heartbeat_secs) {
        server.heartbeat_interval = Duration::from_secs(secs.max(1));
    }
    if let Some(events) = args.max_recovery.or(file.max_recovery) {
        server.max_recovery = events;
    }
    if let Some(secs) = args
        .max_token_lifetime_secs
        .or(file.max_token_lifetime_secs)
    {
        server.max_token_lifetime = Duration::from_secs(secs.max(1));
    }
    match args.position_secret.or(file.position_secret.map(|s| s.0)) {
        Some(secret) if secret.len() < 16 => {
            return Err("the position secret must be at least 16 bytes".into());
        }
        secret => server.position_secret = secret,
    }
    if let Some(burst) = args.subscribe_burst.or(file.subscribe_burst) {
        server.subscribe_rate.burst = burst.max(1);
    }
    if let Some(rate) = args.subscribes_per_sec.or(file.subscribes_per_sec) {
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!(
                "subscribes per second must be 0 or more, not {rate}"
            ));
        }
        server.subscribe_rate.per_second = rate;
    }
    if let Some(rate) = args.publishes_per_sec.or(file.publishes_per_sec) {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!(
                "publishes per second must be more than 0, not {rate}"
            ));
        }
        let burst = args
            .publish_burst
            .or(file.publish_burst)
            .unwrap_or(rate.ceil() as u32);
        server.publish_rate = Some(omnicast::runtime::ConnectRate {
            burst: burst.max(1),
            per_second: rate,
        });
    }
    if let Some(limit) = args.max_connections.or(file.max_connections) {
        server.max_connections = limit.max(1);
    }
    if let Some(limit) = args.max_connections_per_ip.or(file.max_connections_per_ip) {
        server.max_connections_per_ip = Some(limit.max(1));
    }
    if let Some(secs) = args.idle_timeout_secs.or(file.idle_timeout_secs) {
        server.idle_timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(secs) = args.presence_grace_secs.or(file.presence_grace_secs) {
        server.presence_grace = Duration::from_secs(secs);
    }
    if let Some(origins) = args.allowed_origins.or(file.allowed_origins) {
        server.allowed_origins = origins;
    }
    if let Some(limit) = args
        .max_connections_per_user
        .or(file.max_connections_per_user)
    {
        server.max_connections_per_user = limit.max(1);
    }
    if let Some(burst) = args.user_connect_burst.or(file.user_connect_burst) {
        server.connect_rate.burst = burst.max(1);
    }
    if let Some(rate) = args.user_connects_per_sec.or(file.user_connects_per_sec) {
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!(
                "user connects per second must be 0 or more, not {rate}"
            ));
        }
        server.connect_rate.per_second = rate;
    }
    if let Some(secs) = args.request_timeout_secs.or(file.request_timeout_secs) {
        server.request_timeout = Duration::from_secs(secs.max(1));
    }
    if let Some(secs) = args.shutdown_timeout_secs.or(file.shutdown_timeout_secs) {
        server.shutdown_timeout = Duration::from_secs(secs.max(1));
    }
    let broker = match args
        .broker
        .or(file.broker.map(|s| s.0))
        .as_deref()
        .map(str::trim)
    {
        None | Some("memory") => BrokerChoice::Memory,
        Some(url) if url.starts_with("redis://") || url.starts_with("redis-cluster://") => {
            BrokerChoice::Redis(url.to_owned())
        }
        Some(_) => {
            return Err(
                "the broker is `memory`, a Redis URL (`redis://host:port[/db]`) or a \
                        Redis Cluster's seed nodes (`redis-cluster://host:port[,host:port…]`)"
                    .into(),
            );
        }
    };
    Ok(Resolved {
        broker,
        bind: args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        backlog: args.backlog.or(file.backlog).unwrap_or(4096),
        send_buffer_bytes: args.send_buffer_bytes.or(file.send_buffer_bytes),
        server,
        jwt_secret,
        generated_secret,
        generated_api_key,
    })
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve_with(args: &[&str], file: Option<&str>) -> Result<Resolved, String> {
        let dir = std::env::temp_dir().join(format!(
            "omnicast-config-{}-{}",
            std::process::id(),
            args.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut argv = vec!["omnicast"];
        let path = dir.join("omnicast.yaml");
        let path_text = path.display().to_string();
        if let Some(file) = file {
            std::fs::write(&path, file).unwrap();
            argv.extend(["--config", &path_text]);
        }
        argv.extend(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        resolve(cli.serve)
    }

    /// The review's item 7: a secret setting of the wrong shape is an error that names the
    /// setting and what it must be, never its value.
    #[test]
    fn a_secret_setting_that_does_not_parse_is_not_shown() {
        let dir = std::env::temp_dir().join(format!("omnicast-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("omnicast.yaml");
        for (file, secret, expected) in [
            (
                "api_keys: prod-api-key-0123456789abcdef",
                "prod-api-key",
                "a list of strings",
            ),
            (
                "api_keys: [[nested-key-0123456789]]",
                "nested-key",
                "a list of strings",
            ),
            (
                "jwt_secret: 918273645546372819",
                "918273645546372819",
                "a string",
            ),
            (
                "jwt_secret: [list-secret-0123456789]",
                "list-secret",
                "a string",
            ),
            (
                "broker: {redis: redis://:hunter2-password@h}",
                "hunter2",
                "a string",
            ),
        ] {
            std::fs::write(&path, file).unwrap();
            let err = FileConfig::load(&path).unwrap_err();
            assert!(!err.contains(secret), "{file}: {err}");
            assert!(
                err.contains(expected) && err.contains("not shown"),
                "{file}: {err}"
            );
            let setting = file.split(':').next().unwrap();
            assert!(
                err.contains(setting),
                "{file}: the error names the setting: {err}"
            );
        }
        // What parses is read as before, and `Debug` never shows it.
        std::fs::write(&path, "api_keys: [good-key-0123456789]\n").unwrap();
        let file = FileConfig::load(&path).unwrap();
        assert_eq!(file.api_keys.as_ref().unwrap().0, ["good-key-0123456789"]);
        assert!(!format!("{file:?}").contains("good-key"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file = "bind: 127.0.0.1:9000\nqueue_capacity: 64\napi_keys: [file-key-0123456789]\njwt_secret: file-secret-0123456789\n";
        let resolved = resolve_with(&["--bind", "127.0.0.1:9100"], Some(file)).unwrap();
        assert_eq!(resolved.bind, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(resolved.server.queue_capacity, 64);
        assert_eq!(resolved.server.api_keys, ["file-key-0123456789"]);
        assert_eq!(
            resolved.jwt_secret.as_deref(),
            Some("file-secret-0123456789")
        );
        assert!(!resolved.generated_secret && !resolved.generated_api_key);
        assert_eq!(resolved.server.max_message_bytes, 64 * 1024, "a default");
    }

    #[test]
    fn token_requirements_and_limits_are_configurable() {
        let file =
            "jwt_audience: [omnicast]\nmax_connections_per_user: 3\nuser_connects_per_sec: 0.5\n";
        let resolved = resolve_with(
            &[
                "--jwt-issuer",
                "https://a.example,https://b.example",
                "--jwt-leeway-secs",
                "0",
            ],
            Some(file),
        )
        .unwrap();
        let jwt = &resolved.server.jwt;
        assert_eq!(jwt.audiences, ["omnicast"]);
        assert_eq!(jwt.issuers, ["https://a.example", "https://b.example"]);
        assert_eq!(jwt.leeway_secs, 0);
        assert_eq!(resolved.server.max_connections_per_user, 3);
        assert_eq!(resolved.server.connect_rate.per_second, 0.5);
        assert_eq!(resolved.server.connect_rate.burst, 30, "a default");
    }

    #[test]
    fn nothing_configured_generates_dev_credentials() {
        let resolved = resolve_with(&[], None).unwrap();
        assert_eq!(resolved.bind, "127.0.0.1:8080".parse().unwrap());
        assert!(resolved.generated_secret && resolved.generated_api_key);
        assert_eq!(resolved.jwt_secret.unwrap().len(), 64);
        assert_eq!(resolved.backlog, 4096);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let short = resolve_with(&["--jwt-secret", "short"], None)
            .err()
            .unwrap();
        assert!(short.contains("at least 16 bytes"), "{short}");
        let unknown = resolve_with(&[], Some("bnd: 1.2.3.4:5\n")).err().unwrap();
        assert!(unknown.contains("unknown field `bnd`"), "{unknown}");
        let missing = resolve_with(&["--jwt-es256-public-key", "/nonexistent.pem"], None)
            .err()
            .unwrap();
        assert!(missing.contains("/nonexistent.pem"), "{missing}");
    }
}
