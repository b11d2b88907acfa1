use serde_json::{Value, json};

use super::*;

struct Case {
    reason: &'static str,
    transform: Value,
    input: Value,
    want: Result<Value, &'static str>,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let t: Transform = serde_json::from_value(case.transform.clone())
            .unwrap_or_else(|e| panic!("{}: bad transform in test: {e}", case.reason));
        let got = apply_transform(3, &t, case.input).map_err(|e| e.to_string());
        assert_eq!(got, case.want.map_err(str::to_string), "{}", case.reason);
    }
}

#[test]
fn map() {
    let m = json!({"type": "map", "map": {"small": "db.t3.micro", "large": {"class": "db.m5", "n": 2}}});
    run(vec![
        Case {
            reason: "a string key maps to a string",
            transform: m.clone(),
            input: json!("small"),
            want: Ok(json!("db.t3.micro")),
        },
        Case {
            reason: "a key may map to any JSON value",
            transform: m.clone(),
            input: json!("large"),
            want: Ok(json!({"class": "db.m5", "n": 2})),
        },
        Case {
            reason: "a missing key is an error naming the transform index, not the key: it may be a secret",
            transform: m.clone(),
            input: json!("medium"),
            want: Err("transform 3 (map): input is not a key of the map"),
        },
        Case {
            reason: "non-string input is an error, as in Crossplane",
            transform: m,
            input: json!(1),
            want: Err("transform 3 (map): input must be a string, got an integer"),
        },
        Case {
            reason: "type map without a map is an error",
            transform: json!({"type": "map"}),
            input: json!("small"),
            want: Err("transform 3 (map): type map requires the map field"),
        },
    ]);
}

#[test]
fn match_() {
    let m = |fallback: Value| {
        let mut t = json!({"type": "match", "match": {"patterns": [
            {"type": "literal", "literal": "eu-west-1", "result": "europe"},
            {"type": "regexp", "regexp": "^us-", "result": {"continent": "america"}},
            {"literal": "ap-south-1", "result": 3},
        ]}});
        if let (Some(obj), Value::Object(extra)) = (t["match"].as_object_mut(), fallback) {
            obj.extend(extra);
        }
        t
    };
    run(vec![
        Case {
            reason: "a literal pattern matches exactly",
            transform: m(json!({})),
            input: json!("eu-west-1"),
            want: Ok(json!("europe")),
        },
        Case {
            reason: "a regexp pattern matches anywhere unless anchored, result may be an object",
            transform: m(json!({})),
            input: json!("us-east-2"),
            want: Ok(json!({"continent": "america"})),
        },
        Case {
            reason: "the pattern type defaults to literal",
            transform: m(json!({})),
            input: json!("ap-south-1"),
            want: Ok(json!(3)),
        },
        Case {
            reason: "literal matching is case-sensitive; no match and no fallback gives null",
            transform: m(json!({})),
            input: json!("EU-WEST-1"),
            want: Ok(Value::Null),
        },
        Case {
            reason: "fallbackValue is returned when nothing matches",
            transform: m(json!({"fallbackValue": "elsewhere"})),
            input: json!("sa-east-1"),
            want: Ok(json!("elsewhere")),
        },
        Case {
            reason: "fallbackTo Input returns the input when nothing matches",
            transform: m(json!({"fallbackTo": "Input"})),
            input: json!("sa-east-1"),
            want: Ok(json!("sa-east-1")),
        },
        Case {
            reason: "fallbackTo Input with a fallbackValue is contradictory",
            transform: m(json!({"fallbackTo": "Input", "fallbackValue": "x"})),
            input: json!("sa-east-1"),
            want: Err("transform 3 (match): cannot set both fallbackValue and fallbackTo: Input"),
        },
        Case {
            reason: "non-string input is an error naming the pattern",
            transform: m(json!({})),
            input: json!(true),
            want: Err("transform 3 (match): pattern 0: input must be a string, got a boolean"),
        },
        Case {
            reason: "an invalid regexp is an error naming the pattern",
            transform: json!({"type": "match", "match": {"patterns": [
                {"type": "regexp", "regexp": "(", "result": 1}]}}),
            input: json!("x"),
            want: Err(
                "transform 3 (match): pattern 0: invalid regexp \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group",
            ),
        },
        Case {
            reason: "a regexp pattern without regexp is an error",
            transform: json!({"type": "match", "match": {"patterns": [{"type": "regexp", "result": 1}]}}),
            input: json!("x"),
            want: Err("transform 3 (match): pattern 0: type regexp requires regexp"),
        },
        Case {
            reason: "no patterns at all falls back",
            transform: json!({"type": "match", "match": {"patterns": [], "fallbackValue": 0}}),
            input: json!("x"),
            want: Ok(json!(0)),
        },
    ]);
}

