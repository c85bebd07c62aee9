//! The wire protocol, defined once: the envelope of an event, the control messages, the client
//! messages, the close codes and the error codes. The server and the Rust client use these types;
//! their JSON Schemas ([`schema`]) are what the TypeScript types and `generated-docs/schemas/`
//! are generated from, so a field added here reaches every client and the reference by itself.
//!
//! Control messages carry a `type` without a colon (`ready`, `error` ...); events always carry
//! `namespace:action`, so the two can never be confused ([`ServerMessage::parse`]).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub mod schema;

/// Why and how the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// A short reason sent with it.
    pub reason: &'static str,
}

/// The close codes the server uses.
pub mod close {
    use super::CloseReason;

    /// The client closed; the server answers in kind.
    pub const NORMAL: CloseReason = CloseReason {
        code: 1000,
        reason: "bye",
    };
    /// The server is shutting down; reconnect later.
    pub const GOING_AWAY: CloseReason = CloseReason {
        code: 1001,
        reason: "server shutting down",
    };
    /// A frame or message was larger than the configured limit.
    pub const MESSAGE_TOO_BIG: CloseReason = CloseReason {
        code: 1009,
        reason: "message too big",
    };
    /// The connection broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: CloseReason = CloseReason {
        code: 1002,
        reason: "protocol error",
    };
    /// A text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseReason = CloseReason {
        code: 1007,
        reason: "text is not UTF-8",
    };
    /// The token's `exp` passed; reconnect with a fresh token.
    pub const TOKEN_EXPIRED: CloseReason = CloseReason {
        code: 4001,
        reason: "token expired",
    };
    /// Nothing (not even a pong) arrived within the idle timeout.
    pub const IDLE_TIMEOUT: CloseReason = CloseReason {
        code: 4002,
        reason: "idle timeout",
    };
    /// The user already holds the most connections allowed per user (a race past the handshake's
    /// own check, which refuses with 429 `too_many_connections`).
    pub const TOO_MANY_CONNECTIONS: CloseReason = CloseReason {
        code: 4029,
        reason: "too many connections for this user",
    };
    /// This node lost track of a namespace's stream (Redis lost events, or started a new
    /// epoch): reconnect at once and resume with `since`, to replay what was missed or learn
    /// `recovered: false`.
    pub const RESUME_REQUIRED: CloseReason = CloseReason {
        code: 4010,
        reason: "reconnect and resume",
    };
    /// The connection's token, user or login session was revoked (`POST /api/revocations`): a
    /// new token is needed; the revoked one is refused until it expires.
    pub const REVOKED: CloseReason = CloseReason {
        code: 4003,
        reason: "revoked",
    };
    /// The node could not read the shared history to resume from `since` (Redis did not answer):
    /// whether the missed events can be replayed is unknown, so the client is not told either
    /// way; reconnect after a backoff and resume with the same `since`.
    pub const TRY_AGAIN_LATER: CloseReason = CloseReason {
        code: 1013,
        reason: "history unavailable: resume again later",
    };
    /// The connection's outbound queue filled up: it did not read fast enough.
    pub const SLOW_CONSUMER: CloseReason = CloseReason {
        code: 4008,
        reason: "slow consumer",
    };

    /// Every close code above, by constant name (the generated TypeScript's `CloseCode`).
    pub const ALL: [(&str, CloseReason); 12] = [
        ("NORMAL", NORMAL),
        ("GOING_AWAY", GOING_AWAY),
        ("PROTOCOL_ERROR", PROTOCOL_ERROR),
        ("INVALID_PAYLOAD", INVALID_PAYLOAD),
        ("MESSAGE_TOO_BIG", MESSAGE_TOO_BIG),
        ("TOKEN_EXPIRED", TOKEN_EXPIRED),
        ("REVOKED", REVOKED),
        ("IDLE_TIMEOUT", IDLE_TIMEOUT),
        ("SLOW_CONSUMER", SLOW_CONSUMER),
        ("RESUME_REQUIRED", RESUME_REQUIRED),
        ("TRY_AGAIN_LATER", TRY_AGAIN_LATER),
        ("TOO_MANY_CONNECTIONS", TOO_MANY_CONNECTIONS),
    ];
}

