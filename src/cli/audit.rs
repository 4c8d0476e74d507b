//! `archbuild audit FILE... --platform LIST | --nodes FILE [--patches DIR] [--check-bases]`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::audit::{self, bases, documents, nodes, Audit, ImageSummary, StoreResolver};
use crate::cli::Context;
use crate::finding::{Finding, FindingKind, FindingsDocument, Outcome, Severity};
use crate::k8s::{self, Patch};
use crate::platform::{self, Platform};
use crate::registry::{RegistryOptions, StorePool};
use crate::store::StoreError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifests: YAML (multi-document) or JSON, `List`s included; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The cluster's node platforms, e.g. linux/amd64,linux/arm64.
    #[arg(long, value_name = "LIST", conflicts_with = "nodes")]
    pub platform: Option<String>,
    /// Take the platforms from `kubectl get nodes -o json` output.
    #[arg(long, value_name = "FILE")]
    pub nodes: Option<PathBuf>,
    /// Write the node-affinity (and arm64 toleration) patches into this folder.
    #[arg(long, value_name = "DIR")]
    pub patches: Option<PathBuf>,
    /// Also audit the FROM images of the project's Dockerfiles against its platforms.
    #[arg(long)]
    pub check_bases: bool,
    /// A registry host spoken to over plain HTTP (loopback ones always are).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Print one JSON document on standard output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args, ctx: &Context) -> anyhow::Result<Outcome> {
    if args.files.is_empty() && !args.check_bases {
        anyhow::bail!(
            "nothing to audit: give manifest FILEs (or - for standard input), or --check-bases"
        );
    }
    let cluster = cluster_platforms(&args)?;
    let docs = read_manifests(&args.files)?;
    let (workloads, mut findings) = audit::workloads(&docs).map_err(anyhow::Error::msg)?;
    let mut insecure = args.insecure_registries.clone();
    let bases = if args.check_bases {
        let (bases, skipped, project_insecure) = project_bases(ctx)?;
        findings.extend(skipped);
        insecure.extend(project_insecure);
        bases
    } else {
        Vec::new()
    };
    let opts = RegistryOptions {
        insecure_registries: insecure,
        docker_config: None,
    };
    // One client per registry host, shared by all its repositories: a new client per image
    // costs a connection and a token dance each (three quarters of an audit's time).
    let pool = std::sync::Mutex::new(StorePool::default());
    let resolver = StoreResolver::new(|image: &crate::reference::ImageRef| {
        let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
        Ok::<_, StoreError>(pool.store(image, &opts))
    });
    let mut audit = audit::run(&resolver, workloads, &bases, &cluster).await;
    findings.append(&mut audit.findings);
    audit.findings = findings;

    let written = match &args.patches {
        Some(dir) => write_patches(dir, &audit)?,
        None => Vec::new(),
    };
    if args.json {
        print_json(&audit, &cluster, args.patches.as_deref())?;
    } else {
        print_human(&audit, &cluster, args.patches.as_deref(), &written);
    }
    if !audit.errors.is_empty() {
        anyhow::bail!(
            "{} image(s) could not be checked:\n  {}",
            audit.errors.len(),
            audit.errors.join("\n  ")
        );
    }
    Ok(Outcome::of(&audit.findings))
}

fn cluster_platforms(args: &Args) -> anyhow::Result<Vec<Platform>> {
    match (&args.platform, &args.nodes) {
        (Some(list), _) => Ok(platform::parse_list(list).context("--platform")?),
        (None, Some(file)) => Ok(nodes::load(file)?),
        (None, None) => anyhow::bail!(
            "which platforms do the cluster's nodes have? give --platform LIST (e.g. linux/amd64,linux/arm64) or --nodes FILE (kubectl get nodes -o json > nodes.json)"
        ),
    }
}

/// Every file is read before anything is resolved; all unreadable files are named at once.
fn read_manifests(files: &[PathBuf]) -> anyhow::Result<Vec<documents::Document>> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match documents::load(file) {
            Ok(mut d) => docs.append(&mut d),
            Err(e) => problems.push(e.to_string()),
        }
    }
    match problems.len() {
        0 => Ok(docs),
        _ => anyhow::bail!("{}", problems.join("\n")),
    }
}

