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

#[test]
fn remaining_resources_are_listed_in_composition_order() {
    let order: Vec<String> = ["role", "database", "grant"].map(String::from).to_vec();
    let names: BTreeSet<String> = ["grant", "role", "Role/stray"].map(String::from).into();
    assert_eq!(in_order(&order, &names), ["role", "grant", "Role/stray"]);
}

mod decisions {
    use serde_json::Value;

    use super::super::*;
    use crate::compose::render;
    use crate::composite::fixtures::{
        composition, composition_without_depends_on, deleting, drifted_database, dropped, key,
        live, new_composite,
    };

    const MANAGER: &str = "tessera/composite/orders";

    fn apply(resource: &str, create: bool) -> Apply {
        Apply {
            resource: resource.into(),
            create,
        }
    }

    fn wait(resource: &str, on: &[&str]) -> (String, Vec<String>) {
        (resource.into(), on.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_plan_applies_what_changed_holds_what_waits_on_depends_on_and_collects_garbage() {
        struct Case {
            reason: &'static str,
            children: Vec<Value>,
            want: Plan,
        }
        let cases = vec![
            Case {
                reason: "nothing exists: the resource without dependsOn is created, the others wait for it",
                children: vec![],
                want: Plan {
                    apply: vec![apply("role", true)],
                    wait: vec![
                        wait("database", &["role"]),
                        wait("grant", &["role", "database"]),
                    ],
                    delete: vec![],
                },
            },
            Case {
                reason: "a dependency that exists but is not ready still holds its dependents",
                children: vec![live("role", false)],
                want: Plan {
                    wait: vec![
                        wait("database", &["role"]),
                        wait("grant", &["role", "database"]),
                    ],
                    ..Plan::default()
                },
            },
            Case {
                reason: "a ready dependency lets the next layer be created, the one after waits",
                children: vec![live("role", true)],
                want: Plan {
                    apply: vec![apply("database", true)],
                    wait: vec![wait("grant", &["database"])],
                    delete: vec![],
                },
            },
            Case {
                reason: "everything in sync: no writes at all",
                children: vec![
                    live("role", true),
                    live("database", true),
                    live("grant", true),
                ],
                want: Plan::default(),
            },
            Case {
                reason: "an existing resource that drifted is updated even while its dependency is not ready",
                children: vec![live("role", false), drifted_database(false)],
                want: Plan {
                    apply: vec![apply("database", false)],
                    wait: vec![wait("grant", &["role", "database"])],
                    delete: vec![],
                },
            },
            Case {
                reason: "a resource the Composition no longer renders is garbage",
                children: vec![
                    live("role", true),
                    live("database", true),
                    live("grant", true),
                    dropped("cache"),
                ],
                want: Plan {
                    delete: vec![key(&dropped("cache"))],
                    ..Plan::default()
                },
            },
            Case {
                reason: "garbage already being deleted is not deleted again",
                children: vec![
                    live("role", true),
                    live("database", true),
                    live("grant", true),
                    deleting(dropped("cache")),
                ],
                want: Plan::default(),
            },
        ];
        let composition = composition();
        let rendered = render(&new_composite(), &composition).expect("renders");
        let target = Target::new(&composition, &rendered, MANAGER).expect("target");
        for case in cases {
            let observed = Observed::new(&target, case.children).expect("observed");
            assert_eq!(plan(&target, &observed), case.want, "{}", case.reason);
        }
    }

    #[test]
    fn children_are_ready_by_their_readiness_checks_or_else_their_ready_condition() {
        struct Case {
            reason: &'static str,
            children: Vec<Value>,
            want: &'static [(&'static str, bool)],
        }
        let cases = [
            Case {
                reason: "a resource without readiness checks is ready when its Ready condition is True",
                children: vec![live("role", true), live("grant", false)],
                want: &[("grant", false), ("role", true)],
            },
            Case {
                reason: "a resource with readiness checks is ready when they pass",
                children: vec![live("database", true)],
                want: &[("database", true)],
            },
            Case {
                reason: "a failing readiness check keeps the resource unready",
                children: vec![live("database", false)],
                want: &[("database", false)],
            },
            Case {
                reason: "garbage has no readiness: it is not rendered",
                children: vec![dropped("cache")],
                want: &[],
            },
        ];
        let composition = composition();
        let rendered = render(&new_composite(), &composition).expect("renders");
        let target = Target::new(&composition, &rendered, MANAGER).expect("target");
        for case in cases {
            let observed = Observed::new(&target, case.children).expect("observed");
            let want: BTreeMap<String, bool> =
                case.want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
            assert_eq!(observed.ready, want, "{}", case.reason);
        }
    }

    #[test]
    fn connection_secrets_are_read_only_for_resources_that_take_details_from_them() {
        let composition = composition();
        let rendered = render(&new_composite(), &composition).expect("renders");
        let target = Target::new(&composition, &rendered, MANAGER).expect("target");
        let mut database = live("database", true);
        // A Secret the template takes nothing from is not read.
        database["spec"]["writeConnectionSecretToRef"] =
            serde_json::json!({"name": "orders-db", "namespace": "tessera-system"});
        let observed =
            Observed::new(&target, vec![live("role", true), database]).expect("observed");
        assert_eq!(
            secret_reads(&target, &observed),
            vec![SecretRead {
                resource: "role".into(),
                secret: SecretReference {
                    name: "orders-role".into(),
                    namespace: "tessera-system".into(),
                },
                owner_uid: Some("uid-role".into()),
                ready: true,
            }]
        );
        let nothing_live = Observed::new(&target, vec![]).expect("observed");
        assert!(
            secret_reads(&target, &nothing_live).is_empty(),
            "a resource not created yet has no Secret to read"
        );
    }

