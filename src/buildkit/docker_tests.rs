//! Tests of `docker.rs`.

use super::*;

#[tokio::test]
async fn unsupported_and_unreachable_endpoints_are_named() {
    let err = connect("npipe:////./pipe/docker_engine").await.unwrap_err();
    assert!(err.to_string().contains("only on Windows"), "{err}");
    let err = connect("ftp://x").await.unwrap_err();
    assert!(matches!(err, BuildError::BadEndpoint { .. }));
    let err = connect("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    let err = connect("tcp://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(err, BuildError::Unreachable { .. }), "{err}");
}

/// A daemon stand-in on loopback that answers every request as Docker 17.06 (API 1.30).
async fn old_daemon() -> String {
    crate::test_http::serve(|_| {
        let body = r#"{"Version":"17.06.0-ce","ApiVersion":"1.30","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#;
        crate::test_http::Reply::whole(
            "200 OK",
            "Content-Type: application/json\r\nApi-Version: 1.30\r\n",
            body,
        )
    })
    .await
}

#[tokio::test]
async fn a_daemon_with_an_api_older_than_buildkit_sessions_is_refused_clearly() {
    let addr = old_daemon().await;
    let err = connect(&format!("tcp://{addr}")).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BuildError::Unreachable { .. }), "{text}");
    assert!(text.contains("speaks Docker API 1.30"), "{text}");
    assert!(text.contains("need 1.39 (Docker 18.09)"), "{text}");
}
