use kube::CustomResourceExt;
use serde_json::json;

use super::*;
use crate::api::schema::assert_structural;

/// A Composition as a platform team would write it for Crossplane v1, with only the
/// apiVersion changed.
const POSTGRES_COMPOSITION: &str = r#"
apiVersion: apiextensions.tessera.dev/v1
kind: Composition
metadata:
  name: shared-postgres
  labels:
    provider: postgresql
spec:
  compositeTypeRef:
    apiVersion: platform.example.org/v1alpha1
    kind: XPostgresDatabase
  writeConnectionSecretsToNamespace: tessera-system
  patchSets:
  - name: common
    patches:
    - fromFieldPath: metadata.labels[example.org/team]
      toFieldPath: metadata.labels[example.org/team]
    - type: FromCompositeFieldPath
      fromFieldPath: spec.parameters.providerConfigName
      toFieldPath: spec.providerConfigRef.name
      policy:
        fromFieldPath: Optional
  resources:
  - name: role
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Role
      spec:
        forProvider:
          privileges:
            login: true
        writeConnectionSecretToRef:
          namespace: tessera-system
    patches:
    - type: PatchSet
      patchSetName: common
    - type: CombineFromComposite
      combine:
        variables:
        - fromFieldPath: spec.claimRef.namespace
        - fromFieldPath: spec.claimRef.name
        strategy: string
        string:
          fmt: "%s-%s"
      toFieldPath: metadata.annotations[tessera.dev/external-name]
      policy:
        fromFieldPath: Required
    - fromFieldPath: spec.parameters.connectionLimit
      toFieldPath: spec.forProvider.connectionLimit
      transforms:
      - type: math
        math:
          multiply: 2
      - type: math
        math:
          type: ClampMax
          clampMax: 100
    - type: ToCompositeFieldPath
      fromFieldPath: status.atProvider.oid
      toFieldPath: status.roleOid
    connectionDetails:
    - fromConnectionSecretKey: username
    - name: password
      type: FromConnectionSecretKey
      fromConnectionSecretKey: password
    - name: port
      type: FromValue
      value: "5432"
    - name: endpoint
      fromFieldPath: status.atProvider.endpoint
    - name: url
      type: Format
      fmt: "postgres://{username}:{password}@{endpoint}:{port}/app"
    readinessChecks:
    - type: MatchCondition
      matchCondition:
        type: Ready
        status: "True"
  - name: database
    dependsOn: [role]
    base:
      apiVersion: postgresql.sql.tessera.dev/v1alpha1
      kind: Database
      spec:
        forProvider:
          encoding: UTF8
    patches:
    - fromFieldPath: spec.parameters.size
      toFieldPath: spec.forProvider.tier
      transforms:
      - type: map
        map:
          small: basic
          large:
            tier: premium
            replicas: 2
    - fromFieldPath: spec.parameters.region
      toFieldPath: metadata.labels[region]
      transforms:
      - type: match
        match:
          patterns:
          - type: literal
            literal: eu-west-1
            result: europe
          - type: regexp
            regexp: '^us-.*'
            result: america
          fallbackTo: Value
          fallbackValue: elsewhere
      - type: string
        string:
          type: Convert
          convert: ToUpper
    - fromFieldPath: metadata.uid
      toFieldPath: spec.forProvider.comment
      transforms:
      - type: string
        string:
          fmt: "owned by %s"
      - type: string
        string:
          type: TrimSuffix
          trim: "-x"
      - type: string
        string:
          type: Regexp
          regexp:
            match: 'owned by (.*)'
            group: 1
    - fromFieldPath: spec.parameters.tags
      toFieldPath: spec.forProvider.tagList
      transforms:
      - type: string
        string:
          type: Join
          join:
            separator: ","
    - fromFieldPath: spec.parameters.storageGB
      toFieldPath: spec.forProvider.storage
      transforms:
      - type: convert
        convert:
          toType: string
      - type: convert
        convert:
          toType: float64
          format: quantity
      policy:
        mergeOptions:
          keepMapValues: true
          appendSlice: true
    - type: CombineToComposite
      combine:
        variables:
        - fromFieldPath: status.atProvider.host
        - fromFieldPath: status.atProvider.port
        strategy: string
        string:
          fmt: "%s:%d"
      toFieldPath: status.address
    readinessChecks:
    - type: NonEmpty
      fieldPath: status.atProvider.host
    - type: MatchString
      fieldPath: status.atProvider.state
      matchString: available
    - type: MatchInteger
      fieldPath: status.atProvider.replicas
      matchInteger: 1
    - type: MatchTrue
      fieldPath: status.atProvider.online
    - type: MatchFalse
      fieldPath: status.atProvider.maintenance
    - type: None
"#;