/// The `code` of an `error` control message.
pub mod error_code {
    /// The message is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// Not a known message, or a field is wrong.
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// A namespace the catalog does not have.
    pub const UNKNOWN_NAMESPACE: &str = "unknown_namespace";
    /// A `since` that is not an event id of a namespace being subscribed.
    pub const INVALID_SINCE: &str = "invalid_since";
    /// A binary frame; the protocol is JSON text.
    pub const BINARY_NOT_SUPPORTED: &str = "binary_not_supported";
    /// A `refresh` whose token was not accepted (the message says why); the connection keeps
    /// the rights it had.
    pub const REFRESH_REFUSED: &str = "refresh_refused";
    /// A `subscribe` or `unsubscribe` past the connection's budget of subscription changes; it
    /// was not made.
    pub const SUBSCRIBE_RATE_EXCEEDED: &str = "subscribe_rate_exceeded";

    /// Every code above, with what it means (the generated TypeScript's `ErrorCode`).
    pub const ALL: [(&str, &str); 7] = [
        (INVALID_JSON, "the message is not JSON"),
        (INVALID_MESSAGE, "not a known message, or a field is wrong"),
        (UNKNOWN_NAMESPACE, "a namespace the catalog does not have"),
        (
            INVALID_SINCE,
            "a `since` that is not an event id of a namespace being subscribed",
        ),
        (
            BINARY_NOT_SUPPORTED,
            "a binary frame; the protocol is JSON text",
        ),
        (
            REFRESH_REFUSED,
            "a `refresh` whose token was not accepted; the connection keeps the rights it had",
        ),
        (
            SUBSCRIBE_RATE_EXCEEDED,
            "a `subscribe` or `unsubscribe` past the connection's budget of subscription changes; it was not made",
        ),
    ];
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Add namespaces to the subscription.
    Subscribe {
        /// Namespace names.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
        /// The last event id seen of some of them: the server replays what was missed since.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(with = "Vec<schema::EventId>")]
        since: Vec<String>,
    },
    /// Remove namespaces from the subscription.
    Unsubscribe {
        /// Namespace names.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
    },
    /// Go on with the rights of a fresh token of the same user (answered with `refreshed`, or
    /// an `error` with code `refresh_refused`).
    Refresh {
        /// A JWT, checked like the handshake's.
        token: Token,
    },
    /// Ask for a `pong` (an application-level keepalive).
    Ping {
        /// Echoed back in the pong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "PingId")]
        id: Option<PingId>,
    },
}

impl ClientMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client messages serialize")
    }
}

/// A token as a client sends it: a secret, so its `Debug` says nothing of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(transparent)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The longest string a `ping` may carry as its `id`.
pub const MAX_PING_ID_LEN: usize = 64;

/// A `ping`'s `id`: a JSON number, or a string of at most 64 bytes (`MAX_PING_ID_LEN`), so that
/// a pong costs no more than the ping that asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PingId {
    /// A number, echoed exactly as sent.
    Number(serde_json::Number),
    /// A short string.
    String(#[schemars(length(max = MAX_PING_ID_LEN))] String),
}

impl<'de> Deserialize<'de> for PingId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(n) => Ok(PingId::Number(n)),
            serde_json::Value::String(s) if s.len() <= MAX_PING_ID_LEN => Ok(PingId::String(s)),
            serde_json::Value::String(s) => Err(D::Error::custom(format!(
                "a ping `id` string may be at most {MAX_PING_ID_LEN} bytes, not {}",
                s.len()
            ))),
            _ => Err(D::Error::custom(
                "a ping `id` must be a number or a short string",
            )),
        }
    }
}

