//! `POST /api/events`: untyped publishers (other languages, curl) go through the catalog's
//! decoder and then the same [`Publisher`](crate::server::Publisher) as typed emitters.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, DecodeError};
use crate::event::OutgoingEvent;
use crate::options::EmitOptions;
use crate::role::RoleMask;
use crate::server::broker::idempotency::ASSIGNED_WINDOW;
use crate::server::broker::{BrokerError, Failure, IDEMPOTENCY_WINDOW, Idempotency, new_epoch};
use crate::server::http::{ApiError, api_key};
use crate::server::metrics::ACCEPTED;
use crate::server::state::AppState;

/// One event as the publish API (and explain) takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishRequest {
    #[serde(rename = "type")]
    kind: String,
    data: Box<RawValue>,
    #[serde(default)]
    options: Option<RequestOptions>,
    #[serde(default)]
    timestamp: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestOptions {
    roles: Option<Vec<String>>,
    user_ids: Option<Vec<String>>,
    #[serde(default)]
    exclude_user_ids: Vec<String>,
    #[serde(default)]
    exclude_session_ids: Vec<String>,
    namespace: Option<String>,
}

/// `POST /api/events`: one event `{type, data, options?, timestamp?}` or a JSON array of them.
/// A batch is all or nothing: every event is checked before any is published, and the broker
/// stores all of them or none. With an `Idempotency-Key`, a retry of the same request within the
/// key's window answers the first publish's ids and publishes nothing; another request under
/// the same key (of the same API key) is refused with 409. Keys are scoped to the API key.
///
/// Every answer is a promise: 202 stored; 503 certainly nothing stored; 504 `outcome_unknown`
/// when the broker's answer was lost, with the `Idempotency-Key` under which a retry is safe
/// (assigned by the server when the request had none and the broker can lose answers).
///
/// The key is checked from the headers before any of the body is read, and the body must arrive
/// within the request timeout.
pub(crate) async fn publish(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let metrics = state.hub.metrics();
    // A refusal before the events are read counts as one publish of an unknown type.
    let refuse = |err: ApiError| {
        metrics.published("", err.code);
        err.into_response()
    };
    let Some(api_key) = api_key(request.headers(), &state.config.api_keys) else {
        return refuse(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
        ));
    };
    // Buckets are named by the key's place in the configuration, never by the secret itself.
    let key_index = state.config.api_keys.iter().position(|k| k == api_key);
    if let Some(limiter) = &state.publishes
        && let Err(wait) = limiter.acquire(
            &format!("api-key-{}", key_index.unwrap_or_default()),
            std::time::Instant::now(),
        )
    {
        let who = "this API key publishes";
        return refuse(ApiError::rate_exceeded("publish_rate_exceeded", who, wait));
    }
    let given_key = match idempotency_key(request.headers()) {
        Ok(key) => key,
        Err(err) => return refuse(err),
    };
    // Held until the response is built: shutdown waits for it before closing connections.
    let Some(pass) = state.publisher.enter() else {
        return refuse(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down and takes no more events",
        ));
    };
    let timeout = state.config.request_timeout;
    let body = match tokio::time::timeout(timeout, Bytes::from_request(request, &())).await {
        Err(_) => {
            let message = format!("the body did not arrive within {} s", timeout.as_secs_f64());
            return refuse(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                message,
            ));
        }
        Ok(body) => body,
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let limit = state.config.max_publish_bytes;
            let message = format!("the body exceeds the publish limit of {limit} bytes");
            return refuse(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                message,
            ));
        }
        Err(rejection) => {
            return refuse(ApiError::new(
                rejection.status(),
                "unreadable_body",
                rejection.body_text(),
            ));
        }
    };
    let started = std::time::Instant::now();
    let (events, batch) = match prepare(state.hub.catalog(), &body) {
        Ok(prepared) => prepared,
        Err(err) => return refuse(err),
    };
    let types: Vec<&'static str> = events.iter().map(|e| e.descriptor.name).collect();
    // A broker that can lose an answer gets a key for every publish, so that a retry after an
    // unknown outcome is safe even for a caller that sent none.
    let key = given_key.map(|key| (key, IDEMPOTENCY_WINDOW)).or_else(|| {
        let assign = state.publisher.broker().outcome_may_be_unknown();
        assign.then(|| {
            (
                format!("omnicast-{}{}", new_epoch(), new_epoch()),
                ASSIGNED_WINDOW,
            )
        })
    });
    let idempotency = key
        .as_ref()
        .map(|(key, window)| Idempotency::new(&scope(api_key), key, &events, *window));
    let key = key.map(|(key, _)| key);
    let outcome = pass.publish(events, idempotency).await;
    let code = outcome.as_ref().err().map(|err| refusal(err, None).code);
    for event in types {
        metrics.published(event, code.unwrap_or(ACCEPTED));
    }
    metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    match &outcome {
        Ok(ids) => tracing::debug!(event_ids = ?ids, key = ?key, "publish accepted"),
        Err(err) => tracing::debug!(%err, key = ?key, "publish refused"),
    }
    let response = match outcome {
        Ok(ids) => {
            let body = if batch {
                json!({ "ids": ids })
            } else {
                json!({ "id": ids[0] })
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        Err(err) => refusal(&err, key.as_deref()).into_response(),
    };
    with_key(response, key.as_deref())
}

/// The answer to a publish the broker did not take: what the caller may assume, and how to
/// retry.
fn refusal(err: &BrokerError, key: Option<&str>) -> ApiError {
    let retry_after = HeaderValue::from(err.retry_after.as_secs_f64().ceil().max(1.0) as u64);
    match err.failure {
        Failure::Unavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            format!("{err}; nothing was published, retry later"),
        )
        .with_header(header::RETRY_AFTER, retry_after),
        Failure::OutcomeUnknown => {
            let retry = match key {
                Some(key) => format!(
                    "retry with `Idempotency-Key: {key}`, which publishes it once either way"
                ),
                None => "a retry may publish it twice".to_owned(),
            };
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                format!("{err}; the events may or may not have been stored: {retry}"),
            )
            .with_header(header::RETRY_AFTER, retry_after)
        }
        Failure::KeyReused => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!(
                "`Idempotency-Key` {} was used for another request within its window; nothing was published: use a new key for a new request",
                key.unwrap_or_default()
            ),
        ),
    }
}

