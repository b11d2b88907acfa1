//! The PostgreSQL provider's TLS modes against testenv's PostgreSQL, which serves a
//! certificate for 127.0.0.1 and localhost from a CA of its own, also listens on an
//! address its certificate does not name, lets `tessera_tls` log in only over TLS, asks
//! `tessera_cleartext` for its password in cleartext, and lets `tessera_trust` in without
//! one.

use std::collections::BTreeMap;

use serde_json::json;
use tessera_engine::api::common::{CredentialsSource, ProviderCredentials, SecretReference};
use tessera_engine::managed::ProviderError;
use tessera_engine::managed::credentials::Credentials;
use tessera_provider_postgresql::api::{ProviderConfigSpec, SslMode};
use tessera_provider_postgresql::{Postgres, Session};
use tessera_tests::{
    PG_API, TEST_NAMESPACE, TestEnv, apply, delete, delete_in, install_crds, namespace, unique,
};

fn spec(ssl_mode: SslMode) -> ProviderConfigSpec {
    ProviderConfigSpec {
        credentials: ProviderCredentials {
            source: CredentialsSource::Secret,
            secret_ref: Some(SecretReference {
                name: "unused".into(),
                namespace: "unused".into(),
            }),
        },
        ssl_mode,
        default_database: "postgres".into(),
    }
}

/// The credentials Secret's data: `host`, the user and password from the env keys
/// `<prefix>_USER` / `<prefix>_PASSWORD`, and `ca.crt` read from `ca_file` if any.
fn creds(env: &TestEnv, host: &str, prefix: &str, ca_file: Option<&str>) -> Credentials {
    let mut data = BTreeMap::from([
        ("endpoint".to_string(), host.as_bytes().to_vec()),
        (
            "port".to_string(),
            env.get("POSTGRES_PORT").as_bytes().to_vec(),
        ),
        (
            "username".to_string(),
            env.get(&format!("{prefix}_USER")).as_bytes().to_vec(),
        ),
        (
            "password".to_string(),
            env.get(&format!("{prefix}_PASSWORD")).as_bytes().to_vec(),
        ),
    ]);
    if let Some(file) = ca_file {
        let pem = std::fs::read(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
        data.insert("ca.crt".to_string(), pem);
    }
    Credentials::from_data("unused", "tessera-tests/pg-tls", data)
}

/// Connects as ProviderConfig `pc` and expects a Config error; returns its message after
/// checking that it names the ProviderConfig and holds no password.
async fn config_error(env: &TestEnv, pc: &str, mode: SslMode, creds: &Credentials) -> String {
    match Session::connect(pc, &spec(mode), creds).await {
        Err(ProviderError::Config(msg)) => {
            assert!(
                msg.starts_with(&format!("ProviderConfig {pc:?}: ")),
                "names the ProviderConfig: {msg}"
            );
            for key in [
                "POSTGRES_PASSWORD",
                "POSTGRES_TLS_PASSWORD",
                "POSTGRES_CLEARTEXT_PASSWORD",
                "POSTGRES_TRUST_PASSWORD",
            ] {
                assert!(!msg.contains(env.get(key)), "no password in: {msg}");
            }
            msg
        }
        Err(other) => panic!("want a Config error, got {other:?}"),
        Ok(session) => panic!("want a Config error, got a session {session:?}"),
    }
}

/// Whether every open session of `user` is encrypted, and there is at least one.
async fn sessions_of_user_are_encrypted(env: &TestEnv, user: &str) -> bool {
    let admin = env.postgres().await;
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) \
             WHERE a.usename = $1 AND a.application_name = 'tessera-provider-postgresql'",
            &[&user],
        )
        .await
        .unwrap();
    let (all, ssl): (i64, i64) = (row.get(0), row.get(1));
    all >= 1 && all == ssl
}

