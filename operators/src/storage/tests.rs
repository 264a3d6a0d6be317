use std::sync::Arc;

use object_store::memory::InMemory;

use super::*;

fn memory(url: &str) -> ObjectLocation {
    ObjectLocation::with_store(url, Arc::new(InMemory::new()))
}

#[test]
fn objects_are_put_read_listed_and_deleted_below_the_prefix() {
    let root = memory("s3://bucket/pipelines/line-7");
    root.put("b/two", b"2".to_vec()).unwrap();
    root.put("a", b"1".to_vec()).unwrap();
    root.join("b").put("three", b"33".to_vec()).unwrap();
    assert_eq!(root.get("a").unwrap(), b"1");
    assert_eq!(
        root.list().unwrap(),
        vec![("a".into(), 1), ("b/three".into(), 2), ("b/two".into(), 1)]
    );
    assert_eq!(root.join("b").list().unwrap().len(), 2);
    root.delete("a").unwrap();
    root.delete("a").unwrap();
    assert!(!root.exists("a").unwrap());
    assert_eq!(root.get("a").unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(root.join("b").url(), "s3://bucket/pipelines/line-7/b");
}

#[test]
fn a_conditional_put_never_replaces_an_object() {
    let root = memory("s3://bucket/ck");
    assert!(root.put_new("1.manifest.json", b"first".to_vec()).unwrap());
    assert!(!root.put_new("1.manifest.json", b"second".to_vec()).unwrap());
    assert_eq!(root.get("1.manifest.json").unwrap(), b"first");
}

#[test]
fn an_upload_is_invisible_until_completed_and_gone_once_aborted() {
    let root = memory("s3://bucket/out");
    // Three parts: two full ones and the rest.
    let bytes: Vec<u8> = (0..2 * object::PART_BYTES + 10).map(|i| i as u8).collect();
    let upload = root.upload("h/a.parquet", bytes.clone()).unwrap();
    assert_eq!(upload.parts.len(), 3);
    assert!(
        root.list().unwrap().is_empty(),
        "nothing visible before completion"
    );
    root.complete("h/a.parquet", &upload).unwrap();
    assert_eq!(root.get("h/a.parquet").unwrap(), bytes);
    // Completing twice (a resumed run finishing a commit) is no error.
    root.complete("h/a.parquet", &upload).unwrap();

    let upload = root.upload("h/b.parquet", b"rows".to_vec()).unwrap();
    root.abort("h/b.parquet", &upload.id).unwrap();
    assert!(root.complete("h/b.parquet", &upload).is_err());
    assert_eq!(root.list().unwrap().len(), 1);
}

#[test]
fn locations_are_local_paths_file_urls_or_object_store_urls() {
    let base = Path::new("/srv/weir");
    assert_eq!(
        Location::parse("out", base, &[]).unwrap(),
        Location::Local("/srv/weir/out".into())
    );
    assert_eq!(
        Location::parse("file:///data/out", base, &[]).unwrap(),
        Location::Local("/data/out".into())
    );
    let s3 = Location::parse("s3://plant/windows/", base, &[]).unwrap();
    assert_eq!(s3.to_string(), "s3://plant/windows");
    assert!(s3.object().is_some());
    let options = [("aws_endpoint".to_owned(), "http://127.0.0.1:9".to_owned())];
    assert!(Location::parse("s3://plant/w", base, &options).is_ok());
    let error = ObjectLocation::check_option("endpoint_of_nowhere").unwrap_err();
    assert!(
        error.contains("`endpoint_of_nowhere` is not an option of S3"),
        "{error}"
    );
    assert!(ObjectLocation::check_option("google_service_account").is_ok());
    let error = Location::parse("s3:///w", base, &[]).unwrap_err();
    assert!(error.contains("names no bucket"), "{error}");
    let error = Location::parse("hdfs://nn/w", base, &[]).unwrap_err();
    assert!(
        error.contains("`hdfs://` is not a supported location"),
        "{error}"
    );
}
