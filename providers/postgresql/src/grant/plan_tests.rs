//! Tests of [`super`]: table tests, one `reason` per case.
use super::*;
use DbPrivilege::*;

fn set(items: &[DbPrivilege]) -> BTreeSet<DbPrivilege> {
    items.iter().copied().collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn privileges_parse_case_insensitively_with_aliases_and_all() {
    struct Case {
        reason: &'static str,
        input: Vec<String>,
        want: Result<BTreeSet<DbPrivilege>, &'static str>,
    }
    let cases = vec![
        Case {
            reason: "keywords in any case",
            input: strings(&["connect", "Create"]),
            want: Ok(set(&[Connect, Create])),
        },
        Case {
            reason: "TEMP is TEMPORARY",
            input: strings(&["TEMP", "temporary"]),
            want: Ok(set(&[Temporary])),
        },
        Case {
            reason: "ALL and ALL PRIVILEGES mean all three",
            input: strings(&["ALL"]),
            want: Ok(set(&[Connect, Create, Temporary])),
        },
        Case {
            reason: "extra spaces are ignored",
            input: strings(&["  all   privileges "]),
            want: Ok(set(&[Connect, Create, Temporary])),
        },
        Case {
            reason: "a table privilege is not a database privilege, and the error names it",
            input: strings(&["CONNECT", "SELECT"]),
            want: Err("unknown privilege \"SELECT\" on a database"),
        },
        Case {
            reason: "no SQL can hide in a privilege",
            input: strings(&["CONNECT ON DATABASE x TO y; DROP ROLE z"]),
            want: Err("unknown privilege"),
        },
    ];
    for c in cases {
        match (parse_privileges(&c.input), c.want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{}", c.reason),
            (Err(ProviderError::InvalidSpec(msg)), Err(want)) => {
                assert!(msg.contains(want), "{}: {msg}", c.reason)
            }
            (got, want) => panic!("{}: got {got:?}, want {want:?}", c.reason),
        }
    }
}

fn params(yaml: &str) -> GrantParameters {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn a_grant_is_either_on_a_database_or_a_membership_with_matching_options() {
    struct Case {
        reason: &'static str,
        params: GrantParameters,
        error: Option<&'static str>,
    }
    let cases = vec![
        Case {
            reason: "a database grant",
            params: params("{role: a, database: d, privileges: [CONNECT], withOption: GRANT}"),
            error: None,
        },
        Case {
            reason: "a membership",
            params: params("{role: a, memberOf: g, withOption: ADMIN}"),
            error: None,
        },
        Case {
            reason: "both at once is ambiguous",
            params: params("{role: a, database: d, memberOf: g, privileges: [CONNECT]}"),
            error: Some("not both"),
        },
        Case {
            reason: "neither says nothing",
            params: params("{role: a}"),
            error: Some("set database (with privileges) or memberOf"),
        },
        Case {
            reason: "a database grant needs privileges",
            params: params("{role: a, database: d}"),
            error: Some("privileges must not be empty"),
        },
        Case {
            reason: "ADMIN is for memberships",
            params: params("{role: a, database: d, privileges: [ALL], withOption: ADMIN}"),
            error: Some("withOption ADMIN applies to memberOf"),
        },
        Case {
            reason: "GRANT is for database privileges",
            params: params("{role: a, memberOf: g, withOption: GRANT}"),
            error: Some("withOption GRANT applies to privileges"),
        },
        Case {
            reason: "revokePublicOnDb needs a database",
            params: params("{role: a, memberOf: g, revokePublicOnDb: true}"),
            error: Some("revokePublicOnDb needs database"),
        },
        Case {
            reason: "the role name is validated",
            params: params("{role: '', memberOf: g}"),
            error: Some("role must not be empty"),
        },
    ];
    for c in cases {
        match (Target::from_spec(&c.params), c.error) {
            (Ok(_), None) => {}
            (Err(ProviderError::InvalidSpec(msg)), Some(want)) => {
                assert!(msg.contains(want), "{}: {msg}", c.reason)
            }
            (got, want) => panic!("{}: got {got:?}, want error {want:?}", c.reason),
        }
    }
}

#[test]
fn external_names_are_unambiguous_even_with_slashes_in_names() {
    struct Case {
        reason: &'static str,
        spec: &'static str,
        external_name: &'static str,
    }
    let cases = [
        Case {
            reason: "a database grant",
            spec: "{role: alice, database: shop, privileges: [ALL]}",
            external_name: "alice/database/shop",
        },
        Case {
            reason: "a membership",
            spec: "{role: alice, memberOf: readers}",
            external_name: "alice/member-of/readers",
        },
        Case {
            reason: "slashes in names are escaped",
            spec: "{role: a/database/b, database: c, privileges: [ALL]}",
            external_name: "a%2Fdatabase%2Fb/database/c",
        },
        Case {
            reason: "percent signs in names are escaped",
            spec: "{role: 100%, memberOf: g%2F}",
            external_name: "100%25/member-of/g%252F",
        },
    ];
    for c in cases {
        let identity = Target::from_spec(&params(c.spec)).unwrap().identity();
        assert_eq!(identity.external_name(), c.external_name, "{}", c.reason);
        assert_eq!(
            Identity::parse(c.external_name),
            Some(identity),
            "{}: parses back",
            c.reason
        );
    }
}

#[test]
fn default_external_names_are_not_grant_identities() {
    for s in [
        "my-grant",
        "a/b",
        "a/table/b",
        "a/database/b/c",
        "a%zz/database/b",
    ] {
        assert_eq!(Identity::parse(s), None, "{s}");
    }
}

#[test]
fn database_diff_compares_privileges_grant_option_and_public() {
    struct Case {
        reason: &'static str,
        privileges: BTreeSet<DbPrivilege>,
        grant_option: bool,
        revoke_public: bool,
        have: DatabaseAcl,
        diff: Vec<&'static str>,
        sql: &'static str,
    }
    let cases = vec![
        Case {
            reason: "a match needs no statement",
            privileges: set(&[Connect]),
            grant_option: false,
            revoke_public: false,
            have: DatabaseAcl {
                role: set(&[Connect]),
                public: set(&[Connect, Temporary]),
                ..DatabaseAcl::default()
            },
            diff: vec![],
            sql: "",
        },
        Case {
            reason: "missing privileges are granted and extra ones revoked",
            privileges: set(&[Connect, Create]),
            grant_option: false,
            revoke_public: false,
            have: DatabaseAcl {
                role: set(&[Connect, Temporary]),
                ..DatabaseAcl::default()
            },
            diff: vec![
                "privileges on database shop: want CONNECT, CREATE, have CONNECT, TEMPORARY",
            ],
            sql: "REVOKE TEMPORARY ON DATABASE \"shop\" FROM \"alice\"; \
                  GRANT CREATE ON DATABASE \"shop\" TO \"alice\"",
        },
        Case {
            reason: "the grant option is added to privileges already held",
            privileges: set(&[Connect]),
            grant_option: true,
            revoke_public: false,
            have: DatabaseAcl {
                role: set(&[Connect]),
                ..DatabaseAcl::default()
            },
            diff: vec!["privileges with GRANT OPTION: want CONNECT, have none"],
            sql: "GRANT CONNECT ON DATABASE \"shop\" TO \"alice\" WITH GRANT OPTION",
        },
        Case {
            reason: "a grant option the spec does not ask for is revoked",
            privileges: set(&[Connect]),
            grant_option: false,
            revoke_public: false,
            have: DatabaseAcl {
                role: set(&[Connect]),
                role_grantable: set(&[Connect]),
                ..DatabaseAcl::default()
            },
            diff: vec!["privileges with GRANT OPTION: want none, have CONNECT"],
            sql: "REVOKE GRANT OPTION FOR CONNECT ON DATABASE \"shop\" FROM \"alice\"",
        },
        Case {
            reason: "PUBLIC's default privileges are revoked when asked",
            privileges: set(&[Connect]),
            grant_option: false,
            revoke_public: true,
            have: DatabaseAcl {
                role: set(&[Connect]),
                public: set(&[Connect, Temporary]),
                ..DatabaseAcl::default()
            },
            diff: vec!["privileges of PUBLIC on database shop: want none, have CONNECT, TEMPORARY"],
            sql: "REVOKE ALL ON DATABASE \"shop\" FROM PUBLIC",
        },
    ];
    for c in cases {
        assert_eq!(
            database_diff(
                "shop",
                &c.privileges,
                c.grant_option,
                c.revoke_public,
                &c.have
            ),
            c.diff,
            "{}",
            c.reason
        );
        assert_eq!(
            database_statements(
                "alice",
                "shop",
                &c.privileges,
                c.grant_option,
                c.revoke_public,
                &c.have
            ),
            c.sql,
            "{}",
            c.reason
        );
    }
}

#[test]
fn membership_statements_grant_revoke_and_adjust_the_admin_option() {
    struct Case {
        reason: &'static str,
        admin: bool,
        have: Option<bool>,
        sql: &'static str,
    }
    let cases = [
        Case {
            reason: "not a member yet",
            admin: false,
            have: None,
            sql: "GRANT \"readers\" TO \"alice\"",
        },
        Case {
            reason: "not a member yet, with admin",
            admin: true,
            have: None,
            sql: "GRANT \"readers\" TO \"alice\" WITH ADMIN OPTION",
        },
        Case {
            reason: "already as wanted",
            admin: true,
            have: Some(true),
            sql: "",
        },
        Case {
            reason: "admin option to add",
            admin: true,
            have: Some(false),
            sql: "GRANT \"readers\" TO \"alice\" WITH ADMIN OPTION",
        },
        Case {
            reason: "admin option to take away, membership kept",
            admin: false,
            have: Some(true),
            sql: "REVOKE ADMIN OPTION FOR \"readers\" FROM \"alice\"",
        },
    ];
    for c in cases {
        assert_eq!(
            membership_statements("alice", "readers", c.admin, c.have),
            c.sql,
            "{}",
            c.reason
        );
    }
}