#[test]
fn math() {
    run(vec![
        Case {
            reason: "multiply is the default type; integers stay integers",
            transform: json!({"type": "math", "math": {"multiply": 3}}),
            input: json!(7),
            want: Ok(json!(21)),
        },
        Case {
            reason: "multiplying a float gives a float",
            transform: json!({"type": "math", "math": {"type": "Multiply", "multiply": 2}}),
            input: json!(1.25),
            want: Ok(json!(2.5)),
        },
        Case {
            reason: "overflow is an error, not a wrapped number",
            transform: json!({"type": "math", "math": {"multiply": 2}}),
            input: json!(i64::MAX),
            want: Err("transform 3 (math): input * 2 overflows a 64-bit integer"),
        },
        Case {
            reason: "ClampMin raises a smaller value to the minimum",
            transform: json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 20}}),
            input: json!(5),
            want: Ok(json!(20)),
        },
        Case {
            reason: "ClampMin keeps a larger value, type and all",
            transform: json!({"type": "math", "math": {"type": "ClampMin", "clampMin": 20}}),
            input: json!(25.5),
            want: Ok(json!(25.5)),
        },
        Case {
            reason: "ClampMax lowers a larger value to the maximum",
            transform: json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 100}}),
            input: json!(250),
            want: Ok(json!(100)),
        },
        Case {
            reason: "ClampMax compares floats truncated, as Crossplane does",
            transform: json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 100}}),
            input: json!(100.7),
            want: Ok(json!(100.7)),
        },
        Case {
            reason: "ClampMax keeps a smaller value",
            transform: json!({"type": "math", "math": {"type": "ClampMax", "clampMax": 100}}),
            input: json!(-3),
            want: Ok(json!(-3)),
        },
        Case {
            reason: "a string input is an error",
            transform: json!({"type": "math", "math": {"multiply": 2}}),
            input: json!("2"),
            want: Err("transform 3 (math): input must be a number, got a string"),
        },
        Case {
            reason: "Multiply without multiply is an error",
            transform: json!({"type": "math", "math": {}}),
            input: json!(2),
            want: Err("transform 3 (math): type Multiply requires multiply"),
        },
        Case {
            reason: "ClampMin without clampMin is an error",
            transform: json!({"type": "math", "math": {"type": "ClampMin", "clampMax": 1}}),
            input: json!(2),
            want: Err("transform 3 (math): type ClampMin requires clampMin"),
        },
        Case {
            reason: "ClampMax without clampMax is an error",
            transform: json!({"type": "math", "math": {"type": "ClampMax"}}),
            input: json!(2),
            want: Err("transform 3 (math): type ClampMax requires clampMax"),
        },
    ]);
}

fn string(s: Value) -> Value {
    json!({"type": "string", "string": s})
}