    #[test]
    fn every_rendered_resource_is_recorded_also_those_still_waiting() {
        let composition = composition();
        let rendered = render(&new_composite(), &composition).expect("renders");
        let target = Target::new(&composition, &rendered, MANAGER).expect("target");
        let kinds: Vec<String> = target
            .resource_refs(&rendered)
            .into_iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect();
        assert_eq!(
            kinds,
            [
                "Role orders-role",
                "Database orders-database",
                "Grant orders-grant"
            ]
        );
    }

    #[test]
    fn deletion_goes_layer_by_layer_in_reverse_depends_on_order() {
        struct Case {
            reason: &'static str,
            composition: Option<CompositionSpec>,
            live: Vec<Value>,
            delete: Vec<Value>,
            remaining: &'static [&'static str],
        }
        let all = || {
            vec![
                live("role", true),
                live("database", true),
                live("grant", true),
            ]
        };
        let cases = vec![
            Case {
                reason: "the last layer of dependsOn goes first",
                composition: Some(composition()),
                live: all(),
                delete: vec![live("grant", true)],
                remaining: &["role", "database", "grant"],
            },
            Case {
                reason: "the next layer goes once the one after it is gone",
                composition: Some(composition()),
                live: vec![live("role", true), live("database", true)],
                delete: vec![live("database", true)],
                remaining: &["role", "database"],
            },
            Case {
                reason: "a layer still being deleted holds the one before it",
                composition: Some(composition()),
                live: vec![live("role", true), deleting(live("database", true))],
                delete: vec![],
                remaining: &["role", "database"],
            },
            Case {
                reason: "the first layer goes last",
                composition: Some(composition()),
                live: vec![live("role", true)],
                delete: vec![live("role", true)],
                remaining: &["role"],
            },
            Case {
                reason: "without dependsOn all go at once",
                composition: Some(composition_without_depends_on()),
                live: all(),
                delete: all(),
                remaining: &["role", "database", "grant"],
            },
            Case {
                reason: "without a Composition (deleted meanwhile) there is no order to keep",
                composition: None,
                live: all(),
                delete: all(),
                remaining: &["database", "grant", "role"],
            },
            Case {
                reason: "a resource the Composition does not name is deleted and listed last",
                composition: Some(composition()),
                live: vec![live("role", true), dropped("cache")],
                delete: vec![live("role", true), dropped("cache")],
                remaining: &["role", "cache"],
            },
            Case {
                reason: "nothing left: done",
                composition: Some(composition()),
                live: vec![],
                delete: vec![],
                remaining: &[],
            },
        ];
        for case in cases {
            let got = deletion(case.composition.as_ref(), &case.live);
            let mut want: Vec<ObjectKey> = case.delete.iter().map(key).collect();
            let mut got_delete = got.delete.clone();
            want.sort();
            got_delete.sort();
            assert_eq!(got_delete, want, "{}", case.reason);
            assert_eq!(got.remaining, case.remaining, "{}", case.reason);
        }
    }
}

fn rendered(template: &str, api_version: &str, kind: &str) -> RenderedResource {
    RenderedResource {
        template: template.into(),
        object: json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}}),
    }
}

#[test]
fn only_allowed_kinds_may_be_composed() {
    let pg = ComposableResources::defaults(["postgresql.sql.tessera.dev"]);
    let with_crb = ComposableResources::parse(
        "default, rbac.authorization.k8s.io/ClusterRoleBinding",
        ["postgresql.sql.tessera.dev"],
    )
    .expect("list");
    let crb = rendered(
        "admin",
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
    );
    let role = rendered("role", "postgresql.sql.tessera.dev/v1alpha1", "Role");
    let config = rendered("settings", "v1", "ConfigMap");
    let pod = rendered("runner", "v1", "Pod");
    let nested = rendered("db", "platform.tessera.dev/v1alpha1", "XPostgresDatabase");
    let refused = |r: &RenderedResource| NotComposable {
        resource: r.template.clone(),
        api_version: r.object["apiVersion"].as_str().unwrap_or_default().into(),
        kind: r.object["kind"].as_str().unwrap_or_default().into(),
    };
    let cases = [
        (
            "provider kinds and ConfigMaps are composable by default",
            &pg,
            vec![role.clone(), config.clone()],
            vec![],
        ),
        (
            "a ClusterRoleBinding is not, by default",
            &pg,
            vec![config.clone(), crb.clone(), role.clone()],
            vec![refused(&crb)],
        ),
        (
            "every refused resource is named, in the render's order",
            &pg,
            vec![pod.clone(), role.clone(), crb.clone()],
            vec![refused(&pod), refused(&crb)],
        ),
        (
            "another XRD's composite is not composable unless listed",
            &pg,
            vec![nested.clone()],
            vec![refused(&nested)],
        ),
        (
            "a listed kind is composable",
            &with_crb,
            vec![config.clone(), crb.clone()],
            vec![],
        ),
        (
            "listing one kind allows no other of the core group",
            &with_crb,
            vec![pod.clone()],
            vec![refused(&pod)],
        ),
        (
            "a resource rendered without apiVersion or kind is refused",
            &pg,
            vec![RenderedResource {
                template: "broken".into(),
                object: json!({"metadata": {"name": "x"}}),
            }],
            vec![NotComposable {
                resource: "broken".into(),
                api_version: String::new(),
                kind: String::new(),
            }],
        ),
    ];
    for (reason, allowed, rendered, want) in cases {
        assert_eq!(not_composable(&rendered, allowed), want, "{reason}");
    }
}
