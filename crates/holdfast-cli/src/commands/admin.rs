//! Vault administration: `init`, `verify`, `key …`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use holdfast_engine::keys::{self, KdfParams};
use holdfast_engine::verify::Subset;
use holdfast_engine::{Error, Result, Vault};
use holdfast_ops::verify::{ReadShare, VerifyRequest};

use super::{Ctx, origin};
use crate::cli::VerifyArgs;
use crate::{exit, output, secrets};

pub fn init(ctx: &Ctx) -> Result<i32> {
    let storage = ctx.storage()?;
    let pass = secrets::new_passphrase(true)?;
    let o = origin();
    let vault = Vault::init(storage, &pass, KdfParams::from_env(), &o)?;
    secrets::warn_weak_kdf();
    let id = vault.config().id_hex();
    if ctx.json {
        ctx.print_json(&serde_json::json!({"vault_id": id, "location": vault.storage().location(), "key": vault.key_id()}));
    } else {
        println!("created vault {id} at {}", vault.storage().location());
        if !ctx.quiet {
            println!("keep the passphrase safe: without it the data cannot be restored");
        }
    }
    Ok(exit::OK)
}

/// `--read-data-subset`: a percentage (`10`, `2.5%`: that share, always the same packs) or
/// a part of a rotation (`3/10`: the third tenth; parts 1/n…n/n read every pack once).
fn parse_subset(s: &str) -> Result<Subset> {
    if let Some((k, n)) = s.split_once('/') {
        return match (k.trim().parse::<u32>(), n.trim().parse::<u32>()) {
            (Ok(k), Ok(n)) if n >= 1 && (1..=n).contains(&k) => Ok(Subset::Part(k, n)),
            _ => Err(Error::Input(format!(
                "--read-data-subset {s:?}: a part is K/N with 1 <= K <= N, such as 3/10"
            ))),
        };
    }
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| {
        Error::Input(format!(
            "--read-data-subset {s:?}: give a percentage such as 10 or 2.5%, or a part such as 3/10"
        ))
    })?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(Error::Input(format!(
            "--read-data-subset {s:?}: must be above 0 and at most 100"
        )));
    }
    Ok(Subset::Pct(v))
}

/// The request `a` describes.
pub fn verify_request(a: &VerifyArgs) -> Result<VerifyRequest> {
    let read = match a
        .read_data_subset
        .as_deref()
        .map(parse_subset)
        .transpose()?
    {
        Some(Subset::Pct(pct)) => ReadShare::Percent { pct },
        Some(Subset::Part(k, n)) => ReadShare::Part { k, n },
        None if a.read_data => ReadShare::All,
        None => ReadShare::None,
    };
    Ok(VerifyRequest { read })
}

/// Open the vault, load its index and verify it.
pub fn run_verify(
    ctx: &Ctx,
    sink: &dyn holdfast_ops::Sink,
    req: &VerifyRequest,
) -> Result<holdfast_ops::verify::VerifyOutput> {
    let vault = ctx.open_to(sink)?;
    ctx.with_ops(sink, |o| holdfast_ops::verify::verify(o, &vault, req))
}

pub fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let req = verify_request(&a)?;
    let term = output::Term::new(ctx.json, ctx.quiet, "verify");
    let out = run_verify(ctx, &term, &req);
    term.finish();
    let out = out?;
    let report = out.report;
    if ctx.json {
        ctx.print_report(&holdfast_ops::verify::VerifyOutput {
            ok: out.ok,
            report: report.clone(),
        });
    } else {
        println!(
            "checked {} recovery points, {} packs ({} read in full, {} blobs authenticated)",
            report.points, report.packs, report.packs_read, report.blobs_read
        );
        if report.unindexed_packs > 0 {
            println!(
                "{} pack(s) not in any index (left by interrupted backups; harmless)",
                report.unindexed_packs
            );
        }
        for p in &report.problems {
            println!("damaged: {}: {}", p.object, p.reason);
        }
        for a in &report.affected {
            println!(
                "affected point {} ({}, {}):",
                &a.point[..a.point.len().min(8)],
                a.resource,
                output::time_ns(a.time_ns)
            );
            for p in &a.paths {
                println!("  {p}");
            }
        }
        for u in &report.untrusted {
            println!(
                "untrusted point {} ({}, written by {}): {}",
                &u.point[..u.point.len().min(8)],
                u.resource,
                u.writer,
                u.concern
            );
        }
        if report.index_needs_repair {
            println!("the index needs repair: run `holdfast repair index`");
        }
        println!(
            "{}",
            if report.ok() {
                "no problems found"
            } else {
                "PROBLEMS FOUND"
            }
        );
    }
    if report.ok() {
        Ok(exit::OK)
    } else {
        if !ctx.json {
            eprintln!(
                "{}",
                exit::render(&holdfast_engine::verify::damaged_error(&report))
            );
        }
        Ok(exit::DAMAGED)
    }
}

