//! Transforms: functions applied to a patched value before it is written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of a transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum TransformType {
    /// Look the input up in a map.
    Map,
    /// Match the input against a list of literal or regular-expression patterns.
    Match,
    /// Multiply or clamp a number.
    Math,
    /// Produce a string: format, convert, trim, extract or join.
    String,
    /// Convert the input to another type.
    Convert,
}

/// A transform of a patched value. Set `type` and the field of the same name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transform {
    /// The transform to run: `map`, `match`, `math`, `string` or `convert`.
    #[serde(rename = "type")]
    pub type_: TransformType,

    /// Settings of a `math` transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub math: Option<MathTransform>,

    /// Settings of a `map` transform: input string -> output value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapTransform>,

    /// Settings of a `match` transform.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_: Option<MatchTransform>,

    /// Settings of a `string` transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<StringTransform>,

    /// Settings of a `convert` transform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<ConvertTransform>,
}

/// The kind of a math transform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum MathTransformType {
    /// Multiply the input by `multiply` (the default).
    #[default]
    Multiply,
    /// Raise the input to at least `clampMin`.
    ClampMin,
    /// Lower the input to at most `clampMax`.
    ClampMax,
}

/// Arithmetic on a numeric input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MathTransform {
    /// `Multiply` (the default), `ClampMin` or `ClampMax`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<MathTransformType>,

    /// Factor the input is multiplied by, for `Multiply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::api::schema::INT64_MIN, max = crate::api::schema::INT64_MAX))]
    pub multiply: Option<i64>,

    /// Smallest value the output may have, for `ClampMin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::api::schema::INT64_MIN, max = crate::api::schema::INT64_MAX))]
    pub clamp_min: Option<i64>,

    /// Largest value the output may have, for `ClampMax`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::api::schema::INT64_MIN, max = crate::api::schema::INT64_MAX))]
    pub clamp_max: Option<i64>,
}

impl MathTransform {
    /// The math transform's type, `Multiply` when omitted.
    pub fn math_type(&self) -> MathTransformType {
        self.type_.unwrap_or_default()
    }
}

/// A lookup table: the input (as a string) is replaced by the value under that key.
/// Written inline, e.g. `map: {small: db.t3.micro, large: db.m5.large}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MapTransform {
    /// Input value -> output value.
    pub pairs: BTreeMap<String, serde_json::Value>,
}

// Written by hand: the derived schema of a map of `serde_json::Value` is not structural.
impl JsonSchema for MapTransform {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MapTransform".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        crate::api::schema::map_of_values(generator)
    }
}

/// Where a match transform falls back to when no pattern matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum MatchFallbackTo {
    /// Return `fallbackValue` (the default).
    #[default]
    Value,
    /// Return the input unchanged.
    Input,
}

/// Matches the input against patterns, in order; the first match's result is the output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchTransform {
    /// Patterns tested against the input string, in order.
    #[serde(default)]
    pub patterns: Vec<MatchTransformPattern>,

    /// Output when no pattern matches and `fallbackTo` is `Value`. When unset, the target
    /// field is not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::preserve_unknown_value")]
    pub fallback_value: Option<serde_json::Value>,

    /// `Value` (the default) returns `fallbackValue` when no pattern matches; `Input`
    /// returns the input unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_to: Option<MatchFallbackTo>,
}

/// How a match pattern compares with the input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum MatchTransformPatternType {
    /// The input must equal `literal` exactly (case-sensitive). The default.
    #[default]
    Literal,
    /// The input must match the regular expression `regexp`.
    Regexp,
}

/// One pattern of a match transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchTransformPattern {
    /// `literal` (the default) or `regexp`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<MatchTransformPatternType>,

    /// String the input must equal, for `literal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,

    /// Regular expression the input must match, for `regexp`; unanchored unless it
    /// uses `^` and `$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<String>,

    /// Output of the transform when this pattern matches; any JSON value.
    #[schemars(schema_with = "crate::api::schema::preserve_unknown_value")]
    pub result: serde_json::Value,
}

impl MatchTransformPattern {
    /// The pattern's type, `literal` when omitted.
    pub fn pattern_type(&self) -> MatchTransformPatternType {
        self.type_.unwrap_or_default()
    }
}

