//! `tessera trace` against live claims of the shipped PostgresDatabase composition on the
//! real kube-apiserver and PostgreSQL: a Ready claim, a claim whose role is refused (a role
//! of that name already exists on the server, so the database and the grant wait on their
//! `dependsOn`), and a claim whose selector matches no Composition. The `-o tree` and
//! `-o json` outputs are compared with the golden files in `tests/golden/trace/` (ages and
//! the generated names masked); no Secret value appears in any output; `kubectl tessera
//! trace` runs it as a kubectl plugin.
//!
//! When the output changes on purpose, regenerate the golden files with
//! `UPDATE_GOLDEN=1 cargo test -p tessera-tests --test trace` and review the diff.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_engine::naming::claim_composite_name;
use tessera_tests::{
    PG_API, TestEnv, apply, condition, delete_in, events_about, install_crds,
    install_postgres_platform, namespace, repo_root, secret_data,
    start_composition_controllers_in_process, start_controller_in_process, tessera_bin, unique,
    wait_gone, wait_gone_in, wait_object, wait_object_in, yaml_docs,
};

const CLAIM_API: &str = "platform.tessera.dev/v1alpha1";

/// The (kind, name) of each of a composite's `spec.resourceRefs`.
fn refs(xr: &kube::api::DynamicObject) -> Vec<(String, String)> {
    xr.data["spec"]["resourceRefs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("kind"), s("name"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn claim(ns: &str, name: &str) -> Value {
    let mut c = yaml_docs("compositions/postgres/example-claim.yaml").remove(0);
    c["metadata"]["namespace"] = json!(ns);
    c["metadata"]["name"] = json!(name);
    c["spec"]["connectionLimit"] = json!(5);
    c["spec"]["writeConnectionSecretToRef"]["name"] = json!(format!("{name}-conn"));
    c
}

/// Runs `tessera trace ARGS` with the test cluster's kubeconfig; returns stdout, or panics
/// with stderr when it fails.
fn trace(env: &TestEnv, args: &[&str]) -> String {
    let out = Command::new(tessera_bin())
        .arg("trace")
        .args(args)
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .output()
        .expect("tessera runs");
    assert!(
        out.status.success(),
        "tessera trace {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Replaces the AGE column (between the header's AGE and the next column), which changes
/// with every run, and the generated names; then makes every gap between columns two
/// spaces wide, since the columns' widths follow the names' lengths.
fn mask_tree(text: &str, names: &[(String, String)]) -> String {
    let masked = mask_ages(text);
    let masked = mask_names(&masked, names);
    let mut out = String::new();
    for line in masked.lines() {
        let indent = line.len() - line.trim_start().len();
        out.push_str(&line[..indent]);
        let mut spaces = 0;
        for c in line[indent..].chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            out.push_str(&" ".repeat(spaces.min(2)));
            spaces = 0;
            out.push(c);
        }
        out.push('\n');
    }
    out
}

fn mask_ages(text: &str) -> String {
    let mut lines = text.lines();
    let header: Vec<char> = lines.next().expect("a header").chars().collect();
    let h: String = header.iter().collect();
    let age_at = h.find("AGE").expect("AGE column");
    let next_at = h[age_at + 3..]
        .find(|c: char| c != ' ')
        .map(|i| i + age_at + 3)
        .expect("a column after AGE");
    // Byte offsets of the ASCII header are its char offsets too.
    let mask = |line: &str, with: &str| -> String {
        let chars: Vec<char> = line.chars().collect();
        if chars.len() < next_at {
            return line.to_string();
        }
        let mut s: String = chars[..age_at].iter().collect();
        s.push_str(with);
        s.push_str("  ");
        s.extend(&chars[next_at..]);
        s
    };
    let mut out = mask(&h, "AGE") + "\n";
    for line in lines {
        let is_warning = line.trim_start_matches(['│', ' ']).starts_with("Warning ");
        out.push_str(&if is_warning {
            line.to_string()
        } else {
            mask(line, "<age>")
        });
        out.push('\n');
    }
    out
}

fn mask_names(text: &str, names: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (from, to) in names {
        text = text.replace(from.as_str(), to.as_str());
    }
    text
}

fn mask_json(text: &str, names: &[(String, String)]) -> String {
    fn ages(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("age") {
                    m.insert("age".into(), json!("<age>"));
                }
                m.values_mut().for_each(ages);
            }
            Value::Array(a) => a.iter_mut().for_each(ages),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(text).expect("trace -o json is JSON");
    ages(&mut v);
    mask_names(&serde_json::to_string_pretty(&v).unwrap(), names) + "\n"
}

fn assert_golden(name: &str, actual: &str) {
    let path: PathBuf = repo_root().join("tests/golden/trace").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).expect("golden file writes");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the output:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[tokio::test]
async fn trace_shows_ready_waiting_and_failing_claims_and_never_a_secret_value() {
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("trace")).await;

    // A role of the name the blocked claim's role will have exists already on the server:
    // the Role is refused (it is not Tessera's), the Database and Grant wait on it.
    let blocked_xr = claim_composite_name(&ns, "blocked-db");
    let pg = env.postgres().await;
    pg.batch_execute(&format!("CREATE ROLE \"{blocked_xr}\""))
        .await
        .expect("create the squatting role");

    for name in ["ready-db", "blocked-db"] {
        apply(&client, claim(&ns, name)).await;
    }
    let mut unmatched = claim(&ns, "unmatched-db");
    unmatched["spec"]["compositionSelector"] = json!({ "matchLabels": { "tier": "platinum" } });
    apply(&client, unmatched).await;

    let ready = |o: &kube::api::DynamicObject| {
        condition(o, "Ready").is_some_and(|c| c.is_true())
            && condition(o, "Synced").is_some_and(|c| c.is_true())
    };
    wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "ready-db",
        "Ready",
        ready,
    )
    .await;
    let ready_xr = claim_composite_name(&ns, "ready-db");
    // Every composed resource of the ready claim is Ready (the claim may be Ready first).
    let ready_refs = wait_object(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &ready_xr,
        Duration::from_secs(60),
        "three resourceRefs",
        |o| refs(o).len() == 3,
    )
    .await;
    let ready_refs = refs(&ready_refs);
    for (kind, name) in &ready_refs {
        wait_object(
            &client,
            PG_API,
            kind,
            name,
            Duration::from_secs(60),
            "Ready",
            ready,
        )
        .await;
    }
    wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "unmatched-db",
        "Synced=False about the selector",
        |o| condition(o, "Synced").is_some_and(|c| !c.is_true() && c.message.contains("platinum")),
    )
    .await;
    // The composite has recorded all three resources and says what it waits for.
    let blocked = wait_object(
        &client,
        CLAIM_API,
        "XPostgresDatabase",
        &blocked_xr,
        Duration::from_secs(60),
        "three resourceRefs and a Ready=False condition",
        |o| refs(o).len() == 3 && condition(o, "Ready").is_some_and(|c| !c.is_true()),
    )
    .await;
    let blocked_refs = refs(&blocked);
    let blocked_role = blocked_refs
        .iter()
        .find(|(k, _)| k == "Role")
        .map(|(_, n)| n.clone())
        .expect("a Role");
    wait_object(
        &client,
        PG_API,
        "Role",
        &blocked_role,
        Duration::from_secs(60),
        "Synced=False: not owned",
        |o| condition(o, "Synced").is_some_and(|c| c.reason == "ExternalResourceNotOwned"),
    )
    .await;
    // The Role's warning event has been recorded (events about cluster-scoped objects go
    // to the `default` namespace).
    tessera_tests::wait_for(Duration::from_secs(60), || async {
        events_about(&client, "default", &blocked_role)
            .await
            .iter()
            .any(|(_, reason, _)| reason == "ExternalResourceNotOwned")
            .then_some(())
    })
    .await
    .expect("a warning event about the refused role");
    // The Role's failure has reached the composite's and the claim's Ready messages (a
    // change that keeps them Creating is written at most every few seconds).
    wait_object_in(
        &client,
        CLAIM_API,
        "PostgresDatabase",
        &ns,
        "blocked-db",
        "the Role's failure quoted in Ready",
        |o| condition(o, "Ready").is_some_and(|c| c.message.contains("ExternalResourceNotOwned")),
    )
    .await;

    // The generated names, longest first (composed names may start with the composite's).
    let mut names: Vec<(String, String)> = Vec::new();
    for (prefix, list) in [("ready", &ready_refs), ("blocked", &blocked_refs)] {
        for (kind, name) in list {
            names.push((name.clone(), format!("<{prefix}-{}>", kind.to_lowercase())));
        }
    }
    names.push((ready_xr.clone(), "<ready-xr>".into()));
    names.push((blocked_xr.clone(), "<blocked-xr>".into()));
    names.push((
        claim_composite_name(&ns, "unmatched-db"),
        "<unmatched-xr>".into(),
    ));
    names.push((ns.clone(), "<ns>".into()));
    names.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut outputs = Vec::new();
    // Kinds are qualified with their group: other tests' XRDs define a PostgresDatabase
    // kind in groups of their own, and an unqualified name is then ambiguous.
    for claim in ["ready-db", "blocked-db", "unmatched-db"] {
        let target = format!("postgresdatabase.platform.tessera.dev/{claim}");
        let tree = trace(&env, &[&target, "-n", &ns]);
        assert_golden(&format!("{claim}.tree"), &mask_tree(&tree, &names));
        let json = trace(&env, &[&target, "-n", &ns, "-o", "json"]);
        assert_golden(&format!("{claim}.json"), &mask_json(&json, &names));
        outputs.push(tree);
        outputs.push(json);
        outputs.push(trace(&env, &[&target, "-n", &ns, "-o", "wide"]));
        outputs.push(trace(&env, &[&target, "-n", &ns, "-o", "dot"]));
    }

    // Short names, plural names with the group, a composite and a managed resource.
    let by_short = trace(&env, &["pgdb.platform.tessera.dev/ready-db", "-n", &ns]);
    assert!(by_short.contains("PostgresDatabase/ready-db"), "{by_short}");
    let xr = trace(
        &env,
        &[&format!(
            "xpostgresdatabases.platform.tessera.dev/{ready_xr}"
        )],
    );
    assert!(
        xr.lines().nth(1).unwrap().starts_with("XPostgresDatabase/"),
        "{xr}"
    );
    assert_eq!(
        xr.lines().count(),
        5,
        "the composite and its three resources:\n{xr}"
    );
    let role = trace(
        &env,
        &[&format!("role.postgresql.sql.tessera.dev/{blocked_role}")],
    );
    assert!(role.contains("ExternalResourceNotOwned"), "{role}");
    outputs.push(role);

    // Not one Secret value is in any output: the claim's Secret and the role's.
    let mut values = Vec::new();
    for (sns, sname) in [
        (ns.as_str(), "ready-db-conn".to_string()),
        ("tessera-system", format!("{ready_xr}-role")),
    ] {
        let data = secret_data(&client, sns, &sname)
            .await
            .unwrap_or_else(|| panic!("Secret {sns}/{sname}"));
        values.extend(data.into_values());
    }
    let password = values.iter().find(|v| v.len() >= 16).cloned();
    assert!(password.is_some(), "the Secrets hold a password");
    for out in &outputs {
        for v in values
            .iter()
            .filter(|v| v.len() >= 8 && !v.starts_with(&ready_xr))
        {
            assert!(!out.contains(v.as_str()), "a Secret value is in:\n{out}");
        }
    }

    // As a kubectl plugin: `kubectl tessera trace ...` runs `kubectl-tessera` from PATH.
    let dir = std::env::temp_dir().join(unique("kubectl-plugin"));
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(tessera_bin(), dir.join("kubectl-tessera")).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env.get("KUBECTL"))
        .args([
            "tessera",
            "trace",
            "postgresdatabase.platform.tessera.dev/ready-db",
            "-n",
            &ns,
        ])
        .env("PATH", path)
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .output()
        .expect("kubectl runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "kubectl tessera trace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        mask_tree(&String::from_utf8_lossy(&out.stdout), &names),
        std::fs::read_to_string(repo_root().join("tests/golden/trace/ready-db.tree")).unwrap()
    );

    // A missing object is a clear error.
    let out = Command::new(tessera_bin())
        .args([
            "trace",
            "postgresdatabase.platform.tessera.dev/nope",
            "-n",
            &ns,
        ])
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PostgresDatabase nope not found in namespace"),
        "{err}"
    );
    // Leave nothing behind that is still reconciled: later tests count the cluster's writes,
    // and the refused Role would create its role once the one in its way is dropped.
    let claims = ["ready-db", "blocked-db", "unmatched-db"];
    for claim in claims {
        delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, claim).await;
    }
    for claim in claims {
        wait_gone_in(&client, CLAIM_API, "PostgresDatabase", &ns, claim).await;
        let xr = claim_composite_name(&ns, claim);
        wait_gone(&client, CLAIM_API, "XPostgresDatabase", &xr).await;
    }
    for (kind, name) in ready_refs.iter().chain(blocked_refs.iter()) {
        wait_gone(&client, PG_API, kind, name).await;
    }
    pg.batch_execute(&format!("DROP ROLE IF EXISTS \"{blocked_xr}\""))
        .await
        .ok();
}