/// What the server sends besides events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ControlMessage {
    /// Sent once, first, when the connection is set up.
    Ready {
        /// This connection's session id.
        session_id: String,
        /// The token's subject.
        user_id: String,
        /// The token's role.
        #[schemars(with = "schema::RoleName")]
        role: String,
        /// The server's catalog version (`CATALOG_VERSION`): a client built from another
        /// catalog can tell, and say so.
        #[serde(default)]
        catalog_version: String,
        /// Until when the token's rights hold (ms since the Unix epoch; its `exp` and the
        /// server's leeway): refresh before, or be closed then (4001). Left out for never.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "u64")]
        expires_at: Option<u64>,
        /// The namespaces subscribed to.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
        /// For each namespace named in `since`: whether everything missed follows (`true`), or
        /// the client must reload its state (`false`). Left out when nothing was resumed.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        #[schemars(with = "schema::PerNamespace<bool>")]
        recovered: BTreeMap<String, bool>,
        /// Each subscribed namespace's stream position as the connection joined it (an id, as
        /// opaque as an event's): a client's position in a namespace is this, until an event
        /// of it arrives after, except where `recovered` is `true` (the replay that follows
        /// moves it on).
        #[serde(default)]
        #[schemars(with = "schema::Positions")]
        positions: BTreeMap<String, String>,
    },
    /// The whole subscription after a `subscribe`.
    Subscribed {
        /// All namespaces now subscribed to.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
        /// As in `ready`, for the namespaces this `subscribe` named in `since`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        #[schemars(with = "schema::PerNamespace<bool>")]
        recovered: BTreeMap<String, bool>,
        /// As in `ready`, for the namespaces this `subscribe` added.
        #[serde(default)]
        #[schemars(with = "schema::Positions")]
        positions: BTreeMap<String, String>,
    },
    /// A `refresh` took effect: every event from here on is filtered with these rights.
    Refreshed {
        /// The new token's role.
        #[schemars(with = "schema::RoleName")]
        role: String,
        /// Until when the new token's rights hold (ms since the Unix epoch); left out for never.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "u64")]
        expires_at: Option<u64>,
        /// All namespaces now subscribed to.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
        /// The namespaces unsubscribed because the old role saw something in them and the new
        /// one sees nothing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(with = "Vec<schema::NamespaceName>")]
        dropped: Vec<String>,
    },
    /// The application changed this user's rights: send a `refresh` with a token issued from
    /// now on before `deadline` (ms since the Unix epoch), or the connection is closed then
    /// (4001).
    Reauthorize {
        /// When the connection closes unless refreshed.
        deadline: u64,
    },
    /// The whole subscription after an `unsubscribe`.
    Unsubscribed {
        /// All namespaces now subscribed to.
        #[schemars(with = "Vec<schema::NamespaceName>")]
        namespaces: Vec<String>,
    },
    /// The answer to a `ping`.
    Pong {
        /// The ping's id, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "PingId")]
        id: Option<PingId>,
    },
    /// A client message could not be handled; the connection stays open.
    Error {
        /// A stable code saying what was wrong (`error_code`).
        #[schemars(with = "schema::ErrorCode")]
        code: String,
        /// What was wrong.
        message: String,
    },
}

impl ControlMessage {
    /// An `error` control message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ControlMessage::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("control messages serialize")
    }
}

/// An event as a client receives it: `{type, namespace, data, timestamp, id}`.
//
// The server serializes it once per event, borrowing everything; a client reads it borrowing
// from the frame's text where it can.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<'a> {
    /// The event type: `namespace:action`.
    #[serde(rename = "type", borrow)]
    #[schemars(with = "schema::EventTypeName")]
    pub kind: Cow<'a, str>,
    /// The stream the event was recorded in, which its `id` names: the event's own namespace,
    /// or the one the publisher's `options.namespace` addressed.
    #[serde(borrow)]
    #[schemars(with = "schema::NamespaceName")]
    pub namespace: Cow<'a, str>,
    /// The payload, as the event type's schema describes it.
    #[serde(borrow)]
    #[schemars(with = "schema::EventData")]
    pub data: &'a RawValue,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The event's unique id and its position in its namespace's stream.
    #[serde(borrow)]
    #[schemars(with = "schema::EventId")]
    pub id: Cow<'a, str>,
}

/// Anything the server sends: an event or a control message.
#[derive(Debug, Clone)]
pub enum ServerMessage<'a> {
    /// An event (its `type` has a colon).
    Event(Envelope<'a>),
    /// A control message (its `type` has none).
    Control(ControlMessage),
}

impl<'a> ServerMessage<'a> {
    /// Reads a text frame from the server, borrowing from it where it can.
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Tagged<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        let tagged: Tagged<'_> = serde_json::from_str(text)?;
        if tagged.kind.contains(':') {
            serde_json::from_str(text).map(ServerMessage::Event)
        } else {
            serde_json::from_str(text).map(ServerMessage::Control)
        }
    }
}
