//! Tests of [`super`]: table tests, one `reason` per case.
use super::*;

fn param(name: &str, value: &str) -> ConfigurationParameter {
    ConfigurationParameter {
        name: name.into(),
        value: value.into(),
    }
}

fn defaults() -> RoleRow {
    // What CREATE ROLE gives without options.
    RoleRow {
        inherit: true,
        connection_limit: -1,
        ..RoleRow::default()
    }
}

#[test]
fn diff_names_each_field_that_differs_with_wanted_and_actual_values() {
    struct Case {
        reason: &'static str,
        want: RoleParameters,
        have: RoleRow,
        diff: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            reason: "an empty spec manages nothing, so nothing differs",
            want: RoleParameters::default(),
            have: RoleRow {
                super_user: true,
                connection_limit: 3,
                configuration_parameters: vec![param("work_mem", "64MB")],
                ..defaults()
            },
            diff: vec![],
        },
        Case {
            reason: "attributes and the connection limit are compared when set",
            want: RoleParameters {
                privileges: RolePrivileges {
                    super_user: Some(false),
                    login: Some(true),
                    ..RolePrivileges::default()
                },
                connection_limit: Some(5),
                ..RoleParameters::default()
            },
            have: RoleRow {
                super_user: true,
                login: true,
                ..defaults()
            },
            diff: vec![
                "superUser: want false, have true",
                "connectionLimit: want 5, have -1",
            ],
        },
        Case {
            reason: "parameters are the complete list: missing ones are set, extra ones reset",
            want: RoleParameters {
                configuration_parameters: Some(vec![
                    param("Statement_Timeout", "5s"),
                    param("search_path", "app"),
                ]),
                ..RoleParameters::default()
            },
            have: RoleRow {
                configuration_parameters: vec![
                    param("statement_timeout", "10s"),
                    param("work_mem", "64MB"),
                ],
                ..defaults()
            },
            diff: vec![
                "configurationParameters.search_path: want \"app\", have none",
                "configurationParameters.statement_timeout: want \"5s\", have \"10s\"",
                "configurationParameters.work_mem: want none, have \"64MB\"",
            ],
        },
        Case {
            reason: "parameter names compare case-insensitively, as PostgreSQL folds them",
            want: RoleParameters {
                configuration_parameters: Some(vec![param("WORK_MEM", "64MB")]),
                ..RoleParameters::default()
            },
            have: RoleRow {
                configuration_parameters: vec![param("work_mem", "64MB")],
                ..defaults()
            },
            diff: vec![],
        },
    ];
    for c in cases {
        assert_eq!(diff(&c.want, &c.have), c.diff, "{}", c.reason);
    }
}

#[test]
fn rolconfig_entries_split_at_the_first_equals_sign() {
    let got = parse_rolconfig(&["search_path=a, b".to_string(), "app.expr=x=y".to_string()]);
    assert_eq!(
        got,
        vec![param("app.expr", "x=y"), param("search_path", "a, b")]
    );
}

#[test]
fn create_statement_names_only_what_the_spec_sets() {
    struct Case {
        reason: &'static str,
        want: RoleParameters,
        verifier: Option<&'static str>,
        sql: &'static str,
    }
    let cases = vec![
        Case {
            reason: "no options: PostgreSQL's defaults apply",
            want: RoleParameters::default(),
            verifier: None,
            sql: r#"CREATE ROLE "alice""#,
        },
        Case {
            reason: "attributes, limit, quoted verifier and parameters in one batch",
            want: RoleParameters {
                privileges: RolePrivileges {
                    login: Some(true),
                    create_db: Some(false),
                    ..RolePrivileges::default()
                },
                connection_limit: Some(5),
                configuration_parameters: Some(vec![param("statement_timeout", "5s")]),
                ..RoleParameters::default()
            },
            verifier: Some("SCRAM-SHA-256$4096:c2FsdA==$a:b"),
            sql: "CREATE ROLE \"alice\" WITH LOGIN NOCREATEDB CONNECTION LIMIT 5 \
                  PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'; \
                  ALTER ROLE \"alice\" SET statement_timeout TO '5s'",
        },
        Case {
            reason: "a parameter value cannot break out of its literal",
            want: RoleParameters {
                configuration_parameters: Some(vec![param("search_path", "x'; DROP ROLE y; --")]),
                ..RoleParameters::default()
            },
            verifier: None,
            sql: "CREATE ROLE \"alice\"; ALTER ROLE \"alice\" SET search_path TO 'x''; DROP ROLE y; --'",
        },
    ];
    for c in cases {
        assert_eq!(
            create_statements("alice", &c.want, c.verifier),
            c.sql,
            "{}",
            c.reason
        );
    }
}

