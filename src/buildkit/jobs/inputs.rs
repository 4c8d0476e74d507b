//! What a job's result depends on, found before it builds: the base images resolved once
//! per run, the labels and files of each context found once for all its jobs, and the
//! fingerprint the no-change reuse compares with what the previous build left in the cache.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use futures_util::future::join_all;

use super::super::fingerprint::{self, CacheEntry};
use super::super::{bases, labels, BuildError, BuildOptions, Job};
use crate::dockerfile::Dockerfile;

/// What every job on one context (and Dockerfile) shares, found once for all of them and off
/// the async threads: the OCI labels from its Git checkout (without the job's own) and, with
/// the no-change reuse on, the digest of its files (one walk of the context, most of a
/// no-change run's own time when each job walked it again).
#[derive(Clone)]
pub(super) struct ContextInputs {
    pub(super) labels: BTreeMap<String, String>,
    pub(super) files: Option<Result<String, BuildError>>,
}

/// The key of a request's [`ContextInputs`].
pub(super) fn context_key(request: &Job) -> (PathBuf, PathBuf) {
    (request.context.clone(), request.dockerfile.clone())
}

/// The [`ContextInputs`] of the requests by [`context_key`]; distinct contexts concurrently.
pub(super) async fn context_inputs(
    requests: &[Job],
    options: &BuildOptions,
) -> HashMap<(PathBuf, PathBuf), ContextInputs> {
    let walk = reuse_enabled(options);
    let mut keys: Vec<(PathBuf, PathBuf)> = requests.iter().map(context_key).collect();
    keys.sort();
    keys.dedup();
    let found = join_all(
        keys.iter()
            .cloned()
            .map(|(context, dockerfile)| async move {
                let inputs = tokio::task::spawn_blocking({
                    let (context, dockerfile) = (context.clone(), dockerfile.clone());
                    move || ContextInputs {
                        labels: labels::for_context(&context, &BTreeMap::new()),
                        files: walk.then(|| fingerprint::files(&context, &dockerfile)),
                    }
                })
                .await;
                inputs.unwrap_or_else(|e| ContextInputs {
                    labels: BTreeMap::new(),
                    files: Some(Err(BuildError::io(&context, std::io::Error::other(e)))),
                })
            }),
    )
    .await;
    keys.into_iter().zip(found).collect()
}

/// What the no-change reuse compares: the bases as resolved now, the fingerprint of every
/// input, and what the previous build of the job left in the cache.
pub(super) struct Inputs {
    pub(super) bases: Vec<bases::ResolvedBase>,
    pub(super) fingerprint: Option<String>,
    pub(super) previous: Option<CacheEntry>,
}

pub(super) fn reuse_enabled(options: &BuildOptions) -> bool {
    options.cache_dir.is_some() && !options.no_cache
}

/// Each job's base images, every distinct reference resolved once for the whole run (a
/// two-platform image on one base asks its registry once, not once per job); none when the
/// no-change reuse is off.
pub(super) async fn resolve_bases(
    requests: &[Job],
    dockerfiles: &[Dockerfile],
    options: &BuildOptions,
) -> Vec<Vec<bases::ResolvedBase>> {
    if !reuse_enabled(options) {
        return vec![Vec::new(); requests.len()];
    }
    let names: Vec<Vec<String>> = requests
        .iter()
        .zip(dockerfiles)
        .map(|(request, dockerfile)| bases::references(dockerfile, &request.build_args))
        .collect();
    let mut distinct: Vec<String> = names.iter().flatten().cloned().collect();
    distinct.sort();
    distinct.dedup();
    let resolved: HashMap<String, bases::ResolvedBase> =
        bases::resolve(&distinct, &options.registry)
            .await
            .into_iter()
            .map(|base| (base.reference.clone(), base))
            .collect();
    names
        .iter()
        .map(|job| job.iter().map(|name| resolved[name].clone()).collect())
        .collect()
}

pub(super) fn inputs(
    request: &Job,
    bases: Vec<bases::ResolvedBase>,
    labels: &BTreeMap<String, String>,
    files: Option<Result<String, BuildError>>,
    options: &BuildOptions,
) -> Result<Inputs, BuildError> {
    if !reuse_enabled(options) {
        return Ok(Inputs {
            bases: Vec::new(),
            fingerprint: None,
            previous: None,
        });
    }
    let fingerprint = match files {
        Some(files) => Some(fingerprint::compute_with(request, labels, &bases, &files?)),
        None => None,
    };
    let previous = options
        .cache_dir
        .as_deref()
        .and_then(|dir| fingerprint::load(dir, request));
    Ok(Inputs {
        bases,
        fingerprint,
        previous,
    })
}
