//! `POST /api/revocations` (an API key): revoke a user's tokens (all, or those issued before a
//! time), a login session's (`sid`) or one token (`jti`). Answered once the revocation is in
//! force: the handshake refuses matching tokens (401 `token_revoked`) and the matching live
//! connections are closed with 4003, for `max_token_lifetime`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::protocol::close;
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
    if state.publisher.broker().is_shared() {
        let message = "revocations are not shared between nodes yet: with the Redis broker, \
                       revoking on one node would leave the others serving the token";
        return ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
            .into_response();
    }
    let lifetime = state.config.max_token_lifetime.as_millis() as u64;
    let until_ms = now_ms().saturating_add(lifetime);
    let sessions = state.revocations.add(revocation.clone(), until_ms);
    let closed = sessions
        .iter()
        .filter(|s| state.hub.close_session(s, close::REVOKED))
        .count();
    tracing::info!(?revocation, closed, "revoked");
    Json(json!({ "revoked": revocation, "until": until_ms, "closed": closed })).into_response()
}
