//! A simulator of Harbor's v2.0 REST API, for Tessera's tests. It is not Harbor: it keeps
//! its state in memory and covers what the Harbor provider uses (projects, quotas, robot
//! accounts, members, users, groups, basic authentication), answering with the status codes,
//! headers and error bodies of Harbor's published OpenAPI document. Where Harbor's behaviour
//! is not known, README.md says what the simulator does instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::distr::Alphanumeric;
use rand::{RngExt, rng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The prefix of every API path.
pub const API: &str = "/api/v2.0";
/// Harbor's default prefix of robot account names.
pub const ROBOT_PREFIX: &str = "robot$";
/// Largest `page_size` a list accepts.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Project roles by id, as Harbor numbers them.
pub const ROLES: [(i64, &str); 5] = [
    (1, "projectAdmin"),
    (2, "developer"),
    (3, "guest"),
    (4, "maintainer"),
    (5, "limitedGuest"),
];

/// The (resource, action) pairs a project robot may be granted.
const PROJECT_ACCESS: &[(&str, &str)] = &[
    ("repository", "pull"),
    ("repository", "push"),
    ("repository", "list"),
    ("repository", "delete"),
    ("repository", "read"),
    ("repository", "update"),
    ("artifact", "read"),
    ("artifact", "list"),
    ("artifact", "create"),
    ("artifact", "delete"),
    ("artifact-label", "create"),
    ("artifact-label", "delete"),
    ("tag", "create"),
    ("tag", "delete"),
    ("tag", "list"),
    ("scan", "create"),
    ("scan", "stop"),
    ("scan", "read"),
    ("sbom", "create"),
    ("sbom", "stop"),
    ("sbom", "read"),
    ("helm-chart", "read"),
    ("helm-chart-version", "create"),
    ("helm-chart-version", "delete"),
    ("label", "create"),
    ("label", "read"),
    ("label", "list"),
    ("metadata", "read"),
    ("metadata", "list"),
    ("log", "list"),
    ("accessory", "list"),
    ("immutable-tag", "list"),
    ("notification-policy", "list"),
    ("preheat-policy", "list"),
    ("quota", "read"),
    ("member", "read"),
    ("member", "list"),
    ("robot", "read"),
    ("robot", "list"),
];

const BOOL_METADATA: &[&str] = &[
    "public",
    "enable_content_trust",
    "enable_content_trust_cosign",
    "prevent_vul",
    "auto_scan",
    "auto_sbom_generation",
    "reuse_sys_cve_allowlist",
];
const SEVERITIES: &[&str] = &[
    "none",
    "unknown",
    "negligible",
    "low",
    "medium",
    "high",
    "critical",
];

/// A Harbor error answer: `{"errors":[{"code":..,"message":..}]}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }
    fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "CONFLICT", message)
    }
    fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "unauthorized")
    }
    fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "forbidden")
    }
    fn precondition(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PRECONDITION_FAILED, "PRECONDITION", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message}]});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Who sent a request, from its basic credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials, or credentials that do not authenticate.
    Anonymous,
    /// The system administrator.
    Admin,
    /// A local user (not an administrator).
    User(i64),
    /// A robot account.
    Robot(i64),
}

