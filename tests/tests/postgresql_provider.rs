//! The PostgreSQL provider's ExternalClient implementations called directly (no managed
//! runtime in between) against the real PostgreSQL server of testenv, and its connector
//! against the real kube-apiserver. Every test uses its own role, database and namespace
//! names, so the tests run in parallel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use tessera_engine::api::common::{
    ProviderCredentials, ResourceSpec, SecretKeySelector, SecretReference,
};
use tessera_engine::managed::credentials::Credentials;
use tessera_engine::managed::{ExternalClient, Observation, Ownership, ProviderError};
use tessera_provider_postgresql::api::{
    ConfigurationParameter, DatabaseParameters, DatabaseSpec, GrantOption, GrantParameters,
    GrantSpec, ProviderConfigSpec, ROTATE_PASSWORD_ANNOTATION, RoleParameters, RolePrivileges,
    RoleSpec, SslMode,
};
use tessera_provider_postgresql::{
    Database, Grant, Postgres, PostgresClient, PostgresConnector, Role, Session, crds,
};
use tessera_tests::{TestEnv, install_crds, namespace, secret_data, unique, wait_for};

// ---------------------------------------------------------------------------------------
// Helpers

fn provider_config_spec(ssl_mode: SslMode) -> ProviderConfigSpec {
    ProviderConfigSpec {
        credentials: ProviderCredentials {
            source: tessera_engine::api::common::CredentialsSource::Secret,
            secret_ref: Some(SecretReference {
                name: "unused".into(),
                namespace: "unused".into(),
            }),
        },
        ssl_mode,
        default_database: "postgres".into(),
    }
}

/// Credentials as the ProviderConfig's Secret would hold them, with `password`.
fn credentials(env: &TestEnv, password: &str) -> Credentials {
    let data = BTreeMap::from([
        (
            "endpoint".to_string(),
            env.get("POSTGRES_HOST").as_bytes().to_vec(),
        ),
        (
            "port".to_string(),
            env.get("POSTGRES_PORT").as_bytes().to_vec(),
        ),
        (
            "username".to_string(),
            env.get("POSTGRES_USER").as_bytes().to_vec(),
        ),
        ("password".to_string(), password.as_bytes().to_vec()),
    ]);
    Credentials::from_data("default", "tessera-tests/pg-creds", data)
}

struct Fixture {
    env: TestEnv,
    /// The superuser, for out-of-band changes and for checking the catalogs.
    admin: tokio_postgres::Client,
    provider: PostgresClient,
    kube: kube::Client,
    /// This test's namespace (generated password Secrets, referenced Secrets).
    ns: String,
}

async fn fixture() -> Fixture {
    let env = TestEnv::load();
    let admin = env.postgres().await;
    let kube = env.kube().await;
    // Created by the tests that write Secrets (see `with_namespace`).
    let ns = unique("pg-provider");
    let session = Session::connect(
        "default",
        &provider_config_spec(SslMode::Prefer),
        &credentials(&env, env.get("POSTGRES_PASSWORD")),
    )
    .await
    .expect("connect with the testenv credentials");
    let provider = PostgresClient::new(Arc::new(session), kube.clone(), ns.clone());
    Fixture {
        env,
        admin,
        provider,
        kube,
        ns,
    }
}

impl Fixture {
    /// Creates this test's namespace, for tests that write Secrets.
    async fn with_namespace(self) -> Self {
        namespace(&self.kube, &self.ns).await;
        self
    }

    async fn sql(&self, sql: &str) {
        self.admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn role_exists(&self, name: &str) -> bool {
        self.admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .unwrap()
            .is_some()
    }

    async fn database_exists(&self, name: &str) -> bool {
        self.admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .unwrap()
            .is_some()
    }

    /// Logs in as `user` with `password`; the error text when PostgreSQL refuses.
    async fn login(&self, user: &str, password: &str) -> Result<String, String> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.env.get("POSTGRES_HOST"))
            .port(self.env.get("POSTGRES_PORT").parse().unwrap())
            .user(user)
            .password(password)
            .dbname("postgres");
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                let row = client
                    .query_one("SELECT current_user::text", &[])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(row.get(0))
            }
            Err(e) => Err(e
                .as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_else(|| e.to_string())),
        }
    }

    /// Creates `r` in the API server, so that it has a real uid: the garbage collector then
    /// keeps the password Secrets it owns (no controller runs in this test binary).
    async fn registered(&self, mut r: Role) -> Role {
        install_crds(&self.kube).await.expect("install CRDs");
        r.meta_mut().uid = None;
        let created = Api::<Role>::all(self.kube.clone())
            .create(&kube::api::PostParams::default(), &r)
            .await
            .expect("create the Role object");
        r.meta_mut().uid = created.meta().uid.clone();
        r
    }

    async fn unregister(&self, r: &Role) {
        let name = r.meta().name.clone().unwrap_or_default();
        Api::<Role>::all(self.kube.clone())
            .delete(&name, &Default::default())
            .await
            .expect("delete the Role object");
    }

    async fn put_secret(&self, name: &str, key: &str, value: &str) {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(self.ns.clone()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                key.to_string(),
                k8s_openapi::ByteString(value.as_bytes().to_vec()),
            )])),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.kube.clone(), &self.ns)
            .patch(
                name,
                &PatchParams::apply("tessera-tests").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("write Secret");
    }
}

