//! Tests of the `tessera` binary's offline commands: `render` output against the golden
//! files in `tests/golden/render/`, and the exit codes and output format of `render` and
//! `validate`.
//!
//! When `render`'s output changes on purpose, regenerate the golden files with
//! `UPDATE_GOLDEN=1 cargo test -p tessera --test cli` and review the diff.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The checkout the test runs in (cargo sets the variable when it runs a test); the
/// build-time path only when run by hand, since a cached build may come from another
/// checkout.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Runs `tessera ARGS` in the repository's root.
fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the tessera binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Compares `actual` with the golden file `name`, or rewrites it with `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, actual: &str) {
    let path: PathBuf = repo().join("tests/golden/render").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("golden file writes");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return;
    }
    let first_difference = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "`tessera render` output differs from {} at line {}:\n  golden: {:?}\n  actual: {:?}\n\
         If the change is intended, run `UPDATE_GOLDEN=1 cargo test -p tessera --test cli` \
         and review the diff.\n--- actual output ---\n{actual}",
        path.display(),
        first_difference + 1,
        expected
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of file>"),
        actual
            .lines()
            .nth(first_difference)
            .unwrap_or("<end of output>"),
    );
}

const CLAIM: &str = "compositions/postgres/example-claim.yaml";
const COMPOSITION: &str = "compositions/postgres/composition.yaml";
const XRD: &str = "compositions/postgres/xrd.yaml";

#[test]
fn render_of_the_example_claim_matches_the_golden_file() {
    let out = tessera(&["render", CLAIM, COMPOSITION, "--xrd", XRD]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_golden("claim.yaml", &stdout(&out));
}

#[test]
fn render_with_observed_resources_matches_the_golden_file_and_hides_secret_values() {
    let observed = "tests/golden/render/observed";
    let out = tessera(&[
        "render",
        CLAIM,
        COMPOSITION,
        "--xrd",
        XRD,
        "--observed",
        observed,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("not-in-the-output-9f2c"),
        "a secret value leaked"
    );
    assert_golden("claim-observed.yaml", &text);
}

#[test]
fn render_output_is_a_yaml_stream_of_the_composite_and_its_resources() {
    let out = tessera(&["render", CLAIM, COMPOSITION, "--xrd", XRD]);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&stdout(&out))
        .map(|d| serde::Deserialize::deserialize(d).expect("each document parses"))
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["XPostgresDatabase", "Role", "Database", "Grant"]);
}

#[test]
fn render_of_a_claim_without_its_xrd_fails_with_file_resource_message() {
    let out = tessera(&["render", CLAIM, COMPOSITION]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "{CLAIM}:4: PostgresDatabase/shop/orders-db: no XRD among the files defines PostgresDatabase in platform.tessera.dev; pass the XRD with --xrd\n"
        )
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn validate_accepts_the_shipped_compositions_and_the_generated_crds() {
    let out = tessera(&["validate", "compositions", "crds"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "37 objects in 35 files: no problems\n");
}

#[test]
fn validate_reports_each_problem_as_a_line_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("tessera-cli-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let composition = std::fs::read_to_string(repo().join(COMPOSITION))
        .expect("composition reads")
        .replace(
            "toFieldPath: spec.forProvider.owner",
            "toFieldPath: spec.forProvider.ownr",
        );
    let broken = dir.join("composition.yaml");
    std::fs::write(&broken, composition).expect("scratch file");
    let broken_arg = broken.display().to_string();
    let out = tessera(&["validate", XRD, &broken_arg]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{broken_arg}:6: Composition/postgres-shared resources[1] 'database' patch 2: toFieldPath spec.forProvider.ownr is not in the schema of Database; did you mean spec.forProvider.owner?\n\
             2 objects in 2 files: 1 error\n"
        )
    );
}

#[test]
fn validate_of_a_missing_path_fails() {
    let out = tessera(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("no/such/dir: cannot read: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn validate_reports_composition_resources_outside_the_composable_resources() {
    let out = tessera(&[
        "validate",
        "--composable-resources",
        "postgresql.sql.tessera.dev/Role, postgresql.sql.tessera.dev/Database, core/Secret",
        XRD,
        COMPOSITION,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "{COMPOSITION}:6: Composition/postgres-shared resources[2] 'grant' base: postgresql.sql.tessera.dev/v1alpha1 Grant is not in the controller's composable resources (postgresql.sql.tessera.dev/Role, postgresql.sql.tessera.dev/Database, core/Secret): a composite using this Composition gets none of its resources applied (tessera controller --composable-resources; give tessera validate the same list)\n\
             2 objects in 2 files: 1 error\n"
        )
    );
    let render = tessera(&[
        "render",
        "--composable-resources",
        "postgresql.sql.tessera.dev/Role, postgresql.sql.tessera.dev/Database",
        CLAIM,
        COMPOSITION,
        "--xrd",
        XRD,
    ]);
    assert_eq!(render.status.code(), Some(1), "{}", stdout(&render));
    assert!(
        stderr(&render).contains(
            "resource 'grant' (postgresql.sql.tessera.dev/v1alpha1 Grant) is not in the controller's composable resources"
        ),
        "{}",
        stderr(&render)
    );
}

#[test]
fn a_composable_resources_entry_with_a_version_is_refused_before_anything_runs() {
    let out = tessera(&[
        "controller",
        "--composable-resources",
        "default,apps/v1/Deployment",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "\"apps/v1/Deployment\": write GROUP/KIND without the version, e.g. apps/Deployment or core/Secret"
        ),
        "{}",
        stderr(&out)
    );
}
