//! Index objects: the decrypted plaintext (`index::decode_plain`), the encrypted object
//! (`index::encode` / `index::decode`), and the multi-location in-memory index they are
//! merged into (`Index::add`, `Index::add_demoted` and its queries).
//!
//! Checks: decoding never panics; what decodes survives `encode` + `decode` unchanged; a
//! tampered object does not authenticate; merging the packs (first half as listed, second
//! half demoted, then everything again, as a consolidated index beside the originals) keeps
//! every pack record and every blob location, drops exact duplicate records, and answers
//! `get`, `contains`, `locations`, `records_of`, `disagreeing_packs`, `blob_count`,
//! `has_duplicates` and `entries_by_pack` consistently.
#![no_main]
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use holdfast_engine::Id;
use holdfast_engine::internals::crypto::SymKey;
use holdfast_engine::index::{self, Index, IndexedPack};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<SymKey> = LazyLock::new(SymKey::generate);

fuzz_target!(|data: &[u8]| {
    let Ok(packs) = index::decode_plain(data) else {
        return;
    };
    let sealed = index::encode(&packs, &KEY);
    assert_eq!(index::decode(&sealed, &KEY).expect("re-decode"), packs);
    let mut t = sealed.clone();
    let i = data.len() % t.len();
    t[i] ^= 0x01;
    assert!(index::decode(&t, &KEY).is_err(), "tampered index object authenticated");

    let half = packs.len() / 2;
    let mut idx = Index::default();
    idx.add(packs[..half].to_vec());
    idx.add_demoted(packs[half..].to_vec());
    idx.add(packs.clone());

    // Distinct records: (pack id, fingerprint), first one wins.
    let mut distinct: Vec<(&IndexedPack, [u8; 32], bool)> = Vec::new();
    let mut seen = HashSet::new();
    for (n, p) in packs.iter().enumerate() {
        let f = index::record_fingerprint(p);
        if seen.insert((p.id, f)) {
            distinct.push((p, f, n >= half));
        }
    }
    assert_eq!(idx.packs.len(), distinct.len());
    let mut ids: HashSet<Id> = HashSet::new();
    let mut total = 0usize;
    for (k, (p, f, demoted)) in distinct.iter().enumerate() {
        let rec = &idx.packs[k];
        assert_eq!(
            (rec.id, rec.size, rec.wrapped, rec.blobs as usize, rec.fingerprint, rec.demoted),
            (p.id, p.size, p.wrapped, p.entries.len(), *f, *demoted)
        );
        assert!(idx.has_pack(&p.id));
        assert!(idx.records_of(&p.id).contains(&(k as u32)));
        for e in &p.entries {
            ids.insert(e.id);
            total += 1;
            assert!(
                idx.locations(&e.id)
                    .iter()
                    .any(|l| l.pack == k as u32 && l.entry == *e),
                "a blob location went missing"
            );
        }
    }
    assert_eq!(idx.blob_count(), ids.len());
    assert_eq!(idx.has_duplicates(), total > ids.len());
    assert_eq!(idx.all_locations().count(), total);
    for id in &ids {
        let locs = idx.locations(id);
        let (rec, e) = idx.get(id).expect("indexed blob");
        assert_eq!(e, locs[0].entry);
        assert_eq!(rec.id, idx.packs[locs[0].pack as usize].id);
        assert_eq!(idx.contains(id), !rec.demoted);
    }
    let mut records: HashMap<Id, usize> = HashMap::new();
    for (p, _, _) in &distinct {
        *records.entry(p.id).or_default() += 1;
    }
    let disagreeing: HashMap<Id, usize> = idx.disagreeing_packs().map(|(i, n)| (*i, n)).collect();
    for (id, n) in &records {
        assert_eq!(idx.records_of(id).len(), *n);
        assert_eq!(disagreeing.get(id).copied(), (*n > 1).then_some(*n));
    }
    let by_pack = idx.entries_by_pack();
    assert_eq!(by_pack.len(), records.len());
    for (p, _, _) in &distinct {
        let (size, es) = &by_pack[&p.id];
        let first = distinct.iter().find(|(q, _, _)| q.id == p.id).unwrap();
        assert_eq!(*size, first.0.size);
        assert!(es.windows(2).all(|w| (w[0].offset, w[0].id) <= (w[1].offset, w[1].id)));
        assert!(es.windows(2).all(|w| w[0] != w[1]));
        for e in &p.entries {
            assert!(es.contains(e));
        }
    }
});
