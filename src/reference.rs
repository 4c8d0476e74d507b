//! The syntax of what archbuild names outside itself, Docker's rules for image tags,
//! repositories, digests and registry hosts, and the builder URLs. Pure; `config` and
//! `source` both check with it. Each check returns the message a user should read, saying
//! what is wrong and what would be right.
//!
//! [`ImageRef`] is the one image reference type: parsed here once (from `archbuild.toml`, a
//! `SOURCE` argument or a Kubernetes manifest) and used by the build, publish, verify and the
//! audit; the registry client's own type appears only inside `registry`.

/// Schemes a builder URL may use, as the Docker CLI accepts them in `DOCKER_HOST`.
pub const BUILDER_SCHEMES: &[&str] = &["unix", "tcp", "ssh", "npipe"];

const BUILDER_FORMS: &str =
    "use unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST, npipe:////./pipe/NAME or context:NAME";

/// An image reference by Docker's rules: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`, normalised as
/// the Docker CLI does (`docker.io` and `library/` for Docker Hub names, `latest` when neither
/// tag nor digest is given).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Docker Hub's registry name as references spell it.
pub const DOCKER_HUB: &str = "docker.io";

impl ImageRef {
    /// Parses a reference, checked by hand against the distribution grammar (building the
    /// grammar's regular expression costs more than a whole `verify`). The error says what is
    /// wrong and what would be right.
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if s.is_empty() {
            return Err("it is empty".into());
        }
        let (named, digest) = match s.split_once('@') {
            Some((named, digest)) => (named, Some(digest)),
            None => (s, None),
        };
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        let (name, tag) = match named.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (named, None),
        };
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        check_repository(name)?;
        let (registry, repository) = match split_domain(name) {
            (Some(domain), path) if domain != "index.docker.io" => (domain, path.to_string()),
            (_, path) if path.contains('/') => (DOCKER_HUB, path.to_string()),
            (_, path) => (DOCKER_HUB, format!("library/{path}")),
        };
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (tag, _) => tag.map(str::to_string),
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            repository,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// A repository (`[HOST[:PORT]/]PATH`, no tag, no digest), as `archbuild.toml` writes it.
    pub fn parse_repository(s: &str) -> Result<ImageRef, String> {
        check_repository(s)?;
        Ok(ImageRef {
            tag: None,
            ..ImageRef::parse(s)?
        })
    }

    /// One of archbuild's own names in a daemon (`archbuild-local/api:1.0-linux-arm64`):
    /// `path` and `tag` are made valid by their callers, so nothing is checked.
    pub fn local(path: &str, tag: &str) -> ImageRef {
        ImageRef {
            registry: DOCKER_HUB.to_string(),
            repository: path.to_string(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The registry host, with its port: `ghcr.io`, `localhost:5000`, `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path in the registry: `acme/api`, `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to ask the repository for: the digest if there is one, else the tag.
    pub fn tag_or_digest(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or("latest")
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository[:tag][@digest]`, fully spelled out.
    pub fn whole(&self) -> String {
        let mut s = self.name();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }

    /// The repository as the Docker CLI shows it: `api` for `docker.io/library/api`,
    /// `acme/api` for `docker.io/acme/api`, others unchanged.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        self.repository
            .strip_prefix("library/")
            .filter(|rest| !rest.contains('/'))
            .unwrap_or(&self.repository)
            .to_string()
    }

    /// The same repository with `tag` (and no digest); `tag` must be valid (see [`check_tag`]).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository by `digest` (and no tag).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// Another repository of the same registry (`path` already checked).
    pub fn in_repository(&self, path: &str) -> ImageRef {
        ImageRef {
            repository: path.to_string(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for ImageRef {
    /// The familiar form, as the Docker CLI prints references: `api:1.0`, `ghcr.io/acme/api:1.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.familiar_name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// References as a comma-separated list, for tables and messages.
pub fn list(references: &[ImageRef]) -> String {
    references
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        ImageRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ImageRef::parse(s)
    }
}

/// Checks a tag against Docker's grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(word);
    let rest_ok = chars.all(|c| word(c) || c == '.' || c == '-');
    if first_ok && rest_ok && tag.len() <= 128 {
        return Ok(());
    }
    let rule = "a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\" and does not start with \".\" or \"-\"";
    let suggestion = suggest_tag(tag)
        .map(|s| format!("; did you mean \"{s}\"?"))
        .unwrap_or_default();
    Err(format!("invalid tag \"{tag}\": {rule}{suggestion}"))
}

fn suggest_tag(tag: &str) -> Option<String> {
    let replaced: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = replaced
        .trim_start_matches(['.', '-'])
        .chars()
        .take(128)
        .collect();
    (!trimmed.is_empty() && trimmed != tag && check_tag(&trimmed).is_ok()).then_some(trimmed)
}

/// Checks a repository (`[HOST[:PORT]/]path/name`, no tag, no digest) against the
/// distribution reference grammar.
pub fn check_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("repository is empty; write one such as \"ghcr.io/acme/api\"".into());
    }
    if let Some((name, _)) = repo.split_once('@') {
        return Err(format!(
            "repository \"{repo}\" contains a digest; write the repository alone, \"{name}\""
        ));
    }
    let (domain, path) = split_domain(repo);
    if let Some((name, tag)) = path.rsplit_once(':') {
        let full = match domain {
            Some(d) => format!("{d}/{name}"),
            None => name.to_string(),
        };
        return Err(format!(
            "repository \"{repo}\" contains a tag; write repository = \"{full}\" and tags = [\"{tag}\"]"
        ));
    }
    if let Some(domain) = domain {
        check_host(domain).map_err(|why| format!("repository \"{repo}\": {why}"))?;
    }
    check_path(repo, path)?;
    if repo.len() > 255 {
        return Err(format!(
            "repository \"{repo}\" is {} characters long; the limit is 255",
            repo.len()
        ));
    }
    Ok(())
}

