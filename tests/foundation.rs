//! The project file, the plan and `init`, through the real binary: broken project files are
//! refused with exit status 2 and exactly the `FILE:LINE:COLUMN: message` lines a user needs;
//! a good one is planned (table and JSON); `init` writes a file that `plan` accepts and never
//! overwrites one unless told to.

mod support;

use support::{describe, Project};

const DOCKERFILE: &str = "FROM scratch\nCOPY hello /hello\n";

/// A project with `archbuild.toml` and a Dockerfile at the top and in `api/`.
fn project(toml: &str) -> Project {
    let p = Project::new();
    p.write("archbuild.toml", toml);
    p.write("Dockerfile", DOCKERFILE);
    p.write("api/Dockerfile", DOCKERFILE);
    p
}

/// `archbuild plan` refuses the file: exit 2, these diagnostics (`{dir}` standing for the
/// project folder), then the summary line.
fn assert_refused(toml: &str, expected: &[&str]) {
    let p = project(toml);
    let out = p.archbuild(&["plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let n = expected.len();
    let summary = format!(
        "archbuild: archbuild.toml: {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
    let dir = p.path().display().to_string();
    let mut want: Vec<String> = expected.iter().map(|s| s.replace("{dir}", &dir)).collect();
    want.push(summary);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let got: Vec<&str> = stderr.lines().collect();
    pretty_assertions::assert_eq!(got, want);
}

#[test]
fn refuses_toml_syntax_errors() {
    assert_refused(
        "[images.api\ncontext = \"api\"\n",
        &["archbuild.toml:1:12: invalid TOML: unclosed table, expected `]`"],
    );
}

#[test]
fn refuses_unknown_keys_naming_the_allowed_ones() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\ndockerfil = \"Dockerfile\"\n",
        &["archbuild.toml:3:1: unknown key \"dockerfil\" in [images.api]; did you mean \"dockerfile\"? (allowed: \"context\", \"dockerfile\", \"target\", \"repository\", \"tags\", \"platforms\", \"build-args\", \"labels\", \"check\")"],
    );
}

#[test]
fn refuses_unknown_platforms_with_a_suggestion() {
    assert_refused(
        "[defaults]\nplatforms = [\"linux/amd46\", \"linux/arm64\"]\n[images.api]\ncontext = \"api\"\n",
        &["archbuild.toml:2:14: unknown platform \"linux/amd46\"; did you mean \"linux/amd64\"?"],
    );
}

#[test]
fn refuses_an_empty_platform_list() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\nplatforms = []\n",
        &["archbuild.toml:3:13: [images.api] platforms is empty; list at least one platform, e.g. [\"linux/amd64\", \"linux/arm64\"]"],
    );
}

#[test]
fn refuses_a_platform_listed_twice_under_another_name() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\nplatforms = [\"linux/arm64\", \"aarch64\"]\n",
        &["archbuild.toml:3:29: platform \"aarch64\" is linux/arm64, already listed at line 3, column 14; remove one"],
    );
}

#[test]
fn refuses_a_tag_listed_twice() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\ntags = [\"1.0\", \"latest\", \"1.0\"]\n",
        &["archbuild.toml:3:26: [images.api] tag \"1.0\" is listed twice (first at line 3, column 9); remove one"],
    );
}

#[test]
fn refuses_two_images_writing_the_same_tag() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\nrepository = \"ghcr.io/acme/app\"\n\n[images.web]\nrepository = \"ghcr.io/acme/app\"\n",
        &["archbuild.toml:5:9: \"ghcr.io/acme/app:latest\" is also written by [images.api] (line 1, column 9); give each image its own repository or tags"],
    );
}

#[test]
fn refuses_an_invalid_tag() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\ntags = [\"1.8.0+build.5\"]\n",
        &["archbuild.toml:3:9: [images.api] invalid tag \"1.8.0+build.5\": a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\" and does not start with \".\" or \"-\"; did you mean \"1.8.0-build.5\"?"],
    );
}

#[test]
fn refuses_an_invalid_repository() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\nrepository = \"ghcr.io/Acme/API\"\n",
        &["archbuild.toml:3:14: [images.api] repository \"ghcr.io/Acme/API\" has capital letters in its path; did you mean \"ghcr.io/acme/api\"?"],
    );
}

#[test]
fn refuses_a_missing_context_folder() {
    assert_refused(
        "[images.api]\ncontext = \"services/api\"\n",
        &["archbuild.toml:2:11: [images.api] context folder \"services/api\" does not exist ({dir}/services/api is not a folder); context is relative to the folder of the project file"],
    );
}

