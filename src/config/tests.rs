//! Unit tests of parsing and checking, on literal project files and a fake disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;

/// A disk where only the listed folders and files exist.
#[derive(Default)]
struct FakeDisk {
    dirs: BTreeSet<PathBuf>,
    files: BTreeSet<PathBuf>,
}

impl FakeDisk {
    fn with(dirs: &[&str], files: &[&str]) -> Self {
        FakeDisk {
            dirs: dirs.iter().map(PathBuf::from).collect(),
            files: files.iter().map(PathBuf::from).collect(),
        }
    }
}

impl Disk for FakeDisk {
    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains(path)
    }
}

fn project_disk() -> FakeDisk {
    FakeDisk::with(
        &["/p", "/p/api", "/p/web"],
        &[
            "/p/Dockerfile",
            "/p/api/Dockerfile",
            "/p/web/Dockerfile.web",
        ],
    )
}

fn parse(text: &str) -> Result<Project, ConfigErrors> {
    parse_with(text, Path::new("/p/archbuild.toml"), &project_disk())
}

/// The diagnostics as `LINE:COLUMN: message` strings.
fn problems(text: &str) -> Vec<String> {
    let err = parse(text).expect_err("the file should be refused");
    err.diagnostics()
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect()
}

const FULL: &str = r#"
[defaults]
platforms = ["linux/amd64", "linux/arm64"]
registry = "registry.example.com/team"
index-format = "docker"
output = "out/oci"
insecure-registries = ["myhost:5000"]

[images.api]
context = "api"
target = "runtime"
repository = "ghcr.io/acme/api"
tags = ["1.8.0", "latest"]
platforms = ["linux/amd64", "aarch64", "linux/arm/v7"]
build-args = { VERSION = "1.8.0" }
labels = { "org.opencontainers.image.source" = "https://example.com/acme/api" }
check = { ignore = ["/usr/share/qemu/**"], binaries = ["/usr/local/bin/api"] }

[images.web]
context = "web"
dockerfile = "Dockerfile.web"

[builders]
"linux/arm64" = "ssh://ci@arm-builder"
"linux/amd64" = ["ssh://ci@amd1", "tcp://amd2:2376"]
default = "unix:///var/run/docker.sock"
"#;

#[test]
fn a_full_project_resolves() {
    let p = parse(FULL).unwrap();
    assert_eq!(p.dir, PathBuf::from("/p"));
    assert_eq!(p.index_format, IndexFormat::Docker);
    assert_eq!(p.output, PathBuf::from("/p/out/oci"));
    assert_eq!(p.insecure_registries, vec!["myhost:5000"]);
    let api = &p.images["api"];
    assert_eq!(api.context, PathBuf::from("/p/api"));
    assert_eq!(api.dockerfile, PathBuf::from("/p/api/Dockerfile"));
    assert_eq!(api.target.as_deref(), Some("runtime"));
    assert_eq!(
        crate::reference::list(&api.references()),
        "ghcr.io/acme/api:1.8.0, ghcr.io/acme/api:latest"
    );
    let names: Vec<String> = api.platforms.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, vec!["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    assert_eq!(api.build_args["VERSION"], "1.8.0");
    assert_eq!(api.check.binaries, vec!["/usr/local/bin/api"]);
    assert_eq!(api.check.ignore, vec!["/usr/share/qemu/**"]);

    let web = &p.images["web"];
    assert_eq!(web.dockerfile, PathBuf::from("/p/web/Dockerfile.web"));
    assert_eq!(
        web.repository.as_ref().map(ToString::to_string).as_deref(),
        Some("registry.example.com/team/web")
    );
    assert_eq!(web.tags, vec!["latest"]);
    assert_eq!(web.platforms, p.default_platforms);

    let arm64 = Platform::parse("linux/arm64").unwrap();
    assert_eq!(p.builders.by_platform[&arm64], vec!["ssh://ci@arm-builder"]);
    let amd64 = Platform::parse("linux/amd64").unwrap();
    assert_eq!(
        p.builders.by_platform[&amd64],
        vec!["ssh://ci@amd1", "tcp://amd2:2376"]
    );
    assert_eq!(
        p.builders.default,
        Some(vec!["unix:///var/run/docker.sock".to_string()])
    );
}

#[test]
fn defaults_fill_in_what_is_not_written() {
    let p = parse("[images.app]\n").unwrap();
    let app = &p.images["app"];
    assert_eq!(app.context, PathBuf::from("/p"));
    assert_eq!(app.dockerfile, PathBuf::from("/p/Dockerfile"));
    assert_eq!(app.repository, None);
    assert_eq!(crate::reference::list(&app.references()), "app:latest");
    let names: Vec<String> = app.platforms.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, DEFAULT_PLATFORMS);
    assert_eq!(p.output, PathBuf::from("/p/.archbuild/oci"));
    assert_eq!(p.index_format, IndexFormat::Oci);
}

