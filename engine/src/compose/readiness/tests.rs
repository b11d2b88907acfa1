use serde_json::{Value, json};

use super::*;

fn observed() -> Value {
    json!({
        "status": {
            "atProvider": {
                "state": "available",
                "replicas": 3,
                "size": 2.0,
                "online": true,
                "maintenance": false,
                "endpoint": "",
            },
            "conditions": [
                {"type": "Synced", "status": "True"},
                {"type": "Ready", "status": "False", "reason": "Creating"},
            ],
        }
    })
}

fn template(checks: Value) -> ComposedTemplate {
    serde_json::from_value(json!({"name": "db", "base": {}, "readinessChecks": checks}))
        .expect("template parses")
}

#[test]
fn readiness_checks() {
    struct Case {
        reason: &'static str,
        checks: Value,
        want: Result<bool, &'static str>,
    }
    let cases = [
        Case {
            reason: "no checks: the Ready condition decides (here False)",
            checks: json!([]),
            want: Ok(false),
        },
        Case {
            reason: "None is always ready",
            checks: json!([{"type": "None"}]),
            want: Ok(true),
        },
        Case {
            reason: "NonEmpty passes for a present field",
            checks: json!([{"type": "NonEmpty", "fieldPath": "status.atProvider.state"}]),
            want: Ok(true),
        },
        Case {
            reason: "NonEmpty passes for an empty string, as in Crossplane",
            checks: json!([{"type": "NonEmpty", "fieldPath": "status.atProvider.endpoint"}]),
            want: Ok(true),
        },
        Case {
            reason: "NonEmpty fails for a missing field",
            checks: json!([{"type": "NonEmpty", "fieldPath": "status.atProvider.arn"}]),
            want: Ok(false),
        },
        Case {
            reason: "NonEmpty without fieldPath is an error",
            checks: json!([{"type": "NonEmpty"}]),
            want: Err("readiness check 0 of resource 'db': type NonEmpty requires fieldPath"),
        },
        Case {
            reason: "MatchString passes on an equal string",
            checks: json!([{"type": "MatchString", "fieldPath": "status.atProvider.state", "matchString": "available"}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchString fails on a different string",
            checks: json!([{"type": "MatchString", "fieldPath": "status.atProvider.state", "matchString": "Available"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchString fails on a missing field",
            checks: json!([{"type": "MatchString", "fieldPath": "status.nothing", "matchString": "x"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchString on a number is an error",
            checks: json!([{"type": "MatchString", "fieldPath": "status.atProvider.replicas", "matchString": "3"}]),
            want: Err(
                "readiness check 0 of resource 'db': field status.atProvider.replicas is an integer, not a string",
            ),
        },
        Case {
            reason: "MatchString without matchString is an error",
            checks: json!([{"type": "MatchString", "fieldPath": "status.atProvider.state"}]),
            want: Err("readiness check 0 of resource 'db': type MatchString requires matchString"),
        },
        Case {
            reason: "MatchInteger passes on an equal integer",
            checks: json!([{"type": "MatchInteger", "fieldPath": "status.atProvider.replicas", "matchInteger": 3}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchInteger accepts a float without fraction",
            checks: json!([{"type": "MatchInteger", "fieldPath": "status.atProvider.size", "matchInteger": 2}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchInteger fails on a different integer",
            checks: json!([{"type": "MatchInteger", "fieldPath": "status.atProvider.replicas", "matchInteger": 1}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchInteger on a string is an error",
            checks: json!([{"type": "MatchInteger", "fieldPath": "status.atProvider.state", "matchInteger": 1}]),
            want: Err(
                "readiness check 0 of resource 'db': field status.atProvider.state is a string, not an integer",
            ),
        },
        Case {
            reason: "MatchTrue passes on true",
            checks: json!([{"type": "MatchTrue", "fieldPath": "status.atProvider.online"}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchTrue fails on false",
            checks: json!([{"type": "MatchTrue", "fieldPath": "status.atProvider.maintenance"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchTrue fails on a missing field",
            checks: json!([{"type": "MatchTrue", "fieldPath": "status.atProvider.nothing"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchFalse passes on false",
            checks: json!([{"type": "MatchFalse", "fieldPath": "status.atProvider.maintenance"}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchFalse fails on true",
            checks: json!([{"type": "MatchFalse", "fieldPath": "status.atProvider.online"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchFalse on a string is an error",
            checks: json!([{"type": "MatchFalse", "fieldPath": "status.atProvider.state"}]),
            want: Err(
                "readiness check 0 of resource 'db': field status.atProvider.state is a string, not a boolean",
            ),
        },
        Case {
            reason: "MatchCondition matches type and status",
            checks: json!([{"type": "MatchCondition", "matchCondition": {"type": "Synced", "status": "True"}}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchCondition defaults to Ready=True",
            checks: json!([{"type": "MatchCondition"}]),
            want: Ok(false),
        },
        Case {
            reason: "MatchCondition can require a False status",
            checks: json!([{"type": "MatchCondition", "matchCondition": {"type": "Ready", "status": "False"}}]),
            want: Ok(true),
        },
        Case {
            reason: "MatchCondition fails on a missing condition",
            checks: json!([{"type": "MatchCondition", "matchCondition": {"type": "Healthy", "status": "True"}}]),
            want: Ok(false),
        },
        Case {
            reason: "all checks must pass",
            checks: json!([
                {"type": "MatchTrue", "fieldPath": "status.atProvider.online"},
                {"type": "MatchString", "fieldPath": "status.atProvider.state", "matchString": "deleting"},
            ]),
            want: Ok(false),
        },
        Case {
            reason: "errors name the index of the failing check",
            checks: json!([
                {"type": "None"},
                {"type": "MatchInteger", "fieldPath": "status.atProvider.replicas"},
            ]),
            want: Err(
                "readiness check 1 of resource 'db': type MatchInteger requires matchInteger",
            ),
        },
    ];
    let obs = observed();
    for case in cases {
        let got = is_ready(&template(case.checks), &obs).map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn default_readiness_is_the_ready_condition() {
    let t = template(json!([]));
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(is_ready(&t, &ready), Ok(true), "Ready=True is ready");
    assert_eq!(
        is_ready(&t, &json!({})),
        Ok(false),
        "no status is not ready"
    );
    let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(
        is_ready(&t, &unknown),
        Ok(false),
        "Ready=Unknown is not ready"
    );
}