impl Principal {
    fn require_admin(self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Anonymous => Err(ApiError::unauthorized()),
            _ => Err(ApiError::forbidden()),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct CveItem {
    cve_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct CveAllowlistReq {
    #[serde(default)]
    items: Vec<CveItem>,
    #[serde(default)]
    expires_at: Option<i64>,
}

#[derive(Clone, Debug)]
struct Project {
    id: i64,
    name: String,
    created: String,
    updated: String,
    metadata: BTreeMap<String, String>,
    cve_id: i64,
    cve_items: Vec<CveItem>,
    cve_expires_at: Option<i64>,
    registry_id: Option<i64>,
    repositories: BTreeSet<String>,
    quota_id: i64,
    storage_limit: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Access {
    resource: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    effect: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Permission {
    kind: String,
    namespace: String,
    #[serde(default)]
    access: Vec<Access>,
}

#[derive(Clone, Debug)]
struct Robot {
    id: i64,
    name: String,
    description: String,
    level: String,
    disabled: bool,
    duration: i64,
    created_at: i64,
    expires_at: i64,
    created: String,
    updated: String,
    permissions: Vec<Permission>,
    secret: String,
    project_id: i64,
}

#[derive(Clone, Debug)]
struct User {
    id: i64,
    username: String,
    email: String,
    realname: String,
    comment: String,
    password: String,
    created: String,
}

#[derive(Clone, Debug)]
struct Group {
    id: i64,
    name: String,
    group_type: i64,
    ldap_group_dn: String,
}

#[derive(Clone, Debug)]
struct Member {
    id: i64,
    project_id: i64,
    /// `u` for a user, `g` for a group.
    entity_type: &'static str,
    entity_id: i64,
    role_id: i64,
}

#[derive(Default)]
struct Db {
    seq: i64,
    projects: BTreeMap<i64, Project>,
    robots: BTreeMap<i64, Robot>,
    users: BTreeMap<i64, User>,
    groups: BTreeMap<i64, Group>,
    members: BTreeMap<i64, Member>,
}

impl Db {
    /// A fresh id (ids are never reused, as database sequences are not).
    fn next_id(&mut self) -> i64 {
        self.seq += 1;
        self.seq
    }
}

struct Shared {
    admin_username: String,
    admin_password: String,
    db: Mutex<Db>,
}

/// The simulator's state, shared by its handlers.
#[derive(Clone)]
pub struct Simulator(Arc<Shared>);

impl Simulator {
    fn db(&self) -> MutexGuard<'_, Db> {
        self.0
            .db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The administrator's user id, as in Harbor.
const ADMIN_ID: i64 = 1;

fn now() -> (i64, String) {
    let t = chrono::Utc::now();
    (
        t.timestamp(),
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn random_string(len: usize) -> String {
    rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A robot secret as Harbor makes them: 32 letters and digits with at least one upper-case
/// letter, one lower-case letter and one digit.
fn new_secret() -> String {
    loop {
        let s = random_string(32);
        if valid_secret(&s) {
            return s;
        }
    }
}

fn valid_secret(s: &str) -> bool {
    (8..=128).contains(&s.len())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().any(|c| c.is_ascii_digit())
}

/// Harbor's rule for project (and robot) names: lower case letters and digits, separated by
/// single `.`, `_` or `-`, 1 to 255 characters.
pub fn valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut prev_sep = true;
    for c in name.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prev_sep = false;
        } else if matches!(c, '.' | '_' | '-') {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

/// The router of the simulator with the given administrator credentials.
pub fn router(admin_username: &str, admin_password: &str) -> Router {
    let sim = Simulator(Arc::new(Shared {
        admin_username: admin_username.to_owned(),
        admin_password: admin_password.to_owned(),
        db: Mutex::new(Db {
            seq: 100,
            ..Db::default()
        }),
    }));
    Router::new()
        .route(&format!("{API}/ping"), get(|| async { "Pong" }))
        .route(&format!("{API}/health"), get(health))
        .route(&format!("{API}/systeminfo"), get(systeminfo))
        .route(
            &format!("{API}/projects"),
            get(list_projects).head(head_project).post(create_project),
        )
        .route(
            &format!("{API}/projects/{{project}}"),
            get(get_project).put(update_project).delete(delete_project),
        )
        .route(
            &format!("{API}/projects/{{project}}/summary"),
            get(project_summary),
        )
        .route(
            &format!("{API}/projects/{{project}}/members"),
            get(list_members).post(create_member),
        )
        .route(
            &format!("{API}/projects/{{project}}/members/{{member}}"),
            get(get_member).put(update_member).delete(delete_member),
        )
        .route(&format!("{API}/quotas"), get(list_quotas))
        .route(
            &format!("{API}/quotas/{{id}}"),
            get(get_quota).put(update_quota),
        )
        .route(
            &format!("{API}/robots"),
            get(list_robots).post(create_robot),
        )
        .route(
            &format!("{API}/robots/{{id}}"),
            get(get_robot)
                .put(update_robot)
                .patch(refresh_robot)
                .delete(delete_robot),
        )
        .route(&format!("{API}/users"), post(create_user))
        .route(&format!("{API}/users/search"), get(search_users))
        .route(&format!("{API}/users/current"), get(current_user))
        .route(&format!("{API}/users/{{id}}"), get(get_user))
        .route(&format!("{API}/usergroups"), post(create_group))
        .route(&format!("{API}/usergroups/search"), get(search_groups))
        .route("/service/token", get(token))
        .route(
            "/simulator/projects/{project}/repositories",
            post(sim_add_repository),
        )
        .route(
            "/simulator/projects/{project}/repositories/{*repository}",
            axum::routing::delete(sim_delete_repository),
        )
        .fallback(|| async { ApiError::not_found("not found") })
        .layer(middleware::from_fn_with_state(sim.clone(), request_layer))
        .with_state(sim)
}

/// Echoes (or assigns) `X-Request-Id` and resolves the caller from basic credentials.
async fn request_layer(State(sim): State<Simulator>, mut req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| random_string(20));
    let principal = authenticate(&sim, req.headers());
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

fn authenticate(sim: &Simulator, headers: &HeaderMap) -> Principal {
    let Some((user, pass)) = basic_credentials(headers) else {
        return Principal::Anonymous;
    };
    if user == sim.0.admin_username {
        return if pass == sim.0.admin_password {
            Principal::Admin
        } else {
            Principal::Anonymous
        };
    }
    let db = sim.db();
    if user.starts_with(ROBOT_PREFIX) {
        let (now, _) = now();
        return db
            .robots
            .values()
            .find(|r| {
                r.name == user
                    && r.secret == pass
                    && !r.disabled
                    && (r.expires_at == -1 || r.expires_at > now)
            })
            .map_or(Principal::Anonymous, |r| Principal::Robot(r.id));
    }
    db.users
        .values()
        .find(|u| u.username == user && u.password == pass)
        .map_or(Principal::Anonymous, |u| Principal::User(u.id))
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn created(location: String) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn ok() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        json!({"status": "healthy", "components": [{"name": "core", "status": "healthy"}]}),
    )
}

async fn systeminfo() -> Response {
    json_response(
        StatusCode::OK,
        json!({"harbor_version": "v2-simulator", "auth_mode": "db_auth", "self_registration": false,
               "has_ca_root": false, "project_creation_restriction": "everyone"}),
    )
}

// ------------------------------------------------------------------------------------------
// listing

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    q: Option<String>,
    name: Option<String>,
    public: Option<String>,
    project_name: Option<String>,
    entityname: Option<String>,
    reference: Option<String>,
    reference_id: Option<String>,
    username: Option<String>,
    groupname: Option<String>,
}

/// A `q` condition: `key=value` (exact) or `key=~value` (substring).
struct Cond {
    key: String,
    value: String,
    fuzzy: bool,
}

fn parse_q(q: Option<&str>) -> Result<Vec<Cond>, ApiError> {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for part in q.split(',') {
        let (key, rest) = part.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid query condition {part:?}: expected key=value"
            ))
        })?;
        let (value, fuzzy) = match rest.strip_prefix('~') {
            Some(v) => (v, true),
            None => (rest, false),
        };
        if value.starts_with(['{', '(', '[']) {
            return Err(ApiError::bad_request(format!(
                "query condition {part:?}: ranges and sets are not supported by the simulator"
            )));
        }
        out.push(Cond {
            key: key.to_ascii_lowercase().replace('_', ""),
            value: value.to_owned(),
            fuzzy,
        });
    }
    Ok(out)
}

fn matches(cond: &Cond, actual: &str) -> bool {
    if cond.fuzzy {
        actual.contains(&cond.value)
    } else {
        actual == cond.value
    }
}

/// Pages `items` as Harbor does: `X-Total-Count` and a `Link` header with prev/next.
fn paged(path: &str, query: &ListQuery, items: Vec<Value>) -> ApiResult {
    let page = match query.page.as_deref() {
        None => 1,
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| ApiError::bad_request("page must be a positive integer"))?,
    };
    let size = match query.page_size.as_deref() {
        None => 10,
        Some(p) => p
            .parse::<i64>()
            .ok()
            .filter(|p| (1..=MAX_PAGE_SIZE).contains(p))
            .ok_or_else(|| {
                ApiError::bad_request(format!("page_size must be between 1 and {MAX_PAGE_SIZE}"))
            })?,
    };
    let total = items.len() as i64;
    let start = ((page - 1) * size).min(total) as usize;
    let end = (page * size).min(total) as usize;
    let body = Value::Array(items[start..end].to_vec());
    let mut resp = json_response(StatusCode::OK, body);
    resp.headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    let extra = query
        .q
        .as_deref()
        .map(|q| format!("&q={}", q.replace(' ', "%20")))
        .unwrap_or_default();
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!(
            "<{path}?page={}&page_size={size}{extra}>; rel=\"prev\"",
            page - 1
        ));
    }
    if page * size < total {
        links.push(format!(
            "<{path}?page={}&page_size={size}{extra}>; rel=\"next\"",
            page + 1
        ));
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(" , "))
    {
        resp.headers_mut().insert(header::LINK, v);
    }
    Ok(resp)
}

