//! Hostile and broken input, end to end: crafted indexes (listing themselves, nesting too
//! deep, fanning out), blobs that are devices, FIFOs or symbolic links, blobs that do not
//! match their digests, alias bombs and hostile workload names, each given to the real
//! binary under a memory and a time limit ([`archbuild_bounded`]). Each must end in exit 2
//! and a message naming what is wrong, never a panic, a hang or a file written elsewhere.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use support::*;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// Documents and blobs made for one case, children before the documents that list them,
/// to be written to a layout, an archive or a registry alike.
#[derive(Default)]
struct Crafted {
    /// Digest, bytes, and the media type of a manifest or index (`None` for other blobs).
    items: Vec<(String, Vec<u8>, Option<&'static str>)>,
}

impl Crafted {
    fn blob(&mut self, media_type: &str, bytes: Vec<u8>) -> Value {
        let d = json!({"mediaType": media_type, "digest": sha256(&bytes), "size": bytes.len()});
        self.items.push((sha256(&bytes), bytes, None));
        d
    }

    fn document(&mut self, media_type: &'static str, doc: &Value) -> Value {
        let bytes = serde_json::to_vec(doc).unwrap();
        let d = json!({"mediaType": media_type, "digest": sha256(&bytes), "size": bytes.len()});
        self.items.push((sha256(&bytes), bytes, Some(media_type)));
        d
    }

    /// A linux/amd64 image of one small text file (nothing for the check to find); its
    /// manifest's descriptor, with the platform.
    fn image(&mut self) -> Value {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        tar.append_data(&mut h, "etc/hello", &b"hello\n"[..])
            .unwrap();
        let layer = tar.into_inner().unwrap();
        let config = json!({"architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}});
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            serde_json::to_vec(&config).unwrap(),
        );
        let layer = self.blob("application/vnd.oci.image.layer.v1.tar", layer);
        let manifest =
            json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
        let mut d = self.document(MANIFEST, &manifest);
        d["platform"] = json!({"os": "linux", "architecture": "amd64"});
        d
    }

    fn index(&mut self, manifests: Vec<Value>) -> Value {
        self.document(
            INDEX,
            &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}),
        )
    }

    /// The image wrapped in `levels` indexes, each listing the next.
    fn nested(&mut self, levels: usize) -> Value {
        let mut top = self.image();
        for _ in 0..levels {
            top = self.index(vec![top]);
        }
        top
    }

    /// An index listing the image `n` times, under `n` distinct platforms (`linux/amd64/xI`).
    fn fan_out(&mut self, n: usize) -> Value {
        let image = self.image();
        let entries = (0..n)
            .map(|i| {
                let mut e = image.clone();
                e["platform"]["variant"] = json!(format!("x{i}"));
                e
            })
            .collect();
        self.index(entries)
    }

    /// Writes an OCI layout in `dir` whose `index.json` names `top` as `ref_name`.
    fn layout(&self, dir: &Path, top: &Value, ref_name: &str) {
        for (digest, bytes, _) in &self.items {
            put_file(dir, digest, bytes);
        }
        write_index_json(dir, top, ref_name);
    }

    /// An OCI-style `docker save` archive (Docker 25+ without `manifest.json`): `index.json`
    /// naming `top`, the blobs, and any `extra` members.
    fn archive(&self, top: &Value, extra: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, bytes: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(bytes.len() as u64);
            b.append_data(&mut h, path, bytes).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        for (digest, bytes, _) in &self.items {
            add(&format!("blobs/{}", digest.replacen(':', "/", 1)), bytes);
        }
        for (path, bytes) in extra {
            add(path, bytes);
        }
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [top]});
        add("index.json", &serde_json::to_vec(&index).unwrap());
        b.into_inner().unwrap()
    }

    /// Pushes everything to `repo` of a loopback registry, manifests by digest, and tags the
    /// last one `tag`.
    fn push(&self, registry: &Registry, repo: &str, tag: &str) {
        for (i, (digest, bytes, media_type)) in self.items.iter().enumerate() {
            match media_type {
                None => {
                    push_blob(&registry.addr, repo, bytes);
                }
                Some(mt) => {
                    let reference = if i + 1 == self.items.len() {
                        tag
                    } else {
                        digest
                    };
                    let (status, head) = push_manifest(&registry.addr, repo, reference, mt, bytes);
                    assert_eq!(status, 201, "put manifest {digest}: {head}");
                }
            }
        }
    }
}

