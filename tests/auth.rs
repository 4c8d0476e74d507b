//! `archbuild build --push` against registries that ask for credentials, as every public one
//! does: the CNCF registry with token authentication (and the tests' token server) and with
//! htpasswd. Every credential source of the Docker configuration (`auths` with a password or
//! an identity token, `credHelpers`, `credsStore` with a real helper program), anonymous pull,
//! the push-access check before building, pull-only and wrong credentials, and blob mounts
//! between repositories. What is pushed is read back by skopeo and the daemon; no error ever
//! shows a secret.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::auth::*;
use support::*;

/// Secrets the tests hand out; none may appear in any output.
const SECRETS: &[&str] = &[
    "builder-pw",
    "reader-pw",
    "refresh-builder",
    "wrong-pw",
    "helper-secret",
];

fn assert_no_secret(out: &Output) {
    let text = describe(out);
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    for (user, password) in [("builder", "builder-pw"), ("reader", "reader-pw")] {
        assert!(
            !text.contains(&basic(user, password)),
            "base64 shown: {text}"
        );
    }
}

/// A one-image project pushing to `registry`, whose Dockerfile copies `app` (written only
/// when `buildable`: without it a build would fail, so an authentication error proves that
/// nothing was built first).
fn project(registry: &str, name: &str, buildable: bool) -> (Project, String) {
    let p = Project::new();
    let repository = format!("{registry}/team/{}", unique(name));
    p.write(
        "archbuild.toml",
        format!(
            "[images.{name}]\ncontext = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nrepository = \"{repository}\"\ntags = [\"1.0\"]\n"
        ),
    );
    p.write(
        "app/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\nENTRYPOINT [\"/app\"]\n",
    );
    if buildable {
        for arch in ["amd64", "arm64"] {
            p.write_exec(
                &format!("app/app-{arch}"),
                static_program(&format!("linux/{arch}"), &format!("{name} on {arch}")),
            );
        }
    }
    (p, repository)
}

fn push(p: &Project, name: &str, config: &Path, path_prefix: Option<&Path>) -> Output {
    let mut cmd = p.command(&["build", name, "--push", "--json", "--progress", "plain"]);
    cmd.env("DOCKER_CONFIG", config);
    if let Some(bin) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", bin.display()));
    }
    let out = cmd.output().expect("run archbuild");
    assert_no_secret(&out);
    out
}

/// A Docker configuration in `work/name` whose `auths` entry for `host` is `user:password`,
/// as `docker login` writes it.
fn login(work: &Path, name: &str, host: &str, user: &str, password: &str) -> PathBuf {
    docker_config(
        &work.join(name),
        &json!({"auths": {host: {"auth": basic(user, password)}}}),
    )
}

fn skopeo_digest(reference: &str) -> Option<String> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .ok()?;
    use sha2::Digest;
    out.status
        .success()
        .then(|| format!("sha256:{}", hex::encode(sha2::Sha256::digest(&out.stdout))))
}

fn pushed_digest(out: &Output) -> String {
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    report["published"][0]["index_digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no published index: {report}"))
        .to_string()
}

