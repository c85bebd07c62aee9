//! Pure generators from the validated model: Rust tokens, markdown text and TypeScript types.

pub mod markdown;
pub mod rust;
pub mod typescript;
