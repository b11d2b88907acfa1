//! Transforms, per Crossplane v1's `map`, `match`, `math`, `string` and `convert`.
//!
//! Values are JSON values as decoded from Kubernetes objects: integers stay integers
//! (Go's `int64`), numbers with a fraction are floats (`float64`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use regex::{Regex, RegexBuilder};
use serde_json::{Number, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::ComposeError;
use super::fieldpath::describe;
use super::limits::{
    MAX_REGEX_COMPILED_BYTES, MAX_REGEX_LEN, MAX_TRANSFORM_OUTPUT_BYTES, MAX_VALUE_DEPTH,
    deeper_than,
};
use super::quantity::parse_quantity;
use super::sprintf::{go_json, go_value, sprintf};
use crate::api::composition::{
    ConvertTransform, ConvertTransformFormat, MapTransform, MatchFallbackTo, MatchTransform,
    MatchTransformPatternType, MathTransform, MathTransformType, StringConversionType,
    StringTransform, StringTransformType, Transform, TransformIoType, TransformType,
};

/// Runs `transforms` in order, each on the previous one's output.
pub fn apply_transforms(transforms: &[Transform], input: Value) -> Result<Value, ComposeError> {
    transforms
        .iter()
        .enumerate()
        .try_fold(input, |value, (index, t)| apply_transform(index, t, value))
}

/// Runs one transform; `index` is its position in the patch's `transforms`, for errors.
///
/// Errors say what is wrong with the input (its type, never its content: a value may be a
/// secret) or with the transform. An input or output nested deeper than
/// [`MAX_VALUE_DEPTH`], or a string output longer than [`MAX_TRANSFORM_OUTPUT_BYTES`], is
/// an error.
pub fn apply_transform(index: usize, t: &Transform, input: Value) -> Result<Value, ComposeError> {
    let kind = kind_name(t.type_);
    let fail = |reason: String| ComposeError::Transform {
        index,
        kind,
        reason,
    };
    if deeper_than(&input, MAX_VALUE_DEPTH) {
        return Err(fail(format!(
            "input nests deeper than the limit of {MAX_VALUE_DEPTH} levels"
        )));
    }
    let output = run(kind, t, input).map_err(fail)?;
    if deeper_than(&output, MAX_VALUE_DEPTH) {
        return Err(fail(format!(
            "output nests deeper than the limit of {MAX_VALUE_DEPTH} levels"
        )));
    }
    if let Value::String(text) = &output
        && text.len() > MAX_TRANSFORM_OUTPUT_BYTES
    {
        return Err(fail(format!(
            "output is {} bytes, more than the limit of {MAX_TRANSFORM_OUTPUT_BYTES}",
            text.len()
        )));
    }
    Ok(output)
}

fn run(kind: &'static str, t: &Transform, input: Value) -> Result<Value, String> {
    let missing = || format!("type {kind} requires the {kind} field");
    match t.type_ {
        TransformType::Map => t
            .map
            .as_ref()
            .ok_or_else(missing)
            .and_then(|m| map(m, &input)),
        TransformType::Match => t
            .match_
            .as_ref()
            .ok_or_else(missing)
            .and_then(|m| match_(m, input)),
        TransformType::Math => t
            .math
            .as_ref()
            .ok_or_else(missing)
            .and_then(|m| math(m, input)),
        TransformType::String => t
            .string
            .as_ref()
            .ok_or_else(missing)
            .and_then(|s| string(s, &input)),
        TransformType::Convert => t
            .convert
            .as_ref()
            .ok_or_else(missing)
            .and_then(|c| convert(c, input)),
    }
}

fn kind_name(t: TransformType) -> &'static str {
    match t {
        TransformType::Map => "map",
        TransformType::Match => "match",
        TransformType::Math => "math",
        TransformType::String => "string",
        TransformType::Convert => "convert",
    }
}

fn map(m: &MapTransform, input: &Value) -> Result<Value, String> {
    let Value::String(key) = input else {
        return Err(format!("input must be a string, got {}", describe(input)));
    };
    m.pairs
        .get(key)
        .cloned()
        .ok_or_else(|| "input is not a key of the map".to_string())
}

