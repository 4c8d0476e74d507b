//! Image sources and references, in the transport syntax skopeo users know: a registry
//! reference (optionally `docker://`), `oci:DIR[:REF]`, `docker-daemon:NAME[:TAG]` and
//! `docker-archive:FILE`. Parsing only; reading is done by the modules that own each source.

use std::fmt;
use std::path::PathBuf;

use crate::reference::ImageRef;

/// Where an image or index is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A registry reference: `REGISTRY/REPO[:TAG]` or `REGISTRY/REPO@sha256:...`.
    Registry(ImageRef),
    /// An OCI image layout folder, and optionally the `org.opencontainers.image.ref.name` to pick.
    OciLayout {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// An image in the Docker daemon, by name, name:tag, or ID.
    DockerDaemon { name: String },
    /// A `docker save` tarball (`-` for standard input).
    DockerArchive { path: PathBuf },
}

/// Why a source string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("transport \"{0}:\" is not supported; use a registry reference, oci:DIR[:REF], docker-daemon:NAME[:TAG] or docker-archive:FILE")]
    UnsupportedTransport(String),
    #[error("\"{given}\" is not a valid image reference: {reason}; expected REGISTRY/REPO[:TAG] or REGISTRY/REPO@sha256:DIGEST")]
    BadReference { given: String, reason: String },
    #[error("\"{0}\" names no {1}; expected {2}")]
    Empty(String, &'static str, &'static str),
}

const UNSUPPORTED: &[&str] = &[
    "oci-archive",
    "dir",
    "containers-storage",
    "sif",
    "tarball",
    "ostree",
    "docker-image",
];

