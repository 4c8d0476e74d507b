//! The build engine end to end against the real Docker daemon: `FROM scratch` images for two
//! platforms with `TARGETARCH` choosing the program, `.dockerignore`, failing steps, syntax
//! errors, routing by endpoint, cancellation and reuse of unchanged jobs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use archbuild::buildkit::{self, BuildError, BuildEvent, BuildOptions, DockerEngine, Job};
use archbuild::Platform;
use support::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SOCKET: &str = "unix:///var/run/docker.sock";

fn request(project: &Project, image: &str, platform: &str, endpoint: &str) -> Job {
    Job {
        image: image.into(),
        platform: Platform::parse(platform).unwrap(),
        context: project.path().to_path_buf(),
        dockerfile: project.path().join("Dockerfile"),
        target: None,
        build_args: BTreeMap::new(),
        labels: BTreeMap::new(),
        references: vec![],
        builder: archbuild::endpoint::Endpoint {
            url: endpoint.into(),
            chosen_by: "DOCKER_HOST".into(),
            tls: None,
        },
        alternates: Vec::new(),
        platform_tag: buildkit::jobs::keep_tag(image, &Platform::parse(platform).unwrap()),
    }
}

/// A project whose Dockerfile copies `app-${TARGETARCH}` into a scratch image.
fn two_arch_project() -> Project {
    let project = Project::new();
    project.write_exec("app-amd64", static_program("linux/amd64", "hello amd64"));
    project.write_exec("app-arm64", static_program("linux/arm64", "hello arm64"));
    project.write(
        "Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY app-${TARGETARCH} /app\nCOPY . /ctx/\nENTRYPOINT [\"/app\"]\n",
    );
    project
}

async fn build_all(
    requests: Vec<Job>,
    options: BuildOptions,
) -> (
    Result<Vec<buildkit::BuiltImage>, BuildError>,
    Vec<BuildEvent>,
) {
    let (tx, mut rx) = mpsc::channel(1024);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            events.push(event);
        }
        events
    });
    let engine = DockerEngine::new();
    let result = buildkit::run(&engine, requests, &options, tx, CancellationToken::new()).await;
    (result, collector.await.unwrap())
}

