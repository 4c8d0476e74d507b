//! `archbuild plan [IMAGE...] [--json]`: the images × platforms matrix, each job's builder
//! (and the setting that chose it) and the tags it ends up under. Builds nothing.

use std::io::Write;

use crate::cli::{project, Context};
use crate::endpoint::EndpointEnv;
use crate::finding::Outcome;
use crate::plan::{self, Plan};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these images (the NAME of [images.NAME]); all when none are given.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Print the plan as one JSON document.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    let project = project::load(ctx)?;
    let plan = plan::expand(&project, &EndpointEnv::from_process(), &args.images)?;
    let text = if args.json {
        serde_json::to_string_pretty(&plan)? + "\n"
    } else {
        table(&plan)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(Outcome::Pass)
}

/// The plan as an aligned table: IMAGE, PLATFORM, BUILDER (chosen by), TAGS.
pub fn table(plan: &Plan) -> String {
    let header = ["IMAGE", "PLATFORM", "BUILDER (chosen by)", "TAGS"].map(String::from);
    let mut rows = vec![header];
    for job in &plan.jobs {
        rows.push([
            job.image.clone(),
            job.platform.to_string(),
            builder_cell(job),
            crate::reference::list(&job.references),
        ]);
    }
    // Names come from the project file and registries: escaped for a terminal.
    crate::finding::for_terminal(&crate::cli::table::render(&rows)).into_owned()
}

/// `URL (chosen by)`, and the builders that take the job when that one is down.
fn builder_cell(job: &crate::plan::Job) -> String {
    let mut cell = format!("{} ({}", job.builder.url, job.builder.chosen_by);
    if !job.alternates.is_empty() {
        let others: Vec<&str> = job.alternates.iter().map(|e| e.url.as_str()).collect();
        cell.push_str(&format!("; if it is down: {}", others.join(", ")));
    }
    cell + ")"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::plan::Job;
    use crate::platform::Platform;

    #[test]
    fn table_aligns_columns() {
        let job = Job {
            image: "api".into(),
            platform: Platform::parse("linux/arm/v7").unwrap(),
            builder: Endpoint {
                url: "ssh://ci@arm".into(),
                chosen_by: "DOCKER_HOST".into(),
                tls: None,
            },
            context: "/p".into(),
            dockerfile: "/p/Dockerfile".into(),
            target: None,
            build_args: Default::default(),
            labels: Default::default(),
            references: vec![
                "acme/api:1".parse().unwrap(),
                "acme/api:latest".parse().unwrap(),
            ],
            alternates: Vec::new(),
            platform_tag: crate::reference::ImageRef::local(
                "archbuild-local/api",
                "1-linux-arm-v7",
            ),
        };
        assert_eq!(
            table(&Plan { jobs: vec![job] }),
            "IMAGE  PLATFORM      BUILDER (chosen by)         TAGS\n\
             api    linux/arm/v7  ssh://ci@arm (DOCKER_HOST)  acme/api:1, acme/api:latest\n"
        );
    }
}
