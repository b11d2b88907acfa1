//! A composite and its Composition shared by the table tests of the plan and the machine:
//! `role`, then `database` (dependsOn role), then `grant` (dependsOn role and database).

use serde_json::{Value, json};

use super::select::ResourceRef;
use crate::api::composition::{Composition, CompositionSpec};
use crate::compose::{ANNOTATION_COMPOSITION_RESOURCE_NAME, render};
use crate::objects::ObjectKey;

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
        writeConnectionSecretToRef:
          name: orders-role
          namespace: tessera-system
    patches:
    - fromFieldPath: spec.parameters.connectionLimit
      toFieldPath: spec.forProvider.connectionLimit
    - type: ToCompositeFieldPath
      fromFieldPath: status.atProvider.oid
      toFieldPath: status.roleOid
    connectionDetails:
    - fromConnectionSecretKey: username
    - fromConnectionSecretKey: password
    - name: port
      value: "5432"
    - name: url
      fmt: "postgres://{username}:{password}@db:{port}/app"
  - name: database
    dependsOn: [role]
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Database
      spec:
        forProvider:
          encoding: UTF8
    readinessChecks:
    - type: MatchString
      fieldPath: status.atProvider.state
      matchString: ready
  - name: grant
    dependsOn: [role, database]
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Grant
"#;

/// The Composition's spec.
pub fn composition() -> CompositionSpec {
    serde_yaml::from_str::<Composition>(COMPOSITION)
        .expect("composition parses")
        .spec
}

/// The composition without `dependsOn`.
pub fn composition_without_depends_on() -> CompositionSpec {
    let mut c = composition();
    for r in &mut c.resources {
        r.depends_on.clear();
    }
    c
}

/// A new composite: nothing recorded in its spec yet.
pub fn new_composite() -> Value {
    json!({
        "apiVersion": "platform.example.org/v1alpha1",
        "kind": "XPostgresDatabase",
        "metadata": {"name": "orders", "uid": "uid-1"},
        "spec": {
            "parameters": {"connectionLimit": 10},
            "writeConnectionSecretToRef": {"name": "orders-conn", "namespace": "shop"},
        },
    })
}

/// The composite with its Composition, revision and every rendered resource recorded.
pub fn composite() -> Value {
    let mut xr = new_composite();
    xr["spec"]["compositionRef"] = json!({"name": "shared-postgres"});
    xr["spec"]["compositionRevisionRef"] = json!({"name": "shared-postgres-1"});
    xr["spec"]["resourceRefs"] = json!(resource_refs());
    xr
}

/// What the composite records in `spec.resourceRefs`.
pub fn resource_refs() -> Vec<ResourceRef> {
    ["role", "database", "grant"]
        .iter()
        .map(|r| {
            let o = rendered(r);
            ResourceRef {
                api_version: o["apiVersion"].as_str().unwrap_or_default().into(),
                kind: o["kind"].as_str().unwrap_or_default().into(),
                name: o["metadata"]["name"].as_str().unwrap_or_default().into(),
            }
        })
        .collect()
}

/// Resource `name` as the composite renders it.
pub fn rendered(name: &str) -> Value {
    render(&new_composite(), &composition())
        .expect("renders")
        .into_iter()
        .find(|r| r.template == name)
        .map(|r| r.object)
        .expect("rendered resource")
}

/// Resource `name` as the API server returns it, ready or not (for `database`, by its
/// readiness check; for the others, by their `Ready` condition).
pub fn live(name: &str, ready: bool) -> Value {
    let mut obj = rendered(name);
    obj["metadata"]["uid"] = json!(format!("uid-{name}"));
    obj["status"] = if name == "database" {
        json!({"atProvider": {"state": if ready { "ready" } else { "creating" }}})
    } else {
        json!({
            "atProvider": {"oid": 42},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        })
    };
    obj
}

/// The `database` live but changed by hand: a rendered field differs.
pub fn drifted_database(ready: bool) -> Value {
    let mut obj = live("database", ready);
    obj["spec"]["forProvider"]["encoding"] = json!("LATIN1");
    obj
}

/// A resource the composite owns that the Composition no longer renders.
pub fn dropped(resource: &str) -> Value {
    json!({
        "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
        "kind": "Role",
        "metadata": {
            "name": format!("orders-{resource}"),
            "uid": format!("uid-{resource}"),
            "annotations": {ANNOTATION_COMPOSITION_RESOURCE_NAME: resource},
        },
    })
}

/// `obj` with a deletion timestamp.
pub fn deleting(mut obj: Value) -> Value {
    obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    obj
}

/// The identity of `obj`.
pub fn key(obj: &Value) -> ObjectKey {
    ObjectKey::of(obj).expect("object key")
}
