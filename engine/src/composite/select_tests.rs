use serde_json::json;

use super::*;

fn xr_type() -> TypeReference {
    TypeReference {
        api_version: "platform.example.org/v1alpha1".into(),
        kind: "XPostgresDatabase".into(),
    }
}

fn composition(name: &str, labels: serde_json::Value, kind: &str, version: &str) -> Composition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1", "kind": "Composition",
        "metadata": {"name": name, "labels": labels},
        "spec": {"compositeTypeRef": {"apiVersion": format!("platform.example.org/{version}"), "kind": kind}},
    }))
    .expect("composition")
}

fn xrd(extra: serde_json::Value) -> CompositeResourceDefinitionSpec {
    let mut v = json!({
        "group": "platform.example.org",
        "names": {"kind": "XPostgresDatabase", "plural": "xpostgresdatabases"},
        "versions": [{"name": "v1alpha1", "served": true, "referenceable": true}],
    });
    if let (Some(map), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    serde_json::from_value(v).expect("xrd spec")
}

fn spec(v: serde_json::Value) -> XrSpec {
    serde_json::from_value(v).expect("xr spec")
}

#[test]
fn composition_selection() {
    let comps = [
        composition(
            "shared",
            json!({"env": "prod", "tier": "shared"}),
            "XPostgresDatabase",
            "v1alpha1",
        ),
        composition(
            "dedicated",
            json!({"env": "prod", "tier": "dedicated"}),
            "XPostgresDatabase",
            "v1alpha1",
        ),
        composition(
            "dev",
            json!({"env": "dev"}),
            "XPostgresDatabase",
            "v1alpha1",
        ),
        composition("cache", json!({"env": "prod"}), "XRedis", "v1alpha1"),
        composition("old", json!({"env": "prod"}), "XPostgresDatabase", "v1"),
    ];
    let refs: Vec<&Composition> = comps.iter().collect();
    struct Case {
        reason: &'static str,
        spec: serde_json::Value,
        xrd: serde_json::Value,
        want: Result<&'static str, &'static str>,
    }
    let cases = [
        Case {
            reason: "compositionRef names the composition",
            spec: json!({"compositionRef": {"name": "dev"}}),
            xrd: json!({"defaultCompositionRef": {"name": "shared"}}),
            want: Ok("dev"),
        },
        Case {
            reason: "enforcedCompositionRef wins over compositionRef",
            spec: json!({"compositionRef": {"name": "dev"}}),
            xrd: json!({"enforcedCompositionRef": {"name": "shared"}}),
            want: Ok("shared"),
        },
        Case {
            reason: "enforcedCompositionRef wins over a selector",
            spec: json!({"compositionSelector": {"matchLabels": {"env": "dev"}}}),
            xrd: json!({"enforcedCompositionRef": {"name": "shared"}}),
            want: Ok("shared"),
        },
        Case {
            reason: "a selector picks the first matching composition of the composite's type by name",
            spec: json!({"compositionSelector": {"matchLabels": {"env": "prod"}}}),
            xrd: json!({}),
            want: Ok("dedicated"),
        },
        Case {
            reason: "all labels of the selector must match",
            spec: json!({"compositionSelector": {"matchLabels": {"env": "prod", "tier": "shared"}}}),
            xrd: json!({}),
            want: Ok("shared"),
        },
        Case {
            reason: "compositionRef wins over a selector (it records an earlier choice)",
            spec: json!({"compositionRef": {"name": "shared"}, "compositionSelector": {"matchLabels": {"env": "dev"}}}),
            xrd: json!({}),
            want: Ok("shared"),
        },
        Case {
            reason: "a selector matching nothing says so, without falling back to the default",
            spec: json!({"compositionSelector": {"matchLabels": {"tier": "gold", "env": "prod"}}}),
            xrd: json!({"defaultCompositionRef": {"name": "shared"}}),
            want: Err(
                "No composition matches selector {env: prod, tier: gold} for XPostgresDatabase",
            ),
        },
        Case {
            reason: "compositions of other kinds never match a selector",
            spec: json!({"compositionSelector": {"matchLabels": {"env": "prod", "tier": "x"}}}),
            xrd: json!({}),
            want: Err("No composition matches selector {env: prod, tier: x} for XPostgresDatabase"),
        },
        Case {
            reason: "the XRD's default applies when nothing is named or selected",
            spec: json!({}),
            xrd: json!({"defaultCompositionRef": {"name": "shared"}}),
            want: Ok("shared"),
        },
        Case {
            reason: "nothing named, selected or defaulted",
            spec: json!({}),
            xrd: json!({}),
            want: Err(
                "No composition selected for XPostgresDatabase: set spec.compositionRef or spec.compositionSelector, or defaultCompositionRef in the XRD",
            ),
        },
        Case {
            reason: "a missing composition is named",
            spec: json!({"compositionRef": {"name": "gone"}}),
            xrd: json!({}),
            want: Err("Composition \"gone\" does not exist"),
        },
        Case {
            reason: "a composition of another kind is refused",
            spec: json!({"compositionRef": {"name": "cache"}}),
            xrd: json!({}),
            want: Err("Composition \"cache\" is for kind XRedis, not XPostgresDatabase"),
        },
        Case {
            reason: "a composition of another version is refused",
            spec: json!({"compositionRef": {"name": "old"}}),
            xrd: json!({}),
            want: Err(
                "Composition \"old\" is for apiVersion platform.example.org/v1, not platform.example.org/v1alpha1",
            ),
        },
    ];
    for case in cases {
        let got = select_composition(&spec(case.spec), &xrd(case.xrd), &xr_type(), &refs)
            .map(|c| c.name_any())
            .map_err(|e| e.to_string());
        let want = case.want.map(str::to_string).map_err(str::to_string);
        assert_eq!(got, want, "{}", case.reason);
    }
}

fn revision(name: &str, composition: &str, number: i64) -> CompositionRevision {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.tessera.dev/v1", "kind": "CompositionRevision",
        "metadata": {"name": name, "labels": {LABEL_COMPOSITION_NAME: composition}},
        "spec": {"compositeTypeRef": {"apiVersion": "g/v1", "kind": "X"}, "revision": number},
    }))
    .expect("revision")
}

