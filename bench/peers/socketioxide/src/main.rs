//! Peer for the benchmark: socketioxide, websocket transport, broadcasting each published event
//! to every client. POST /publish with one {type, data} or a JSON array of them. Connections need
//! ?token=<HS256 JWT>, verified like omnicast verifies it.

use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9003);
    let secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| "bench-secret-0123456789abcdef".into());
    let key = DecodingKey::from_secret(secret.as_bytes());
    // As deep a per-client buffer as omnicast gets in the benchmark (8192 frames): socketioxide
    // drops what does not fit, where omnicast closes the connection.
    let (layer, io) = SocketIo::builder().max_buffer_size(8192).build_layer();
    io.ns("/", move |socket: SocketRef| {
        let query = socket.req_parts().uri.query().unwrap_or("").to_owned();
        let token = query.split('&').find_map(|kv| kv.strip_prefix("token=")).unwrap_or("");
        let valid = decode::<Value>(token, &key, &Validation::new(Algorithm::HS256)).is_ok();
        async move {
            if !valid {
                let _ = socket.disconnect();
            }
        }
    });
    let publisher = io.clone();
    let app = Router::new()
        .route(
            "/publish",
            post(move |Json(body): Json<Value>| {
                let io = publisher.clone();
                let events = match body {
                    Value::Array(events) => events,
                    event => vec![event],
                };
                async move {
                    for event in events {
                        let message = json!({ "type": event["type"], "namespace": "system", "data": event["data"] });
                        let _ = io.emit("event", &message).await;
                    }
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
