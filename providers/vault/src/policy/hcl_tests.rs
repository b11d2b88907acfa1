use super::*;

fn rule(paths: &[&str], caps: &[&str]) -> PolicyRule {
    PolicyRule {
        paths: paths.iter().map(|s| s.to_string()).collect(),
        capabilities: caps.iter().map(|s| s.to_string()).collect(),
        description: None,
    }
}

#[test]
fn rules_render_to_canonical_hcl_that_means_what_they_say() {
    let mut r = rule(
        &["secret/data/app/*", "secret/metadata/app/*"],
        &["read", "list", "read"],
    );
    r.description = Some("the app's secrets".into());
    let text = render(&[r]).unwrap();
    assert_eq!(
        text,
        "# the app's secrets\n\
         path \"secret/data/app/*\" {\n  capabilities = [\"list\", \"read\"]\n}\n\
         path \"secret/metadata/app/*\" {\n  capabilities = [\"list\", \"read\"]\n}\n"
    );
    let m = meaning(&text).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m["secret/data/app/*"].capabilities,
        ["list", "read"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn a_rule_without_paths_is_left_out() {
    let text = render(&[rule(&["a"], &["read"]), rule(&[], &["update"])]).unwrap();
    assert_eq!(text, "path \"a\" {\n  capabilities = [\"read\"]\n}\n");
}

#[test]
fn bad_rules_are_refused_with_the_field_that_is_wrong() {
    struct Case {
        reason: &'static str,
        rules: Vec<PolicyRule>,
        contains: &'static str,
    }
    let cases = [
        Case {
            reason: "no rules",
            rules: vec![],
            contains: "no rule with paths",
        },
        Case {
            reason: "no rule has paths",
            rules: vec![rule(&[], &["read"])],
            contains: "no rule with paths",
        },
        Case {
            reason: "no capabilities",
            rules: vec![rule(&["a"], &[])],
            contains: "rules[0].capabilities is empty",
        },
        Case {
            reason: "a quote would break out of the path string",
            rules: vec![rule(&["a\" {}\npath \"b"], &["read"])],
            contains: "is not a Vault path",
        },
        Case {
            reason: "a capability with HCL in it",
            rules: vec![rule(&["a"], &["read\"]"])],
            contains: "is not a capability",
        },
    ];
    for c in cases {
        let err = render(&c.rules).expect_err(c.reason);
        assert!(err.contains(c.contains), "{}: {err}", c.reason);
    }
}

#[test]
fn formatting_order_and_comments_are_not_differences() {
    struct Case {
        reason: &'static str,
        want: &'static str,
        have: &'static str,
        diff: Option<&'static str>,
    }
    let cases = [
        Case {
            reason: "same text",
            want: "path \"a\" { capabilities = [\"read\"] }",
            have: "path \"a\" { capabilities = [\"read\"] }",
            diff: None,
        },
        Case {
            reason: "whitespace, order of capabilities and of blocks, comments",
            want: "path \"a\" { capabilities = [\"read\", \"list\"] }\npath \"b\" { capabilities = [\"update\"] }",
            have: "# made by hand\npath \"b\" {\n  capabilities = [\"update\"]\n}\n\npath \"a\" {\n capabilities = [\"list\",\n \"read\"]\n}\n",
            diff: None,
        },
        Case {
            reason: "the mark line is ignored",
            want: "path \"a\" { capabilities = [\"read\"] }",
            have: "# tessera.dev/managed-resource-uid=u1\npath \"a\" { capabilities = [\"read\"] }",
            diff: None,
        },
        Case {
            reason: "a repeated path merges, as Vault merges it",
            want: "path \"a\" { capabilities = [\"read\", \"list\"] }",
            have: "path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }",
            diff: None,
        },
        Case {
            reason: "a capability added out of band",
            want: "path \"a\" { capabilities = [\"read\"] }",
            have: "path \"a\" { capabilities = [\"read\", \"delete\"] }",
            diff: Some("path \"a\" has capabilities [delete, read] instead of [read]"),
        },
        Case {
            reason: "a path removed and one added",
            want: "path \"a\" { capabilities = [\"read\"] }",
            have: "path \"b\" { capabilities = [\"read\"] }",
            diff: Some("path \"a\" is missing; path \"b\" is not in the spec"),
        },
        Case {
            reason: "another setting",
            want: "path \"a\" { capabilities = [\"read\"] }",
            have: "path \"a\" {\n capabilities = [\"read\"]\n max_wrapping_ttl = \"1h\"\n}",
            diff: Some("path \"a\": max_wrapping_ttl differs"),
        },
        Case {
            reason: "text this parser does not know falls back to the words",
            want: "path \"a\" { capabilities = [\"read\" }",
            have: "path \"a\" { capabilities = [\"read\" }",
            diff: None,
        },
    ];
    for c in cases {
        assert_eq!(
            difference(c.want, c.have).as_deref(),
            c.diff,
            "{}",
            c.reason
        );
    }
}

#[test]
fn the_mark_names_the_managed_resource_and_is_replaced_not_stacked() {
    let text = with_mark("path \"a\" { capabilities = [\"read\"] }", "uid-1");
    assert_eq!(marked_uid(&text).as_deref(), Some("uid-1"));
    let again = with_mark(&text, "uid-2");
    assert_eq!(marked_uid(&again).as_deref(), Some("uid-2"));
    assert_eq!(again.matches(MANAGED_RESOURCE_UID).count(), 1);
    assert_eq!(marked_uid("# just a comment\npath \"a\" {}"), None);
    assert_eq!(
        strip_mark(&again),
        "path \"a\" { capabilities = [\"read\"] }"
    );
}
