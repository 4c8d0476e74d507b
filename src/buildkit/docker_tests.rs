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