#[test]
fn refuses_a_missing_dockerfile() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\ndockerfile = \"Dockerfile.prod\"\n",
        &["archbuild.toml:3:14: [images.api] Dockerfile \"Dockerfile.prod\" not found at {dir}/api/Dockerfile.prod; dockerfile is relative to the context folder"],
    );
}

#[test]
fn refuses_a_builder_url_of_an_unsupported_scheme() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\n[builders]\ndefault = \"ftp://builder\"\n",
        &["archbuild.toml:4:11: builder \"ftp://builder\" uses unsupported scheme \"ftp\"; use unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST, npipe:////./pipe/NAME or context:NAME"],
    );
}

#[test]
fn refuses_a_builder_key_that_is_not_a_platform() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\n[builders]\n\"linux/arm46\" = \"ssh://ci@arm\"\n",
        &["archbuild.toml:4:1: [builders] key: unknown platform \"linux/arm46\"; did you mean \"linux/arm64\"?; a key is a platform or \"default\""],
    );
}

#[test]
fn refuses_an_unknown_index_format() {
    assert_refused(
        "[defaults]\nindex-format = \"OCI-index\"\n[images.api]\ncontext = \"api\"\n",
        &["archbuild.toml:2:16: index-format \"OCI-index\" is not supported; use \"oci\" or \"docker\""],
    );
}

#[test]
fn refuses_a_project_without_images() {
    assert_refused(
        "[defaults]\nplatforms = [\"linux/amd64\"]\n",
        &["archbuild.toml:1:1: no images: add an [images.NAME] table with context = \"FOLDER\" (`archbuild init` writes one per Dockerfile)"],
    );
}

#[test]
fn refuses_a_value_of_the_wrong_type() {
    assert_refused(
        "[images.api]\ncontext = \"api\"\ntags = \"latest\"\n",
        &["archbuild.toml:3:8: [images.api]: invalid type: string \"latest\", expected a sequence"],
    );
}

#[test]
fn reports_every_problem_of_a_file_at_once() {
    let toml = r#"[defaults]
platforms = ["linux/amd64", "linux/amd46"]
index-format = "dokcer"

[images.api]
context = "api"
tags = ["1.0", "1.0", "bad tag"]
repo = "ghcr.io/acme/api"

[images.web]
context = "web"

[builders]
"linux/arm64" = "http://arm:2375"
"#;
    assert_refused(
        toml,
        &[
            "archbuild.toml:2:29: unknown platform \"linux/amd46\"; did you mean \"linux/amd64\"?",
            "archbuild.toml:3:16: index-format \"dokcer\" is not supported; did you mean \"docker\"? use \"oci\" or \"docker\"",
            "archbuild.toml:7:16: [images.api] tag \"1.0\" is listed twice (first at line 7, column 9); remove one",
            "archbuild.toml:7:23: [images.api] invalid tag \"bad tag\": a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\" and does not start with \".\" or \"-\"; did you mean \"bad-tag\"?",
            "archbuild.toml:8:1: unknown key \"repo\" in [images.api] (allowed: \"context\", \"dockerfile\", \"target\", \"repository\", \"tags\", \"platforms\", \"build-args\", \"labels\", \"check\")",
            "archbuild.toml:11:11: [images.web] context folder \"web\" does not exist ({dir}/web is not a folder); context is relative to the folder of the project file",
            "archbuild.toml:14:17: builder \"http://arm:2375\" uses scheme \"http\", which the Docker client does not take; write \"tcp://arm:2375\"",
        ],
    );
}

const SAMPLE: &str = r#"[defaults]
platforms = ["linux/amd64", "linux/arm64"]
registry = "registry.example.com/team"

[images.api]
context = "api"
repository = "ghcr.io/acme/api"
tags = ["1.8.0", "latest"]
platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]

[images.web]

[builders]
"linux/arm64" = "ssh://ci@arm-builder"
"#;

