//! Pure generators from the validated model: Rust tokens and markdown text.

pub mod markdown;
pub mod rust;
