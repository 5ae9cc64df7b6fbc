//! Restore a recovery point into a folder, a PostgreSQL or MariaDB server, a SQLite file, an
//! S3 bucket, or a program's standard input.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use holdfast_engine::tree::{Node, NodeKind};
use holdfast_engine::{Error, Id, Result, Vault};
use holdfast_sources::restore::{self, Includes};
use holdfast_sources::{export, mysql, postgres, sqlite};
use serde::{Deserialize, Serialize};

use crate::Context;
use crate::backup::{open_bucket, resolve_url};

/// Where a restore writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum RestoreTarget {
    /// A folder (created if missing; nothing is written outside it).
    Dir {
        /// The folder.
        path: PathBuf,
        /// Only paths matching these globs (empty: all).
        #[serde(default)]
        includes: Vec<String>,
    },
    /// A PostgreSQL server (pg_restore per database, globals first).
    Postgres {
        /// Connection URL, or `env:VAR` / `file:PATH`.
        url: String,
        /// Only these databases (empty: all in the point).
        #[serde(default)]
        databases: Vec<String>,
        /// Restore the one chosen database under this name.
        #[serde(default)]
        as_database: Option<String>,
        /// Parallel pg_restore jobs.
        jobs: usize,
    },
    /// A MariaDB/MySQL server.
    Mysql {
        /// Connection URL, or `env:VAR` / `file:PATH`.
        url: String,
    },
    /// A new SQLite file (it must not exist), checked with `integrity_check`.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// Objects in an S3 bucket/prefix, with their recorded metadata.
    S3 {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// The bucket's endpoint (default: the vault's S3 settings).
        #[serde(default)]
        endpoint: Option<String>,
    },
    /// A program's standard input (the point must hold one file).
    Command {
        /// The command line.
        line: String,
    },
}

/// A restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreRequest {
    /// The point: an id prefix, `latest` or `latest:RESOURCE`.
    pub point: String,
    /// Where to.
    pub target: RestoreTarget,
}

/// A restore into a folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FilesRestored {
    /// The point's id.
    pub point: String,
    /// The folder.
    pub target: String,
    /// What was restored and what was not.
    #[serde(flatten)]
    pub counts: restore::RestoreReport,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// A restore into a database, a file, a bucket or a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IntoRestored {
    /// The point's id.
    pub point: String,
    /// What was restored into (databases, files, URLs, names).
    pub restored: Vec<String>,
    /// One line per step for a person (not part of the JSON).
    #[serde(skip)]
    pub said: Vec<String>,
}

/// What a restore did: the `--json` output of `holdfast restore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RestoreReport {
    /// Into a folder.
    Files(FilesRestored),
    /// Into anything else.
    Into(IntoRestored),
}

impl RestoreReport {
    /// The restored point's id.
    pub fn point(&self) -> &str {
        match self {
            RestoreReport::Files(f) => &f.point,
            RestoreReport::Into(i) => &i.point,
        }
    }

    /// Whether something could not be restored (a partial restore).
    pub fn partial(&self) -> bool {
        match self {
            RestoreReport::Files(f) => !f.counts.damaged.is_empty() || !f.counts.errors.is_empty(),
            RestoreReport::Into(_) => false,
        }
    }
}

