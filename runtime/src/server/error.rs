//! The server's errors a caller sees: [`ApiError`], the one JSON error every refusal of the HTTP
//! side is made of (`{error, message, path?}`), and [`PublishError`], why a typed emitter's event
//! was not published (by a node's [`Publisher`](crate::server::Publisher) or a sink).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::event::ComputeError;
use crate::server::broker::BrokerError;

/// An HTTP error with the JSON body `{error, message, path?}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// Where in the request, when known (`data.total`, `[2].options.roles[0]`).
    pub path: Option<String>,
    /// Headers the refusal carries besides the body (`Retry-After`, `Sec-WebSocket-Version`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// 429 for a rate spent (`code`, what `who` does too often), with `Retry-After` in whole
    /// seconds (at least one) until `wait` has passed.
    pub(crate) fn rate_exceeded(code: &'static str, who: &str, wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().clamp(1.0, 86_400.0) as u64;
        let message = format!("{who} too often; retry in {secs} s");
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// An error without a path.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            path: None,
            headers: Vec::new(),
        }
    }

    /// The same error, with a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The same error, at `path` in the request.
    pub fn at(mut self, path: String) -> Self {
        self.path = Some(path);
        self
    }

    /// Puts a batch position in front of the path (`[2].data.total`).
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.path = Some(match self.path {
            Some(path) => format!("{prefix}.{path}"),
            None => prefix.to_owned(),
        });
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(path) = self.path {
            body["path"] = Value::String(path);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

/// Why a typed emitter's event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not take it.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A computed field cannot be sent.
    #[error("invalid payload: {0}")]
    Invalid(#[from] ComputeError),
    /// The server is shutting down and takes no more events.
    #[error("the server is shutting down and takes no more events")]
    ShuttingDown,
    /// A remote node's publish API refused the event ([`HttpSink`](crate::server::HttpSink)).
    #[error("the node refused the event ({status} {error}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`invalid_data`, `unauthorized` ...).
        error: String,
        /// The API's message.
        message: String,
    },
}
