use std::path::PathBuf;

use serde_json::Value;

use super::*;
use crate::offline::documents::{parse_documents, read_paths};

fn repo() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

/// The providers' CRDs as committed in `crds/` (a test of the binary proves they are
/// what `tessera crds` renders).
fn provider_crds() -> Vec<Value> {
    let (docs, _, problems) = read_paths(&[repo().join("crds")]);
    assert!(problems.is_empty(), "{problems:?}");
    docs.into_iter().map(|d| d.object).collect()
}

fn shipped(file: &str) -> String {
    let path = repo().join("compositions/postgres").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Validates the named texts (file name, YAML) and returns the errors and warnings.
fn check(files: &[(&str, String)]) -> (Vec<String>, Vec<String>) {
    let mut docs = Vec::new();
    for (name, text) in files {
        docs.extend(parse_documents(name, text).expect("test YAML parses"));
    }
    let report = validate(&docs, &provider_crds());
    let (errors, warnings): (Vec<_>, Vec<_>) = report.problems.iter().partition(|p| p.is_error());
    let show = |ps: Vec<&Problem>| ps.iter().map(ToString::to_string).collect();
    (show(errors), show(warnings))
}

fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "test fixture lacks {from:?}");
    text.replacen(from, to, 1)
}

#[test]
fn shipped_compositions_validate_without_problems() {
    let (docs, files, problems) = read_paths(&[repo().join("compositions")]);
    assert!(problems.is_empty(), "{problems:?}");
    let report = validate(&docs, &provider_crds());
    let all: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(all.is_empty(), "{all:#?}");
    assert_eq!(report.skipped, 0, "every shipped object has a schema");
    assert!(
        report.summary(files).ends_with("no problems"),
        "{}",
        report.summary(files)
    );
}