#[test]
fn revision_selection() {
    use CompositionUpdatePolicy::{Automatic, Manual};
    let revs = [
        revision("shared-1", "shared", 1),
        revision("shared-3", "shared", 3),
        revision("shared-2", "shared", 2),
        revision("other-9", "other", 9),
    ];
    let refs: Vec<&CompositionRevision> = revs.iter().collect();
    struct Case {
        reason: &'static str,
        policy: CompositionUpdatePolicy,
        current: Option<&'static str>,
        composition: &'static str,
        want: Result<Option<&'static str>, &'static str>,
    }
    let cases = [
        Case {
            reason: "Automatic follows the newest revision of the composition",
            policy: Automatic,
            current: Some("shared-1"),
            composition: "shared",
            want: Ok(Some("shared-3")),
        },
        Case {
            reason: "Manual stays on the pinned revision",
            policy: Manual,
            current: Some("shared-1"),
            composition: "shared",
            want: Ok(Some("shared-1")),
        },
        Case {
            reason: "Manual pins the newest revision once when nothing is pinned",
            policy: Manual,
            current: None,
            composition: "shared",
            want: Ok(Some("shared-3")),
        },
        Case {
            reason: "Manual re-pins when the pinned revision belongs to another composition",
            policy: Manual,
            current: Some("other-9"),
            composition: "shared",
            want: Ok(Some("shared-3")),
        },
        Case {
            reason: "a pinned revision that does not exist is an error",
            policy: Manual,
            current: Some("shared-7"),
            composition: "shared",
            want: Err(
                "CompositionRevision \"shared-7\" does not exist; set spec.compositionRevisionRef to an existing revision of Composition \"shared\"",
            ),
        },
        Case {
            reason: "no revision yet: render from the composition itself",
            policy: Automatic,
            current: None,
            composition: "fresh",
            want: Ok(None),
        },
    ];
    for case in cases {
        let got = select_revision(case.policy, case.current, case.composition, &refs)
            .map(|r| r.map(|r| r.name_any()))
            .map_err(|e| e.to_string());
        let want = case
            .want
            .map(|n| n.map(str::to_string))
            .map_err(str::to_string);
        assert_eq!(got, want, "{}", case.reason);
    }
}

#[test]
fn update_policy_comes_from_the_composite_then_the_xrd() {
    use CompositionUpdatePolicy::{Automatic, Manual};
    let manual_xrd = xrd(json!({"defaultCompositionUpdatePolicy": "Manual"}));
    assert_eq!(update_policy(&spec(json!({})), &xrd(json!({}))), Automatic);
    assert_eq!(update_policy(&spec(json!({})), &manual_xrd), Manual);
    assert_eq!(
        update_policy(
            &spec(json!({"compositionUpdatePolicy": "Automatic"})),
            &manual_xrd
        ),
        Automatic
    );
}