impl Source {
    /// Parses a `SOURCE` argument.
    pub fn parse(s: &str) -> Result<Source, SourceError> {
        if let Some(rest) = s.strip_prefix("docker://") {
            return parse_registry(rest).map(Source::Registry);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split_layout(rest);
            if dir.is_empty() {
                return Err(SourceError::Empty(s.into(), "folder", "oci:DIR[:REF]"));
            }
            return Ok(Source::OciLayout {
                dir: PathBuf::from(dir),
                reference,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            if rest.is_empty() {
                return Err(SourceError::Empty(
                    s.into(),
                    "image",
                    "docker-daemon:NAME[:TAG]",
                ));
            }
            return Ok(Source::DockerDaemon { name: rest.into() });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            if rest.is_empty() {
                return Err(SourceError::Empty(s.into(), "file", "docker-archive:FILE"));
            }
            // skopeo allows docker-archive:FILE:REF; a path with a colon is rare, so the
            // suffix after the last colon is dropped only when it looks like a reference.
            return Ok(Source::DockerArchive { path: rest.into() });
        }
        if let Some((prefix, _)) = s.split_once(':') {
            if UNSUPPORTED.contains(&prefix) || prefix == "docker" {
                return Err(SourceError::UnsupportedTransport(prefix.into()));
            }
        }
        parse_registry(s).map(Source::Registry)
    }
}

/// `DIR[:REF]`, split at the first colon as skopeo does, so that a ref name may itself hold
/// colons (`oci:out:api:1.8.0` is the ref `api:1.8.0` in folder `out`).
fn split_layout(rest: &str) -> (&str, Option<String>) {
    match rest.split_once(':') {
        Some((dir, "")) => (dir, None),
        Some((dir, r)) => (dir, Some(r.to_string())),
        None => (rest, None),
    }
}

/// Parses a registry reference the way the Docker CLI does (see [`ImageRef::parse`]).
pub fn parse_registry(s: &str) -> Result<ImageRef, SourceError> {
    ImageRef::parse(s).map_err(|reason| SourceError::BadReference {
        given: s.into(),
        reason,
    })
}

/// Whether a registry host (with optional port) is on the loopback: spoken to over plain HTTP
/// as the Docker daemon does.
pub fn is_loopback_registry(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Registry(r) => write!(f, "{}", r.whole()),
            Source::OciLayout { dir, reference } => match reference {
                Some(r) => write!(f, "oci:{}:{r}", dir.display()),
                None => write!(f, "oci:{}", dir.display()),
            },
            Source::DockerDaemon { name } => write!(f, "docker-daemon:{name}"),
            Source::DockerArchive { path } => write!(f, "docker-archive:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::Reference;

    #[test]
    fn registry_references_parse_as_the_distribution_grammar_does() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let valid = [
            "busybox".to_string(),
            "busybox:1.36".into(),
            "library/busybox".into(),
            "acme/api:1.8.0".into(),
            "docker.io/acme/api".into(),
            "index.docker.io/busybox".into(),
            "test.com:5000".into(),
            "test.com/acme/api".into(),
            "localhost/api".into(),
            "localhost:5000/team/api:1.8.0".into(),
            "127.0.0.1:5000/a/b/c".into(),
            "ghcr.io/acme/my_app__x.y-z:tag_1.0-rc".into(),
            format!("ghcr.io/acme/api@{digest}"),
            format!("ghcr.io/acme/api:1.0@{digest}"),
            format!("busybox@{digest}"),
        ];
        for r in &valid {
            let ours = parse_registry(r).unwrap_or_else(|e| panic!("{r}: {e}"));
            let oracle =
                Reference::try_from(r.as_str()).unwrap_or_else(|e| panic!("oracle {r}: {e}"));
            assert_eq!(ours.whole(), oracle.whole(), "{r}");
            assert_eq!(ours.registry(), oracle.registry(), "{r}");
            assert_eq!(ours.repository(), oracle.repository(), "{r}");
            assert_eq!(ours.tag(), oracle.tag(), "{r}");
            assert_eq!(ours.digest(), oracle.digest(), "{r}");
        }
        // Docker's grammar takes IPv6 hosts, which the oracle does not.
        let v6 = parse_registry("[::1]:5000/api:v1").unwrap();
        assert_eq!(
            (v6.registry(), v6.repository(), v6.tag()),
            ("[::1]:5000", "api", Some("v1"))
        );
        let invalid = [
            "",
            "Busybox",
            "acme/API",
            "acme//api",
            "acme/api:",
            "acme/api:-tag",
            "acme/api@sha256:abc",
            "acme/api@",
            "ghcr.io:port/api",
            "acme/api:a b",
        ];
        for r in invalid {
            assert!(parse_registry(r).is_err(), "{r} was accepted");
            assert!(Reference::try_from(r).is_err(), "the oracle accepts {r}");
        }
    }

    #[test]
    fn parses_every_transport() {
        let r = Source::parse("localhost:5000/team/api:1.8.0").unwrap();
        match r {
            Source::Registry(r) => {
                assert_eq!(r.registry(), "localhost:5000");
                assert_eq!(r.repository(), "team/api");
                assert_eq!(r.tag(), Some("1.8.0"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Source::parse("docker://alpine").unwrap(),
            Source::Registry(_)
        ));
        assert_eq!(
            Source::parse("oci:out/oci:api:1.8.0").unwrap(),
            Source::OciLayout {
                dir: "out/oci".into(),
                reference: Some("api:1.8.0".into())
            }
        );
        assert_eq!(
            Source::parse("oci:/tmp/x").unwrap(),
            Source::OciLayout {
                dir: "/tmp/x".into(),
                reference: None
            }
        );
        assert_eq!(
            Source::parse("docker-daemon:api:dev").unwrap(),
            Source::DockerDaemon {
                name: "api:dev".into()
            }
        );
        assert_eq!(
            Source::parse("docker-archive:img.tar").unwrap(),
            Source::DockerArchive {
                path: "img.tar".into()
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(
            Source::parse("oci-archive:x.tar").unwrap_err(),
            SourceError::UnsupportedTransport("oci-archive".into())
        );
        assert!(Source::parse("oci:").is_err());
        assert!(Source::parse("docker-daemon:").is_err());
        let bad = Source::parse("localhost:5000/UPPER/api").unwrap_err();
        assert!(
            bad.to_string().contains("is not a valid image reference"),
            "{bad}"
        );
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback_registry(h), "{h}");
        }
        for h in ["registry.example.com", "10.0.0.1:5000", "ghcr.io"] {
            assert!(!is_loopback_registry(h), "{h}");
        }
    }
}
