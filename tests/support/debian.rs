//! Real Debian root filesystems for the tests: `debootstrap --foreign --variant=minbase`
//! (made once per suite and architecture, kept under the cargo target folder), as layer
//! tars, and written into OCI layouts as multi-platform images.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{require, run_ok, unique, which};

const MIRROR: &str = "http://deb.debian.org/debian";

/// A minbase root filesystem, made once and kept under the cargo target folder.
pub fn rootfs(suite: &str, arch: &str) -> Option<PathBuf> {
    require("debootstrap", which("debootstrap"))?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian");
    let dir = base.join(format!("{suite}-{arch}"));
    if dir.join("usr/bin").is_dir() {
        return Some(dir);
    }
    std::fs::create_dir_all(&base).unwrap();
    let tmp = base.join(unique(&format!("{suite}-{arch}")));
    run_ok(
        Command::new("debootstrap")
            .args([
                "--foreign",
                "--variant=minbase",
                &format!("--arch={arch}"),
                suite,
            ])
            .arg(&tmp)
            .arg(MIRROR),
    );
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp); // another test made it meanwhile
    }
    Some(dir)
}

/// The root filesystem as one uncompressed layer tar (cached), leaving out debootstrap's
/// own folder and its downloaded packages.
pub fn rootfs_layer(suite: &str, arch: &str) -> Option<PathBuf> {
    let dir = rootfs(suite, arch)?;
    let out = dir.with_extension("tar");
    if !out.exists() {
        let tmp = dir.with_extension(unique("tar"));
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&dir)
                .args([
                    "--exclude=./debootstrap",
                    "--exclude=./var/cache/apt/archives",
                    "--exclude=./proc",
                    "-cf",
                ])
                .arg(&tmp)
                .arg("."),
        );
        std::fs::rename(&tmp, &out).unwrap();
    }
    Some(out)
}

pub fn file_digest(path: &Path) -> (String, u64) {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).unwrap();
    let size = std::io::copy(&mut f, &mut h).unwrap();
    (format!("sha256:{}", hex::encode(h.finalize())), size)
}

/// An OCI layout at `dir` whose `ref_name` is an index of `images`: (platform, entrypoint,
/// layer tars bottom first). Layer blobs are hard links to the tars.
pub fn layout(dir: &Path, ref_name: &str, images: &[(&str, &str, Vec<PathBuf>)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> Value {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        json!({"digest": d, "size": bytes.len()})
    };
    let mut manifests = Vec::new();
    for (platform, entrypoint, layers) in images {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for l in layers {
            let (d, size) = file_digest(l);
            let blob = blobs.join(&d[7..]);
            if !blob.exists() {
                std::fs::hard_link(l, &blob).unwrap();
            }
            descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size}));
            diff_ids.push(d);
        }
        let p: Vec<&str> = platform.split('/').collect();
        let mut plat = json!({"os": p[0], "architecture": p[1]});
        if let Some(v) = p.get(2) {
            plat["variant"] = json!(v);
        }
        let mut config = json!({"config": {"Entrypoint": [entrypoint],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        for (k, v) in plat.as_object().unwrap() {
            config[k] = v.clone();
        }
        let mut c = put(&serde_json::to_vec(&config).unwrap());
        c["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": c, "layers": descs});
        let mut m = put(&serde_json::to_vec(&manifest).unwrap());
        m["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        m["platform"] = plat;
        manifests.push(m);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let mut i = put(&serde_json::to_vec(&index).unwrap());
    i["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    i["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
    let top = json!({"schemaVersion": 2, "manifests": [i]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}
