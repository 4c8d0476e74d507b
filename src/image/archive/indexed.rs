//! `docker save` files read by position. The outer tar is indexed first (headers, the small
//! JSON documents, where each layer's bytes lie); then the layers are scanned in parallel,
//! each from its own handle on the file, limited to the layer's bytes, and hashed as they
//! are read (every byte is needed for the digest, so each layer is read once, in order).
//! Pipes and standard input are streamed instead.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::window::Window;
use super::{io_err, Contents, Outer};
use crate::image::{ImageError, ImageInput};
use crate::layers::LayerSummary;

/// A layer's summary and the digest of its bytes.
type Scanned = (LayerSummary, String);

/// Where one layer blob lies in the archive file.
struct LayerAt {
    /// Its path in the archive (`<id>/layer.tar`, `blobs/sha256/…`).
    path: String,
    offset: u64,
    size: u64,
}

/// Reads a `docker save` archive at `path`; `name` names it in messages. A regular file is
/// read by position, anything else (a FIFO, `/dev/stdin`) as a stream.
pub fn read_file(path: &Path, name: &str) -> Result<Vec<ImageInput>, ImageError> {
    let io_err = |source| ImageError::Io {
        what: format!("opening {name}"),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return super::read(io::BufReader::with_capacity(1 << 20, file), name);
    }
    let (mut contents, layers) = index(file, meta.len(), name)?;
    for (at, (summary, digest)) in layers.iter().zip(scan_all(path, &layers)?) {
        contents.digests.insert(at.path.clone(), digest);
        contents.layers.insert(at.path.clone(), Arc::new(summary));
    }
    super::images(contents, name)
}

/// One pass over the outer tar's headers: JSON documents read, links recorded, layers
/// located (by their first bytes, as the streaming reader tells them).
fn index(file: File, len: u64, name: &str) -> Result<(Contents, Vec<LayerAt>), ImageError> {
    let mut contents = Contents::default();
    let mut layers = Vec::new();
    let mut archive = tar::Archive::new(Window::new(file, 0, len));
    let entries = archive
        .entries_with_seek()
        .map_err(io_err(format!("reading {name}")))?;
    let mut head = Vec::with_capacity(512);
    for entry in entries {
        let mut entry = entry.map_err(io_err(format!("{name} is not a readable tar archive")))?;
        let (size, offset) = (entry.size(), entry.raw_file_position());
        if let Outer::Layer(path) = contents.classify(&mut entry, &mut head, name)? {
            layers.push(LayerAt { path, offset, size });
        }
    }
    Ok((contents, layers))
}

/// Scans the layers on min(cores, layers) threads; the summaries come back in order. The
/// first failure (in archive order) is returned, and no new layer is started after one.
fn scan_all(path: &Path, layers: &[LayerAt]) -> Result<Vec<Scanned>, ImageError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(layers.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<Scanned, ImageError>>>> =
        layers.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= layers.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let result = scan_one(path, &layers[i]);
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            });
        }
    });
    let mut out = Vec::with_capacity(layers.len());
    for (slot, at) in results.into_iter().zip(layers) {
        match slot.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(result) => out.push(result?),
            // Layers are started in order, so an earlier one failed and returned above.
            None => {
                return Err(ImageError::invalid(
                    &path.display().to_string(),
                    format!("layer {} was not scanned", at.path),
                ))
            }
        }
    }
    Ok(out)
}

