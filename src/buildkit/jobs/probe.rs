//! Asking every builder of a run for its native platform before anything is built, and
//! moving the jobs of a builder that does not answer to their platform's other builders.

use std::collections::HashMap;

use futures_util::future::join_all;

use crate::platform::Platform;

use super::super::events::{BuildEvent, JobLabel};
use super::super::{BuildEngine, BuildError, Job};

/// Each endpoint's answer, by URL.
pub type Answers = HashMap<String, Result<Platform, BuildError>>;

/// The native platform of every builder the jobs may use (their own and their alternates),
/// each asked once and all at the same time.
pub async fn native_platforms<E: BuildEngine>(engine: &E, requests: &[Job]) -> Answers {
    let mut endpoints: Vec<(&str, &str)> = Vec::new();
    for request in requests {
        for builder in std::iter::once(&request.builder).chain(&request.alternates) {
            if !endpoints.iter().any(|(e, _)| *e == builder.url) {
                endpoints.push((&builder.url, &builder.chosen_by));
            }
        }
    }
    let answers = join_all(endpoints.iter().map(|(endpoint, chosen_by)| async move {
        let answer = engine
            .native_platform(endpoint)
            .await
            .map_err(|err| match err {
                BuildError::Unreachable {
                    endpoint, reason, ..
                } => BuildError::Unreachable {
                    endpoint,
                    chosen_by: Some(chosen_by.to_string()),
                    reason,
                },
                other => other,
            });
        (endpoint.to_string(), answer)
    }))
    .await;
    answers.into_iter().collect()
}

/// The jobs with each one whose builder did not answer moved to the first of its alternates
/// that did ([`BuildEvent::JobMoved`] for each), and the jobs that have no builder left, with
/// their own builder's error.
pub fn failover(
    mut requests: Vec<Job>,
    answers: &Answers,
) -> (Vec<Job>, Vec<BuildEvent>, Vec<(JobLabel, BuildError)>) {
    let mut moves = Vec::new();
    let mut down = Vec::new();
    for (index, request) in requests.iter_mut().enumerate() {
        let Err(err) = &answers[&request.builder.url] else {
            continue;
        };
        let label = JobLabel::of(request, index);
        let Some(at) = request
            .alternates
            .iter()
            .position(|e| answers[&e.url].is_ok())
        else {
            down.push((label, err.clone()));
            continue;
        };
        let to = request.alternates.remove(at);
        let from = std::mem::replace(&mut request.builder, to);
        moves.push(BuildEvent::JobMoved {
            job: label,
            from: from.url.clone(),
            to: request.builder.url.clone(),
            reason: err.to_string(),
            restarted: false,
        });
        request.alternates.push(from);
    }
    (requests, moves, down)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint {
            url: url.into(),
            chosen_by: format!("test {url}"),
            tls: None,
        }
    }

    fn job(image: &str, builder: &str, alternates: &[&str]) -> Job {
        let mut job = super::super::tests::request(
            std::path::Path::new("/nowhere"),
            image,
            "linux/arm64",
            builder,
        );
        job.builder = endpoint(builder);
        job.alternates = alternates.iter().map(|u| endpoint(u)).collect();
        job
    }

    fn down(url: &str) -> Result<Platform, BuildError> {
        Err(BuildError::Unreachable {
            endpoint: url.into(),
            chosen_by: Some(format!("test {url}")),
            reason: "connection refused".into(),
        })
    }

    #[test]
    fn jobs_of_a_builder_that_is_down_go_to_the_next_that_answers() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let answers: Answers = [
            ("ssh://arm1".to_string(), down("ssh://arm1")),
            ("ssh://arm2".to_string(), down("ssh://arm2")),
            ("ssh://arm3".to_string(), Ok(arm64.clone())),
            ("ssh://lonely".to_string(), down("ssh://lonely")),
        ]
        .into_iter()
        .collect();
        let jobs = vec![
            job("a", "ssh://arm1", &["ssh://arm2", "ssh://arm3"]),
            job("b", "ssh://arm3", &["ssh://arm1", "ssh://arm2"]),
            job("c", "ssh://lonely", &[]),
        ];
        let (jobs, moves, failed) = failover(jobs, &answers);
        let builders: Vec<&str> = jobs.iter().map(|j| j.builder.url.as_str()).collect();
        assert_eq!(builders, vec!["ssh://arm3", "ssh://arm3", "ssh://lonely"]);
        assert_eq!(moves.len(), 1);
        let BuildEvent::JobMoved {
            job,
            from,
            to,
            reason,
            restarted: false,
        } = &moves[0]
        else {
            panic!("{moves:?}");
        };
        assert_eq!(
            (job.image.as_str(), from.as_str(), to.as_str()),
            ("a", "ssh://arm1", "ssh://arm3")
        );
        assert!(
            reason.contains("test ssh://arm1") && reason.contains("connection refused"),
            "{reason}"
        );
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.image, "c");
    }
}