/// The FROM images of every image's Dockerfile in the project, each to cover that image's
/// platforms; unresolvable `FROM`s become warnings.
fn project_bases(
    ctx: &Context,
) -> anyhow::Result<(Vec<bases::BaseImage>, Vec<Finding>, Vec<String>)> {
    let project = crate::cli::project::load(ctx)?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for image in project.images.values() {
        let text = std::fs::read_to_string(&image.dockerfile)
            .with_context(|| format!("cannot read {}", image.dockerfile.display()))?;
        let shown = image
            .dockerfile
            .strip_prefix(&project.dir)
            .unwrap_or(&image.dockerfile);
        let (found, unresolved) = bases::parse(&text, shown);
        out.extend(found.into_iter().map(|mut b| {
            b.platforms = image.platforms.clone();
            b
        }));
        skipped.extend(unresolved.into_iter().map(|s| {
            Finding::warning(
                FindingKind::DockerfileArch,
                format!(
                    "{}:{}: {}; not audited",
                    s.dockerfile.display(),
                    s.line,
                    s.reason
                ),
            )
        }));
    }
    Ok((out, skipped, project.insecure_registries))
}

/// Writes each patch through a temporary file, so that none is ever half-written.
fn write_patches(dir: &Path, audit: &Audit) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for patch in audit
        .affinity_patches
        .iter()
        .chain(&audit.toleration_patches)
    {
        let name = Path::new(&patch.file_name);
        let plain = matches!(
            name.components().collect::<Vec<_>>().as_slice(),
            [std::path::Component::Normal(_)]
        );
        anyhow::ensure!(
            plain,
            "patch file name {:?} is not a plain file name; refusing to write outside {}",
            patch.file_name,
            dir.display()
        );
        let path = dir.join(name);
        crate::atomic_file::write(&path, patch.yaml.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[derive(Serialize)]
struct PatchEntry<'a> {
    workload: &'a str,
    /// `affinity` or `toleration`.
    purpose: &'static str,
    file: String,
    command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
}

#[derive(Serialize)]
struct Details<'a> {
    platforms: &'a [Platform],
    workloads: usize,
    images: &'a [ImageSummary],
    patches: Vec<PatchEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taint_command: Option<String>,
    errors: &'a [String],
}

fn patch_entries<'a>(audit: &'a Audit, dir: Option<&Path>) -> Vec<PatchEntry<'a>> {
    let entry = |purpose, p: &'a Patch| PatchEntry {
        workload: &p.workload,
        purpose,
        file: match dir {
            Some(d) => d.join(&p.file_name).display().to_string(),
            None => p.file_name.clone(),
        },
        command: p.command(dir),
        note: p.note.as_deref(),
    };
    let affinity = audit.affinity_patches.iter().map(|p| entry("affinity", p));
    let toleration = audit
        .toleration_patches
        .iter()
        .map(|p| entry("toleration", p));
    affinity.chain(toleration).collect()
}

fn print_json(audit: &Audit, cluster: &[Platform], dir: Option<&Path>) -> anyhow::Result<()> {
    let doc = FindingsDocument {
        findings: audit.findings.clone(),
        details: Details {
            platforms: cluster,
            workloads: audit.workloads.len(),
            images: &audit.images,
            patches: patch_entries(audit, dir),
            taint_command: (!audit.toleration_patches.is_empty()).then(k8s::taint_command),
            errors: &audit.errors,
        },
    };
    let text = serde_json::to_string_pretty(&doc)?;
    use std::io::Write as _;
    writeln!(std::io::stdout(), "{text}")?;
    Ok(())
}

fn print_human(audit: &Audit, cluster: &[Platform], dir: Option<&Path>, written: &[PathBuf]) {
    for f in &audit.findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "note",
        };
        println!(
            "{severity}[{}]: {}",
            f.kind.as_str(),
            crate::finding::for_terminal(&f.message)
        );
    }
    let entries = patch_entries(audit, dir);
    if !entries.is_empty() {
        match dir {
            Some(d) => println!("\n{} patch(es) written to {}:", written.len(), d.display()),
            None => println!("\nPatches (write them with --patches DIR):"),
        }
        for e in &entries {
            println!("  {}", e.command);
            if let Some(note) = e.note {
                println!("    ({note})");
            }
        }
    }
    if !audit.toleration_patches.is_empty() {
        println!(
            "\nFor the arm64 migration, taint the arm64 pool first: {}",
            k8s::taint_command()
        );
    }
    let errors = audit.findings.iter().filter(|f| f.is_error()).count();
    eprintln!(
        "audited {} workload(s), {} image(s) against {}: {errors} error(s)",
        audit.workloads.len(),
        audit.images.len(),
        crate::report::platform_list(cluster)
    );
}
