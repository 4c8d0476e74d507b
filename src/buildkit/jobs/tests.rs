//! Job scheduling, naming, reuse and cancellation against the recording [`FakeEngine`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::buildkit::engine::{FakeCall, FakeEngine};
use crate::buildkit::LostBuilder;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    std::fs::write(dir.path().join("app"), "app").unwrap();
    dir
}

pub(super) fn request(dir: &Path, image: &str, platform: &str, endpoint: &str) -> Job {
    Job {
        image: image.into(),
        platform: Platform::parse(platform).unwrap(),
        context: dir.to_path_buf(),
        dockerfile: dir.join("Dockerfile"),
        target: None,
        build_args: BTreeMap::new(),
        labels: BTreeMap::new(),
        references: vec![format!("{image}:1.0").parse().unwrap()],
        builder: crate::endpoint::Endpoint {
            url: endpoint.into(),
            chosen_by: "DOCKER_HOST".into(),
            tls: None,
        },
        alternates: Vec::new(),
        platform_tag: keep_tag(image, &Platform::parse(platform).unwrap()),
    }
}

async fn go(
    engine: &FakeEngine,
    requests: Vec<Job>,
    options: &BuildOptions,
    cancel: CancellationToken,
) -> (Result<Vec<BuiltImage>, BuildError>, Vec<BuildEvent>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let collector = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    });
    let result = run(engine, requests, options, tx, cancel).await;
    (result, collector.await.unwrap())
}

fn tags(engine: &FakeEngine) -> Vec<String> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Tag { reference, .. } => Some(reference),
            _ => None,
        })
        .collect()
}

/// The builders asked to remove a temporary tag, in the order asked.
fn untagged_on(engine: &FakeEngine) -> Vec<String> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Untag { endpoint, .. } => Some(endpoint),
            _ => None,
        })
        .collect()
}

fn untags(engine: &FakeEngine) -> Vec<String> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Untag { reference, .. } => Some(reference),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_refused_gate_starts_nothing_a_passed_one_lets_every_job_build_and_a_cancel_ends_the_wait(
) {
    let dir = project();
    let requests = vec![
        request(dir.path(), "app", "linux/amd64", "unix:///a"),
        request(dir.path(), "app", "linux/arm64", "unix:///a"),
    ];
    let engine = FakeEngine::new("linux/amd64");
    let (tx, _rx) = mpsc::channel(1024);
    let options = BuildOptions::default();
    let refused = run_after(
        &engine,
        requests.clone(),
        &options,
        tx,
        CancellationToken::new(),
        async { false },
    )
    .await;
    assert_eq!(refused.unwrap_err(), BuildError::Cancelled);
    assert!(engine.calls().is_empty(), "{:?}", engine.calls());

    // The gate waits while the builders are asked: nothing is built before it answers.
    let engine = FakeEngine::new("linux/amd64");
    let (tx, _rx) = mpsc::channel(1024);
    let gate = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(engine.calls().is_empty(), "built before the gate answered");
        true
    };
    let built = run_after(
        &engine,
        requests.clone(),
        &options,
        tx,
        CancellationToken::new(),
        gate,
    )
    .await
    .unwrap();
    assert_eq!(built.len(), 2);

    // Ctrl-C does not wait for a gate that never answers (a registry that does not reply).
    let engine = FakeEngine::new("linux/amd64");
    let (tx, _rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.cancel();
    });
    let gate = std::future::pending::<bool>();
    let stopped = tokio::time::timeout(
        Duration::from_secs(10),
        run_after(&engine, requests, &options, tx, cancel, gate),
    )
    .await
    .expect("the cancel ended the run");
    assert_eq!(stopped.unwrap_err(), BuildError::Cancelled);
    assert!(engine.calls().is_empty(), "{:?}", engine.calls());
}

#[tokio::test]
async fn concurrency_is_limited_per_endpoint() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64").with_delay(Duration::from_millis(50));
    let mut requests = Vec::new();
    for i in 0..5 {
        requests.push(request(
            dir.path(),
            &format!("a{i}"),
            "linux/amd64",
            "unix:///a",
        ));
    }
    for i in 0..3 {
        requests.push(request(
            dir.path(),
            &format!("b{i}"),
            "linux/arm64",
            "ssh://b",
        ));
    }
    let (result, _) = go(
        &engine,
        requests,
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(result.unwrap().len(), 8);
    assert_eq!(
        engine.peak_concurrency("unix:///a"),
        DEFAULT_JOBS_PER_ENDPOINT
    );
    assert_eq!(
        engine.peak_concurrency("ssh://b"),
        DEFAULT_JOBS_PER_ENDPOINT
    );

    let engine = FakeEngine::new("linux/amd64").with_delay(Duration::from_millis(50));
    let requests = (0..4)
        .map(|i| request(dir.path(), &format!("c{i}"), "linux/amd64", "unix:///a"))
        .collect();
    let options = BuildOptions {
        jobs_per_endpoint: Some(4),
        ..Default::default()
    };
    go(&engine, requests, &options, CancellationToken::new())
        .await
        .0
        .unwrap();
    assert_eq!(engine.peak_concurrency("unix:///a"), 4);
}

