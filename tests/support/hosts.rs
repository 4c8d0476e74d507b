//! Builder hosts for the tests: a Docker daemon of its own in a network namespace of its own
//! (`ip netns`, a veth pair, its own address), listening on `tcp://ADDRESS:2376` with mutual
//! TLS (a CA and certificates made here with openssl), pinned to one core with `taskset`,
//! with its own `--data-root`, `--exec-root` and pidfile. `nsenter --net` enters only the
//! network namespace (`ip netns exec` would remount `/sys` and hide the cgroup mounts the
//! daemon needs). Dropping a host stops its daemon and removes the namespace and the veth.
//! [`TlsHost::start_sshd`] adds an OpenSSH server in the same namespace whose sessions reach
//! that daemon, for `ssh://` builders, with the client side (key, known hosts, an `ssh` on
//! `PATH` that uses them) in a folder of its own: the machine's ssh settings are not touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{openssl, require, run_ok, which};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A CA and the client certificate signed by it, as `DOCKER_CERT_PATH` holds them.
pub struct Certificates {
    pub dir: tempfile::TempDir,
}

impl Certificates {
    /// A fresh CA (`ca.pem`, `ca-key.pem`) and a client certificate (`cert.pem`, `key.pem`).
    pub fn new() -> Option<Certificates> {
        require("openssl", which("openssl"))?;
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=archbuild-test-ca",
            ],
        );
        let certs = Certificates { dir };
        certs.sign(
            "client",
            "extendedKeyUsage=clientAuth\n",
            "cert.pem",
            "key.pem",
        );
        Some(certs)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Signs a new key's certificate with the CA, with `extensions` (an openssl ext file).
    fn sign(&self, name: &str, extensions: &str, cert: &str, key: &str) {
        let dir = self.dir.path();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key,
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), extensions).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

/// A daemon in its own network namespace, reachable at `url` with the CA's certificates.
pub struct TlsHost {
    pub url: String,
    pub address: String,
    netns: String,
    host_veth: String,
    child: Option<Child>,
    /// `nsenter` arguments that start the daemon.
    args: Vec<String>,
    dir: tempfile::TempDir,
}