/// The kind of a string transform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum StringTransformType {
    /// Format the input with `fmt` (the default).
    #[default]
    Format,
    /// Convert the input as `convert` says.
    Convert,
    /// Remove `trim` from the start of the input.
    TrimPrefix,
    /// Remove `trim` from the end of the input.
    TrimSuffix,
    /// Extract a match of `regexp` from the input.
    Regexp,
    /// Join a list input with `join.separator`.
    Join,
}

/// A conversion of a string transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum StringConversionType {
    /// Upper-case the input.
    ToUpper,
    /// Lower-case the input.
    ToLower,
    /// Base64-encode the input string.
    ToBase64,
    /// Base64-decode the input string.
    FromBase64,
    /// The input as JSON text.
    #[serde(rename = "ToJson")]
    ToJson,
    /// Hex SHA-1 of the input's JSON text.
    #[serde(rename = "ToSha1")]
    ToSha1,
    /// Hex SHA-256 of the input's JSON text.
    #[serde(rename = "ToSha256")]
    ToSha256,
    /// Hex SHA-512 of the input's JSON text.
    #[serde(rename = "ToSha512")]
    ToSha512,
    /// Adler-32 checksum of the input string, as a decimal string.
    ToAdler32,
}

/// Produces a string from the input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringTransform {
    /// `Format` (the default), `Convert`, `TrimPrefix`, `TrimSuffix`, `Regexp` or `Join`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<StringTransformType>,

    /// Go-style format string for `Format`, e.g. `db-%s`. Supported verbs: `%s`, `%v`,
    /// `%d`, `%f`, `%t`, `%q`, `%x`, `%%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmt: Option<String>,

    /// Conversion for `Convert`: `ToUpper`, `ToLower`, `ToBase64`, `FromBase64`, `ToJson`,
    /// `ToSha1`, `ToSha256`, `ToSha512` or `ToAdler32`. The hashes are of the input's
    /// JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<StringConversionType>,

    /// Prefix or suffix to remove, for `TrimPrefix` and `TrimSuffix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<String>,

    /// Settings of `Regexp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regexp: Option<StringTransformRegexp>,

    /// Settings of `Join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<StringTransformJoin>,
}

impl StringTransform {
    /// The string transform's type, `Format` when omitted.
    pub fn string_type(&self) -> StringTransformType {
        self.type_.unwrap_or_default()
    }
}

/// Extracts a match of a regular expression from the input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringTransformRegexp {
    /// The regular expression, optionally with capture groups, e.g. `^arn:aws:iam::(\d+):.*`.
    #[serde(rename = "match")]
    pub match_: String,

    /// Capture group to return; 0 (the default) is the whole match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"), range(min = 0, max = i32::MAX))]
    pub group: Option<u32>,
}

/// Joins the items of a list input into one string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StringTransformJoin {
    /// Text placed between the items, e.g. `,`.
    pub separator: String,
}

/// A type a convert transform can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum TransformIoType {
    /// A string.
    String,
    /// A boolean.
    Bool,
    /// An integer.
    Int,
    /// A 64-bit integer.
    Int64,
    /// A floating-point number.
    Float64,
    /// An object (from a JSON string with `format: json`).
    Object,
    /// A list (from a JSON string with `format: json`).
    Array,
}

/// How a convert transform reads its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(transform = crate::api::schema::drop_description)]
pub enum ConvertTransformFormat {
    /// Plain conversion (the default).
    #[default]
    None,
    /// Parse a Kubernetes quantity such as `250m` or `10Gi`; for string -> float64.
    Quantity,
    /// Parse JSON text; for string -> object and string -> array.
    Json,
}

/// Converts the input to another type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvertTransform {
    /// Output type: `string`, `int`, `int64`, `bool`, `float64`, `object` or `array`.
    pub to_type: TransformIoType,

    /// How the input is read: `none` (the default), `quantity` or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ConvertTransformFormat>,
}

impl ConvertTransform {
    /// The input format, `none` when omitted.
    pub fn input_format(&self) -> ConvertTransformFormat {
        self.format.unwrap_or_default()
    }
}