async fn files_in(docker: &bollard::Docker, image_id: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    let mut stream = docker.export_image(image_id);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let mut names = Vec::new();
    let mut outer = tar::Archive::new(bytes.as_slice());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.ends_with("layer.tar") || path.starts_with("blobs/") {
            let mut layer = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut layer).unwrap();
            if let Ok(entries) = tar::Archive::new(layer.as_slice()).entries() {
                for inner in entries.flatten() {
                    names.push(inner.path().unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    names
}

#[tokio::test]
async fn two_platforms_from_scratch_with_targetarch_and_dockerignore() {
    let Some(docker) = docker().await else { return };
    let project = two_arch_project();
    project.write(".dockerignore", "*.secret\nnotes/\n");
    project.write("token.secret", "do not ship");
    project.write("notes/todo.txt", "x");
    project.write("kept.txt", "kept");
    let repo = unique("archbuild-test/two");
    let mut amd = request(&project, "two", "linux/amd64", SOCKET);
    amd.references = vec![format!("{repo}:1.0").parse().unwrap()];
    let mut arm = request(&project, "two", "linux/arm64", SOCKET);
    arm.references = amd.references.clone();

    let (result, events) = build_all(vec![amd, arm], BuildOptions::default()).await;
    let built = result.expect("both platforms build");
    assert_eq!(built.len(), 2);

    for (image, arch) in built.iter().zip(["amd64", "arm64"]) {
        let inspect = docker.inspect_image(&image.image_id).await.unwrap();
        assert_eq!(inspect.architecture.as_deref(), Some(arch));
        assert_eq!(inspect.os.as_deref(), Some("linux"));
        let files = files_in(&docker, &image.image_id).await;
        assert!(files.iter().any(|f| f == "app"), "{files:?}");
        assert!(files.iter().any(|f| f == "ctx/kept.txt"), "{files:?}");
        assert!(
            !files.iter().any(|f| f.contains("token.secret")),
            "{files:?}"
        );
        assert!(!files.iter().any(|f| f.contains("notes")), "{files:?}");
        // The temporary tag is gone; the keep tag names the image.
        assert!(docker
            .inspect_image(&image.temporary_tag.to_string())
            .await
            .is_err());
        let keep = buildkit::jobs::keep_tag("two", &image.platform);
        assert_eq!(
            docker
                .inspect_image(&keep.to_string())
                .await
                .unwrap()
                .id
                .as_deref(),
            Some(image.image_id.as_str())
        );
    }
    // The daemon's own platform got the final tag, the other did not.
    let tagged = docker.inspect_image(&format!("{repo}:1.0")).await.unwrap();
    assert_eq!(tagged.architecture.as_deref(), Some("amd64"));
    assert_eq!(
        archbuild::reference::list(&built[0].tagged),
        format!("{repo}:1.0")
    );
    assert!(built[1].tagged.is_empty());

    // Progress came as events, per job.
    for image in &built {
        assert!(events.iter().any(
            |e| matches!(e, BuildEvent::JobStarted { job, .. } if job.platform == image.platform)
        ));
        assert!(events.iter().any(|e| matches!(e, BuildEvent::StepStarted { job, name, .. } | BuildEvent::StepCached { job, name, .. } if job.platform == image.platform && name.contains("COPY app-"))), "{events:#?}");
        assert!(events.iter().any(|e| matches!(e, BuildEvent::JobFinished { job, image_id, .. } if job.platform == image.platform && *image_id == image.image_id)));
    }
    let _ = docker
        .remove_image(
            &format!("{repo}:1.0"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

#[tokio::test]
async fn a_syntax_error_names_file_and_line() {
    let Some(_docker) = docker().await else {
        return;
    };
    let project = Project::new();
    project.write("Dockerfile", "FROM scratch\nCOPY a /a\nFORM scratch\n");
    project.write("a", "a");
    let (result, events) = build_all(
        vec![request(&project, "bad", "linux/amd64", SOCKET)],
        BuildOptions::default(),
    )
    .await;
    let err = result.unwrap_err();
    let (_, inner) = &err.failures()[0];
    match inner {
        BuildError::DockerfileSyntax { file, line, .. } => {
            assert_eq!(file, &project.path().join("Dockerfile"));
            assert_eq!(*line, Some(3));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().contains("Dockerfile:3:"), "{err}");
    assert!(events
        .iter()
        .any(|e| matches!(e, BuildEvent::JobFailed { .. })));
}

#[tokio::test]
async fn a_failing_run_reports_exit_code_and_log_tail() {
    let Some(docker) = docker().await else { return };
    // A base image with a static "shell" that prints and exits 3 whatever it is asked to run.
    let base_dir = Project::new();
    base_dir.write_exec("sh", failing_shell());
    base_dir.write("Dockerfile", "FROM scratch\nCOPY sh /bin/sh\n");
    let base_tag = unique("archbuild-test/shell");
    let mut base = request(&base_dir, "shell", "linux/amd64", SOCKET);
    base.references = vec![format!("{base_tag}:1").parse().unwrap()];
    let (result, _) = build_all(vec![base], BuildOptions::default()).await;
    result.expect("the base image builds");

    let project = Project::new();
    project.write("Dockerfile", format!("FROM {base_tag}:1\nRUN make all\n"));
    let (result, events) = build_all(
        vec![request(&project, "fails", "linux/amd64", SOCKET)],
        BuildOptions::default(),
    )
    .await;
    let err = result.unwrap_err();
    match &err.failures()[0].1 {
        BuildError::StepFailed {
            exit_code,
            log_tail,
            step,
        } => {
            assert_eq!(*exit_code, Some(3));
            assert!(
                log_tail.iter().any(|l| l.contains("compiler exploded")),
                "{log_tail:?}"
            );
            assert!(step.contains("make all"), "{step}");
        }
        other => panic!("expected a failed step, got {other:?}"),
    }
    let failed = events.iter().find_map(|e| match e {
        BuildEvent::JobFailed { log_tail, .. } => Some(log_tail.clone()),
        _ => None,
    });
    assert!(failed
        .unwrap()
        .iter()
        .any(|l| l.contains("compiler exploded")));
    let _ = docker
        .remove_image(
            &format!("{base_tag}:1"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

/// A static amd64 program that prints a message and exits with status 3.
fn failing_shell() -> Vec<u8> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("programs");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("failing-shell");
    if let Ok(bytes) = std::fs::read(&out) {
        return bytes;
    }
    let src = dir.join("failing-shell.c");
    std::fs::write(
        &src,
        "#include <unistd.h>\nint main(void) { write(1, \"compiler exploded\\n\", 18); return 3; }\n",
    )
    .unwrap();
    run_ok(
        std::process::Command::new("musl-gcc")
            .args(["-Os", "-s", "-static", "-o"])
            .arg(&out)
            .arg(&src),
    );
    std::fs::read(&out).unwrap()
}

#[tokio::test]
async fn run_in_an_arm64_stage_says_the_builder_cannot_run_it() {
    let Some(docker) = docker().await else { return };
    let base_dir = Project::new();
    base_dir.write_exec("sh", static_program("linux/arm64", "never runs here"));
    base_dir.write("Dockerfile", "FROM scratch\nCOPY sh /bin/sh\n");
    let base_tag = unique("archbuild-test/armshell");
    let (result, _) = build_all(
        vec![request(&base_dir, "armshell", "linux/arm64", SOCKET)],
        BuildOptions::default(),
    )
    .await;
    let base_id = result.expect("the arm64 base builds")[0].image_id.clone();
    docker
        .tag_image(
            &base_id,
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(base_tag.clone()),
                tag: Some("1".into()),
            }),
        )
        .await
        .unwrap();
    let native_arm = std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists();
    if native_arm {
        eprintln!("skipping the exec format assertion: this machine emulates arm64");
        return;
    }
    let project = Project::new();
    project.write("Dockerfile", format!("FROM {base_tag}:1\nRUN true\n"));
    let (result, _) = build_all(
        vec![request(&project, "emu", "linux/arm64", SOCKET)],
        BuildOptions::default(),
    )
    .await;
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err.failures()[0].1, BuildError::ExecFormat { .. }),
        "{text}"
    );
    assert!(text.contains("cannot run linux/arm64 programs"), "{text}");
    assert!(
        text.contains("[builders]") && text.contains("$BUILDPLATFORM"),
        "{text}"
    );
    let _ = docker
        .remove_image(
            &format!("{base_tag}:1"),
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

#[tokio::test]
async fn unknown_target_and_missing_context_are_clear() {
    let Some(_docker) = docker().await else {
        return;
    };
    let project = two_arch_project();
    let mut req = request(&project, "t", "linux/amd64", SOCKET);
    req.target = Some("nope".into());
    let (result, _) = build_all(vec![req], BuildOptions::default()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err.failures()[0].1, BuildError::UnknownTarget { .. }),
        "{err}"
    );

    let mut req = request(&project, "t", "linux/amd64", SOCKET);
    req.context = project.path().join("missing");
    let (result, _) = build_all(vec![req], BuildOptions::default()).await;
    let err = result.unwrap_err();
    assert!(
        matches!(err.failures()[0].1, BuildError::MissingContext { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn jobs_go_to_their_endpoints_and_unreachable_ones_are_named() {
    let Some(_docker) = docker().await else {
        return;
    };
    let project = two_arch_project();
    let amd = request(&project, "routed", "linux/amd64", SOCKET);
    // A second spelling of the same daemon: a symlink to its socket.
    let link = project.path().join("docker.sock");
    std::os::unix::fs::symlink("/var/run/docker.sock", &link).unwrap();
    let other = format!("unix://{}", link.display());
    let arm = request(&project, "routed", "linux/arm64", &other);
    let (result, events) = build_all(vec![amd, arm], BuildOptions::default()).await;
    let built = result.expect("both endpoints build");
    assert_eq!(built[0].endpoint_url, SOCKET);
    assert_eq!(built[1].endpoint_url, other);
    let started: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::JobStarted { job, endpoint, .. } => {
                Some((job.platform.to_string(), endpoint.clone()))
            }
            _ => None,
        })
        .collect();
    assert!(
        started.contains(&("linux/arm64".into(), other.clone())),
        "{started:?}"
    );
    assert!(
        started.contains(&("linux/amd64".into(), SOCKET.into())),
        "{started:?}"
    );

    let mut gone = request(&project, "routed", "linux/arm64", "tcp://127.0.0.1:9");
    gone.builder.chosen_by = "[builders] \"linux/arm64\"".into();
    let (result, _) = build_all(vec![gone], BuildOptions::default()).await;
    let text = result.unwrap_err().to_string();
    assert!(
        text.contains("tcp://127.0.0.1:9") && text.contains("chosen by [builders]"),
        "{text}"
    );
}

#[tokio::test]
async fn cancelling_stops_builds_and_leaves_no_names() {
    let Some(docker) = docker().await else { return };
    let project = two_arch_project();
    // A big incompressible file keeps the upload busy long enough to cancel mid-build.
    let big: Vec<u8> = (0..64 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    project.write("big.bin", big);
    let repo = unique("archbuild-test/cancel");
    let mut req = request(&project, "cancel", "linux/amd64", SOCKET);
    req.references = vec![format!("{repo}:1").parse().unwrap()];
    let (tx, mut rx) = mpsc::channel(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        trigger.cancel();
    });
    let engine = DockerEngine::new();
    let started = std::time::Instant::now();
    let result = buildkit::run(&engine, vec![req], &BuildOptions::default(), tx, cancel).await;
    drain.await.unwrap();
    assert_eq!(result.unwrap_err(), BuildError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(docker.inspect_image(&format!("{repo}:1")).await.is_err());
    let leftovers = docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(std::collections::HashMap::from([(
                "reference".to_string(),
                vec!["archbuild-tmp/cancel".to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn an_unchanged_job_reuses_its_image_without_building() {
    let Some(_docker) = docker().await else {
        return;
    };
    let project = two_arch_project();
    let options = BuildOptions {
        cache_dir: Some(project.path().join(".archbuild/cache")),
        ..Default::default()
    };
    let reqs = vec![
        request(&project, "reuse", "linux/amd64", SOCKET),
        request(&project, "reuse", "linux/arm64", SOCKET),
    ];
    let (first, _) = build_all(reqs.clone(), options.clone()).await;
    let first = first.unwrap();
    assert!(first.iter().all(|b| !b.reused));
    let (second, events) = build_all(reqs.clone(), options.clone()).await;
    let second = second.unwrap();
    assert!(second.iter().all(|b| b.reused));
    assert_eq!(first[0].image_id, second[0].image_id);
    assert_eq!(first[1].image_id, second[1].image_id);
    assert!(!events
        .iter()
        .any(|e| matches!(e, BuildEvent::StepStarted { .. })));

    // A changed file (part of both contexts) rebuilds both; the image changes.
    project.write_exec("app-arm64", static_program("linux/arm64", "hello arm64 v2"));
    let (third, _) = build_all(reqs, options).await;
    let third = third.unwrap();
    assert!(!third[0].reused && !third[1].reused);
    assert_ne!(third[1].image_id, first[1].image_id);
}

/// An archbuild.toml for [`two_arch_project`] named `image`, with `[builders]` lines.
fn write_config(project: &Project, image: &str, builders: &str) {
    project.write(
        "archbuild.toml",
        format!(
            "[defaults]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[images.{image}]\ncontext = \".\"\n\
             dockerfile = \"Dockerfile\"\ntags = [\"1.0\"]\n\
             check = {{ ignore = [\"/ctx/**\"] }}\n{builders}"
        ),
    );
}

#[tokio::test]
async fn the_command_prints_plain_progress_per_job_and_a_result_table() {
    let Some(docker) = docker().await else { return };
    let project = two_arch_project();
    let image = unique("clibuild");
    write_config(&project, &image, "");
    let out = project.archbuild(&["build", "--progress", "plain"]);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for platform in ["linux/amd64", "linux/arm64"] {
        let prefix = format!("[{image} {platform}] ");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains("COPY app-")),
            "{stderr}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(" built ")),
            "{stderr}"
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("IMAGE"), "{stdout}");
    assert!(stdout.contains(&format!("{image}:1.0")), "{stdout}");
    // `docker run` works afterwards as after `docker build`: the amd64 image is IMAGE:1.0.
    let tagged = docker.inspect_image(&format!("{image}:1.0")).await.unwrap();
    assert_eq!(tagged.architecture.as_deref(), Some("amd64"));

    // Nothing changed: both jobs reuse their images; JSON lists them.
    let out = project.archbuild(&["build", "--progress", "json", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|i| i["reused"] == true), "{doc}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first: serde_json::Value = serde_json::from_str(stderr.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "job-started");

    for tag in [
        format!("{image}:1.0"),
        format!("archbuild-local/{image}:1.0-linux-amd64"),
        format!("archbuild-local/{image}:1.0-linux-arm64"),
    ] {
        let _ = docker
            .remove_image(
                &tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

#[tokio::test]
async fn the_command_routes_by_builders_and_names_unreachable_ones() {
    let Some(_docker) = docker().await else {
        return;
    };
    let project = two_arch_project();
    let image = unique("cliroute");
    write_config(
        &project,
        &image,
        "\n[builders]\n\"linux/arm64\" = \"tcp://127.0.0.1:9\"\n",
    );
    let out = project.archbuild(&["build", "--progress", "plain"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[{image} linux/arm64] FAILED: cannot reach the Docker daemon at tcp://127.0.0.1:9"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("chosen by"), "{stderr}");
    // Every builder is asked before any build starts: the reachable one builds nothing.
    assert!(!stderr.contains("building on"), "{stderr}");
}

#[tokio::test]
async fn sigint_cancels_the_command_and_exits_non_zero() {
    let Some(docker) = docker().await else { return };
    let project = two_arch_project();
    let big: Vec<u8> = (0..96 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    project.write("big.bin", big);
    let image = unique("clisigint");
    write_config(&project, &image, "");
    let child = project
        .command(&["build", "--progress", "plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = child.id().to_string();
    run_ok(std::process::Command::new("kill").args(["-INT", &pid]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(docker.inspect_image(&format!("{image}:1.0")).await.is_err());
    assert!(docker
        .inspect_image(&format!("archbuild-local/{image}:1.0-linux-arm64"))
        .await
        .is_err());
}

/// The contents of `path` in the image's layers (the last layer that has it).
async fn file_in(docker: &bollard::Docker, image_id: &str, path: &str) -> Option<Vec<u8>> {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    let mut stream = docker.export_image(image_id);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let mut found = None;
    let mut outer = tar::Archive::new(bytes.as_slice());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("layer.tar") || name.starts_with("blobs/") {
            let mut layer = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut layer).unwrap();
            if let Ok(entries) = tar::Archive::new(layer.as_slice()).entries() {
                for mut inner in entries.flatten() {
                    if inner.path().unwrap().to_string_lossy() == path {
                        let mut data = Vec::new();
                        std::io::Read::read_to_end(&mut inner, &mut data).unwrap();
                        found = Some(data);
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn a_one_file_change_sends_only_that_file() {
    let Some(docker) = docker().await else { return };
    let project = Project::new();
    project.write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for index in 0..200 {
        // 200 KiB of incompressible bytes per file: 40 MB in all.
        let data: Vec<u8> = (0..200 * 1024)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        project.write(&format!("data/{:02}/file-{index:03}.bin", index % 10), data);
    }
    project.write("small.txt", "version 1\n");
    let reqs = vec![request(&project, "sync", "linux/amd64", SOCKET)];
    let options = BuildOptions::default();

    let (first, _) = build_all(reqs.clone(), options.clone()).await;
    let first = first.expect("the first build");
    // Every file once: 200 × 200 KiB, the small one and the Dockerfile.
    let all = 200 * 200 * 1024;
    assert!(
        (all..all + 1024).contains(&first[0].context_bytes),
        "the first build sends every file once: {} bytes",
        first[0].context_bytes
    );

    project.write("small.txt", "version 2, changed\n");
    let (second, _) = build_all(reqs, options).await;
    let second = second.expect("the second build");
    assert!(
        second[0].context_bytes > 0 && second[0].context_bytes < 1024 * 1024,
        "a one-file change sends about that file: {} bytes",
        second[0].context_bytes
    );
    assert_ne!(first[0].image_id, second[0].image_id);
    let small = file_in(&docker, &second[0].image_id, "ctx/small.txt").await;
    assert_eq!(small.as_deref(), Some(&b"version 2, changed\n"[..]));
    let big = file_in(&docker, &second[0].image_id, "ctx/data/07/file-007.bin").await;
    assert_eq!(big.map(|b| b.len()), Some(200 * 1024));

    for image in first.iter().chain(&second) {
        let _ = docker
            .remove_image(
                &image.image_id,
                Some(bollard::query_parameters::RemoveImageOptions {
                    force: true,
                    ..Default::default()
                }),
                None,
            )
            .await;
    }
}
