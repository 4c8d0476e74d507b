//! Which Docker daemon builds a platform, and why: `[builders]` of the project file, then
//! `DOCKER_HOST`, then the current Docker context, then the default socket, as the Docker CLI
//! picks a daemon. A `context:NAME` URL is looked up in the Docker client's context store.
//!
//! The process environment and the Docker config folder come in through [`EndpointEnv`], so
//! tests can point them at a temporary folder.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Builders;
use crate::platform::Platform;

/// The daemon used when nothing else names one.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// A daemon URL and the setting that chose it, e.g. `archbuild.toml [builders] "linux/arm64"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub url: String,
    pub chosen_by: String,
    /// The folder of `ca.pem`, `cert.pem` and `key.pem` when the endpoint is a Docker context
    /// that keeps its own TLS material (`contexts/tls/ID/docker/`); `None`: the process's
    /// `DOCKER_CERT_PATH` settings apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<PathBuf>,
}

/// What endpoint resolution reads from outside the project file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointEnv {
    /// `DOCKER_HOST`, when set and not empty.
    pub docker_host: Option<String>,
    /// `DOCKER_CONTEXT`, when set and not empty.
    pub docker_context: Option<String>,
    /// The Docker client's config folder: `$DOCKER_CONFIG`, else `~/.docker`.
    pub config_dir: Option<PathBuf>,
}

/// Why a daemon could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("docker context \"{name}\" not found: {} does not exist; list contexts with `docker context ls`", .meta.display())]
    ContextNotFound { name: String, meta: PathBuf },
    #[error("docker context \"{name}\": {} has no Endpoints.docker.Host", .meta.display())]
    ContextWithoutHost { name: String, meta: PathBuf },
    #[error("cannot read {}: {reason}", .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("docker context \"{0}\" cannot be looked up: neither DOCKER_CONFIG nor HOME is set")]
    NoConfigDir(String),
}

