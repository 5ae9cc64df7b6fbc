//! The one test suite every [`Storage`] implementation must pass (local, S3, memory, faulty).
//!
//! Call [`run`] on a fresh, empty store. It panics (as a test assertion) on the first
//! violation of the contract in the crate documentation.

use crate::{ErrorKind, Handle, Kind, Storage};

/// Run the whole suite against an empty store.
pub fn run(s: &dyn Storage) {
    s.prepare().expect("prepare");
    s.prepare().expect("prepare is idempotent");
    assert!(
        s.location_exists().expect("location_exists"),
        "prepared location must exist"
    );
    for k in Kind::ALL {
        assert!(
            s.list(k).expect("list").is_empty(),
            "fresh store must be empty for {k:?}"
        );
    }

    let cfg = Handle::config();
    let pack = Handle::new(Kind::Pack, "ab".to_string() + &"0".repeat(62));
    let idx = Handle::new(Kind::Index, "1234");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();

    // not found
    let e = s.read(&pack).expect_err("read of missing");
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert_eq!(
        s.size(&pack).expect_err("size of missing").kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        s.read_range(&pack, 0, 1)
            .expect_err("range of missing")
            .kind,
        ErrorKind::NotFound
    );

    // create, read back, sizes, ranges
    s.create(&cfg, b"config-bytes").expect("create config");
    s.create(&pack, &big).expect("create pack");
    s.create(&idx, b"").expect("create empty object");
    assert_eq!(s.read(&cfg).unwrap(), b"config-bytes");
    assert_eq!(s.read(&pack).unwrap(), big);
    assert_eq!(s.read(&idx).unwrap(), b"");
    assert_eq!(s.size(&pack).unwrap(), big.len() as u64);
    assert_eq!(s.read_range(&pack, 1000, 5000).unwrap(), &big[1000..6000]);
    assert_eq!(
        s.read_range(&pack, big.len() as u64 - 3, 3).unwrap(),
        &big[big.len() - 3..]
    );
    assert!(
        s.read_range(&pack, big.len() as u64 - 3, 4).is_err(),
        "range past the end must fail"
    );

    // create-only
    let e = s
        .create(&pack, b"other")
        .expect_err("second create must fail");
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        s.read(&pack).unwrap(),
        big,
        "a refused create must not change the object"
    );
    assert_eq!(
        s.create(&cfg, b"x")
            .expect_err("config is create-only")
            .kind,
        ErrorKind::AlreadyExists
    );
    // replace (used only to migrate the config): the new bytes, whole, and still one object
    s.replace(&cfg, b"config-bytes-v2").expect("replace config");
    assert_eq!(s.read(&cfg).unwrap(), b"config-bytes-v2");
    s.replace(&cfg, b"config-bytes")
        .expect("replace config back");
    assert_eq!(s.read(&cfg).unwrap(), b"config-bytes");

    // listings
    let packs = s.list(Kind::Pack).unwrap();
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].name, pack.name);
    assert_eq!(packs[0].size, big.len() as u64);
    let cfgs = s.list(Kind::Config).unwrap();
    assert_eq!(cfgs.len(), 1);
    assert_eq!(s.list(Kind::Index).unwrap().len(), 1);
    assert!(s.list(Kind::Point).unwrap().is_empty());

    // many objects, listing is complete (exercises pagination on remote stores)
    for i in 0..120u32 {
        s.create(
            &Handle::new(Kind::Point, format!("{i:08x}")),
            &i.to_le_bytes(),
        )
        .unwrap();
    }
    let mut pts: Vec<String> = s
        .list(Kind::Point)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    pts.sort();
    assert_eq!(pts.len(), 120);
    assert_eq!(pts[119], format!("{:08x}", 119));

    // deletes are idempotent
    s.delete(&pack).unwrap();
    s.delete(&pack).unwrap();
    assert_eq!(
        s.read(&pack).expect_err("deleted").kind,
        ErrorKind::NotFound
    );
    assert!(s.list(Kind::Pack).unwrap().is_empty());

    // concurrent creates of distinct objects
    std::thread::scope(|sc| {
        for t in 0..4u32 {
            sc.spawn(move || {
                for i in 0..10u32 {
                    let h = Handle::new(Kind::Index, format!("{t:02x}{i:02x}00"));
                    s.create(&h, format!("{t}-{i}").as_bytes()).unwrap();
                }
            });
        }
    });
    assert_eq!(s.list(Kind::Index).unwrap().len(), 41);
    // racing creates of one object: exactly one wins
    let h = Handle::new(Kind::Key, "00ff");
    let wins: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                sc.spawn(move || s.create(&h, format!("{t}").as_bytes()).is_ok() as usize)
            })
            .collect();
        hs.into_iter().map(|j| j.join().unwrap()).sum()
    });
    assert_eq!(wins, 1, "exactly one racing create may win");
}