#[test]
fn update_statements_change_only_what_differs() {
    struct Case {
        reason: &'static str,
        want: RoleParameters,
        have: RoleRow,
        verifier: Option<&'static str>,
        sql: &'static str,
    }
    let cases = vec![
        Case {
            reason: "nothing differs: no statement",
            want: RoleParameters {
                privileges: RolePrivileges {
                    inherit: Some(true),
                    ..RolePrivileges::default()
                },
                connection_limit: Some(-1),
                ..RoleParameters::default()
            },
            have: defaults(),
            verifier: None,
            sql: "",
        },
        Case {
            reason: "an unchanged superUser is not named, so CREATEROLE admins can alter the role",
            want: RoleParameters {
                privileges: RolePrivileges {
                    super_user: Some(false),
                    login: Some(true),
                    ..RolePrivileges::default()
                },
                connection_limit: Some(2),
                ..RoleParameters::default()
            },
            have: defaults(),
            verifier: None,
            sql: r#"ALTER ROLE "alice" WITH LOGIN CONNECTION LIMIT 2"#,
        },
        Case {
            reason: "a new password alone is one ALTER ROLE",
            want: RoleParameters::default(),
            have: defaults(),
            verifier: Some("v"),
            sql: r#"ALTER ROLE "alice" WITH PASSWORD 'v'"#,
        },
        Case {
            reason: "parameters are set and reset",
            want: RoleParameters {
                configuration_parameters: Some(vec![param("work_mem", "8MB")]),
                ..RoleParameters::default()
            },
            have: RoleRow {
                configuration_parameters: vec![param("search_path", "app")],
                ..defaults()
            },
            verifier: None,
            sql: "ALTER ROLE \"alice\" SET work_mem TO '8MB'; ALTER ROLE \"alice\" RESET \"search_path\"",
        },
    ];
    for c in cases {
        assert_eq!(
            update_statements("alice", &c.want, &c.have, c.verifier),
            c.sql,
            "{}",
            c.reason
        );
    }
}

#[test]
fn validation_rejects_bad_limits_parameter_names_and_duplicates() {
    struct Case {
        reason: &'static str,
        want: RoleParameters,
        error: Option<&'static str>,
    }
    let cases = vec![
        Case {
            reason: "-1 means no limit",
            want: RoleParameters {
                connection_limit: Some(-1),
                ..RoleParameters::default()
            },
            error: None,
        },
        Case {
            reason: "below -1 is meaningless",
            want: RoleParameters {
                connection_limit: Some(-2),
                ..RoleParameters::default()
            },
            error: Some("connectionLimit must be -1 (no limit) or more, not -2"),
        },
        Case {
            reason: "a parameter name is written unquoted, so it must be a plain name",
            want: RoleParameters {
                configuration_parameters: Some(vec![param("a b", "1")]),
                ..RoleParameters::default()
            },
            error: Some("configuration parameter name \"a b\" is not valid"),
        },
        Case {
            reason: "the same parameter twice is ambiguous",
            want: RoleParameters {
                configuration_parameters: Some(vec![
                    param("work_mem", "1MB"),
                    param("WORK_MEM", "2MB"),
                ]),
                ..RoleParameters::default()
            },
            error: Some("configuration parameter WORK_MEM is listed more than once"),
        },
    ];
    for c in cases {
        match (validate(&c.want), c.error) {
            (Ok(()), None) => {}
            (Err(ProviderError::InvalidSpec(msg)), Some(want)) => {
                assert!(msg.contains(want), "{}: {msg}", c.reason)
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", c.reason),
        }
    }
}
