//! Conversion of exported images: the parallel gzip stream, reuse of compressed layers and
//! the bounded work of compressing.

use super::gzip::GZIP_CHUNK;
use super::*;

#[test]
fn parallel_gzip_is_one_valid_reproducible_stream() {
    let sizes = [0, 1, GZIP_CHUNK - 1, GZIP_CHUNK, 2 * GZIP_CHUNK + 5];
    for size in sizes {
        let input: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let mut first = Vec::new();
        gzip_parallel(&mut &input[..], &mut first).unwrap();
        let mut again = Vec::new();
        gzip_parallel(&mut &input[..], &mut again).unwrap();
        assert_eq!(first, again, "{size} bytes: not reproducible");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&first[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(
            back, input,
            "{size} bytes: does not decompress to the input"
        );
        assert_eq!(&first[..2], b"\x1f\x8b");
    }
}

pub(super) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

/// A legacy `docker save` archive: config, one layer used twice (the second a symlink).
fn legacy_export(layer: &[u8], config: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in [
        ("aaa/layer.tar", layer),
        ("aaa/VERSION", &b"1.0"[..]),
        ("cfg.json", config),
        (
            "manifest.json",
            &br#"[{"Config":"cfg.json","RepoTags":null,"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#[..],
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, bytes).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_cksum();
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn converts_a_legacy_export_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let layer = tar_of(&[("hello", &b"hello world\n".repeat(1000)[..])]);
    let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers"}}"#;
    let export = legacy_export(&layer, config);
    let slots = Slots::new(2);
    let ids = [crate::oci::sha256(&layer), crate::oci::sha256(&layer)];
    let c = read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
    assert_eq!(c.config, config, "config bytes kept exactly");
    assert_eq!(
        c.diff_ids,
        vec![crate::oci::sha256(&layer), crate::oci::sha256(&layer)]
    );
    assert_eq!(c.compressed, 1, "the shared layer is compressed once");
    let blob = std::fs::read(cache.blob_path(&c.layers[0].digest)).unwrap();
    assert_eq!(crate::oci::sha256(&blob), c.layers[0].digest);
    assert_eq!(blob.len() as u64, c.layers[0].size);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&blob[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, layer);
    // A second run compresses nothing, and the cache alone can answer.
    let again = read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
    assert_eq!(again.compressed, 0);
    assert_eq!(again.layers, c.layers);
    let hit = from_cache(
        &cache,
        &crate::oci::sha256(config),
        &c.diff_ids,
        Compression::Gzip,
    )
    .unwrap();
    assert_eq!(hit.layers, c.layers);
    assert!(from_cache(
        &cache,
        &crate::oci::sha256(config),
        &c.diff_ids,
        Compression::Zstd
    )
    .is_none());
}

#[test]
fn zstd_on_request_and_bad_archives_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let layer = tar_of(&[("x", &b"x"[..])]);
    let export = legacy_export(&layer, b"{}");
    let c = read_export(
        &export[..],
        "img",
        &[],
        Compression::Zstd,
        &cache,
        &Slots::new(1),
    )
    .unwrap();
    let blob = std::fs::read(cache.blob_path(&c.layers[0].digest)).unwrap();
    assert_eq!(zstd::decode_all(&blob[..]).unwrap(), layer);
    let err = read_export(
        &tar_of(&[("x", b"y")])[..],
        "img",
        &[],
        Compression::Gzip,
        &cache,
        &Slots::new(1),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("manifest.json is missing"), "{err}");
}

/// An OCI-style export (Docker 25 and later): layers under `blobs/sha256/<diffID>`.
fn oci_export(layers: &[(&str, &[u8])], config: &[u8]) -> Vec<u8> {
    let config_path = format!("blobs/sha256/{}", &crate::oci::sha256(config)[7..]);
    let paths: Vec<String> = layers
        .iter()
        .map(|(id, _)| format!("blobs/sha256/{}", &id[7..]))
        .collect();
    let manifest = serde_json::json!([{ "Config": config_path, "Layers": paths }]).to_string();
    let mut files: Vec<(&str, &[u8])> = paths
        .iter()
        .zip(layers)
        .map(|(p, (_, bytes))| (p.as_str(), *bytes))
        .collect();
    files.push((&config_path, config));
    files.push(("manifest.json", manifest.as_bytes()));
    tar_of(&files)
}

#[test]
fn streams_new_layers_and_does_not_read_cached_ones_an_oci_export_names() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let slots = Slots::new(1);
    // Large enough to take the streaming path through several gzip members.
    let base: Vec<u8> = (0..(9usize << 20)).map(|i| (i * 31 % 253) as u8).collect();
    let top = tar_of(&[("app", &b"new code\n".repeat(100)[..])]);
    let (base_id, top_id) = (crate::oci::sha256(&base), crate::oci::sha256(&top));
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let ids = [base_id.clone(), top_id.clone()];
    let first = oci_export(&[(&base_id, &base), (&top_id, &top)], config);
    let c = read_export(&first[..], "img", &ids, Compression::Gzip, &cache, &slots).unwrap();
    assert_eq!(c.compressed, 2);
    assert_eq!(c.diff_ids, ids);
    for (layer, plain) in c.layers.iter().zip([&base, &top]) {
        let blob = std::fs::read(cache.blob_path(&layer.digest)).unwrap();
        assert_eq!(crate::oci::sha256(&blob), layer.digest);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(&back, plain);
    }
    assert_eq!(
        cache.plain_size(&base_id, Compression::Gzip),
        Some(Some(base.len() as u64))
    );
    // The base layer is cached: its bytes in the next export are never read (here they
    // are garbage of the same size), only the changed top layer is compressed.
    let top2 = tar_of(&[("app", &b"newer code\n".repeat(100)[..])]);
    let top2_id = crate::oci::sha256(&top2);
    let garbage = vec![0u8; base.len()];
    let second = oci_export(&[(&base_id, &garbage), (&top2_id, &top2)], config);
    let ids2 = [base_id.clone(), top2_id.clone()];
    let c2 = read_export(&second[..], "img", &ids2, Compression::Gzip, &cache, &slots).unwrap();
    assert_eq!(c2.compressed, 1);
    assert_eq!(c2.layers[0], c.layers[0]);
    assert_eq!(c2.diff_ids, ids2);
}

