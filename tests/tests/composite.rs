//! The composite reconciler end to end: composites (XRs) created directly on the real
//! kube-apiserver, composed into PostgreSQL Roles, Databases and Grants by the composite
//! controller, reconciled against the real PostgreSQL server by the managed controllers,
//! all running in this process.
//!
//! The composite CRD is the one generated from the test's XRD; the composite controller
//! is started directly (not by the XRD controller), one kind for the whole binary.

#[path = "composite/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use kube::api::{DynamicObject, ListParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tessera_engine::api::composition::{CompositionRevision, LABEL_COMPOSITION_NAME};
use tessera_tests::{
    PG_API, TEST_NAMESPACE, apply, condition, delete, get, secret_data, unique, wait_for,
    wait_gone, wait_object, wait_ready, wait_reconciled, wait_sync_error,
};

use self::fixtures::{
    XR_API, XR_KIND, assert_no_failed_create, composition, create_started_at, database_template,
    get_xr, grant_template, plain_role, role_template, setup, str_at, watch_composed, xr,
};

#[tokio::test]
async fn composite_composes_in_dependency_order_publishes_a_usable_url_and_follows_spec_changes() {
    let (env, client) = setup().await;
    let comp = unique("comp-full");
    apply(
        &client,
        composition(
            &comp,
            vec![role_template(), database_template(), grant_template()],
        ),
    )
    .await;
    let name = unique("xfull");
    let conn = format!("{name}-conn");
    let composed = watch_composed(&client, &name).await;
    // The composite's spec, with `connectionLimit` among its parameters or not.
    let spec = |connection_limit: Option<i64>| {
        let mut spec = json!({
            "compositionRef": {"name": comp},
            "writeConnectionSecretToRef": {"name": conn, "namespace": TEST_NAMESPACE},
        });
        if let Some(limit) = connection_limit {
            spec["parameters"] = json!({ "connectionLimit": limit });
        }
        spec
    };
    apply(&client, xr(&name, spec(Some(5)))).await;

    let ready = wait_ready(&client, XR_API, XR_KIND, &name).await;
    let composite = get_xr(&client, &name).await;
    let uid = composite.uid().expect("uid");
    assert!(
        composite
            .finalizers()
            .iter()
            .any(|f| f == tessera_engine::composition_controllers::FINALIZER)
    );
    for (template, kind) in [
        ("role", "Role"),
        ("database", "Database"),
        ("grant", "Grant"),
    ] {
        let child = wait_ready(&client, PG_API, kind, &format!("{name}-{template}")).await;
        assert_eq!(
            child.labels().get("tessera.dev/composite"),
            Some(&name),
            "{kind} label"
        );
        assert_eq!(
            child
                .annotations()
                .get("tessera.dev/composition-resource-name")
                .map(String::as_str),
            Some(template),
            "{kind} annotation"
        );
        let owner = &child.owner_references()[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true)),
            "{kind} owner"
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    // dependsOn: each composed resource appeared (seen by a watch started before the
    // composite existed) only after what it depends on first became Ready (the managed
    // runtime's microsecond transition time), and the database's external create started
    // after that too.
    let seen = |template: &str| {
        composed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{name}-{template}"))
            .copied()
            .unwrap_or_else(|| panic!("the watch never saw the {template}"))
    };
    let (role, db, grant) = (seen("role"), seen("database"), seen("grant"));
    let role_ready = role.first_ready.expect("the watch saw the role Ready");
    let db_ready = db.first_ready.expect("the watch saw the database Ready");
    assert!(
        db.appeared > role_ready,
        "database appeared at {} µs, before the role was Ready at {role_ready} µs",
        db.appeared
    );
    assert!(
        grant.appeared > db_ready && grant.appeared > role_ready,
        "grant appeared at {} µs, before the role (Ready at {role_ready} µs) and the \
         database (Ready at {db_ready} µs) were Ready",
        grant.appeared
    );
    let db_object = get(&client, PG_API, "Database", &format!("{name}-database"))
        .await
        .expect("database");
    assert_no_failed_create(&db_object);
    let db_started = create_started_at(&db_object).expect("the database was created");
    assert!(
        db_started > role_ready,
        "database create started at {db_started} µs, before the role was Ready at {role_ready} µs"
    );

    let refs: Vec<&str> = ready.data["spec"]["resourceRefs"]
        .as_array()
        .expect("resourceRefs")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(refs, ["Role", "Database", "Grant"]);
    assert_eq!(
        str_at(&ready, "/spec/compositionRef/name"),
        Some(comp.as_str())
    );
    assert!(
        str_at(&ready, "/spec/compositionRevisionRef/name").is_some_and(|r| r.starts_with(&comp))
    );
    assert_eq!(
        ready.data["status"]["roleConnectionLimit"], 5,
        "ToCompositeFieldPath"
    );
    assert!(str_at(&ready, "/status/connectionDetails/lastPublishedTime").is_some());

    let secret = secret_data(&client, TEST_NAMESPACE, &conn)
        .await
        .expect("connection secret");
    let mut keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "database", "endpoint", "password", "port", "url", "username"
        ]
    );
    let pg = env.postgres_url(&secret["url"]).await;
    let row = pg
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .expect("query through the published url");
    assert_eq!(row.get::<_, String>(0), format!("{name}-role"));
    assert_eq!(row.get::<_, String>(1), name);
    // An open session would keep PostgreSQL from dropping the database at the end.
    drop(pg);

    // Steady state: nothing is written while the composite and its role are each
    // reconciled again (polled, every 5 s in tests).
    let before = get_xr(&client, &name).await.resource_version();
    let role_before = get(&client, PG_API, "Role", &format!("{name}-role"))
        .await
        .expect("role")
        .resource_version();
    let idle = Instant::now();
    wait_reconciled(XR_KIND, None, &name, idle, Duration::from_secs(30)).await;
    wait_reconciled(
        "Role",
        None,
        &format!("{name}-role"),
        idle,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        get_xr(&client, &name).await.resource_version(),
        before,
        "composite rewritten while idle"
    );
    assert_eq!(
        get(&client, PG_API, "Role", &format!("{name}-role"))
            .await
            .expect("role")
            .resource_version(),
        role_before,
        "composed role rewritten while idle"
    );

    // A spec change reaches the composed resource and comes back through the status patch.
    apply(&client, xr(&name, spec(Some(8)))).await;
    wait_object(
        &client,
        PG_API,
        "Role",
        &format!("{name}-role"),
        Duration::from_secs(30),
        "connectionLimit 8",
        |o| o.data["spec"]["forProvider"]["connectionLimit"] == 8,
    )
    .await;
    wait_object(
        &client,
        XR_API,
        XR_KIND,
        &name,
        Duration::from_secs(30),
        "status.roleConnectionLimit 8",
        |o| o.data["status"]["roleConnectionLimit"] == 8,
    )
    .await;

    // A field no longer rendered (the patch's source is gone) is removed from the
    // composed resource: the composite's apply decision reads which fields its field
    // manager owns on the live object, kept in the store of composed resources.
    apply(&client, xr(&name, spec(None))).await;
    wait_object(
        &client,
        PG_API,
        "Role",
        &format!("{name}-role"),
        Duration::from_secs(30),
        "connectionLimit no longer set",
        |o| {
            o.data["spec"]["forProvider"]
                .get("connectionLimit")
                .is_none()
        },
    )
    .await;

    delete(&client, XR_API, XR_KIND, &name).await;
    wait_gone(&client, XR_API, XR_KIND, &name).await;
}

