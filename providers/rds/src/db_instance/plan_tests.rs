use super::*;

fn want() -> DBInstanceParameters {
    DBInstanceParameters {
        engine: "postgres".into(),
        db_instance_class: "db.t3.micro".into(),
        master_username: "admin".into(),
        allocated_storage: Some(20),
        ..DBInstanceParameters::default()
    }
}

fn have() -> Have {
    Have {
        status: "available".into(),
        engine: "postgres".into(),
        engine_version: Some("16.4".into()),
        db_instance_class: Some("db.t3.micro".into()),
        allocated_storage: Some(20),
        master_username: Some("admin".into()),
        port: Some(5432),
        backup_retention_period: Some(1),
        multi_az: Some(false),
        ..Have::default()
    }
}

#[test]
fn only_changed_fields_go_into_modify() {
    struct Case {
        reason: &'static str,
        want: DBInstanceParameters,
        have: Have,
        modify: Modify,
    }
    let cases = [
        Case {
            reason: "a spec equal to the instance changes nothing",
            want: want(),
            have: have(),
            modify: Modify::default(),
        },
        Case {
            reason: "fields left out of the spec are not managed",
            want: DBInstanceParameters {
                port: None,
                multi_az: None,
                ..want()
            },
            have: Have {
                port: Some(6000),
                multi_az: Some(true),
                ..have()
            },
            modify: Modify::default(),
        },
        Case {
            reason: "a new class and more storage are the only fields sent",
            want: DBInstanceParameters {
                db_instance_class: "db.t3.large".into(),
                allocated_storage: Some(50),
                ..want()
            },
            have: have(),
            modify: Modify {
                db_instance_class: Some("db.t3.large".into()),
                allocated_storage: Some(50),
                ..Modify::default()
            },
        },
        Case {
            reason: "a change AWS already holds for the maintenance window is not sent again",
            want: DBInstanceParameters {
                db_instance_class: "db.t3.large".into(),
                ..want()
            },
            have: Have {
                pending: Pending {
                    db_instance_class: Some("db.t3.large".into()),
                    ..Pending::default()
                },
                ..have()
            },
            modify: Modify::default(),
        },
        Case {
            reason: "a major version prefix matches the minor version AWS runs",
            want: DBInstanceParameters {
                engine_version: Some("16".into()),
                ..want()
            },
            have: have(),
            modify: Modify::default(),
        },
        Case {
            reason: "a prefix that is not at a dot boundary is an upgrade",
            want: DBInstanceParameters {
                engine_version: Some("16.1".into()),
                ..want()
            },
            have: Have {
                engine_version: Some("16.14".into()),
                ..have()
            },
            modify: Modify {
                engine_version: Some("16.1".into()),
                ..Modify::default()
            },
        },
        Case {
            reason: "security groups compare as sets",
            want: DBInstanceParameters {
                vpc_security_group_ids: Some(vec!["sg-2".into(), "sg-1".into()]),
                ..want()
            },
            have: Have {
                vpc_security_group_ids: vec!["sg-1".into(), "sg-2".into()],
                ..have()
            },
            modify: Modify::default(),
        },
    ];
    for c in cases {
        let (m, words) = plan_modify(&c.want, &c.have);
        assert_eq!(m, c.modify, "{}", c.reason);
        assert_eq!(
            words.is_empty(),
            c.modify.is_empty(),
            "{}: {words:?}",
            c.reason
        );
    }
}

#[test]
fn immutable_fields_and_shrinking_storage_are_refused_with_what_to_do() {
    assert!(immutable_conflicts(&want(), &have()).is_none());
    let e = immutable_conflicts(
        &DBInstanceParameters {
            engine: "mysql".into(),
            master_username: "root".into(),
            allocated_storage: Some(10),
            ..want()
        },
        &have(),
    )
    .expect("conflicts");
    let text = e.to_string();
    assert_eq!(e.category(), "InvalidSpec");
    for needle in [
        "engine cannot change",
        "masterUsername cannot change",
        "allocatedStorage cannot shrink",
        "create a new DBInstance",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[test]
fn late_initialization_fills_only_what_the_spec_left_out() {
    let mut w = DBInstanceParameters {
        port: Some(5433),
        ..want()
    };
    assert!(late_initialize(&mut w, &have()));
    assert_eq!(w.port, Some(5433), "a set field is kept");
    assert_eq!(w.engine_version.as_deref(), Some("16.4"));
    assert_eq!(w.backup_retention_period, Some(1));
    // After late-init nothing differs, so there is no perpetual diff.
    assert!(
        plan_modify(
            &w,
            &Have {
                port: Some(5433),
                ..have()
            }
        )
        .0
        .is_empty()
    );
    assert!(
        !late_initialize(&mut w, &have()),
        "a second pass fills nothing"
    );
}

#[test]
fn identifiers_follow_rds_rules() {
    for ok in ["db1", "my-db", &"a".repeat(63)] {
        assert!(validate_identifier("id", ok).is_ok(), "{ok}");
    }
    for bad in ["", "1db", "My-db", "db-", "my--db", "db_1", &"a".repeat(64)] {
        assert!(validate_identifier("id", bad).is_err(), "{bad}");
    }
}

#[test]
fn tag_diff_names_what_changes_and_ignores_unmanaged_tags() {
    use std::collections::BTreeMap;
    let have = Have {
        tags: BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            (crate::api::OWNERSHIP_TAG.to_string(), "u".to_string()),
        ]),
        ..have()
    };
    assert!(
        tag_diff(&want(), &have).is_none(),
        "tags not in the spec are not managed"
    );
    let w = DBInstanceParameters {
        tags: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
        ..want()
    };
    assert!(tag_diff(&w, &have).is_none());
    let w = DBInstanceParameters {
        tags: Some(BTreeMap::new()),
        ..want()
    };
    assert!(tag_diff(&w, &have).unwrap().contains("team"));
}

#[test]
fn statuses_right_after_a_create_are_creating_and_later_ones_unavailable() {
    struct Case {
        reason: &'static str,
        status: &'static str,
        not_ready_since_create: bool,
        want: bool,
    }
    let cases = [
        Case {
            reason: "creating is always creating",
            status: "creating",
            not_ready_since_create: false,
            want: true,
        },
        Case {
            reason: "the first backup right after a create is still creating",
            status: "backing-up",
            not_ready_since_create: true,
            want: true,
        },
        Case {
            reason: "a backup of an instance that was ready is unavailability",
            status: "backing-up",
            not_ready_since_create: false,
            want: false,
        },
        Case {
            reason: "modifying is unavailability, even before the first Ready",
            status: "modifying",
            not_ready_since_create: true,
            want: false,
        },
        Case {
            reason: "rebooting is unavailability",
            status: "rebooting",
            not_ready_since_create: false,
            want: false,
        },
        Case {
            reason: "stopped is unavailability",
            status: "stopped",
            not_ready_since_create: true,
            want: false,
        },
    ];
    for c in cases {
        let have = Have {
            status: c.status.into(),
            ..Have::default()
        };
        assert_eq!(
            have.creating(c.not_ready_since_create),
            c.want,
            "{}",
            c.reason
        );
    }
}