#[tokio::test]
async fn only_the_builders_own_platform_gets_the_final_tags() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    let requests = vec![
        request(dir.path(), "api", "linux/amd64", "unix:///a"),
        request(dir.path(), "api", "linux/arm64", "unix:///a"),
    ];
    let (result, events) = go(
        &engine,
        requests,
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let built = result.unwrap();
    assert_eq!(crate::reference::list(&built[0].tagged), "api:1.0");
    assert!(built[1].tagged.is_empty());
    assert!(
        !built[1].emulated,
        "COPY only: nothing runs under emulation"
    );
    assert_eq!(
        tags(&engine),
        vec![
            "archbuild/api:linux-amd64".to_string(),
            "api:1.0".to_string(),
            "archbuild/api:linux-arm64".to_string()
        ]
    );
    let temporary: Vec<String> = built.iter().map(|b| b.temporary_tag.to_string()).collect();
    assert!(temporary
        .iter()
        .all(|t| t.starts_with("archbuild-tmp/api:linux-")));
    assert_eq!(untags(&engine), temporary);
    let finished = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::JobFinished { .. }))
        .count();
    assert_eq!(finished, 2);
}

#[tokio::test]
async fn a_failed_job_leaves_nothing_named() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    engine.fail(
        "api",
        "linux/arm64",
        BuildError::StepFailed {
            step: "RUN make".into(),
            exit_code: Some(2),
            log_tail: vec!["boom".into()],
        },
    );
    let requests = vec![
        request(dir.path(), "api", "linux/amd64", "unix:///a"),
        request(dir.path(), "api", "linux/arm64", "unix:///a"),
    ];
    let (result, events) = go(
        &engine,
        requests,
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].0.platform.to_string(), "linux/arm64");
    assert!(tags(&engine).is_empty(), "{:?}", engine.calls());
    // The amd64 image's temporary tag (and the failed job's, in case it was set) are removed.
    assert_eq!(untags(&engine).len(), 2);
    let failed = events.iter().find_map(|e| match e {
        BuildEvent::JobFailed { log_tail, .. } => Some(log_tail.clone()),
        _ => None,
    });
    assert_eq!(failed, Some(vec!["boom".to_string()]));
}

#[tokio::test]
async fn cancelling_returns_cancelled_and_names_nothing() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64").with_delay(Duration::from_secs(30));
    let requests = vec![
        request(dir.path(), "api", "linux/amd64", "unix:///a"),
        request(dir.path(), "api", "linux/arm64", "unix:///a"),
        request(dir.path(), "api", "linux/arm/v7", "unix:///a"),
    ];
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let (result, _) = go(&engine, requests, &BuildOptions::default(), cancel).await;
    assert_eq!(result.unwrap_err(), BuildError::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(tags(&engine).is_empty());
}

#[tokio::test]
async fn unchanged_jobs_reuse_their_image_until_the_daemon_loses_it() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    let options = BuildOptions {
        cache_dir: Some(dir.path().join(".archbuild/cache")),
        ..Default::default()
    };
    let requests = vec![request(dir.path(), "api", "linux/arm64", "unix:///a")];
    let builds = |engine: &FakeEngine| {
        engine
            .calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::Build { .. }))
            .count()
    };
    let first = go(
        &engine,
        requests.clone(),
        &options,
        CancellationToken::new(),
    )
    .await
    .0
    .unwrap();
    assert!(!first[0].reused);
    let second = go(
        &engine,
        requests.clone(),
        &options,
        CancellationToken::new(),
    )
    .await
    .0
    .unwrap();
    assert!(second[0].reused);
    assert_eq!(second[0].image_id, first[0].image_id);
    assert_eq!(builds(&engine), 1);

    engine.forget_image(&first[0].image_id);
    let third = go(
        &engine,
        requests.clone(),
        &options,
        CancellationToken::new(),
    )
    .await
    .0
    .unwrap();
    assert!(!third[0].reused);
    assert_eq!(builds(&engine), 2);

    let no_cache = BuildOptions {
        no_cache: true,
        ..options
    };
    go(&engine, requests, &no_cache, CancellationToken::new())
        .await
        .0
        .unwrap();
    assert_eq!(builds(&engine), 3);
}

