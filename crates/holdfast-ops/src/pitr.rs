//! PostgreSQL point-in-time recovery: base backups (pg_basebackup) and WAL archiving
//! (`archive_command`), both saved as recovery points of their own kinds.

use std::collections::BTreeMap;
use std::time::Instant;

use holdfast_engine::point::{Manifest, Summary};
use holdfast_engine::session::Session;
use holdfast_engine::{Id, Result, Vault};
use holdfast_sources::Source;
use holdfast_sources::pitr::{BaseBackupSource, WalSource};
use holdfast_sources::postgres::PgConn;
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::backup::{Meta, commit_point, resolve_url};

/// A base backup of a PostgreSQL cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseBackupRequest {
    /// The cluster's resource name (its WAL is archived under `RESOURCE:wal`).
    pub resource: String,
    /// Connection URL, or `env:VAR` / `file:PATH`.
    pub postgres: String,
}

/// A saved base backup: the `--json` output of `holdfast pg basebackup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseBackupReport {
    /// The point's id.
    pub point: String,
    /// Its resource.
    pub resource: String,
    /// Its time, RFC 3339.
    pub time: String,
    /// Counters.
    pub summary: Summary,
    /// Start and end LSN and time, timeline, segment size, server version.
    pub facts: BTreeMap<String, String>,
}

/// The resource WAL of cluster resource `r` is archived under.
pub fn wal_resource(r: &str) -> String {
    format!("{r}:wal")
}

fn save(
    ctx: &Context<'_>,
    vault: &Vault,
    session: Option<&Session>,
    source: &dyn Source,
    resource: String,
) -> Result<(Id, Manifest)> {
    let start = Instant::now();
    let saved = commit_point(
        ctx,
        vault,
        session,
        source,
        Meta {
            resource,
            tags: vec![],
            time_ns: crate::time::now_ns(),
            host: None,
        },
        start,
    )?;
    Ok((saved.id, saved.manifest))
}

/// Take a base backup.
pub fn basebackup(
    ctx: &Context<'_>,
    vault: &Vault,
    session: Option<&Session>,
    req: &BaseBackupRequest,
) -> Result<BaseBackupReport> {
    let conn = PgConn::parse(&resolve_url("the PostgreSQL URL", &req.postgres)?)?;
    let src = BaseBackupSource::new(&conn)?;
    let (id, m) = save(ctx, vault, session, &src, req.resource.clone())?;
    Ok(BaseBackupReport {
        point: id.to_hex(),
        resource: m.resource,
        time: crate::time::rfc3339_ns(m.time_ns),
        summary: m.summary,
        facts: m.source.facts,
    })
}

/// Archive one WAL file of cluster resource `resource`: (the point's id, the WAL file name).
pub fn wal_push(
    ctx: &Context<'_>,
    vault: &Vault,
    session: Option<&Session>,
    path: &std::path::Path,
    resource: &str,
) -> Result<(Id, String)> {
    let src = WalSource::new(path)?;
    let (id, _) = save(ctx, vault, session, &src, wal_resource(resource))?;
    Ok((id, src.name().to_string()))
}