#[tokio::test]
async fn deleting_the_composite_deletes_grant_then_database_then_role() {
    let (env, client) = setup().await;
    let comp = unique("comp-del");
    apply(
        &client,
        composition(
            &comp,
            vec![role_template(), database_template(), grant_template()],
        ),
    )
    .await;
    let name = unique("xdel");
    apply(
        &client,
        xr(&name, json!({"compositionRef": {"name": comp}})),
    )
    .await;
    wait_ready(&client, XR_API, XR_KIND, &name).await;

    delete(&client, XR_API, XR_KIND, &name).await;
    let (role, db, grant) = (
        format!("{name}-role"),
        format!("{name}-database"),
        format!("{name}-grant"),
    );
    let deleting = |o: &Option<DynamicObject>| {
        o.as_ref()
            .is_some_and(|o| o.metadata.deletion_timestamp.is_some())
    };
    // The poll round in which each was first seen gone.
    let (mut grant_gone, mut db_gone, mut role_gone) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for round in 0u32.. {
        let g = get(&client, PG_API, "Grant", &grant).await;
        let d = get(&client, PG_API, "Database", &db).await;
        let r = get(&client, PG_API, "Role", &role).await;
        assert!(
            !deleting(&d) || g.is_none(),
            "database deleted while the grant still exists"
        );
        assert!(
            !deleting(&r) || d.is_none(),
            "role deleted while the database still exists"
        );
        for (seen, gone) in [
            (&g, &mut grant_gone),
            (&d, &mut db_gone),
            (&r, &mut role_gone),
        ] {
            if seen.is_none() && gone.is_none() {
                *gone = Some(round);
            }
        }
        if g.is_none() && d.is_none() && r.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "composed resources still there after 90s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        grant_gone <= db_gone && db_gone <= role_gone,
        "gone in rounds: grant {grant_gone:?}, database {db_gone:?}, role {role_gone:?}"
    );
    wait_gone(&client, XR_API, XR_KIND, &name).await;
    let pg = env.postgres().await;
    let roles = pg
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .expect("query roles");
    assert!(roles.is_empty(), "PostgreSQL role dropped");
    let dbs = pg
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query databases");
    assert!(dbs.is_empty(), "PostgreSQL database dropped");
}