/// Writes `bytes` as the blob named `digest` (whatever they hash to).
fn put_file(dir: &Path, digest: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join("blobs").join(digest.replacen(':', "/", 1));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn write_index_json(dir: &Path, top: &Value, ref_name: &str) {
    let mut top = top.clone();
    top["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Asserts that a bounded run ended in exit 2 with every one of `words` in its standard
/// error, no panic and no half-written JSON document; returns standard error.
fn refused(case: &str, out: &Output, words: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(2), "{case}: {}", describe(out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    for word in words {
        assert!(err.contains(word), "{case}: {word:?} not in: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("memory allocation"),
        "{case}: {err}"
    );
    assert!(out.stdout.is_empty(), "{case}: {}", describe(out));
    err
}

/// The images a `check --json` run read.
fn images_checked(out: &Output) -> usize {
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(out)));
    doc["images"].as_array().map_or(0, Vec::len)
}

/// A digest nothing hashes to here: the name a blob claims that lists itself.
fn claimed(what: &str) -> String {
    sha256(format!("a name for {what}").as_bytes())
}

#[test]
fn indexes_that_list_themselves_nest_too_deep_or_fan_out_are_refused_in_a_layout() {
    let project = Project::new();
    let check = |dir: &str| archbuild_bounded(&project, &["check", &format!("oci:{dir}:t")]);

    // An index that lists itself: content addressing makes that a blob named by a digest its
    // content does not have, and it is refused as such before it is followed.
    let me = claimed("self");
    let index = json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": INDEX, "digest": me, "size": 200}]});
    let bytes = serde_json::to_vec(&index).unwrap();
    put_file(&project.path().join("self"), &me, &bytes);
    write_index_json(
        &project.path().join("self"),
        &json!({"mediaType": INDEX, "digest": me, "size": bytes.len()}),
        "t",
    );
    refused("self", &check("self"), &[&me, "has digest", "expected"]);

    // A cycle of two: a genuine index listing one that claims to be named so as to list it.
    let mut c = Crafted::default();
    let back = claimed("cycle");
    let genuine = c.index(vec![
        json!({"mediaType": INDEX, "digest": back, "size": 200}),
    ]);
    let cycle = project.path().join("cycle");
    c.layout(&cycle, &genuine, "t");
    let lists_genuine = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [genuine]});
    put_file(&cycle, &back, &serde_json::to_vec(&lists_genuine).unwrap());
    refused("cycle", &check("cycle"), &[&back, "has digest"]);

    // Four levels of indexes are read; five are refused.
    let mut c = Crafted::default();
    let top = c.nested(4);
    c.layout(&project.path().join("deep4"), &top, "t");
    let out = archbuild_bounded(&project, &["check", "oci:deep4:t", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(images_checked(&out), 1);
    let mut c = Crafted::default();
    let top = c.nested(5);
    c.layout(&project.path().join("deep5"), &top, "t");
    refused("deep", &check("deep5"), &["nest deeper than 4 levels"]);

    // One index fanning out to 4,097 platforms: refused before any is read.
    let mut c = Crafted::default();
    let top = c.fan_out(4097);
    c.layout(&project.path().join("wide"), &top, "t");
    refused("wide", &check("wide"), &["more than 4096 manifests"]);

    // A platform of 3 MB (an architecture no one has): no work or memory in proportion to
    // its length times anything.
    let mut c = Crafted::default();
    let mut image = c.image();
    image["platform"]["architecture"] = json!("a".repeat(3 << 20));
    let top = c.index(vec![image]);
    c.layout(&project.path().join("long"), &top, "t");
    let started = std::time::Instant::now();
    let out = archbuild_bounded(&project, &["check", "oci:long:t", "--json"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{took:?} {}", describe(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["findings"][0]["kind"], "config-platform-mismatch");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");

    // One 1 MiB layer listed 20,000 times by one manifest: read once, not 20 GB.
    let mut c = Crafted::default();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1 << 20);
    h.set_mode(0o644);
    tar.append_data(&mut h, "big", &vec![7u8; 1 << 20][..])
        .unwrap();
    let layer = tar.into_inner().unwrap();
    let config = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": vec![sha256(&layer); 20_000]}});
    let config = c.blob(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&config).unwrap(),
    );
    let layer = c.blob("application/vnd.oci.image.layer.v1.tar", layer);
    let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config,
        "layers": vec![layer; 20_000]});
    let top = c.document(MANIFEST, &manifest);
    c.layout(&project.path().join("layers"), &top, "t");
    let started = std::time::Instant::now();
    let out = archbuild_bounded(&project, &["check", "oci:layers:t", "--json"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{took:?} {}", describe(&out));
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");

    // That image under six platforms is 120,000 layers to merge and check: refused, by
    // check and by verify --deep (which reads it once, then would check it six times).
    let entries: Vec<Value> = ["amd64", "arm64", "386", "ppc64le", "s390x", "riscv64"]
        .iter()
        .map(|arch| {
            let mut e = top.clone();
            e["platform"] = json!({"os": "linux", "architecture": arch});
            e
        })
        .collect();
    let wide = c.index(entries);
    c.layout(&project.path().join("layered"), &wide, "t");
    for args in [
        &["check", "oci:layered:t"][..],
        &[
            "verify",
            "oci:layered:t",
            "--platform",
            "linux/amd64",
            "--deep",
        ],
    ] {
        let out = archbuild_bounded(&project, args);
        refused(args[0], &out, &["lists more than 100000 layers"]);
    }

    // The same child listed 20,000 times under one platform is read once.
    let mut c = Crafted::default();
    let image = c.image();
    let top = c.index(vec![image; 20_000]);
    c.layout(&project.path().join("same"), &top, "t");
    let out = archbuild_bounded(&project, &["check", "oci:same:t", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(images_checked(&out), 1);
}

#[test]
fn indexes_that_list_themselves_nest_too_deep_or_fan_out_are_refused_in_a_docker_archive() {
    // A `docker save` archive of Docker 25+ holds an OCI index (`index.json`, `blobs/`), and
    // an archive without `manifest.json` is read by following it: the same hostile shapes.
    let project = Project::new();
    let check = |name: &str, archive: Vec<u8>| {
        project.write(&format!("{name}.tar"), archive);
        archbuild_bounded(&project, &["check", &format!("docker-archive:{name}.tar")])
    };

    let me = claimed("self");
    let index = json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": INDEX, "digest": me, "size": 200}]});
    let member = format!("blobs/{}", me.replacen(':', "/", 1));
    let top = json!({"mediaType": INDEX, "digest": me, "size": 200});
    let archive = Crafted::default().archive(
        &top,
        &[(member.clone(), serde_json::to_vec(&index).unwrap())],
    );
    refused(
        "self",
        &check("self", archive),
        &[&member, "does not match its digest"],
    );

    let mut c = Crafted::default();
    let top = c.nested(5);
    refused(
        "deep",
        &check("deep", c.archive(&top, &[])),
        &["nest deeper than 4 levels"],
    );

    let mut c = Crafted::default();
    let top = c.fan_out(4097);
    refused(
        "wide",
        &check("wide", c.archive(&top, &[])),
        &["more than 4096 manifests"],
    );

    let mut c = Crafted::default();
    let image = c.image();
    let top = c.index(vec![image; 20_000]);
    project.write("same.tar", c.archive(&top, &[]));
    let out = archbuild_bounded(&project, &["check", "docker-archive:same.tar", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(images_checked(&out), 1);
}

#[test]
fn indexes_nesting_too_deep_or_fanning_out_are_refused_in_a_registry() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let project = Project::new();

    // A registry stores an index only once every manifest it lists is there, so an index
    // that lists itself (or a cycle) cannot be uploaded: it is refused as unknown.
    let me = claimed("self");
    let index = json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [{"mediaType": INDEX, "digest": me, "size": 200}]});
    let (status, head) = push_manifest(
        &registry.addr,
        "hostile/self",
        "1",
        INDEX,
        &serde_json::to_vec(&index).unwrap(),
    );
    assert_eq!(
        status, 400,
        "the registry accepted a dangling index: {head}"
    );

    let mut c = Crafted::default();
    c.nested(5);
    c.push(&registry, "hostile/deep", "1");
    let out = archbuild_bounded(
        &project,
        &["check", &format!("{}/hostile/deep:1", registry.addr)],
    );
    refused("deep", &out, &["nest deeper than 4 levels"]);
    let deep = format!("{}/hostile/deep:1", registry.addr);
    let out = archbuild_bounded(
        &project,
        &["verify", &deep, "--platform", "linux/amd64", "--deep"],
    );
    // verify reads one level: a release tag's entries must be images, so a nested index is
    // a finding (exit 1), named, without reading further down.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify --deep of deep: {stdout}"
    );
    assert!(stdout.contains("broken-reference"), "{stdout}");
    assert!(stdout.contains("not an image manifest"), "{stdout}");
    assert!(stdout.contains("NOT verified"), "{stdout}");

    let mut c = Crafted::default();
    c.fan_out(4097);
    c.push(&registry, "hostile/wide", "1");
    let wide = format!("{}/hostile/wide:1", registry.addr);
    let out = archbuild_bounded(&project, &["check", &wide]);
    refused("wide", &out, &["more than 4096 manifests"]);
    // verify and inspect read an index's children too: refused before any is fetched.
    for args in [
        &["verify", &wide, "--platform", "linux/amd64"][..],
        &["verify", &wide, "--platform", "linux/amd64", "--deep"],
        &["inspect", &wide],
    ] {
        let out = archbuild_bounded(&project, args);
        refused(args[0], &out, &["lists 4097 manifests", "at most 4096"]);
    }

    // Just under the limit, one image under 4,096 platforms is fetched and scanned once and
    // checked per platform, in a bounded run, by check and by verify --deep.
    let mut c = Crafted::default();
    c.fan_out(4096);
    c.push(&registry, "hostile/widest", "1");
    let widest = format!("{}/hostile/widest:1", registry.addr);
    let started = std::time::Instant::now();
    let out = archbuild_bounded(&project, &["check", &widest, "--json"]);
    let took = started.elapsed();
    // Each entry's variant (x0...) is not the config's: a finding per platform, exit 1.
    assert_eq!(out.status.code(), Some(1), "{took:?} {}", describe(&out));
    assert_eq!(images_checked(&out), 4096);
    eprintln!("check of 4096 platforms: {took:?}");
    let started = std::time::Instant::now();
    let out = archbuild_bounded(&project, &["verify", &widest, "--platform", "linux/amd64"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    eprintln!("verify of 4096 platforms: {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let out = archbuild_bounded(
        &project,
        &["verify", &widest, "--platform", "linux/amd64", "--deep"],
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{took:?} {}", describe(&out));
    eprintln!("verify --deep of 4096 platforms: {took:?}");
}

/// A layout of one image under `t`, and the paths of its manifest, config and layer blobs.
fn image_layout(dir: &Path) -> [PathBuf; 3] {
    let mut c = Crafted::default();
    let top = c.image();
    c.layout(dir, &top, "t");
    let path = |i: usize| dir.join("blobs").join(c.items[i].0.replacen(':', "/", 1));
    [path(2), path(0), path(1)]
}

fn mkfifo(path: &Path) {
    run_ok(std::process::Command::new("mkfifo").arg(path));
}

#[test]
fn blobs_that_are_devices_fifos_or_symbolic_links_end_in_a_clear_error() {
    let project = Project::new();
    // (case, which file of the layout is replaced, by what, the words of the error)
    type Replace = fn(&Path);
    let cases: [(&str, usize, Replace, &[&str]); 5] = [
        (
            "layer-zero",
            2,
            |p| symlink("/dev/zero", p),
            &["symbolic link"],
        ),
        ("layer-fifo", 2, mkfifo, &["not a regular file", "FIFO"]),
        (
            "config-zero",
            1,
            |p| symlink("/dev/zero", p),
            &["symbolic link"],
        ),
        ("manifest-fifo", 0, mkfifo, &["not a regular file", "FIFO"]),
        (
            "manifest-zero",
            0,
            |p| symlink("/dev/zero", p),
            &["symbolic link"],
        ),
    ];
    for (case, which, replace, words) in cases {
        let dir = project.path().join(case);
        let blobs = image_layout(&dir);
        let blob = &blobs[which];
        std::fs::remove_file(blob).unwrap();
        replace(blob);
        let name = blob.file_name().unwrap().to_string_lossy().to_string();
        let out = archbuild_bounded(&project, &["check", &format!("oci:{case}:t")]);
        let mut words = words.to_vec();
        words.push(&name);
        refused(case, &out, &words);
    }

    // The blobs' folder a symbolic link to one elsewhere (holding the very same blobs).
    let dir = project.path().join("linked");
    image_layout(&dir);
    std::fs::rename(dir.join("blobs/sha256"), project.path().join("elsewhere")).unwrap();
    symlink(project.path().join("elsewhere"), &dir.join("blobs/sha256"));
    let out = archbuild_bounded(&project, &["check", "oci:linked:t"]);
    refused("linked", &out, &["blobs/sha256 is not a folder"]);

    // index.json a FIFO no one writes to, or /dev/zero: never opened for a read that waits.
    for (case, replace, is) in [
        ("index-fifo", mkfifo as Replace, "a device, FIFO or socket"),
        ("index-zero", |p| symlink("/dev/zero", p), "a symbolic link"),
    ] {
        let dir = project.path().join(case);
        image_layout(&dir);
        std::fs::remove_file(dir.join("index.json")).unwrap();
        replace(&dir.join("index.json"));
        let out = archbuild_bounded(&project, &["check", &format!("oci:{case}:t")]);
        refused(
            case,
            &out,
            &[&format!("index.json is {is}, not a regular file")],
        );
    }
}

fn symlink(target: impl AsRef<Path>, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn blobs_that_do_not_match_their_digest_or_use_an_unknown_algorithm_are_named() {
    let project = Project::new();
    // A layer under sha256 whose content is another (valid) tar.
    let [_, _, layer] = image_layout(&project.path().join("sha256"));
    let other = {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        tar.append_data(&mut h, "etc/other", &b"other\n"[..])
            .unwrap();
        tar.into_inner().unwrap()
    };
    std::fs::write(&layer, &other).unwrap();
    let hex = layer.file_name().unwrap().to_string_lossy().to_string();
    let out = archbuild_bounded(&project, &["check", "oci:sha256:t"]);
    refused("sha256", &out, &[&hex, "has digest", &sha256(&other)]);

    // The same under sha512, and a config whose bytes are not its digest's.
    for (case, field) in [("sha512", "layers"), ("config", "config")] {
        let mut c = Crafted::default();
        let mut image = c.image();
        let manifest_bytes = c.items.pop().unwrap().1;
        let mut manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        let dir = project.path().join(case);
        let claimed = if field == "layers" {
            let d = sha512(b"what the layer was");
            put_file(&dir, &d, &other);
            manifest["layers"][0]["digest"] = json!(d);
            d
        } else {
            let d = claimed("config");
            put_file(&dir, &d, br#"{"architecture":"arm64","os":"linux"}"#);
            manifest["config"]["digest"] = json!(d);
            d
        };
        let desc = c.document(MANIFEST, &manifest);
        image["digest"] = desc["digest"].clone();
        image["size"] = desc["size"].clone();
        c.layout(&dir, &image, "t");
        let out = archbuild_bounded(&project, &["check", &format!("oci:{case}:t")]);
        refused(case, &out, &[&claimed, "has digest"]);
    }

    // Digests in an algorithm archbuild cannot verify: a layer's, and index.json's entry.
    let md5 = "md5:5d41402abc4b2a76b9719d2911017c59";
    let mut c = Crafted::default();
    let mut image = c.image();
    let manifest_bytes = c.items.pop().unwrap().1;
    let mut manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    manifest["layers"][0]["digest"] = json!(md5);
    let desc = c.document(MANIFEST, &manifest);
    image["digest"] = desc["digest"].clone();
    image["size"] = desc["size"].clone();
    let dir = project.path().join("md5");
    put_file(&dir, md5, &other);
    c.layout(&dir, &image, "t");
    let out = archbuild_bounded(&project, &["check", "oci:md5:t"]);
    refused("md5 layer", &out, &[md5, "md5", "only sha256 and sha512"]);
    write_index_json(
        &dir,
        &json!({"mediaType": MANIFEST, "digest": md5, "size": 2}),
        "t",
    );
    let out = archbuild_bounded(&project, &["check", "oci:md5:t"]);
    refused("md5 manifest", &out, &[md5, "only sha256 and sha512"]);
}

#[test]
fn audit_refuses_an_alias_bomb_and_an_endless_file_within_limits() {
    let project = Project::new();
    // A Pod, then the billion laughs: nine levels of ten aliases, 10^9 strings from 700 bytes.
    let mut text = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: a, image: x/a:1}]\n---\n",
    );
    text.push_str("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    assert!(text.len() < 4096);
    project.write("bomb.yaml", &text);
    let started = std::time::Instant::now();
    let out = archbuild_bounded(
        &project,
        &[
            "audit",
            "bomb.yaml",
            "--platform",
            "linux/amd64,linux/arm64",
        ],
    );
    let err = refused("bomb", &out, &["bomb.yaml:7:", "aliases expand"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}: {err}",
        started.elapsed()
    );

    // A manifest that never ends (a link to /dev/zero, as a checked-out repository can
    // hold): refused at the limit, not read until memory is gone.
    symlink("/dev/zero", &project.path().join("zero.yaml"));
    let out = archbuild_bounded(
        &project,
        &["audit", "zero.yaml", "--platform", "linux/amd64"],
    );
    refused("zero", &out, &["zero.yaml is larger than 67108864 bytes"]);
}

/// A Deployment `namespace/name` of one container running `image`, as YAML.
fn deployment(namespace: &str, name: &str, image: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {}, namespace: {}}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec:\n      containers: [{{name: app, image: {}}}]\n",
        quoted(name),
        quoted(namespace),
        quoted(image)
    )
}

/// Every file and folder under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn audit_patches_of_colliding_names_are_distinct_and_hostile_names_write_nothing() {
    let Some(registry) = Registry::start() else {
        return;
    };
    // An amd64-only image: on an amd64 + arm64 cluster, each workload gets an affinity patch.
    let mut c = Crafted::default();
    c.image();
    c.push(&registry, "hostile/app", "1");
    let image = format!("{}/hostile/app:1", registry.addr);
    // The project sits in a folder of its own, so that anything written beside it shows.
    let outer = tempfile::tempdir().unwrap();
    let project = Project::new_in(outer.path());
    let root = project.path().to_path_buf();
    let inner = root.file_name().unwrap().to_string_lossy().to_string();

    let both = [
        deployment("prod-eu", "api", &image),
        deployment("prod", "eu-api", &image),
    ]
    .join("---\n");
    project.write("both.yaml", both);
    let platforms = "linux/amd64,linux/arm64";
    let out = archbuild_bounded(
        &project,
        &[
            "audit",
            "both.yaml",
            "--platform",
            platforms,
            "--patches",
            "patches",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let written = tree(&root.join("patches"));
    assert_eq!(
        written,
        [
            "deployment_prod-eu_api.affinity.yaml",
            "deployment_prod_eu-api.affinity.yaml"
        ],
        "{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kubectl patch deployment api -n prod-eu ")
            && stdout.contains("kubectl patch deployment eu-api -n prod "),
        "{stdout}"
    );
    let before = tree(outer.path());

    // Names no API server accepts: refused before anything is resolved or written.
    let hostile = [
        ("prod", "../../../pwned"),
        ("../..", "api"),
        ("prod", "a\"b"),
        ("prod", "$(touch pwned)"),
        ("prod", "`touch pwned`"),
        ("prod", "api\n--- evil"),
        ("prod\nx", "api"),
        ("prod", "api\u{1b}]0;owned\u{7}"),
        ("prod", "api/../../x"),
    ];
    for (namespace, name) in hostile {
        let case = format!("{namespace:?}/{name:?}");
        project.write("hostile.yaml", deployment(namespace, name, &image));
        let out = archbuild_bounded(
            &project,
            &[
                "audit",
                "hostile.yaml",
                "--platform",
                platforms,
                "--patches",
                "out",
            ],
        );
        let err = refused(&case, &out, &["hostile.yaml", "must be lowercase"]);
        assert!(
            !err.contains('\u{1b}'),
            "{case}: an escape reached the terminal: {err:?}"
        );
        assert!(!root.join("out").exists(), "{case}: {:?}", tree(&root));
    }
    let mut after = tree(outer.path());
    after.retain(|p| *p != format!("{inner}/hostile.yaml"));
    assert_eq!(after, before, "files written outside the patches folder");
}
