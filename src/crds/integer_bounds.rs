//! Every integer the API server stores for Tessera's kinds is bounded by the schema: a
//! format Kubernetes knows (`int32`, `int64`) and explicit `minimum`/`maximum` within it.
//! Without bounds the API server stores any integer, and a typed watcher (an `i32` field)
//! can then no longer list the kind; an unknown format (`uint32`) only earns a warning.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;
use tessera_engine::api::schema::{INT64_MAX, INT64_MIN};
use tessera_engine::api::xrd::CompositeResourceDefinition;
use tessera_engine::xrd::{claim_crd, composite_crd};

use super::definitions;

/// The formats the API server knows (k8s.io/apiextensions-apiserver, `SupportedFormats`).
const KNOWN_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

fn problems(crd: &CustomResourceDefinition) -> Vec<String> {
    let crd = serde_json::to_value(crd).expect("a CRD serialises");
    let mut out = Vec::new();
    for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
        let at = format!("{} {}", crd["metadata"]["name"], version["name"]);
        check(&version["schema"]["openAPIV3Schema"], &at, &mut out);
    }
    out
}

fn check(node: &Value, at: &str, out: &mut Vec<String>) {
    let format = node.get("format").and_then(Value::as_str);
    if let Some(f) = format.filter(|f| !KNOWN_FORMATS.contains(f)) {
        out.push(format!("{at}: format {f:?} is not one Kubernetes knows"));
    }
    if node.get("type").and_then(Value::as_str) == Some("integer") {
        let (lo, hi) = match format {
            Some("int32") => (f64::from(i32::MIN), f64::from(i32::MAX)),
            // Not i64::MIN/MAX: see tessera_engine::api::schema::INT64_MAX.
            Some("int64") => (INT64_MIN as f64, INT64_MAX as f64),
            other => {
                out.push(format!(
                    "{at}: integer with format {other:?}, not int32 or int64"
                ));
                (f64::MIN, f64::MAX)
            }
        };
        let bound = |key: &str| node.get(key).and_then(Value::as_f64);
        match (bound("minimum"), bound("maximum")) {
            (Some(min), Some(max)) if lo <= min && min <= max && max <= hi => {}
            (min, max) => out.push(format!(
                "{at}: integer bounds {min:?}..{max:?} are missing or outside {format:?}"
            )),
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            check(child, &format!("{at}.{name}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = node.get(key).filter(|c| c.is_object()) {
            check(child, &format!("{at}[{key}]"), out);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for child in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            check(child, &format!("{at}({key})"), out);
        }
    }
}

#[test]
fn every_integer_of_every_generated_crd_has_a_known_format_and_bounds() {
    let found: Vec<String> = definitions(crate::providers::ALL)
        .iter()
        .flat_map(problems)
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_integer_of_the_shipped_xrds_composite_and_claim_has_a_known_format_and_bounds() {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("compositions/postgres/xrd.yaml");
    let text = std::fs::read_to_string(&path).expect("the shipped XRD");
    let xrd: CompositeResourceDefinition = serde_yaml::from_str(&text).expect("an XRD");
    let mut crds = vec![composite_crd(&xrd).expect("a composite CRD")];
    crds.extend(claim_crd(&xrd).expect("a claim CRD"));
    assert_eq!(crds.len(), 2);
    let found: Vec<String> = crds.iter().flat_map(problems).collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_finds_an_unknown_format_and_a_missing_bound() {
    let mut crd = definitions(&[]).remove(0);
    let schema = crd.spec.versions[0].schema.as_mut().unwrap();
    let mut value = serde_json::to_value(&schema.open_api_v3_schema).unwrap();
    value["properties"]["probe"] =
        serde_json::json!({"type": "integer", "format": "uint32", "minimum": 0});
    schema.open_api_v3_schema = Some(serde_json::from_value(value).unwrap());
    let found: Vec<String> = problems(&crd)
        .into_iter()
        .filter(|p| p.contains(".probe:"))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    let mut crd = definitions(&[]).remove(0);
    let schema = crd.spec.versions[0].schema.as_mut().unwrap();
    let mut value = serde_json::to_value(&schema.open_api_v3_schema).unwrap();
    value["properties"]["probe"] = serde_json::json!({"type": "integer", "format": "int32", "minimum": -1, "maximum": 3_000_000_000_u64});
    schema.open_api_v3_schema = Some(serde_json::from_value(value).unwrap());
    let found: Vec<String> = problems(&crd)
        .into_iter()
        .filter(|p| p.contains(".probe:"))
        .collect();
    assert_eq!(found.len(), 1, "a maximum beyond int32: {found:?}");
}