// ------------------------------------------------------------------------------------------
// projects

#[derive(Debug, Deserialize)]
struct ProjectReq {
    project_name: Option<String>,
    public: Option<bool>,
    metadata: Option<BTreeMap<String, String>>,
    cve_allowlist: Option<CveAllowlistReq>,
    storage_limit: Option<i64>,
    registry_id: Option<i64>,
}

/// Validates and normalises metadata values (booleans as `"true"`/`"false"`).
fn normalise_metadata(
    input: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (key, value) in input {
        if BOOL_METADATA.contains(&key.as_str()) {
            let b = match value.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => "true",
                "0" | "f" | "F" | "false" | "FALSE" | "False" => "false",
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid metadata value {value:?} for {key}: must be \"true\" or \"false\""
                    )));
                }
            };
            out.insert(key.clone(), b.to_owned());
        } else if key == "severity" {
            let v = value.to_ascii_lowercase();
            if !SEVERITIES.contains(&v.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "invalid severity {value:?}: must be one of {}",
                    SEVERITIES.join(", ")
                )));
            }
            out.insert(key.clone(), v);
        } else if key == "retention_id" || key == "proxy_speed_kb" {
            value.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid metadata value {value:?} for {key}: must be an integer"
                ))
            })?;
            out.insert(key.clone(), value.clone());
        }
        // Other keys are not project metadata and are ignored.
    }
    Ok(out)
}

fn valid_storage_limit(limit: i64) -> Result<i64, ApiError> {
    if limit == -1 || limit > 0 {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!(
            "invalid storage limit {limit}: must be -1 (unlimited) or a positive number of bytes"
        )))
    }
}

fn validate_cve(req: &CveAllowlistReq) -> Result<(), ApiError> {
    for item in &req.items {
        if item.cve_id.is_empty() || item.cve_id.len() > 255 {
            return Err(ApiError::bad_request(
                "invalid CVE allowlist item: cve_id must be 1 to 255 characters",
            ));
        }
    }
    Ok(())
}

fn project_json(db: &Db, p: &Project) -> Value {
    json!({
        "project_id": p.id,
        "name": p.name,
        "owner_id": ADMIN_ID,
        "owner_name": "admin",
        "creation_time": p.created,
        "update_time": p.updated,
        "deleted": false,
        "repo_count": p.repositories.len(),
        "registry_id": p.registry_id,
        "current_user_role_id": 1,
        "current_user_role_ids": [1],
        "togglable": true,
        "metadata": p.metadata,
        "cve_allowlist": {
            "id": p.cve_id,
            "project_id": p.id,
            "items": p.cve_items,
            "expires_at": p.cve_expires_at,
            "creation_time": p.created,
            "update_time": p.updated,
        },
        "member_count": db.members.values().filter(|m| m.project_id == p.id).count(),
    })
}

/// Finds a project by id or name: a path of digits is an id unless `X-Is-Resource-Name: true`.
fn find_project(db: &Db, headers: &HeaderMap, key: &str) -> Result<i64, ApiError> {
    let by_name = headers
        .get("x-is-resource-name")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let found = match key.parse::<i64>() {
        Ok(id) if !by_name => db.projects.get(&id).map(|p| p.id),
        _ => db.projects.values().find(|p| p.name == key).map(|p| p.id),
    };
    found.ok_or_else(|| ApiError::not_found(format!("project {key} not found")))
}