fn match_(m: &MatchTransform, input: Value) -> Result<Value, String> {
    for (i, p) in m.patterns.iter().enumerate() {
        let matches = match p.pattern_type() {
            MatchTransformPatternType::Literal => {
                let literal = p
                    .literal
                    .as_ref()
                    .ok_or_else(|| format!("pattern {i}: type literal requires literal"))?;
                let s = input.as_str().ok_or_else(|| {
                    format!(
                        "pattern {i}: input must be a string, got {}",
                        describe(&input)
                    )
                })?;
                s == literal
            }
            MatchTransformPatternType::Regexp => {
                let re = p
                    .regexp
                    .as_deref()
                    .ok_or_else(|| format!("pattern {i}: type regexp requires regexp"))?;
                let re = compile(re).map_err(|e| format!("pattern {i}: {e}"))?;
                let s = input.as_str().ok_or_else(|| {
                    format!(
                        "pattern {i}: input must be a string, got {}",
                        describe(&input)
                    )
                })?;
                re.is_match(s)
            }
        };
        if matches {
            return Ok(p.result.clone());
        }
    }
    match m.fallback_to.unwrap_or_default() {
        MatchFallbackTo::Input if m.fallback_value.is_some() => {
            Err("cannot set both fallbackValue and fallbackTo: Input".to_string())
        }
        MatchFallbackTo::Input => Ok(input),
        MatchFallbackTo::Value => Ok(m.fallback_value.clone().unwrap_or(Value::Null)),
    }
}

fn math(m: &MathTransform, input: Value) -> Result<Value, String> {
    let Value::Number(n) = &input else {
        return Err(format!("input must be a number, got {}", describe(&input)));
    };
    match m.math_type() {
        MathTransformType::Multiply => {
            let factor = m.multiply.ok_or("type Multiply requires multiply")?;
            if let Some(i) = n.as_i64() {
                i.checked_mul(factor)
                    .map(Value::from)
                    .ok_or_else(|| format!("input * {factor} overflows a 64-bit integer"))
            } else {
                float(n.as_f64().unwrap_or(f64::NAN) * factor as f64)
            }
        }
        MathTransformType::ClampMin => {
            let min = m.clamp_min.ok_or("type ClampMin requires clampMin")?;
            Ok(if as_i64_truncated(n) < min {
                Value::from(min)
            } else {
                input
            })
        }
        MathTransformType::ClampMax => {
            let max = m.clamp_max.ok_or("type ClampMax requires clampMax")?;
            Ok(if as_i64_truncated(n) > max {
                Value::from(max)
            } else {
                input
            })
        }
    }
}

/// The number as Go's `int64(x)` sees it (floats truncated toward zero).
fn as_i64_truncated(n: &Number) -> i64 {
    n.as_i64()
        .or_else(|| n.as_u64().map(|_| i64::MAX))
        .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64)
}

fn float(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "result is not a finite number".to_string())
}

fn string(s: &StringTransform, input: &Value) -> Result<Value, String> {
    let ty = s.string_type();
    let field = |name: &str| format!("type {ty:?} requires {name}");
    let text = match ty {
        StringTransformType::Format => {
            let fmt = s.fmt.as_deref().ok_or_else(|| field("fmt"))?;
            sprintf(fmt, &[input])?
        }
        StringTransformType::Convert => {
            let conversion = s.convert.ok_or_else(|| field("convert"))?;
            string_convert(conversion, input)?
        }
        StringTransformType::TrimPrefix => {
            let trim = s.trim.as_deref().ok_or_else(|| field("trim"))?;
            let text = go_value(input);
            text.strip_prefix(trim).unwrap_or(&text).to_string()
        }
        StringTransformType::TrimSuffix => {
            let trim = s.trim.as_deref().ok_or_else(|| field("trim"))?;
            let text = go_value(input);
            text.strip_suffix(trim).unwrap_or(&text).to_string()
        }
        StringTransformType::Regexp => {
            let r = s.regexp.as_ref().ok_or_else(|| field("regexp"))?;
            let re = compile(&r.match_)?;
            let group = r.group.unwrap_or(0) as usize;
            let text = go_value(input);
            re.captures(&text)
                .filter(|c| group < c.len())
                .map(|c| c.get(group).map_or("", |m| m.as_str()).to_string())
                .ok_or_else(|| format!("regexp {:?} had no matches for group {group}", r.match_))?
        }
        StringTransformType::Join => {
            let join = s.join.as_ref().ok_or_else(|| field("join"))?;
            let Value::Array(items) = input else {
                return Err(format!("input must be a list, got {}", describe(input)));
            };
            items
                .iter()
                .map(go_value)
                .collect::<Vec<_>>()
                .join(&join.separator)
        }
    };
    Ok(Value::String(text))
}

