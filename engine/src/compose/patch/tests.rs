use serde_json::{Value, json};

use super::*;

fn composite() -> Value {
    json!({
        "apiVersion": "platform.example.org/v1alpha1",
        "kind": "XPostgresDatabase",
        "metadata": {
            "name": "orders-1a2b3c4d",
            "labels": {"example.org/team": "payments"},
        },
        "spec": {
            "parameters": {"size": "small", "storageGB": 20, "tags": ["a", "b"]},
            "claimRef": {"namespace": "shop", "name": "orders"},
        },
    })
}

fn patch(p: Value) -> Patch {
    serde_json::from_value(p).expect("patch parses")
}

#[test]
fn apply_patch_from_composite() {
    struct Case {
        reason: &'static str,
        patch: Value,
        resource: Value,
        want: Result<Value, &'static str>,
    }
    let cases = [
        Case {
            reason: "an omitted type is FromCompositeFieldPath",
            patch: json!({"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec.forProvider.size"}),
            resource: json!({"spec": {"forProvider": {"encoding": "UTF8"}}}),
            want: Ok(json!({"spec": {"forProvider": {"encoding": "UTF8", "size": "small"}}})),
        },
        Case {
            reason: "an omitted toFieldPath writes to the same path",
            patch: json!({"type": "FromCompositeFieldPath", "fromFieldPath": "metadata.labels[example.org/team]"}),
            resource: json!({}),
            want: Ok(json!({"metadata": {"labels": {"example.org/team": "payments"}}})),
        },
        Case {
            reason: "transforms run on the value before it is written",
            patch: json!({"fromFieldPath": "spec.parameters.storageGB", "toFieldPath": "spec.forProvider.storage",
                "transforms": [{"type": "math", "math": {"multiply": 1024}}]}),
            resource: json!({}),
            want: Ok(json!({"spec": {"forProvider": {"storage": 20480}}})),
        },
        Case {
            reason: "a float without fraction is written as an integer, as the API server serves it",
            patch: json!({"fromFieldPath": "spec.parameters.storageGB", "toFieldPath": "spec.forProvider.bytes",
            "transforms": [
                {"type": "string", "string": {"fmt": "%dGi"}},
                {"type": "convert", "convert": {"toType": "float64", "format": "quantity"}},
            ]}),
            resource: json!({}),
            want: Ok(json!({"spec": {"forProvider": {"bytes": 21_474_836_480_i64}}})),
        },
        Case {
            reason: "a float with a fraction stays a float",
            patch: json!({"fromFieldPath": "spec.parameters.storageGB", "toFieldPath": "spec.forProvider.cpu",
            "transforms": [
                {"type": "string", "string": {"fmt": "%dm"}},
                {"type": "convert", "convert": {"toType": "float64", "format": "quantity"}},
            ]}),
            resource: json!({}),
            want: Ok(json!({"spec": {"forProvider": {"cpu": 0.02}}})),
        },
        Case {
            reason: "a missing optional source is skipped silently",
            patch: json!({"fromFieldPath": "spec.parameters.missing", "toFieldPath": "spec.x"}),
            resource: json!({"spec": {"x": "base"}}),
            want: Ok(json!({"spec": {"x": "base"}})),
        },
        Case {
            reason: "an explicit Optional policy also skips",
            patch: json!({"fromFieldPath": "spec.parameters.missing", "policy": {"fromFieldPath": "Optional"}}),
            resource: json!({}),
            want: Ok(json!({})),
        },
        Case {
            reason: "a missing Required source is an error naming the field",
            patch: json!({"fromFieldPath": "spec.parameters.region", "policy": {"fromFieldPath": "Required"}}),
            resource: json!({}),
            want: Err("field spec.parameters.region is required but missing"),
        },
        Case {
            reason: "a whole list is copied",
            patch: json!({"fromFieldPath": "spec.parameters.tags", "toFieldPath": "spec.forProvider.tags"}),
            resource: json!({"spec": {"forProvider": {"tags": ["z"]}}}),
            want: Ok(json!({"spec": {"forProvider": {"tags": ["a", "b"]}}})),
        },
        Case {
            reason: "appendSlice appends to the existing list",
            patch: json!({"fromFieldPath": "spec.parameters.tags", "toFieldPath": "spec.forProvider.tags",
                "policy": {"mergeOptions": {"appendSlice": true}}}),
            resource: json!({"spec": {"forProvider": {"tags": ["z", "a"]}}}),
            want: Ok(json!({"spec": {"forProvider": {"tags": ["z", "a", "b"]}}})),
        },
        Case {
            reason: "keepMapValues merges an object keeping existing values",
            patch: json!({"fromFieldPath": "spec.parameters", "toFieldPath": "spec.forProvider",
                "policy": {"mergeOptions": {"keepMapValues": true}}}),
            resource: json!({"spec": {"forProvider": {"size": "large"}}}),
            want: Ok(
                json!({"spec": {"forProvider": {"size": "large", "storageGB": 20, "tags": ["a", "b"]}}}),
            ),
        },
        Case {
            reason: "a transform result of null writes nothing",
            patch: json!({"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec.tier",
                "transforms": [{"type": "match", "match": {"patterns": [{"literal": "large", "result": "gold"}]}}]}),
            resource: json!({"spec": {"tier": "base"}}),
            want: Ok(json!({"spec": {"tier": "base"}})),
        },
        Case {
            reason: "a failing transform is an error naming the transform",
            patch: json!({"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec.tier",
                "transforms": [{"type": "map", "map": {"large": "gold"}}]}),
            resource: json!({}),
            want: Err(
                "field spec.parameters.size: transform 0 (map): input is not a key of the map",
            ),
        },
        Case {
            reason: "FromCompositeFieldPath without fromFieldPath is an error",
            patch: json!({"toFieldPath": "spec.x"}),
            resource: json!({}),
            want: Err("type FromCompositeFieldPath requires fromFieldPath"),
        },
        Case {
            reason: "a malformed target path is an error",
            patch: json!({"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec..x"}),
            resource: json!({}),
            want: Err("field path \"spec..x\": empty field name"),
        },
        Case {
            reason: "a target path through a scalar is an error",
            patch: json!({"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec.x.y"}),
            resource: json!({"spec": {"x": 1}}),
            want: Err("field path \"spec.x.y\": spec.x is an integer, not an object"),
        },
        Case {
            reason: "CombineFromComposite formats the variables in order",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "metadata.annotations[tessera.dev/external-name]",
                "combine": {"strategy": "string", "string": {"fmt": "%s_%s"},
                    "variables": [{"fromFieldPath": "spec.claimRef.namespace"}, {"fromFieldPath": "spec.claimRef.name"}]}}),
            resource: json!({}),
            want: Ok(
                json!({"metadata": {"annotations": {"tessera.dev/external-name": "shop_orders"}}}),
            ),
        },
        Case {
            reason: "CombineFromComposite runs transforms on the combined string",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.name",
                "combine": {"strategy": "string", "string": {"fmt": "%s-%d"},
                    "variables": [{"fromFieldPath": "spec.parameters.size"}, {"fromFieldPath": "spec.parameters.storageGB"}]},
                "transforms": [{"type": "string", "string": {"type": "Convert", "convert": "ToUpper"}}]}),
            resource: json!({}),
            want: Ok(json!({"spec": {"name": "SMALL-20"}})),
        },
        Case {
            reason: "CombineFromComposite is skipped when a variable is missing",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.name",
                "combine": {"strategy": "string", "string": {"fmt": "%s-%s"},
                    "variables": [{"fromFieldPath": "spec.parameters.size"}, {"fromFieldPath": "spec.nope"}]}}),
            resource: json!({}),
            want: Ok(json!({})),
        },
        Case {
            reason: "CombineFromComposite with Required fails on a missing variable",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.name", "policy": {"fromFieldPath": "Required"},
                "combine": {"strategy": "string", "string": {"fmt": "%s-%s"},
                    "variables": [{"fromFieldPath": "spec.parameters.size"}, {"fromFieldPath": "spec.nope"}]}}),
            resource: json!({}),
            want: Err("field spec.nope is required but missing"),
        },
        Case {
            reason: "CombineFromComposite requires toFieldPath",
            patch: json!({"type": "CombineFromComposite",
                "combine": {"strategy": "string", "string": {"fmt": "%s"}, "variables": [{"fromFieldPath": "spec"}]}}),
            resource: json!({}),
            want: Err("type CombineFromComposite requires toFieldPath"),
        },
        Case {
            reason: "CombineFromComposite requires combine",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.x"}),
            resource: json!({}),
            want: Err("type CombineFromComposite requires combine"),
        },
        Case {
            reason: "CombineFromComposite requires at least one variable",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.x",
                "combine": {"strategy": "string", "string": {"fmt": "x"}, "variables": []}}),
            resource: json!({}),
            want: Err("combine requires at least one variable"),
        },
        Case {
            reason: "the string strategy requires string.fmt",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.x",
                "combine": {"strategy": "string", "variables": [{"fromFieldPath": "spec.parameters.size"}]}}),
            resource: json!({}),
            want: Err("combine strategy string requires string.fmt"),
        },
        Case {
            reason: "a format with the wrong number of verbs is an error",
            patch: json!({"type": "CombineFromComposite", "toFieldPath": "spec.x",
                "combine": {"strategy": "string", "string": {"fmt": "%s"},
                    "variables": [{"fromFieldPath": "spec.parameters.size"}, {"fromFieldPath": "spec.parameters.size"}]}}),
            resource: json!({}),
            want: Err("field spec.x: format \"%s\" has 1 verb(s) for 2 value(s)"),
        },
        Case {
            reason: "an unexpanded PatchSet patch is an error",
            patch: json!({"type": "PatchSet", "patchSetName": "x"}),
            resource: json!({}),
            want: Err("a PatchSet patch must be expanded before it is applied"),
        },
    ];
    let comp = composite();
    for case in cases {
        let mut resource = case.resource;
        let got = apply_patch(&patch(case.patch), &comp, &mut resource)
            .map(|()| resource)
            .map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn apply_patch_to_composite() {
    struct Case {
        reason: &'static str,
        patch: Value,
        want: Result<Value, &'static str>,
    }
    let observed =
        json!({"status": {"atProvider": {"host": "db.internal", "port": 5432, "oid": 16384}}});
    let cases = [
        Case {
            reason: "ToCompositeFieldPath copies an observed field to the composite",
            patch: json!({"type": "ToCompositeFieldPath", "fromFieldPath": "status.atProvider.oid", "toFieldPath": "status.roleOid"}),
            want: Ok(json!({"status": {"roleOid": 16384}})),
        },
        Case {
            reason: "ToCompositeFieldPath with an omitted toFieldPath writes the same path",
            patch: json!({"type": "ToCompositeFieldPath", "fromFieldPath": "status.atProvider.host"}),
            want: Ok(json!({"status": {"atProvider": {"host": "db.internal"}}})),
        },
        Case {
            reason: "a field not yet observed is skipped",
            patch: json!({"type": "ToCompositeFieldPath", "fromFieldPath": "status.atProvider.arn", "toFieldPath": "status.arn"}),
            want: Ok(json!({})),
        },
        Case {
            reason: "CombineToComposite formats observed fields into the composite",
            patch: json!({"type": "CombineToComposite", "toFieldPath": "status.address",
                "combine": {"strategy": "string", "string": {"fmt": "%s:%d"},
                    "variables": [{"fromFieldPath": "status.atProvider.host"}, {"fromFieldPath": "status.atProvider.port"}]}}),
            want: Ok(json!({"status": {"address": "db.internal:5432"}})),
        },
    ];
    for case in cases {
        let mut comp = json!({});
        let got = apply_patch(&patch(case.patch), &observed, &mut comp)
            .map(|()| comp)
            .map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

fn template(patches: Value) -> ComposedTemplate {
    serde_json::from_value(json!({"name": "role", "base": {}, "patches": patches}))
        .expect("template parses")
}

fn patch_sets() -> Vec<PatchSet> {
    serde_json::from_value(json!([{
        "name": "common",
        "patches": [
            {"fromFieldPath": "metadata.labels[example.org/team]"},
            {"fromFieldPath": "spec.parameters.region", "toFieldPath": "spec.region", "policy": {"fromFieldPath": "Required"}},
        ],
    }]))
    .expect("patch sets parse")
}

#[test]
fn directions_are_kept_apart_and_patch_sets_expand_in_place() {
    let t = template(json!([
        {"fromFieldPath": "spec.parameters.size", "toFieldPath": "spec.size"},
        {"type": "ToCompositeFieldPath", "fromFieldPath": "status.id", "toFieldPath": "status.roleId"},
        {"type": "PatchSet", "patchSetName": "common"},
    ]));
    let sets = patch_sets();
    let expanded = expand_patches(&t, &sets).expect("expands");
    let origins: Vec<String> = expanded.iter().map(|(o, _)| o.to_string()).collect();
    assert_eq!(
        origins,
        [
            "patch 0",
            "patch 1",
            "patch 2 (patch set 'common', patch 0)",
            "patch 2 (patch set 'common', patch 1)"
        ]
    );

    // The Required patch of the set fails, and the error says where it came from.
    let mut resource = json!({});
    let err = apply_from_composite(&t, &sets, &composite(), &mut resource).unwrap_err();
    assert_eq!(
        err.to_string(),
        "patch 2 (patch set 'common', patch 1) of resource 'role': field spec.parameters.region is required but missing"
    );
    assert!(err.is_required_field_missing());

    let mut comp = composite();
    comp["spec"]["parameters"]["region"] = json!("eu-west-1");
    let mut resource = json!({});
    apply_from_composite(&t, &sets, &comp, &mut resource).expect("applies");
    assert_eq!(
        resource,
        json!({
            "spec": {"size": "small", "region": "eu-west-1"},
            "metadata": {"labels": {"example.org/team": "payments"}},
        }),
        "only the from-composite patches ran"
    );

    let observed = json!({"status": {"id": "r-1"}, "spec": {"size": "ignored"}});
    let mut comp_after = comp.clone();
    apply_to_composite(&t, &sets, &observed, &mut comp_after).expect("applies");
    let mut want = comp.clone();
    want["status"] = json!({"roleId": "r-1"});
    assert_eq!(comp_after, want, "only the to-composite patches ran");
}

#[test]
fn patch_set_errors_name_the_patch_and_resource() {
    struct Case {
        reason: &'static str,
        patches: Value,
        sets: Value,
        want: &'static str,
    }
    let cases = [
        Case {
            reason: "an unknown patch set",
            patches: json!([{"type": "PatchSet", "patchSetName": "missing"}]),
            sets: json!([]),
            want: "patch 0 of resource 'role': patch set 'missing' is not defined in patchSets",
        },
        Case {
            reason: "a PatchSet patch without a name",
            patches: json!([{}, {"type": "PatchSet"}]),
            sets: json!([]),
            want: "patch 1 of resource 'role': type PatchSet requires patchSetName",
        },
        Case {
            reason: "nested patch sets",
            patches: json!([{"type": "PatchSet", "patchSetName": "outer"}]),
            sets: json!([{"name": "outer", "patches": [{"type": "PatchSet", "patchSetName": "inner"}]}]),
            want: "patch 0 of resource 'role': patch set 'outer' contains a PatchSet patch (index 0); patch sets cannot be nested",
        },
    ];
    for case in cases {
        let t = template(case.patches);
        let sets: Vec<PatchSet> = serde_json::from_value(case.sets).expect("sets parse");
        let err = expand_patches(&t, &sets).unwrap_err();
        assert_eq!(err.to_string(), case.want, "{}", case.reason);
    }
}

/// A combine patch's format may repeat a variable (`%[1]s`): its output is bounded like a
/// transform's, and refused before it is built, whatever the size of the variable.
#[test]
fn combine_output_is_bounded() {
    let big = "x".repeat(200_000);
    let from = json!({"spec": {"big": big}});
    let p = patch(json!({
        "type": "CombineFromComposite",
        "combine": {"strategy": "string", "string": {"fmt": "%[1]s".repeat(8)},
                    "variables": [{"fromFieldPath": "spec.big"}]},
        "toFieldPath": "spec.joined",
    }));
    let mut to = json!({});
    let err = apply_patch(&p, &from, &mut to).expect_err("the output is over the limit");
    let message = err.to_string();
    assert!(
        message.starts_with("field spec.joined: format "),
        "{message}"
    );
    assert!(
        message.ends_with("the output is more than the limit of 1048576 bytes"),
        "{message}"
    );
    assert_eq!(to, json!({}));
}
