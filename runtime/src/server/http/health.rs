//! `GET /healthz`: status and counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
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