fn composition() -> Composition {
    serde_yaml::from_str(POSTGRES_COMPOSITION).expect("the example composition parses")
}

#[test]
fn crossplane_style_composition_deserialises_into_the_api_types() {
    let comp = composition();
    let spec = &comp.spec;
    assert_eq!(spec.composite_type_ref.kind, "XPostgresDatabase");
    assert_eq!(
        spec.write_connection_secrets_to_namespace.as_deref(),
        Some("tessera-system")
    );
    assert_eq!(spec.patch_sets[0].patches.len(), 2);

    let role = &spec.resources[0];
    assert_eq!(role.name, "role");
    assert_eq!(role.base["kind"], "Role");
    assert_eq!(role.patches[0].patch_type(), PatchType::PatchSet);
    let combine = role.patches[1].combine.as_ref().expect("combine");
    assert_eq!(combine.variables.len(), 2);
    assert_eq!(combine.strategy, CombineStrategy::String);
    assert_eq!(
        combine.string.as_ref().map(|s| s.fmt.as_str()),
        Some("%s-%s")
    );
    assert!(role.patches[1].is_required());
    // Omitted type means FromCompositeFieldPath; omitted policy means Optional.
    assert_eq!(role.patches[2].type_, None);
    assert_eq!(
        role.patches[2].patch_type(),
        PatchType::FromCompositeFieldPath
    );
    assert!(!role.patches[2].is_required());
    let math = role.patches[2].transforms[0].math.as_ref().expect("math");
    assert_eq!(math.math_type(), MathTransformType::Multiply);
    assert_eq!(math.multiply, Some(2));
    assert_eq!(
        role.patches[2].transforms[1]
            .math
            .as_ref()
            .map(|m| (m.math_type(), m.clamp_max)),
        Some((MathTransformType::ClampMax, Some(100)))
    );
    assert_eq!(
        role.patches[3].patch_type(),
        PatchType::ToCompositeFieldPath
    );
    let kinds: Vec<_> = role
        .connection_details
        .iter()
        .map(|d| d.detail_type())
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some(ConnectionDetailType::FromConnectionSecretKey),
            Some(ConnectionDetailType::FromConnectionSecretKey),
            Some(ConnectionDetailType::FromValue),
            Some(ConnectionDetailType::FromFieldPath),
            Some(ConnectionDetailType::Format),
        ]
    );
    assert_eq!(
        role.readiness_checks[0].match_condition,
        Some(MatchConditionReadinessCheck::default())
    );

    let db = &spec.resources[1];
    assert_eq!(db.depends_on, vec!["role".to_string()]);
    let map = db.patches[0].transforms[0].map.as_ref().expect("map");
    assert_eq!(map.pairs["small"], json!("basic"));
    assert_eq!(
        map.pairs["large"],
        json!({"tier": "premium", "replicas": 2})
    );
    let m = db.patches[1].transforms[0].match_.as_ref().expect("match");
    assert_eq!(
        m.patterns[1].pattern_type(),
        MatchTransformPatternType::Regexp
    );
    assert_eq!(m.fallback_value, Some(json!("elsewhere")));
    assert_eq!(m.fallback_to, Some(MatchFallbackTo::Value));
    let s = db.patches[1].transforms[1].string.as_ref().expect("string");
    assert_eq!(s.string_type(), StringTransformType::Convert);
    assert_eq!(s.convert, Some(StringConversionType::ToUpper));
    let fmt = db.patches[2].transforms[0].string.as_ref().expect("string");
    assert_eq!(fmt.string_type(), StringTransformType::Format);
    let re = db.patches[2].transforms[2].string.as_ref().expect("string");
    assert_eq!(re.regexp.as_ref().and_then(|r| r.group), Some(1));
    let conv = db.patches[4].transforms[1]
        .convert
        .as_ref()
        .expect("convert");
    assert_eq!(conv.to_type, TransformIoType::Float64);
    assert_eq!(conv.input_format(), ConvertTransformFormat::Quantity);
    let mo = db.patches[4].merge_options().expect("merge options");
    assert_eq!(
        (mo.append_slice, mo.keep_map_values),
        (Some(true), Some(true))
    );
    let checks: Vec<_> = db.readiness_checks.iter().map(|c| c.type_).collect();
    assert_eq!(
        checks,
        vec![
            ReadinessCheckType::NonEmpty,
            ReadinessCheckType::MatchString,
            ReadinessCheckType::MatchInteger,
            ReadinessCheckType::MatchTrue,
            ReadinessCheckType::MatchFalse,
            ReadinessCheckType::None,
        ]
    );
}