#[test]
fn broken_compositions_and_claims_are_reported_as_file_resource_message() {
    let composition = shipped("composition.yaml");
    let claim = shipped("example-claim.yaml");
    let comp = "composition.yaml:6: Composition/postgres-shared";
    // (reason, file, its text, expected errors)
    let cases: Vec<(&str, &str, String, Vec<String>)> = vec![
        (
            "a toFieldPath the composed kind does not have",
            "composition.yaml",
            replaced(&composition, "toFieldPath: spec.forProvider.owner", "toFieldPath: spec.forProvider.ownr"),
            vec![format!(
                "{comp} resources[1] 'database' patch 2: toFieldPath spec.forProvider.ownr is not in the schema of Database; did you mean spec.forProvider.owner?"
            )],
        ),
        (
            "a fromFieldPath the XRD's schema does not have",
            "composition.yaml",
            replaced(&composition, "fromFieldPath: spec.connectionLimit", "fromFieldPath: spec.connectionLimits"),
            vec![format!(
                "{comp} resources[1] 'database' patch 3: fromFieldPath spec.connectionLimits is not in the schema of XPostgresDatabase; did you mean spec.connectionLimit?"
            )],
        ),
        (
            "a ToCompositeFieldPath into a status field the XRD does not declare",
            "composition.yaml",
            replaced(&composition, "toFieldPath: status.databaseName", "toFieldPath: status.database.name"),
            vec![format!(
                "{comp} resources[1] 'database' patch 4: toFieldPath status.database.name is not in the schema of XPostgresDatabase (it has no status.database); did you mean status.databaseName?"
            )],
        ),
        (
            "a string written into an integer field",
            "composition.yaml",
            replaced(&composition, "toFieldPath: spec.forProvider.owner", "toFieldPath: spec.forProvider.connectionLimit"),
            vec![format!(
                "{comp} resources[1] 'database' patch 2: toFieldPath spec.forProvider.connectionLimit: the patch writes a string where the schema wants an integer; add a convert transform with toType int64"
            )],
        ),
        (
            "a map transform that misses a value of the source's enum",
            "composition.yaml",
            replaced(
                &composition,
                "      toFieldPath: spec.deletionPolicy\n",
                "      toFieldPath: spec.deletionPolicy\n      transforms:\n      - type: map\n        map: {Delete: Delete}\n",
            ),
            ["role", "database", "grant"]
                .iter()
                .enumerate()
                .map(|(i, r)| format!(
                    "{comp} resources[{i}] '{r}' patch 0 (patch set 'common', patch 0): transform 0 (map): input is not a key of the map, for the known input value \"Orphan\""
                ))
                .collect(),
        ),
        (
            "a base of a kind nobody defines",
            "composition.yaml",
            replaced(&composition, "kind: Grant", "kind: Grnt"),
            vec![format!(
                "{comp} resources[2] 'grant' base: unknown kind Grnt in postgresql.sql.tessera.dev/v1alpha1: no CRD or XRD among the checked files defines it"
            )],
        ),
        (
            "a required field that neither the base nor a patch sets",
            "composition.yaml",
            replaced(&composition, "      toFieldPath: spec.forProvider.role\n", "      toFieldPath: spec.forProvider.roleName\n"),
            vec![
                format!("{comp} resources[2] 'grant' patch 1: toFieldPath spec.forProvider.roleName is not in the schema of Grant; did you mean spec.forProvider.role?"),
                format!("{comp} resources[2] 'grant': spec.forProvider.role is required, but neither the base nor a patch sets it"),
            ],
        ),
        (
            "a Format connection detail naming a key not gathered before it",
            "composition.yaml",
            replaced(&composition, "/{database}", "/{db}"),
            vec![format!(
                "{comp} resources[0] 'role' connectionDetails[5]: fmt names {{db}}, which no earlier connection detail of this resource provides (it has: host, port, username, password, database)"
            )],
        ),
        (
            "a misspelt field of the Composition itself",
            "composition.yaml",
            replaced(&composition, "toFieldPath: spec.forProvider.owner", "toFieldpath: spec.forProvider.owner"),
            vec![format!(
                "{comp}: spec.resources[1].patches[2].toFieldpath: unknown field; did you mean toFieldPath?"
            )],
        ),
        (
            "a claim without a required field, with a wrong type and an unknown field",
            "claim.yaml",
            replaced(
                &claim,
                "  connectionLimit: 20\n  writeConnectionSecretToRef:\n    name: orders-db\n",
                "  connectionLimit: \"20\"\n  sizeGb: 5\n  writeConnectionSecretToRef: {}\n",
            ),
            vec![
                "claim.yaml:4: PostgresDatabase/shop/orders-db: spec.connectionLimit: must be an integer, not a string".to_string(),
                "claim.yaml:4: PostgresDatabase/shop/orders-db: spec.sizeGb: unknown field".to_string(),
                "claim.yaml:4: PostgresDatabase/shop/orders-db: spec.writeConnectionSecretToRef.name is required but missing".to_string(),
            ],
        ),
        (
            "a claim value outside the XRD's enum and bounds",
            "claim.yaml",
            replaced(&claim, "  connectionLimit: 20\n", "  connectionLimit: -5\n  deletionPolicy: Keep\n"),
            vec![
                "claim.yaml:4: PostgresDatabase/shop/orders-db: spec.connectionLimit: must be at least -1, not -5".to_string(),
                "claim.yaml:4: PostgresDatabase/shop/orders-db: spec.deletionPolicy: must be one of \"Delete\", \"Orphan\", not \"Keep\"".to_string(),
            ],
        ),
        (
            "a claim of a kind the XRD does not define",
            "claim.yaml",
            replaced(&claim, "kind: PostgresDatabase", "kind: PostgresDB"),
            vec!["claim.yaml:4: PostgresDB/shop/orders-db: unknown kind PostgresDB in platform.tessera.dev/v1alpha1: no CRD or XRD among the checked files defines it".to_string()],
        ),
    ];
    for (reason, file, text, expected) in cases {
        let (errors, _) = check(&[("xrd.yaml", shipped("xrd.yaml")), (file, text)]);
        assert_eq!(errors, expected, "{reason}");
    }
}