/// Reads the trees `tessera trace --watch` prints (each followed by an empty line) until
/// one satisfies `check`; panics after `timeout`.
fn next_tree(
    trees: &std::sync::mpsc::Receiver<String>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match trees.recv_timeout(left) {
            Ok(tree) if check(&tree) => return tree,
            Ok(tree) => seen.push(tree),
            Err(_) => panic!("no tree {what} within {timeout:?}; printed:\n{seen:#?}"),
        }
    }
}

#[tokio::test]
async fn trace_watch_prints_the_tree_again_when_the_claim_changes_and_dot_renders() {
    use std::io::BufRead;
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("install CRDs");
    install_postgres_platform(&env, &client).await;
    start_controller_in_process(&env);
    start_composition_controllers_in_process(&env);
    tessera_tests::wait_crd_established(&client, "postgresdatabases.platform.tessera.dev")
        .await
        .expect("the XRD offers the PostgresDatabase claim");
    let ns = namespace(&client, &unique("trace-watch")).await;
    let mut c = claim(&ns, "watched-db");
    c["spec"]["compositionSelector"] = json!({ "matchLabels": { "tier": "platinum" } });
    apply(&client, c).await;

    let target = "postgresdatabase.platform.tessera.dev/watched-db";
    let mut child = Command::new(tessera_bin())
        .args(["trace", target, "-n", &ns, "--watch"])
        .env("KUBECONFIG", env.get("KUBECONFIG"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tessera trace --watch runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, trees) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tree = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.is_empty() {
                if tx.send(std::mem::take(&mut tree)).is_err() {
                    break;
                }
            } else {
                tree.push_str(&line);
                tree.push('\n');
            }
        }
    });
    let wait = Duration::from_secs(90);
    let failing = next_tree(&trees, wait, "with the selector's error", |t| {
        t.contains("platinum")
    });
    assert!(failing.starts_with("NAME"), "{failing}");
    // The claim changes (its selector goes): the watch prints it Ready, with its resources.
    apply(&client, claim(&ns, "watched-db")).await;
    let ready = next_tree(&trees, wait, "of the Ready claim", |t| {
        t.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().filter(|w| *w == "True").count() == 2)
    });
    assert!(!ready.contains("platinum"), "{ready}");
    assert_eq!(
        ready.lines().count(),
        6,
        "claim, composite, three resources:\n{ready}"
    );
    child.kill().expect("stop the watch");
    child.wait().unwrap();

    // `-o dot` is a graph Graphviz renders: one node per object, an edge per parent.
    let dot = trace(&env, &[target, "-n", &ns, "-o", "dot"]);
    assert!(dot.starts_with("digraph "), "{dot}");
    let nodes = dot.lines().filter(|l| l.contains("[label=")).count();
    let edges = dot.lines().filter(|l| l.contains(" -> ")).count();
    assert_eq!((nodes, edges), (5, 4), "{dot}");
    let graphviz = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match graphviz {
        Ok(mut g) => {
            use std::io::Write;
            g.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
            let out = g.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "dot -Tsvg refused the graph: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let svg = String::from_utf8_lossy(&out.stdout);
            assert!(svg.contains("<svg"), "{svg}");
            assert_eq!(svg.matches("class=\"node\"").count(), 5, "{svg}");
            assert_eq!(svg.matches("class=\"edge\"").count(), 4, "{svg}");
            assert!(svg.contains("PostgresDatabase/watched&#45;db"), "{svg}");
        }
        // Without Graphviz (apt package graphviz), the structure above is what is checked.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("dot: {e}"),
    }

    delete_in(&client, CLAIM_API, "PostgresDatabase", &ns, "watched-db").await;
    wait_gone_in(&client, CLAIM_API, "PostgresDatabase", &ns, "watched-db").await;
}