/// Tells the caller the `Idempotency-Key` its publish went under (its own, or the one the
/// server assigned).
fn with_key(mut response: Response, key: Option<&str>) -> Response {
    if let Some(value) = key.and_then(|key| HeaderValue::from_str(key).ok()) {
        response.headers_mut().insert("idempotency-key", value);
    }
    response
}

/// Whose keys these are: a digest of the API key (never the key itself), so that two
/// publishers' `Idempotency-Key`s never meet.
fn scope(api_key: &str) -> String {
    let digest = Sha256::digest(api_key.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("api-{hex}")
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 128;

/// The request's `Idempotency-Key`: printable ASCII without spaces, at most
/// [`MAX_IDEMPOTENCY_KEY`] bytes.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!(
                "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"
            ),
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// Parses and decodes a request body into ready events; `true` when it was a batch.
pub(crate) fn prepare(
    catalog: &'static Catalog,
    body: &[u8],
) -> Result<(Vec<OutgoingEvent>, bool), ApiError> {
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let requests: Vec<PublishRequest> = if batch {
        serde_json::from_slice(body)
    } else {
        serde_json::from_slice(body).map(|one| vec![one])
    }
    .map_err(|err| {
        let code = if err.is_data() {
            "invalid_request"
        } else {
            "malformed_json"
        };
        let shape =
            "expected {\"type\", \"data\", \"options\"?, \"timestamp\"?} or an array of them";
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("{err}; {shape}"))
    })?;
    if requests.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the batch is empty",
        ));
    }
    let events = requests
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let prefix = if batch {
                format!("[{i}]")
            } else {
                String::new()
            };
            decode(catalog, request).map_err(|err| err.prefixed(&prefix))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, batch))
}

/// The event a request describes, checked against the catalog like a publish.
pub(crate) fn decode(
    catalog: &'static Catalog,
    request: PublishRequest,
) -> Result<OutgoingEvent, ApiError> {
    let options = match request.options {
        Some(options) => resolve_options(catalog, options)?,
        None => EmitOptions::default(),
    };
    let mut event = catalog
        .decode(&request.kind, &request.data, options)
        .map_err(|err| match err {
            DecodeError::UnknownType { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_type", err.to_string())
                    .at("type".into())
            }
            DecodeError::InvalidData { path, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_data", message).at(path)
            }
        })?;
    event.timestamp = request.timestamp;
    Ok(event)
}

fn resolve_options(
    catalog: &'static Catalog,
    options: RequestOptions,
) -> Result<EmitOptions, ApiError> {
    let invalid = |path: String, message: String| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_options", message).at(path)
    };
    let roles = match options.roles {
        None => None,
        Some(names) => {
            let mut mask = RoleMask::EMPTY;
            for (i, name) in names.iter().enumerate() {
                let role = catalog.role(name).ok_or_else(|| {
                    let known: Vec<&str> = catalog.roles.iter().map(|r| r.name).collect();
                    invalid(
                        format!("options.roles[{i}]"),
                        format!("unknown role `{name}`; roles are {}", known.join(", ")),
                    )
                })?;
                mask = mask | role;
            }
            Some(mask)
        }
    };
    let namespace = match options.namespace {
        None => None,
        Some(name) => Some(catalog.namespace(&name).ok_or_else(|| {
            invalid(
                "options.namespace".into(),
                format!("unknown namespace `{name}`"),
            )
        })?),
    };
    Ok(EmitOptions {
        roles,
        user_ids: options.user_ids,
        exclude_user_ids: options.exclude_user_ids,
        exclude_session_ids: options.exclude_session_ids,
        namespace,
    })
}
