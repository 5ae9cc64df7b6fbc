//! Turning a byte stream into content blobs, in parallel where the stream is large.

use std::io::Read;

use holdfast_engine::BlobType;
use holdfast_engine::writer::BlobWriter;
use holdfast_engine::{Error, Id, Result};
use rayon::prelude::*;

/// Streams larger than this are chunked while reading and their chunks processed in parallel
/// batches; smaller ones are read whole and chunked in memory.
pub const STREAM_THRESHOLD: u64 = 8 << 20;
const BATCH: usize = 4;

thread_local! {
    static READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Chunk and store everything `r` yields. `hint` is the expected size, if known. Returns the
/// chunk ids and the number of bytes read. `io_err` maps read errors (so callers can name the
/// file).
pub fn store_stream(
    w: &BlobWriter<'_>,
    mut r: impl Read,
    hint: Option<u64>,
    progress: &(dyn Fn(u64) + Sync),
    io_err: &dyn Fn(std::io::Error) -> Error,
) -> Result<(Vec<Id>, u64)> {
    let params = w.vault().chunk_params();
    if let Some(size) = hint.filter(|s| *s < STREAM_THRESHOLD) {
        // Reuse this thread's read buffer. It is taken out while in use: rayon may run
        // another file's job on this thread while we wait, which then allocates its own.
        let mut buf = READ_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buf.clear();
        buf.reserve(size as usize + 1);
        let res = (|| {
            r.read_to_end(&mut buf).map_err(io_err)?;
            progress(buf.len() as u64);
            let bounds = params.split_slice(&buf);
            let ids = if bounds.len() > 2 {
                bounds
                    .par_iter()
                    .map(|&(o, l)| w.add(BlobType::Data, &buf[o..o + l]).map(|x| x.0))
                    .collect::<Result<Vec<_>>>()?
            } else {
                bounds
                    .iter()
                    .map(|&(o, l)| w.add(BlobType::Data, &buf[o..o + l]).map(|x| x.0))
                    .collect::<Result<Vec<_>>>()?
            };
            Ok((ids, buf.len() as u64))
        })();
        READ_BUF.with(|b| *b.borrow_mut() = buf);
        return res;
    }
    let mut ids = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let flush = |batch: &mut Vec<Vec<u8>>, ids: &mut Vec<Id>| -> Result<()> {
        let got: Vec<Id> = batch
            .par_iter()
            .map(|c| w.add(BlobType::Data, c).map(|x| x.0))
            .collect::<Result<_>>()?;
        ids.extend(got);
        batch.clear();
        Ok(())
    };
    let total = params.split(
        &mut r,
        |chunk| {
            progress(chunk.len() as u64);
            batch.push(chunk);
            if batch.len() == BATCH {
                flush(&mut batch, &mut ids)
            } else {
                Ok(())
            }
        },
        io_err,
    )?;
    flush(&mut batch, &mut ids)?;
    Ok((ids, total))
}