async fn create_project(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: ProjectReq = parse_body(&body)?;
    let name = req.project_name.unwrap_or_default();
    if !valid_name(&name) {
        return Err(ApiError::bad_request(format!(
            "project name is not in lower case or contains illegal characters: {name:?} (must match ^[a-z0-9]+(?:[._-][a-z0-9]+)*$, 1-255 characters)"
        )));
    }
    let mut metadata = normalise_metadata(&req.metadata.unwrap_or_default())?;
    if !metadata.contains_key("public") {
        metadata.insert("public".to_owned(), req.public.unwrap_or(false).to_string());
    }
    let storage_limit = valid_storage_limit(req.storage_limit.unwrap_or(-1))?;
    let cve = req.cve_allowlist.unwrap_or_default();
    validate_cve(&cve)?;
    let mut db = sim.db();
    if db.projects.values().any(|p| p.name == name) {
        return Err(ApiError::conflict(format!(
            "The project named {name} already exists"
        )));
    }
    let (_, ts) = now();
    let id = db.next_id();
    let cve_id = db.next_id();
    let quota_id = db.next_id();
    let member_id = db.next_id();
    db.projects.insert(
        id,
        Project {
            id,
            name,
            created: ts.clone(),
            updated: ts,
            metadata,
            cve_id,
            cve_items: cve.items,
            cve_expires_at: cve.expires_at,
            registry_id: req.registry_id.filter(|r| *r > 0),
            repositories: BTreeSet::new(),
            quota_id,
            storage_limit,
        },
    );
    // The creator becomes the project's administrator, as in Harbor.
    db.members.insert(
        member_id,
        Member {
            id: member_id,
            project_id: id,
            entity_type: "u",
            entity_id: ADMIN_ID,
            role_id: 1,
        },
    );
    Ok(created(format!("{API}/projects/{id}")))
}

async fn head_project(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    if who == Principal::Anonymous {
        return Err(ApiError::unauthorized());
    }
    let name = q.project_name.unwrap_or_default();
    let db = sim.db();
    if db.projects.values().any(|p| p.name == name) {
        ok()
    } else {
        Err(ApiError::not_found(format!("project {name} not found")))
    }
}

async fn list_projects(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    who.require_admin()?;
    let conds = parse_q(q.q.as_deref())?;
    let db = sim.db();
    let mut items = Vec::new();
    'projects: for p in db.projects.values() {
        if let Some(name) = q.name.as_deref()
            && !p.name.contains(name)
        {
            continue;
        }
        if let Some(public) = q.public.as_deref()
            && p.metadata.get("public").map(String::as_str) != Some(public)
        {
            continue;
        }
        for c in &conds {
            let actual = match c.key.as_str() {
                "name" => p.name.clone(),
                "projectid" => p.id.to_string(),
                "public" => p.metadata.get("public").cloned().unwrap_or_default(),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported query key {other:?}"
                    )));
                }
            };
            if !matches(c, &actual) {
                continue 'projects;
            }
        }
        items.push(project_json(&db, p));
    }
    drop(db);
    paged(&format!("{API}/projects"), &q, items)
}

async fn get_project(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let id = find_project(&db, &headers, &key)?;
    Ok(json_response(
        StatusCode::OK,
        project_json(&db, &db.projects[&id]),
    ))
}

async fn update_project(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: ProjectReq = parse_body(&body)?;
    let mut metadata = normalise_metadata(&req.metadata.unwrap_or_default())?;
    if let Some(public) = req.public
        && !metadata.contains_key("public")
    {
        metadata.insert("public".to_owned(), public.to_string());
    }
    if let Some(cve) = &req.cve_allowlist {
        validate_cve(cve)?;
    }
    let mut db = sim.db();
    let id = find_project(&db, &headers, &key)?;
    let p = db.projects.get_mut(&id).expect("found above");
    // Harbor does not rename projects: project_name and storage_limit are ignored here.
    p.metadata.extend(metadata);
    if let Some(cve) = req.cve_allowlist {
        p.cve_items = cve.items;
        p.cve_expires_at = cve.expires_at;
    }
    if let Some(r) = req.registry_id {
        p.registry_id = Some(r).filter(|r| *r > 0);
    }
    p.updated = now().1;
    ok()
}

async fn delete_project(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let mut db = sim.db();
    let id = find_project(&db, &headers, &key)?;
    let repos = db.projects[&id].repositories.len();
    if repos > 0 {
        return Err(ApiError::precondition(format!(
            "the project contains repositories, can not be deleted ({repos} repositories remain)"
        )));
    }
    db.projects.remove(&id);
    db.members.retain(|_, m| m.project_id != id);
    db.robots.retain(|_, r| r.project_id != id);
    ok()
}

async fn project_summary(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let id = find_project(&db, &headers, &key)?;
    let p = &db.projects[&id];
    let count = |role: i64| {
        db.members
            .values()
            .filter(|m| m.project_id == id && m.role_id == role)
            .count()
    };
    Ok(json_response(
        StatusCode::OK,
        json!({
            "repo_count": p.repositories.len(),
            "project_admin_count": count(1),
            "developer_count": count(2),
            "guest_count": count(3),
            "maintainer_count": count(4),
            "limited_guest_count": count(5),
            "quota": {"hard": {"storage": p.storage_limit}, "used": {"storage": 0}},
        }),
    ))
}

// ------------------------------------------------------------------------------------------
// quotas

fn quota_json(p: &Project) -> Value {
    json!({
        "id": p.quota_id,
        "ref": {"id": p.id, "name": p.name, "owner_name": "admin"},
        "hard": {"storage": p.storage_limit},
        "used": {"storage": 0},
        "creation_time": p.created,
        "update_time": p.updated,
    })
}

async fn list_quotas(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    who.require_admin()?;
    if q.reference.as_deref().is_some_and(|r| r != "project") {
        return paged(&format!("{API}/quotas"), &q, Vec::new());
    }
    let db = sim.db();
    let items = db
        .projects
        .values()
        .filter(|p| {
            q.reference_id
                .as_deref()
                .is_none_or(|r| r == p.id.to_string())
        })
        .map(quota_json)
        .collect();
    drop(db);
    paged(&format!("{API}/quotas"), &q, items)
}