async fn revisions_of(client: &kube::Client, comp: &str) -> Vec<CompositionRevision> {
    let api: Api<CompositionRevision> = Api::all(client.clone());
    let mut revs = api
        .list(&ListParams::default().labels(&format!("{LABEL_COMPOSITION_NAME}={comp}")))
        .await
        .expect("list revisions")
        .items;
    revs.sort_by_key(|r| r.spec.revision);
    revs
}

#[tokio::test]
async fn composition_change_creates_a_revision_that_automatic_composites_follow_and_manual_ones_do_not()
 {
    let (_env, client) = setup().await;
    let comp = unique("comp-rev");
    apply(&client, composition(&comp, vec![plain_role("role", 5)])).await;
    let auto = unique("xauto");
    let manual = unique("xmanual");
    apply(
        &client,
        xr(&auto, json!({"compositionRef": {"name": comp}})),
    )
    .await;
    apply(
        &client,
        xr(
            &manual,
            json!({"compositionRef": {"name": comp}, "compositionUpdatePolicy": "Manual"}),
        ),
    )
    .await;
    let first = wait_for(Duration::from_secs(30), || async {
        let revs = revisions_of(&client, &comp).await;
        (revs.len() == 1).then(|| revs[0].name_any())
    })
    .await
    .expect("first revision");
    for name in [&auto, &manual] {
        wait_object(
            &client,
            XR_API,
            XR_KIND,
            name,
            Duration::from_secs(30),
            "pinned to revision 1",
            |o| str_at(o, "/spec/compositionRevisionRef/name") == Some(first.as_str()),
        )
        .await;
        wait_ready(&client, XR_API, XR_KIND, name).await;
    }

    apply(&client, composition(&comp, vec![plain_role("role", 7)])).await;
    let second = wait_for(Duration::from_secs(30), || async {
        let revs = revisions_of(&client, &comp).await;
        (revs.len() == 2).then(|| revs[1].clone())
    })
    .await
    .expect("second revision");
    let second_seen = Instant::now();
    assert_eq!(second.spec.revision, 2);
    assert_eq!(
        second.owner_references()[0].name,
        comp,
        "owned by the composition"
    );
    assert_ne!(second.name_any(), first);

    wait_object(
        &client,
        XR_API,
        XR_KIND,
        &auto,
        Duration::from_secs(30),
        "on revision 2",
        |o| str_at(o, "/spec/compositionRevisionRef/name") == Some(second.name_any().as_str()),
    )
    .await;
    wait_object(
        &client,
        PG_API,
        "Role",
        &format!("{auto}-role"),
        Duration::from_secs(30),
        "limit 7",
        |o| o.data["spec"]["forProvider"]["connectionLimit"] == 7,
    )
    .await;
    // The Manual composite was reconciled after revision 2 existed, and stayed.
    wait_reconciled(XR_KIND, None, &manual, second_seen, Duration::from_secs(30)).await;
    let pinned = get_xr(&client, &manual).await;
    assert_eq!(
        str_at(&pinned, "/spec/compositionRevisionRef/name"),
        Some(first.as_str())
    );
    let manual_role = get(&client, PG_API, "Role", &format!("{manual}-role"))
        .await
        .expect("role");
    assert_eq!(
        manual_role.data["spec"]["forProvider"]["connectionLimit"],
        5
    );

    for name in [&auto, &manual] {
        delete(&client, XR_API, XR_KIND, name).await;
        wait_gone(&client, XR_API, XR_KIND, name).await;
    }
}

