//! The test harness shared by the integration suites: a real Docker daemon, a real registry
//! process (Debian's `docker-registry`, the CNCF distribution registry) on a free loopback
//! port, throwaway project folders that run the real `archbuild` binary, and small real ELF
//! programs cross-compiled for several architectures.
//!
//! Prerequisites are skipped with a message on a developer machine that lacks them, and fail
//! the run when `CI` is set: a green CI always means the end-to-end suite ran.
#![allow(dead_code)]

pub mod auth;
pub mod debian;
pub mod hosts;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether this run is CI's (a missing prerequisite then fails instead of skipping).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Passes `value` through; when it is `None`, skips (prints why) or, under CI, panics.
pub fn require<T>(what: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        if ci() {
            panic!("prerequisite missing under CI: {what}");
        }
        eprintln!("skipping: {what} is not available on this machine");
    }
    value
}

/// A connection to the local Docker daemon, version-negotiated and pinged.
pub async fn docker() -> Option<bollard::Docker> {
    let connected = async {
        let docker = bollard::Docker::connect_with_local_defaults().ok()?;
        let docker = docker.negotiate_version().await.ok()?;
        docker.ping().await.ok()?;
        Some(docker)
    }
    .await;
    require("a reachable Docker daemon", connected)
}

/// A unique, lower-case name for repositories, tags and temp images.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A real registry process on 127.0.0.1, with its storage in a temp folder; killed on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`, the host part of references pushed to it.
    pub addr: String,
    storage: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
}

impl Registry {
    /// Starts `docker-registry serve` and waits until `/v2/` answers.
    pub fn start() -> Option<Registry> {
        Registry::start_with(|_| String::new())
    }

