use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::api::composition::Composition;

const COMPOSITION: &str = r#"
apiVersion: apiextensions.tessera.dev/v1
kind: Composition
metadata:
  name: shared-postgres
spec:
  compositeTypeRef:
    apiVersion: platform.example.org/v1alpha1
    kind: XPostgresDatabase
  resources:
  - name: role
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Role
      spec:
        forProvider:
          login: true
    patches:
    - fromFieldPath: spec.parameters.connectionLimit
      toFieldPath: spec.forProvider.connectionLimit
    - type: ToCompositeFieldPath
      fromFieldPath: status.atProvider.oid
      toFieldPath: status.roleOid
    connectionDetails:
    - fromConnectionSecretKey: username
    - fromConnectionSecretKey: password
    - name: endpoint
      fromFieldPath: status.atProvider.endpoint
    - name: port
      value: "5432"
    - name: url
      fmt: "postgres://{username}:{password}@{endpoint}:{port}/app"
  - name: database
    dependsOn: [role]
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Database
      metadata:
        labels:
          tier: data
    patches:
    - fromFieldPath: spec.parameters.size
      toFieldPath: spec.forProvider.tier
      transforms:
      - type: map
        map: {small: basic, large: premium}
    readinessChecks:
    - type: MatchString
      fieldPath: status.atProvider.state
      matchString: ready
"#;

fn composition() -> CompositionSpec {
    serde_yaml::from_str::<Composition>(COMPOSITION)
        .expect("composition parses")
        .spec
}

fn composite() -> Value {
    json!({
        "apiVersion": "platform.example.org/v1alpha1",
        "kind": "XPostgresDatabase",
        "metadata": {"name": "orders-1a2b3c4d", "uid": "uid-1"},
        "spec": {
            "parameters": {"size": "small", "connectionLimit": 10},
            "claimRef": {"apiVersion": "platform.example.org/v1alpha1", "kind": "PostgresDatabase",
                         "namespace": "shop", "name": "orders"},
        },
    })
}

