//! Declared protection that runs itself. A resource's run (backup with hooks, retries and
//! windows; copies; retention and prune) is [`runner`]; every step is a job recorded in the
//! SQLite [`catalog`]; the [`daemon`] runs resources on their categories' schedules ([`schedule`]), watches
//! RPOs ([`status`]), notifies through an outbox ([`notify`], [`mail`]) and serves [`metrics`]
//! and the REST [`api`] (point lists from a cache, [`points`]). Each step executes the `holdfast` binary as a child process ([`exec`],
//! [`commands`]) so windows can be enforced by stopping it and a failing step cannot take
//! the scheduler down.

pub mod api;
pub mod catalog;
pub mod clock;
pub mod commands;
pub mod daemon;
pub mod exec;
pub mod job;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod points;
pub mod preflight;
pub mod runbook;
pub mod runner;
pub mod schedule;
pub mod settings;
pub mod status;

pub use catalog::{Catalog, CatalogError, Filter, JobRecord};
pub use job::{JobKind, JobState};
pub use runner::{RunReport, Runtime};
pub use settings::{LoadError, LoadedPlan, Settings};