/// Claims a free host number and its namespace `archbuild-host-N`: `ip netns add` fails when the
/// name exists, so the namespace itself is the lock between the tests of one process and between
/// processes (the number also names the veth pair and the /24 the host lives in).
fn claim_namespace() -> (u32, String) {
    let first = std::process::id()
        .wrapping_mul(7)
        .wrapping_add(NEXT.fetch_add(1, Ordering::SeqCst));
    for step in 0..230 {
        let n = 20 + (first + step) % 230;
        let netns = format!("archbuild-host-{n}");
        let added = Command::new("ip")
            .args(["netns", "add", &netns])
            .output()
            .expect("ip netns add");
        if added.status.success() {
            return (n, netns);
        }
    }
    panic!("no free network namespace archbuild-host-20..249 (left by killed test runs? `ip netns list`)");
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

/// The storage driver the machine's own daemon uses (the file systems here may not offer
/// overlay to a second one).
fn storage_driver() -> String {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .expect("docker info");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl TlsHost {
    /// Starts a host whose daemon is pinned to `core`, with a server certificate from `ca`.
    pub fn start(ca: &Certificates, core: usize) -> Option<TlsHost> {
        require("ip (Debian package iproute2)", which("ip"))?;
        require("nsenter (Debian package util-linux)", which("nsenter"))?;
        require("dockerd", which("dockerd"))?;
        let (n, netns) = claim_namespace();
        let (host_veth, ns_veth) = (format!("vab{n}h"), format!("vab{n}n"));
        let (gateway, address) = (format!("10.231.{n}.1"), format!("10.231.{n}.2"));
        ip(&[
            "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth,
        ]);
        ip(&["link", "set", &ns_veth, "netns", &netns]);
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &host_veth]);
        ip(&["link", "set", &host_veth, "up"]);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &netns, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        in_ns(&["addr", "add", &format!("{address}/24"), "dev", &ns_veth]);
        in_ns(&["link", "set", &ns_veth, "up"]);
        in_ns(&["link", "set", "lo", "up"]);

        let name = format!("server{n}");
        let (cert, key) = (format!("{name}-cert.pem"), format!("{name}-key.pem"));
        ca.sign(
            &name,
            &format!("subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth\n"),
            &cert,
            &key,
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("daemon.json"), "{}").unwrap();
        let path = |p: &str| dir.path().join(p).display().to_string();
        let pem = |p: &str| ca.path().join(p).display().to_string();
        let url = format!("tcp://{address}:2376");
        let mut args: Vec<String> = vec![
            format!("--net=/var/run/netns/{netns}"),
            "taskset".into(),
            "-c".into(),
            core.to_string(),
            "dockerd".into(),
        ];
        let mut add = |more: &[&str]| args.extend(more.iter().map(|a| a.to_string()));
        add(&["--config-file", &path("daemon.json")]);
        add(&["--data-root", &path("root"), "--exec-root", &path("exec")]);
        add(&["--pidfile", &path("dockerd.pid")]);
        add(&["-H", &format!("unix://{}", path("docker.sock"))]);
        add(&["-H", &url, "--tlsverify"]);
        add(&["--tlscacert", &pem("ca.pem"), "--tlscert", &pem(&cert)]);
        add(&["--tlskey", &pem(&key)]);
        add(&["--iptables=false", "--ip-masq=false"]);
        add(&["--storage-driver", &storage_driver()]);
        let mut host = TlsHost {
            url,
            address,
            netns,
            host_veth,
            child: None,
            args,
            dir,
        };
        host.start_daemon();
        host.wait_ready(ca);
        Some(host)
    }

    /// Starts (or starts again, on the same data root) the daemon.
    fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("dockerd.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.child = Some(child);
    }

    /// Starts the stopped daemon again, with what it had stored.
    pub fn restart_daemon(&mut self, ca: &Certificates) {
        self.start_daemon();
        self.wait_ready(ca);
    }

    /// Kills the daemon at once (SIGKILL), as a builder that crashes or loses power, and
    /// every process it left in the namespace (its containerd, shims, build containers).
    pub fn kill_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.kill_leftovers();
    }

    fn kill_leftovers(&self) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).output();
        }
        // The killed containerd may stay a zombie (nothing here need reap it), which the next
        // dockerd would take for a running containerd: its pid file goes too.
        let _ = std::fs::remove_file(self.dir.path().join("exec/containerd/containerd.pid"));
    }

    fn wait_ready(&self, ca: &Certificates) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let ok = Command::new("docker")
                .args([
                    "-H",
                    &self.url,
                    "version",
                    "--format",
                    "{{.Server.Version}}",
                ])
                .env("DOCKER_TLS_VERIFY", "1")
                .env("DOCKER_CERT_PATH", ca.path())
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("the daemon at {} did not start: {}", self.url, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// The daemon's own socket on this machine, for looking inside without TLS.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }
}

impl TlsHost {
    /// Freezes the daemon (SIGSTOP) without closing anything: its connections stay open and
    /// its port still takes connections, but nothing answers, as a host cut off by a network
    /// that drops every packet. [`TlsHost::resume_daemon`] (or dropping the host) thaws it.
    pub fn freeze_daemon(&self) {
        assert!(self.signal_daemon("-STOP"), "no daemon to freeze");
    }

    /// Thaws a daemon [`TlsHost::freeze_daemon`] froze.
    pub fn resume_daemon(&self) {
        self.signal_daemon("-CONT");
    }

