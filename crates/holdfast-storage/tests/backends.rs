//! The shared storage suite against the real backends: a local folder and a real
//! S3-compatible server (moto) on loopback; plus the S3 backend's error mapping.

use holdfast_storage::url::{Location, OpenLocation, S3Options};
use holdfast_storage::{ErrorKind, Handle, Kind};
use holdfast_testkit::Moto;

fn opts(endpoint: String) -> S3Options {
    S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        virtual_host_style: false,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    }
}

fn s3(moto: &Moto, bucket: &str, prefix: &str) -> std::sync::Arc<dyn holdfast_storage::Storage> {
    Location::S3 {
        bucket: bucket.into(),
        prefix: prefix.into(),
    }
    .open(&opts(moto.endpoint.clone()))
    .unwrap()
}

#[test]
fn local_folder_passes_the_suite() {
    let d = tempfile::tempdir().unwrap();
    let s = Location::parse(d.path().join("v").to_str().unwrap())
        .unwrap()
        .open(&S3Options::default())
        .unwrap();
    holdfast_storage::testsuite::run(&*s);
}

#[test]
fn s3_passes_the_suite_and_stores_where_it_says() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("suite");
    let s = s3(&moto, "suite", "some/prefix");
    holdfast_storage::testsuite::run(&*s);
    // Check with the server itself, not through holdfast.
    let keys = moto.list_keys("suite");
    assert!(keys.iter().any(|k| k == "some/prefix/config"), "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("some/prefix/")),
        "{keys:?}"
    );
    assert_eq!(moto.get("suite", "some/prefix/config"), b"config-bytes");
}

#[test]
fn s3_missing_bucket_and_unreachable_endpoint_are_classified() {
    let Some(moto) = Moto::start() else { return };
    let s = s3(&moto, "no-such-bucket", "");
    assert!(!s.location_exists().unwrap());
    assert_eq!(s.prepare().unwrap_err().kind, ErrorKind::NotFound);

    let port = holdfast_testkit::free_port();
    let dead = Location::S3 {
        bucket: "b".into(),
        prefix: "".into(),
    }
    .open(&opts(format!("http://127.0.0.1:{port}")))
    .unwrap();
    let e = dead.read(&Handle::new(Kind::Index, "00")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(
        e.to_string().contains("127.0.0.1"),
        "error names the endpoint: {e}"
    );
}
