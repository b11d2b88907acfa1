use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::*;

fn template(name: &str, deps: &[&str]) -> ComposedTemplate {
    serde_json::from_value(json!({"name": name, "base": {}, "dependsOn": deps})).expect("template")
}

#[test]
fn creation_waits_for_dependencies_to_be_ready() {
    let ready: BTreeMap<String, bool> =
        [("role".to_string(), true), ("database".to_string(), false)]
            .into_iter()
            .collect();
    let cases = [
        (
            "no dependencies: created at once",
            template("role", &[]),
            false,
            vec![],
        ),
        (
            "ready dependency: created",
            template("database", &["role"]),
            false,
            vec![],
        ),
        (
            "an unready dependency holds creation",
            template("grant", &["role", "database"]),
            false,
            vec!["database"],
        ),
        (
            "an unknown (not yet observed) dependency holds creation",
            template("x", &["grant"]),
            false,
            vec!["grant"],
        ),
        (
            "an existing resource is kept up to date regardless",
            template("grant", &["role", "database"]),
            true,
            vec![],
        ),
    ];
    for (reason, t, exists, want) in cases {
        assert_eq!(creation_blockers(&t, &ready, exists), want, "{reason}");
    }
}

fn key(kind: &str, name: &str) -> ObjectKey {
    ObjectKey {
        group: "postgresql.sql.tessera.dev".into(),
        kind: kind.into(),
        namespace: None,
        name: name.into(),
    }
}

#[test]
fn garbage_is_what_is_live_but_no_longer_rendered() {
    let rendered: BTreeSet<ObjectKey> = [key("Role", "x-role"), key("Database", "x-db")].into();
    let live = vec![
        key("Role", "x-role"),
        key("Grant", "x-grant"),
        key("Database", "x-db-old"),
    ];
    let got: Vec<&ObjectKey> = garbage(&rendered, &live);
    assert_eq!(
        got,
        vec![&key("Grant", "x-grant"), &key("Database", "x-db-old")]
    );
    assert!(garbage(&rendered, &[key("Role", "x-role")]).is_empty());
}

#[test]
fn deletion_runs_in_reverse_dependency_order() {
    let deps: BTreeMap<String, Vec<String>> = [
        ("database".to_string(), vec!["role".to_string()]),
        (
            "grant".to_string(),
            vec!["role".to_string(), "database".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let cases: [(&str, BTreeSet<String>, Vec<&str>); 5] = [
        (
            "the grant goes first",
            set(&["role", "database", "grant"]),
            vec!["grant"],
        ),
        (
            "then the database",
            set(&["role", "database"]),
            vec!["database"],
        ),
        ("then the role", set(&["role"]), vec!["role"]),
        (
            "a resource without dependents goes at once",
            set(&["role", "cache"]),
            vec!["cache", "role"],
        ),
        ("nothing left", set(&[]), vec![]),
    ];
    for (reason, live, want) in cases {
        let got: Vec<&str> = deletable_now(&deps, &live).into_iter().collect();
        assert_eq!(got, want, "{reason}");
    }
    let all = set(&["role", "database", "grant"]);
    assert_eq!(
        deletable_now(&BTreeMap::new(), &all).len(),
        3,
        "without dependsOn all are deleted at once"
    );
}