#[test]
fn connection_secret_target() {
    let comp = |ns: Option<&str>| -> CompositionSpec {
        serde_json::from_value(json!({
            "compositeTypeRef": {"apiVersion": "g/v1", "kind": "X"},
            "writeConnectionSecretsToNamespace": ns,
        }))
        .expect("composition spec")
    };
    let target = |s: serde_json::Value, ns: Option<&str>| {
        connection_target(&spec(s), &comp(ns), "uid-1").map(|r| (r.namespace, r.name))
    };
    let pair = |ns: &str, name: &str| Some((ns.to_string(), name.to_string()));
    assert_eq!(
        target(
            json!({"writeConnectionSecretToRef": {"name": "db", "namespace": "shop"}}),
            Some("infra")
        ),
        pair("shop", "db"),
        "the composite's reference wins (a claim's namespace)"
    );
    assert_eq!(
        target(
            json!({"writeConnectionSecretToRef": {"name": "db"}}),
            Some("infra")
        ),
        pair("infra", "db"),
        "the composition supplies a missing namespace"
    );
    assert_eq!(
        target(json!({}), Some("infra")),
        pair("infra", "uid-1"),
        "without a reference the Secret is named after the uid"
    );
    assert_eq!(
        target(json!({"writeConnectionSecretToRef": {"name": "db"}}), None),
        None
    );
    assert_eq!(target(json!({}), None), None, "nowhere to write");
}

#[test]
fn a_changed_selection_chooses_again_and_a_persons_choice_stays() {
    let comps = [
        composition(
            "postgres-shared",
            json!({"engine": "shared"}),
            "XPostgresDatabase",
            "v1alpha1",
        ),
        composition(
            "postgres-rds",
            json!({"engine": "rds"}),
            "XPostgresDatabase",
            "v1alpha1",
        ),
    ];
    let refs: Vec<&Composition> = comps.iter().collect();
    let xrd = xrd(json!({"defaultCompositionRef": {"name": "postgres-shared"}}));
    let select = |s: &XrSpec| select_composition(s, &xrd, &xr_type(), &refs);
    let by = |composition: &str, selector: Option<&str>| SelectedBy {
        composition: composition.into(),
        selector: selector.map(|v| BTreeMap::from([("engine".to_string(), v.to_string())])),
    };
    struct Case {
        reason: &'static str,
        spec: XrSpec,
        recorded: Option<SelectedBy>,
        want: (&'static str, Option<SelectedBy>),
    }
    let cases = [
        Case {
            reason: "nothing recorded: the selector chooses, and the selection is recorded",
            spec: spec(json!({"compositionSelector": {"matchLabels": {"engine": "rds"}}})),
            recorded: None,
            want: ("postgres-rds", Some(by("postgres-rds", Some("rds")))),
        },
        Case {
            reason: "the same selection keeps the recorded Composition",
            spec: spec(json!({"compositionRef": {"name": "postgres-rds"},
                               "compositionSelector": {"matchLabels": {"engine": "rds"}}})),
            recorded: Some(by("postgres-rds", Some("rds"))),
            want: ("postgres-rds", Some(by("postgres-rds", Some("rds")))),
        },
        Case {
            reason: "a changed selector chooses again",
            spec: spec(json!({"compositionRef": {"name": "postgres-rds"},
                               "compositionSelector": {"matchLabels": {"engine": "shared"}}})),
            recorded: Some(by("postgres-rds", Some("rds"))),
            want: (
                "postgres-shared",
                Some(by("postgres-shared", Some("shared"))),
            ),
        },
        Case {
            reason: "a removed selector falls back to the XRD's default",
            spec: spec(json!({"compositionRef": {"name": "postgres-rds"}})),
            recorded: Some(by("postgres-rds", Some("rds"))),
            want: ("postgres-shared", Some(by("postgres-shared", None))),
        },
        Case {
            reason: "a selector added to a composite on the default chooses again",
            spec: spec(json!({"compositionRef": {"name": "postgres-shared"},
                               "compositionSelector": {"matchLabels": {"engine": "rds"}}})),
            recorded: Some(by("postgres-shared", None)),
            want: ("postgres-rds", Some(by("postgres-rds", Some("rds")))),
        },
        Case {
            reason: "a compositionRef set by a person (not the one recorded) stays, unrecorded",
            spec: spec(json!({"compositionRef": {"name": "postgres-rds"},
                               "compositionSelector": {"matchLabels": {"engine": "shared"}}})),
            recorded: Some(by("postgres-shared", Some("shared"))),
            want: ("postgres-rds", None),
        },
        Case {
            reason: "a composite recorded before the annotation whose selection agrees is adopted",
            spec: spec(json!({"compositionRef": {"name": "postgres-shared"}})),
            recorded: None,
            want: ("postgres-shared", Some(by("postgres-shared", None))),
        },
    ];
    for c in cases {
        let (chosen, recorded) =
            follow_selection(&c.spec, c.recorded.as_ref(), select).expect(c.reason);
        assert_eq!(
            (chosen.name_any().as_str(), recorded),
            (c.want.0, c.want.1),
            "{}",
            c.reason
        );
    }
    let parsed = SelectedBy::parse(Some(&by("postgres-rds", Some("rds")).to_annotation()));
    assert_eq!(parsed, Some(by("postgres-rds", Some("rds"))));
    assert_eq!(SelectedBy::parse(Some("not json")), None);
}