#[tokio::test]
async fn token_registry_logins_from_every_credential_source() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(reg) = token_registry() else { return };
    let host = reg.registry.addr.clone();
    let work = tempfile::tempdir().unwrap();

    // auths with a password, as `docker login` writes it.
    let config = login(work.path(), "auths", &host, "builder", "builder-pw");
    let (p, repository) = project(&host, "auths", true);
    let out = push(&p, "auths", &config, None);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let digest = pushed_digest(&out);
    // Anonymous pull is allowed: skopeo, without credentials, reads what was pushed.
    assert_eq!(
        skopeo_digest(&format!("{repository}:1.0")),
        Some(digest.clone())
    );
    // The daemon pulls it anonymously through the token server and runs it.
    if std::env::consts::ARCH == "x86_64" {
        let reference = format!("{repository}:1.0");
        run_ok(Command::new("docker").args(["pull", "-q", &reference]));
        let ran = run_ok(Command::new("docker").args(["run", "--rm", &reference]));
        assert_eq!(String::from_utf8_lossy(&ran.stdout), "auths on amd64\n");
        let _ = Command::new("docker")
            .args(["rmi", "-f", &reference])
            .output();
    }
    let calls = reg.tokens.calls();
    assert!(
        calls.iter().any(|c| c.account.as_deref() == Some("builder")
            && c.scopes.iter().any(|s| s.ends_with(":pull,push"))),
        "a push token was asked for as builder: {calls:?}"
    );

    // An identity token (a refresh token) is exchanged with a POST, never sent as is.
    let config = docker_config(
        &work.path().join("identity"),
        &json!({"auths": {&host: {"auth": basic("<token>", ""), "identitytoken": "refresh-builder"}}}),
    );
    let (p, repository) = project(&host, "identity", true);
    let out = push(&p, "identity", &config, None);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        skopeo_digest(&format!("{repository}:1.0")),
        Some(pushed_digest(&out))
    );
    assert!(
        reg.tokens.calls().iter().any(|c| c.method == "POST"
            && c.grant_type.as_deref() == Some("refresh_token")
            && c.account.as_deref() == Some("builder")),
        "{:?}",
        reg.tokens.calls()
    );

    // credHelpers and credsStore: a real helper program on PATH.
    let bin = work.path().join("bin");
    let helper_log = credential_helper(&bin, "archtest", "builder", "builder-pw");
    for (key, config) in [
        ("credHelpers", json!({"credHelpers": {&host: "archtest"}})),
        ("credsStore", json!({"credsStore": "archtest"})),
    ] {
        let config = docker_config(&work.path().join(key), &config);
        let (p, repository) = project(&host, "helper", true);
        let out = push(&p, "helper", &config, Some(&bin));
        assert_eq!(out.status.code(), Some(0), "{key}: {}", describe(&out));
        assert_eq!(
            skopeo_digest(&format!("{repository}:1.0")),
            Some(pushed_digest(&out))
        );
    }
    let log = std::fs::read_to_string(&helper_log).unwrap();
    assert!(log.contains(&format!("get {host}")), "{log}");
}

#[tokio::test]
async fn push_access_is_checked_before_building_and_errors_say_what_to_do() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(reg) = token_registry() else { return };
    let host = reg.registry.addr.clone();
    let work = tempfile::tempdir().unwrap();
    let fix = format!("docker login {host}");

    // No login at all: refused before any build (the context has no program to copy, so a
    // build would have failed differently), naming the configuration read and the fix.
    let empty = docker_config(&work.path().join("empty"), &json!({}));
    let (p, repository) = project(&host, "anon", false);
    let started = std::time::Instant::now();
    let out = push(&p, "anon", &empty, None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains(&repository), "{stderr}");
    assert!(stderr.contains(&fix), "{stderr}");
    assert!(
        stderr.contains(&empty.join("config.json").display().to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("app-amd64"), "nothing is built: {stderr}");
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    assert_no_repeated_sentence(&stderr);

    // A pull-only account: the credential was accepted, but there is no push right.
    let reader = login(work.path(), "reader", &host, "reader", "reader-pw");
    let (p, repository) = project(&host, "reader", false);
    let out = push(&p, "reader", &reader, None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("were accepted, but they do not allow"),
        "{stderr}"
    );
    assert!(stderr.contains("push rights"), "{stderr}");
    assert!(stderr.contains(&repository), "{stderr}");
    assert!(
        stderr.contains(&format!("auths entry for {host}")),
        "{stderr}"
    );
    assert_no_repeated_sentence(&stderr);

    // A wrong password: the token server refuses it; the message names the source.
    let wrong = login(work.path(), "wrong", &host, "builder", "wrong-pw");
    let (p, _) = project(&host, "wrong", false);
    let out = push(&p, "wrong", &wrong, None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(stderr.contains(&fix), "{stderr}");
    assert_no_repeated_sentence(&stderr);

    // A helper that is not installed is named, and the fix is given.
    let helper = docker_config(
        &work.path().join("nohelper"),
        &json!({"credHelpers": {&host: "archbuild-absent"}}),
    );
    let (p, _) = project(&host, "nohelper", false);
    let out = push(&p, "nohelper", &helper, None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("docker-credential-archbuild-absent"),
        "{stderr}"
    );
    assert!(stderr.contains(&fix), "{stderr}");
}

/// No sentence (a `: `-separated part of the message) is printed twice.
fn assert_no_repeated_sentence(stderr: &str) {
    for line in stderr.lines().filter(|l| l.starts_with("archbuild:")) {
        let parts: Vec<&str> = line.split(": ").filter(|p| p.len() > 20).collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(part),
                "repeated {part:?} in {line}"
            );
        }
    }
}

