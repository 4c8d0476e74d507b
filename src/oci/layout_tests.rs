//! Tests of `layout.rs`.

use super::*;

fn manifest(text: &str) -> RawManifest {
    RawManifest {
        bytes: text.as_bytes().to_vec(),
        media_type: mt::OCI_INDEX.into(),
        digest: digest::sha256(text.as_bytes()),
    }
}

#[tokio::test]
async fn tags_replace_same_name_and_keep_others() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let a = manifest(r#"{"schemaVersion":2,"manifests":[],"annotations":{"v":"a"}}"#);
    let b = manifest(r#"{"schemaVersion":2,"manifests":[],"annotations":{"v":"b"}}"#);
    layout
        .tag(&["api-1.0".into(), "api-latest".into()], &a)
        .unwrap();
    layout.tag(&["api-latest".into()], &b).unwrap();
    assert_eq!(layout.manifest("api-1.0").await.unwrap(), a);
    assert_eq!(layout.manifest("api-latest").await.unwrap(), b);
    assert_eq!(layout.read_index().unwrap().manifests.len(), 2);
    // No temp files left behind.
    let stray: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    let err = layout.manifest("nope").await.unwrap_err().to_string();
    assert!(
        err.contains("api-1.0") && err.contains("api-latest"),
        "{err}"
    );
    assert_eq!(
        layout.blob_size(&a.digest).await.unwrap(),
        Some(a.bytes.len() as u64)
    );
    let absent = format!("sha256:{}", "0".repeat(64));
    assert_eq!(layout.blob_size(&absent).await.unwrap(), None);
}

#[tokio::test]
async fn a_tampered_manifest_is_a_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let a = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
    layout.tag(&["x".into()], &a).unwrap();
    std::fs::write(
        layout.blob_path(&a.digest).unwrap(),
        b"{\"schemaVersion\":2}",
    )
    .unwrap();
    assert!(matches!(
        layout.manifest("x").await.unwrap_err(),
        StoreError::DigestMismatch { .. }
    ));
}

#[tokio::test]
async fn open_names_what_is_wrong_and_empty_refs_pick_the_only_entry() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = Layout::open(&missing).unwrap_err().to_string();
    assert!(err.contains("missing is not a folder"), "{err}");
    let err = Layout::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("has no index.json"), "{err}");
    // An index.json that is a link (to a device here) or a FIFO is named as what it is.
    let index = dir.path().join("index.json");
    std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
    let err = Layout::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("index.json is a symbolic link, not a regular file"),
        "{err}"
    );
    std::fs::remove_file(&index).unwrap();
    let c = std::ffi::CString::new(index.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let err = Layout::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("index.json is a device, FIFO or socket"),
        "{err}"
    );
    std::fs::remove_file(&index).unwrap();

    let layout = Layout::create(dir.path()).unwrap();
    let reopened = Layout::open(dir.path()).unwrap();
    let err = reopened.manifest("").await.unwrap_err().to_string();
    assert!(err.contains("lists none"), "{err}");
    let err = reopened.manifest("x").await.unwrap_err().to_string();
    assert!(
        err.contains("ref \"x\" (index.json names no refs)"),
        "{err}"
    );

    let a = manifest(r#"{"schemaVersion":2,"manifests":[],"annotations":{"v":"a"}}"#);
    let b = manifest(r#"{"schemaVersion":2,"manifests":[],"annotations":{"v":"b"}}"#);
    layout.tag(&["a".into()], &a).unwrap();
    assert_eq!(reopened.manifest("").await.unwrap(), a);
    assert_eq!(reopened.manifest(&a.digest).await.unwrap(), a);
    layout.tag(&["b".into()], &b).unwrap();
    let err = reopened.manifest("").await.unwrap_err().to_string();
    assert!(
        err.contains("several images match") && err.contains("refs: a, b"),
        "{err}"
    );
    // Without a reference, check reads the whole index.json.
    let top = reopened.top(None).await.unwrap();
    assert_eq!(top.media_type, mt::OCI_INDEX);
    assert_eq!(reopened.read_index().unwrap().manifests.len(), 2);
    assert_eq!(reopened.top(Some("b")).await.unwrap(), b);
    // A digest naming a path outside the layout is refused.
    assert!(reopened.blob("sha256:../../index.json").await.is_err());
    assert!(reopened.manifest("sha256:../x").await.is_err());
}

/// A layout with one blob slot at `digest`, filled by `make` (a link, a FIFO, ...).
fn hostile(digest: &str, make: impl FnOnce(&Path)) -> (tempfile::TempDir, Layout) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    make(&layout.blob_path(digest).unwrap());
    (dir, layout)
}

