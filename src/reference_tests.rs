//! Tests of `reference.rs`.

use super::*;

#[test]
fn an_image_reference_is_normalised_once_and_shown_as_docker_shows_it() {
    let hub = ImageRef::parse("api").unwrap();
    assert_eq!(hub.whole(), "docker.io/library/api:latest");
    assert_eq!(hub.to_string(), "api:latest");
    assert_eq!(hub.with_tag("1.0").to_string(), "api:1.0");
    let org = ImageRef::parse("index.docker.io/acme/api:2").unwrap();
    assert_eq!(
        (org.registry(), org.repository()),
        ("docker.io", "acme/api")
    );
    assert_eq!(org.to_string(), "acme/api:2");
    let local = ImageRef::parse("localhost:5000/team/api").unwrap();
    assert_eq!(local.familiar_name(), "localhost:5000/team/api");
    let digest = format!("sha256:{}", "0".repeat(64));
    let pinned = local.with_digest(&digest);
    assert_eq!(
        (pinned.tag(), pinned.tag_or_digest()),
        (None, digest.as_str())
    );
    assert_eq!(
        pinned.to_string(),
        format!("localhost:5000/team/api@{digest}")
    );
    assert_eq!(
        local.in_repository("team/web").with_tag("v1").whole(),
        "localhost:5000/team/web:v1"
    );
    assert!(ImageRef::parse("Team/API")
        .unwrap_err()
        .contains("capital letters"));
}

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
