//! Real Debian userlands: `debootstrap --foreign --variant=minbase` root filesystems of seven
//! architectures (real programs, libraries, loaders and `#!` scripts) must check perfectly
//! clean, and the failures users meet are made from the same real files: an armhf userland
//! labelled `arm/v6`, a program whose library a later layer removed, and trixie's bash
//! (which needs `GLIBC_2.38`) copied onto bookworm (whose glibc defines up to 2.36), and a
//! library moved to a folder only a real `ldconfig`'s `/etc/ld.so.cache` lists. Checked in
//! an OCI layout, in the Docker daemon and in a registry copy.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::debian::*;
use support::*;

/// A small layer tar of (path, contents or `None` for a whiteout) pairs.
fn small_layer(dir: &Path, name: &str, files: &[(&str, Option<&[u8]>)]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_mtime(0);
        let data = bytes.unwrap_or_default();
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    }
    let out = dir.join(name);
    std::fs::write(&out, b.into_inner().unwrap()).unwrap();
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", describe(out)))
}

fn findings(out: &Output) -> Vec<Value> {
    json_of(out)["findings"].as_array().unwrap().clone()
}

/// The six architectures of the issue and armel (soft-float ARMv5), made side by side (debootstrap waits on the network).
fn bookworm_layers() -> Option<Vec<(&'static str, PathBuf)>> {
    let archs = [
        ("amd64", "linux/amd64"),
        ("arm64", "linux/arm64"),
        ("armhf", "linux/arm/v7"),
        ("armel", "linux/arm/v5"),
        ("i386", "linux/386"),
        ("ppc64el", "linux/ppc64le"),
        ("s390x", "linux/s390x"),
    ];
    let made: Vec<Option<PathBuf>> = std::thread::scope(|s| {
        let jobs: Vec<_> = archs
            .iter()
            .map(|(arch, _)| s.spawn(move || rootfs_layer("bookworm", arch)))
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    archs
        .iter()
        .zip(made)
        .map(|((_, platform), layer)| Some((*platform, layer?)))
        .collect()
}

#[test]
fn debian_bookworm_userlands_of_seven_architectures_check_perfectly_clean() {
    let Some(layers) = bookworm_layers() else {
        return;
    };
    let project = Project::new();
    let dir = project.path().join("debian");
    let images: Vec<(&str, &str, Vec<PathBuf>)> = layers
        .iter()
        .map(|(p, l)| (*p, "/bin/bash", vec![l.clone()]))
        .collect();
    layout(&dir, "bookworm", &images);
    let out = project.archbuild(&[
        "check",
        &format!("oci:{}:bookworm", dir.display()),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(findings(&out), Vec::<Value>::new());
    let doc = json_of(&out);
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 7);
    for image in images {
        // Hundreds of programs and libraries each, every one of them resolved.
        assert!(image["elf_files"].as_u64().unwrap() > 500, "{image}");
    }
}

#[test]
fn an_armhf_userland_labelled_arm_v6_is_refused_program_by_program() {
    let Some(armhf) = rootfs_layer("bookworm", "armhf") else {
        return;
    };
    let project = Project::new();
    let dir = project.path().join("v6");
    layout(&dir, "v6", &[("linux/arm/v6", "/bin/bash", vec![armhf])]);
    let out = project.archbuild(&["check", &format!("oci:{}:v6", dir.display()), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let f = findings(&out);
    let bash = f
        .iter()
        .find(|f| f["path"] == "/usr/bin/bash")
        .unwrap_or_else(|| panic!("no finding for bash: {f:#?}"));
    assert_eq!(bash["kind"], "cpu-level-mismatch");
    assert_eq!(bash["severity"], "error");
    assert_eq!(bash["platform"], "linux/arm/v6");
    assert!(bash["message"]
        .as_str()
        .unwrap()
        .contains("Illegal instruction"));
    assert!(
        f.iter().all(|f| f["kind"] == "cpu-level-mismatch"),
        "{f:#?}"
    );
    assert!(f.len() > 100, "every program of the userland: {}", f.len());
}

/// bookworm amd64 with a second layer that removes libtinfo (bash needs it).
#[test]
fn a_program_whose_library_a_later_layer_removed_cannot_start() {
    let Some(base) = rootfs_layer("bookworm", "amd64") else {
        return;
    };
    let project = Project::new();
    let removed = small_layer(
        project.path(),
        "removed.tar",
        &[
            ("usr/lib/x86_64-linux-gnu/.wh.libtinfo.so.6", None),
            ("usr/lib/x86_64-linux-gnu/.wh.libtinfo.so.6.4", None),
        ],
    );
    let dir = project.path().join("removed");
    layout(
        &dir,
        "r",
        &[("linux/amd64", "/bin/bash", vec![base, removed])],
    );
    let out = project.archbuild(&["check", &format!("oci:{}:r", dir.display()), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let f = findings(&out);
    assert!(f.iter().all(|f| f["kind"] == "missing-library"), "{f:#?}");
    let errors: Vec<&Value> = f.iter().filter(|f| f["severity"] == "error").collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["path"], "/usr/bin/bash");
    assert_eq!(errors[0]["platform"], "linux/amd64");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("/usr/bin/bash: error while loading shared libraries: libtinfo.so.6: cannot open shared object file: No such file or directory"),
        "{message}"
    );
    // The other programs linked against it are warnings naming the same library.
    assert!(f.len() > 1, "{f:#?}");
    for w in &f[..] {
        assert!(
            w["message"].as_str().unwrap().contains("libtinfo.so.6"),
            "{w}"
        );
    }
}

/// bookworm amd64 with libtinfo moved to /opt/tinfo, a folder the loader searches only
/// because the real `ldconfig` listed it in `/etc/ld.so.cache`: clean with that cache,
/// `missing-library` without it.
#[test]
fn a_library_only_ld_so_cache_lists_is_found() {
    let (Some(root), Some(base)) = (
        rootfs("bookworm", "amd64"),
        rootfs_layer("bookworm", "amd64"),
    ) else {
        return;
    };
    let Some(ldconfig) = require(
        "ldconfig",
        ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.is_file()),
    ) else {
        return;
    };
    let project = Project::new();
    let tinfo = std::fs::read(root.join("usr/lib/x86_64-linux-gnu/libtinfo.so.6")).unwrap();
    let cache_root = project.path().join("cache-root");
    std::fs::create_dir_all(cache_root.join("opt/tinfo")).unwrap();
    std::fs::create_dir_all(cache_root.join("etc")).unwrap();
    std::fs::write(cache_root.join("opt/tinfo/libtinfo.so.6"), &tinfo).unwrap();
    std::fs::write(cache_root.join("etc/ld.so.conf"), "/opt/tinfo\n").unwrap();
    run_ok(Command::new(ldconfig).args([
        "-X",
        "-C",
        "/etc/ld.so.cache",
        "-f",
        "/etc/ld.so.conf",
        "-r",
        cache_root.to_str().unwrap(),
    ]));
    let cache = std::fs::read(cache_root.join("etc/ld.so.cache")).unwrap();
    let moved: [(&str, Option<&[u8]>); 3] = [
        ("usr/lib/x86_64-linux-gnu/.wh.libtinfo.so.6", None),
        ("usr/lib/x86_64-linux-gnu/.wh.libtinfo.so.6.4", None),
        ("opt/tinfo/libtinfo.so.6", Some(&tinfo)),
    ];
    let without = small_layer(project.path(), "moved.tar", &moved);
    let mut with_cache = moved.to_vec();
    with_cache.push(("etc/ld.so.cache", Some(&cache)));
    let with = small_layer(project.path(), "cached.tar", &with_cache);
    let dir = project.path().join("cache");
    layout(
        &dir,
        "c",
        &[("linux/amd64", "/bin/bash", vec![base.clone(), without])],
    );
    let out = project.archbuild(&["check", &format!("oci:{}:c", dir.display()), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        findings(&out)
            .iter()
            .all(|f| f["kind"] == "missing-library"),
        "{}",
        describe(&out)
    );
    let dir = project.path().join("cached");
    layout(&dir, "c", &[("linux/amd64", "/bin/bash", vec![base, with])]);
    let out = project.archbuild(&["check", &format!("oci:{}:c", dir.display()), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(findings(&out), Vec::<Value>::new());
}

/// trixie's bash copied onto bookworm: in the layout, in the daemon and in a registry.
#[tokio::test(flavor = "multi_thread")]
async fn trixie_bash_on_bookworm_needs_a_newer_glibc_in_every_source() {
    let (Some(base), Some(trixie)) = (rootfs_layer("bookworm", "amd64"), rootfs("trixie", "amd64"))
    else {
        return;
    };
    let project = Project::new();
    let bash = std::fs::read(trixie.join("usr/bin/bash")).unwrap();
    let copied = small_layer(project.path(), "bash.tar", &[("usr/bin/bash", Some(&bash))]);
    let dir = project.path().join("mixed");
    layout(
        &dir,
        "mixed",
        &[("linux/amd64", "/bin/bash", vec![base, copied])],
    );
    let assert_version = |out: &Output, source: &str| {
        assert_eq!(out.status.code(), Some(1), "{source}: {}", describe(out));
        let f = findings(out);
        let versions: Vec<&Value> = f
            .iter()
            .filter(|f| f["kind"] == "library-version-missing")
            .collect();
        assert!(!versions.is_empty(), "{source}: {f:#?}");
        let v = versions[0];
        assert_eq!(v["path"], "/usr/bin/bash", "{source}");
        assert_eq!(v["severity"], "error", "{source}");
        assert_eq!(v["platform"], "linux/amd64", "{source}");
        let message = v["message"].as_str().unwrap();
        assert!(
            message.contains("/usr/lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.38' not found (required by /usr/bin/bash)"),
            "{source}: {message}"
        );
        assert!(
            f.iter().all(|f| f["path"] == "/usr/bin/bash"),
            "{source}: {f:#?}"
        );
    };
    let layout_ref = format!("oci:{}:mixed", dir.display());
    assert_version(
        &project.archbuild(&["check", &layout_ref, "--json"]),
        "layout",
    );

    if require("skopeo", which("skopeo")).is_none() {
        return;
    }
    if let Some(registry) = Registry::start() {
        let dest = format!("{}/userland/mixed:1", registry.addr);
        run_ok(
            Command::new("skopeo")
                .args(["copy", "--all", "--dest-tls-verify=false", &layout_ref])
                .arg(format!("docker://{dest}")),
        );
        assert_version(&project.archbuild(&["check", &dest, "--json"]), "registry");
    }
    if docker().await.is_some() {
        let tag = format!("archbuild-userland-test/{}:1", unique("mixed"));
        // skopeo picks the index's linux/amd64 image, as `docker pull` would.
        run_ok(
            Command::new("skopeo")
                .args(["copy", &layout_ref])
                .arg(format!("docker-daemon:{tag}")),
        );
        let out = project.archbuild(&["check", &format!("docker-daemon:{tag}"), "--json"]);
        let _ = Command::new("docker").args(["rmi", &tag]).output();
        assert_version(&out, "daemon");
    }
}