pub fn key_list(ctx: &Ctx) -> Result<i32> {
    let vault = ctx.open()?;
    vault.require_full("listing keys")?;
    let keys = vault.list_keys()?;
    if ctx.json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| serde_json::json!({"id": k.id, "created": output::time_short(k.created), "host": k.host,
                "label": k.label, "kdf": k.kdf, "current": Some(k.id.as_str()) == vault.key_id()}))
            .collect();
        ctx.print_json(&serde_json::Value::Array(v));
    } else {
        println!(
            " {:<8}  {:<19}  {:<16}  LABEL",
            "ID", "CREATED (UTC)", "HOST"
        );
        for k in &keys {
            let cur = if Some(k.id.as_str()) == vault.key_id() {
                "*"
            } else {
                " "
            };
            println!(
                "{cur}{:<8}  {:<19}  {:<16}  {}",
                &k.id[..8],
                output::time_short(k.created),
                k.host,
                k.label
            );
        }
    }
    Ok(exit::OK)
}

pub fn key_add(ctx: &Ctx, label: &str) -> Result<i32> {
    let vault = ctx.open()?;
    vault.require_full("adding a key")?;
    let pass = secrets::new_passphrase(false)?;
    let id = vault.add_key(&pass, KdfParams::from_env(), &origin(), label)?;
    secrets::warn_weak_kdf();
    if ctx.json {
        ctx.print_json(&serde_json::json!({"added": id}));
    } else {
        println!("added key {}", &id[..8]);
    }
    Ok(exit::OK)
}

pub fn key_remove(ctx: &Ctx, prefix: &str) -> Result<i32> {
    let vault = ctx.open()?;
    let id = vault.remove_key(prefix)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"removed": id}));
    } else {
        println!("removed key {}", &id[..8]);
    }
    Ok(exit::OK)
}

pub fn key_passwd(ctx: &Ctx) -> Result<i32> {
    let vault = ctx.open()?;
    vault.require_full("changing a passphrase")?;
    let old = vault
        .key_id()
        .ok_or_else(|| {
            Error::Input(
                "the vault was opened with a key file; open it with a passphrase to change it"
                    .into(),
            )
        })?
        .to_string();
    let pass = secrets::new_passphrase(false)?;
    let label = vault
        .list_keys()?
        .into_iter()
        .find(|k| k.id == old)
        .map(|k| k.label)
        .unwrap_or_default();
    let new = vault.add_key(&pass, KdfParams::from_env(), &origin(), &label)?;
    secrets::warn_weak_kdf();
    vault.storage().delete(&holdfast_storage::Handle::new(
        holdfast_storage::Kind::Key,
        &old,
    ))?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"added": new, "removed": old}));
    } else {
        println!(
            "passphrase changed (key {} replaced by {})",
            &old[..8],
            &new[..8]
        );
    }
    Ok(exit::OK)
}