#[test]
fn composition_round_trips_through_yaml_without_changing_fields() {
    let original: serde_json::Value =
        serde_yaml::from_str(POSTGRES_COMPOSITION).expect("yaml parses");
    let typed = composition();
    let written = serde_json::to_value(&typed).expect("serialises");
    // Nothing added (no defaults written out), nothing dropped.
    assert_eq!(written, original);
    let again: Composition = serde_json::from_value(written).expect("parses again");
    assert_eq!(again, typed);
}

#[test]
fn unknown_transform_type_is_rejected() {
    let err = serde_json::from_value::<Transform>(json!({"type": "lookup"})).unwrap_err();
    assert!(err.to_string().contains("lookup"), "{err}");
}

#[test]
fn composition_crd_schema_is_structural() {
    let crd = Composition::crd();
    assert_structural(&crd);
    assert_eq!(crd.spec.group, "apiextensions.tessera.dev");
    assert_eq!(crd.spec.scope, "Cluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["comp".to_string()]));
    assert_eq!(crd.spec.names.categories, Some(vec!["tessera".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1");
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let cols: Vec<_> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(cols, ["XR-KIND", "XR-APIVERSION", "AGE"]);
}

#[test]
fn composition_crd_keeps_free_form_fields_and_documents_every_field() {
    let crd = serde_json::to_value(Composition::crd()).expect("serialises");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let resource = &spec["properties"]["resources"]["items"];
    assert_eq!(
        resource["properties"]["base"],
        json!({
            "description": resource["properties"]["base"]["description"],
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        })
    );
    let mut required: Vec<_> = resource["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["base", "name"]);
    let transform =
        &resource["properties"]["patches"]["items"]["properties"]["transforms"]["items"];
    assert_eq!(
        transform["properties"]["map"]["additionalProperties"],
        json!({"x-kubernetes-preserve-unknown-fields": true})
    );
    let pattern = &transform["properties"]["match"]["properties"]["patterns"]["items"];
    assert_eq!(
        pattern["properties"]["result"]["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    assert_eq!(
        transform["properties"]["type"]["enum"],
        json!(["map", "match", "math", "string", "convert"])
    );
    // Optional enum fields keep the field's own documentation, not the enum type's.
    let policy = &resource["properties"]["patches"]["items"]["properties"]["policy"];
    let doc = policy["properties"]["fromFieldPath"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(doc.starts_with("`Optional` (the default)"), "{doc}");
    assert_every_property_documented(spec, "spec");
}

#[test]
fn composition_revision_crd_schema_is_structural_and_flattens_the_spec() {
    let crd = CompositionRevision::crd();
    assert_structural(&crd);
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["comprev".to_string()])
    );
    let json = serde_json::to_value(&crd).expect("serialises");
    let spec = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(spec["properties"]["compositeTypeRef"].is_object());
    assert_eq!(spec["properties"]["revision"]["type"], "integer");
    assert_every_property_documented(spec, "spec");

    let rev = CompositionRevision::new(
        "shared-postgres-1",
        CompositionRevisionSpec {
            composition: composition().spec,
            revision: 1,
        },
    );
    let value = serde_json::to_value(&rev).expect("serialises");
    assert_eq!(value["spec"]["revision"], 1);
    assert_eq!(
        value["spec"]["compositeTypeRef"]["kind"],
        "XPostgresDatabase"
    );
    let back: CompositionRevision = serde_json::from_value(value).expect("parses");
    assert_eq!(back.spec, rev.spec);
}

#[test]
fn patch_sets_expand_in_place_and_errors_name_the_problem() {
    let comp = composition();
    let role = &comp.spec.resources[0];
    let expanded = role
        .expanded_patches(&comp.spec.patch_sets)
        .expect("expands");
    assert_eq!(expanded.len(), 5);
    assert_eq!(
        expanded[0].from_field_path.as_deref(),
        Some("metadata.labels[example.org/team]")
    );
    assert_eq!(expanded[2].patch_type(), PatchType::CombineFromComposite);

    let err = role.expanded_patches(&[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "patch 0 refers to patch set \"common\", which is not defined in patchSets"
    );

    let nested = vec![PatchSet {
        name: "common".into(),
        patches: vec![Patch {
            type_: Some(PatchType::PatchSet),
            patch_set_name: Some("other".into()),
            ..Patch::default()
        }],
    }];
    assert_eq!(
        role.expanded_patches(&nested).unwrap_err(),
        PatchSetError::Nested {
            name: "common".into()
        }
    );
}

/// Every property of the schema has a description (it is `kubectl explain` text).
pub(crate) fn assert_every_property_documented(node: &serde_json::Value, at: &str) {
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let path = format!("{at}.{name}");
            assert!(
                sub.get("description")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| !d.is_empty()),
                "{path} has no description"
            );
            assert_every_property_documented(sub, &path);
        }
    }
    if let Some(items) = node.get("items") {
        assert_every_property_documented(items, at);
    }
}
