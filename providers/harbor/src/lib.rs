//! Tessera's harbor provider. Its managed-resource kinds arrive in a later change;
//! the crate exists now so that the workspace layout matches `docs/architecture.md`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
