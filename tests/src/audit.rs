//! Evidence for the secrets audit (`tests/tests/secret_audit.rs`, the last step of
//! `scripts/test`): every password and token the tests create or read is recorded under the
//! testenv state dir, and every controller the tests run logs into a file there; the audit
//! then searches those logs, every Event and every object's status for every recorded value.
//!
//! - `$STATE/audit/secrets/<pid>`: one recorded value per line, as a JSON string;
//! - `$STATE/audit/logs/`: the logs of `tessera controller` processes and of the
//!   in-process controllers.

use std::io::Write;
use std::path::PathBuf;

/// Values shorter than this are not recorded: a 4-character "password" would match by
/// chance (and no generated one is that short).
pub const MIN_SECRET_LEN: usize = 8;

/// Keys of Secrets and env-file entries whose values are secret (`password`,
/// `POSTGRES_PASSWORD`, `token`, `AWS_SECRET_ACCESS_KEY`, `.dockerconfigjson`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "token", "secret", "dockerconfigjson"]
        .iter()
        .any(|s| k.contains(s))
        && !k.ends_with("_file")
}

/// The state dir of the running testenv.
pub fn state_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("TESSERA_TESTENV_DIR").unwrap_or_else(|_| "/tmp/tessera-testenv".into()),
    )
}

/// Where controller logs go; created on first use.
pub fn log_dir() -> PathBuf {
    let dir = state_dir().join("audit/logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Where recorded secret values go; created on first use.
pub fn secrets_dir() -> PathBuf {
    let dir = state_dir().join("audit/secrets");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Records secret values (those of at least [`MIN_SECRET_LEN`] bytes) for the audit.
pub fn record_secrets<'a>(values: impl IntoIterator<Item = &'a str>) {
    let mut lines = String::new();
    for v in values.into_iter().filter(|v| v.len() >= MIN_SECRET_LEN) {
        lines.push_str(&serde_json::Value::from(v).to_string());
        lines.push('\n');
    }
    if lines.is_empty() {
        return;
    }
    let path = secrets_dir().join(std::process::id().to_string());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all(lines.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Every value recorded so far, by every test process.
pub fn recorded_secrets() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(secrets_dir()) else {
        return out;
    };
    for entry in dir.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<String>(l).ok()),
        );
    }
    out.sort();
    out.dedup();
    out
}