/// Scans and hashes one layer from its own window of the file, in one sequential read (its
/// digest is checked once every layer is read).
fn scan_one(path: &Path, at: &LayerAt) -> Result<Scanned, ImageError> {
    let file = File::open(path).map_err(|source| ImageError::Io {
        what: format!("opening {} for layer {}", path.display(), at.path),
        source,
    })?;
    let window = io::BufReader::with_capacity(1 << 20, Window::new(file, at.offset, at.size));
    super::scan_hashed(window, &at.path, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn entry(b: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes).unwrap();
    }

    /// A `docker save` archive of one image whose layers are `layers`.
    fn archive(layers: &[Vec<u8>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut names = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            entry(&mut b, &format!("l{i}/layer.tar"), l);
            names.push(format!("l{i}/layer.tar"));
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| crate::oci::sha256(l)).collect();
        let config = serde_json::json!({"architecture": "arm64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        entry(&mut b, "c.json", config.to_string().as_bytes());
        let manifest =
            serde_json::json!([{"Config": "c.json", "RepoTags": ["t:1"], "Layers": names}]);
        entry(&mut b, "manifest.json", manifest.to_string().as_bytes());
        b.into_inner().unwrap()
    }

    fn layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            entry(&mut b, path, bytes);
        }
        b.into_inner().unwrap()
    }

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_by_position_what_the_stream_reads() {
        let elf = crate::elf::fixture::ElfSpec::new(
            crate::platform::EM_X86_64,
            crate::platform::ElfClass::Elf64,
            crate::platform::Endian::Little,
        )
        .build();
        let layers: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                layer(&[
                    (&format!("bin/p{i}"), elf.clone()),
                    ("big", vec![i; 200_000]),
                ])
            })
            .collect();
        let bytes = archive(&layers);
        let f = file(&bytes);
        let by_position = read_file(f.path(), "a.tar").unwrap();
        let streamed = super::super::read(&bytes[..], "a.tar").unwrap();
        assert_eq!(by_position.len(), 1);
        assert_eq!(by_position[0].name, "t:1");
        let paths = |i: &ImageInput| -> Vec<Vec<String>> {
            i.layers
                .iter()
                .map(|l| l.entries.iter().map(|e| e.path.clone()).collect())
                .collect()
        };
        assert_eq!(paths(&by_position[0]), paths(&streamed[0]));
        assert_eq!(by_position[0].layers[3].entries[0].path, "/bin/p3");
        assert_eq!(by_position[0].config, streamed[0].config);
    }

    #[test]
    fn a_layer_cut_inside_a_file_is_an_error_naming_the_layer() {
        let whole = layer(&[("a", vec![1; 100_000]), ("b", b"x".to_vec())]);
        // The outer entry is consistent; the layer tar inside it ends inside file `a`.
        let bytes = archive(&[whole[..50_000].to_vec()]);
        let f = file(&bytes);
        let err = read_file(f.path(), "a.tar").unwrap_err().to_string();
        assert!(
            err.contains("l0/layer.tar") && err.contains("truncated"),
            "{err}"
        );
    }

    /// Both readers of `bytes`, the positional one and the stream.
    fn both(bytes: &[u8]) -> [Result<Vec<ImageInput>, ImageError>; 2] {
        let f = file(bytes);
        [
            read_file(f.path(), "a.tar"),
            super::super::read(bytes, "a.tar"),
        ]
    }

    #[test]
    fn a_layer_that_is_not_the_configs_diff_id_is_refused() {
        let good = layer(&[("a", b"1".to_vec())]);
        let mut bytes = archive(std::slice::from_ref(&good));
        // Same length, one byte of the layer's file changed after the config was written.
        let at = bytes
            .windows(good.len())
            .position(|w| w == &good[..])
            .unwrap();
        bytes[at + 512] = b'2';
        for result in both(&bytes) {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains("l0/layer.tar is not the layer the config lists"),
                "{err}"
            );
            assert!(err.contains(&crate::oci::sha256(&good)), "{err}");
        }
    }

    #[test]
    fn oci_style_members_must_match_the_digest_they_are_named_by() {
        let l = layer(&[("a", b"1".to_vec())]);
        let config = serde_json::json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [crate::oci::sha256(&l)]}})
        .to_string();
        let desc = |media: &str, bytes: &[u8]| serde_json::json!({"mediaType": media, "digest": crate::oci::sha256(bytes), "size": bytes.len()});
        let manifest = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", config.as_bytes()),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar", &l)]})
        .to_string();
        let m = desc(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        );
        // The same manifest listed three times is read once.
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [m, m, m]}).to_string();
        let build = |layer_bytes: &[u8]| {
            let mut b = tar::Builder::new(Vec::new());
            let blob = |d: String| format!("blobs/{}", d.replacen(':', "/", 1));
            entry(&mut b, &blob(crate::oci::sha256(&l)), layer_bytes);
            entry(
                &mut b,
                &blob(crate::oci::sha256(config.as_bytes())),
                config.as_bytes(),
            );
            entry(
                &mut b,
                &blob(crate::oci::sha256(manifest.as_bytes())),
                manifest.as_bytes(),
            );
            entry(&mut b, "index.json", index.as_bytes());
            b.into_inner().unwrap()
        };
        for result in both(&build(&l)) {
            assert_eq!(result.unwrap().len(), 1);
        }
        let mut altered = l.clone();
        altered[512] = b'9';
        for result in both(&build(&altered)) {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("does not match its digest"), "{err}");
        }
    }

    #[test]
    fn layer_and_diff_id_counts_must_agree() {
        let l = layer(&[("a", b"1".to_vec())]);
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, "l0/layer.tar", &l);
        entry(
            &mut b,
            "c.json",
            br#"{"architecture":"arm64","os":"linux"}"#,
        );
        let manifest = serde_json::json!([{"Config": "c.json", "Layers": ["l0/layer.tar"]}]);
        entry(&mut b, "manifest.json", manifest.to_string().as_bytes());
        for result in both(&b.into_inner().unwrap()) {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains("lists 1 layers") && err.contains("diff_ids lists 0"),
                "{err}"
            );
        }
    }
}
