//! The HTTP endpoints, one module each, and what they share: the bearer token.

pub(crate) mod console;
pub(crate) mod events;
pub(crate) mod explain;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod positions;
pub(crate) mod revocations;
pub(crate) mod upgrade;

use axum::http::{HeaderMap, StatusCode, header};
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub use crate::server::error::ApiError;

/// Which of `keys` `headers` carry as a bearer token, if any; compared in constant time.
pub(crate) fn api_key<'k>(headers: &HeaderMap, keys: &'k [String]) -> Option<&'k str> {
    let given = bearer(headers)?;
    // Every key is compared and the match selected without a branch, so timing does not tell
    // which one (or how much of one) matched.
    let mut found = u64::MAX;
    for (i, key) in keys.iter().enumerate() {
        found.conditional_assign(&(i as u64), key.as_bytes().ct_eq(given.as_bytes()));
    }
    keys.get(usize::try_from(found).ok()?).map(String::as_str)
}

/// `Ok` when `headers` carry one of `keys`; otherwise the 401 every endpoint behind an API key
/// answers (it says nothing else).
pub(crate) fn require_api_key(headers: &HeaderMap, keys: &[String]) -> Result<(), ApiError> {
    match api_key(headers, keys) {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
        )),
    }
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
