//! `GET /healthz` (liveness: status and counters) and `GET /readyz` (readiness: 503 while the
//! node cannot take publications, its broker unreachable or shutdown begun).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::server::state::AppState;

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = if state.shutting_down() {
        "shutting_down"
    } else {
        "ok"
    };
    Json(json!({ "status": status, "stats": state.hub.stats() })).into_response()
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let (status, reason) = if state.shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if !state.publisher.broker().ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable")
    } else {
        (StatusCode::OK, "ready")
    };
    let mut response = (status, Json(json!({ "status": reason }))).into_response();
    if status != StatusCode::OK {
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