/// A uid as the API server would give the object: roles and databases are marked with it.
fn with_uid<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().uid = Some(unique("uid"));
    obj
}

/// Nothing in the Role's status is derived from `password`: not the password, not the
/// fingerprint field of earlier versions, not a SHA-256 of it in hex or base64, salted
/// with the UID or not.
fn assert_status_has_nothing_derived_from(r: &Role, password: &str) {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let status = serde_json::to_string(&r.status).unwrap();
    let uid = r.metadata.uid.clone().unwrap_or_default();
    let digests = [
        Sha256::digest(password.as_bytes()).to_vec(),
        Sha256::digest(format!("{uid}\0{password}").as_bytes()).to_vec(),
    ];
    let mut forbidden = vec![password.to_string(), "passwordFingerprint".to_string()];
    for d in digests {
        forbidden.push(d.iter().map(|b| format!("{b:02x}")).collect());
        forbidden.push(base64::engine::general_purpose::STANDARD.encode(&d));
    }
    for f in forbidden {
        assert!(!status.contains(&f), "status holds {f:?}: {status}");
    }
}

fn role(name: &str, for_provider: RoleParameters) -> Role {
    with_uid(Role::new(
        name,
        RoleSpec {
            resource: ResourceSpec::default(),
            for_provider,
        },
    ))
}

fn database(name: &str, for_provider: DatabaseParameters) -> Database {
    with_uid(Database::new(
        name,
        DatabaseSpec {
            resource: ResourceSpec::default(),
            for_provider,
        },
    ))
}

fn grant(for_provider: GrantParameters) -> Grant {
    Grant::new(
        &unique("grant"),
        GrantSpec {
            resource: ResourceSpec::default(),
            for_provider,
        },
    )
}

fn assert_up_to_date(o: &Observation, what: &str) {
    assert!(o.exists, "{what}: exists");
    assert!(o.up_to_date, "{what}: up to date, but diff is {:?}", o.diff);
}

fn diff(o: &Observation) -> &str {
    assert!(o.exists, "exists");
    assert!(!o.up_to_date, "drifted");
    o.diff
        .as_deref()
        .expect("a drifted observation says what differs")
}

fn invalid_spec(r: Result<Observation, ProviderError>) -> String {
    match r {
        Err(ProviderError::InvalidSpec(msg)) => msg,
        other => panic!("want InvalidSpec, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Role

#[tokio::test]
async fn role_is_created_then_drift_by_alter_role_is_seen_and_repaired_then_dropped() {
    let f = fixture().await;
    let name = unique("role");
    let mut r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                create_db: Some(true),
                super_user: Some(false),
                ..Default::default()
            },
            connection_limit: Some(5),
            configuration_parameters: Some(vec![ConfigurationParameter {
                name: "statement_timeout".into(),
                value: "5s".into(),
            }]),
            ..Default::default()
        },
    );

    assert!(!f.provider.observe(&mut r).await.unwrap().exists);
    let details = f.provider.create(&mut r).await.expect("create");
    assert_eq!(details.get_str("username"), Some(name.as_str()));
    assert_eq!(
        details.get_str("endpoint"),
        Some(f.env.get("POSTGRES_HOST"))
    );
    assert_eq!(details.get_str("port"), Some(f.env.get("POSTGRES_PORT")));
    assert_eq!(
        details.get("password"),
        None,
        "a group role gets no password"
    );
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "after create");
    let at = r.status.as_ref().unwrap().at_provider.clone().unwrap();
    assert_eq!(at.privileges.create_db, Some(true));
    assert_eq!(at.privileges.login, Some(false), "PostgreSQL's default");
    assert_eq!(at.connection_limit, Some(5));
    assert_eq!(at.configuration_parameters[0].value, "5s");

    f.sql(&format!(
        "ALTER ROLE \"{name}\" SUPERUSER CONNECTION LIMIT -1; ALTER ROLE \"{name}\" SET work_mem = '1MB'"
    ))
    .await;
    let drifted = f.provider.observe(&mut r).await.unwrap();
    assert_eq!(
        diff(&drifted),
        "superUser: want false, have true; connectionLimit: want 5, have -1; \
         configurationParameters.work_mem: want none, have \"1MB\""
    );

    f.provider.update(&mut r).await.expect("update");
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "after update");
    let row = f
        .admin
        .query_one(
            "SELECT rolsuper, rolconnlimit, rolconfig FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 5);
    assert_eq!(row.get::<_, Vec<String>>(2), ["statement_timeout=5s"]);

    f.provider.delete(&r).await.expect("delete");
    assert!(!f.provider.observe(&mut r).await.unwrap().exists);
    assert!(!f.role_exists(&name).await);
    f.provider.delete(&r).await.expect("deleting again is fine");
}