#[test]
fn emulated_run_steps_are_flagged() {
    let dir = project();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM debian\nRUN apt-get update\n",
    )
    .unwrap();
    let req = request(dir.path(), "api", "linux/arm64", "unix:///a");
    let df = dockerfile::parse(&std::fs::read_to_string(&req.dockerfile).unwrap());
    let amd64 = Platform::parse("linux/amd64").unwrap();
    let finding = emulation_finding(&req, &df, &amd64).expect("flagged");
    assert_eq!(finding.kind, FindingKind::Emulated);
    assert!(
        finding.message.contains("under emulation"),
        "{}",
        finding.message
    );
    let arm64 = Platform::parse("linux/arm64").unwrap();
    assert!(emulation_finding(&req, &df, &arm64).is_none());
}

#[tokio::test]
async fn emulation_findings_ask_each_builder_for_its_platform() {
    let dir = project();
    std::fs::write(dir.path().join("Dockerfile"), "FROM debian\nRUN make\n").unwrap();
    let engine = FakeEngine::new("linux/amd64");
    let requests = vec![
        request(dir.path(), "api", "linux/amd64", "unix:///a"),
        request(dir.path(), "api", "linux/arm64", "unix:///a"),
    ];
    let findings = emulation_findings(&engine, &requests).await;
    assert_eq!(findings.len(), 1);
    assert_eq!(
        findings[0]
            .platform
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("linux/arm64")
    );
}

