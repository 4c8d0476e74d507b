//! Registry credentials from the Docker client configuration (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`): `credHelpers`, `auths` and `credsStore`, in the order the Docker
//! CLI consults them. The lookup itself is done by the `docker_credential` crate (including the
//! helpers' protocol); this module decides which source applies so that an error can name it,
//! and never keeps a secret anywhere it could be printed.

use std::collections::BTreeMap;
use std::path::Path;

use oci_client::secrets::RegistryAuth;

/// What the Docker configuration holds for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Anonymous,
    /// A user name and password (or access token used as one), sent as Basic credentials
    /// to the token server or to a Basic registry.
    Password {
        user: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's answer for user `<token>`),
    /// exchanged at the token server with `grant_type=refresh_token`; never sent to the
    /// registry itself.
    IdentityToken(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Anonymous => f.write_str("Anonymous"),
            Secret::Password { user, .. } => write!(f, "Password({user}, <redacted>)"),
            Secret::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The credentials chosen for a registry and a description of where they came from
/// (`"auths entry for 127.0.0.1:5000 in /home/me/.docker/config.json"`), safe to print.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub secret: Secret,
    /// Where they came from, for error messages; never contains a secret.
    pub source: String,
}

impl Credentials {
    /// No credentials: anonymous access.
    pub fn anonymous(why: impl Into<String>) -> Self {
        Credentials {
            secret: Secret::Anonymous,
            source: why.into(),
        }
    }

    /// Whether any credential was found.
    pub fn is_anonymous(&self) -> bool {
        self.secret == Secret::Anonymous
    }

    /// What oci-client is given for the requests it authorizes itself once a token archbuild
    /// obtained has expired: the password, or nothing (an identity token is only ever
    /// exchanged by [`super::token`]).
    pub fn fallback(&self) -> RegistryAuth {
        match &self.secret {
            Secret::Password { user, password } => {
                RegistryAuth::Basic(user.clone(), password.clone())
            }
            _ => RegistryAuth::Anonymous,
        }
    }
}

/// Only the keys of config.json, to say which source applies (no secret is read here).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigShape {
    #[serde(default)]
    auths: BTreeMap<String, serde::de::IgnoredAny>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

/// The key the Docker CLI files a registry's credentials under.
fn server_key(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// Whether an `auths` key (`host`, `https://host`, `https://host/v1/`) names `registry`.
fn auths_key_matches(key: &str, registry: &str) -> bool {
    let stripped = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(key);
    key == registry || stripped == registry
}

/// Looks up credentials for `registry` (`host[:port]`) in the Docker client configuration
/// found in `config_dir` (see [`crate::endpoint::docker_config_dir`]).
pub fn lookup(registry: &str, config_dir: Option<&Path>) -> Credentials {
    let Some(dir) = config_dir else {
        return Credentials::anonymous("none (no $DOCKER_CONFIG or $HOME)");
    };
    let path = dir.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(_) => {
            return Credentials::anonymous(format!("none ({} does not exist)", path.display()))
        }
    };
    let shape: ConfigShape = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            return Credentials::anonymous(format!(
                "none ({} is not valid JSON: line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        }
    };
    let key = server_key(registry);
    let source = if let Some(helper) = shape.cred_helpers.get(key).filter(|h| !h.is_empty()) {
        format!(
            "credential helper docker-credential-{helper} (credHelpers in {})",
            path.display()
        )
    } else if shape
        .auths
        .keys()
        .any(|k| auths_key_matches(k, key) || auths_key_matches(k, registry))
    {
        format!("auths entry for {registry} in {}", path.display())
    } else if let Some(store) = &shape.creds_store {
        format!(
            "credential store docker-credential-{store} (credsStore in {})",
            path.display()
        )
    } else {
        return Credentials::anonymous(format!(
            "none (no entry for {registry} in {})",
            path.display()
        ));
    };
    match docker_credential::get_credential_from_reader(text.as_slice(), key) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => Credentials {
            secret: Secret::Password { user, password },
            source,
        },
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => Credentials {
            secret: Secret::IdentityToken(token),
            source,
        },
        // The error's Display may carry a helper's output; only its kind is kept.
        Err(e) => Credentials::anonymous(format!("{source}, which failed: {}", error_kind(&e))),
    }
}

fn error_kind(e: &docker_credential::CredentialRetrievalError) -> &'static str {
    use docker_credential::CredentialRetrievalError as E;
    match e {
        E::HelperCommunicationError => "the helper could not be run",
        E::MalformedHelperResponse => "the helper's answer was malformed",
        E::HelperFailure { .. } => "the helper exited with an error",
        E::CredentialDecodingError => "the auth value is not base64 of user:password",
        E::CredentialMismatchError => "auth does not match username/password",
        E::NoCredentialConfigured => "no credential configured",
        E::ConfigNotFound | E::ConfigReadError => "the configuration could not be read",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        dir
    }

    #[test]
    fn auths_entry_is_used_and_described_without_the_secret() {
        // "builder:s3cret-pw" in base64
        let dir = config(r#"{"auths":{"127.0.0.1:5000":{"auth":"YnVpbGRlcjpzM2NyZXQtcHc="}}}"#);
        let c = lookup("127.0.0.1:5000", Some(dir.path()));
        assert_eq!(
            c.secret,
            Secret::Password {
                user: "builder".into(),
                password: "s3cret-pw".into()
            }
        );
        assert!(c.source.starts_with("auths entry for 127.0.0.1:5000"));
        assert!(!format!("{c:?}").contains("s3cret-pw"));
    }

    #[test]
    fn docker_hub_and_url_keys() {
        let dir = config(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#);
        let c = lookup("docker.io", Some(dir.path()));
        assert_eq!(
            c.secret,
            Secret::Password {
                user: "u".into(),
                password: "p".into()
            }
        );
        let dir = config(r#"{"auths":{"https://reg.example.com":{"auth":"dTpw"}}}"#);
        assert!(lookup("reg.example.com", Some(dir.path()))
            .source
            .starts_with("auths"));
    }

    #[test]
    fn missing_helper_falls_back_to_anonymous_and_says_so() {
        let dir = config(r#"{"credHelpers":{"reg.example.com":"archbuild-test-nonexistent"}}"#);
        let c = lookup("reg.example.com", Some(dir.path()));
        assert!(c.is_anonymous());
        assert!(
            c.source
                .contains("docker-credential-archbuild-test-nonexistent"),
            "{}",
            c.source
        );
        assert!(c.source.contains("failed"), "{}", c.source);
    }

    #[test]
    fn no_entry_is_anonymous() {
        let dir = config(r#"{"auths":{"other:5000":{"auth":"dTpw"}}}"#);
        let c = lookup("127.0.0.1:5000", Some(dir.path()));
        assert!(c.is_anonymous());
        assert!(c.source.starts_with("none"));
        let c = lookup("127.0.0.1:5000", Some(Path::new("/nonexistent-archbuild")));
        assert!(c.source.contains("does not exist"));
    }
}
