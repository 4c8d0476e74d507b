//! Turning oci-client's errors into [`StoreError`]s a person can act on: which registry could
//! not be reached, which credential source was refused, what was not found. Messages carry
//! URLs and the registry's own error codes, never credentials.

use oci_client::errors::{OciDistributionError as E, OciErrorCode};

use super::Credentials;
use crate::store::StoreError;

/// The error for a registry's 401 or 403 (`status`) about `store`: credentials refused or
/// missing (`Unauthorized`, which says how to log in), or credentials that were accepted but
/// lack the right asked for (`Forbidden`: a 403, or a 401 although a token was issued for
/// them, as distribution answers `insufficient_scope`).
pub fn refused(store: &str, status: u16, detail: String, credentials: &Credentials) -> StoreError {
    let (store, tried) = (store.to_string(), credentials.source.clone());
    if credentials.is_anonymous() {
        StoreError::Unauthorized {
            store,
            detail,
            tried,
        }
    } else if status == 403 || detail.contains("insufficient_scope") {
        StoreError::Forbidden {
            store,
            detail,
            tried,
        }
    } else {
        StoreError::Unauthorized {
            store,
            detail,
            tried,
        }
    }
}

/// Maps an oci-client error about `what` (e.g. `manifest 1.0`) in `store` to a [`StoreError`];
/// `credentials` say where the credentials came from (never what they are).
pub fn map(e: E, store: &str, what: &str, credentials: &Credentials) -> StoreError {
    let unauthorized = |detail: String| refused(store, 401, detail, credentials);
    let forbidden = |detail: String| refused(store, 403, detail, credentials);
    let store = store.to_string();
    let not_found = |what: String| StoreError::NotFound {
        what,
        store: store.clone(),
    };
    match e {
        E::RequestError(err) if err.is_connect() || err.is_timeout() || err.is_request() => {
            StoreError::Unreachable {
                store: store.clone(),
                detail: chain(&err),
            }
        }
        E::RequestError(err) if matches!(err.status().map(|s| s.as_u16()), Some(401 | 403)) => {
            let code = err.status().map_or(401, |s| s.as_u16());
            refused(&store, code, format!("{code} on {what}"), credentials)
        }
        E::UnauthorizedError { .. } => unauthorized(format!("401 Unauthorized on {what}")),
        E::AuthenticationFailure(reason) => {
            unauthorized(format!("token request refused: {}", first_line(&reason)))
        }
        E::RegistryError { envelope, .. } => {
            let first = envelope.errors.first();
            let message = first.map(|e| e.message.clone()).unwrap_or_default();
            match first.map(|e| &e.code) {
                Some(OciErrorCode::Unauthorized) => {
                    unauthorized(format!("UNAUTHORIZED: {message}"))
                }
                Some(OciErrorCode::Denied) => forbidden(format!("DENIED: {message}")),
                Some(OciErrorCode::NameUnknown) => not_found("repository".into()),
                Some(OciErrorCode::ManifestUnknown | OciErrorCode::NotFound) => {
                    not_found(what.into())
                }
                Some(OciErrorCode::BlobUnknown) => not_found(what.into()),
                _ => StoreError::Other {
                    store: store.clone(),
                    detail: format!("{what}: {}", envelope),
                },
            }
        }
        E::ServerError { code, message, .. } => match code {
            401 => unauthorized(format!("401 Unauthorized on {what}")),
            403 => forbidden(format!("403 Forbidden on {what}")),
            404 => not_found(what.into()),
            _ => StoreError::Other {
                store: store.clone(),
                detail: format!("{what}: HTTP {code}: {}", first_line(&message)),
            },
        },
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            StoreError::DigestMismatch {
                what: what.into(),
                store: store.clone(),
                expected,
                actual,
            }
        }
        other => StoreError::Other {
            store: store.clone(),
            detail: format!("{what}: {other}"),
        },
    }
}

/// The HTTP status an error carries, whichever way oci-client reported it: some requests
/// (`blob_exists`) give reqwest's status error, others a `ServerError`.
pub fn status(e: &E) -> Option<u16> {
    match e {
        E::RequestError(err) => err.status().map(|s| s.as_u16()),
        E::ServerError { code, .. } => Some(*code),
        _ => None,
    }
}

/// Whether an error is worth retrying: a dropped connection, a 5xx or a 429.
pub fn is_transient(e: &E) -> bool {
    if let Some(code) = status(e) {
        return code >= 500 || code == 429;
    }
    match e {
        E::RequestError(err) => {
            err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
        }
        E::IoError(_) => true,
        _ => false,
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A request that got no answer from `store`, without the URL (it names the store already).
pub fn unreachable(store: &str, e: reqwest::Error) -> StoreError {
    StoreError::Unreachable {
        store: store.to_string(),
        detail: e.without_url().to_string(),
    }
}

/// The first line of a server's text, at most 200 characters: enough to say what it said.
pub fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    line.chars().take(200).collect()
}