pub fn key_backup_only(
    ctx: &Ctx,
    output_path: &std::path::Path,
    label: Option<String>,
    scope: Vec<String>,
) -> Result<i32> {
    let vault = ctx.open()?;
    let now = super::now_ns();
    let label = label.unwrap_or_else(|| {
        let r: [u8; 4] = holdfast_engine::random_bytes();
        format!("writer-{}", hex::encode(r))
    });
    // `None` for a write-only key: only the owner issues writer identities.
    let material = vault
        .key_material()
        .issue_writer(&label, scope, now.div_euclid(1_000_000_000))
        .ok_or_else(|| Error::KeyDenied {
            operation: "creating a write-only key".into(),
        })?
        .map_err(|e| Error::Input(e.to_string()))?;
    let cert = material
        .writer()
        .map(|w| w.certificate().clone())
        .ok_or_else(|| Error::Input("the new key has no writer identity".into()))?;
    let data = zeroize::Zeroizing::new(keys::encode_key_file(&material));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output_path)
        .map_err(|e| Error::io(output_path, e))?;
    f.write_all(&data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(output_path, e))?;
    drop(f);
    let record = holdfast_engine::trust::WriterRecord {
        id: cert.id_hex(),
        label: cert.label.clone(),
        scope: cert.scope.clone(),
        created_ns: now,
        by: super::by(),
        quarantine: None,
    };
    if let Err(e) = holdfast_engine::trust::register_writer(&vault, record, &super::by(), now) {
        // Without its record the writer works, but `key writers` cannot list it and it
        // cannot be quarantined by label: remove the file rather than hand out an unlisted
        // identity.
        let _ = std::fs::remove_file(output_path);
        return Err(e);
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "key_file": output_path.display().to_string(),
            "kind": "write-only",
            "writer": {"id": cert.id_hex(), "label": cert.label, "scope": cert.scope},
        }));
    } else {
        println!(
            "wrote write-only key file {} for writer {} ({})",
            output_path.display(),
            cert.label,
            &cert.id_hex()[..8]
        );
        println!(
            "a host with it can add recovery points, signed as {:?}{}, but cannot read, restore \
             or delete anything",
            cert.label,
            if cert.scope.is_empty() {
                String::new()
            } else {
                format!(", for {} only", cert.scope.join(", "))
            }
        );
    }
    Ok(exit::OK)
}

pub fn key_writers(ctx: &Ctx) -> Result<i32> {
    let vault = ctx.open()?;
    let state = holdfast_engine::protect::current(&vault)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!(state.writers));
        return Ok(exit::OK);
    }
    if state.writers.is_empty() {
        println!("no writer identities issued (see `holdfast key create-backup-only`)");
    }
    for w in &state.writers {
        let scope = if w.scope.is_empty() {
            "any resource".to_string()
        } else {
            w.scope.join(", ")
        };
        println!(
            "{}  {:<20}  issued {} by {}  {}",
            &w.id[..8],
            w.label,
            crate::output::time_ns(w.created_ns),
            w.by,
            scope
        );
        if let Some(q) = &w.quarantine {
            println!(
                "          QUARANTINED: points stored since {} are not trusted ({}; by {} at {})",
                crate::output::time_ns(q.since_ns),
                q.reason,
                q.by,
                crate::output::time_ns(q.at_ns)
            );
        }
    }
    Ok(exit::OK)
}

pub fn key_quarantine(ctx: &Ctx, writer: &str, reason: &str, since: Option<&str>) -> Result<i32> {
    let vault = ctx.open()?;
    let since_ns = match since {
        None => i64::MIN,
        Some(s) => crate::output::parse_time(s)
            .ok_or_else(|| Error::Input(format!("--since {s:?} is not an RFC 3339 time")))?,
    };
    let now = super::now_ns();
    let w =
        holdfast_engine::trust::quarantine(&vault, writer, since_ns, reason, &super::by(), now)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!(w));
    } else {
        let since = w.quarantine.as_ref().map_or(i64::MIN, |q| q.since_ns);
        println!(
            "writer {} ({}) quarantined: its points stored {} are no longer trusted",
            w.label,
            &w.id[..8],
            if since == i64::MIN {
                "at any time".to_string()
            } else {
                format!("since {}", crate::output::time_ns(since))
            }
        );
    }
    Ok(exit::OK)
}
