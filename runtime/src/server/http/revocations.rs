//! Changing a user's rights while they are connected (an API key each):
//!
//! - `POST /api/revocations`: revoke a user's tokens (all, or those issued before a time), a
//!   login session's (`sid`) or one token (`jti`). The handshake then refuses matching tokens
//!   (401 `token_revoked`) and matching live connections are closed with 4003, on every node,
//!   for `max_token_lifetime`.
//! - `POST /api/reauthorizations`: ask a user's connections to refresh with a token issued from
//!   now on (a `reauthorize` message) before a deadline, when they are closed (4001).
//!
//! Each is answered once the broker recorded it where every node sees it (with Redis: in Redis,
//! announced to every node); 503 when the broker did not confirm it (perhaps recorded, perhaps
//! not): repeating either is always safe.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::server::http::{ApiError, require_api_key};
use crate::server::publication::now_ms;
use crate::server::revocation::{Reauthorization, Revocation, RightsChange};
use crate::server::state::AppState;

/// How long a re-authorization request gives the connections unless it says.
pub const DEFAULT_REAUTHORIZATION_DEADLINE: Duration = Duration::from_secs(30);

pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shape = "expected {\"userId\"?, \"issuedBefore\"?, \"loginSession\"?, \"tokenId\"?}";
    let revocation: Revocation = match request(&state, &headers, &body, shape) {
        Ok(revocation) => revocation,
        Err(refusal) => return refusal.into_response(),
    };
    if revocation.is_empty() {
        let message = format!("name a user, a login session or a token; {shape}");
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).into_response();
    }
    let lifetime = state.config.max_token_lifetime.as_millis() as u64;
    let until_ms = now_ms().saturating_add(lifetime);
    let change = RightsChange::Revoke(revocation.clone());
    let closed = match apply(&state, change, until_ms, "revocation").await {
        Ok(closed) => closed,
        Err(refusal) => return refusal.into_response(),
    };
    tracing::info!(?revocation, closed, "revoked");
    Json(json!({ "revoked": revocation, "until": until_ms, "closed": closed })).into_response()
}

/// The body of `POST /api/reauthorizations`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReauthorizationRequest {
    user_id: String,
    /// Seconds the connections have to refresh (30 unless given; at most the longest token
    /// lifetime).
    #[serde(default)]
    deadline_secs: Option<u64>,
}

pub(crate) async fn reauthorize(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shape = "expected {\"userId\", \"deadlineSecs\"?}";
    let request: ReauthorizationRequest = match request(&state, &headers, &body, shape) {
        Ok(request) => request,
        Err(refusal) => return refusal.into_response(),
    };
    if request.user_id.is_empty() {
        let message = format!("name the user whose rights changed; {shape}");
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).into_response();
    }
    let most = state.config.max_token_lifetime;
    let grace = request
        .deadline_secs
        .map_or(DEFAULT_REAUTHORIZATION_DEADLINE, Duration::from_secs)
        .min(most);
    let asked_ms = now_ms();
    let deadline = asked_ms.saturating_add(grace.as_millis() as u64);
    let change = RightsChange::Reauthorize {
        reauthorize: Reauthorization {
            user_id: request.user_id.clone(),
            asked_ms,
        },
    };
    let asked = match apply(&state, change, deadline, "re-authorization request").await {
        Ok(asked) => asked,
        Err(refusal) => return refusal.into_response(),
    };
    tracing::info!(user = %request.user_id, asked, "re-authorization asked for");
    Json(json!({ "userId": request.user_id, "deadline": deadline, "asked": asked })).into_response()
}

/// The API key checked and the body read as `T`, or the answer refusing it.
fn request<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    require_api_key(headers, &state.config.api_keys)?;
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{err}; {shape}"),
        )
    })
}

/// Puts `change` in force on every node until `until_ms`; how many connections of this node it
/// closed or asked, or the 503 saying it is not confirmed.
async fn apply(
    state: &AppState,
    change: RightsChange,
    until_ms: u64,
    what: &str,
) -> Result<usize, ApiError> {
    let broker = state.publisher.broker();
    broker.change_rights(change, until_ms).await.map_err(|err| {
        // Not confirmed (perhaps recorded, perhaps not): repeating it is always safe.
        let retry = HeaderValue::from(err.retry_after.as_secs().max(1));
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            format!("the {what} is not confirmed; repeat it (that is safe): {err}"),
        )
        .with_header(header::RETRY_AFTER, retry)
    })
}
