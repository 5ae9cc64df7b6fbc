//! JSON Schemas of the JSON contract, generated from the types: each command's `--json`
//! report and the worker protocol. docs/schema/ holds them; a test fails when a type and
//! its checked-in schema differ (`HOLDFAST_UPDATE_SCHEMA=1 cargo test -p holdfast-ops
//! --test schema` rewrites them).

use schemars::{JsonSchema, Schema, schema_for};

/// Every schema, by file name (without `.json`).
pub fn all() -> Vec<(&'static str, Schema)> {
    fn one<T: JsonSchema>(name: &'static str) -> (&'static str, Schema) {
        (name, schema_for!(T))
    }
    vec![
        one::<crate::backup::BackupReport>("backup"),
        one::<crate::pitr::BaseBackupReport>("pg-basebackup"),
        one::<holdfast_engine::copy::CopyReport>("copy"),
        one::<crate::forget::ForgetReport>("forget"),
        one::<holdfast_engine::prune::PruneReport>("prune"),
        one::<crate::verify::VerifyOutput>("verify"),
        one::<crate::restore::RestoreReport>("restore"),
        one::<crate::restore_test::RestoreTestReport>("restore-test"),
        one::<crate::evidence::EvidenceList>("evidence-list"),
        one::<crate::drill::DrillReport>("drill"),
        one::<Vec<crate::points::PointRow>>("points"),
        one::<holdfast_engine::repair::RepairReport>("repair-index"),
        one::<crate::protect::ProtectionReport>("protection"),
        one::<crate::pitr_restore::PitrRestoreReport>("pg-restore"),
        one::<crate::worker::Job>("worker-job"),
        one::<crate::worker::Event>("worker-event"),
    ]
}
