//! Restoring into something other than a folder: a PostgreSQL or MariaDB server, a SQLite
//! file, or a program's standard input.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

use holdfast_engine::tree::{Node, NodeKind};
use holdfast_engine::{Error, Result, Vault};
use holdfast_sources::{export, mysql, postgres, restore, sqlite};

use super::Ctx;
use crate::cli::RestoreArgs;
use crate::exit;

/// The files at the root of a point, by name.
fn root_files(vault: &Vault, root: &holdfast_engine::Id) -> Result<BTreeMap<String, Node>> {
    Ok(vault
        .load_tree(root)?
        .nodes
        .into_iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. }))
        .map(|n| (String::from_utf8_lossy(&n.name).into_owned(), n))
        .collect())
}

fn need_kind(kind: &str, want: &str, flag: &str) -> Result<()> {
    if kind == want {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "{flag} needs a {want} recovery point; this one is of kind {kind:?}"
        )))
    }
}

/// Write one stored file into a private temporary folder.
fn to_temp(
    vault: &Vault,
    dir: &std::path::Path,
    name: &str,
    node: &Node,
) -> Result<std::path::PathBuf> {
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
        .map_err(|e| Error::Input(format!("{what}: cannot run {program}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = restore::dump(vault, node, &mut stdin);
    let _ = stdin.flush();
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Input(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Input(format!(
            "{what}: {program} failed ({}): {}",
            out.status,
            export::tail(&out.stderr)
        )));
    }
    written.map(|_| ())
}

/// Open `s3://bucket/prefix` as plain objects (a source or restore target, not a vault).
pub fn open_bucket(
    ctx: &Ctx,
    url: &str,
    endpoint: Option<String>,
) -> Result<holdfast_storage::s3_objects::S3Bucket> {
    match holdfast_storage::url::Location::parse(url).map_err(|e| Error::Input(e.message))? {
        holdfast_storage::url::Location::S3 { bucket, prefix } => {
            Ok(holdfast_storage::s3_objects::S3Bucket::open(
                &bucket,
                &prefix,
                &ctx.s3_with(endpoint, None),
            )?)
        }
        _ => Err(Error::Input(format!(
            "{url:?} is not an s3://BUCKET/PREFIX URL"
        ))),
    }
}

/// Write every file of an S3 point back as objects, with the recorded metadata.
fn restore_to_s3(
    ctx: &Ctx,
    a: &RestoreArgs,
    vault: &Vault,
    url: &str,
    root: &holdfast_engine::Id,
) -> Result<usize> {
    let bucket = open_bucket(ctx, url, a.to_s3_endpoint.clone())?;
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

pub fn restore_to(ctx: &Ctx, a: &RestoreArgs, vault: &Vault) -> Result<i32> {
    let (id, m) = vault.find_point(&a.point)?;
    let files = root_files(vault, &m.root)?;
    let say = |s: String| {
        if !ctx.quiet && !ctx.json {
            println!("{s}");
        }
    };
    let mut restored: Vec<String> = Vec::new();
    if let Some(url) = &a.to_postgres {
        need_kind(&m.source.kind, "postgres", "--to-postgres")?;
        let conn = postgres::PgConn::parse(&super::backup::source_url("--to-postgres", url)?)?;
        let dumps: Vec<(String, &Node)> = files
            .iter()
            .filter_map(|(n, node)| postgres::db_for_file(n).map(|db| (db, node)))
            .filter(|(db, _)| a.databases.is_empty() || a.databases.contains(db))
            .collect();
        for want in &a.databases {
            if !dumps.iter().any(|(db, _)| db == want) {
                return Err(Error::Input(format!("the point has no database {want:?}")));
            }
        }
        if a.as_database.is_some() && dumps.len() != 1 {
            return Err(Error::Input(
                "--as-database needs exactly one database (use --database)".into(),
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
                eprintln!("holdfast: note: globals: {notes}");
            }
        }
        for (db, node) in dumps {
            let target = a.as_database.clone().unwrap_or_else(|| db.clone());
            let path = to_temp(vault, tmp.path(), "db.dump", node)?;
            postgres::restore_database(&conn, &target, &path, a.jobs)?;
            let _ = std::fs::remove_file(&path);
            say(format!(
                "restored database {db:?} into {target:?} on {}",
                conn.display()
            ));
            restored.push(target);
        }
    } else if let Some(url) = &a.to_mysql {
        need_kind(&m.source.kind, "mysql", "--to-mysql")?;
        let conn = mysql::MyConn::parse(&super::backup::source_url("--to-mysql", url)?)?;
        let node = files
            .get("dump.sql")
            .ok_or_else(|| Error::damaged(format!("point {}", id.short()), "no dump.sql"))?;
        pipe_into(
            vault,
            node,
            mysql::restore_command(&conn)?,
            "restore into mysql",
        )?;
        say(format!("restored dump.sql into {}", conn.display()));
        restored.push(conn.display());
    } else if let Some(path) = &a.to_sqlite {
        need_kind(&m.source.kind, "sqlite", "--to-sqlite")?;
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
        say(format!("restored {} (integrity_check: ok)", path.display()));
        restored.push(path.display().to_string());
    } else if let Some(url) = &a.to_s3 {
        need_kind(&m.source.kind, "s3", "--to-s3")?;
        let n = restore_to_s3(ctx, a, vault, url, &m.root)?;
        say(format!("restored {n} objects to {url}"));
        restored.push(url.clone());
    } else if let Some(line) = &a.to_command {
        if files.len() != 1 {
            return Err(Error::Input(format!(
                "--to-command needs a point with one file; this one has {}",
                files.len()
            )));
        }
        let (name, node) = files.iter().next().expect("one file");
        let (program, args) = export::split_command(line)?;
        let mut cmd = std::process::Command::new(program);
        holdfast_sources::child_env::for_program(&mut cmd).args(args);
        pipe_into(vault, node, cmd, "restore --to-command")?;
        say(format!("piped {name} into {line}"));
        restored.push(name.clone());
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({"point": id.to_hex(), "restored": restored}));
    }
    Ok(exit::OK)
}
