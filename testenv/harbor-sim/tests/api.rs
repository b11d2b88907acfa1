//! The simulator's own tests: each answers as Harbor's API document says.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: (&str, &str) = ("admin", "Harbor12345");

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<Value>,
) -> Answer {
    call_with(app, method, path, auth, body, &[]).await
}

async fn call_with(
    app: &Router,
    method: Method,
    path: &str,
    auth: Option<(&str, &str)>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some((u, p)) = auth {
        req = req.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{u}:{p}"))),
        );
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn app() -> Router {
    tessera_harbor_sim::router(ADMIN.0, ADMIN.1)
}

fn error_code(a: &Answer) -> &str {
    a.body["errors"][0]["code"].as_str().unwrap_or_default()
}

async fn create_project(app: &Router, name: &str) -> i64 {
    let a = call(
        app,
        Method::POST,
        "/api/v2.0/projects",
        Some(ADMIN),
        Some(json!({"project_name": name})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let location = a.headers["location"].to_str().unwrap();
    location.rsplit('/').next().unwrap().parse().unwrap()
}

fn robot_body(project: &str, name: &str) -> Value {
    json!({
        "name": name, "level": "project", "duration": -1, "description": "pull",
        "permissions": [{"kind": "project", "namespace": project,
                         "access": [{"resource": "repository", "action": "pull"}]}]
    })
}

#[tokio::test]
async fn project_create_get_conflict_and_invalid_name() {
    let app = app();
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/projects",
        Some(ADMIN),
        Some(json!({"project_name": "team-a", "metadata": {"public": "true", "auto_scan": "true", "severity": "high"},
                    "storage_limit": 1024, "cve_allowlist": {"items": [{"cve_id": "CVE-2024-1"}]}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body, Value::Null, "201 has no body");
    let location = a.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/api/v2.0/projects/"), "{location}");
    let id = location.rsplit('/').next().unwrap();

    let by_id = call(
        &app,
        Method::GET,
        &format!("/api/v2.0/projects/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(by_id.body["name"], "team-a");
    assert_eq!(
        by_id.body["metadata"]["public"], "true",
        "metadata values are strings"
    );
    assert_eq!(by_id.body["metadata"]["severity"], "high");
    assert_eq!(
        by_id.body["cve_allowlist"]["items"][0]["cve_id"],
        "CVE-2024-1"
    );
    let by_name = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-a",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(by_name.body["project_id"].to_string(), id);

    let dup = call(
        &app,
        Method::POST,
        "/api/v2.0/projects",
        Some(ADMIN),
        Some(json!({"project_name": "team-a"})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(error_code(&dup), "CONFLICT");

    for bad in [
        "Team-A",
        "team--a",
        "-team",
        "team a",
        "",
        "team.",
        &"a".repeat(256),
    ] {
        let a = call(
            &app,
            Method::POST,
            "/api/v2.0/projects",
            Some(ADMIN),
            Some(json!({"project_name": bad})),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(error_code(&a), "BAD_REQUEST");
    }
    let bool_meta = call(
        &app,
        Method::POST,
        "/api/v2.0/projects",
        Some(ADMIN),
        Some(json!({"project_name": "b", "metadata": {"public": true}})),
    )
    .await;
    assert_eq!(
        bool_meta.status,
        StatusCode::BAD_REQUEST,
        "metadata values must be strings"
    );

    let missing = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/nothere",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&missing), "NOT_FOUND");
}

#[tokio::test]
async fn numeric_project_name_needs_x_is_resource_name() {
    let app = app();
    let id = create_project(&app, "12345").await;
    let as_id = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/12345",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(as_id.status, StatusCode::NOT_FOUND, "a number is an id");
    let as_name = call_with(
        &app,
        Method::GET,
        "/api/v2.0/projects/12345",
        Some(ADMIN),
        None,
        &[("X-Is-Resource-Name", "true")],
    )
    .await;
    assert_eq!(as_name.status, StatusCode::OK);
    assert_eq!(as_name.body["project_id"], id);
}

#[tokio::test]
async fn head_list_paging_and_request_id() {
    let app = app();
    for i in 0..5 {
        create_project(&app, &format!("p{i}")).await;
    }
    let head = call(
        &app,
        Method::HEAD,
        "/api/v2.0/projects?project_name=p3",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    let head = call(
        &app,
        Method::HEAD,
        "/api/v2.0/projects?project_name=zz",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);

    let page = call_with(
        &app,
        Method::GET,
        "/api/v2.0/projects?page=2&page_size=2",
        Some(ADMIN),
        None,
        &[("X-Request-Id", "req-42")],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["x-request-id"], "req-42");
    assert_eq!(page.headers["x-total-count"], "5");
    let link = page.headers["link"].to_str().unwrap();
    assert!(link.contains("page=1&page_size=2>; rel=\"prev\""), "{link}");
    assert!(link.contains("page=3&page_size=2>; rel=\"next\""), "{link}");
    assert_eq!(page.body.as_array().unwrap().len(), 2);

    let q = call(
        &app,
        Method::GET,
        "/api/v2.0/projects?q=name%3Dp4",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(q.headers["x-total-count"], "1");
    assert_eq!(q.body[0]["name"], "p4");
    let fuzzy = call(
        &app,
        Method::GET,
        "/api/v2.0/projects?q=name%3D~p",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(fuzzy.headers["x-total-count"], "5");
    let too_big = call(
        &app,
        Method::GET,
        "/api/v2.0/projects?page_size=101",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);
    let generated = call(&app, Method::GET, "/api/v2.0/projects", Some(ADMIN), None).await;
    assert!(!generated.headers["x-request-id"].is_empty());
}

#[tokio::test]
async fn update_quota_summary_and_delete_with_repositories() {
    let app = app();
    let id = create_project(&app, "team-b").await;
    let put = call(
        &app,
        Method::PUT,
        "/api/v2.0/projects/team-b",
        Some(ADMIN),
        Some(json!({"metadata": {"prevent_vul": "true", "severity": "critical"}, "cve_allowlist": {"items": []}})),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let got = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(got.body["metadata"]["prevent_vul"], "true");
    assert_eq!(
        got.body["metadata"]["public"], "false",
        "unchanged keys stay"
    );

    let quotas = call(
        &app,
        Method::GET,
        &format!("/api/v2.0/quotas?reference=project&reference_id={id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(quotas.body[0]["hard"]["storage"], -1);
    let qid = quotas.body[0]["id"].as_i64().unwrap();
    let bad = call(
        &app,
        Method::PUT,
        &format!("/api/v2.0/quotas/{qid}"),
        Some(ADMIN),
        Some(json!({"hard": {"storage": -5}})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let set = call(
        &app,
        Method::PUT,
        &format!("/api/v2.0/quotas/{qid}"),
        Some(ADMIN),
        Some(json!({"hard": {"storage": 1073741824}})),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK);
    let summary = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-b/summary",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(summary.body["quota"]["hard"]["storage"], 1073741824_i64);

    let add = call(
        &app,
        Method::POST,
        "/simulator/projects/team-b/repositories",
        None,
        Some(json!({"name": "app"})),
    )
    .await;
    assert_eq!(add.status, StatusCode::CREATED);
    let del = call(
        &app,
        Method::DELETE,
        "/api/v2.0/projects/team-b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_code(&del), "PRECONDITION");
    let rm = call(
        &app,
        Method::DELETE,
        "/simulator/projects/team-b/repositories/app",
        None,
        None,
    )
    .await;
    assert_eq!(rm.status, StatusCode::OK);
    let del = call(
        &app,
        Method::DELETE,
        "/api/v2.0/projects/team-b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::OK);
    let gone = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn robot_secret_once_refresh_invalidates_old_and_duplicates_conflict() {
    let app = app();
    let pid = create_project(&app, "team-c").await;
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(robot_body("team-c", "pull")),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["name"], "robot$team-c+pull");
    let id = a.body["id"].as_i64().unwrap();
    let secret = a.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"],
        format!("/api/v2.0/robots/{id}").as_str()
    );

    let got = call(
        &app,
        Method::GET,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.body.get("secret").is_none(),
        "GET never returns the secret"
    );
    assert_eq!(got.body["permissions"][0]["access"][0]["action"], "pull");

    let name = "robot$team-c+pull";
    let me = call(
        &app,
        Method::GET,
        "/api/v2.0/users/current",
        Some((name, &secret)),
        None,
    )
    .await;
    assert_eq!(
        me.status,
        StatusCode::PRECONDITION_FAILED,
        "a robot authenticates but is no local user"
    );
    let tok = call(
        &app,
        Method::GET,
        "/service/token?service=harbor-registry",
        Some((name, &secret)),
        None,
    )
    .await;
    assert_eq!(tok.status, StatusCode::OK);

    let dup = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(robot_body("team-c", "pull")),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let refreshed = call(
        &app,
        Method::PATCH,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        Some(json!({})),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let new_secret = refreshed.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let old = call(
        &app,
        Method::GET,
        "/service/token",
        Some((name, &secret)),
        None,
    )
    .await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old secret no longer works"
    );
    assert_eq!(error_code(&old), "UNAUTHORIZED");
    let new = call(
        &app,
        Method::GET,
        "/service/token",
        Some((name, &new_secret)),
        None,
    )
    .await;
    assert_eq!(new.status, StatusCode::OK);

    // PUT: permissions and disable; a disabled robot no longer authenticates.
    let mut update = got.body.clone();
    update["permissions"][0]["access"] = json!([{"resource": "repository", "action": "push"}, {"resource": "artifact", "action": "read"}]);
    update["disable"] = json!(true);
    let put = call(
        &app,
        Method::PUT,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        Some(update),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let got = call(
        &app,
        Method::GET,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        got.body["permissions"][0]["access"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(got.body["disable"], true);
    let disabled = call(
        &app,
        Method::GET,
        "/service/token",
        Some((name, &new_secret)),
        None,
    )
    .await;
    assert_eq!(disabled.status, StatusCode::UNAUTHORIZED);

    let system = call(&app, Method::GET, "/api/v2.0/robots", Some(ADMIN), None).await;
    assert_eq!(
        system.headers["x-total-count"], "0",
        "without Level only system robots are listed"
    );
    let no_pid = call(
        &app,
        Method::GET,
        "/api/v2.0/robots?q=Level%3Dproject",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(no_pid.status, StatusCode::BAD_REQUEST);
    let listed = call(
        &app,
        Method::GET,
        &format!(
            "/api/v2.0/robots?q=Level%3Dproject,ProjectID%3D{pid},name%3Drobot%24team-c%2Bpull"
        ),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(listed.headers["x-total-count"], "1");

    let mut bad = robot_body("team-c", "other");
    bad["permissions"][0]["access"] = json!([{"resource": "repository", "action": "fly"}]);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(bad),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let mut bad = robot_body("team-c", "other");
    bad["duration"] = json!(-7);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(bad),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(robot_body("nothere", "x")),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let mut zero = robot_body("team-c", "zero");
    zero["duration"] = json!(0);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(zero),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "the API takes -1 or a positive duration"
    );
    let mut empty = robot_body("team-c", "empty");
    empty["permissions"][0]["access"] = json!([]);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(empty),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let chosen = call(
        &app,
        Method::PATCH,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        Some(json!({"secret": "Chosen123"})),
    )
    .await;
    assert_eq!(chosen.status, StatusCode::OK);
    assert_eq!(chosen.body["secret"], "", "a chosen secret is not echoed");
    let mut days = robot_body("team-c", "days");
    days["duration"] = json!(7);
    let a = call(
        &app,
        Method::POST,
        "/api/v2.0/robots",
        Some(ADMIN),
        Some(days),
    )
    .await;
    let created = a.body["creation_time"].as_str().unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap()
        .timestamp();
    assert_eq!(a.body["expires_at"].as_i64().unwrap(), created + 7 * 86_400);

    let del = call(
        &app,
        Method::DELETE,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(del.status, StatusCode::OK);
    let gone = call(
        &app,
        Method::GET,
        &format!("/api/v2.0/robots/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authentication_errors() {
    let app = app();
    let none = call(&app, Method::GET, "/api/v2.0/projects", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&none), "UNAUTHORIZED");
    let wrong = call(
        &app,
        Method::POST,
        "/api/v2.0/projects",
        Some(("admin", "wrong")),
        Some(json!({"project_name": "x"})),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let me = call(
        &app,
        Method::GET,
        "/api/v2.0/users/current",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["sysadmin_flag"], true);

    let u = call(
        &app,
        Method::POST,
        "/api/v2.0/users",
        Some(ADMIN),
        Some(json!({"username": "dev1", "email": "dev1@example.com", "realname": "Dev", "password": "Passw0rdX"})),
    )
    .await;
    assert_eq!(u.status, StatusCode::CREATED);
    let forbidden = call(
        &app,
        Method::POST,
        "/api/v2.0/projects",
        Some(("dev1", "Passw0rdX")),
        Some(json!({"project_name": "x"})),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let weak = call(
        &app,
        Method::POST,
        "/api/v2.0/users",
        Some(ADMIN),
        Some(json!({"username": "dev2", "email": "dev2@example.com", "password": "short"})),
    )
    .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let dup = call(
        &app,
        Method::POST,
        "/api/v2.0/users",
        Some(ADMIN),
        Some(json!({"username": "dev1", "email": "other@example.com", "password": "Passw0rdX"})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn members_users_and_groups() {
    let app = app();
    create_project(&app, "team-d").await;
    let u = call(
        &app,
        Method::POST,
        "/api/v2.0/users",
        Some(ADMIN),
        Some(json!({"username": "alice", "email": "alice@example.com", "password": "Passw0rdX"})),
    )
    .await;
    assert_eq!(u.status, StatusCode::CREATED);
    let found = call(
        &app,
        Method::GET,
        "/api/v2.0/users/search?username=ali",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(found.body[0]["username"], "alice");

    let m = call(
        &app,
        Method::POST,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        Some(json!({"role_id": 2, "member_user": {"username": "alice"}})),
    )
    .await;
    assert_eq!(m.status, StatusCode::CREATED, "{:?}", m.body);
    let loc = m.headers["location"].to_str().unwrap().to_owned();
    let dup = call(
        &app,
        Method::POST,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        Some(json!({"role_id": 3, "member_user": {"username": "alice"}})),
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad_role = call(
        &app,
        Method::POST,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        Some(json!({"role_id": 9, "member_group": {"group_name": "devs", "group_type": 2}})),
    )
    .await;
    assert_eq!(bad_role.status, StatusCode::BAD_REQUEST);
    let nobody = call(
        &app,
        Method::POST,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        Some(json!({"role_id": 3, "member_user": {"username": "nobody"}})),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    let g = call(
        &app,
        Method::POST,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        Some(json!({"role_id": 5, "member_group": {"group_name": "devs", "group_type": 2}})),
    )
    .await;
    assert_eq!(g.status, StatusCode::CREATED);

    let list = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-d/members?entityname=alice",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(list.body[0]["role_name"], "developer");
    assert_eq!(list.body[0]["entity_type"], "u");
    let all = call(
        &app,
        Method::GET,
        "/api/v2.0/projects/team-d/members",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        all.headers["x-total-count"], "3",
        "creator admin, alice and the group"
    );

    let put = call(
        &app,
        Method::PUT,
        &loc,
        Some(ADMIN),
        Some(json!({"role_id": 4})),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let got = call(&app, Method::GET, &loc, Some(ADMIN), None).await;
    assert_eq!(got.body["role_name"], "maintainer");
    let del = call(&app, Method::DELETE, &loc, Some(ADMIN), None).await;
    assert_eq!(del.status, StatusCode::OK);
    let got = call(&app, Method::GET, &loc, Some(ADMIN), None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
}
