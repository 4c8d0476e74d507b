//! One export read for both the check and the compression: the blobs the tap makes are the
//! ones the export path makes, every layer is compressed once, cached layers are not, and a
//! broken export records nothing.

use super::tests::tar_of;
use super::*;
use crate::image::archive;

/// Bytes that compress into several gzip members but not to nothing.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 16) as u8 + b'a'
        })
        .collect()
}

/// A legacy `docker save` export of `layers` (real tar streams) with a config listing them.
fn export_of(layers: &[&[u8]]) -> (Vec<u8>, Vec<u8>, Vec<String>) {
    let diff_ids: Vec<String> = layers.iter().map(|l| crate::oci::sha256(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes();
    let paths: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest =
        serde_json::json!([{"Config": "cfg.json", "RepoTags": null, "Layers": paths}]).to_string();
    let mut files: Vec<(&str, &[u8])> = paths
        .iter()
        .zip(layers)
        .map(|(p, l)| (p.as_str(), *l))
        .collect();
    files.push(("cfg.json", &config));
    files.push(("manifest.json", manifest.as_bytes()));
    (tar_of(&files), config, diff_ids)
}

fn layers() -> (Vec<u8>, Vec<u8>) {
    let big = tar_of(&[("usr/lib/big", &noise(9 << 20, 7)[..])]);
    let small = tar_of(&[("app", &b"#!/bin/sh\necho hi\n"[..])]);
    (big, small)
}

/// Reads `export` as the check does, with a compressing tap; the images read and the result.
fn read_with_tap(
    export: &[u8],
    cache: &BlobCache,
    known: &[String],
) -> (Vec<crate::image::ImageInput>, Converted) {
    let mut tap = CompressingTap::new(Compression::Gzip, cache, Slots::new(2), known);
    let images = archive::read_tapped(export, "img", &mut tap).unwrap();
    let ids: Vec<String> = images[0].layers.iter().map(|l| l.digest.clone()).collect();
    let converted = tap.finish(&images[0].config, &ids).unwrap();
    (images, converted)
}

#[test]
fn the_check_read_compresses_the_blobs_the_export_path_makes() {
    let (big, small) = layers();
    let (export, config, diff_ids) = export_of(&[&big, &small]);
    let old_dir = tempfile::tempdir().unwrap();
    let old_cache = BlobCache::open(old_dir.path()).unwrap();
    let slots = Slots::new(2);
    let old = read_export(
        &export[..],
        "img",
        &diff_ids,
        Compression::Gzip,
        &old_cache,
        &slots,
    )
    .unwrap();
    // Streamed (the daemon's diffIDs known, none cached) and spooled (nothing known) alike.
    for known in [diff_ids.clone(), Vec::new()] {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path()).unwrap();
        let (images, new) = read_with_tap(&export, &cache, &known);
        assert_eq!(images[0].layers.len(), 2, "the check read both layers");
        assert_eq!(new.layers, old.layers, "the same blobs, byte for byte");
        assert_eq!(
            (new.config.as_slice(), &new.diff_ids),
            (&config[..], &diff_ids)
        );
        assert_eq!(new.compressed, 2);
        assert!(!new.exported, "the export was the check's");
        for layer in &new.layers {
            let blob = std::fs::read(cache.blob_path(&layer.digest)).unwrap();
            assert_eq!(crate::oci::sha256(&blob), layer.digest);
        }
        // What publishing will look up: the whole image, from the cache.
        let id = crate::oci::sha256(&config);
        let hit = from_cache(&cache, &id, &diff_ids, Compression::Gzip).expect("cached");
        assert_eq!(hit.layers, old.layers);
        assert_eq!(std::fs::read_dir(cache.temp_dir()).unwrap().count(), 0);
    }
}

#[test]
fn layers_the_cache_holds_are_not_compressed_again() {
    let (big, small) = layers();
    let (export, _, diff_ids) = export_of(&[&big, &small]);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let (_, first) = read_with_tap(&export, &cache, &diff_ids);
    let changed = tar_of(&[("app", &b"#!/bin/sh\necho bye\n"[..])]);
    let (export, _, diff_ids) = export_of(&[&big, &changed]);
    let (_, second) = read_with_tap(&export, &cache, &diff_ids);
    assert_eq!(second.compressed, 1, "only the changed layer");
    assert_eq!(second.layers[0], first.layers[0]);
    assert_ne!(second.layers[1], first.layers[1]);
}

#[test]
fn a_broken_export_records_nothing_and_leaves_no_temporary_file() {
    let (big, small) = layers();
    let (export, _, diff_ids) = export_of(&[&big, &small]);
    let dir = tempfile::tempdir().unwrap();
    let cache = BlobCache::open(dir.path()).unwrap();
    let cut = &export[..export.len() / 2];
    let mut tap = CompressingTap::new(Compression::Gzip, &cache, Slots::new(2), &diff_ids);
    assert!(archive::read_tapped(cut, "img", &mut tap).is_err());
    drop(tap);
    assert_eq!(cache.layer(&diff_ids[0], Compression::Gzip), None);
    // The compressor sees the walk's end without the layer's and stops, removing its file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_dir(cache.temp_dir()).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a temporary file stayed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // ... without giving the cut layer a blob of its own.
    let blobs = dir.path().join("blobs/sha256");
    assert_eq!(std::fs::read_dir(blobs).unwrap().count(), 0);
}