#[test]
fn a_legacy_layer_of_a_cached_size_but_new_content_is_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let slots = Slots::new(1);
    let layer: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 241) as u8).collect();
    let config = br#"{"architecture":"arm64","os":"linux"}"#;
    let ids = [crate::oci::sha256(&layer), crate::oci::sha256(&layer)];
    let export = legacy_export(&layer, config);
    assert_eq!(
        read_export(&export[..], "img", &ids, Compression::Gzip, &cache, &slots)
            .unwrap()
            .compressed,
        1
    );
    // Another layer of the same size under a legacy (opaque) path: it may be the cached
    // one, so it is spooled and hashed first; being different, it is then compressed.
    let mut other = layer.clone();
    other[0] ^= 1;
    let other_id = crate::oci::sha256(&other);
    let export = legacy_export(&other, config);
    let c = read_export(
        &export[..],
        "img",
        &[ids[0].clone(), other_id.clone()],
        Compression::Gzip,
        &cache,
        &slots,
    )
    .unwrap();
    assert_eq!(c.compressed, 1);
    assert_eq!(c.diff_ids, vec![other_id.clone(), other_id]);
    assert_ne!(
        c.layers[0],
        cache.layer(&ids[0], Compression::Gzip).unwrap()
    );
}

#[test]
fn zstd_layers_are_the_same_bytes_whatever_the_number_of_workers() {
    // 24 MiB of compressible, varied bytes: several of zstd's jobs at level 3.
    let mut input = Vec::with_capacity(24 << 20);
    let mut x: u64 = 7;
    while input.len() < 24 << 20 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        input.extend_from_slice(format!("line {} of {}\n", x >> 50, x % 1000).as_bytes());
    }
    let encode = |workers| {
        let mut enc = super::zstd_encoder(Vec::new(), workers).unwrap();
        enc.write_all(&input).unwrap();
        enc.finish().unwrap()
    };
    let one = encode(1);
    assert_eq!(encode(2), one);
    assert_eq!(encode(4), one);
    assert_eq!(zstd::decode_all(&one[..]).unwrap(), input);
}
