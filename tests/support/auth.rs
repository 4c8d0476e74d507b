//! Registries that ask for credentials, as every public registry does: the CNCF registry with
//! `auth: token` and a token server of the tests' own (ES256 JWTs whose `x5c` certificate is
//! the registry's `rootcertbundle`, made here with openssl), and with `auth: htpasswd`.
//!
//! The token server knows two accounts: `builder` (password `builder-pw`, pull and push on
//! every repository, identity token `refresh-builder`) and `reader` (password `reader-pw`,
//! pull only). Anonymous requests get pull. Like real token servers it grants the part of a
//! scope the account may have, and records every request for the tests' assertions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;

use super::{openssl, require, run_ok, which, Registry};

pub const SERVICE: &str = "archbuild-test-registry";
const ISSUER: &str = "archbuild-test-token-issuer";

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenCall {
    pub method: String,
    /// The account the request authenticated as (`None`: anonymous).
    pub account: Option<String>,
    pub grant_type: Option<String>,
    pub scopes: Vec<String>,
    pub status: u16,
}

/// The token server: a thread on loopback, stopped with the process.
pub struct TokenServer {
    pub url: String,
    pub calls: Arc<Mutex<Vec<TokenCall>>>,
    pub cert: PathBuf,
    _dir: tempfile::TempDir,
}

/// A registry with token authentication and its token server.
pub struct TokenRegistry {
    pub registry: Registry,
    pub tokens: TokenServer,
}

impl TokenServer {
    pub fn calls(&self) -> Vec<TokenCall> {
        self.calls.lock().unwrap().clone()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts the token server with a fresh key and certificate.
pub fn token_server() -> Option<TokenServer> {
    require("openssl", which("openssl"))?;
    let dir = tempfile::tempdir().unwrap();
    let (pem, der, cert) = (
        dir.path().join("key.pem"),
        dir.path().join("key.der"),
        dir.path().join("cert.pem"),
    );
    let ssl = |args: &[&str]| openssl(dir.path(), args);
    ssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "key.pem",
    ]);
    ssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
    ]);
    ssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "key.pem",
        "-subj",
        "/CN=archbuild-test-token",
        "-days",
        "2",
        "-out",
        "cert.pem",
    ]);
    ssl(&[
        "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
    ]);
    let _ = pem;
    let cert_der = std::fs::read(dir.path().join("cert.der")).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &std::fs::read(&der).unwrap(),
        &rng,
    )
    .expect("the openssl key as PKCS#8");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let signer = Arc::new(Signer {
        key,
        rng,
        x5c: base64::engine::general_purpose::STANDARD.encode(&cert_der),
    });
    let recorded = calls.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (signer, recorded) = (signer.clone(), recorded.clone());
            std::thread::spawn(move || serve(stream, &signer, &recorded));
        }
    });
    Some(TokenServer {
        url,
        calls,
        cert,
        _dir: dir,
    })
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    x5c: String,
}

impl Signer {
    fn token(&self, subject: &str, access: &[serde_json::Value]) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", super::unique("jti")), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(&self.rng, signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }
}

/// The actions `account` may have on any repository.
fn allowed(account: Option<&str>) -> &'static [&'static str] {
    match account {
        Some("builder") => &["pull", "push"],
        _ => &["pull"],
    }
}

fn serve(stream: TcpStream, signer: &Signer, calls: &Mutex<Vec<TokenCall>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    if method == "POST" {
        params.extend(
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).unwrap_or_default(),
        );
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let grant_type = param("grant_type");
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    // Who is asking: a refresh token, Basic credentials, or nobody.
    let account: Result<Option<String>, ()> = if grant_type.as_deref() == Some("refresh_token") {
        match param("refresh_token").as_deref() {
            Some("refresh-builder") => Ok(Some("builder".into())),
            _ => Err(()),
        }
    } else if let Some(basic) = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        match decoded.split_once(':') {
            Some(("builder", "builder-pw")) => Ok(Some("builder".into())),
            Some(("reader", "reader-pw")) => Ok(Some("reader".into())),
            _ => Err(()),
        }
    } else {
        Ok(None)
    };
    let (status, answer) = match &account {
        Err(()) => (401, r#"{"details":"wrong credentials"}"#.to_string()),
        Ok(account) => {
            let may = allowed(account.as_deref());
            let access: Vec<serde_json::Value> = scopes
                .iter()
                .filter_map(|scope| {
                    let mut p = scope.splitn(3, ':');
                    let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                    let granted: Vec<&str> =
                        actions.split(',').filter(|a| may.contains(a)).collect();
                    Some(serde_json::json!({"type": kind, "name": name, "actions": granted}))
                })
                .collect();
            let token = signer.token(account.as_deref().unwrap_or(""), &access);
            let answer =
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
            (200, answer.to_string())
        }
    };
    calls.lock().unwrap().push(TokenCall {
        method,
        account: account.ok().flatten(),
        grant_type,
        scopes,
        status,
    });
    let reason = if status == 200 { "OK" } else { "Unauthorized" };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// A registry with `auth: token` trusting `tokens`.
pub fn token_registry() -> Option<TokenRegistry> {
    let tokens = token_server()?;
    let (realm, cert) = (tokens.url.clone(), tokens.cert.clone());
    let registry = Registry::start_with(|_| {
        format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            cert.display()
        )
    })?;
    Some(TokenRegistry { registry, tokens })
}

/// A registry with `auth: htpasswd` knowing `builder`/`builder-pw`.
pub fn htpasswd_registry() -> Option<Registry> {
    require("htpasswd (Debian package apache2-utils)", which("htpasswd"))?;
    Registry::start_with(|dir: &Path| {
        let file = dir.join("htpasswd");
        let out = run_ok(Command::new("htpasswd").args(["-nbB", "builder", "builder-pw"]));
        std::fs::write(&file, out.stdout).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: archbuild-basic\n    path: {}\n",
            file.display()
        )
    })
}

/// A Docker client configuration folder holding `config` as its `config.json`.
pub fn docker_config(dir: &Path, config: &serde_json::Value) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// `base64(user:password)`, as `docker login` writes into `auths`.
pub fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// A credential helper `docker-credential-NAME` in `bin`, speaking the helpers' protocol
/// (`get` reads the server URL on standard input and answers with JSON); it answers `user`
/// and `secret` for every server and logs each call to `bin/NAME.log`.
pub fn credential_helper(bin: &Path, name: &str, user: &str, secret: &str) -> PathBuf {
    std::fs::create_dir_all(bin).unwrap();
    let log = bin.join(format!("{name}.log"));
    let script = format!(
        "#!/bin/sh\nread server\necho \"$1 $server\" >> '{}'\nif [ \"$1\" = get ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  exit 1\nfi\n",
        log.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}