/// The Docker client's configuration folder, as the Docker CLI finds it: `$DOCKER_CONFIG`,
/// else `~/.docker` (an empty variable counts as unset). Credentials and contexts live there.
pub fn docker_config_dir() -> Option<PathBuf> {
    non_empty_var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| non_empty_var("HOME").map(|h| Path::new(&h).join(".docker")))
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl EndpointEnv {
    /// The environment of this process.
    pub fn from_process() -> Self {
        EndpointEnv {
            docker_host: non_empty_var("DOCKER_HOST"),
            docker_context: non_empty_var("DOCKER_CONTEXT"),
            config_dir: docker_config_dir(),
        }
    }

    /// The current context: `DOCKER_CONTEXT`, else `currentContext` of `config.json`.
    pub fn current_context(&self) -> Result<Option<String>, EndpointError> {
        if let Some(name) = &self.docker_context {
            return Ok(Some(name.clone()));
        }
        let Some(dir) = &self.config_dir else {
            return Ok(None);
        };
        let path = dir.join("config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(&path, e)),
        };
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(&path, e))?;
        Ok(config
            .get("currentContext")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
            .map(str::to_string))
    }

    /// The TLS folder the Docker CLI keeps for a context (`docker context create --docker
    /// host=…,ca=…,cert=…,key=…` copies the files there), if it has one.
    pub fn context_tls(&self, name: &str) -> Option<PathBuf> {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let dir = self
            .config_dir
            .as_ref()?
            .join("contexts/tls")
            .join(id)
            .join("docker");
        dir.join("ca.pem").is_file().then_some(dir)
    }

    /// The daemon URL of a named context (`default` is the built-in one: the default socket).
    pub fn context_host(&self, name: &str) -> Result<String, EndpointError> {
        if name == "default" {
            return Ok(DEFAULT_SOCKET.to_string());
        }
        let dir = self
            .config_dir
            .as_ref()
            .ok_or_else(|| EndpointError::NoConfigDir(name.to_string()))?;
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(id).join("meta.json");
        let text = std::fs::read_to_string(&meta).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EndpointError::ContextNotFound {
                name: name.to_string(),
                meta: meta.clone(),
            },
            _ => unreadable(&meta, e),
        })?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(&meta, e))?;
        doc.pointer("/Endpoints/docker/Host")
            .and_then(|h| h.as_str())
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .ok_or(EndpointError::ContextWithoutHost {
                name: name.to_string(),
                meta,
            })
    }
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> EndpointError {
    EndpointError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The daemons that build `platform`: `[builders]` entry for it, `[builders] default`,
/// `DOCKER_HOST`, the current Docker context, the default socket. `file_label` names the
/// project file in `chosen_by` (usually `archbuild.toml`). Never empty; several when the
/// `[builders]` entry lists several URLs (the plan spreads the platform's jobs over them).
pub fn resolve(
    builders: &Builders,
    file_label: &str,
    platform: &Platform,
    env: &EndpointEnv,
) -> Result<Vec<Endpoint>, EndpointError> {
    if let Some(urls) = builders.by_platform.get(platform) {
        return configured(urls, format!("{file_label} [builders] \"{platform}\""), env);
    }
    if let Some(urls) = &builders.default {
        return configured(urls, format!("{file_label} [builders] default"), env);
    }
    if let Some(host) = &env.docker_host {
        return Ok(vec![Endpoint {
            url: host.clone(),
            chosen_by: "DOCKER_HOST".to_string(),
            tls: None,
        }]);
    }
    if let Some(name) = env.current_context()?.filter(|n| n != "default") {
        return Ok(vec![Endpoint {
            url: env.context_host(&name)?,
            chosen_by: format!("docker context \"{name}\""),
            tls: env.context_tls(&name),
        }]);
    }
    Ok(vec![Endpoint {
        url: DEFAULT_SOCKET.to_string(),
        chosen_by: "default socket".to_string(),
        tls: None,
    }])
}

/// URLs from the project file; `context:NAME` is looked up in the context store. With several
/// URLs, each one's `chosen_by` says which of them it is.
fn configured(
    urls: &[String],
    chosen_by: String,
    env: &EndpointEnv,
) -> Result<Vec<Endpoint>, EndpointError> {
    let count = urls.len();
    let mut out = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        let chosen_by = match count {
            1 => chosen_by.clone(),
            _ => format!("{chosen_by}, builder {} of {count}", n + 1),
        };
        out.push(match url.strip_prefix("context:") {
            Some(name) => Endpoint {
                url: env.context_host(name)?,
                chosen_by: format!("{chosen_by} (docker context \"{name}\")"),
                tls: env.context_tls(name),
            },
            None => Endpoint {
                url: url.to_string(),
                chosen_by,
                tls: None,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm64() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    fn write_context(dir: &Path, name: &str, host: &str) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = dir.join("contexts/meta").join(id);
        std::fs::create_dir_all(&meta).unwrap();
        let doc = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}});
        std::fs::write(meta.join("meta.json"), doc.to_string()).unwrap();
    }

    fn chosen(builders: &Builders, env: &EndpointEnv) -> (String, String) {
        let mut all = resolve(builders, "archbuild.toml", &arm64(), env).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        let e = all.remove(0);
        (e.url, e.chosen_by)
    }

    #[test]
    fn order_is_platform_default_host_context_socket() {
        let config = tempfile::tempdir().unwrap();
        write_context(config.path(), "remote", "tcp://10.0.0.9:2375");
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext": "remote"}"#,
        )
        .unwrap();
        let mut env = EndpointEnv {
            docker_host: Some("tcp://127.0.0.1:2375".into()),
            docker_context: None,
            config_dir: Some(config.path().to_path_buf()),
        };
        let mut builders = Builders::default();
        builders
            .by_platform
            .insert(arm64(), vec!["ssh://ci@arm-builder".into()]);
        builders.default = Some(vec!["unix:///run/other.sock".into()]);

        let by = |u: &str, c: &str| (u.to_string(), c.to_string());
        assert_eq!(
            chosen(&builders, &env),
            by(
                "ssh://ci@arm-builder",
                "archbuild.toml [builders] \"linux/arm64\""
            )
        );
        builders.by_platform.clear();
        assert_eq!(
            chosen(&builders, &env),
            by(
                "unix:///run/other.sock",
                "archbuild.toml [builders] default"
            )
        );
        builders.default = None;
        assert_eq!(
            chosen(&builders, &env),
            by("tcp://127.0.0.1:2375", "DOCKER_HOST")
        );
        env.docker_host = None;
        assert_eq!(
            chosen(&builders, &env),
            by("tcp://10.0.0.9:2375", "docker context \"remote\"")
        );
        env.config_dir = None;
        assert_eq!(
            chosen(&builders, &env),
            by(DEFAULT_SOCKET, "default socket")
        );
    }

    #[test]
    fn docker_context_env_wins_over_config_and_context_urls_resolve() {
        let config = tempfile::tempdir().unwrap();
        write_context(config.path(), "arm", "ssh://pi@arm");
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext": "missing"}"#,
        )
        .unwrap();
        let env = EndpointEnv {
            docker_host: None,
            docker_context: Some("arm".into()),
            config_dir: Some(config.path().to_path_buf()),
        };
        assert_eq!(
            chosen(&Builders::default(), &env),
            ("ssh://pi@arm".into(), "docker context \"arm\"".into())
        );

        let mut builders = Builders {
            default: Some(vec!["context:arm".into()]),
            ..Builders::default()
        };
        assert_eq!(
            chosen(&builders, &env).1,
            "archbuild.toml [builders] default (docker context \"arm\")"
        );

        builders.default = Some(vec!["context:nope".into()]);
        let err = resolve(&builders, "archbuild.toml", &arm64(), &env).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("docker context \"nope\" not found: "),
            "{text}"
        );
        assert!(
            text.ends_with("list contexts with `docker context ls`"),
            "{text}"
        );
    }

    #[test]
    fn a_context_with_tls_material_carries_its_folder() {
        let config = tempfile::tempdir().unwrap();
        write_context(config.path(), "secure", "tcp://10.0.0.9:2376");
        write_context(config.path(), "plain", "tcp://10.0.0.8:2375");
        let id = hex::encode(Sha256::digest(b"secure"));
        let tls = config.path().join("contexts/tls").join(id).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "").unwrap();
        let env = EndpointEnv {
            docker_host: None,
            docker_context: Some("secure".into()),
            config_dir: Some(config.path().to_path_buf()),
        };
        let e = resolve(&Builders::default(), "archbuild.toml", &arm64(), &env).unwrap();
        assert_eq!(e[0].tls, Some(tls));
        let builders = Builders {
            default: Some(vec!["context:plain".into()]),
            ..Builders::default()
        };
        let e = resolve(&builders, "archbuild.toml", &arm64(), &env).unwrap();
        assert_eq!(
            (e[0].url.as_str(), e[0].tls.clone()),
            ("tcp://10.0.0.8:2375", None)
        );
    }

    #[test]
    fn several_builders_of_a_platform_each_say_which_they_are() {
        let env = EndpointEnv::default();
        let mut builders = Builders::default();
        builders.by_platform.insert(
            arm64(),
            vec!["ssh://ci@arm1".into(), "tcp://arm2:2376".into()],
        );
        let all = resolve(&builders, "archbuild.toml", &arm64(), &env).unwrap();
        let got: Vec<(&str, &str)> = all
            .iter()
            .map(|e| (e.url.as_str(), e.chosen_by.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "ssh://ci@arm1",
                    "archbuild.toml [builders] \"linux/arm64\", builder 1 of 2"
                ),
                (
                    "tcp://arm2:2376",
                    "archbuild.toml [builders] \"linux/arm64\", builder 2 of 2"
                ),
            ]
        );
    }
}