#[tokio::test]
async fn verify_full_connects_over_tls_to_the_server_its_certificate_names() {
    let env = TestEnv::load();
    let host = env.get("POSTGRES_HOST");
    let creds = creds(
        &env,
        host,
        "POSTGRES_TLS",
        Some(env.get("POSTGRES_CA_FILE")),
    );
    let session = Session::connect(&unique("pc"), &spec(SslMode::VerifyFull), &creds)
        .await
        .expect("verify-full against the testenv CA");
    assert!(!session.is_closed());
    assert!(
        sessions_of_user_are_encrypted(&env, env.get("POSTGRES_TLS_USER")).await,
        "the provider's session is encrypted"
    );
    // `localhost` is in the certificate too, and resolves to the server.
    Session::connect(
        &unique("pc"),
        &spec(SslMode::VerifyFull),
        &self::creds(
            &env,
            "localhost",
            "POSTGRES_TLS",
            Some(env.get("POSTGRES_CA_FILE")),
        ),
    )
    .await
    .expect("verify-full by host name");
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_name_and_verify_ca_accepts_it() {
    let env = TestEnv::load();
    let unnamed = env.get("POSTGRES_UNNAMED_HOST");
    let creds = creds(
        &env,
        unnamed,
        "POSTGRES_TLS",
        Some(env.get("POSTGRES_CA_FILE")),
    );
    let pc = unique("pc");
    let msg = config_error(&env, &pc, SslMode::VerifyFull, &creds).await;
    assert!(
        msg.starts_with(&format!(
            "ProviderConfig {pc:?}: sslMode verify-full: the certificate of PostgreSQL at \
             {unnamed}:{} was refused (certificate not valid for name \"{unnamed}\"",
            env.get("POSTGRES_PORT")
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "set key \"endpoint\" of the credentials Secret to a name the certificate is \
             issued for, or reissue the certificate with that name"
        ),
        "says what to fix: {msg}"
    );

    Session::connect(&pc, &spec(SslMode::VerifyCa), &creds)
        .await
        .expect("verify-ca checks the chain, not the name");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_by_verify_full_and_verify_ca() {
    let env = TestEnv::load();
    // The kube-apiserver's CA: a real CA, but not the one that issued PostgreSQL's.
    let creds = creds(
        &env,
        env.get("POSTGRES_HOST"),
        "POSTGRES_TLS",
        Some(env.get("KUBE_CA_FILE")),
    );
    for mode in [SslMode::VerifyFull, SslMode::VerifyCa] {
        let pc = unique("pc");
        let msg = config_error(&env, &pc, mode, &creds).await;
        assert!(
            msg.starts_with(&format!(
                "ProviderConfig {pc:?}: sslMode {}: the certificate of PostgreSQL at {}:{} was \
                 refused (",
                mode.as_str(),
                env.get("POSTGRES_HOST"),
                env.get("POSTGRES_PORT")
            )),
            "{msg}"
        );
        assert!(msg.contains("UnknownIssuer"), "{msg}");
        assert!(
            msg.ends_with(
                "put the CA that issued the server's certificate in key \"ca.crt\" of the \
                 credentials Secret"
            ),
            "says what to fix: {msg}"
        );
    }
}

#[tokio::test]
async fn verify_full_without_a_ca_in_the_secret_says_where_to_put_it() {
    let env = TestEnv::load();
    let creds = creds(&env, env.get("POSTGRES_HOST"), "POSTGRES_TLS", None);
    let pc = unique("pc");
    let msg = config_error(&env, &pc, SslMode::VerifyFull, &creds).await;
    assert_eq!(
        msg,
        format!(
            "ProviderConfig {pc:?}: sslMode verify-full needs the certificate of the CA that \
             issued the server's certificate, in PEM, in key \"ca.crt\" of its credentials Secret"
        )
    );
}

#[tokio::test]
async fn disable_is_refused_by_a_server_that_requires_tls_for_the_user() {
    let env = TestEnv::load();
    let creds = creds(&env, env.get("POSTGRES_HOST"), "POSTGRES_TLS", None);
    let pc = unique("pc");
    let msg = config_error(&env, &pc, SslMode::Disable, &creds).await;
    assert!(
        msg.starts_with(&format!(
            "ProviderConfig {pc:?}: PostgreSQL at {}:{} requires TLS for user {} (",
            env.get("POSTGRES_HOST"),
            env.get("POSTGRES_PORT"),
            env.get("POSTGRES_TLS_USER")
        )),
        "{msg}"
    );
    assert!(msg.contains("no encryption"), "the server's reason: {msg}");
    assert!(
        msg.ends_with(
            "set spec.sslMode to verify-full and the server's CA in key \"ca.crt\" of the \
             credentials Secret"
        ),
        "says what to fix: {msg}"
    );
}

#[tokio::test]
async fn a_server_asking_for_a_cleartext_password_over_tls_is_refused_without_the_password() {
    let env = TestEnv::load();
    // The server would accept this password if it were sent (pg_hba `password`): failing
    // to log in shows that it was not.
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        let creds = creds(
            &env,
            env.get("POSTGRES_HOST"),
            "POSTGRES_CLEARTEXT",
            Some(env.get("POSTGRES_CA_FILE")),
        );
        let pc = unique("pc");
        let msg = config_error(&env, &pc, mode, &creds).await;
        assert_eq!(
            msg,
            format!(
                "ProviderConfig {pc:?}: PostgreSQL at {}:{} asked for the password of user {} \
                 in cleartext, so the login was refused and no password was sent; use \
                 scram-sha-256 for this user in pg_hba.conf and store its password as a SCRAM \
                 verifier",
                env.get("POSTGRES_HOST"),
                env.get("POSTGRES_PORT"),
                env.get("POSTGRES_CLEARTEXT_USER")
            ),
            "{}",
            mode.as_str()
        );
    }
}

#[tokio::test]
async fn a_server_admitting_the_user_without_scram_over_tls_is_refused() {
    let env = TestEnv::load();
    // pg_hba `trust` for this user: no password is asked, so nothing binds the login to
    // the TLS session and a server impersonating yours would look the same.
    for mode in [SslMode::Require, SslMode::VerifyFull] {
        let creds = creds(
            &env,
            env.get("POSTGRES_HOST"),
            "POSTGRES_TRUST",
            Some(env.get("POSTGRES_CA_FILE")),
        );
        let pc = unique("pc");
        let msg = config_error(&env, &pc, mode, &creds).await;
        assert_eq!(
            msg,
            format!(
                "ProviderConfig {pc:?}: PostgreSQL at {}:{} did not offer SCRAM-SHA-256 with \
                 channel binding for user {}, so the login was refused and no password was \
                 sent: the server asked for a cleartext or MD5 password, admitted the user \
                 without one, or offered SCRAM without channel binding; use scram-sha-256 for \
                 this user in pg_hba.conf and store its password as a SCRAM verifier",
                env.get("POSTGRES_HOST"),
                env.get("POSTGRES_PORT"),
                env.get("POSTGRES_TRUST_USER")
            ),
            "{}",
            mode.as_str()
        );
    }
}

#[tokio::test]
async fn require_logs_in_with_scram_bound_to_the_tls_session() {
    let env = TestEnv::load();
    // tessera_tls authenticates with scram-sha-256 over TLS, where PostgreSQL offers
    // SCRAM-SHA-256-PLUS; `require` insists on it (a refusal would be a Config error).
    let creds = creds(&env, env.get("POSTGRES_HOST"), "POSTGRES_TLS", None);
    let session = Session::connect(&unique("pc"), &spec(SslMode::Require), &creds)
        .await
        .expect("require with channel binding");
    assert!(!session.is_closed());
}

#[tokio::test]
async fn a_server_asking_for_a_cleartext_password_without_tls_is_refused_without_the_password() {
    let env = TestEnv::load();
    // `prefer` ends up on TLS here and `disable` in the clear; neither may answer a
    // cleartext request, and the server would accept the password if it were sent.
    for mode in [SslMode::Disable, SslMode::Prefer] {
        let creds = creds(&env, env.get("POSTGRES_HOST"), "POSTGRES_CLEARTEXT", None);
        let pc = unique("pc");
        let msg = config_error(&env, &pc, mode, &creds).await;
        assert_eq!(
            msg,
            format!(
                "ProviderConfig {pc:?}: PostgreSQL at {}:{} asked for the password of user {} \
                 in cleartext, so the login was refused and no password was sent; use \
                 scram-sha-256 for this user in pg_hba.conf and store its password as a SCRAM \
                 verifier",
                env.get("POSTGRES_HOST"),
                env.get("POSTGRES_PORT"),
                env.get("POSTGRES_CLEARTEXT_USER")
            ),
            "{}",
            mode.as_str()
        );
    }
}

#[tokio::test]
async fn disable_and_prefer_still_connect_with_scram() {
    let env = TestEnv::load();
    let creds = creds(&env, env.get("POSTGRES_HOST"), "POSTGRES", None);
    for mode in [SslMode::Disable, SslMode::Prefer] {
        let session = Session::connect(&unique("pc"), &spec(mode), &creds)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", mode.as_str()));
        assert!(!session.is_closed());
    }
}

#[tokio::test]
async fn the_connector_takes_the_ca_from_key_ca_crt_of_the_credentials_secret_and_follows_its_changes()
 {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    namespace(&client, TEST_NAMESPACE).await;
    let pc = unique("tlspc");
    let secret_name = format!("{pc}-creds");
    let secret = |ca_file: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": secret_name, "namespace": TEST_NAMESPACE },
            "stringData": {
                "endpoint": env.get("POSTGRES_HOST"),
                "port": env.get("POSTGRES_PORT"),
                "username": env.get("POSTGRES_TLS_USER"),
                "password": env.get("POSTGRES_TLS_PASSWORD"),
                "ca.crt": std::fs::read_to_string(ca_file).expect("read CA file"),
            }
        })
    };
    apply(&client, secret(env.get("POSTGRES_CA_FILE"))).await;
    apply(
        &client,
        json!({
            "apiVersion": PG_API, "kind": "ProviderConfig",
            "metadata": { "name": pc },
            "spec": {
                "credentials": { "source": "Secret",
                    "secretRef": { "name": secret_name, "namespace": TEST_NAMESPACE } },
                "sslMode": "verify-full"
            }
        }),
    )
    .await;

    let connector = Postgres::connector();
    let first = connector
        .client(&client, &pc)
        .await
        .expect("verify-full with the CA from the Secret");
    assert!(!first.session().is_closed());

    // Another CA in the Secret: once the watched Secret shows it, the next connection is
    // refused.
    apply(&client, secret(env.get("KUBE_CA_FILE"))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let msg = loop {
        match connector.client(&client, &pc).await {
            Err(ProviderError::Config(msg)) => break msg,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => panic!("want a Config error, got {:?}", other.err()),
        }
    };
    assert!(
        msg.starts_with(&format!("ProviderConfig {pc:?}: sslMode verify-full: ")),
        "{msg}"
    );
    assert!(msg.contains("UnknownIssuer"), "{msg}");

    delete(&client, PG_API, "ProviderConfig", &pc).await;
    delete_in(&client, "v1", "Secret", TEST_NAMESPACE, &secret_name).await;
}