fn quota_project(db: &Db, id: &str) -> Result<i64, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("quota id must be an integer"))?;
    db.projects
        .values()
        .find(|p| p.quota_id == id)
        .map(|p| p.id)
        .ok_or_else(|| ApiError::not_found(format!("quota {id} not found")))
}

async fn get_quota(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let pid = quota_project(&db, &id)?;
    Ok(json_response(
        StatusCode::OK,
        quota_json(&db.projects[&pid]),
    ))
}

#[derive(Deserialize)]
struct QuotaUpdate {
    hard: BTreeMap<String, i64>,
}

async fn update_quota(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: QuotaUpdate = parse_body(&body)?;
    let mut storage = None;
    for (key, value) in &req.hard {
        if key != "storage" {
            return Err(ApiError::bad_request(format!(
                "unsupported quota resource {key:?}: only storage is supported"
            )));
        }
        storage = Some(valid_storage_limit(*value)?);
    }
    let mut db = sim.db();
    let pid = quota_project(&db, &id)?;
    if let Some(s) = storage {
        db.projects
            .get_mut(&pid)
            .expect("found above")
            .storage_limit = s;
    }
    ok()
}

// ------------------------------------------------------------------------------------------
// robots

#[derive(Debug, Deserialize)]
struct RobotCreate {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    duration: i64,
    #[serde(default)]
    permissions: Vec<Permission>,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RobotUpdate {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    permissions: Vec<Permission>,
}

fn robot_json(r: &Robot) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "level": r.level,
        "disable": r.disabled,
        "duration": r.duration,
        "editable": true,
        "expires_at": r.expires_at,
        "permissions": r.permissions,
        "creation_time": r.created,
        "update_time": r.updated,
    })
}

fn robot_duration(duration: i64) -> Result<i64, ApiError> {
    if duration == -1 || (duration > 0 && duration < i64::from(i32::MAX)) {
        Ok(duration)
    } else {
        Err(ApiError::bad_request(format!(
            "bad request error duration input: {duration}, duration must be either -1(Never) or a positive integer"
        )))
    }
}

fn expiry(created_at: i64, duration: i64) -> i64 {
    if duration == -1 {
        -1
    } else {
        created_at.saturating_add(duration.saturating_mul(86_400))
    }
}

/// Checks a robot's level and permissions as Harbor does: at least one entry, each with at
/// least one access; a project robot has exactly one entry of kind `project` naming an existing
/// project (404 otherwise), with known resource/action pairs. Returns the project's id and name.
fn check_permissions(
    db: &Db,
    level: &str,
    perms: &[Permission],
) -> Result<(i64, String), ApiError> {
    if level != "project" && level != "system" {
        return Err(ApiError::bad_request(format!(
            "bad request error level input: {level}"
        )));
    }
    if perms.is_empty() {
        return Err(ApiError::bad_request("bad request empty permission"));
    }
    if perms.iter().any(|p| p.access.is_empty()) {
        return Err(ApiError::bad_request("bad request empty access"));
    }
    if level == "system" {
        return Err(ApiError::bad_request(
            "system level robots are not supported by the simulator",
        ));
    }
    let [perm] = perms else {
        return Err(ApiError::bad_request("bad request permission"));
    };
    if perm.kind != "project" {
        return Err(ApiError::bad_request(format!(
            "bad request permission level: {}",
            perm.kind
        )));
    }
    for a in &perm.access {
        if !PROJECT_ACCESS.contains(&(a.resource.as_str(), a.action.as_str())) {
            return Err(ApiError::bad_request(format!(
                "bad request permission: {}:{}",
                a.resource, a.action
            )));
        }
        if a.effect
            .as_deref()
            .is_some_and(|e| e != "allow" && e != "deny")
        {
            return Err(ApiError::bad_request(
                "invalid access effect: must be allow or deny",
            ));
        }
    }
    let project = db
        .projects
        .values()
        .find(|p| p.name == perm.namespace || p.id.to_string() == perm.namespace)
        .ok_or_else(|| ApiError::not_found(format!("project {} not found", perm.namespace)))?;
    Ok((project.id, project.name.clone()))
}

