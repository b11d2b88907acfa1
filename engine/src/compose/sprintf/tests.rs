use serde_json::{Value, json};

use super::*;

#[test]
fn sprintf_formats_like_go() {
    struct Case {
        reason: &'static str,
        format: &'static str,
        args: Vec<Value>,
        want: Result<&'static str, &'static str>,
    }
    let cases = [
        Case {
            reason: "%s of a string",
            format: "db-%s",
            args: vec![json!("orders")],
            want: Ok("db-orders"),
        },
        Case {
            reason: "several verbs in order",
            format: "%s-%s",
            args: vec![json!("team"), json!("app")],
            want: Ok("team-app"),
        },
        Case {
            reason: "%d of an integer",
            format: "port %d",
            args: vec![json!(5432)],
            want: Ok("port 5432"),
        },
        Case {
            reason: "%d of a float without fraction prints the integer",
            format: "%d",
            args: vec![json!(3.0)],
            want: Ok("3"),
        },
        Case {
            reason: "%s of a number is forgiven and prints like %v",
            format: "%s",
            args: vec![json!(10)],
            want: Ok("10"),
        },
        Case {
            reason: "%v of a float prints shortest digits",
            format: "%v",
            args: vec![json!(0.25)],
            want: Ok("0.25"),
        },
        Case {
            reason: "%v of a large float uses Go's exponent form",
            format: "%v",
            args: vec![json!(1.5e7)],
            want: Ok("1.5e+07"),
        },
        Case {
            reason: "%v of a list and an object prints Go's representation",
            format: "%v %v",
            args: vec![json!(["a", 1]), json!({"b": true, "a": null})],
            want: Ok("[a 1] map[a:<nil> b:true]"),
        },
        Case {
            reason: "%q quotes and escapes",
            format: "%q",
            args: vec![json!("say \"hi\"\n")],
            want: Ok(r#""say \"hi\"\n""#),
        },
        Case {
            reason: "%t of a boolean",
            format: "enabled=%t",
            args: vec![json!(false)],
            want: Ok("enabled=false"),
        },
        Case {
            reason: "%x of a string is hex of its bytes; %X of a number is upper-case hex",
            format: "%x %X",
            args: vec![json!("hi"), json!(255)],
            want: Ok("6869 FF"),
        },
        Case {
            reason: "%.2f rounds to the precision",
            format: "%.2f",
            args: vec![json!(1.23456)],
            want: Ok("1.23"),
        },
        Case {
            reason: "%05d pads with zeros after the sign",
            format: "%05d",
            args: vec![json!(-42)],
            want: Ok("-0042"),
        },
        Case {
            reason: "%-6s| pads on the right, %6s| on the left",
            format: "%-6s|%6s|",
            args: vec![json!("ab"), json!("cd")],
            want: Ok("ab    |    cd|"),
        },
        Case {
            reason: "%+d shows the sign",
            format: "%+d",
            args: vec![json!(7)],
            want: Ok("+7"),
        },
        Case {
            reason: "%.3s truncates a string",
            format: "%.3s",
            args: vec![json!("abcdef")],
            want: Ok("abc"),
        },
        Case {
            reason: "explicit argument indexes may reuse values",
            format: "%[2]s.%[1]s.%[2]s",
            args: vec![json!("a"), json!("b")],
            want: Ok("b.a.b"),
        },
        Case {
            reason: "%% is a literal percent and takes no value",
            format: "100%% %s",
            args: vec![json!("sure")],
            want: Ok("100% sure"),
        },
        Case {
            reason: "too few values is an error, not Go's %!s(MISSING)",
            format: "%s-%s",
            args: vec![json!("a")],
            want: Err("format \"%s-%s\" has more verbs than the 1 value(s) given"),
        },
        Case {
            reason: "too many values is an error, not Go's %!(EXTRA)",
            format: "static",
            args: vec![json!("a")],
            want: Err("format \"static\" has 0 verb(s) for 1 value(s)"),
        },
        Case {
            reason: "%d of a string is an error",
            format: "%d",
            args: vec![json!("abc")],
            want: Err("format \"%d\": %d cannot format a string"),
        },
        Case {
            reason: "an unknown verb is an error",
            format: "%y",
            args: vec![json!("abc")],
            want: Err("format \"%y\": %y is not a supported verb"),
        },
        Case {
            reason: "a trailing % is an error",
            format: "abc%",
            args: vec![],
            want: Err("format \"abc%\" ends with an incomplete verb"),
        },
    ];
    for case in cases {
        let args: Vec<&Value> = case.args.iter().collect();
        let got = sprintf(case.format, &args);
        assert_eq!(
            got,
            case.want.map(str::to_string).map_err(str::to_string),
            "{}",
            case.reason
        );
    }
}

#[test]
fn go_float_g_matches_go() {
    let cases = [
        (1.0, "1"),
        (0.5, "0.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e21, "1e+21"),
    ];
    for (f, want) in cases {
        assert_eq!(go_float_g(f), want, "{f}");
    }
}