fn string_convert(conversion: StringConversionType, input: &Value) -> Result<String, String> {
    // Hashes are of the string itself, or of the JSON text of any other value.
    let hash_input = || match input {
        Value::String(s) => s.clone().into_bytes(),
        other => go_json(other).into_bytes(),
    };
    Ok(match conversion {
        StringConversionType::ToUpper => go_value(input).to_uppercase(),
        StringConversionType::ToLower => go_value(input).to_lowercase(),
        StringConversionType::ToBase64 => BASE64.encode(go_value(input)),
        StringConversionType::FromBase64 => {
            let bytes = BASE64
                .decode(go_value(input))
                // The decoder's error quotes the offending byte: a byte of a secret.
                .map_err(|_| "input is not valid base64".to_string())?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        StringConversionType::ToJson => go_json(input),
        StringConversionType::ToSha1 => hex(&Sha1::digest(hash_input())),
        StringConversionType::ToSha256 => hex(&Sha256::digest(hash_input())),
        StringConversionType::ToSha512 => hex(&Sha512::digest(hash_input())),
        StringConversionType::ToAdler32 => adler32(&hash_input()).to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Adler-32 checksum (RFC 1950), as Go's `hash/adler32`.
fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % MOD;
        b = (b + a) % MOD;
    }
    (b << 16) | a
}

/// Compiles a transform's regular expression within [`MAX_REGEX_LEN`] and
/// [`MAX_REGEX_COMPILED_BYTES`]. The `regex` crate matches in linear time, so a bounded
/// pattern also bounds the matching.
fn compile(re: &str) -> Result<Regex, String> {
    if re.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regexp is {} bytes long, more than the limit of {MAX_REGEX_LEN}",
            re.len()
        ));
    }
    RegexBuilder::new(re)
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .dfa_size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
        .map_err(|e| format!("invalid regexp {re:?}: {e}"))
}

/// The transform I/O type of a value, as Crossplane names it.
fn io_type(v: &Value) -> Option<TransformIoType> {
    match v {
        Value::String(_) => Some(TransformIoType::String),
        Value::Bool(_) => Some(TransformIoType::Bool),
        Value::Number(n) if n.is_f64() => Some(TransformIoType::Float64),
        Value::Number(_) => Some(TransformIoType::Int64),
        _ => None,
    }
}

fn io_name(t: TransformIoType) -> &'static str {
    match t {
        TransformIoType::String => "string",
        TransformIoType::Bool => "bool",
        TransformIoType::Int => "int",
        TransformIoType::Int64 => "int64",
        TransformIoType::Float64 => "float64",
        TransformIoType::Object => "object",
        TransformIoType::Array => "array",
    }
}

fn convert(c: &ConvertTransform, input: Value) -> Result<Value, String> {
    use ConvertTransformFormat as F;
    use TransformIoType as T;

    let from = io_type(&input).ok_or_else(|| {
        format!(
            "cannot convert {}; input must be a string, bool or number",
            describe(&input)
        )
    })?;
    let to = match c.to_type {
        T::Int => T::Int64,
        other => other,
    };
    if from == to {
        return Ok(input);
    }
    let format = c.input_format();
    let unsupported = || {
        format!(
            "conversion from {} to {} is not supported with format {}",
            io_name(from),
            io_name(c.to_type),
            match format {
                F::None => "none",
                F::Quantity => "quantity",
                F::Json => "json",
            }
        )
    };
    let cannot = |what: &str| format!("cannot convert the input {} to {what}", io_name(from));
    match (&input, to, format) {
        (Value::String(s), T::Int64, F::None) => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| cannot("int64")),
        (Value::String(s), T::Bool, F::None) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
            _ => Err(cannot("bool")),
        },
        (Value::String(s), T::Float64, F::None) => s
            .parse::<f64>()
            .map_err(|_| cannot("float64"))
            .and_then(float),
        (Value::String(s), T::Float64, F::Quantity) => parse_quantity(s).and_then(float),
        (Value::String(s), T::Object, F::Json) => match serde_json::from_str(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(cannot("an object; it is not a JSON object")),
        },
        (Value::String(s), T::Array, F::Json) => match serde_json::from_str(s) {
            Ok(v @ Value::Array(_)) => Ok(v),
            _ => Err(cannot("an array; it is not a JSON array")),
        },
        (Value::Number(n), T::String, F::None) if !n.is_f64() => Ok(Value::String(n.to_string())),
        (Value::Number(n), T::Bool, F::None) if !n.is_f64() => {
            Ok(Value::Bool(n.as_i64() == Some(1)))
        }
        (Value::Number(n), T::Float64, F::None) if !n.is_f64() => {
            float(n.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Bool(b), T::String, F::None) => Ok(Value::String(b.to_string())),
        (Value::Bool(b), T::Int64, F::None) => Ok(Value::from(i64::from(*b))),
        (Value::Bool(b), T::Float64, F::None) => float(if *b { 1.0 } else { 0.0 }),
        // Rust's Display of f64 is Go's FormatFloat(f, 'f', -1, 64): no exponent.
        (Value::Number(n), T::String, F::None) => {
            Ok(Value::String(format!("{}", n.as_f64().unwrap_or(0.0))))
        }
        (Value::Number(n), T::Int64, F::None) => Ok(Value::from(n.as_f64().unwrap_or(0.0) as i64)),
        (Value::Number(n), T::Bool, F::None) => Ok(Value::Bool(n.as_f64() == Some(1.0))),
        _ => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests;