async fn create_robot(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: RobotCreate = parse_body(&body)?;
    if !valid_name(&req.name) {
        return Err(ApiError::bad_request(format!(
            "robot name is not in lower case or contains illegal characters: {:?}",
            req.name
        )));
    }
    let duration = robot_duration(req.duration)?;
    if let Some(s) = &req.secret
        && !valid_secret(s)
    {
        return Err(ApiError::bad_request(
            "invalid secret: 8 to 128 characters with at least one upper case letter, one lower case letter and one digit",
        ));
    }
    let mut db = sim.db();
    let (project_id, project) = check_permissions(&db, &req.level, &req.permissions)?;
    let name = format!("{ROBOT_PREFIX}{project}+{}", req.name);
    if db.robots.values().any(|r| r.name == name) {
        return Err(ApiError::conflict(format!(
            "robot account {name} already exists"
        )));
    }
    let (now_s, ts) = now();
    let id = db.next_id();
    let secret = req.secret.unwrap_or_else(new_secret);
    let robot = Robot {
        id,
        name: name.clone(),
        description: req.description,
        level: req.level,
        disabled: req.disable,
        duration,
        created_at: now_s,
        expires_at: expiry(now_s, duration),
        created: ts.clone(),
        updated: ts.clone(),
        permissions: req.permissions,
        secret: secret.clone(),
        project_id,
    };
    let expires_at = robot.expires_at;
    db.robots.insert(id, robot);
    let mut resp = json_response(
        StatusCode::CREATED,
        json!({"id": id, "name": name, "secret": secret, "creation_time": ts, "expires_at": expires_at}),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{API}/robots/{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

fn robot_id(db: &Db, id: &str) -> Result<i64, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("robot id must be an integer"))?;
    db.robots
        .get(&id)
        .map(|r| r.id)
        .ok_or_else(|| ApiError::not_found(format!("robot {id} not found")))
}

async fn list_robots(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    who.require_admin()?;
    let conds = parse_q(q.q.as_deref())?;
    // As Harbor: without `Level` the list holds system robots only; `Level=project` needs
    // `ProjectID`.
    let level = conds
        .iter()
        .find(|c| c.key == "level")
        .map_or("system", |c| c.value.as_str());
    if level != "system" && level != "project" {
        return Err(ApiError::bad_request("bad request error level input"));
    }
    if level == "project" {
        let pid = conds.iter().find(|c| c.key == "projectid").ok_or_else(|| {
            ApiError::bad_request("must with project ID when to query project robots")
        })?;
        pid.value
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request("Project ID must be int type."))?;
    }
    let db = sim.db();
    let mut items = Vec::new();
    'robots: for r in db.robots.values() {
        if r.level != level {
            continue;
        }
        for c in &conds {
            let actual = match c.key.as_str() {
                // Matches the full name or the name without the `robot$` prefix.
                "name" if !matches(c, &r.name) => {
                    r.name.trim_start_matches(ROBOT_PREFIX).to_owned()
                }
                "name" => r.name.clone(),
                "level" => r.level.clone(),
                "projectid" => r.project_id.to_string(),
                "id" => r.id.to_string(),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unsupported query key {other:?}"
                    )));
                }
            };
            if !matches(c, &actual) {
                continue 'robots;
            }
        }
        items.push(robot_json(r));
    }
    drop(db);
    paged(&format!("{API}/robots"), &q, items)
}

async fn get_robot(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let id = robot_id(&db, &id)?;
    Ok(json_response(StatusCode::OK, robot_json(&db.robots[&id])))
}

async fn update_robot(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: RobotUpdate = parse_body(&body)?;
    let mut db = sim.db();
    let id = robot_id(&db, &id)?;
    let current = db.robots[&id].clone();
    let duration = robot_duration(req.duration.unwrap_or(current.duration))?;
    let (project_id, _) = check_permissions(&db, &req.level, &req.permissions)?;
    if project_id != current.project_id {
        return Err(ApiError::bad_request(
            "cannot update the project id of robot",
        ));
    }
    if req.name != current.name || req.level != current.level {
        return Err(ApiError::bad_request(
            "cannot update the level or name of robot",
        ));
    }
    let r = db.robots.get_mut(&id).expect("found above");
    r.description = req.description;
    r.disabled = req.disable;
    if duration != r.duration {
        // As Harbor: a new duration counts from the robot's creation.
        r.duration = duration;
        r.expires_at = expiry(r.created_at, duration);
    }
    r.permissions = req.permissions;
    r.updated = now().1;
    ok()
}

#[derive(Deserialize, Default)]
struct RobotSec {
    #[serde(default)]
    secret: String,
}

async fn refresh_robot(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: RobotSec = if body.is_empty() {
        RobotSec::default()
    } else {
        parse_body(&body)?
    };
    // A generated secret is returned; a secret the caller chose is not echoed (Harbor answers
    // with an empty one).
    let (secret, answer) = if req.secret.is_empty() {
        let s = new_secret();
        (s.clone(), s)
    } else if valid_secret(&req.secret) {
        (req.secret, String::new())
    } else {
        return Err(ApiError::bad_request(
            "the secret must be 8-128, inclusively, characters long with at least 1 uppercase letter, 1 lowercase letter and 1 number",
        ));
    };
    let mut db = sim.db();
    let id = robot_id(&db, &id)?;
    let r = db.robots.get_mut(&id).expect("found above");
    r.secret = secret;
    r.updated = now().1;
    Ok(json_response(StatusCode::OK, json!({"secret": answer})))
}

async fn delete_robot(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let mut db = sim.db();
    let id = robot_id(&db, &id)?;
    db.robots.remove(&id);
    ok()
}

// ------------------------------------------------------------------------------------------
// users and groups

#[derive(Deserialize)]
struct UserCreate {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    realname: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    comment: String,
}

fn user_json(u: &User) -> Value {
    json!({
        "user_id": u.id,
        "username": u.username,
        "email": u.email,
        "realname": u.realname,
        "comment": u.comment,
        "sysadmin_flag": false,
        "admin_role_in_auth": false,
        "creation_time": u.created,
        "update_time": u.created,
    })
}

async fn create_user(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: UserCreate = parse_body(&body)?;
    if req.username.is_empty()
        || req.username.len() > 255
        || req.username.contains([',', '"', '~', '#', '%', '$', ':'])
    {
        return Err(ApiError::bad_request(
            "invalid username: 1 to 255 characters, none of , \" ~ # % $ :",
        ));
    }
    if !req.email.contains('@') {
        return Err(ApiError::bad_request("invalid email"));
    }
    if !(8..=128).contains(&req.password.len()) || !valid_secret(&req.password) {
        return Err(ApiError::bad_request(
            "invalid password: 8 to 128 characters with at least one upper case letter, one lower case letter and one digit",
        ));
    }
    let mut db = sim.db();
    if req.username == sim.0.admin_username || db.users.values().any(|u| u.username == req.username)
    {
        return Err(ApiError::conflict(format!(
            "username {} is already used",
            req.username
        )));
    }
    if db.users.values().any(|u| u.email == req.email) {
        return Err(ApiError::conflict(format!(
            "email {} is already used",
            req.email
        )));
    }
    let id = db.next_id();
    db.users.insert(
        id,
        User {
            id,
            username: req.username,
            email: req.email,
            realname: req.realname,
            comment: req.comment,
            password: req.password,
            created: now().1,
        },
    );
    Ok(created(format!("{API}/users/{id}")))
}