/// Checks `defaults.registry`: a host with an optional path prefix (`registry.example.com/team`).
pub fn check_registry(registry: &str) -> Result<(), String> {
    let trimmed = registry.trim_end_matches('/');
    if trimmed.contains("://") {
        let bare = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
        return Err(format!(
            "registry \"{registry}\" has a scheme; write the host and path alone, \"{bare}\""
        ));
    }
    let (host, path) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    check_host(host).map_err(|why| format!("registry \"{registry}\": {why}"))?;
    if !path.is_empty() {
        check_path(registry, path)?;
    }
    Ok(())
}

/// Checks a registry host for `insecure-registries`: `HOST[:PORT]`, no scheme, no path.
pub fn check_insecure_host(entry: &str) -> Result<(), String> {
    let bare = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let bare = bare.split('/').next().unwrap_or(bare);
    if bare != entry {
        return Err(format!(
            "insecure registry \"{entry}\" is not a bare host; write \"{bare}\""
        ));
    }
    check_host(entry).map_err(|why| format!("insecure registry \"{entry}\": {why}"))
}

/// Checks a builder URL: one of the Docker host schemes, or `context:NAME`.
pub fn check_builder_url(url: &str) -> Result<(), String> {
    if let Some(name) = url.strip_prefix("context:") {
        if name.is_empty() || name.starts_with('/') {
            return Err(format!(
                "builder \"{url}\" names no Docker context; write context:NAME"
            ));
        }
        return Ok(());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("builder \"{url}\" has no scheme; {BUILDER_FORMS}"));
    };
    if matches!(scheme, "http" | "https") {
        return Err(format!(
            "builder \"{url}\" uses scheme \"{scheme}\", which the Docker client does not take; write \"tcp://{rest}\""
        ));
    }
    if !BUILDER_SCHEMES.contains(&scheme) {
        return Err(format!(
            "builder \"{url}\" uses unsupported scheme \"{scheme}\"; {BUILDER_FORMS}"
        ));
    }
    if rest.is_empty() {
        return Err(format!(
            "builder \"{url}\" names no {}; {BUILDER_FORMS}",
            if scheme == "unix" || scheme == "npipe" {
                "path"
            } else {
                "host"
            }
        ));
    }
    Ok(())
}

/// Checks a digest against the OCI grammar (`ALGORITHM:ENCODED`); a `sha256` digest is 64
/// lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let rule = "a digest is ALGORITHM:ENCODED, such as sha256: and 64 lowercase hex digits";
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(format!("invalid digest \"{digest}\": {rule}"));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'));
    let sha256_ok = algorithm != "sha256"
        || (encoded.len() == 64 && encoded.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    if algorithm_ok && encoded_ok && sha256_ok {
        Ok(())
    } else {
        Err(format!("invalid digest \"{digest}\": {rule}"))
    }
}

/// Splits off the registry host the way the Docker CLI does: the first component is a host
/// when it has a `.` or `:`, is `localhost`, or has capital letters.
pub fn split_domain(repo: &str) -> (Option<&str>, &str) {
    match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, repo),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((_, after)) => (host, after.strip_prefix(':')),
            None => return Err(format!("host \"{host}\" has an unclosed \"[\"")),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(format!("port \"{port}\" is not a number from 0 to 65535"));
        }
    }
    if name.starts_with('[') {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "host \"{name}\" is not a valid host name (letters, digits and \"-\" in dot-separated labels)"
        ));
    }
    Ok(())
}

fn check_path(whole: &str, path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err(format!(
                "repository \"{whole}\" has an empty path component (a doubled or trailing \"/\")"
            ));
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository \"{whole}\" has capital letters in its path; did you mean \"{}\"?",
                lowercase_path(whole)
            ));
        }
        if !is_path_component(component) {
            return Err(format!(
                "repository \"{whole}\": \"{component}\" is not a valid path component; use lowercase letters and digits, separated by \".\", \"_\", \"__\" or \"-\""
            ));
        }
    }
    Ok(())
}

fn lowercase_path(repo: &str) -> String {
    match split_domain(repo) {
        (Some(domain), path) => format!("{domain}/{}", path.to_ascii_lowercase()),
        (None, path) => path.to_ascii_lowercase(),
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_path_component(s: &str) -> bool {
    let mut separator = String::new();
    let mut seen = false;
    for c in s.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            let ok = separator.is_empty()
                || (seen
                    && (matches!(separator.as_str(), "." | "_" | "__")
                        || separator.chars().all(|c| c == '-')));
            if !ok {
                return false;
            }
            separator.clear();
            seen = true;
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    seen && separator.is_empty()
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