/// Restore what `req` names from `vault` (a full key is needed; the index must be loaded).
pub fn restore(ctx: &Context<'_>, vault: &Vault, req: &RestoreRequest) -> Result<RestoreReport> {
    let (id, m) = vault.find_point(&req.point)?;
    if let RestoreTarget::Dir { path, includes } = &req.target {
        let includes = Includes::new(includes)?;
        let progress = |n: u64| ctx.sink.bytes(n);
        let start = std::time::Instant::now();
        let r = restore::restore(vault, &m.root, path, &includes, &progress)?;
        return Ok(RestoreReport::Files(FilesRestored {
            point: id.to_hex(),
            target: path.display().to_string(),
            counts: r,
            seconds: start.elapsed().as_secs_f64(),
        }));
    }
    let files = root_files(vault, &m.root)?;
    let mut said = Vec::new();
    let mut restored: Vec<String> = Vec::new();
    match &req.target {
        RestoreTarget::Dir { .. } => {}
        RestoreTarget::Postgres {
            url,
            databases,
            as_database,
            jobs,
        } => {
            need_kind(&m.source.kind, "postgres")?;
            let conn = postgres::PgConn::parse(&resolve_url("the PostgreSQL URL", url)?)?;
            let dumps: Vec<(String, &Node)> = files
                .iter()
                .filter_map(|(n, node)| postgres::db_for_file(n).map(|db| (db, node)))
                .filter(|(db, _)| databases.is_empty() || databases.contains(db))
                .collect();
            for want in databases {
                if !dumps.iter().any(|(db, _)| db == want) {
                    return Err(Error::NotFound(format!(
                        "the point has no database {want:?}"
                    )));
                }
            }
            if as_database.is_some() && dumps.len() != 1 {
                return Err(Error::Input(
                    "restoring under another name needs exactly one database (choose it)".into(),
                ));
            }
            let tmp = tempfile::Builder::new()
                .prefix("holdfast-restore-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            if let Some(g) = files.get("globals.sql") {
                let path = to_temp(vault, tmp.path(), "globals.sql", g)?;
                let notes = postgres::restore_globals(&conn, &path)?;
                if !notes.is_empty() {
                    ctx.sink.note(&format!("note: globals: {notes}"));
                }
            }
            for (db, node) in dumps {
                ctx.cancel.check("the restore")?;
                let target = as_database.clone().unwrap_or_else(|| db.clone());
                let path = to_temp(vault, tmp.path(), "db.dump", node)?;
                postgres::restore_database(&conn, &target, &path, *jobs)?;
                let _ = std::fs::remove_file(&path);
                said.push(format!(
                    "restored database {db:?} into {target:?} on {}",
                    conn.display()
                ));
                restored.push(target);
            }
        }
        RestoreTarget::Mysql { url } => {
            need_kind(&m.source.kind, "mysql")?;
            let conn = mysql::MyConn::parse(&resolve_url("the MySQL URL", url)?)?;
            let node = files
                .get("dump.sql")
                .ok_or_else(|| Error::damaged(format!("point {}", id.short()), "no dump.sql"))?;
            pipe_into(
                vault,
                node,
                mysql::restore_command(&conn)?,
                "restore into mysql",
            )?;
            said.push(format!("restored dump.sql into {}", conn.display()));
            restored.push(conn.display());
        }
        RestoreTarget::Sqlite { path } => {
            need_kind(&m.source.kind, "sqlite")?;
            let (_, node) = files
                .iter()
                .next()
                .ok_or_else(|| Error::damaged(format!("point {}", id.short()), "no file"))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            restore::dump(vault, node, &mut f)?;
            f.sync_all().map_err(|e| Error::io(path, e))?;
            drop(f);
            sqlite::integrity_check(path)?;
            said.push(format!("restored {} (integrity_check: ok)", path.display()));
            restored.push(path.display().to_string());
        }
        RestoreTarget::S3 { url, endpoint } => {
            need_kind(&m.source.kind, "s3")?;
            let n = restore_to_s3(ctx, vault, url, endpoint.clone(), &m.root)?;
            said.push(format!("restored {n} objects to {url}"));
            restored.push(url.clone());
        }
        RestoreTarget::Command { line } => {
            if files.len() != 1 {
                return Err(Error::Input(format!(
                    "a restore into a program needs a point with one file; this one has {}",
                    files.len()
                )));
            }
            let Some((name, node)) = files.iter().next() else {
                return Err(Error::damaged(format!("point {}", id.short()), "no file"));
            };
            let (program, args) = export::split_command(line)?;
            let mut cmd = std::process::Command::new(program);
            holdfast_sources::child_env::for_program(&mut cmd).args(args);
            pipe_into(vault, node, cmd, "restore into a program")?;
            said.push(format!("piped {name} into {line}"));
            restored.push(name.clone());
        }
    }
    Ok(RestoreReport::Into(IntoRestored {
        point: id.to_hex(),
        restored,
        said,
    }))
}

/// The files at the root of a point, by name.
fn root_files(vault: &Vault, root: &Id) -> Result<BTreeMap<String, Node>> {
    Ok(vault
        .load_tree(root)?
        .nodes
        .into_iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. }))
        .map(|n| (String::from_utf8_lossy(&n.name).into_owned(), n))
        .collect())
}

fn need_kind(kind: &str, want: &str) -> Result<()> {
    if kind == want {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "a restore into {want} needs a {want} recovery point; this one is of kind {kind:?}"
        )))
    }
}

/// Write one stored file into a private temporary folder.
fn to_temp(vault: &Vault, dir: &Path, name: &str, node: &Node) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    restore::dump(vault, node, &mut f)?;
    f.sync_all().map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Pipe a stored file into a command's standard input; fails if it exits non-zero.
fn pipe_into(vault: &Vault, node: &Node, mut cmd: std::process::Command, what: &str) -> Result<()> {
    // A safety net: callers scrub for the program's kind; holdfast's secrets never pass.
    holdfast_sources::child_env::for_program(&mut cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| export::spawn_error(&program, what, e))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(Error::Input(format!(
            "{what}: {program} has no standard input"
        )));
    };
    let written = restore::dump(vault, node, &mut stdin);
    let _ = stdin.flush();
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Input(format!("{what}: {e}")))?;
    export::exited(&program, what, &out)?;
    written.map(|_| ())
}

/// Write every file of an S3 point back as objects, with the recorded metadata.
fn restore_to_s3(
    ctx: &Context<'_>,
    vault: &Vault,
    url: &str,
    endpoint: Option<String>,
    root: &Id,
) -> Result<usize> {
    let bucket = open_bucket(ctx, url, endpoint)?;
    let mut files: Vec<(String, Node)> = Vec::new();
    let mut failure = None;
    holdfast_engine::walk::walk(vault, root, &mut |v| {
        match v {
            holdfast_engine::walk::Visit::Node(path, n)
                if matches!(n.kind, NodeKind::File { .. }) =>
            {
                files.push((String::from_utf8_lossy(path).into_owned(), n.clone()));
            }
            holdfast_engine::walk::Visit::Damaged(path, e) => {
                failure.get_or_insert(Error::damaged(
                    String::from_utf8_lossy(path).into_owned(),
                    e,
                ));
            }
            _ => {}
        }
        true
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let metas = match files
        .iter()
        .find(|(p, _)| p == holdfast_sources::s3src::SIDECAR)
    {
        Some((_, n)) => {
            let mut buf = Vec::new();
            restore::dump(vault, n, &mut buf)?;
            holdfast_sources::s3src::parse_sidecar(&buf)?
        }
        None => BTreeMap::new(),
    };
    let mut n = 0;
    for (path, node) in files
        .iter()
        .filter(|(p, _)| p != holdfast_sources::s3src::SIDECAR)
    {
        let mut data = Vec::new();
        restore::dump(vault, node, &mut data)?;
        let meta = metas.get(path).cloned().unwrap_or_default();
        bucket.write(path, data, &meta)?;
        n += 1;
    }
    Ok(n)
}
