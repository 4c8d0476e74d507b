//! Authorization the way the Docker client obtains it, for every request archbuild and
//! oci-client make to one registry (distribution's token protocol, `docs/spec/auth/token.md`,
//! and its OAuth2 form, `docs/spec/auth/oauth.md`):
//! - `GET /v2/` without credentials tells how the registry authenticates: no challenge
//!   (open), a `Basic` challenge (the configured password as it is), or a `Bearer` challenge
//!   naming the token server (`realm`) and the `service`;
//! - a token is asked for all the scopes an operation needs at once (the pushed repository's
//!   `pull,push` and `pull` on every repository a blob is mounted from, which oci-client's
//!   single-scope request cannot do): `GET realm?service=…&scope=…` with Basic credentials
//!   when there is a password, or `POST realm` with `grant_type=refresh_token` for an identity
//!   token;
//! - tokens are kept per scope set until 30 s before they expire (`expires_in`, 60 s when the
//!   server does not say, as the spec defines).
//!
//! Every answer is read within [`MAX_ANSWER_BYTES`]; errors name the registry, the token
//! server and where the credentials came from, never a secret.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OnceCell};

use super::credentials::{Credentials, Secret};
use super::errors::{first_line, unreachable};
use crate::store::StoreError;

/// The largest token or error answer read: real ones are a few KiB.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// The `client_id` sent with refresh-token requests, as the spec asks.
const CLIENT_ID: &str = "archbuild";

/// What a request carries to prove who is asking.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    Anonymous,
    Basic { user: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grant::Anonymous => "Anonymous",
            Grant::Basic { .. } => "Basic(<redacted>)",
            Grant::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

impl Grant {
    /// `request` with this grant's `Authorization` header.
    pub fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Grant::Anonymous => request,
            Grant::Basic { user, password } => request.basic_auth(user, Some(password)),
            Grant::Bearer(token) => request.bearer_auth(token),
        }
    }
}

/// How the registry asked to be authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `/v2/` answered without asking.
    Open,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Reads a `WWW-Authenticate` header; a `Bearer` challenge wins over `Basic` when both are
/// offered. `None` when neither scheme is there.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let param = |c: &http_auth::ChallengeRef, name: &str| {
        c.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    if let Some(c) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        return Some(Challenge::Bearer {
            realm: param(c, "realm")?,
            service: param(c, "service"),
        });
    }
    challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// `repository:NAME:ACTIONS`, the scope a token is asked for.
pub fn scope(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

/// A token request: the method, the URL and, for a POST, the form body.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub post: bool,
    pub url: String,
    pub form: Option<String>,
}

/// The request for a token for `scopes` at `realm`: an identity token is exchanged with a
/// POST (the scopes space-separated, as OAuth2 has them); otherwise a GET with one `scope`
/// parameter per scope and `account` naming the user (the password goes in the header).
pub fn token_request(
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    secret: &Secret,
) -> TokenRequest {
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(service) = service {
        params.push(("service", service.to_string()));
    }
    if let Secret::IdentityToken(token) = secret {
        params.push(("grant_type", "refresh_token".into()));
        params.push(("refresh_token", token.clone()));
        params.push(("client_id", CLIENT_ID.into()));
        params.push(("scope", scopes.join(" ")));
        return TokenRequest {
            post: true,
            url: realm.to_string(),
            form: serde_urlencoded::to_string(&params).ok(),
        };
    }
    if let Secret::Password { user, .. } = secret {
        params.push(("account", user.clone()));
    }
    params.extend(scopes.iter().map(|s| ("scope", s.clone())));
    let query = serde_urlencoded::to_string(&params).unwrap_or_default();
    let separator = if realm.contains('?') { '&' } else { '?' };
    TokenRequest {
        post: false,
        url: format!("{realm}{separator}{query}"),
        form: None,
    }
}