async fn search_users(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    if who == Principal::Anonymous {
        return Err(ApiError::unauthorized());
    }
    let Some(name) = q.username.clone().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request("username is required"));
    };
    let db = sim.db();
    let mut items = Vec::new();
    if sim.0.admin_username.contains(&name) {
        items.push(json!({"user_id": ADMIN_ID, "username": sim.0.admin_username}));
    }
    items.extend(
        db.users
            .values()
            .filter(|u| u.username.contains(&name))
            .map(|u| json!({"user_id": u.id, "username": u.username})),
    );
    drop(db);
    paged(&format!("{API}/users/search"), &q, items)
}

async fn get_user(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    who.require_admin()?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("user id must be an integer"))?;
    let db = sim.db();
    let u = db
        .users
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))?;
    Ok(json_response(StatusCode::OK, user_json(u)))
}

async fn current_user(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
) -> ApiResult {
    match who {
        Principal::Anonymous => Err(ApiError::unauthorized()),
        Principal::Admin => Ok(json_response(
            StatusCode::OK,
            json!({"user_id": ADMIN_ID, "username": sim.0.admin_username, "sysadmin_flag": true, "admin_role_in_auth": false}),
        )),
        Principal::User(id) => {
            let db = sim.db();
            let u = db.users.get(&id).ok_or_else(ApiError::unauthorized)?;
            Ok(json_response(StatusCode::OK, user_json(u)))
        }
        // A robot is authenticated but is not a local user.
        Principal::Robot(_) => Err(ApiError::precondition(
            "get current user not available for security context: robot",
        )),
    }
}

#[derive(Deserialize)]
struct GroupCreate {
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    group_type: i64,
    #[serde(default)]
    ldap_group_dn: String,
}

fn group_json(g: &Group) -> Value {
    json!({"id": g.id, "group_name": g.name, "group_type": g.group_type, "ldap_group_dn": g.ldap_group_dn})
}

fn insert_group(db: &mut Db, req: GroupCreate) -> Result<i64, ApiError> {
    if req.group_name.is_empty() || req.group_name.len() > 255 {
        return Err(ApiError::bad_request(
            "invalid group_name: 1 to 255 characters",
        ));
    }
    if !(1..=3).contains(&req.group_type) {
        return Err(ApiError::bad_request(
            "invalid group_type: 1 (LDAP), 2 (HTTP) or 3 (OIDC)",
        ));
    }
    if req.group_type == 1 && req.ldap_group_dn.is_empty() {
        return Err(ApiError::bad_request("an LDAP group needs ldap_group_dn"));
    }
    if db
        .groups
        .values()
        .any(|g| g.name == req.group_name && g.group_type == req.group_type)
    {
        return Err(ApiError::conflict(format!(
            "group {} already exists",
            req.group_name
        )));
    }
    let id = db.next_id();
    db.groups.insert(
        id,
        Group {
            id,
            name: req.group_name,
            group_type: req.group_type,
            ldap_group_dn: req.ldap_group_dn,
        },
    );
    Ok(id)
}

async fn create_group(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: GroupCreate = parse_body(&body)?;
    let mut db = sim.db();
    let id = insert_group(&mut db, req)?;
    Ok(created(format!("{API}/usergroups/{id}")))
}

async fn search_groups(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    who.require_admin()?;
    let Some(name) = q.groupname.clone().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request("groupname is required"));
    };
    let db = sim.db();
    let items = db
        .groups
        .values()
        .filter(|g| g.name.contains(&name))
        .map(group_json)
        .collect();
    drop(db);
    paged(&format!("{API}/usergroups/search"), &q, items)
}

/// The token service docker clients use: basic credentials in, a bearer token out.
async fn token(Extension(who): Extension<Principal>) -> ApiResult {
    if who == Principal::Anonymous {
        return Err(ApiError::unauthorized());
    }
    let (_, ts) = now();
    let t = random_string(48);
    Ok(json_response(
        StatusCode::OK,
        json!({"token": t, "access_token": t, "expires_in": 1800, "issued_at": ts}),
    ))
}

// ------------------------------------------------------------------------------------------
// members

#[derive(Deserialize, Default)]
struct MemberUser {
    #[serde(default)]
    user_id: i64,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize, Default)]
struct MemberGroup {
    #[serde(default)]
    id: i64,
    #[serde(default)]
    group_name: String,
    #[serde(default)]
    group_type: i64,
    #[serde(default)]
    ldap_group_dn: String,
}

#[derive(Deserialize)]
struct MemberCreate {
    #[serde(default)]
    role_id: i64,
    member_user: Option<MemberUser>,
    member_group: Option<MemberGroup>,
}

#[derive(Deserialize)]
struct RoleRequest {
    #[serde(default)]
    role_id: i64,
}

fn valid_role(role_id: i64) -> Result<&'static str, ApiError> {
    ROLES
        .iter()
        .find(|(id, _)| *id == role_id)
        .map(|(_, n)| *n)
        .ok_or_else(|| ApiError::bad_request(format!("invalid role_id {role_id}: must be 1 to 5")))
}

fn member_json(sim: &Simulator, db: &Db, m: &Member) -> Value {
    let entity_name = if m.entity_type == "u" {
        if m.entity_id == ADMIN_ID {
            sim.0.admin_username.clone()
        } else {
            db.users
                .get(&m.entity_id)
                .map(|u| u.username.clone())
                .unwrap_or_default()
        }
    } else {
        db.groups
            .get(&m.entity_id)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    };
    json!({
        "id": m.id,
        "project_id": m.project_id,
        "entity_name": entity_name,
        "entity_id": m.entity_id,
        "entity_type": m.entity_type,
        "role_id": m.role_id,
        "role_name": valid_role(m.role_id).unwrap_or(""),
    })
}