#[test]
fn string_format_trim_regexp_join() {
    run(vec![
        Case {
            reason: "Format is the default type",
            transform: string(json!({"fmt": "db-%s"})),
            input: json!("orders"),
            want: Ok(json!("db-orders")),
        },
        Case {
            reason: "Format of a number with %d",
            transform: string(json!({"type": "Format", "fmt": "%d GiB"})),
            input: json!(20),
            want: Ok(json!("20 GiB")),
        },
        Case {
            reason: "Format without fmt is an error",
            transform: string(json!({"type": "Format"})),
            input: json!("x"),
            want: Err("transform 3 (string): type Format requires fmt"),
        },
        Case {
            reason: "Format with two verbs for one input is an error",
            transform: string(json!({"fmt": "%s-%s"})),
            input: json!("x"),
            want: Err(
                "transform 3 (string): format \"%s-%s\" has more verbs than the 1 value(s) given",
            ),
        },
        Case {
            reason: "TrimPrefix removes the prefix",
            transform: string(json!({"type": "TrimPrefix", "trim": "arn:aws:"})),
            input: json!("arn:aws:iam::1"),
            want: Ok(json!("iam::1")),
        },
        Case {
            reason: "TrimPrefix leaves input without the prefix alone",
            transform: string(json!({"type": "TrimPrefix", "trim": "x"})),
            input: json!("abc"),
            want: Ok(json!("abc")),
        },
        Case {
            reason: "TrimSuffix removes the suffix once",
            transform: string(json!({"type": "TrimSuffix", "trim": "-db"})),
            input: json!("orders-db-db"),
            want: Ok(json!("orders-db")),
        },
        Case {
            reason: "TrimSuffix without trim is an error",
            transform: string(json!({"type": "TrimSuffix"})),
            input: json!("a"),
            want: Err("transform 3 (string): type TrimSuffix requires trim"),
        },
        Case {
            reason: "Regexp returns the whole match by default",
            transform: string(json!({"type": "Regexp", "regexp": {"match": "[0-9]+"}})),
            input: json!("arn:aws:iam::123456:role/x"),
            want: Ok(json!("123456")),
        },
        Case {
            reason: "Regexp returns the requested group",
            transform: string(
                json!({"type": "Regexp", "regexp": {"match": "iam::([0-9]+):role/(.*)", "group": 2}}),
            ),
            input: json!("arn:aws:iam::123456:role/admin"),
            want: Ok(json!("admin")),
        },
        Case {
            reason: "Regexp without a match is an error",
            transform: string(json!({"type": "Regexp", "regexp": {"match": "^z"}})),
            input: json!("abc"),
            want: Err("transform 3 (string): regexp \"^z\" had no matches for group 0"),
        },
        Case {
            reason: "Regexp asking for a group that does not exist is an error",
            transform: string(json!({"type": "Regexp", "regexp": {"match": "(a)", "group": 2}})),
            input: json!("abc"),
            want: Err("transform 3 (string): regexp \"(a)\" had no matches for group 2"),
        },
        Case {
            reason: "Join joins list items formatted with %v",
            transform: string(json!({"type": "Join", "join": {"separator": ","}})),
            input: json!(["a", 1, true]),
            want: Ok(json!("a,1,true")),
        },
        Case {
            reason: "Join of a non-list is an error",
            transform: string(json!({"type": "Join", "join": {"separator": ","}})),
            input: json!("a"),
            want: Err("transform 3 (string): input must be a list, got a string"),
        },
        Case {
            reason: "Join without join is an error",
            transform: string(json!({"type": "Join"})),
            input: json!(["a"]),
            want: Err("transform 3 (string): type Join requires join"),
        },
        Case {
            reason: "type string without string is an error",
            transform: json!({"type": "string"}),
            input: json!("a"),
            want: Err("transform 3 (string): type string requires the string field"),
        },
    ]);
}

fn conv(c: &str) -> Value {
    string(json!({"type": "Convert", "convert": c}))
}