/// A token server's answer: the token (`token`, or OAuth2's `access_token`) and how long it
/// lasts.
pub fn parse_token(body: &[u8]) -> Result<(String, Duration), String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not a token: {e}"))?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or("the answer holds no token")?;
    // The spec: "defaults to 60 seconds"; at least that long, as the Docker client does.
    let lasts = answer.expires_in.unwrap_or(60).max(60);
    Ok((token, Duration::from_secs(lasts)))
}

/// One registry's authorization, shared by every repository read or written there.
pub struct Authorizer {
    registry: String,
    scheme: &'static str,
    credentials: Credentials,
    http: OnceCell<reqwest::Client>,
    challenge: OnceCell<Challenge>,
    tokens: Mutex<HashMap<Vec<String>, (String, Instant)>>,
}

impl Authorizer {
    pub fn new(registry: &str, plain_http: bool, credentials: Credentials) -> Authorizer {
        Authorizer {
            registry: registry.to_string(),
            scheme: if plain_http { "http" } else { "https" },
            credentials,
            http: OnceCell::new(),
            challenge: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// `scheme://registry/v2/`.
    pub fn base_url(&self) -> String {
        format!("{}://{}/v2/", self.scheme, self.registry)
    }

    /// The HTTP client for archbuild's own requests: over plain HTTP no TLS roots are loaded
    /// (that alone took a quarter of a `verify`'s CPU time).
    pub async fn http(&self) -> Result<&reqwest::Client, StoreError> {
        self.http
            .get_or_try_init(|| async {
                let builder = reqwest::Client::builder()
                    .user_agent(concat!("archbuild/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(10));
                let builder = if self.scheme == "http" {
                    builder.tls_certs_only(std::iter::empty())
                } else {
                    builder
                };
                builder.build()
            })
            .await
            .map_err(|e| unreachable(&self.registry, e))
    }

    /// The grant for `scopes` (see [`scope`]), from the cache while it is fresh.
    pub async fn grant(&self, scopes: &[String]) -> Result<Grant, StoreError> {
        let challenge = self
            .challenge
            .get_or_try_init(|| self.ping())
            .await?
            .clone();
        match challenge {
            Challenge::Open => Ok(Grant::Anonymous),
            Challenge::Basic => Ok(match &self.credentials.secret {
                Secret::Password { user, password } => Grant::Basic {
                    user: user.clone(),
                    password: password.clone(),
                },
                _ => Grant::Anonymous,
            }),
            Challenge::Bearer { realm, service } => {
                let mut key = scopes.to_vec();
                key.sort();
                let mut tokens = self.tokens.lock().await;
                if let Some((token, until)) = tokens.get(&key) {
                    if Instant::now() < *until {
                        return Ok(Grant::Bearer(token.clone()));
                    }
                }
                let (token, lasts) = self.fetch(&realm, service.as_deref(), &key).await?;
                let until = Instant::now() + lasts.saturating_sub(Duration::from_secs(30));
                tokens.insert(key, (token.clone(), until));
                Ok(Grant::Bearer(token))
            }
        }
    }

    async fn ping(&self) -> Result<Challenge, StoreError> {
        let http = self.http().await?;
        let response = http
            .get(self.base_url())
            .send()
            .await
            .map_err(|e| unreachable(&self.registry, e))?;
        let header = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match (response.status().as_u16(), header) {
            (401, Some(header)) => parse_challenge(&header).ok_or_else(|| {
                self.other(format!(
                    "/v2/ asks for an authentication scheme archbuild does not speak: {}",
                    crate::finding::for_terminal(&header)
                ))
            }),
            (401, None) => {
                Err(self.other("/v2/ answered 401 without a WWW-Authenticate challenge".into()))
            }
            _ => Ok(Challenge::Open),
        }
    }

    async fn fetch(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(String, Duration), StoreError> {
        let request = token_request(realm, service, scopes, &self.credentials.secret);
        let http = self.http().await?;
        let mut builder = if request.post {
            http.post(&request.url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(request.form.unwrap_or_default())
        } else {
            http.get(&request.url)
        };
        if let Secret::Password { user, password } = &self.credentials.secret {
            if !request.post {
                builder = builder.basic_auth(user, Some(password));
            }
        }
        let server = realm.split('?').next().unwrap_or(realm);
        let mut response = builder.send().await.map_err(|e| StoreError::Unreachable {
            store: self.registry.clone(),
            detail: format!("its token server {server}: {}", e.without_url()),
        })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(&self.registry, e))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(self.other(format!(
                    "the token server {server} answered more than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let who = if self.credentials.is_anonymous() {
            "an anonymous request"
        } else {
            "the credentials"
        };
        match status.as_u16() {
            200 => parse_token(&body)
                .map_err(|e| self.other(format!("the token server {server}: {e}"))),
            401 => Err(StoreError::Unauthorized {
                store: self.registry.clone(),
                detail: format!("its token server {server} refused {who} (401)"),
                tried: self.credentials.source.clone(),
            }),
            403 => Err(StoreError::Forbidden {
                store: self.registry.clone(),
                detail: format!("its token server {server} refused {}", scopes.join(" ")),
                tried: self.credentials.source.clone(),
            }),
            code => Err(self.other(format!(
                "the token server {server} answered {code}: {}",
                crate::finding::for_terminal(&first_line(&String::from_utf8_lossy(&body)))
            ))),
        }
    }

    fn other(&self, detail: String) -> StoreError {
        StoreError::Other {
            store: self.registry.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read_with_quoted_parameters() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x", Bearer realm="https://t/""#),
            Some(Challenge::Bearer {
                realm: "https://t/".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="no-realm""#), None);
    }

    #[test]
    fn a_password_asks_with_get_and_every_scope_once() {
        let scopes = vec![scope("team/api", true), scope("team/base", false)];
        let secret = Secret::Password {
            user: "ci bot".into(),
            password: "hunter2".into(),
        };
        let r = token_request("https://auth/token", Some("reg"), &scopes, &secret);
        assert!(!r.post);
        assert_eq!(
            r.url,
            "https://auth/token?service=reg&account=ci+bot&scope=repository%3Ateam%2Fapi%3Apull%2Cpush&scope=repository%3Ateam%2Fbase%3Apull"
        );
        assert!(!r.url.contains("hunter2"));
        let anonymous = token_request(
            "https://auth/token?x=1",
            None,
            &scopes[..1],
            &Secret::Anonymous,
        );
        assert_eq!(
            anonymous.url,
            "https://auth/token?x=1&scope=repository%3Ateam%2Fapi%3Apull%2Cpush"
        );
    }

    #[test]
    fn an_identity_token_is_exchanged_with_a_refresh_grant() {
        let scopes = vec![scope("a", true), scope("b", false)];
        let r = token_request(
            "https://auth/token",
            Some("reg"),
            &scopes,
            &Secret::IdentityToken("r1".into()),
        );
        assert!(r.post);
        assert_eq!(r.url, "https://auth/token");
        assert_eq!(
            r.form.as_deref(),
            Some("service=reg&grant_type=refresh_token&refresh_token=r1&client_id=archbuild&scope=repository%3Aa%3Apull%2Cpush+repository%3Ab%3Apull")
        );
    }

    #[test]
    fn token_answers_in_both_spellings_and_their_lifetime() {
        let (t, d) = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!((t.as_str(), d), ("abc", Duration::from_secs(300)));
        let (t, d) = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!((t.as_str(), d), ("xyz", Duration::from_secs(60)));
        assert_eq!(
            parse_token(br#"{"token":"a","expires_in":5}"#).unwrap().1,
            Duration::from_secs(60)
        );
        assert!(parse_token(br#"{"token":""}"#)
            .unwrap_err()
            .contains("no token"));
        assert!(parse_token(b"<html>").unwrap_err().contains("not a token"));
    }

    #[test]
    fn grants_never_show_their_secret() {
        let g = Grant::Bearer("tok-SECRET".into());
        assert!(!format!("{g:?}").contains("SECRET"));
        let s = Secret::Password {
            user: "u".into(),
            password: "pw-SECRET".into(),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
    }
}