async fn list_members(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let pid = find_project(&db, &headers, &key)?;
    let items = db
        .members
        .values()
        .filter(|m| m.project_id == pid)
        .map(|m| member_json(&sim, &db, m))
        .filter(|v| {
            q.entityname
                .as_deref()
                .is_none_or(|n| v["entity_name"].as_str().is_some_and(|e| e.contains(n)))
        })
        .collect();
    drop(db);
    paged(&format!("{API}/projects/{key}/members"), &q, items)
}

async fn create_member(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: MemberCreate = parse_body(&body)?;
    valid_role(req.role_id)?;
    let mut db = sim.db();
    let pid = find_project(&db, &headers, &key)?;
    let (entity_type, entity_id) = match (req.member_user, req.member_group) {
        (Some(u), None) => {
            let id = if u.user_id > 0 {
                (u.user_id == ADMIN_ID || db.users.contains_key(&u.user_id)).then_some(u.user_id)
            } else if u.username == sim.0.admin_username {
                Some(ADMIN_ID)
            } else {
                db.users
                    .values()
                    .find(|x| x.username == u.username)
                    .map(|x| x.id)
            };
            (
                "u",
                id.ok_or_else(|| {
                    ApiError::not_found(format!(
                        "user {} not found",
                        if u.username.is_empty() {
                            u.user_id.to_string()
                        } else {
                            u.username
                        }
                    ))
                })?,
            )
        }
        (None, Some(g)) => {
            if g.id > 0 {
                if !db.groups.contains_key(&g.id) {
                    return Err(ApiError::not_found(format!("group {} not found", g.id)));
                }
                ("g", g.id)
            } else {
                let existing = db
                    .groups
                    .values()
                    .find(|x| x.name == g.group_name && x.group_type == g.group_type)
                    .map(|x| x.id);
                let id = match existing {
                    Some(id) => id,
                    None => insert_group(
                        &mut db,
                        GroupCreate {
                            group_name: g.group_name,
                            group_type: g.group_type,
                            ldap_group_dn: g.ldap_group_dn,
                        },
                    )?,
                };
                ("g", id)
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "exactly one of member_user and member_group is required",
            ));
        }
    };
    if db
        .members
        .values()
        .any(|m| m.project_id == pid && m.entity_type == entity_type && m.entity_id == entity_id)
    {
        return Err(ApiError::conflict(
            "the member already exists in the project",
        ));
    }
    let id = db.next_id();
    db.members.insert(
        id,
        Member {
            id,
            project_id: pid,
            entity_type,
            entity_id,
            role_id: req.role_id,
        },
    );
    Ok(created(format!("{API}/projects/{key}/members/{id}")))
}

fn member_id(db: &Db, pid: i64, mid: &str) -> Result<i64, ApiError> {
    let mid: i64 = mid
        .parse()
        .map_err(|_| ApiError::bad_request("member id must be an integer"))?;
    db.members
        .get(&mid)
        .filter(|m| m.project_id == pid)
        .map(|m| m.id)
        .ok_or_else(|| ApiError::not_found(format!("member {mid} not found")))
}

async fn get_member(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path((key, mid)): Path<(String, String)>,
) -> ApiResult {
    who.require_admin()?;
    let db = sim.db();
    let pid = find_project(&db, &headers, &key)?;
    let mid = member_id(&db, pid, &mid)?;
    Ok(json_response(
        StatusCode::OK,
        member_json(&sim, &db, &db.members[&mid]),
    ))
}

async fn update_member(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path((key, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    who.require_admin()?;
    let req: RoleRequest = parse_body(&body)?;
    valid_role(req.role_id)?;
    let mut db = sim.db();
    let pid = find_project(&db, &headers, &key)?;
    let mid = member_id(&db, pid, &mid)?;
    db.members.get_mut(&mid).expect("found above").role_id = req.role_id;
    ok()
}

async fn delete_member(
    State(sim): State<Simulator>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path((key, mid)): Path<(String, String)>,
) -> ApiResult {
    who.require_admin()?;
    let mut db = sim.db();
    let pid = find_project(&db, &headers, &key)?;
    let mid = member_id(&db, pid, &mid)?;
    db.members.remove(&mid);
    ok()
}

// ------------------------------------------------------------------------------------------
// test-only endpoints (not part of Harbor's API)

#[derive(Deserialize)]
struct RepoReq {
    name: String,
}

/// Puts a repository into a project, as a push would (test-only).
async fn sim_add_repository(
    State(sim): State<Simulator>,
    Path(project): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: RepoReq = parse_body(&body)?;
    if req.name.is_empty() || req.name.len() > 255 {
        return Err(ApiError::bad_request(
            "repository name must be 1 to 255 characters",
        ));
    }
    let mut db = sim.db();
    let p = db
        .projects
        .values_mut()
        .find(|p| p.name == project)
        .ok_or_else(|| ApiError::not_found(format!("project {project} not found")))?;
    p.repositories.insert(req.name);
    Ok(StatusCode::CREATED.into_response())
}

/// Removes a repository from a project (test-only).
async fn sim_delete_repository(
    State(sim): State<Simulator>,
    Path((project, repository)): Path<(String, String)>,
) -> ApiResult {
    let mut db = sim.db();
    let p = db
        .projects
        .values_mut()
        .find(|p| p.name == project)
        .ok_or_else(|| ApiError::not_found(format!("project {project} not found")))?;
    if p.repositories.remove(&repository) {
        ok()
    } else {
        Err(ApiError::not_found(format!(
            "repository {repository} not found"
        )))
    }
}
