use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

fn template(details: Value) -> ComposedTemplate {
    serde_json::from_value(json!({"name": "role", "base": {}, "connectionDetails": details}))
        .expect("template parses")
}

fn secret() -> ConnectionDetails {
    let mut c = ConnectionDetails::new();
    c.insert("username", "orders");
    c.insert("password", "s3cr3t");
    c.insert("endpoint", "pg.internal");
    c
}

fn observed() -> Value {
    json!({"status": {"atProvider": {"port": 5432, "host": "pg.internal", "flags": {"tls": true}}}})
}

fn details(pairs: &[(&str, &str)]) -> ConnectionDetails {
    let mut c = ConnectionDetails::new();
    for (k, v) in pairs {
        c.insert(*k, *v);
    }
    c
}

#[test]
fn connection_details() {
    struct Case {
        reason: &'static str,
        details: Value,
        want: Result<ConnectionDetails, &'static str>,
    }
    let cases = [
        Case {
            reason: "FromConnectionSecretKey copies a key; the name defaults to the key",
            details: json!([{"fromConnectionSecretKey": "username"}]),
            want: Ok(details(&[("username", "orders")])),
        },
        Case {
            reason: "FromConnectionSecretKey can rename the key",
            details: json!([{"name": "user", "type": "FromConnectionSecretKey", "fromConnectionSecretKey": "username"}]),
            want: Ok(details(&[("user", "orders")])),
        },
        Case {
            reason: "FromConnectionSecretKey skips a key the resource does not have yet",
            details: json!([{"fromConnectionSecretKey": "ca.crt"}]),
            want: Ok(details(&[])),
        },
        Case {
            reason: "FromFieldPath copies a string field as it is",
            details: json!([{"name": "host", "fromFieldPath": "status.atProvider.host"}]),
            want: Ok(details(&[("host", "pg.internal")])),
        },
        Case {
            reason: "FromFieldPath writes other values as JSON",
            details: json!([
                {"name": "port", "type": "FromFieldPath", "fromFieldPath": "status.atProvider.port"},
                {"name": "flags", "fromFieldPath": "status.atProvider.flags"},
            ]),
            want: Ok(details(&[("port", "5432"), ("flags", "{\"tls\":true}")])),
        },
        Case {
            reason: "FromFieldPath skips a field not observed yet",
            details: json!([{"name": "arn", "fromFieldPath": "status.atProvider.arn"}]),
            want: Ok(details(&[])),
        },
        Case {
            reason: "FromFieldPath requires a name",
            details: json!([{"fromFieldPath": "status.atProvider.host"}]),
            want: Err("connection detail 0 of resource 'role': type FromFieldPath requires name"),
        },
        Case {
            reason: "FromFieldPath with a malformed path is an error",
            details: json!([{"name": "x", "fromFieldPath": "status..host"}]),
            want: Err(
                "connection detail 0 of resource 'role': field path \"status..host\": empty field name",
            ),
        },
        Case {
            reason: "FromValue writes a fixed value",
            details: json!([{"name": "port", "type": "FromValue", "value": "5432"}]),
            want: Ok(details(&[("port", "5432")])),
        },
        Case {
            reason: "FromValue requires a value",
            details: json!([{"name": "port", "type": "FromValue"}]),
            want: Err("connection detail 0 of resource 'role': type FromValue requires value"),
        },
        Case {
            reason: "Format fills placeholders from the details gathered before it",
            details: json!([
                {"fromConnectionSecretKey": "username"},
                {"fromConnectionSecretKey": "password"},
                {"name": "endpoint", "fromFieldPath": "status.atProvider.host"},
                {"name": "port", "value": "5432"},
                {"name": "database", "value": "orders"},
                {"name": "url", "type": "Format", "fmt": "postgres://{username}:{password}@{endpoint}:{port}/{database}"},
            ]),
            want: Ok(details(&[
                ("username", "orders"),
                ("password", "s3cr3t"),
                ("endpoint", "pg.internal"),
                ("port", "5432"),
                ("database", "orders"),
                ("url", "postgres://orders:s3cr3t@pg.internal:5432/orders"),
            ])),
        },
        Case {
            reason: "Format type is inferred from fmt; {{ and }} are literal braces",
            details: json!([
                {"name": "port", "value": "5432"},
                {"name": "json", "fmt": "{{\"port\": {port}}}"},
            ]),
            want: Ok(details(&[("port", "5432"), ("json", "{\"port\": 5432}")])),
        },
        Case {
            reason: "Format is skipped while a placeholder's key is missing",
            details: json!([{"name": "url", "fmt": "postgres://{username}:{password}@host"}]),
            want: Ok(details(&[])),
        },
        Case {
            reason: "Format sees only details listed before it",
            details: json!([
                {"name": "url", "fmt": "{port}"},
                {"name": "port", "value": "5432"},
            ]),
            want: Ok(details(&[("port", "5432")])),
        },
        Case {
            reason: "an unclosed placeholder is an error",
            details: json!([{"name": "url", "fmt": "postgres://{username"}]),
            want: Err(
                "connection detail 0 of resource 'role': fmt \"postgres://{username\" has an unclosed '{'",
            ),
        },
        Case {
            reason: "a lone closing brace is an error",
            details: json!([{"name": "url", "fmt": "a}b"}]),
            want: Err(
                "connection detail 0 of resource 'role': fmt \"a}b\" has a '}' without '{'; write '}}' for a literal brace",
            ),
        },
        Case {
            reason: "a detail without any source is an error",
            details: json!([{"name": "x"}]),
            want: Err(
                "connection detail 0 of resource 'role': set one of value, fmt, fromConnectionSecretKey or fromFieldPath",
            ),
        },
        Case {
            reason: "an explicit type whose field is missing is an error naming the field",
            details: json!([{"name": "x", "value": "1"}, {"name": "y", "type": "FromConnectionSecretKey"}]),
            want: Err(
                "connection detail 1 of resource 'role': type FromConnectionSecretKey requires fromConnectionSecretKey",
            ),
        },
    ];
    let (obs, conn) = (observed(), secret());
    for case in cases {
        let got = extract_connection_details(&template(case.details), &obs, &conn)
            .map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn errors_and_debug_output_never_contain_secret_values() {
    let t = template(json!([
        {"fromConnectionSecretKey": "password"},
        {"name": "url", "fmt": "{password"},
    ]));
    let err = extract_connection_details(&t, &observed(), &secret()).unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    let ok = extract_connection_details(
        &template(json!([{"fromConnectionSecretKey": "password"}])),
        &observed(),
        &secret(),
    )
    .expect("extracts");
    assert!(!format!("{ok:?}").contains("s3cr3t"));
}

#[test]
fn filter_keeps_listed_keys_or_all_when_none_listed() {
    let all = details(&[("username", "u"), ("password", "p"), ("internal", "i")]);
    let kept = filter_connection_details(
        all.clone(),
        &["username".into(), "password".into(), "url".into()],
    );
    assert_eq!(
        kept.0,
        BTreeMap::from([
            ("password".to_string(), b"p".to_vec()),
            ("username".to_string(), b"u".to_vec()),
        ])
    );
    assert_eq!(filter_connection_details(all.clone(), &[]), all);
}