#[test]
fn syntax_errors_point_at_the_place() {
    let got = problems("[images.api]\ncontext = \n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("2:11: invalid TOML: "), "{got:?}");
}

#[test]
fn unknown_keys_are_all_reported_with_the_allowed_ones() {
    let got = problems(
        "[defaults]\nplatfroms = [\"linux/amd64\"]\n[images.api]\ncontxt = \".\"\ncheck = { binarys = [] }\n[extra]\n",
    );
    assert_eq!(got, vec![
        "2:1: unknown key \"platfroms\" in [defaults]; did you mean \"platforms\"? (allowed: \"platforms\", \"registry\", \"index-format\", \"output\", \"insecure-registries\")",
        "4:1: unknown key \"contxt\" in [images.api]; did you mean \"context\"? (allowed: \"context\", \"dockerfile\", \"target\", \"repository\", \"tags\", \"platforms\", \"build-args\", \"labels\", \"check\")",
        "5:11: unknown key \"binarys\" in [images.api] check; did you mean \"binaries\"? (allowed: \"ignore\", \"binaries\", \"page-size\")",
        "6:2: unknown key \"extra\" at the top level (allowed: \"defaults\", \"images\", \"builders\")",
    ]);
}

#[test]
fn platforms_unknown_empty_and_repeated() {
    let got = problems(
        "[defaults]\nplatforms = []\n[images.api]\nplatforms = [\"linux/amd46\", \"linux/arm64\", \"aarch64\", \"linux/arm64\"]\n",
    );
    assert_eq!(got, vec![
        "2:13: [defaults] platforms is empty; list at least one platform, e.g. [\"linux/amd64\", \"linux/arm64\"]",
        "4:14: unknown platform \"linux/amd46\"; did you mean \"linux/amd64\"?",
        "4:44: platform \"aarch64\" is linux/arm64, already listed at line 4, column 29; remove one",
        "4:55: platform \"linux/arm64\" is listed twice (first at line 4, column 29); remove one",
    ]);
}

#[test]
fn tags_invalid_repeated_and_shared_between_images() {
    let got = problems(
        "[images.api]\nrepository = \"acme/app\"\ntags = [\"1.0\", \"1.0\", \"v1+x\"]\n[images.web]\nrepository = \"acme/app\"\ntags = [\"1.0\"]\n",
    );
    assert_eq!(got, vec![
        "3:16: [images.api] tag \"1.0\" is listed twice (first at line 3, column 9); remove one",
        "3:23: [images.api] invalid tag \"v1+x\": a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\" and does not start with \".\" or \"-\"; did you mean \"v1-x\"?",
        "6:9: \"acme/app:1.0\" is also written by [images.api] (line 3, column 9); give each image its own repository or tags",
    ]);
}

#[test]
fn missing_context_and_dockerfile() {
    let got = problems("[images.api]\ncontext = \"nope\"\n[images.web]\ncontext = \"web\"\n");
    assert_eq!(got, vec![
        "2:11: [images.api] context folder \"nope\" does not exist (/p/nope is not a folder); context is relative to the folder of the project file",
        "3:9: [images.web] Dockerfile \"Dockerfile\" not found at /p/web/Dockerfile; dockerfile is relative to the context folder",
    ]);
}

#[test]
fn builders_keys_and_schemes() {
    let got = problems(
        "[images.app]\n[builders]\n\"linux/arm46\" = \"ssh://h\"\ndefault = \"http://h:2375\"\n\"linux/amd64\" = 5\n",
    );
    assert_eq!(got, vec![
        "3:1: [builders] key: unknown platform \"linux/arm46\"; did you mean \"linux/arm64\"?; a key is a platform or \"default\"",
        "4:11: builder \"http://h:2375\" uses scheme \"http\", which the Docker client does not take; write \"tcp://h:2375\"",
        "5:17: [builders] \"linux/amd64\" must be a string such as \"ssh://user@host\" or an array of them, not an integer",
    ]);
}

#[test]
fn builder_arrays_are_checked_item_by_item() {
    let got = problems(
        "[images.app]\n[builders]\n\"linux/arm64\" = []\n\"linux/amd64\" = [\"ssh://a\", 5, \"ssh://a\"]\n",
    );
    assert_eq!(got, vec![
        "3:17: [builders] \"linux/arm64\" is an empty array; give at least one URL, or remove the entry",
        "4:29: [builders] \"linux/amd64\" must be a string such as \"ssh://user@host\" or an array of them, not an integer",
        "4:32: [builders] \"linux/amd64\" lists ssh://a twice; remove one",
    ]);
}

#[test]
fn index_format_and_no_images() {
    let got = problems("[defaults]\nindex-format = \"oic\"\n");
    assert_eq!(got, vec![
        "1:1: no images: add an [images.NAME] table with context = \"FOLDER\" (`archbuild init` writes one per Dockerfile)",
        "2:16: index-format \"oic\" is not supported; did you mean \"oci\"? use \"oci\" or \"docker\"",
    ]);
}

#[test]
fn wrong_types_name_the_section() {
    let got = problems("[images.api]\ntags = \"latest\"\n[images.web]\ncontext = \"web\"\ndockerfile = \"Dockerfile.web\"\nlabels = { a = 1 }\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0]
            .starts_with("2:8: [images.api]: invalid type: string \"latest\", expected a sequence"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("6:16: [images.web]: invalid type: integer `1`, expected a string"),
        "{got:?}"
    );
}

#[test]
fn repository_problems() {
    let got = problems(
        "[defaults]\nregistry = \"https://r.example.com\"\n[images.api]\nrepository = \"ghcr.io/acme/api:1.0\"\n[images.Web_App]\ncontext = \"web\"\ndockerfile = \"Dockerfile.web\"\n",
    );
    assert_eq!(got, vec![
        "2:12: registry \"https://r.example.com\" has a scheme; write the host and path alone, \"r.example.com\"",
        "4:14: [images.api] repository \"ghcr.io/acme/api:1.0\" contains a tag; write repository = \"ghcr.io/acme/api\" and tags = [\"1.0\"]",
        "5:9: [images.Web_App] image name \"Web_App\" cannot be used in the repository \"Web_App\"; set repository = \"...\" for it, or rename the image with lowercase letters, digits, \".\", \"_\" or \"-\"",
    ]);
}

#[test]
fn check_globs_and_binaries() {
    let got =
        problems("[images.app]\ncheck = { ignore = [\"/a/[\"], binaries = [\"usr/bin/x\"] }\n");
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("2:21: [images.app] check.ignore pattern \"/a/[\" is not a valid glob"),
        "{got:?}"
    );
    assert_eq!(got[1], "2:42: [images.app] check.binaries entry \"usr/bin/x\" is not an absolute path; did you mean \"/usr/bin/x\"?");
}

#[test]
fn check_page_size_is_a_page_size_of_arm64_kernels() {
    let got = problems("[images.app]\ncheck = { page-size = 8192 }\n");
    assert_eq!(got, vec!["2:23: [images.app] check.page-size 8192 is not a page size arm64 kernels use; expected 4096, 16384 or 65536"]);
    let p = parse("[images.app]\ncheck = { page-size = 65536 }\n").unwrap();
    assert_eq!(p.images["app"].check.page_size, Some(65536));
    assert_eq!(
        parse("[images.app]\n").unwrap().images["app"]
            .check
            .page_size,
        None
    );
}

#[test]
fn two_spellings_of_one_repository_are_one_reference() {
    // `docker.io/library/app` and a local-only image named `app` are the same name to Docker.
    let got =
        problems("[images.app]\n[images.other]\nrepository = \"index.docker.io/library/app\"\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("\"app:latest\" is also written by [images.app]"),
        "{got:?}"
    );
}