#[tokio::test]
async fn creating_a_role_that_someone_else_made_meanwhile_fails_and_changes_nothing() {
    // Observe found no role, then someone created it before the create ran: the create
    // must not take it over (the runtime records the failure, and the next observe reports
    // the role as not Tessera's).
    let f = fixture().await;
    let name = unique("raced");
    f.sql(&format!("CREATE ROLE \"{name}\" CREATEROLE")).await;
    let mut r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                create_role: Some(false),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    match f.provider.create(&mut r).await {
        Err(ProviderError::Transient(msg)) => {
            assert!(msg.contains("created meanwhile by someone else"), "{msg}")
        }
        other => panic!("want a transient error, got {other:?}"),
    }
    let o = f.provider.observe(&mut r).await.unwrap();
    assert_eq!(o.ownership, Ownership::Unmarked);
    let row = f
        .admin
        .query_one(
            "SELECT rolcreaterole, pg_catalog.shobj_description(oid, 'pg_authid') \
             FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the role keeps its attributes");
    assert_eq!(row.get::<_, Option<String>>(1), None, "and gets no mark");
    f.sql(&format!("DROP ROLE \"{name}\"")).await;
}

#[tokio::test]
async fn observe_reports_whose_a_role_or_database_is_and_create_marks_it_in_one_step() {
    let f = fixture().await;
    let name = unique("marked");
    let mut r = role(&name, RoleParameters::default());
    f.provider.create(&mut r).await.expect("create");
    assert_eq!(
        f.provider.observe(&mut r).await.unwrap().ownership,
        Ownership::Ours
    );
    let uid = r.meta().uid.clone().unwrap();
    let mut stranger = role(&name, RoleParameters::default());
    assert_eq!(
        f.provider.observe(&mut stranger).await.unwrap().ownership,
        Ownership::Other(uid)
    );
    f.sql(&format!("COMMENT ON ROLE \"{name}\" IS 'the billing team'"))
        .await;
    assert_eq!(
        f.provider.observe(&mut r).await.unwrap().ownership,
        Ownership::Unmarked
    );
    f.provider.mark(&r).await.expect("mark");
    assert_eq!(
        f.provider.observe(&mut r).await.unwrap().ownership,
        Ownership::Ours
    );
    f.provider.delete(&r).await.unwrap();

    let login = f.env.get("POSTGRES_USER").to_string();
    let mut admin = role(&login, RoleParameters::default());
    assert!(matches!(
        f.provider.observe(&mut admin).await.unwrap().ownership,
        Ownership::Protected(_)
    ));

    let db = unique("markeddb");
    let mut d = database(&db, DatabaseParameters::default());
    f.provider.create(&mut d).await.expect("create");
    assert_eq!(
        f.provider.observe(&mut d).await.unwrap().ownership,
        Ownership::Ours
    );
    f.provider.delete(&d).await.unwrap();
    let mut postgres = database("postgres", DatabaseParameters::default());
    assert!(matches!(
        f.provider.observe(&mut postgres).await.unwrap().ownership,
        Ownership::Protected(_)
    ));
}

#[tokio::test]
async fn a_login_role_gets_a_generated_password_kept_in_a_secret_that_logs_in() {
    let f = fixture().await.with_namespace().await;
    let name = unique("login");
    let r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                login: Some(true),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let mut r = f.registered(r).await;
    let details = f.provider.create(&mut r).await.expect("create");
    let password = details.get_str("password").expect("password").to_string();
    assert_eq!(password.len(), 40);
    assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));

    let stored = secret_data(&f.kube, &f.ns, &format!("{name}-password"))
        .await
        .expect("the generated password is kept in <name>-password");
    assert_eq!(stored["password"], password);
    assert_eq!(f.login(&name, &password).await, Ok(name.clone()));

    let at = r.status.as_ref().unwrap().at_provider.clone().unwrap();
    let version = at.password_secret_version.expect("Secret version recorded");
    let stored_meta = Api::<Secret>::namespaced(f.kube.clone(), &f.ns)
        .get(&format!("{name}-password"))
        .await
        .unwrap()
        .metadata;
    assert_eq!(
        version,
        format!(
            "{}/{}",
            stored_meta.uid.unwrap(),
            stored_meta.resource_version.unwrap()
        ),
        "the version of the Secret written"
    );
    assert_status_has_nothing_derived_from(&r, &password);

    let o = f.provider.observe(&mut r).await.unwrap();
    assert_up_to_date(&o, "after create");
    assert_eq!(
        o.connection.get_str("password"),
        Some(password.as_str()),
        "observe gives the password back from its Secret, so the connection secret stays whole"
    );
    f.provider.delete(&r).await.unwrap();
    f.unregister(&r).await;
}

#[tokio::test]
async fn a_role_recorded_by_an_earlier_version_sets_its_password_from_the_secret_once() {
    let f = fixture().await.with_namespace().await;
    let name = unique("upgraded");
    let r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                login: Some(true),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let mut r = f.registered(r).await;
    let password = f.provider.create(&mut r).await.unwrap();
    let password = password.get_str("password").unwrap().to_string();
    // What an earlier version recorded: a fingerprint (no longer read) and no version.
    let at = r.status.as_mut().unwrap().at_provider.as_mut().unwrap();
    at.password_secret_version = None;
    f.sql(&format!("ALTER ROLE \"{name}\" PASSWORD 'set-outside'"))
        .await;

    let drifted = f.provider.observe(&mut r).await.unwrap();
    assert!(
        diff(&drifted).starts_with("password: the password in Secret"),
        "{:?}",
        drifted.diff
    );
    f.provider.update(&mut r).await.unwrap();
    assert_eq!(
        f.login(&name, &password).await,
        Ok(name.clone()),
        "the password of the Secret is set again, not a new one"
    );
    assert_eq!(
        secret_data(&f.kube, &f.ns, &format!("{name}-password"))
            .await
            .unwrap()["password"],
        password
    );
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "once set");
    assert_status_has_nothing_derived_from(&r, &password);
    f.provider.delete(&r).await.unwrap();
    f.unregister(&r).await;
}

