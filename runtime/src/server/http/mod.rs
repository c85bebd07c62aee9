//! The HTTP endpoints, one module each, and what they share: the bearer token.

pub(crate) mod health;
pub(crate) mod publish;
pub(crate) mod upgrade;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

pub use crate::server::error::ApiError;

/// Whether `headers` carry one of `keys` as a bearer token; compared in constant time.
pub(crate) fn has_api_key(headers: &HeaderMap, keys: &[String]) -> bool {
    let Some(given) = bearer(headers) else {
        return false;
    };
    // Every key is compared, so timing does not tell which one (or how much of one) matched.
    keys.iter().fold(false, |found, key| {
        found | bool::from(key.as_bytes().ct_eq(given.as_bytes()))
    })
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
