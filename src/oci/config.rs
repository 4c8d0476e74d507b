//! The parts of an image config (the OCI/Docker config JSON) that decide how the container
//! starts and what platform it claims: `os`/`architecture`/`variant`, `Entrypoint`, `Cmd`,
//! `WorkingDir`, `Env` and the layers' `diff_ids`. Read leniently: Docker and OCI spell the
//! same fields, and images in the wild leave many of them out. `check`, `verify` and `audit`
//! all read configs through [`ImageConfig::parse`]. Pure.

use serde::Deserialize;

use crate::platform::Platform;

/// Docker's default `PATH` when an image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Image configs are small JSON documents; a blob larger than this is refused as one.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// What archbuild reads from an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub env: Vec<String>,
    /// `rootfs.diff_ids`: the uncompressed digest of each layer, bottom first.
    pub diff_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    os: String,
    architecture: String,
    variant: Option<String>,
    config: Option<RawRun>,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct RawRun {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    env: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRootfs {
    diff_ids: Vec<String>,
}

impl ImageConfig {
    /// Parses config JSON bytes.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        let raw: Raw = serde_json::from_slice(bytes)?;
        let run = raw.config.unwrap_or_default();
        Ok(ImageConfig {
            os: raw.os,
            architecture: raw.architecture,
            variant: raw.variant.filter(|v| !v.is_empty()),
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            working_dir: run.working_dir.filter(|w| !w.is_empty()),
            env: run.env.unwrap_or_default(),
            diff_ids: raw.rootfs.map(|r| r.diff_ids).unwrap_or_default(),
        })
    }

    /// The platform the config claims, normalised where archbuild knows the names.
    pub fn platform(&self) -> Platform {
        Platform::from_parts_lenient(&self.os, &self.architecture, self.variant.as_deref())
    }

    /// The command the container runs: `Entrypoint` followed by `Cmd`.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The folders of `PATH` from `Env` (Docker's default when unset), absolute ones only:
    /// a relative `PATH` entry is relative to a working folder nobody can predict.
    pub fn path_dirs(&self) -> Vec<String> {
        let path = self
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(str::to_string)
            .collect()
    }

    /// The working folder (`/` when unset).
    pub fn working_dir(&self) -> &str {
        self.working_dir.as_deref().unwrap_or("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_fields() {
        let c = ImageConfig::parse(
            br#"{"architecture":"arm","os":"linux","variant":"v7",
            "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["exec app"],"WorkingDir":"/srv",
            "Env":["A=1","PATH=/app/bin:relative:/bin"]},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#,
        )
        .unwrap();
        assert_eq!(c.platform().to_string(), "linux/arm/v7");
        assert_eq!(c.argv(), ["/bin/sh", "-c", "exec app"]);
        assert_eq!(c.path_dirs(), ["/app/bin", "/bin"]);
        assert_eq!(c.working_dir(), "/srv");
        assert_eq!(c.diff_ids, ["sha256:aa"]);
        let bare = ImageConfig::parse(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","config":{"Cmd":null}}"#,
        )
        .unwrap();
        assert_eq!(bare.platform().to_string(), "linux/arm64");
        assert!(bare.argv().is_empty());
        assert_eq!(bare.path_dirs().len(), 6);
    }
}