#[tokio::test]
async fn a_new_rotate_password_annotation_sets_a_new_password_and_the_old_one_stops_working() {
    let f = fixture().await.with_namespace().await;
    let name = unique("rotate");
    let r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                login: Some(true),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let mut r = f.registered(r).await;
    let old = f.provider.create(&mut r).await.unwrap();
    let old = old.get_str("password").unwrap().to_string();
    assert_up_to_date(
        &f.provider.observe(&mut r).await.unwrap(),
        "before rotation",
    );

    r.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ROTATE_PASSWORD_ANNOTATION.into(), "2024-q3".into());
    let drifted = f.provider.observe(&mut r).await.unwrap();
    assert_eq!(
        diff(&drifted),
        "password: rotation requested (tessera.dev/rotate-password: 2024-q3)"
    );
    let new = f.provider.update(&mut r).await.unwrap();
    let new = new.get_str("password").unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        r.status
            .as_ref()
            .unwrap()
            .at_provider
            .as_ref()
            .unwrap()
            .password_rotation_token
            .as_deref(),
        Some("2024-q3")
    );
    assert_eq!(
        secret_data(&f.kube, &f.ns, &format!("{name}-password"))
            .await
            .unwrap()["password"],
        new
    );
    assert_eq!(f.login(&name, &new).await, Ok(name.clone()));
    let refused = f.login(&name, &old).await.unwrap_err();
    assert!(
        refused.contains("password authentication failed"),
        "{refused}"
    );
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "after rotation");
    f.provider.delete(&r).await.unwrap();
    f.unregister(&r).await;
}

#[tokio::test]
async fn changing_the_referenced_password_secret_changes_the_role_password() {
    let f = fixture().await.with_namespace().await;
    let name = unique("refpw");
    let secret = unique("pw");
    f.put_secret(&secret, "pw", "first-Pa55'word").await;
    let mut r = role(
        &name,
        RoleParameters {
            privileges: RolePrivileges {
                login: Some(true),
                ..Default::default()
            },
            password_secret_ref: Some(SecretKeySelector {
                name: secret.clone(),
                namespace: f.ns.clone(),
                key: "pw".into(),
            }),
            ..Default::default()
        },
    );
    let details = f.provider.create(&mut r).await.unwrap();
    assert_eq!(details.get_str("password"), Some("first-Pa55'word"));
    assert_eq!(f.login(&name, "first-Pa55'word").await, Ok(name.clone()));
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "after create");

    f.put_secret(&secret, "pw", "second-Pa55\\word").await;
    let drifted = f.provider.observe(&mut r).await.unwrap();
    assert!(
        diff(&drifted).starts_with("password: the password in Secret"),
        "{:?}",
        drifted.diff
    );
    assert!(
        !drifted.diff.as_deref().unwrap().contains("second"),
        "no password in the diff"
    );
    f.provider.update(&mut r).await.unwrap();
    assert_status_has_nothing_derived_from(&r, "second-Pa55\\word");
    assert_eq!(f.login(&name, "second-Pa55\\word").await, Ok(name.clone()));
    assert!(f.login(&name, "first-Pa55'word").await.is_err());
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "after update");
    f.provider.delete(&r).await.unwrap();
}

