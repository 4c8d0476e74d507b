//! The harness itself, against the real parts: the Docker daemon answers, the registry
//! process serves the distribution API, and the cross-compiled programs are real ELF files
//! for their architectures.

mod support;

use support::*;

#[tokio::test]
async fn talks_to_the_real_docker_daemon() {
    let Some(docker) = docker().await else { return };
    let version = docker.version().await.expect("Docker::version");
    let api = version.api_version.expect("an API version");
    assert!(!api.is_empty());
    let info = docker.info().await.expect("Docker::info");
    assert!(info.architecture.is_some());
}

#[test]
fn runs_a_real_registry_and_survives_a_restart() {
    let Some(mut registry) = Registry::start() else {
        return;
    };
    assert_eq!(http_get(&registry.addr, "/v2/"), Some(200));
    assert_eq!(
        http_get(&registry.addr, "/v2/nothing/here/manifests/latest"),
        Some(404)
    );
    registry.stop();
    assert_eq!(http_get(&registry.addr, "/v2/"), None);
    registry.restart();
    assert_eq!(http_get(&registry.addr, "/v2/"), Some(200));
}

#[test]
fn cross_compiles_real_programs() {
    // e_machine is at offset 18, little-endian for these targets, big-endian for s390x.
    let cases: [(&str, u8, u16); 4] = [
        ("linux/amd64", 2, 62),
        ("linux/arm64", 2, 183),
        ("linux/arm/v7", 1, 40),
        ("linux/s390x", 2, 22),
    ];
    for (platform, class, machine) in cases {
        let program = static_program(platform, "hello");
        assert_eq!(&program[..4], b"\x7fELF", "{platform}");
        assert_eq!(program[4], class, "{platform} class");
        let raw = [program[18], program[19]];
        let got = if program[5] == 2 {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        };
        assert_eq!(got, machine, "{platform} e_machine");
    }
}

#[test]
fn the_amd64_program_runs_on_this_machine() {
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let project = Project::new();
    let path = project.write_exec("hello", static_program("linux/amd64", "hi \"there\""));
    let out = run_ok(&mut std::process::Command::new(path));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi \"there\"\n");
}