    /// Drops every packet into and out of the host's namespace: the host is cut off with its
    /// connections open, as behind a network that fails silently. [`TlsHost::pass_packets`]
    /// (or dropping the host, which deletes the namespace) lets them through again.
    pub fn drop_packets(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            run_ok(
                Command::new("ip")
                    .args(["netns", "exec", &self.netns, "iptables"])
                    .args(["-I", chain, "-j", "DROP"]),
            );
        }
    }

    /// Undoes [`TlsHost::drop_packets`] (nothing when it was not done).
    pub fn pass_packets(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &self.netns, "iptables"])
                .args(["-D", chain, "-j", "DROP"])
                .output();
        }
    }

    fn signal_daemon(&self, signal: &str) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Stops the daemon and keeps the namespace: the address then refuses connections, as
    /// a builder that is down does.
    pub fn stop_daemon(&mut self) {
        // A frozen daemon would not act on SIGTERM.
        self.resume_daemon();
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the daemon stops its containerd and unmounts its layers.
            let _ = Command::new("kill").arg(child.id().to_string()).output();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TlsHost {
    fn drop(&mut self) {
        self.stop_daemon();
        self.kill_leftovers();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
    }
}

/// An ssh server in a host's namespace (`ssh://root@ADDRESS:2222`, its sessions' `docker`
/// talking to that host's daemon) and the client side for it.
pub struct SshAccess {
    pub url: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
    );
}

impl TlsHost {
    /// Starts sshd in the host's namespace; `None` (or a failure under CI) without OpenSSH.
    pub fn start_sshd(&self) -> Option<SshAccess> {
        require(
            "sshd (Debian package openssh-server)",
            which("sshd").or_else(|| {
                Path::new("/usr/sbin/sshd")
                    .exists()
                    .then(|| PathBuf::from("/usr/sbin/sshd"))
            }),
        )?;
        require("ssh (Debian package openssh-client)", which("ssh"))?;
        let dir = tempfile::tempdir().unwrap();
        let at = |f: &str| dir.path().join(f);
        for key in ["host_key", "client_key", "other_key"] {
            keygen(&at(key));
        }
        std::fs::copy(at("client_key.pub"), at("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "Port 2222\nListenAddress {}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             SetEnv DOCKER_HOST=unix://{}\n",
            self.address,
            at("host_key").display(),
            at("authorized_keys").display(),
            at("sshd.pid").display(),
            self.socket().display()
        );
        std::fs::write(at("sshd_config"), config).unwrap();
        let host_key = std::fs::read_to_string(at("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            at("known_hosts"),
            format!("[{}]:2222 {}\n", self.address, host_key.join(" ")),
        )
        .unwrap();
        for (name, key) in [("bin", "client_key"), ("bin-other-key", "other_key")] {
            let client = format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
                at(key).display(),
                at("known_hosts").display()
            );
            std::fs::write(at(&format!("{name}.config")), client).unwrap();
            std::fs::create_dir_all(at(name)).unwrap();
            let ssh = which("ssh").unwrap();
            let wrapper = format!(
                "#!/bin/sh\nexec {} -F {} \"$@\"\n",
                ssh.display(),
                at(&format!("{name}.config")).display()
            );
            let path = at(name).join("ssh");
            std::fs::write(&path, wrapper).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let log = std::fs::File::create(at("sshd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", self.netns))
            .args(["/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(at("sshd_config"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let access = SshAccess {
            url: format!("ssh://root@{}:2222", self.address),
            child: Some(child),
            dir,
        };
        access.wait_ready(&self.address);
        Some(access)
    }
}

impl SshAccess {
    /// `PATH` with the test's `ssh` first: the right key, or (`other_key`) one the server
    /// does not know.
    pub fn path(&self, other_key: bool) -> std::ffi::OsString {
        let bin = self
            .dir
            .path()
            .join(if other_key { "bin-other-key" } else { "bin" });
        let mut dirs = vec![bin];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(dirs).unwrap()
    }

    fn wait_ready(&self, address: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new("ssh")
                .env("PATH", self.path(false))
                .args([
                    "-o",
                    "BatchMode=yes",
                    "-p",
                    "2222",
                    &format!("root@{address}"),
                ])
                .args(["docker", "version", "--format", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        panic!("sshd at {address} did not answer: {log}");
    }
}

impl Drop for SshAccess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
