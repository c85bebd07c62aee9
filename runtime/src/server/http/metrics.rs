//! `GET /metrics`: the node's metrics in the Prometheus text format, for a scraper holding a
//! publish API key (`Authorization: Bearer <key>`, which Prometheus' `authorization` scrape
//! setting sends). Without one: 401, and nothing is shown.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::server::http::require_api_key;
use crate::server::state::AppState;

pub(crate) async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(refusal) = require_api_key(&headers, &state.config.api_keys) {
        return refusal.into_response();
    }
    let mut response = state.hub.render_metrics().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
