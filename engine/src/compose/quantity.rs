//! Kubernetes quantities (`250m`, `10Gi`, `1.5e3`) as approximate floats, for the
//! `convert` transform's `quantity` format.

/// Parses a Kubernetes quantity into its approximate value, like Go's
/// `resource.ParseQuantity(s).AsApproximateFloat64()`.
pub(crate) fn parse_quantity(s: &str) -> Result<f64, String> {
    // The input is not quoted: it may be a secret.
    let invalid = || "input is not a valid quantity (e.g. 250m, 1.5, 10Gi, 1e3)".to_string();
    let bytes = s.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let digits_start = end;
    let mut seen_dot = false;
    while let Some(&b) = bytes.get(end) {
        if b.is_ascii_digit() {
            end += 1;
        } else if b == b'.' && !seen_dot {
            seen_dot = true;
            end += 1;
        } else {
            break;
        }
    }
    let number = &s[..end];
    if !number[digits_start..].bytes().any(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let suffix = &s[end..];
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => {
            // A decimal exponent: e3, E-2, e+6.
            let exp = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| {
                    let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                })
                .ok_or_else(invalid)?;
            let exp: i32 = exp.parse().map_err(|_| invalid())?;
            10f64.powi(exp)
        }
    };
    Ok(value * multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_quantity_reads_every_suffix() {
        struct Case {
            reason: &'static str,
            input: &'static str,
            want: Result<f64, ()>,
        }
        let cases = [
            Case {
                reason: "a plain integer",
                input: "5",
                want: Ok(5.0),
            },
            Case {
                reason: "a plain decimal",
                input: "1.5",
                want: Ok(1.5),
            },
            Case {
                reason: "milli",
                input: "250m",
                want: Ok(0.25),
            },
            Case {
                reason: "kilo",
                input: "2k",
                want: Ok(2000.0),
            },
            Case {
                reason: "binary giga",
                input: "10Gi",
                want: Ok(10_737_418_240.0),
            },
            Case {
                reason: "binary kibi with decimals",
                input: "1.5Ki",
                want: Ok(1536.0),
            },
            Case {
                reason: "exa is E alone",
                input: "1E",
                want: Ok(1e18),
            },
            Case {
                reason: "a decimal exponent",
                input: "1e3",
                want: Ok(1000.0),
            },
            Case {
                reason: "a negative exponent",
                input: "5E-2",
                want: Ok(0.05),
            },
            Case {
                reason: "a sign",
                input: "-3M",
                want: Ok(-3e6),
            },
            Case {
                reason: "an unknown suffix",
                input: "5Qi",
                want: Err(()),
            },
            Case {
                reason: "no digits",
                input: "Gi",
                want: Err(()),
            },
            Case {
                reason: "empty",
                input: "",
                want: Err(()),
            },
            Case {
                reason: "a space",
                input: "5 Gi",
                want: Err(()),
            },
        ];
        for case in cases {
            let got = parse_quantity(case.input);
            match (got, case.want) {
                (Ok(got), Ok(want)) => {
                    assert!(
                        (got - want).abs() <= want.abs() * 1e-12,
                        "{}: {got}",
                        case.reason
                    )
                }
                // The input is never quoted: it may be a secret.
                (Err(e), Err(())) => assert_eq!(
                    e, "input is not a valid quantity (e.g. 250m, 1.5, 10Gi, 1e3)",
                    "{}",
                    case.reason
                ),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.reason),
            }
        }
    }
}