    /// Starts a registry whose configuration ends with `extra(storage folder)` (an `auth:`
    /// section, for instance).
    pub fn start_with(extra: impl FnOnce(&Path) -> String) -> Option<Registry> {
        let binary = which("docker-registry");
        require(
            "the docker-registry program (Debian package docker-registry)",
            binary,
        )?;
        let storage = tempfile::tempdir().expect("registry storage dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = storage.path().join("config.yml");
        let root = storage.path().join("data");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
                root.display(),
                extra(storage.path())
            ),
        )
        .expect("registry config");
        let mut registry = Registry {
            addr,
            storage,
            config,
            child: None,
        };
        registry.restart();
        Some(registry)
    }

    /// Stops the process (storage is kept), as a registry outage mid-push would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and storage, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.storage.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // 401 when the registry asks for authentication.
            if http_get(&self.addr, "/v2/").is_some_and(|s| s == 200 || s == 401) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("registry on {} did not start: {}", self.addr, self.log());
    }

    /// What the registry logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.storage.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps its data (blobs and repositories), for white-box assertions.
    pub fn storage(&self) -> PathBuf {
        self.storage.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal HTTP/1.1 GET on loopback returning the status code.
pub fn http_get(addr: &str, path: &str) -> Option<u16> {
    http_status("GET", addr, path)
}

/// A minimal HTTP/1.1 HEAD on loopback returning the status code.
pub fn http_head(addr: &str, path: &str) -> Option<u16> {
    http_status("HEAD", addr, path)
}

fn http_status(method: &str, addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A minimal HTTP/1.1 request on loopback with a body: the status code and the response's
/// head (status line and headers).
pub fn http_send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP response: {text}"));
    (status, head)
}

/// Uploads a blob to `repo` of a loopback registry (the distribution API's monolithic
/// upload: `POST …/blobs/uploads/`, then one `PUT` of the bytes with `?digest=`); returns
/// its `sha256:` digest.
pub fn push_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let (status, head) = http_send(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        &[],
    );
    assert_eq!(status, 202, "start of an upload of blob {digest}: {head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .unwrap_or_else(|| panic!("no Location: {head}"));
    let path = location
        .strip_prefix(&format!("http://{addr}"))
        .unwrap_or(location);
    let separator = if path.contains('?') { '&' } else { '?' };
    let (status, head) = http_send(
        addr,
        "PUT",
        &format!("{path}{separator}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(status, 201, "upload of blob {digest}: {head}");
    digest
}

/// Puts a manifest or index under `reference` (a tag or its digest) in `repo` of a loopback
/// registry, as raw bytes; returns the status (201 when the registry accepted it).
pub fn push_manifest(
    addr: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> (u16, String) {
    http_send(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        bytes,
    )
}

/// Runs `openssl ARGS` in `dir` (certificates and keys for the harness's servers).
pub fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// Finds a program on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// A throwaway project folder in which the real `archbuild` binary runs.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("archbuild-test-")
                .tempdir()
                .expect("temp project dir"),
        }
    }

    /// A project folder inside `parent` (to see whether anything is written beside it).
    pub fn new_in(parent: &Path) -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("archbuild-test-")
                .tempdir_in(parent)
                .expect("temp project dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), relative to the project.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Writes an executable file (mode 0755).
    pub fn write_exec(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, contents);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Runs `archbuild ARGS` in the project folder.
    pub fn archbuild(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run archbuild")
    }

    /// The `archbuild ARGS` command, for tests that need to set more (env, stdin, signals).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_archbuild"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join(".docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }
}

/// Runs `archbuild ARGS` under a 2 GiB address-space limit (`ulimit -v`) and a 120 s time
/// limit (coreutils' `timeout`), as a CI job that must not be taken down by its input.
pub fn archbuild_bounded(project: &Project, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 2097152 && exec timeout 120 \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_archbuild"))
        .args(args)
        .current_dir(project.path())
        .env("DOCKER_CONFIG", project.path().join(".docker-config"))
        .env_remove("DOCKER_HOST");
    cmd.output().expect("run archbuild under limits")
}

/// Standard output and error of a run, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The C compiler that targets `platform`, and whether it is Debian's cross gcc.
fn compiler_for(platform: &str) -> Option<&'static str> {
    Some(match platform {
        "linux/amd64" => {
            if which("musl-gcc").is_some() {
                "musl-gcc"
            } else {
                "gcc"
            }
        }
        "linux/arm64" => "aarch64-linux-gnu-gcc",
        "linux/arm/v7" => "arm-linux-gnueabihf-gcc",
        "linux/386" => "i686-linux-gnu-gcc",
        "linux/riscv64" => "riscv64-linux-gnu-gcc",
        "linux/s390x" => "s390x-linux-gnu-gcc",
        "linux/ppc64le" => "powerpc64le-linux-gnu-gcc",
        _ => return None,
    })
}

/// A real static ELF program for `platform` that prints `message` and exits 0.
/// Cross-compiled once per (platform, message) and cached under the cargo target folder.
pub fn static_program(platform: &str, message: &str) -> Vec<u8> {
    program(platform, message, true)
}

/// A real dynamically linked ELF program for `platform` (its `PT_INTERP` names the loader,
/// which a `FROM scratch` image does not have).
pub fn dynamic_program(platform: &str, message: &str) -> Vec<u8> {
    program(platform, message, false)
}

fn program(platform: &str, message: &str, static_link: bool) -> Vec<u8> {
    let escaped: String = message
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    let source = format!(
        "#include <unistd.h>\n#include <string.h>\nint main(void) {{ const char *m = \"{escaped}\\n\"; write(1, m, strlen(m)); return 0; }}\n"
    );
    compile_c(platform, &source, static_link)
}

/// Compiles a C program for `platform` (static or dynamically linked), cached by content.
pub fn compile_c(platform: &str, source: &str, static_link: bool) -> Vec<u8> {
    compile_c_with(platform, source, static_link, &[])
}

/// [`compile_c`] with more compiler flags (`-march=x86-64-v3 -mneeded`).
pub fn compile_c_with(platform: &str, source: &str, static_link: bool, flags: &[&str]) -> Vec<u8> {
    let cc = compiler_for(platform).unwrap_or_else(|| panic!("no compiler known for {platform}"));
    let cc = if static_link || cc != "musl-gcc" {
        cc
    } else {
        "gcc"
    };
    if require(&format!("the cross compiler {cc}"), which(cc)).is_none() {
        panic!("cannot build test programs without {cc}");
    }
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (platform, &source, static_link, flags).hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{}-{key}", platform.replace('/', "-")));
    if let Ok(bytes) = std::fs::read(&out) {
        return bytes;
    }
    let src = dir.join(format!("{key}.{}.c", unique("src")));
    std::fs::write(&src, source).unwrap();
    // Unique per call: tests in one process may build the same program at the same time.
    let tmp = dir.join(format!("{key}.{}.tmp", unique("cc")));
    let mut cmd = Command::new(cc);
    cmd.arg("-Os").arg("-s").arg("-o").arg(&tmp).arg(&src);
    if static_link {
        cmd.arg("-static");
    }
    cmd.args(flags);
    let status = cmd.output().expect("run the cross compiler");
    assert!(
        status.status.success(),
        "{cc} failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    std::fs::read(&out).unwrap()
}

/// Runs a command and returns its output, panicking with the output if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", describe(&out));
    out
}

/// A real static Go program (`CGO_ENABLED=0`) built with Debian's Go for `goarch` and the
/// given environment (`GOAMD64=v3`, `GOARM=7`), cached under the cargo target folder.
pub fn go_program(goarch: &str, env: &[(&str, &str)]) -> Vec<u8> {
    let go = require("go (Debian's golang-go)", which("go")).expect("go is needed for this test");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let name: String = std::iter::once(goarch.to_string())
        .chain(env.iter().map(|(k, v)| format!("{k}-{v}")))
        .collect::<Vec<_>>()
        .join("-");
    let out = dir.join(&name);
    if let Ok(bytes) = std::fs::read(&out) {
        return bytes;
    }
    let src = dir.join(unique("src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("go.mod"), "module example.com/hello\n\ngo 1.19\n").unwrap();
    std::fs::write(
        src.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
    )
    .unwrap();
    let tmp = dir.join(unique("bin"));
    let mut cmd = Command::new(go);
    cmd.current_dir(&src)
        .args(["build", "-buildvcs=false", "-o"])
        .arg(&tmp)
        .arg(".")
        .env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", goarch)
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_ok(&mut cmd);
    std::fs::rename(&tmp, &out).unwrap();
    let _ = std::fs::remove_dir_all(&src);
    std::fs::read(&out).unwrap()
}
