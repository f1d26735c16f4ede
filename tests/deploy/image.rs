//! The Dockerfile: hadolint-clean, and it carries every deployed binary.

use std::process::Command;

use crate::support;

#[test]
fn hadolint_passes() {
    let hadolint = support::tool("OF_TEST_HADOLINT");
    let out = support::run(Command::new(hadolint).arg("--no-color").arg(support::root().join("Dockerfile")));
    assert!(out.status.success(), "hadolint:\n{}{}", support::text(&out.stdout), support::text(&out.stderr));
}

#[test]
fn the_image_builds_every_deployed_binary_and_not_the_others() {
    // The Dockerfile builds the workspace's bins but excludes the packages
    // of the binaries that are not deployed (by package name, which cargo
    // wants for --exclude): the two lists must agree.
    let dockerfile = std::fs::read_to_string(support::root().join("Dockerfile")).expect("Dockerfile");
    let build = dockerfile.lines().find(|l| l.contains("cargo build")).expect("a cargo build line");
    assert!(build.contains("--workspace") && build.contains("--bins"), "{build}");
    for binary in support::NOT_DEPLOYED {
        let package = support::package_of(binary);
        assert!(build.contains(&format!("--exclude {package}")), "the image would carry `{binary}`: {build}");
    }
}
