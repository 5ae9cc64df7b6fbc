//! The plan file (`holdfast.toml`): vaults, categories (schedule, windows, retention, copies,
//! RPO/RTO), resources and notification channels — and `plan check`, which validates all of
//! it and names the file, line and fix of every problem. Secrets are referenced (`*_env`,
//! `*_file`), never written in the plan.

mod check;
mod model;

pub use check::{Problem, check};
pub use model::*;
#[cfg(test)]
mod tests;