#[tokio::test]
async fn blobs_are_mounted_between_repositories_of_the_token_registry() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(reg) = token_registry() else { return };
    let host = reg.registry.addr.clone();
    let work = tempfile::tempdir().unwrap();
    let config = login(work.path(), "auths", &host, "builder", "builder-pw");
    // Two images of one project built from the same files: the same layers, two repositories.
    let p = Project::new();
    let (first, second) = (
        format!("{host}/team/{}", unique("first")),
        format!("{host}/team/{}", unique("second")),
    );
    p.write(
        "archbuild.toml",
        format!(
            "[defaults]\nplatforms = [\"linux/amd64\"]\n[images.first]\ncontext = \"app\"\nrepository = \"{first}\"\ntags = [\"1.0\"]\n[images.second]\ncontext = \"app\"\nrepository = \"{second}\"\ntags = [\"1.0\"]\n"
        ),
    );
    p.write("app/Dockerfile", "FROM scratch\nCOPY data /data\n");
    let data: Vec<u8> = (0u64..4 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    p.write("app/data", &data);
    let mut cmd = p.command(&["build", "--push", "--json", "--progress", "plain"]);
    cmd.env("DOCKER_CONFIG", &config);
    let out = cmd.output().unwrap();
    assert_no_secret(&out);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let published = report["published"].as_array().unwrap();
    assert_eq!(published.len(), 2, "{report}");
    let mounted: u64 = published
        .iter()
        .map(|p| p["stats"]["blobs_mounted"].as_u64().unwrap())
        .sum();
    let uploaded: Vec<u64> = published
        .iter()
        .map(|p| p["stats"]["bytes_uploaded"].as_u64().unwrap())
        .collect();
    assert!(mounted >= 2, "the layer and config were mounted: {report}");
    assert!(
        uploaded.iter().min().unwrap() * 10 < *uploaded.iter().max().unwrap(),
        "the layer's bytes went up once: {uploaded:?}"
    );
    // The token for the second push covered pulling from the first (one request, both scopes).
    let (a, b) = (
        first.split_once('/').unwrap().1.to_string(),
        second.split_once('/').unwrap().1.to_string(),
    );
    let calls = reg.tokens.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.scopes.contains(&format!("repository:{b}:pull,push"))
                && c.scopes.contains(&format!("repository:{a}:pull"))),
        "{calls:?}"
    );
    for repository in [&first, &second] {
        assert!(skopeo_digest(&format!("{repository}:1.0")).is_some());
    }
}

#[tokio::test]
async fn htpasswd_registry_takes_the_password_and_names_the_fix_without_it() {
    let Some(_docker) = docker().await else {
        return;
    };
    let Some(registry) = htpasswd_registry() else {
        return;
    };
    let host = registry.addr.clone();
    let work = tempfile::tempdir().unwrap();
    let empty = docker_config(&work.path().join("empty"), &json!({}));
    let (p, _) = project(&host, "basic", true);
    let out = push(&p, "basic", &empty, None);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains(&format!("docker login {host}")), "{stderr}");
    assert_no_repeated_sentence(&stderr);

    let config = login(work.path(), "auths", &host, "builder", "builder-pw");
    let out = push(&p, "basic", &config, None);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let digest = pushed_digest(&out);
    let reference = format!("{}:1.0", p_repository(&out));
    let read = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "builder:builder-pw",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", describe(&read));
    use sha2::Digest;
    let sha = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&read.stdout)));
    assert_eq!(sha, digest);
}

fn p_repository(out: &Output) -> String {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["published"][0]["location"]
        .as_str()
        .unwrap()
        .to_string()
}