#[test]
fn plan_prints_a_table_of_jobs_and_their_builders() {
    let p = project(SAMPLE);
    let out = p.archbuild(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let want = "\
IMAGE  PLATFORM      BUILDER (chosen by)                                             TAGS
api    linux/amd64   unix:///var/run/docker.sock (default socket)                    ghcr.io/acme/api:1.8.0, ghcr.io/acme/api:latest
api    linux/arm64   ssh://ci@arm-builder (archbuild.toml [builders] \"linux/arm64\")  ghcr.io/acme/api:1.8.0, ghcr.io/acme/api:latest
api    linux/arm/v7  unix:///var/run/docker.sock (default socket)                    ghcr.io/acme/api:1.8.0, ghcr.io/acme/api:latest
web    linux/amd64   unix:///var/run/docker.sock (default socket)                    registry.example.com/team/web:latest
web    linux/arm64   ssh://ci@arm-builder (archbuild.toml [builders] \"linux/arm64\")  registry.example.com/team/web:latest
";
    pretty_assertions::assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn plan_json_is_one_document_and_follows_docker_host() {
    let p = project(SAMPLE);
    let out = p
        .command(&["plan", "--json", "api"])
        .env("DOCKER_HOST", "tcp://127.0.0.1:2375")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let jobs = doc["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[0]["image"], "api");
    assert_eq!(jobs[0]["platform"], "linux/amd64");
    assert_eq!(jobs[0]["builder"]["url"], "tcp://127.0.0.1:2375");
    assert_eq!(jobs[0]["builder"]["chosen_by"], "DOCKER_HOST");
    assert_eq!(jobs[1]["builder"]["url"], "ssh://ci@arm-builder");
    assert_eq!(jobs[2]["platform"], "linux/arm/v7");
    assert_eq!(
        jobs[2]["references"],
        serde_json::json!(["ghcr.io/acme/api:1.8.0", "ghcr.io/acme/api:latest"])
    );
    assert_eq!(
        jobs[2]["platform_tag"],
        "archbuild-local/api:1.8.0-linux-arm-v7"
    );
    let context = p.path().join("api");
    assert_eq!(jobs[0]["context"], context.to_str().unwrap());
    assert_eq!(
        jobs[0]["dockerfile"],
        context.join("Dockerfile").to_str().unwrap()
    );
}

#[test]
fn plan_refuses_an_unknown_image_name() {
    let p = project(SAMPLE);
    let out = p.archbuild(&["plan", "apii"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "archbuild: no image \"apii\" in archbuild.toml (did you mean \"api\"?); the images are: api, web\n"
    );
}

#[test]
fn plan_finds_the_project_file_in_a_parent_folder_or_says_to_run_init() {
    let p = project(SAMPLE);
    p.write("api/src/main.c", "int main(void) { return 0; }\n");
    let mut cmd = p.command(&["plan"]);
    let out = cmd.current_dir(p.path().join("api/src")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let empty = Project::new();
    let out = empty.archbuild(&["plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("archbuild: no archbuild.toml in "),
        "{stderr}"
    );
    assert!(
        stderr.contains("run `archbuild init` to write one"),
        "{stderr}"
    );
}

#[test]
fn init_writes_a_project_that_plan_accepts() {
    let p = Project::new();
    p.write("Dockerfile", DOCKERFILE);
    p.write("services/api/Dockerfile", DOCKERFILE);
    p.write("worker.Dockerfile", DOCKERFILE);
    p.write("node_modules/dep/Dockerfile", DOCKERFILE);
    let out = p.archbuild(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let written = std::fs::read_to_string(p.path().join("archbuild.toml")).unwrap();
    assert!(written.contains("[images.api]\n"), "{written}");
    assert!(written.contains("[images.worker]\n"), "{written}");
    assert!(written.contains("context = \"services/api\""), "{written}");
    assert!(!written.contains("node_modules"), "{written}");

    let out = p.archbuild(&["plan", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut images: Vec<String> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            format!(
                "{} {}",
                j["image"].as_str().unwrap(),
                j["platform"].as_str().unwrap()
            )
        })
        .collect();
    images.retain(|i| !i.starts_with("archbuild-test-"));
    assert_eq!(
        images,
        vec![
            "api linux/amd64",
            "api linux/arm64",
            "worker linux/amd64",
            "worker linux/arm64"
        ]
    );
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 6);
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let p = Project::new();
    p.write("Dockerfile", DOCKERFILE);
    p.write("archbuild.toml", "# mine\n");
    let out = p.archbuild(&["init"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "archbuild: archbuild.toml already exists; pass --force to overwrite it, or --stdout to print the new one instead\n"
    );
    let kept = std::fs::read_to_string(p.path().join("archbuild.toml")).unwrap();
    assert_eq!(kept, "# mine\n");

    let out = p.archbuild(&["init", "--stdout"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("[images."));
    let kept = std::fs::read_to_string(p.path().join("archbuild.toml")).unwrap();
    assert_eq!(kept, "# mine\n");

    let out = p.archbuild(&["init", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let replaced = std::fs::read_to_string(p.path().join("archbuild.toml")).unwrap();
    assert!(replaced.contains("[images."), "{replaced}");
}

#[test]
fn init_refuses_a_folder_without_dockerfiles() {
    let p = Project::new();
    p.write("README.md", "nothing to build\n");
    let out = p.archbuild(&["init"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("archbuild: no Dockerfile found under "),
        "{stderr}"
    );
    assert!(!p.path().join("archbuild.toml").exists());
}
