//! `GET /api/positions?namespaces=orders,payments` (an API key): each namespace's current
//! position, as an id clients resume from. A backend reads it *before* it reads its database and
//! hands both to its client: every event published after the read is after the position, so the
//! client, resuming from it (`since`), gets each event its snapshot may lack once, in order
//! (README, "Load, then follow").

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::protocol::error_code;
use crate::server::http::{ApiError, require_api_key};
use crate::server::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    /// Comma-separated namespace names; every namespace when left out.
    namespaces: Option<String>,
}

pub(crate) async fn positions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    if let Err(refusal) = require_api_key(&headers, &state.config.api_keys) {
        return refusal.into_response();
    }
    let catalog = state.hub.catalog();
    let names = params.namespaces.as_deref().filter(|s| !s.is_empty());
    let set = match names {
        None => catalog.all_namespaces(),
        Some(names) => match catalog.namespace_set(names.split(',').map(str::trim)) {
            Ok(set) => set,
            Err(unknown) => {
                let message = format!("unknown namespace `{unknown}`");
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    error_code::UNKNOWN_NAMESPACE,
                    message,
                )
                .into_response();
            }
        },
    };
    let namespaces: Vec<usize> = set.indexes().collect();
    let positions = match state.publisher.broker().positions(&namespaces).await {
        Ok(positions) => positions,
        Err(err) => {
            let retry = HeaderValue::from(err.retry_after.as_secs().max(1));
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the positions cannot be read now: {err}"),
            )
            .with_header(header::RETRY_AFTER, retry)
            .into_response();
        }
    };
    let key = state.hub.positions();
    let positions: Map<String, Value> = positions
        .iter()
        .map(|p| (p.namespace.clone(), Value::String(key.seal(p))))
        .collect();
    Json(json!({ "positions": positions })).into_response()
}
