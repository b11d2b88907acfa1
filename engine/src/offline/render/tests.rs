use std::path::PathBuf;

use super::*;

fn repo() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

fn shipped(file: &str) -> PathBuf {
    repo().join("compositions/postgres").join(file)
}

fn text(file: &str) -> String {
    std::fs::read_to_string(shipped(file)).expect("shipped file reads")
}

/// A directory of its own for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str, files: &[(&str, String)]) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("tessera-render-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("scratch file");
        }
        Scratch(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(
    claim: &Path,
    composition: &Path,
    xrd: Option<&Path>,
    observed: Option<&Path>,
) -> Result<String, String> {
    render(&RenderInput {
        claim_or_xr: claim,
        composition,
        xrd,
        observed,
        composable: &ComposableResources::defaults(["postgresql.sql.tessera.dev"]),
    })
    .map_err(|e| e.to_string())
}

#[test]
fn observed_render_lists_secret_keys_but_never_their_values() {
    let observed = repo().join("tests/golden/render/observed");
    let out = run(
        &shipped("example-claim.yaml"),
        &shipped("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        Some(&observed),
    )
    .expect("renders");
    assert!(
        out.contains("# connection secret shop/orders-db; keys: database, host, password, port, url, username"),
        "{out}"
    );
    for secret in ["not-in-the-output-9f2c", "bm90LWluLXRoZS1vdXRwdXQtOWYyYw"] {
        assert!(!out.contains(secret), "a secret value leaked:\n{out}");
    }
    assert!(
        out.contains("message: 'Waiting for resources: database, grant'"),
        "{out}"
    );
    assert!(out.contains("# resources[2] 'grant': Grant orders-db-24ad43c52a215a6f-grant; not created yet: waits for database"), "{out}");
}

#[test]
fn composite_without_xrd_renders_with_the_only_composition_of_its_kind() {
    let xr = "apiVersion: platform.tessera.dev/v1alpha1\nkind: XPostgresDatabase\nmetadata:\n  name: reports\nspec:\n  connectionLimit: 5\n";
    let dir = Scratch::new("xr", &[("xr.yaml", xr.to_string())]);
    let out = run(
        &dir.join("xr.yaml"),
        &shipped("composition.yaml"),
        None,
        None,
    )
    .expect("renders");
    assert!(
        out.contains(
            "# note: no XRD given: rendered with the only Composition for XPostgresDatabase"
        ),
        "{out}"
    );
    assert!(
        out.contains("# resources[0] 'role': Role reports-role"),
        "{out}"
    );
    assert!(out.contains("connectionLimit: 5"), "{out}");
    assert!(
        !out.contains("claimRef"),
        "a composite of its own has no claim:\n{out}"
    );
}

#[test]
fn claim_without_its_xrd_is_refused() {
    let err = run(
        &shipped("example-claim.yaml"),
        &shipped("composition.yaml"),
        None,
        None,
    )
    .unwrap_err();
    let file = shipped("example-claim.yaml").display().to_string();
    assert_eq!(
        err,
        format!(
            "{file}:4: PostgresDatabase/shop/orders-db: no XRD among the files defines PostgresDatabase in platform.tessera.dev; pass the XRD with --xrd"
        )
    );
}

#[test]
fn claim_that_the_api_server_would_refuse_is_not_rendered() {
    let claim = text("example-claim.yaml").replace("connectionLimit: 20", "connectionLimit: many");
    let dir = Scratch::new("invalid", &[("claim.yaml", claim)]);
    let err = run(
        &dir.join("claim.yaml"),
        &shipped("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        None,
    )
    .unwrap_err();
    assert!(
        err.ends_with("claim.yaml:4: PostgresDatabase/shop/orders-db: spec.connectionLimit: must be an integer, not a string"),
        "{err}"
    );
}

#[test]
fn composition_the_controller_would_not_select_is_used_with_a_note() {
    let claim = text("example-claim.yaml").replace(
        "spec:\n",
        "spec:\n  compositionRef:\n    name: postgres-dedicated\n",
    );
    let dir = Scratch::new("selection", &[("claim.yaml", claim)]);
    let out = run(
        &dir.join("claim.yaml"),
        &shipped("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        None,
    )
    .expect("renders");
    assert!(
        out.contains("# note: the controller would not select this Composition (Composition \"postgres-dedicated\" does not exist)"),
        "{out}"
    );
    assert!(
        out.contains("compositionRef:\n    name: postgres-shared"),
        "{out}"
    );
}

#[test]
fn composing_errors_name_the_composition_file_and_the_patch() {
    let composition = text("composition.yaml").replace(
        "    - fromFieldPath: spec.connectionLimit\n      toFieldPath: spec.forProvider.connectionLimit\n",
        "    - fromFieldPath: spec.connectionLimit\n      toFieldPath: spec.forProvider.connectionLimit\n      policy:\n        fromFieldPath: Required\n",
    );
    let claim = text("example-claim.yaml").replace("  connectionLimit: 20\n", "");
    let dir = Scratch::new(
        "required",
        &[("composition.yaml", composition), ("claim.yaml", claim)],
    );
    let err = run(
        &dir.join("claim.yaml"),
        &dir.join("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        None,
    )
    .unwrap_err();
    assert!(
        err.ends_with("composition.yaml:6: Composition/postgres-shared: patch 3 of resource 'database': field spec.connectionLimit is required but missing"),
        "{err}"
    );
}

#[test]
fn observed_objects_that_belong_to_nothing_are_noted_and_ignored() {
    let stray = "apiVersion: postgresql.sql.tessera.dev/v1alpha1\nkind: Role\nmetadata:\n  name: someone-else\n";
    let dir = Scratch::new("stray", &[("stray.yaml", stray.to_string())]);
    let out = run(
        &shipped("example-claim.yaml"),
        &shipped("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        Some(&dir.0),
    )
    .expect("renders");
    assert!(
        out.contains(
            "stray.yaml:1: Role/someone-else is not a resource of this composite; ignored"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "'role': Role orders-db-24ad43c52a215a6f-role; not observed: the controller creates it now"
        ),
        "{out}"
    );
    assert!(
        out.contains("# connection secret shop/orders-db; keys: none"),
        "{out}"
    );
}

#[test]
fn a_composition_rendering_a_refused_kind_fails_with_the_controllers_message() {
    let composition = text("composition.yaml")
        .replace("kind: Grant", "kind: ClusterRoleBinding")
        .replace(
            "apiVersion: postgresql.sql.tessera.dev/v1alpha1\n      kind: ClusterRoleBinding",
            "apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRoleBinding",
        );
    assert!(
        composition.contains("rbac.authorization.k8s.io/v1"),
        "the shipped composition's grant became a ClusterRoleBinding"
    );
    let dir = Scratch::new("refused", &[("composition.yaml", composition)]);
    let err = run(
        &shipped("example-claim.yaml"),
        &dir.join("composition.yaml"),
        Some(&shipped("xrd.yaml")),
        None,
    )
    .expect_err("refused");
    assert!(
        err.contains(
            "resource 'grant' (rbac.authorization.k8s.io/v1 ClusterRoleBinding) is not in the \
             controller's composable resources (postgresql.sql.tessera.dev, core/Secret, \
             core/ConfigMap); nothing of this composite is applied"
        ),
        "{err}"
    );
    let allowed = render(&RenderInput {
        claim_or_xr: &shipped("example-claim.yaml"),
        composition: &dir.join("composition.yaml"),
        xrd: Some(&shipped("xrd.yaml")),
        observed: None,
        composable: &ComposableResources::any(),
    });
    assert!(allowed.is_ok(), "rendered with `*`: {allowed:?}");
}
