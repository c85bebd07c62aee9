//! `POST /api/revocations` (an API key): revoke a user's tokens (all, or those issued before a
//! time), a login session's (`sid`) or one token (`jti`). Answered once the broker recorded it
//! where every node sees it (with Redis: in Redis, announced to every node): the handshake then
//! refuses matching tokens (401 `token_revoked`) and matching live connections are closed with
//! 4003, on every node, for `max_token_lifetime`. 503 when the broker did not confirm it
//! (perhaps recorded, perhaps not): repeating a revocation is always safe.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::http::{ApiError, require_api_key};
use crate::server::publication::now_ms;
use crate::server::revocation::Revocation;
use crate::server::state::AppState;

pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = require_api_key(&headers, &state.config.api_keys) {
        return refusal.into_response();
    }
    let shape = "expected {\"userId\"?, \"issuedBefore\"?, \"loginSession\"?, \"tokenId\"?}";
    let revocation: Revocation = match serde_json::from_slice(&body) {
        Ok(revocation) => revocation,
        Err(err) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{err}; {shape}"),
            )
            .into_response();
        }
    };
    if revocation.is_empty() {
        let message = format!("name a user, a login session or a token; {shape}");
        return ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).into_response();
    }
    let lifetime = state.config.max_token_lifetime.as_millis() as u64;
    let until_ms = now_ms().saturating_add(lifetime);
    let closed = match state
        .publisher
        .broker()
        .revoke(revocation.clone(), until_ms)
        .await
    {
        Ok(closed) => closed,
        Err(err) => {
            // Not confirmed (perhaps recorded, perhaps not): repeating it is always safe.
            let retry = HeaderValue::from(err.retry_after.as_secs().max(1));
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the revocation is not confirmed; repeat it (that is safe): {err}"),
            )
            .with_header(header::RETRY_AFTER, retry)
            .into_response();
        }
    };
    tracing::info!(?revocation, closed, "revoked");
    Json(json!({ "revoked": revocation, "until": until_ms, "closed": closed })).into_response()
}
