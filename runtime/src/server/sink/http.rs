//! Emitting into a remote node's publish API: a service builds
//! `Events::new(HttpSink::new(&CATALOG, "http://omnicast:8080", key)?)` and needs no node of its
//! own. Each event is one `POST /api/events` with an `Idempotency-Key`, retried (up to three
//! attempts) when the node is unreachable or answers 503, so a retry never publishes twice.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{ATTEMPTS, MAX_WAIT};
use crate::catalog::Catalog;
use crate::emit::EventSink;
use crate::event::{ComputeError, OutgoingEvent};
use crate::server::broker::{BoxFuture, BrokerError, new_epoch};
use crate::server::error::PublishError;
use crate::server::publication::now_ms;

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A typed emitters' sink posting to a node's publish API (`http://` only; put TLS in front).
/// `send()` resolves to the event's id. Cheap to clone; must be used within a Tokio runtime.
#[derive(Clone)]
pub struct HttpSink {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: &'static Catalog,
    url: Uri,
    authorization: HeaderValue,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API key stays out of debug output.
        f.debug_struct("HttpSink")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// Why an [`HttpSink`] cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    /// The base URL is not `http://host:port`.
    #[error("`{0}` is not an http:// URL of an omnicast node")]
    BadUrl(String),
    /// The API key cannot go in a header.
    #[error("the API key contains characters a header cannot carry")]
    BadKey,
}

impl HttpSink {
    /// A sink posting `catalog`'s events to the node at `base_url` (`http://host:port`) with
    /// `api_key`.
    pub fn new(
        catalog: &'static Catalog,
        base_url: &str,
        api_key: &str,
    ) -> Result<Self, HttpSinkError> {
        let base = base_url.trim_end_matches('/');
        let url: Uri = format!("{base}/api/events")
            .parse()
            .map_err(|_| HttpSinkError::BadUrl(base_url.to_owned()))?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(HttpSinkError::BadUrl(base_url.to_owned()));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .map_err(|_| HttpSinkError::BadKey)?;
        authorization.set_sensitive(true);
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(HttpSink {
            inner: Arc::new(Inner {
                catalog,
                url,
                authorization,
                client,
            }),
        })
    }
}

/// The publish API's body for `event`.
fn body(catalog: &Catalog, event: &OutgoingEvent) -> String {
    let options = &event.options;
    let roles = options
        .roles
        .map(|mask| catalog.role_names(mask & catalog.all_roles()));
    json!({
        "type": event.descriptor.name,
        "data": event.data,
        "timestamp": event.timestamp,
        "options": {
            "roles": roles,
            "userIds": options.user_ids,
            "excludeUserIds": options.exclude_user_ids,
            "excludeSessionIds": options.exclude_session_ids,
            "namespace": options.namespace,
        },
    })
    .to_string()
}

/// What one attempt came to.
enum Attempt {
    Published(String),
    /// Worth another attempt after this long.
    Retry(BrokerError),
    Failed(PublishError),
}

impl Inner {
    async fn attempt(&self, body: &Bytes, key: &str) -> Attempt {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("idempotency-key", key)
            .body(Full::new(body.clone()))
            .expect("a request of valid parts");
        // Sent, perhaps published: only the key makes a retry safe.
        let unreachable = |reason: String| {
            Attempt::Retry(BrokerError::outcome_unknown(format!(
                "{} unreachable: {reason}",
                self.url
            )))
        };
        let response =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                // No connection, so no request: certainly nothing stored.
                Ok(Err(err)) if err.is_connect() => {
                    return Attempt::Retry(BrokerError::new(format!(
                        "{} unreachable: {err}",
                        self.url
                    )));
                }
                Ok(Err(err)) => return unreachable(err.to_string()),
                Err(_) => return unreachable("timed out".into()),
            };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs);
        let reply: Value =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, response.into_body().collect()).await {
                Ok(Ok(collected)) => {
                    serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null)
                }
                _ => return unreachable("the reply broke off".into()),
            };
        let text = |field: &str| reply[field].as_str().unwrap_or_default().to_owned();
        match status {
            StatusCode::ACCEPTED => match reply["id"].as_str() {
                Some(id) => Attempt::Published(id.to_owned()),
                None => Attempt::Failed(PublishError::Rejected {
                    status: status.as_u16(),
                    error: "unexpected_reply".into(),
                    message: reply.to_string(),
                }),
            },
            // 503: nothing was stored. 504 (`outcome_unknown`) and a proxy's 502: perhaps it
            // was; the retry carries the same key, so it is published once either way. A 409
            // (the key was used for another request) is never retried.
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => Attempt::Retry(BrokerError {
                retry_after,
                ..if status == StatusCode::SERVICE_UNAVAILABLE {
                    BrokerError::new(format!(
                        "{} answered {status}: {}",
                        self.url,
                        text("message")
                    ))
                } else {
                    BrokerError::outcome_unknown(format!(
                        "{} answered {status}: {}",
                        self.url,
                        text("message")
                    ))
                }
            }),
            _ => Attempt::Failed(PublishError::Rejected {
                status: status.as_u16(),
                error: text("error"),
                message: text("message"),
            }),
        }
    }
}

impl EventSink for HttpSink {
    type Output = BoxFuture<'static, Result<String, PublishError>>;

    fn publish(&self, mut event: OutgoingEvent) -> Self::Output {
        let inner = self.inner.clone();
        event.timestamp.get_or_insert(now_ms());
        let body = Bytes::from(body(inner.catalog, &event));
        let key = format!("http-sink-{}{}", new_epoch(), new_epoch());
        Box::pin(async move {
            let mut attempt = 1;
            loop {
                match inner.attempt(&body, &key).await {
                    Attempt::Published(id) => return Ok(id),
                    Attempt::Failed(err) => return Err(err),
                    Attempt::Retry(err) if attempt < ATTEMPTS => {
                        tracing::debug!(%err, attempt, "publish failed; retrying");
                        tokio::time::sleep(err.retry_after.min(MAX_WAIT)).await;
                        attempt += 1;
                    }
                    Attempt::Retry(err) => return Err(err.into()),
                }
            }
        })
    }

    fn refuse(&self, error: ComputeError) -> Self::Output {
        Box::pin(std::future::ready(Err(error.into())))
    }
}