#[tokio::test]
async fn a_builder_that_is_down_hands_its_jobs_to_the_platforms_others() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    engine.take_down("ssh://amd2");
    let spread = |image: &str, own: &str, other: &str| {
        let mut job = request(dir.path(), image, "linux/amd64", own);
        job.alternates = vec![request(dir.path(), image, "linux/amd64", other).builder];
        job
    };
    let requests = vec![
        spread("a", "ssh://amd1", "ssh://amd2"),
        spread("b", "ssh://amd2", "ssh://amd1"),
    ];
    let (result, events) = go(
        &engine,
        requests,
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let built = result.unwrap();
    let on: Vec<&str> = built.iter().map(|b| b.endpoint_url.as_str()).collect();
    assert_eq!(on, vec!["ssh://amd1", "ssh://amd1"]);
    let builds_on_amd2 = engine
        .calls()
        .into_iter()
        .filter(|c| matches!(c, FakeCall::Build { endpoint, .. } if endpoint == "ssh://amd2"));
    assert_eq!(builds_on_amd2.count(), 0);
    let moved: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::JobMoved { job, from, to, .. } => {
                Some((job.image.as_str(), from.as_str(), to.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(moved, vec![("b", "ssh://amd2", "ssh://amd1")]);

    engine.take_down("ssh://amd1");
    let (result, _) = go(
        &engine,
        vec![spread("c", "ssh://amd1", "ssh://amd2")],
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let Err(BuildError::Failed(failed)) = result else {
        panic!("both builders are down: {result:?}");
    };
    assert!(
        failed[0].1.to_string().contains("ssh://amd1"),
        "{}",
        failed[0].1
    );
}

#[tokio::test(start_paused = true)]
async fn a_builder_cut_off_mid_build_fails_its_job_once_silent_past_the_limit() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    engine.cut_off_during_build("tcp://cut:2376");
    let requests = vec![
        request(dir.path(), "a", "linux/amd64", "tcp://cut:2376"),
        request(dir.path(), "b", "linux/amd64", "tcp://up:2376"),
    ];
    let started = tokio::time::Instant::now();
    // Without the watchdog the build would wait for ever; a minute says so instead.
    let options = BuildOptions::default();
    let run = go(&engine, requests, &options, CancellationToken::new());
    let (result, events) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the cut-off builder's job never ended");
    let waited = started.elapsed();
    let limit = watchdog::SILENT_FOR + watchdog::PING_EVERY + watchdog::PING_TIMEOUT;
    assert!(
        waited >= watchdog::SILENT_FOR && waited < limit,
        "{waited:?}"
    );
    let Err(BuildError::Failed(failed)) = result else {
        panic!("the cut-off job did not fail: {result:?}");
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (job, err) = &failed[0];
    assert_eq!(job.image, "a");
    let BuildError::BuilderLost { endpoint, step, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        (endpoint.as_str(), step.as_deref()),
        ("tcp://cut:2376", Some("[1/1] COPY . /"))
    );
    let text = err.to_string();
    assert!(
        text.contains("has not answered /_ping for 10 s") && text.contains("nothing was published"),
        "{text}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, BuildEvent::JobFailed { job, .. } if job.image == "a")));
    // Nothing is named; the other job's temporary tag is removed from its builder, and the
    // silent builder is asked nothing more.
    assert!(tags(&engine).is_empty(), "{:?}", tags(&engine));
    let untagged = untagged_on(&engine);
    assert_eq!(untagged, vec!["tcp://up:2376".to_string()]);
}

/// Job `a` on `own`, with `other` the platform's other builder.
fn spread(dir: &Path, image: &str, own: &str, other: &str) -> Job {
    let mut job = request(dir, image, "linux/amd64", own);
    job.alternates = vec![request(dir, image, "linux/amd64", other).builder];
    job
}

fn builds_on(engine: &FakeEngine) -> Vec<(String, String)> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Build {
                endpoint, image, ..
            } => Some((image, endpoint)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_builder_killed_mid_build_hands_its_job_to_the_platforms_other() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    engine.kill_during_build("ssh://amd1");
    let requests = vec![spread(dir.path(), "a", "ssh://amd1", "ssh://amd2")];
    let (result, events) = go(
        &engine,
        requests,
        &BuildOptions::default(),
        CancellationToken::new(),
    )
    .await;
    let built = result.unwrap();
    assert_eq!(built[0].endpoint_url, "ssh://amd2");
    assert_eq!(
        built[0].lost_builders,
        vec![LostBuilder {
            endpoint: "ssh://amd1".into(),
            step: Some("[1/1] COPY . /".into()),
            reason: "connection reset by peer".into(),
        }]
    );
    assert_eq!(
        builds_on(&engine),
        vec![
            ("a".to_string(), "ssh://amd1".to_string()),
            ("a".to_string(), "ssh://amd2".to_string()),
        ]
    );
    let moved: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::JobMoved {
                from,
                to,
                reason,
                restarted,
                ..
            } => Some((from.as_str(), to.as_str(), reason.as_str(), *restarted)),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        vec![(
            "ssh://amd1",
            "ssh://amd2",
            "went away during step `[1/1] COPY . /`: connection reset by peer",
            true
        )]
    );
    // The final names are given on the builder that built it.
    let tagged_on: Vec<String> = engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Tag { endpoint, .. } => Some(endpoint),
            _ => None,
        })
        .collect();
    assert!(!tagged_on.is_empty() && tagged_on.iter().all(|e| e == "ssh://amd2"));
}

#[tokio::test(start_paused = true)]
async fn a_builder_cut_off_mid_build_hands_its_jobs_to_the_platforms_other() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    engine.cut_off_during_build("tcp://amd1");
    // Two jobs on the builder that goes silent, one at a time: the second never starts there.
    let options = BuildOptions {
        jobs_per_endpoint: Some(1),
        ..BuildOptions::default()
    };
    let requests = vec![
        spread(dir.path(), "a", "tcp://amd1", "tcp://amd2"),
        spread(dir.path(), "b", "tcp://amd1", "tcp://amd2"),
    ];
    let run = go(&engine, requests, &options, CancellationToken::new());
    let (result, _) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the cut-off builder's jobs never ended");
    let built = result.unwrap();
    let on: Vec<&str> = built.iter().map(|b| b.endpoint_url.as_str()).collect();
    assert_eq!(on, vec!["tcp://amd2", "tcp://amd2"]);
    let builds_on_amd1 = builds_on(&engine)
        .into_iter()
        .filter(|(_, endpoint)| endpoint == "tcp://amd1")
        .count();
    assert_eq!(builds_on_amd1, 1, "{:?}", builds_on(&engine));
    let lost: Vec<usize> = built.iter().map(|b| b.lost_builders.len()).collect();
    assert_eq!(lost, vec![1, 1]);
}

#[tokio::test]
async fn a_job_finished_on_a_builder_lost_later_fails_and_is_not_cleaned_up_there() {
    let dir = project();
    let engine = FakeEngine::new("linux/amd64");
    // `a` finishes on amd1; `b` starts there after it and kills it.
    engine.kill_during_build_of("ssh://amd1", "b");
    let options = BuildOptions {
        jobs_per_endpoint: Some(1),
        ..BuildOptions::default()
    };
    let requests = vec![
        spread(dir.path(), "a", "ssh://amd1", "ssh://amd2"),
        spread(dir.path(), "b", "ssh://amd1", "ssh://amd2"),
    ];
    let (result, events) = go(&engine, requests, &options, CancellationToken::new()).await;
    let Err(BuildError::Failed(failed)) = result else {
        panic!("{result:?}");
    };
    let failed: Vec<(&str, String)> = failed
        .iter()
        .map(|(job, err)| (job.image.as_str(), err.to_string()))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "a");
    assert!(
        failed[0].1.contains("ssh://amd1") && failed[0].1.contains("had finished on it"),
        "{failed:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, BuildEvent::JobFailed { job, .. } if job.image == "a")));
    // `b` went on to amd2 and finished there; only its temporary tag there is removed.
    assert_eq!(
        builds_on(&engine).last(),
        Some(&("b".to_string(), "ssh://amd2".to_string()))
    );
    let untagged = untagged_on(&engine);
    assert_eq!(untagged, vec!["ssh://amd2".to_string()]);
}