#[tokio::test]
async fn a_missing_referenced_password_secret_is_a_transient_error_on_create() {
    let f = fixture().await;
    let mut r = role(
        &unique("nopw"),
        RoleParameters {
            password_secret_ref: Some(SecretKeySelector {
                name: "does-not-exist".into(),
                namespace: f.ns.clone(),
                key: "pw".into(),
            }),
            ..Default::default()
        },
    );
    match f.provider.create(&mut r).await {
        Err(ProviderError::Transient(msg)) => assert_eq!(
            msg,
            format!(
                "the password Secret {}/does-not-exist key \"pw\" does not exist; \
                 create it or change passwordSecretRef",
                f.ns
            )
        ),
        other => panic!("want Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_a_role_that_owns_a_database_is_transient_and_names_the_database() {
    let f = fixture().await;
    let name = unique("owner");
    let db = unique("owned");
    let mut r = role(&name, RoleParameters::default());
    f.provider.create(&mut r).await.unwrap();
    f.sql(&format!("CREATE DATABASE \"{db}\" OWNER \"{name}\""))
        .await;
    match f.provider.delete(&r).await {
        Err(ProviderError::Transient(msg)) => assert_eq!(
            msg,
            format!("role {name} still owns database {db}; delete or reassign it first")
        ),
        other => panic!("want Transient, got {other:?}"),
    }
    assert!(f.role_exists(&name).await, "nothing was dropped");
    f.sql(&format!("DROP DATABASE \"{db}\"")).await;
    f.provider
        .delete(&r)
        .await
        .expect("delete once the database is gone");
    assert!(!f.role_exists(&name).await);
}

#[tokio::test]
async fn a_role_name_with_quotes_and_semicolons_is_created_verbatim_without_injection() {
    let f = fixture().await;
    let name = format!(
        "x\"; DROP ROLE {}; --'{}",
        f.env.get("POSTGRES_USER"),
        unique("q")
    );
    let mut r = role(&name, RoleParameters::default());
    f.provider.create(&mut r).await.expect("create");
    assert!(
        f.role_exists(&name).await,
        "the role has exactly the odd name"
    );
    assert!(f.role_exists(f.env.get("POSTGRES_USER")).await);
    assert_up_to_date(&f.provider.observe(&mut r).await.unwrap(), "odd name");
    f.provider.delete(&r).await.unwrap();
    assert!(!f.role_exists(&name).await);
}

#[tokio::test]
async fn a_role_name_longer_than_63_bytes_is_an_invalid_spec() {
    let f = fixture().await;
    let mut r = role(&"r".repeat(64), RoleParameters::default());
    let msg = invalid_spec(f.provider.observe(&mut r).await);
    assert!(
        msg.contains("is 64 bytes long; PostgreSQL allows at most 63"),
        "{msg}"
    );
    assert!(matches!(
        f.provider.create(&mut r).await,
        Err(ProviderError::InvalidSpec(_))
    ));
}

#[tokio::test]
async fn an_unknown_configuration_parameter_is_an_invalid_spec() {
    let f = fixture().await;
    let name = unique("badparam");
    let mut r = role(
        &name,
        RoleParameters {
            configuration_parameters: Some(vec![ConfigurationParameter {
                name: "no_such_setting".into(),
                value: "1".into(),
            }]),
            ..Default::default()
        },
    );
    match f.provider.create(&mut r).await {
        Err(ProviderError::InvalidSpec(msg)) => {
            assert!(msg.contains("no_such_setting"), "{msg}")
        }
        other => panic!("want InvalidSpec, got {other:?}"),
    }
    assert!(
        !f.role_exists(&name).await,
        "CREATE ROLE and its SETs run as one transaction"
    );
}

// ---------------------------------------------------------------------------------------
// Database

#[tokio::test]
async fn database_is_created_then_drift_by_alter_database_is_seen_and_repaired_then_dropped() {
    let f = fixture().await;
    let owner = unique("dbowner");
    let name = unique("db");
    f.sql(&format!("CREATE ROLE \"{owner}\"")).await;
    let mut d = database(
        &name,
        DatabaseParameters {
            owner: Some(owner.clone()),
            encoding: Some("utf-8".into()),
            template: Some("template0".into()),
            connection_limit: Some(3),
            allow_connections: Some(true),
            is_template: Some(false),
            ..Default::default()
        },
    );
    assert!(!f.provider.observe(&mut d).await.unwrap().exists);
    f.provider.create(&mut d).await.expect("create");
    let o = f.provider.observe(&mut d).await.unwrap();
    assert_up_to_date(&o, "after create (utf-8 is UTF8)");
    let at = d.status.as_ref().unwrap().at_provider.clone().unwrap();
    assert_eq!(at.owner.as_deref(), Some(owner.as_str()));
    assert_eq!(at.encoding.as_deref(), Some("UTF8"));
    assert_eq!(at.template.as_deref(), Some("template0"));
    assert_eq!(at.connection_limit, Some(3));

    f.sql(&format!(
        "ALTER DATABASE \"{name}\" OWNER TO {}; ALTER DATABASE \"{name}\" CONNECTION LIMIT 10 IS_TEMPLATE true",
        f.env.get("POSTGRES_USER")
    ))
    .await;
    let drifted = f.provider.observe(&mut d).await.unwrap();
    assert_eq!(
        diff(&drifted),
        format!(
            "owner: want {owner}, have {}; connectionLimit: want 3, have 10; \
             isTemplate: want false, have true",
            f.env.get("POSTGRES_USER")
        )
    );
    f.provider.update(&mut d).await.expect("update");
    assert_up_to_date(&f.provider.observe(&mut d).await.unwrap(), "after update");

    f.provider.delete(&d).await.expect("delete");
    assert!(!f.provider.observe(&mut d).await.unwrap().exists);
    assert!(!f.database_exists(&name).await);
    f.sql(&format!("DROP ROLE \"{owner}\"")).await;
}

#[tokio::test]
async fn asking_for_another_encoding_of_an_existing_database_is_refused_and_nothing_is_dropped() {
    let f = fixture().await;
    let name = unique("enc");
    let mut d = database(
        &name,
        DatabaseParameters {
            encoding: Some("UTF8".into()),
            template: Some("template0".into()),
            ..Default::default()
        },
    );
    f.provider.create(&mut d).await.unwrap();
    d.spec.for_provider.encoding = Some("LATIN1".into());
    let msg = invalid_spec(f.provider.observe(&mut d).await);
    assert_eq!(
        msg,
        "encoding cannot change after creation: database has UTF8, spec asks LATIN1; \
         create a new Database instead"
    );
    assert!(matches!(
        f.provider.update(&mut d).await,
        Err(ProviderError::InvalidSpec(_))
    ));
    assert!(
        f.database_exists(&name).await,
        "nothing destructive happened"
    );

    // Deleting still works while the spec is invalid.
    d.meta_mut().deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    assert!(f.provider.observe(&mut d).await.unwrap().exists);
    f.provider.delete(&d).await.unwrap();
    assert!(!f.database_exists(&name).await);
}

#[tokio::test]
async fn an_unknown_encoding_is_an_invalid_spec() {
    let f = fixture().await;
    let name = unique("badenc");
    let mut d = database(
        &name,
        DatabaseParameters {
            encoding: Some("KLINGON".into()),
            ..Default::default()
        },
    );
    match f.provider.create(&mut d).await {
        Err(ProviderError::InvalidSpec(msg)) => assert!(msg.contains("KLINGON"), "{msg}"),
        other => panic!("want InvalidSpec, got {other:?}"),
    }
    assert!(!f.database_exists(&name).await);
}

#[tokio::test]
async fn a_database_in_use_is_not_dropped_and_the_error_is_transient() {
    let f = fixture().await;
    let name = unique("busy");
    let mut d = database(&name, DatabaseParameters::default());
    f.provider.create(&mut d).await.unwrap();
    let mut config: tokio_postgres::Config = f.env.get("POSTGRES_URL").parse().unwrap();
    config.dbname(&name);
    let (user, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    match f.provider.delete(&d).await {
        Err(ProviderError::Transient(msg)) => {
            assert!(msg.contains("is being accessed by other users"), "{msg}")
        }
        other => panic!("want Transient, got {other:?}"),
    }
    drop(user);
    let _ = conn.await;
    f.provider
        .delete(&d)
        .await
        .expect("delete once the session is gone");
    assert!(!f.database_exists(&name).await);
}

// ---------------------------------------------------------------------------------------
// Grant

#[tokio::test]
async fn database_grant_is_created_then_drift_by_grant_and_revoke_is_seen_and_repaired_then_revoked()
 {
    let f = fixture().await;
    let user = unique("grantee");
    let db = unique("grantdb");
    // CREATE and DROP DATABASE cannot share a batch (an implicit transaction).
    f.sql(&format!("CREATE ROLE \"{user}\"")).await;
    f.sql(&format!("CREATE DATABASE \"{db}\"")).await;
    let mut g = grant(GrantParameters {
        role: user.clone(),
        database: Some(db.clone()),
        privileges: vec!["connect".into(), "TEMP".into()],
        revoke_public_on_db: Some(true),
        ..Default::default()
    });

    assert!(!f.provider.observe(&mut g).await.unwrap().exists);
    assert_eq!(
        g.meta().annotations.as_ref().unwrap()["tessera.dev/external-name"],
        format!("{user}/database/{db}"),
        "observe proposes the deterministic external name"
    );
    f.provider.create(&mut g).await.expect("create");
    assert_up_to_date(&f.provider.observe(&mut g).await.unwrap(), "after create");
    let at = g.status.as_ref().unwrap().at_provider.clone().unwrap();
    assert_eq!(at.privileges, ["CONNECT", "TEMPORARY"]);
    assert_eq!(at.public_privileges, Some(vec![]));

    f.sql(&format!(
        "GRANT CREATE ON DATABASE \"{db}\" TO \"{user}\"; REVOKE TEMP ON DATABASE \"{db}\" FROM \"{user}\"; \
         GRANT CONNECT ON DATABASE \"{db}\" TO PUBLIC"
    ))
    .await;
    let drifted = f.provider.observe(&mut g).await.unwrap();
    assert_eq!(
        diff(&drifted),
        format!(
            "privileges on database {db}: want CONNECT, TEMPORARY, have CONNECT, CREATE; \
             privileges of PUBLIC on database {db}: want none, have CONNECT"
        )
    );
    f.provider.update(&mut g).await.expect("update");
    assert_up_to_date(&f.provider.observe(&mut g).await.unwrap(), "after update");

    g.spec.for_provider.with_option = Some(GrantOption::Grant);
    assert_eq!(
        diff(&f.provider.observe(&mut g).await.unwrap()),
        "privileges with GRANT OPTION: want CONNECT, TEMPORARY, have none"
    );
    f.provider
        .update(&mut g)
        .await
        .expect("add the grant option");
    assert_up_to_date(
        &f.provider.observe(&mut g).await.unwrap(),
        "with grant option",
    );

    f.provider.delete(&g).await.expect("delete");
    assert!(!f.provider.observe(&mut g).await.unwrap().exists);
    let left: i64 = f
        .admin
        .query_one(
            "SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a \
             WHERE d.datname = $1 AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $2)",
            &[&db, &user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "no privilege of the role is left on the database");
    f.sql(&format!("DROP DATABASE \"{db}\"")).await;
    f.sql(&format!("DROP ROLE \"{user}\"")).await;
}

#[tokio::test]
async fn membership_grant_is_created_then_admin_option_drift_is_repaired_then_revoked() {
    let f = fixture().await;
    let user = unique("member");
    let group = unique("group");
    f.sql(&format!("CREATE ROLE \"{user}\"; CREATE ROLE \"{group}\""))
        .await;
    let mut g = grant(GrantParameters {
        role: user.clone(),
        member_of: Some(group.clone()),
        with_option: Some(GrantOption::Admin),
        ..Default::default()
    });
    assert!(!f.provider.observe(&mut g).await.unwrap().exists);
    f.provider.create(&mut g).await.expect("create");
    assert_up_to_date(&f.provider.observe(&mut g).await.unwrap(), "after create");

    f.sql(&format!(
        "REVOKE ADMIN OPTION FOR \"{group}\" FROM \"{user}\""
    ))
    .await;
    assert_eq!(
        diff(&f.provider.observe(&mut g).await.unwrap()),
        "ADMIN OPTION: want true, have false"
    );
    f.provider.update(&mut g).await.expect("update");
    assert_up_to_date(&f.provider.observe(&mut g).await.unwrap(), "after update");

    f.provider.delete(&g).await.expect("delete");
    assert!(!f.provider.observe(&mut g).await.unwrap().exists);
    let member = f
        .admin
        .query_opt(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
             JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = $1 AND r.rolname = $2",
            &[&group, &user],
        )
        .await
        .unwrap();
    assert!(member.is_none());
    f.sql(&format!("DROP ROLE \"{user}\"; DROP ROLE \"{group}\""))
        .await;
}

#[tokio::test]
async fn an_unknown_privilege_is_an_invalid_spec_naming_it() {
    let f = fixture().await;
    let mut g = grant(GrantParameters {
        role: "someone".into(),
        database: Some("somewhere".into()),
        privileges: vec!["CONNECT".into(), "SELECT".into()],
        ..Default::default()
    });
    let msg = invalid_spec(f.provider.observe(&mut g).await);
    assert!(msg.contains("unknown privilege \"SELECT\""), "{msg}");
}

#[tokio::test]
async fn a_grant_whose_role_does_not_exist_yet_is_absent_and_creating_it_is_transient() {
    let f = fixture().await;
    let mut g = grant(GrantParameters {
        role: unique("nobody"),
        member_of: Some(unique("nogroup")),
        ..Default::default()
    });
    assert!(!f.provider.observe(&mut g).await.unwrap().exists);
    match f.provider.create(&mut g).await {
        Err(ProviderError::Transient(msg)) => assert!(msg.contains("does not exist"), "{msg}"),
        other => panic!("want Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn changing_the_role_of_a_created_grant_is_refused_and_delete_revokes_the_original() {
    let f = fixture().await;
    let (a, b, group) = (unique("a"), unique("b"), unique("g"));
    f.sql(&format!(
        "CREATE ROLE \"{a}\"; CREATE ROLE \"{b}\"; CREATE ROLE \"{group}\""
    ))
    .await;
    let mut g = grant(GrantParameters {
        role: a.clone(),
        member_of: Some(group.clone()),
        ..Default::default()
    });
    f.provider.observe(&mut g).await.unwrap();
    f.provider.create(&mut g).await.unwrap();
    g.spec.for_provider.role = b.clone();
    let msg = invalid_spec(f.provider.observe(&mut g).await);
    assert_eq!(
        msg,
        format!(
            "role, database and memberOf cannot change after creation: this Grant manages the \
             membership of role {a} in role {group}, spec asks for the membership of role {b} \
             in role {group}; create a new Grant instead"
        )
    );
    f.provider.delete(&g).await.unwrap();
    let still: bool = f
        .admin
        .query_one("SELECT pg_has_role($1, $2, 'MEMBER')", &[&a, &group])
        .await
        .unwrap()
        .get(0);
    assert!(!still, "the membership that was created is the one revoked");
    f.sql(&format!(
        "DROP ROLE \"{a}\"; DROP ROLE \"{b}\"; DROP ROLE \"{group}\""
    ))
    .await;
}

// ---------------------------------------------------------------------------------------
// Connecting

#[tokio::test]
async fn a_wrong_password_in_the_credentials_is_a_config_error_naming_the_provider_config() {
    let env = TestEnv::load();
    let wrong = "definitely-not-the-password";
    let err = Session::connect(
        "default",
        &provider_config_spec(SslMode::Prefer),
        &credentials(&env, wrong),
    )
    .await
    .expect_err("wrong password");
    match err {
        ProviderError::Config(msg) => {
            assert!(
                msg.starts_with(&format!(
                    "ProviderConfig \"default\": PostgreSQL rejected the credentials of user {}: ",
                    env.get("POSTGRES_USER")
                )),
                "{msg}"
            );
            assert!(msg.contains("password authentication failed"), "{msg}");
            assert!(!msg.contains(wrong), "the password is never in a message");
        }
        other => panic!("want Config, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let env = TestEnv::load();
    let mut creds = BTreeMap::new();
    for (k, v) in [
        ("endpoint", "127.0.0.1"),
        ("port", "1"),
        ("username", env.get("POSTGRES_USER")),
        ("password", "x"),
    ] {
        creds.insert(k.to_string(), v.as_bytes().to_vec());
    }
    let creds = Credentials::from_data("default", "ns/creds", creds);
    match Session::connect("default", &provider_config_spec(SslMode::Disable), &creds).await {
        Err(ProviderError::Transient(msg)) => {
            assert!(
                msg.starts_with(
                    "cannot connect to PostgreSQL at 127.0.0.1:1: error connecting to server: "
                ),
                "{msg}"
            );
            assert!(
                msg.contains("refused"),
                "the cause is in the message: {msg}"
            );
        }
        other => panic!("want Transient, got {other:?}"),
    }
}

#[tokio::test]
async fn ssl_mode_require_uses_tls_when_the_server_offers_it_and_is_a_config_error_otherwise() {
    let env = TestEnv::load();
    let admin = env.postgres().await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let result = Session::connect(
        "default",
        &provider_config_spec(SslMode::Require),
        &credentials(&env, env.get("POSTGRES_PASSWORD")),
    )
    .await;
    if ssl == "on" {
        let session = Arc::new(result.expect("TLS connection"));
        let f = fixture().await;
        let provider = PostgresClient::new(session, f.kube.clone(), f.ns.clone());
        let mut r = role(&unique("tls"), RoleParameters::default());
        provider
            .create(&mut r)
            .await
            .expect("statements run over TLS");
        provider.delete(&r).await.unwrap();
        let tls_sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE s.ssl AND a.application_name = 'tessera-provider-postgresql'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(tls_sessions >= 1, "the provider's session is encrypted");
    } else {
        match result {
            Err(ProviderError::Config(msg)) => {
                assert!(msg.contains("sslMode is require"), "{msg}")
            }
            other => panic!("want Config, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_connector_watches_provider_config_and_secret_reuses_its_session_and_reconnects_on_change()
 {
    let f = fixture().await.with_namespace().await;
    let crd_api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(f.kube.clone());
    for crd in crds() {
        crd_api
            .patch(
                crd.metadata.name.as_deref().unwrap(),
                &PatchParams::apply("tessera-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("install CRD");
    }
    let pc = unique("pc");
    let connector = Postgres::connector_with_password_namespace(f.ns.clone());
    let session = |connector: PostgresConnector| {
        let kube = f.kube.clone();
        let pc = pc.clone();
        async move {
            connector
                .client(&kube, &pc)
                .await
                .map(|c| c.session().clone())
        }
    };
    match session(connector.clone()).await {
        Err(ProviderError::Config(msg)) => assert_eq!(
            msg,
            format!("ProviderConfig \"{pc}\" not found; create it or set spec.providerConfigRef")
        ),
        other => panic!("want Config, got {other:?}"),
    }

    let secret = format!("{pc}-creds");
    let data: BTreeMap<String, k8s_openapi::ByteString> = [
        ("endpoint", f.env.get("POSTGRES_HOST")),
        ("port", f.env.get("POSTGRES_PORT")),
        ("username", f.env.get("POSTGRES_USER")),
        ("password", f.env.get("POSTGRES_PASSWORD")),
    ]
    .into_iter()
    .map(|(k, v)| {
        (
            k.to_string(),
            k8s_openapi::ByteString(v.as_bytes().to_vec()),
        )
    })
    .collect();
    let secrets: Api<Secret> = Api::namespaced(f.kube.clone(), &f.ns);
    let mut s = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret.clone()),
            namespace: Some(f.ns.clone()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let ssa = PatchParams::apply("tessera-tests").force();
    secrets
        .patch(&secret, &ssa, &Patch::Apply(&s))
        .await
        .unwrap();
    let configs: Api<tessera_provider_postgresql::ProviderConfig> = Api::all(f.kube.clone());
    let mut spec = provider_config_spec(SslMode::Prefer);
    spec.credentials.secret_ref = Some(SecretReference {
        name: secret.clone(),
        namespace: f.ns.clone(),
    });
    let config = tessera_provider_postgresql::ProviderConfig::new(&pc, spec);
    configs
        .patch(&pc, &ssa, &Patch::Apply(&config))
        .await
        .expect("create ProviderConfig");

    // The connector reads the ProviderConfig from a watched store, which sees the new
    // object within moments.
    let first = wait_for(Duration::from_secs(10), || async {
        session(connector.clone()).await.ok()
    })
    .await
    .expect("connect once the store has the ProviderConfig");
    let again = session(connector.clone()).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the session is cached per ProviderConfig"
    );

    s.data.as_mut().unwrap().insert(
        "password".into(),
        k8s_openapi::ByteString(b"wrong".to_vec()),
    );
    secrets
        .patch(&secret, &ssa, &Patch::Apply(&s))
        .await
        .unwrap();
    // The watched Secret's change reaches the store within moments, and the next session
    // is made with the new credentials.
    let changed = wait_for(Duration::from_secs(10), || async {
        session(connector.clone()).await.err()
    })
    .await;
    match changed {
        Ok(ProviderError::Config(msg)) => assert!(
            msg.starts_with(&format!(
                "ProviderConfig {pc:?}: PostgreSQL rejected the credentials"
            )),
            "{msg}"
        ),
        other => panic!("changed credentials are used without a restart; got {other:?}"),
    }
    configs
        .delete(&pc, &Default::default())
        .await
        .expect("delete ProviderConfig");
}