async fn blob_error(layout: &Layout, digest: &str) -> String {
    match layout.blob(digest).await {
        Ok(_) => panic!("{digest} was opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn blobs_that_are_not_regular_files_inside_the_layout_are_refused() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let (_d, layout) = hostile(&digest, |p| {
        std::os::unix::fs::symlink("/dev/zero", p).unwrap()
    });
    let err = blob_error(&layout, &digest).await;
    assert!(err.contains("symbolic link"), "{err}");
    assert!(layout
        .manifest(&digest)
        .await
        .unwrap_err()
        .to_string()
        .contains("symbolic link"));

    let (_d, layout) = hostile(&digest, |p| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    });
    // Opening a FIFO would wait for a writer for ever; it is refused at once.
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        blob_error(&layout, &digest),
    )
    .await
    .expect("a FIFO blob must not hang");
    assert!(err.contains("not a regular file"), "{err}");

    // The blobs folder itself a link out of the layout.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("a".repeat(64)), b"secret").unwrap();
    let (dir, layout) = hostile(&digest, |_| {});
    std::fs::remove_dir(dir.path().join("blobs/sha256")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("blobs/sha256")).unwrap();
    let err = blob_error(&layout, &digest).await;
    assert!(err.contains("is not a folder"), "{err}");
}

#[tokio::test]
async fn only_digests_archbuild_can_verify_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    for digest in [
        "md5:900150983cd24fb0d6963f7d28e17f72",
        "sha256:abc",
        "sha1:a9993e364706816aba3e25717850c26c9cd0d89d",
    ] {
        let err = blob_error(&layout, digest).await;
        assert!(
            err.contains("sha256 and sha512") || err.contains("malformed"),
            "{digest}: {err}"
        );
    }
    // A sha512 manifest blob is verified as well as a sha256 one.
    let bytes = br#"{"schemaVersion":2,"manifests":[]}"#;
    let digest = digest::digest_like("sha512:", bytes).unwrap();
    layout.put_bytes(&digest, bytes).unwrap();
    assert_eq!(layout.manifest(&digest).await.unwrap().bytes, bytes);
    std::fs::write(
        layout.blob_path(&digest).unwrap(),
        br#"{"schemaVersion":2,"manifests":[{}]}"#,
    )
    .unwrap();
    let err = layout.manifest(&digest).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn a_manifest_larger_than_the_limit_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path()).unwrap();
    let digest = format!("sha256:{}", "b".repeat(64));
    let file = std::fs::File::create(layout.blob_path(&digest).unwrap()).unwrap();
    file.set_len(1 << 40).unwrap(); // a sparse terabyte
    let err = layout.manifest(&digest).await.unwrap_err().to_string();
    assert!(err.contains("at most 4194304 bytes"), "{err}");
}

#[test]
fn concurrent_writers_of_one_layout_keep_every_tag() {
    // Eight writers (each its own `Layout`, as two `archbuild build` runs would be), each
    // adding twenty tags: without the lock, read-modify-write of index.json loses some.
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for w in 0..8 {
            let path = dir.path().to_path_buf();
            s.spawn(move || {
                let layout = Layout::create(&path).unwrap();
                for t in 0..20 {
                    let m = manifest(&format!(
                        r#"{{"schemaVersion":2,"manifests":[],"annotations":{{"w":"{w}-{t}"}}}}"#
                    ));
                    layout.tag(&[format!("w{w}-t{t}")], &m).unwrap();
                }
            });
        }
    });
    let layout = Layout::open(dir.path()).unwrap();
    assert_eq!(layout.read_index().unwrap().manifests.len(), 160);
}