#[test]
fn composition_without_its_xrd_names_the_unknown_composite_kind() {
    let (errors, _) = check(&[("composition.yaml", shipped("composition.yaml"))]);
    assert_eq!(
        errors,
        [
            "composition.yaml:6: Composition/postgres-shared spec.compositeTypeRef: unknown kind XPostgresDatabase in platform.tessera.dev/v1alpha1: no CRD or XRD among the checked files defines it"
        ]
    );
}

#[test]
fn keys_outside_the_xrd_list_and_keys_nobody_provides_are_warnings() {
    let composition = replaced(
        &shipped("composition.yaml"),
        "- name: url\n",
        "- name: uri\n",
    );
    let (errors, warnings) = check(&[
        ("xrd.yaml", shipped("xrd.yaml")),
        ("composition.yaml", composition),
    ]);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        warnings,
        [
            "composition.yaml:6: Composition/postgres-shared resources[0] 'role' connectionDetails[5]: warning: 'uri' is not among the XRD's connectionSecretKeys, so it never reaches the connection secret",
            "composition.yaml:6: Composition/postgres-shared spec.resources: warning: no resource provides the connection secret key 'url' that the XRD lists",
        ]
    );
}

#[test]
fn broken_xrds_are_reported_and_kinds_of_other_groups_are_skipped() {
    let xrd = replaced(
        &shipped("xrd.yaml"),
        "name: xpostgresdatabases.platform.tessera.dev",
        "name: postgres.platform.tessera.dev",
    );
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n".to_string();
    let mut docs = parse_documents("xrd.yaml", &xrd).expect("parses");
    docs.extend(parse_documents("secret.yaml", &secret).expect("parses"));
    let report = validate(&docs, &provider_crds());
    let errors: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("xrd.yaml:5: CompositeResourceDefinition/postgres.platform.tessera.dev: metadata.name must be xpostgresdatabases.platform.tessera.dev"),
        "{}",
        errors[0]
    );
    assert_eq!(report.skipped, 1);
    assert_eq!(
        report.summary(2),
        "2 objects in 2 files: 1 error (1 of kinds without a schema not checked)"
    );
}

#[test]
fn composition_resources_of_refused_kinds_are_reported_against_the_given_list() {
    let pg = ComposableResources::defaults(["postgresql.sql.tessera.dev"]);
    let shipped_providers = ComposableResources::defaults([
        "postgresql.sql.tessera.dev",
        "vault.tessera.dev",
        "rds.aws.tessera.dev",
        "harbor.tessera.dev",
    ]);
    let (docs, _, problems) = read_paths(&[repo().join("compositions")]);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        not_composable(&docs, &shipped_providers).is_empty(),
        "the shipped compositions compose only PostgreSQL, Vault, RDS and Harbor kinds"
    );
    let (shared, _, _) = read_paths(&[repo().join("compositions/postgres/composition.yaml")]);
    assert!(
        not_composable(&shared, &pg).is_empty(),
        "postgres-shared composes only PostgreSQL kinds"
    );
    let composition = replaced(
        &shipped("composition.yaml"),
        "apiVersion: postgresql.sql.tessera.dev/v1alpha1\n      kind: Grant",
        "apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRoleBinding",
    );
    let docs = parse_documents("composition.yaml", &composition).expect("parses");
    let got: Vec<String> = not_composable(&docs, &pg)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "composition.yaml:6: Composition/postgres-shared resources[2] 'grant' base: \
          rbac.authorization.k8s.io/v1 ClusterRoleBinding is not in the controller's composable \
          resources (postgresql.sql.tessera.dev, core/Secret, core/ConfigMap): a composite using \
          this Composition gets none of its resources applied (tessera controller \
          --composable-resources; give tessera validate the same list)"
        ]
    );
    let allowing = ComposableResources::parse(
        "default,rbac.authorization.k8s.io/ClusterRoleBinding",
        ["postgresql.sql.tessera.dev"],
    )
    .expect("list");
    assert!(
        not_composable(&docs, &allowing).is_empty(),
        "listed kinds pass"
    );
}