#[tokio::test]
async fn resources_removed_from_the_composition_are_garbage_collected() {
    let (_env, client) = setup().await;
    let comp = unique("comp-gc");
    apply(
        &client,
        composition(&comp, vec![plain_role("role", 3), plain_role("extra", 4)]),
    )
    .await;
    let name = unique("xgc");
    apply(
        &client,
        xr(&name, json!({"compositionRef": {"name": comp}})),
    )
    .await;
    wait_ready(&client, XR_API, XR_KIND, &name).await;
    assert!(
        get(&client, PG_API, "Role", &format!("{name}-extra"))
            .await
            .is_some()
    );

    apply(&client, composition(&comp, vec![plain_role("role", 3)])).await;
    wait_gone(&client, PG_API, "Role", &format!("{name}-extra")).await;
    let composite = wait_object(
        &client,
        XR_API,
        XR_KIND,
        &name,
        Duration::from_secs(30),
        "one resourceRef",
        |o| {
            o.data["spec"]["resourceRefs"]
                .as_array()
                .is_some_and(|r| r.len() == 1)
        },
    )
    .await;
    assert_eq!(
        composite.data["spec"]["resourceRefs"][0]["name"],
        format!("{name}-role")
    );
    assert!(
        get(&client, PG_API, "Role", &format!("{name}-role"))
            .await
            .is_some(),
        "the rest stays"
    );

    delete(&client, XR_API, XR_KIND, &name).await;
    wait_gone(&client, XR_API, XR_KIND, &name).await;
}

#[tokio::test]
async fn no_matching_composition_is_reported_on_synced() {
    let (_env, client) = setup().await;
    let name = unique("xnomatch");
    let env_label = unique("nowhere");
    apply(
        &client,
        xr(
            &name,
            json!({"compositionSelector": {"matchLabels": {"env": env_label}}}),
        ),
    )
    .await;
    let synced = wait_sync_error(
        &client,
        XR_API,
        XR_KIND,
        &name,
        &format!("No composition matches selector {{env: {env_label}}} for {XR_KIND}"),
    )
    .await;
    assert_eq!(synced.reason, "ReconcileError");
    let ready = condition(&get_xr(&client, &name).await, "Ready").expect("Ready");
    assert!(
        !ready.is_true(),
        "a composite without composition is not ready"
    );

    // A matching composition turns up: the composite picks it and records the choice.
    let comp = unique("comp-late");
    let mut c = composition(&comp, vec![plain_role("role", 2)]);
    c["metadata"]["labels"] = json!({"env": env_label});
    apply(&client, c).await;
    let ready = wait_ready(&client, XR_API, XR_KIND, &name).await;
    assert_eq!(
        str_at(&ready, "/spec/compositionRef/name"),
        Some(comp.as_str())
    );

    delete(&client, XR_API, XR_KIND, &name).await;
    wait_gone(&client, XR_API, XR_KIND, &name).await;
}

#[tokio::test]
async fn a_missing_required_patch_source_is_reported_on_synced() {
    let (_env, client) = setup().await;
    let comp = unique("comp-req");
    let mut role = plain_role("role", 2);
    role["patches"] = json!([
        {"fromFieldPath": "spec.parameters.name", "toFieldPath": "metadata.annotations[example.org/name]"},
        {"fromFieldPath": "spec.parameters.connectionLimit", "toFieldPath": "spec.forProvider.connectionLimit"},
        {"fromFieldPath": "spec.parameters.size", "toFieldPath": "metadata.labels[size]",
         "policy": {"fromFieldPath": "Required"}},
    ]);
    apply(&client, composition(&comp, vec![role])).await;
    let name = unique("xreq");
    apply(
        &client,
        xr(
            &name,
            json!({"compositionRef": {"name": comp}, "parameters": {}}),
        ),
    )
    .await;
    let synced = wait_sync_error(
        &client,
        XR_API,
        XR_KIND,
        &name,
        "Patch 2 of resource 'role': field spec.parameters.size is required but missing",
    )
    .await;
    assert_eq!(synced.reason, "ReconcileError");
    assert!(
        get(&client, PG_API, "Role", &format!("{name}-role"))
            .await
            .is_none(),
        "nothing composed"
    );

    delete(&client, XR_API, XR_KIND, &name).await;
    wait_gone(&client, XR_API, XR_KIND, &name).await;
}

#[tokio::test]
async fn a_composed_resource_rejected_by_the_api_server_is_reported_on_synced() {
    let (_env, client) = setup().await;
    let comp = unique("comp-bad");
    let mut role = plain_role("role", 2);
    role["base"]["spec"]["forProvider"]["connectionLimit"] = json!("lots");
    apply(&client, composition(&comp, vec![role])).await;
    let name = unique("xbad");
    apply(
        &client,
        xr(&name, json!({"compositionRef": {"name": comp}})),
    )
    .await;
    let synced = wait_sync_error(
        &client,
        XR_API,
        XR_KIND,
        &name,
        &format!("Cannot apply Role \"{name}-role\" (resource 'role'): "),
    )
    .await;
    assert!(
        synced.message.contains("connectionLimit"),
        "{}",
        synced.message
    );

    delete(&client, XR_API, XR_KIND, &name).await;
    wait_gone(&client, XR_API, XR_KIND, &name).await;
}
