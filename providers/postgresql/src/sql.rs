//! Building SQL text safely: identifier and literal quoting, and validation of the names
//! and values a spec puts into statements.
//!
//! Statements that PostgreSQL lets take parameters (`$1`) use them; DDL cannot, so every
//! name goes through [`ident`] and every value through [`literal`], after [`validate_identifier`]
//! or [`validate_literal`] turned away what PostgreSQL could not store.

use std::fmt;

use tessera_engine::managed::ProviderError;

/// PostgreSQL truncates longer identifiers (NAMEDATALEN - 1); we refuse them instead, so
/// that the name in the spec is the name in the catalog.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A validated identifier, quoted for SQL when displayed: `"shop"`, `"a""b"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ident<'a>(&'a str);

impl fmt::Display for Ident<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        f.write_str(&self.0.replace('"', "\"\""))?;
        f.write_str("\"")
    }
}

/// Quotes an identifier: wraps it in double quotes and doubles inner double quotes.
/// The name must have passed [`validate_identifier`].
pub fn ident(name: &str) -> Ident<'_> {
    Ident(name)
}

/// Quotes a string literal: wraps it in single quotes and doubles inner single quotes.
/// The value must have passed [`validate_literal`] (no NUL).
///
/// The result is also correct with `standard_conforming_strings = off` because a
/// backslash is written as an escape-string literal (`E'..\\..'`) then.
pub fn literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

/// Checks that `name` can be a PostgreSQL identifier without being altered: non-empty, at
/// most 63 bytes, no NUL. `what` names the field for the error message, e.g. `role name`.
pub fn validate_identifier(what: &str, name: &str) -> Result<(), ProviderError> {
    if name.is_empty() {
        return Err(ProviderError::InvalidSpec(format!(
            "{what} must not be empty"
        )));
    }
    if name.contains('\0') {
        return Err(ProviderError::InvalidSpec(format!(
            "{what} {name:?} contains a NUL character, which PostgreSQL cannot store"
        )));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(ProviderError::InvalidSpec(format!(
            "{what} {name:?} is {} bytes long; PostgreSQL allows at most {MAX_IDENTIFIER_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// Checks that `value` can be a PostgreSQL string literal: no NUL. The value itself is
/// not repeated in the message, since it may be a secret.
pub fn validate_literal(what: &str, value: &str) -> Result<(), ProviderError> {
    if value.contains('\0') {
        return Err(ProviderError::InvalidSpec(format!(
            "{what} contains a NUL character, which PostgreSQL cannot store"
        )));
    }
    Ok(())
}

/// Checks a run-time parameter name (`statement_timeout`, `app.tenant`): dot-separated
/// words of ASCII letters, digits, `_` and `$`, each starting with a letter or `_`.
/// Such a name is safe to write unquoted, which is how `ALTER ROLE ... SET` expects it.
pub fn validate_parameter_name(name: &str) -> Result<(), ProviderError> {
    validate_identifier("configuration parameter name", name)?;
    let ok = name.split('.').all(|part| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    });
    if ok {
        Ok(())
    } else {
        Err(ProviderError::InvalidSpec(format!(
            "configuration parameter name {name:?} is not valid: use letters, digits and '_', \
             with '.' only between words (e.g. statement_timeout, app.tenant)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_double_quoted_with_inner_quotes_doubled() {
        struct Case {
            reason: &'static str,
            name: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                reason: "a plain name is quoted, so its case is kept",
                name: "Shop",
                want: r#""Shop""#,
            },
            Case {
                reason: "an inner double quote is doubled, so it cannot end the identifier",
                name: r#"a"; DROP TABLE x; --"#,
                want: r#""a""; DROP TABLE x; --""#,
            },
            Case {
                reason: "single quotes and backslashes mean nothing inside an identifier",
                name: r"o'k\",
                want: r#""o'k\""#,
            },
            Case {
                reason: "non-ASCII names are kept as they are",
                name: "café",
                want: "\"café\"",
            },
        ];
        for c in cases {
            assert_eq!(ident(c.name).to_string(), c.want, "{}", c.reason);
        }
    }

    #[test]
    fn literals_are_single_quoted_with_inner_quotes_doubled() {
        struct Case {
            reason: &'static str,
            value: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                reason: "a plain value is single-quoted",
                value: "5s",
                want: "'5s'",
            },
            Case {
                reason: "an inner single quote is doubled, so it cannot end the literal",
                value: "x'; DROP ROLE postgres; --",
                want: "'x''; DROP ROLE postgres; --'",
            },
            Case {
                reason: "a backslash makes an escape string, safe whatever standard_conforming_strings is",
                value: r"a\'b",
                want: r"E'a\\''b'",
            },
            Case {
                reason: "the empty string is a valid literal",
                value: "",
                want: "''",
            },
        ];
        for c in cases {
            assert_eq!(literal(c.value), c.want, "{}", c.reason);
        }
    }

    #[test]
    fn identifier_validation_accepts_what_postgres_stores_unchanged() {
        struct Case {
            reason: &'static str,
            name: String,
            error: Option<&'static str>,
        }
        let cases = [
            Case {
                reason: "an ordinary name is fine",
                name: "alice".into(),
                error: None,
            },
            Case {
                reason: "63 bytes is the longest name PostgreSQL keeps whole",
                name: "a".repeat(63),
                error: None,
            },
            Case {
                reason: "64 bytes would be truncated by PostgreSQL",
                name: "a".repeat(64),
                error: Some("is 64 bytes long; PostgreSQL allows at most 63"),
            },
            Case {
                reason: "the limit counts bytes, not characters",
                name: "é".repeat(32),
                error: Some("is 64 bytes long"),
            },
            Case {
                reason: "an empty name is not an identifier",
                name: String::new(),
                error: Some("role name must not be empty"),
            },
            Case {
                reason: "NUL cannot be stored in a name",
                name: "a\0b".into(),
                error: Some("contains a NUL character"),
            },
            Case {
                reason: "quotes and spaces are fine once quoted",
                name: "my \"odd\" role".into(),
                error: None,
            },
        ];
        for c in cases {
            let got = validate_identifier("role name", &c.name);
            match (got, c.error) {
                (Ok(()), None) => {}
                (Err(ProviderError::InvalidSpec(msg)), Some(want)) => {
                    assert!(msg.contains(want), "{}: {msg}", c.reason)
                }
                (got, want) => panic!("{}: got {got:?}, want error {want:?}", c.reason),
            }
        }
    }

    #[test]
    fn literal_validation_rejects_nul_without_printing_the_value() {
        let err = validate_literal("password", "s3cr3t\0").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("NUL"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(validate_literal("password", "it's fine").is_ok());
    }

    #[test]
    fn parameter_names_must_be_plain_dotted_words() {
        struct Case {
            reason: &'static str,
            name: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                reason: "a built-in parameter",
                name: "statement_timeout",
                ok: true,
            },
            Case {
                reason: "a custom parameter has a dotted prefix",
                name: "app.tenant_id",
                ok: true,
            },
            Case {
                reason: "an injection attempt is not a name",
                name: "search_path TO public; DROP ROLE x; --",
                ok: false,
            },
            Case {
                reason: "a word must not start with a digit",
                name: "app.1x",
                ok: false,
            },
            Case {
                reason: "an empty word between dots is not allowed",
                name: "app..x",
                ok: false,
            },
            Case {
                reason: "empty is not allowed",
                name: "",
                ok: false,
            },
        ];
        for c in cases {
            assert_eq!(
                validate_parameter_name(c.name).is_ok(),
                c.ok,
                "{}",
                c.reason
            );
        }
    }
}
