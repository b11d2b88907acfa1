//! Integer fields of the managed kinds are bounded by their schemas: the real API server
//! refuses a value the field's Rust type cannot hold, instead of storing an object that a
//! typed watcher can then no longer list.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::json;
use tessera_provider_postgresql::api::Role;
use tessera_tests::{TestEnv, install_crds, repo_root, unique};

fn role(name: &str, connection_limit: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "postgresql.sql.tessera.dev/v1alpha1",
        "kind": "Role",
        "metadata": { "name": name },
        "spec": { "forProvider": { "connectionLimit": connection_limit } },
    })
}

#[tokio::test]
async fn a_connection_limit_outside_its_int32_range_is_refused_by_the_api_server() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    let ar = ApiResource::erase::<Role>(&());
    let roles: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let params = PatchParams::apply("tessera-tests").force();

    for refused in [json!(3_000_000_000_u64), json!(-2), json!(1.0e19)] {
        let name = unique("bounds");
        let err = roles
            .patch(&name, &params, &Patch::Apply(role(&name, refused.clone())))
            .await
            .expect_err(&format!("connectionLimit {refused} must be refused"));
        let kube::Error::Api(status) = &err else {
            panic!("{refused}: not an API error: {err}");
        };
        assert_eq!(status.code, 422, "{refused}: {status:?}");
        assert!(
            status.message.contains("spec.forProvider.connectionLimit"),
            "{refused}: {}",
            status.message
        );
    }

    let name = unique("bounds");
    roles
        .patch(&name, &params, &Patch::Apply(role(&name, json!(i32::MAX))))
        .await
        .expect("the largest int32 is accepted");
    // Every stored Role still reads as the typed kind.
    let typed: Api<Role> = Api::all(client.clone());
    typed
        .get(&name)
        .await
        .expect("the Role reads as its Rust type");
    // An int64 bound the API server cannot convert (i64::MAX rounds up to 2^63) refuses
    // every value: a status write with observedGeneration shows the bounds are usable.
    let status = json!({
        "apiVersion": "postgresql.sql.tessera.dev/v1alpha1", "kind": "Role",
        "status": { "observedGeneration": 1, "conditions": [{
            "type": "Ready", "status": "False", "reason": "Creating", "observedGeneration": 1,
        }]},
    });
    roles
        .patch_status(&name, &params, &Patch::Apply(status))
        .await
        .expect("a status with observedGeneration is accepted");
    roles
        .delete(&name, &Default::default())
        .await
        .expect("delete");
}

/// The API server warns about unknown formats only when a CRD is created (not on updates
/// of an installed one), so each committed CRD is created, dry-run, under new names.
#[test]
fn creating_the_committed_crds_raises_no_format_warnings() {
    let env = TestEnv::load();
    let dir = std::env::temp_dir().join(unique("crds"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for entry in std::fs::read_dir(repo_root().join("crds")).expect("crds/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read CRD");
        let mut crd: serde_json::Value = serde_yaml::from_str(&text).expect("a CRD");
        let names = &mut crd["spec"]["names"];
        for key in ["plural", "singular"] {
            names[key] = json!(format!("{}probe", names[key].as_str().unwrap_or_default()));
        }
        for key in ["kind", "listKind"] {
            names[key] = json!(format!("Probe{}", names[key].as_str().unwrap_or_default()));
        }
        names.as_object_mut().map(|n| n.remove("shortNames"));
        crd["metadata"]["name"] = json!(format!(
            "{}.{}",
            crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
            crd["spec"]["group"].as_str().unwrap_or_default()
        ));
        let file = dir.join(path.file_name().expect("file name"));
        std::fs::write(&file, serde_json::to_string(&crd).unwrap()).expect("write CRD");
    }
    let out = std::process::Command::new(env.get("KUBECTL"))
        .arg("--kubeconfig")
        .arg(env.get("KUBECONFIG"))
        .args(["create", "--dry-run=server", "-f"])
        .arg(&dir)
        .output()
        .expect("run kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl create failed: {stderr}");
    assert!(!stderr.contains("unrecognized format"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
