//! What a patch may write, as far as it is known offline: the types of the value and,
//! when the source is an `enum` (or a transform maps to fixed values), the values
//! themselves.

use serde_json::Value;

use super::schema::{self, Types};
use crate::api::composition::{
    MatchFallbackTo, StringTransformType, Transform, TransformIoType, TransformType,
};
use crate::compose::apply_transform;

/// What a patch may produce at some step.
#[derive(Clone, Debug, PartialEq)]
pub struct Produced {
    /// The possible types.
    pub types: Types,
    /// The possible values, when they are a known, finite set.
    pub values: Option<Vec<Value>>,
}

impl Produced {
    /// Nothing is known.
    pub fn any() -> Self {
        Produced {
            types: Types::ANY,
            values: None,
        }
    }

    /// A value of one of `types`.
    pub fn of(types: Types) -> Self {
        Produced {
            types,
            values: None,
        }
    }

    /// What a field with schema `node` holds: its type, and its `enum` values.
    pub fn of_schema(node: &Value) -> Self {
        Produced {
            types: Types::of_schema(node),
            values: node.get("enum").and_then(Value::as_array).cloned(),
        }
    }

    fn of_values(values: Vec<Value>) -> Self {
        let types = values
            .iter()
            .filter(|v| !v.is_null())
            .map(Types::of_value)
            .reduce(|a, b| a | b)
            .unwrap_or(Types::ANY);
        Produced {
            types,
            values: Some(values),
        }
    }
}

/// Runs `transforms` over what a patch reads: exactly when the input values are known,
/// by type otherwise. Fails with the index of the transform and what is wrong when a
/// transform cannot work on its input.
pub fn through_transforms(
    transforms: &[Transform],
    mut input: Produced,
) -> Result<Produced, String> {
    for (index, t) in transforms.iter().enumerate() {
        input = match &input.values {
            Some(values) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    // Errors name the transform and its index, as at run time. Run-time errors
                    // never quote the value (it may be a secret); these values come from a
                    // schema's `enum` or a Composition, so naming the one that fails helps.
                    out.push(
                        apply_transform(index, t, v.clone())
                            .map_err(|e| format!("{e}, for the known input value {v}"))?,
                    );
                }
                Produced::of_values(out)
            }
            None => by_type(t, &input)
                .map_err(|reason| format!("transform {index} ({}): {reason}", name(t.type_)))?,
        };
    }
    Ok(input)
}

fn name(t: TransformType) -> &'static str {
    match t {
        TransformType::Map => "map",
        TransformType::Match => "match",
        TransformType::Math => "math",
        TransformType::String => "string",
        TransformType::Convert => "convert",
    }
}

fn needs(input: &Produced, types: Types, what: &str) -> Result<(), String> {
    if input.types.is_any() || input.types.overlaps(types) {
        Ok(())
    } else {
        Err(format!(
            "needs {what} as input, but gets {}",
            input.types.describe()
        ))
    }
}

fn by_type(t: &Transform, input: &Produced) -> Result<Produced, String> {
    Ok(match t.type_ {
        TransformType::Map => {
            needs(input, Types::STRING, "a string")?;
            match &t.map {
                Some(m) => Produced::of_values(m.pairs.values().cloned().collect()),
                None => return Err("type map requires the map field".to_string()),
            }
        }
        TransformType::Match => {
            let Some(m) = &t.match_ else {
                return Err("type match requires the match field".to_string());
            };
            if !m.patterns.is_empty() {
                needs(input, Types::STRING, "a string")?;
            }
            let mut results: Vec<Value> = m.patterns.iter().map(|p| p.result.clone()).collect();
            match m.fallback_to.unwrap_or_default() {
                MatchFallbackTo::Input => {
                    let found = Produced::of_values(results);
                    return Ok(Produced::of(found.types | input.types));
                }
                MatchFallbackTo::Value => results.extend(m.fallback_value.clone()),
            }
            Produced::of_values(results)
        }
        TransformType::Math => {
            needs(input, Types::NUMBER, "a number")?;
            if input.types.is_any() {
                Produced::of(Types::NUMBER)
            } else {
                Produced::of(input.types.intersect(Types::NUMBER))
            }
        }
        TransformType::String => {
            let join = t
                .string
                .as_ref()
                .is_some_and(|s| s.string_type() == StringTransformType::Join);
            if join {
                needs(input, Types::ARRAY, "a list")?;
            }
            Produced::of(Types::STRING)
        }
        TransformType::Convert => {
            needs(
                input,
                Types::STRING | Types::NUMBER | Types::BOOLEAN,
                "a string, number or boolean",
            )?;
            let Some(c) = &t.convert else {
                return Err("type convert requires the convert field".to_string());
            };
            Produced::of(match c.to_type {
                TransformIoType::String => Types::STRING,
                TransformIoType::Int | TransformIoType::Int64 => Types::INTEGER,
                TransformIoType::Float64 => Types::NUMBER,
                TransformIoType::Bool => Types::BOOLEAN,
                TransformIoType::Object => Types::OBJECT,
                TransformIoType::Array => Types::ARRAY,
            })
        }
    })
}

/// Whether what a patch produces fits the target field's schema `node`; `Err` says why
/// not, with a hint when a convert transform would help.
pub fn fits(produced: &Produced, node: &Value) -> Result<(), String> {
    if let Some(values) = &produced.values {
        for v in values.iter().filter(|v| !v.is_null()) {
            if let Some(issue) = schema::validate(node, v).into_iter().next() {
                let at = if issue.path.is_empty() {
                    String::new()
                } else {
                    format!(" (at {})", issue.path)
                };
                return Err(format!(
                    "the patch may write {v}, which {}{at}",
                    issue.message
                ));
            }
        }
        return Ok(());
    }
    let accepted = Types::of_schema(node);
    if produced.types.is_any() || produced.types.overlaps(accepted) {
        return Ok(());
    }
    let hint = if accepted.overlaps(Types::INTEGER) && produced.types.overlaps(Types::STRING) {
        "; add a convert transform with toType int64"
    } else if accepted == Types::STRING && produced.types.overlaps(Types::NUMBER | Types::BOOLEAN) {
        "; add a convert transform with toType string"
    } else if accepted == Types::BOOLEAN && produced.types.overlaps(Types::STRING) {
        "; add a convert transform with toType bool"
    } else {
        ""
    };
    Err(format!(
        "the patch writes {} where the schema wants {}{hint}",
        produced.types.describe(),
        accepted.describe()
    ))
}
