//! The syntax of what archbuild names outside itself, Docker's rules for image tags,
//! repositories, digests and registry hosts, and the builder URLs. Pure; `config` and
//! `source` both check with it. Each check returns the message a user should read, saying
//! what is wrong and what would be right.

/// Schemes a builder URL may use, as the Docker CLI accepts them in `DOCKER_HOST`.
pub const BUILDER_SCHEMES: &[&str] = &["unix", "tcp", "ssh", "npipe"];

const BUILDER_FORMS: &str =
    "use unix:///PATH, tcp://HOST:PORT, ssh://USER@HOST, npipe:////./pipe/NAME or context:NAME";

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
mod tests {
    use super::*;

    #[test]
    fn tags_follow_docker_grammar() {
        assert!(check_tag("1.8.0").is_ok());
        assert!(check_tag("latest").is_ok());
        assert!(check_tag("_x").is_ok());
        assert_eq!(
            check_tag("v1.0+build").unwrap_err(),
            "invalid tag \"v1.0+build\": a tag is 1 to 128 letters, digits, \"_\", \".\" or \"-\" and does not start with \".\" or \"-\"; did you mean \"v1.0-build\"?"
        );
        assert!(check_tag(".hidden").is_err());
        assert!(check_tag("").is_err());
        assert!(check_tag(&"a".repeat(129)).is_err());
        assert!(check_tag(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn repositories_follow_the_distribution_grammar() {
        for ok in [
            "api",
            "ghcr.io/acme/api",
            "localhost:5000/a/b",
            "127.0.0.1:5000/x",
            "acme/api-server",
            "a/b__c/d.e",
        ] {
            assert_eq!(check_repository(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_repository("ghcr.io/acme/api:1.0").unwrap_err(),
            "repository \"ghcr.io/acme/api:1.0\" contains a tag; write repository = \"ghcr.io/acme/api\" and tags = [\"1.0\"]"
        );
        assert_eq!(
            check_repository("ghcr.io/Acme/API").unwrap_err(),
            "repository \"ghcr.io/Acme/API\" has capital letters in its path; did you mean \"ghcr.io/acme/api\"?"
        );
        assert!(check_repository("ghcr.io//api").is_err());
        assert!(check_repository("a/-b").is_err());
        assert!(check_repository("a/b___c").is_err());
        assert!(check_repository("bad_host.:5000/a").is_err());
        assert!(check_repository("host:99999/a").is_err());
        assert!(check_repository("x@sha256:abc").is_err());
    }

    #[test]
    fn registries_and_insecure_hosts() {
        assert_eq!(check_registry("registry.example.com/team"), Ok(()));
        assert_eq!(check_registry("localhost:5000"), Ok(()));
        assert!(check_registry("https://r.example.com").is_err());
        assert_eq!(check_insecure_host("myhost:5000"), Ok(()));
        assert_eq!(
            check_insecure_host("http://myhost:5000").unwrap_err(),
            "insecure registry \"http://myhost:5000\" is not a bare host; write \"myhost:5000\""
        );
    }

    #[test]
    fn builder_urls() {
        for ok in [
            "unix:///var/run/docker.sock",
            "tcp://10.0.0.2:2376",
            "ssh://ci@arm-builder",
            "npipe:////./pipe/docker_engine",
            "context:arm",
        ] {
            assert_eq!(check_builder_url(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_builder_url("http://h:2375").unwrap_err(),
            "builder \"http://h:2375\" uses scheme \"http\", which the Docker client does not take; write \"tcp://h:2375\""
        );
        assert!(check_builder_url("ftp://h").is_err());
        assert!(check_builder_url("arm-builder").is_err());
        assert!(check_builder_url("ssh://").is_err());
        assert!(check_builder_url("context:").is_err());
    }
}
