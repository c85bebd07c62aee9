//! `GET /console`: the operator's console, a page served by the node itself (the HTML and a
//! script bundled from `clients/typescript/console/console.ts`). The page holds no data: it
//! shows the stream only with a token and the figures and explain only with an API key, both
//! typed in by the operator and sent to the node's own endpoints.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("../../../assets/console.html");
const SCRIPT: &str = include_str!("../../../assets/console.js");

pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        PAGE,
    )
}

pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        SCRIPT,
    )
}