#[test]
fn string_convert() {
    run(vec![
        Case {
            reason: "ToUpper",
            transform: conv("ToUpper"),
            input: json!("Orders"),
            want: Ok(json!("ORDERS")),
        },
        Case {
            reason: "ToLower",
            transform: conv("ToLower"),
            input: json!("Orders"),
            want: Ok(json!("orders")),
        },
        Case {
            reason: "ToUpper of a number formats it first",
            transform: conv("ToUpper"),
            input: json!(12),
            want: Ok(json!("12")),
        },
        Case {
            reason: "ToBase64",
            transform: conv("ToBase64"),
            input: json!("hello"),
            want: Ok(json!("aGVsbG8=")),
        },
        Case {
            reason: "FromBase64",
            transform: conv("FromBase64"),
            input: json!("aGVsbG8="),
            want: Ok(json!("hello")),
        },
        Case {
            reason: "FromBase64 of invalid input is an error",
            transform: conv("FromBase64"),
            input: json!("not base64!"),
            want: Err("transform 3 (string): input is not valid base64"),
        },
        Case {
            reason: "ToJson writes Go's JSON: sorted keys, HTML-safe escapes",
            transform: conv("ToJson"),
            input: json!({"b": [1, 2.5], "a": "<x&y>"}),
            want: Ok(json!(r#"{"a":"\u003cx\u0026y\u003e","b":[1,2.5]}"#)),
        },
        Case {
            reason: "ToJson of a string quotes it",
            transform: conv("ToJson"),
            input: json!("x"),
            want: Ok(json!("\"x\"")),
        },
        Case {
            reason: "ToSha1 of a string hashes the string",
            transform: conv("ToSha1"),
            input: json!("abc"),
            want: Ok(json!("a9993e364706816aba3e25717850c26c9cd0d89d")),
        },
        Case {
            reason: "ToSha256 of a string hashes the string",
            transform: conv("ToSha256"),
            input: json!("abc"),
            want: Ok(json!(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )),
        },
        Case {
            reason: "ToSha256 of an object hashes its JSON text",
            transform: conv("ToSha256"),
            // sha256 of the text {"a":1}
            input: json!({"a": 1}),
            want: Ok(json!(
                "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
            )),
        },
        Case {
            reason: "ToSha512 of a string hashes the string",
            transform: conv("ToSha512"),
            input: json!("abc"),
            want: Ok(json!(
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
            )),
        },
        Case {
            reason: "ToAdler32 gives the decimal checksum",
            transform: conv("ToAdler32"),
            input: json!("Wikipedia"),
            want: Ok(json!("300286872")),
        },
    ]);
}

fn to(to_type: &str, format: Option<&str>) -> Value {
    let mut c = json!({"toType": to_type});
    if let Some(f) = format {
        c["format"] = json!(f);
    }
    json!({"type": "convert", "convert": c})
}

#[test]
fn convert() {
    run(vec![
        Case {
            reason: "same type is a no-op",
            transform: to("string", None),
            input: json!("x"),
            want: Ok(json!("x")),
        },
        Case {
            reason: "int is the same as int64",
            transform: to("int", None),
            input: json!(5),
            want: Ok(json!(5)),
        },
        Case {
            reason: "string to int64",
            transform: to("int64", None),
            input: json!("-42"),
            want: Ok(json!(-42)),
        },
        Case {
            reason: "string to int64 that is not a number is an error",
            transform: to("int", None),
            input: json!("4.2"),
            want: Err("transform 3 (convert): cannot convert the input string to int64"),
        },
        Case {
            reason: "string to bool accepts Go's spellings",
            transform: to("bool", None),
            input: json!("T"),
            want: Ok(json!(true)),
        },
        Case {
            reason: "string to bool rejects others",
            transform: to("bool", None),
            input: json!("yes"),
            want: Err("transform 3 (convert): cannot convert the input string to bool"),
        },
        Case {
            reason: "string to float64",
            transform: to("float64", None),
            input: json!("2.5"),
            want: Ok(json!(2.5)),
        },
        Case {
            reason: "string to float64 as a quantity",
            transform: to("float64", Some("quantity")),
            input: json!("250m"),
            want: Ok(json!(0.25)),
        },
        Case {
            reason: "an invalid quantity is an error",
            transform: to("float64", Some("quantity")),
            input: json!("lots"),
            want: Err(
                "transform 3 (convert): input is not a valid quantity (e.g. 250m, 1.5, 10Gi, 1e3)",
            ),
        },
        Case {
            reason: "string to object with format json",
            transform: to("object", Some("json")),
            input: json!(r#"{"a": [1]}"#),
            want: Ok(json!({"a": [1]})),
        },
        Case {
            reason: "string to array with format json",
            transform: to("array", Some("json")),
            input: json!("[1, \"b\"]"),
            want: Ok(json!([1, "b"])),
        },
        Case {
            reason: "a JSON array is not an object",
            transform: to("object", Some("json")),
            input: json!("[1]"),
            want: Err(
                "transform 3 (convert): cannot convert the input string to an object; it is not a JSON object",
            ),
        },
        Case {
            reason: "string to object needs format json",
            transform: to("object", None),
            input: json!("{}"),
            want: Err(
                "transform 3 (convert): conversion from string to object is not supported with format none",
            ),
        },
        Case {
            reason: "int64 to string",
            transform: to("string", None),
            input: json!(5432),
            want: Ok(json!("5432")),
        },
        Case {
            reason: "int64 to bool is true only for 1",
            transform: to("bool", None),
            input: json!(2),
            want: Ok(json!(false)),
        },
        Case {
            reason: "int64 to float64",
            transform: to("float64", None),
            input: json!(3),
            want: Ok(json!(3.0)),
        },
        Case {
            reason: "bool to string",
            transform: to("string", None),
            input: json!(true),
            want: Ok(json!("true")),
        },
        Case {
            reason: "bool to int64",
            transform: to("int64", None),
            input: json!(true),
            want: Ok(json!(1)),
        },
        Case {
            reason: "bool to float64",
            transform: to("float64", None),
            input: json!(false),
            want: Ok(json!(0.0)),
        },
        Case {
            reason: "float64 to string never uses an exponent",
            transform: to("string", None),
            input: json!(1.5e21),
            want: Ok(json!("1500000000000000000000")),
        },
        Case {
            reason: "float64 to int64 truncates toward zero",
            transform: to("int64", None),
            input: json!(-2.9),
            want: Ok(json!(-2)),
        },
        Case {
            reason: "float64 to bool is true only for 1",
            transform: to("bool", None),
            input: json!(1.0),
            want: Ok(json!(true)),
        },
        Case {
            reason: "int64 with format quantity is not supported",
            transform: to("float64", Some("quantity")),
            input: json!(3),
            want: Err(
                "transform 3 (convert): conversion from int64 to float64 is not supported with format quantity",
            ),
        },
        Case {
            reason: "an object cannot be converted",
            transform: to("string", None),
            input: json!({"a": 1}),
            want: Err(
                "transform 3 (convert): cannot convert an object; input must be a string, bool or number",
            ),
        },
    ]);
}

#[test]
fn transforms_run_in_order_and_errors_name_the_failing_index() {
    let ts: Vec<Transform> = serde_json::from_value(json!([
        {"type": "math", "math": {"multiply": 2}},
        {"type": "convert", "convert": {"toType": "string"}},
        {"type": "string", "string": {"fmt": "%sGi"}},
    ]))
    .expect("transforms parse");
    assert_eq!(apply_transforms(&ts, json!(10)), Ok(json!("20Gi")));
    assert_eq!(
        apply_transforms(&ts, json!("10")).map_err(|e| e.to_string()),
        Err("transform 0 (math): input must be a number, got a string".to_string())
    );
    assert_eq!(
        apply_transforms(&[], json!(1)),
        Ok(json!(1)),
        "no transforms is identity"
    );
}
