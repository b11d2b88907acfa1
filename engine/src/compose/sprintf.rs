//! The subset of Go's `fmt.Sprintf` that Crossplane compositions use (`string.fmt` of a
//! string transform, `combine.string.fmt`), applied to JSON values.
//!
//! Verbs: `%v`, `%s`, `%q`, `%d`, `%f`/`%F`, `%g`, `%t`, `%x`/`%X`, `%%`; flags `-`, `+`,
//! ` `, `0`; width; precision; explicit argument indexes (`%[2]s`). Values print as Go
//! prints the decoded JSON: objects as `map[key:value]`, lists as `[a b]`, floats like
//! `%g`.
//!
//! Tessera is stricter and more forgiving than Go in two ways, on purpose: where Go would
//! print `%!d(string=abc)`, `%!s(MISSING)` or `%!(EXTRA ...)` into the output, this returns
//! an error naming the problem; and `%s` formats any value like `%v` (Go prints
//! `%!s(int64=5)` for a number).

use serde_json::Value;

use super::fieldpath::describe;
use super::limits::{MAX_FORMAT_WIDTH, MAX_TRANSFORM_OUTPUT_BYTES};

/// Formats `args` with the Go-style `format`.
pub(crate) fn sprintf(format: &str, args: &[&Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0usize;
    let mut reordered = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            let mut digits = String::new();
            loop {
                match chars.next() {
                    Some(']') => break,
                    Some(d) if d.is_ascii_digit() => digits.push(d),
                    _ => return Err(format!("format {format:?}: malformed argument index")),
                }
            }
            let n: usize = digits
                .parse()
                .map_err(|_| format!("format {format:?}: malformed argument index"))?;
            if n == 0 {
                return Err(format!("format {format:?}: argument indexes start at 1"));
            }
            next_arg = n - 1;
            reordered = true;
        }
        spec.width = take_number(&mut chars);
        if chars.peek() == Some(&'*') {
            return Err(format!("format {format:?}: '*' widths are not supported"));
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(take_number(&mut chars).unwrap_or(0));
        }
        // Checked before formatting: the padding is allocated at once.
        for (what, n) in [("width", spec.width), ("precision", spec.precision)] {
            if let Some(n) = n.filter(|n| *n > MAX_FORMAT_WIDTH) {
                return Err(format!(
                    "format {format:?}: {what} {n} is larger than the limit of {MAX_FORMAT_WIDTH}"
                ));
            }
        }
        let Some(verb) = chars.next() else {
            return Err(format!("format {format:?} ends with an incomplete verb"));
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            return Err(format!(
                "format {format:?} has more verbs than the {} value(s) given",
                args.len()
            ));
        };
        next_arg += 1;
        let formatted = format_one(verb, &spec, arg)
            .map_err(|reason| format!("format {format:?}: %{verb} {reason}"))?;
        // Checked as the output grows: each verb may repeat a large argument (`%[1]s`).
        if out.len() + formatted.len() > MAX_TRANSFORM_OUTPUT_BYTES {
            return Err(format!(
                "format {format:?}: the output is more than the limit of {MAX_TRANSFORM_OUTPUT_BYTES} bytes"
            ));
        }
        out.push_str(&formatted);
    }
    if !reordered && next_arg < args.len() {
        return Err(format!(
            "format {format:?} has {next_arg} verb(s) for {} value(s)",
            args.len()
        ));
    }
    Ok(out)
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

fn take_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> Result<String, String> {
    let cannot = || format!("cannot format {}", describe(arg));
    let (body, numeric) = match verb {
        'v' | 's' => {
            let mut s = go_value(arg);
            if let (Some(p), Value::String(_)) = (spec.precision, arg) {
                s = s.chars().take(p).collect();
            }
            (s, arg.is_number())
        }
        'q' => match arg {
            Value::String(s) => (go_quote(s), false),
            _ => return Err(cannot()),
        },
        'd' => (integer(arg).ok_or_else(cannot)?.to_string(), true),
        'f' | 'F' => {
            let f = arg.as_f64().ok_or_else(cannot)?;
            (format!("{:.*}", spec.precision.unwrap_or(6), f), true)
        }
        'g' => (go_float_g(arg.as_f64().ok_or_else(cannot)?), true),
        't' => match arg {
            Value::Bool(b) => (b.to_string(), false),
            _ => return Err(cannot()),
        },
        'x' | 'X' => {
            let s = match arg {
                Value::String(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                _ => {
                    let i = integer(arg).ok_or_else(cannot)?;
                    let hex = format!("{:x}", i.unsigned_abs());
                    if i < 0 { format!("-{hex}") } else { hex }
                }
            };
            let s = if verb == 'X' { s.to_uppercase() } else { s };
            (s, arg.is_number())
        }
        _ => return Err("is not a supported verb".to_string()),
    };
    Ok(pad(body, numeric, spec))
}

fn pad(mut body: String, numeric: bool, spec: &Spec) -> String {
    if numeric && !body.starts_with('-') {
        if spec.plus {
            body.insert(0, '+');
        } else if spec.space {
            body.insert(0, ' ');
        }
    }
    let len = body.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        return body;
    };
    let fill = width - len;
    if spec.minus {
        body.push_str(&" ".repeat(fill));
        body
    } else if spec.zero && numeric {
        let sign_len = usize::from(body.starts_with(['-', '+', ' ']));
        body.insert_str(sign_len, &"0".repeat(fill));
        body
    } else {
        format!("{}{body}", " ".repeat(fill))
    }
}

/// An integer value, or a float without fractional part.
fn integer(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    // `as` saturates; the range check keeps the conversion exact.
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A value as Go's `%v` prints the decoded JSON value.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_float_g(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            // Go prints maps sorted by key; serde_json's map order depends on its features.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// A float as Go's `%g`/`%v` prints it: shortest digits, exponent form when the exponent
/// is below -4 or at least 6 (e.g. `1e+06`, `1.5e-07`, `123456`, `0.5`).
pub(crate) fn go_float_g(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_string()
        } else if f > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if f == 0.0 {
        return "0".to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.23456789e8".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// A value as Go's `json.Marshal` writes the decoded JSON value: keys sorted, numbers
/// without fraction as integers, and `<`, `>`, `&`, U+2028, U+2029 escaped. Hashes of this
/// text (`ToSha256`, ...) match Crossplane's for the same input.
pub(crate) fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match integer(v) {
            Some(i) if n.is_f64() => out.push_str(&i.to_string()),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(k, out);
                out.push(':');
                write_go_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_go_json_string(s: &str, out: &mut String) {
    // serde_json's escaping equals Go's except for Go's extra HTML-safe escapes.
    let quoted = Value::String(s.to_string()).to_string();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// A string quoted the way Go's `%q` (strconv.Quote) quotes it.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
