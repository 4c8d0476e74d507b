//! Images in the Docker daemon, read through the API's image export (`docker save`'s
//! stream), bridged into the synchronous archive reader on a blocking thread.

use bollard::Docker;
use futures_util::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::archive::{self, LayerTap};
use super::{ImageError, ImageInput};

/// Connects to the daemon the way the Docker CLI would (`DOCKER_HOST` or the local socket)
/// and agrees on an API version.
pub async fn connect() -> Result<Docker, ImageError> {
    let docker = Docker::connect_with_defaults().map_err(|e| ImageError::Daemon(e.to_string()))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| ImageError::Daemon(e.to_string()))
}

/// Exports `name` (a name, name:tag or image ID) and reads it. The image is looked up first
/// so that a missing one is reported as such rather than as a broken stream.
pub async fn read(docker: &Docker, name: &str) -> Result<Vec<ImageInput>, ImageError> {
    Ok(read_tapped(docker, name, archive::NoTap).await?.0)
}

/// Exports `name` and reads it as [`read`] does, with a copy of every layer's bytes handed to
/// `tap` on the way (the one export of a release feeding both the check and the
/// compression); the tap is given back with the images.
pub async fn read_tapped<T: LayerTap + Send + 'static>(
    docker: &Docker,
    name: &str,
    mut tap: T,
) -> Result<(Vec<ImageInput>, T), ImageError> {
    match docker.inspect_image(name).await {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) => {
            return Err(ImageError::NotInDaemon {
                name: name.to_string(),
                detail: message,
            });
        }
        Err(e) => return Err(ImageError::Daemon(e.to_string())),
    }
    let stream = docker.export_image(name).map_err(std::io::Error::other);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let label = format!("docker-daemon:{name}");
    let read = move || archive::read_tapped(reader, &label, &mut tap).map(|images| (images, tap));
    let (mut images, tap) = tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| ImageError::Daemon(format!("reading the export of {name} stopped: {e}")))??;
    for image in &mut images {
        if image.name.contains(" (") {
            image.name = name.to_string();
        }
    }
    Ok((images, tap))
}