fn owner() -> Value {
    json!({
        "apiVersion": "platform.example.org/v1alpha1",
        "kind": "XPostgresDatabase",
        "name": "orders-1a2b3c4d",
        "uid": "uid-1",
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

#[test]
fn render_produces_named_labelled_owned_resources() {
    let rendered = render(&composite(), &composition()).expect("renders");
    assert_eq!(rendered.len(), 2);
    assert_eq!(
        rendered[0],
        RenderedResource {
            template: "role".into(),
            object: json!({
                "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
                "kind": "Role",
                "metadata": {
                    "name": "orders-1a2b3c4d-role",
                    "annotations": {"tessera.dev/composition-resource-name": "role"},
                    "labels": {
                        "tessera.dev/composite": "orders-1a2b3c4d",
                        "tessera.dev/claim-name": "orders",
                        "tessera.dev/claim-namespace": "shop",
                    },
                    "ownerReferences": [owner()],
                },
                "spec": {"forProvider": {"login": true, "connectionLimit": 10}},
            }),
        }
    );
    assert_eq!(rendered[1].name(), "orders-1a2b3c4d-database");
    assert_eq!(
        rendered[1].object["metadata"]["labels"]["tier"], "data",
        "labels of the base are kept"
    );
    assert_eq!(rendered[1].object["spec"]["forProvider"]["tier"], "basic");
}

#[test]
fn render_cases() {
    struct Case {
        reason: &'static str,
        composite: Value,
        edit: fn(&mut CompositionSpec),
        check: fn(Result<Vec<RenderedResource>, ComposeError>),
    }
    let cases = [
        Case {
            reason: "a patch that sets metadata.name wins over the default name",
            composite: composite(),
            edit: |c| {
                c.resources[0].patches.push(
                    serde_json::from_value(json!({"fromFieldPath": "spec.claimRef.name", "toFieldPath": "metadata.name"}))
                        .expect("patch"),
                );
            },
            check: |r| assert_eq!(r.expect("renders")[0].name(), "orders"),
        },
        Case {
            reason: "without a uid (offline render) there is no owner reference",
            composite: {
                let mut c = composite();
                c["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("uid");
                c
            },
            edit: |_| {},
            check: |r| {
                let r = r.expect("renders");
                assert!(r[0].object["metadata"].get("ownerReferences").is_none());
            },
        },
        Case {
            reason: "without a claim there are no claim labels",
            composite: {
                let mut c = composite();
                c["spec"].as_object_mut().expect("spec").remove("claimRef");
                c
            },
            edit: |_| {},
            check: |r| {
                let labels = r.expect("renders")[0].object["metadata"]["labels"].clone();
                assert_eq!(labels, json!({"tessera.dev/composite": "orders-1a2b3c4d"}));
            },
        },
        Case {
            reason: "claim labels on the composite stand in for a missing claimRef",
            composite: {
                let mut c = composite();
                c["spec"].as_object_mut().expect("spec").remove("claimRef");
                c["metadata"]["labels"] =
                    json!({"tessera.dev/claim-name": "o", "tessera.dev/claim-namespace": "ns"});
                c
            },
            edit: |_| {},
            check: |r| {
                let labels = r.expect("renders")[0].object["metadata"]["labels"].clone();
                assert_eq!(labels["tessera.dev/claim-name"], "o");
                assert_eq!(labels["tessera.dev/claim-namespace"], "ns");
            },
        },
        Case {
            reason: "a controller reference in the base is replaced by the composite's",
            composite: composite(),
            edit: |c| {
                c.resources[0].base["metadata"] = json!({"ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u0"},
                    {"apiVersion": "v1", "kind": "Other", "name": "y", "uid": "u9", "controller": true},
                ]});
            },
            check: |r| {
                let refs = r.expect("renders")[0].object["metadata"]["ownerReferences"].clone();
                assert_eq!(
                    refs,
                    json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u0"}, owner()])
                );
            },
        },
        Case {
            reason: "a failing Required patch names the patch and the resource",
            composite: composite(),
            edit: |c| {
                c.resources[1].patches.push(
                    serde_json::from_value(json!({"fromFieldPath": "spec.parameters.region", "policy": {"fromFieldPath": "Required"}}))
                        .expect("patch"),
                );
            },
            check: |r| {
                assert_eq!(
                    r.unwrap_err().to_string(),
                    "patch 1 of resource 'database': field spec.parameters.region is required but missing"
                );
            },
        },
        Case {
            reason: "a base without kind is an error",
            composite: composite(),
            edit: |c| c.resources[0].base = json!({"apiVersion": "v1"}),
            check: |r| {
                assert_eq!(
                    r.unwrap_err().to_string(),
                    "resource 'role': base must be an object with apiVersion and kind"
                );
            },
        },
        Case {
            reason: "two resources rendering to one name is an error",
            composite: composite(),
            edit: |c| {
                for r in &mut c.resources {
                    r.base["metadata"] = json!({"name": "same"});
                }
            },
            check: |r| {
                assert_eq!(
                    r.unwrap_err().to_string(),
                    "resource 'database': renders to the name \"same\", as resource 'role' does; set metadata.name apart with a patch"
                );
            },
        },
        Case {
            reason: "an unknown dependency is an error",
            composite: composite(),
            edit: |c| c.resources[1].depends_on = vec!["schema".into()],
            check: |r| {
                assert_eq!(
                    r.unwrap_err().to_string(),
                    "resource 'database': dependsOn names 'schema', which is not a resource of this Composition"
                );
            },
        },
        Case {
            reason: "a composite without a name is an error",
            composite: json!({"apiVersion": "a/v1", "kind": "X", "metadata": {}}),
            edit: |_| {},
            check: |r| {
                assert_eq!(
                    r.unwrap_err().to_string(),
                    "composite resource: metadata.name is missing"
                );
            },
        },
    ];
    for case in cases {
        let mut comp = composition();
        (case.edit)(&mut comp);
        eprintln!("case: {}", case.reason);
        (case.check)(render(&case.composite, &comp));
    }
}

#[test]
fn composed_names_are_deterministic_and_short() {
    struct Case {
        reason: &'static str,
        composite: String,
        resource: &'static str,
        want: String,
    }
    let long = "a".repeat(60);
    let cases = [
        Case {
            reason: "short names are joined with a dash",
            composite: "orders-1a2b3c4d".into(),
            resource: "role",
            want: "orders-1a2b3c4d-role".into(),
        },
        Case {
            reason: "resource names are lower-cased and cleaned",
            composite: "orders".into(),
            resource: "DB_Role",
            want: "orders-db-role".into(),
        },
        Case {
            reason: "a name of exactly 63 characters is kept",
            composite: "a".repeat(58),
            resource: "role",
            want: format!("{}-role", "a".repeat(58)),
        },
        Case {
            reason: "longer names are cut to 54 characters plus a hash",
            composite: long.clone(),
            resource: "role",
            want: format!(
                "{}-{}",
                "a".repeat(54),
                &sha_hex(&format!("{long}-role"))[..8]
            ),
        },
    ];
    for case in cases {
        let got = composed_name(&case.composite, case.resource);
        assert_eq!(got, case.want, "{}", case.reason);
        assert!(got.len() <= 63, "{}", case.reason);
        assert_eq!(composed_name(&case.composite, case.resource), got, "stable");
    }
    assert_ne!(
        composed_name(&long, "role-a"),
        composed_name(&long, "role-b"),
        "shortened names of different resources differ"
    );
}

fn sha_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn spec_with(resources: Value) -> CompositionSpec {
    serde_json::from_value(json!({
        "compositeTypeRef": {"apiVersion": "a/v1", "kind": "X"},
        "resources": resources,
    }))
    .expect("spec parses")
}

#[test]
fn dependency_order_cases() {
    struct Case {
        reason: &'static str,
        resources: Value,
        want: Result<Vec<&'static str>, &'static str>,
    }
    let r = |name: &str, deps: &[&str]| json!({"name": name, "base": {}, "dependsOn": deps});
    let cases = [
        Case {
            reason: "no dependencies keeps the Composition's order",
            resources: json!([r("a", &[]), r("b", &[]), r("c", &[])]),
            want: Ok(vec!["a", "b", "c"]),
        },
        Case {
            reason: "a resource comes after what it depends on",
            resources: json!([
                r("grant", &["role", "db"]),
                r("db", &["role"]),
                r("role", &[])
            ]),
            want: Ok(vec!["role", "db", "grant"]),
        },
        Case {
            reason: "a cycle is an error naming the resources in it",
            resources: json!([r("a", &["b"]), r("b", &["a"]), r("c", &[])]),
            want: Err("resource 'a': dependsOn forms a cycle among 'a', 'b'"),
        },
        Case {
            reason: "depending on itself is an error",
            resources: json!([r("a", &["a"])]),
            want: Err("resource 'a': dependsOn names the resource itself"),
        },
        Case {
            reason: "repeated names are an error",
            resources: json!([r("a", &[]), r("a", &[])]),
            want: Err("resource 'a': name is used by more than one resource"),
        },
        Case {
            reason: "an empty name is an error",
            resources: json!([r("a", &[]), r("", &[])]),
            want: Err("resource '#1': name must not be empty"),
        },
    ];
    for case in cases {
        let spec = spec_with(case.resources);
        let got = dependency_order(&spec).map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn observe_folds_observed_resources_into_the_composite_state() {
    let comp = composition();
    let role = json!({"status": {
        "atProvider": {"oid": 16384, "endpoint": "pg.internal"},
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    let mut role_secret = ConnectionDetails::new();
    role_secret.insert("username", "orders");
    role_secret.insert("password", "s3cr3t");
    let db = json!({"status": {"atProvider": {"state": "creating"}}});
    let none = ConnectionDetails::new();

    // Only the role exists so far.
    let mut observed = BTreeMap::new();
    observed.insert(
        "role".to_string(),
        ObservedResource {
            object: &role,
            connection: &role_secret,
        },
    );
    let keys: Vec<String> = ["username", "password", "url", "port"]
        .map(String::from)
        .to_vec();
    let state = observe(&composite(), &comp, &observed, &keys).expect("observes");
    assert_eq!(
        state.composite["status"]["roleOid"], 16384,
        "ToCompositeFieldPath ran"
    );
    assert_eq!(
        state.composite["spec"],
        composite()["spec"],
        "spec untouched"
    );
    assert_eq!(
        state.connection.keys().collect::<Vec<_>>(),
        ["password", "port", "url", "username"],
        "endpoint is not in connectionSecretKeys"
    );
    assert_eq!(
        state.connection.get_str("url"),
        Some("postgres://orders:s3cr3t@pg.internal:5432/app")
    );
    assert_eq!(
        state.ready,
        BTreeMap::from([("database".into(), false), ("role".into(), true)])
    );
    assert!(!state.is_ready());
    assert_eq!(state.unready(), ["database"]);
    assert!(
        state.waiting_on(&comp.resources[1]).is_empty(),
        "database may be created: role is ready"
    );

    // Both exist; the database is not ready until its state matches.
    observed.insert(
        "database".to_string(),
        ObservedResource {
            object: &db,
            connection: &none,
        },
    );
    let state = observe(&composite(), &comp, &observed, &keys).expect("observes");
    assert!(!state.is_ready());
    let db_ready = json!({"status": {"atProvider": {"state": "ready"}}});
    observed.insert(
        "database".to_string(),
        ObservedResource {
            object: &db_ready,
            connection: &none,
        },
    );
    let state = observe(&composite(), &comp, &observed, &[]).expect("observes");
    assert!(state.is_ready());
    assert!(
        state.connection.get("endpoint").is_some(),
        "no keys listed keeps all keys"
    );
}

#[test]
fn waiting_on_lists_unready_dependencies() {
    let comp = composition();
    let observed = BTreeMap::new();
    let state = observe(&composite(), &comp, &observed, &[]).expect("observes");
    assert_eq!(state.waiting_on(&comp.resources[1]), ["role"]);
    assert!(state.waiting_on(&comp.resources[0]).is_empty());
    assert_eq!(
        state.composite,
        composite(),
        "nothing observed, nothing patched"
    );
}
