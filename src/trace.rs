//! `tessera trace KIND/NAME`: the tree of a claim, its composite and the composite's
//! composed resources, read from the cluster of the current kubeconfig, each with its
//! Ready and Synced conditions, external name, age, the keys of its connection Secret
//! (never the values) and, when it is failing, its last Warning event.
//!
//! Also installed as `kubectl-tessera`, so `kubectl tessera trace ...` works as a kubectl
//! plugin.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use k8s_openapi::api::core::v1::{Event, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::Value;

/// How deep the tree may go and how many children a node may have: a bound on what a
/// malformed or hostile object can make the command read.
const MAX_DEPTH: usize = 6;
const MAX_CHILDREN: usize = 200;
/// The longest one reading of the whole tree may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const EXTERNAL_NAME: &str = "tessera.dev/external-name";

#[derive(clap::Args)]
pub struct TraceArgs {
    /// What to trace: `KIND/NAME`, where KIND is a kind, its plural, singular or short name,
    /// optionally followed by `.GROUP` (e.g. `postgresdatabase/orders-db`,
    /// `xpostgresdatabases.platform.tessera.dev/orders-db-1234`, `role/app`).
    target: String,
    /// Namespace of a namespaced object (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Tree)]
    output: Output,
    /// Keep watching: print the tree again whenever it changes.
    #[arg(short = 'w', long)]
    watch: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Name, Synced, Ready, age and status of each node, and a failing node's last warning.
    Tree,
    /// The tree plus external names and connection Secrets with their keys.
    Wide,
    /// The tree as JSON.
    Json,
    /// The tree as a Graphviz digraph (`| dot -Tsvg > tree.svg`).
    Dot,
}

/// One object of the tree.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    api_version: String,
    kind: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<Cond>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synced: Option<Cond>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_name: Option<String>,
    /// How long ago the object was created, e.g. `3m12s`; `-` when it does not exist.
    age: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_secret: Option<SecretKeys>,
    /// The last Warning event about a node that is not Ready or not Synced.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_warning: Option<Warning>,
    /// Why the object could not be read (e.g. it does not exist yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    children: Vec<Node>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cond {
    status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SecretKeys {
    namespace: String,
    name: String,
    /// The Secret's keys, sorted; absent when the Secret does not exist (yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Warning {
    reason: String,
    message: String,
}

impl Node {
    fn failing(&self) -> bool {
        let bad = |c: &Option<Cond>| c.as_ref().is_some_and(|c| c.status != "True");
        bad(&self.ready) || bad(&self.synced) || self.error.is_some()
    }
}

pub fn run(args: TraceArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(trace(args))
}

async fn trace(args: TraceArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client from the kubeconfig")?;
    let (kind, name) = args
        .target
        .split_once('/')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .with_context(|| format!("`{}` is not KIND/NAME", args.target))?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut tracer = Tracer {
        client,
        kinds: HashMap::new(),
    };
    let gvk = tokio::time::timeout(READ_TIMEOUT, resolve_kind(&tracer.client, kind))
        .await
        .context("timed out resolving the kind")??;
    let mut last = None;
    loop {
        let tree = tokio::time::timeout(READ_TIMEOUT, tracer.node(&gvk, Some(&ns), name, 0))
            .await
            .context("timed out reading the tree")??;
        if !args.watch {
            print!("{}", render(&tree, args.output)?);
            return Ok(());
        }
        // Ages change every second; only a change of anything else prints again.
        let fingerprint = serde_json::to_string(&without_ages(tree.clone()))?;
        if last.as_ref() != Some(&fingerprint) {
            print!("{}", render(&tree, args.output)?);
            println!();
            last = Some(fingerprint);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn without_ages(mut n: Node) -> Node {
    n.age.clear();
    n.children = n.children.into_iter().map(without_ages).collect();
    n
}

/// Finds the kind `KIND[.GROUP]` among the cluster's CustomResourceDefinitions by kind,
/// plural, singular or short name; every kind Tessera defines or generates is one.
async fn resolve_kind(client: &Client, spec: &str) -> anyhow::Result<GroupVersionKind> {
    let spec = spec.to_ascii_lowercase();
    let (word, group) = match spec.split_once('.') {
        Some((w, g)) => (w.to_string(), Some(g.to_string())),
        None => (spec.clone(), None),
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let list = crds
        .list(&ListParams::default())
        .await
        .context("cannot list CustomResourceDefinitions")?;
    let mut found = Vec::new();
    for crd in list.items {
        let names = &crd.spec.names;
        let mut candidates = vec![names.kind.to_ascii_lowercase(), names.plural.clone()];
        candidates.extend(names.singular.clone());
        candidates.extend(names.short_names.clone().unwrap_or_default());
        if !candidates.contains(&word) || group.as_ref().is_some_and(|g| *g != crd.spec.group) {
            continue;
        }
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage && v.served)
            .or_else(|| crd.spec.versions.iter().find(|v| v.served))
            .with_context(|| format!("{} serves no version", names.plural))?;
        found.push(GroupVersionKind::gvk(
            &crd.spec.group,
            &version.name,
            &names.kind,
        ));
    }
    match found.len() {
        0 => bail!(
            "no custom resource kind `{spec}` in the cluster (use its kind, plural, singular or short name, optionally with `.GROUP`)"
        ),
        1 => Ok(found.remove(0)),
        _ => {
            let options: Vec<String> = found
                .iter()
                .map(|g| format!("{}.{}", g.kind.to_ascii_lowercase(), g.group))
                .collect();
            bail!(
                "`{spec}` is ambiguous; name the group: {}",
                options.join(", ")
            )
        }
    }
}

struct Tracer {
    client: Client,
    kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

impl Tracer {
    async fn kind(
        &mut self,
        gvk: &GroupVersionKind,
    ) -> anyhow::Result<(ApiResource, ApiCapabilities)> {
        if let Some(k) = self.kinds.get(gvk) {
            return Ok(k.clone());
        }
        let k = kube::discovery::pinned_kind(&self.client, gvk)
            .await
            .with_context(|| format!("the API server does not serve {}", gvk.kind))?;
        self.kinds.insert(gvk.clone(), k.clone());
        Ok(k)
    }

    async fn node(
        &mut self,
        gvk: &GroupVersionKind,
        ns: Option<&str>,
        name: &str,
        depth: usize,
    ) -> anyhow::Result<Node> {
        let api_version = if gvk.group.is_empty() {
            gvk.version.clone()
        } else {
            format!("{}/{}", gvk.group, gvk.version)
        };
        let mut node = Node {
            api_version,
            kind: gvk.kind.clone(),
            name: name.to_string(),
            namespace: None,
            ready: None,
            synced: None,
            external_name: None,
            age: "-".to_string(),
            connection_secret: None,
            last_warning: None,
            error: None,
            children: Vec::new(),
        };
        let (ar, caps) = match self.kind(gvk).await {
            Ok(k) => k,
            Err(e) if depth > 0 => {
                node.error = Some(format!("{e:#}"));
                return Ok(node);
            }
            Err(e) => return Err(e),
        };
        let api: Api<DynamicObject> = match (&caps.scope, ns) {
            (Scope::Namespaced, Some(ns)) => {
                node.namespace = Some(ns.to_string());
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            _ => Api::all_with(self.client.clone(), &ar),
        };
        let obj = match api.get_opt(name).await {
            Ok(Some(o)) => o,
            Ok(None) if depth == 0 => {
                let place = node
                    .namespace
                    .as_ref()
                    .map(|n| format!(" in namespace {n}"))
                    .unwrap_or_default();
                bail!("{} {name} not found{place}", gvk.kind)
            }
            Ok(None) => {
                node.error = Some("not created yet (or deleted)".to_string());
                return Ok(node);
            }
            Err(e) if depth > 0 => {
                node.error = Some(e.to_string());
                return Ok(node);
            }
            Err(e) => return Err(e).context(format!("cannot read {} {name}", gvk.kind)),
        };
        self.fill(&mut node, &obj).await;
        if depth >= MAX_DEPTH {
            return Ok(node);
        }
        for (child_gvk, child_ns, child_name) in child_refs(&obj, ns) {
            let child =
                Box::pin(self.node(&child_gvk, child_ns.as_deref(), &child_name, depth + 1))
                    .await?;
            node.children.push(child);
        }
        Ok(node)
    }

    async fn fill(&mut self, node: &mut Node, obj: &DynamicObject) {
        let data = &obj.data;
        node.ready = condition(data, "Ready");
        node.synced = condition(data, "Synced");
        node.external_name = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXTERNAL_NAME))
            .cloned();
        if let Some(t) = &obj.metadata.creation_timestamp {
            let secs = (k8s_openapi::jiff::Timestamp::now().as_second() - t.0.as_second()).max(0);
            node.age = age(secs as u64);
        }
        if let Some(r) = data["spec"]["writeConnectionSecretToRef"].as_object()
            && let Some(name) = r.get("name").and_then(Value::as_str)
        {
            let ns = r
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| obj.metadata.namespace.clone())
                .unwrap_or_default();
            let keys = if ns.is_empty() {
                None
            } else {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                // Only the keys are kept: the values are dropped right here.
                secrets.get_opt(name).await.ok().flatten().map(|s| {
                    let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
                    keys.sort();
                    keys
                })
            };
            node.connection_secret = Some(SecretKeys {
                namespace: ns,
                name: name.to_string(),
                keys,
            });
        }
        if node.failing()
            && let Some(uid) = &obj.metadata.uid
        {
            node.last_warning = self.last_warning(uid).await;
        }
    }

    async fn last_warning(&self, uid: &str) -> Option<Warning> {
        let events: Api<Event> = Api::all(self.client.clone());
        let lp = ListParams::default()
            .fields(&format!("involvedObject.uid={uid},type=Warning"))
            .limit(500);
        let list = events.list(&lp).await.ok()?;
        let when = |e: &Event| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
                .or(e.last_timestamp.as_ref().map(|t| t.0))
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        };
        let e = list.items.into_iter().max_by_key(when)?;
        Some(Warning {
            reason: e.reason.unwrap_or_default(),
            message: one_line(&e.message.unwrap_or_default()),
        })
    }
}

/// The objects below `obj`: a claim's composite (`status.resourceRef`) and a composite's
/// composed resources (`spec.resourceRefs`).
fn child_refs(
    obj: &DynamicObject,
    ns: Option<&str>,
) -> Vec<(GroupVersionKind, Option<String>, String)> {
    let data = &obj.data;
    let mut refs: Vec<&Value> = Vec::new();
    if data["status"]["resourceRef"].is_object() {
        refs.push(&data["status"]["resourceRef"]);
    } else if data["spec"]["resourceRef"].is_object() {
        refs.push(&data["spec"]["resourceRef"]);
    }
    if let Some(list) = data["spec"]["resourceRefs"].as_array() {
        refs.extend(list.iter().take(MAX_CHILDREN));
    }
    refs.into_iter()
        .filter_map(|r| {
            let api_version = r["apiVersion"].as_str()?;
            let kind = r["kind"].as_str()?;
            let name = r["name"].as_str()?;
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let child_ns = r["namespace"]
                .as_str()
                .map(str::to_string)
                .or(obj.metadata.namespace.clone())
                .or(ns.map(str::to_string));
            Some((
                GroupVersionKind::gvk(group, version, kind),
                child_ns,
                name.to_string(),
            ))
        })
        .collect()
}

fn condition(data: &Value, type_: &str) -> Option<Cond> {
    let c = data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some(Cond {
        status: s("status"),
        reason: s("reason"),
        message: one_line(&s("message")),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An age the way kubectl prints it: `45s`, `3m12s`, `5h3m`, `2d4h`.
fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match secs {
        0..120 => format!("{secs}s"),
        120..600 => format!("{m}m{s}s"),
        600..3600 => format!("{m}m"),
        3600..86400 => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

pub fn render(tree: &Node, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(tree)? + "\n",
        Output::Dot => dot(tree),
        Output::Tree => table(tree, false),
        Output::Wide => table(tree, true),
    })
}

fn status_text(n: &Node) -> String {
    if let Some(e) = &n.error {
        return e.clone();
    }
    // The condition that explains the state: a failing one first, Synced before Ready.
    let pick = [&n.synced, &n.ready]
        .into_iter()
        .flatten()
        .find(|c| c.status != "True")
        .or(n.ready.as_ref())
        .or(n.synced.as_ref());
    match pick {
        Some(c) if c.message.is_empty() => c.reason.clone(),
        Some(c) => format!("{}: {}", c.reason, c.message),
        None => String::new(),
    }
}

fn table(tree: &Node, wide: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["NAME", "SYNCED", "READY", "AGE"];
    if wide {
        header.extend(["EXTERNAL-NAME", "CONNECTION-SECRET"]);
    }
    header.push("STATUS");
    rows.push(header.into_iter().map(str::to_string).collect());
    let mut warnings: Vec<(usize, String)> = Vec::new();
    walk(tree, "", "", &mut |n, prefix, cont| {
        let cond = |c: &Option<Cond>| c.as_ref().map_or("-".to_string(), |c| c.status.clone());
        let mut name = format!("{prefix}{}/{}", n.kind, n.name);
        if let Some(ns) = n.namespace.as_ref().filter(|_| prefix.is_empty()) {
            name = format!("{name} (namespace {ns})");
        }
        let mut row = vec![name, cond(&n.synced), cond(&n.ready), n.age.clone()];
        if wide {
            row.push(n.external_name.clone().unwrap_or_else(|| "-".to_string()));
            row.push(n.connection_secret.as_ref().map_or("-".to_string(), |s| {
                let keys = s
                    .keys
                    .as_ref()
                    .map_or("(not found)".to_string(), |k| k.join(","));
                format!("{}/{} [{keys}]", s.namespace, s.name)
            }));
        }
        row.push(status_text(n));
        rows.push(row);
        if let Some(w) = &n.last_warning {
            warnings.push((
                rows.len(),
                format!("{cont}  Warning {}: {}", w.reason, w.message),
            ));
        }
    });
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, cell) in row.iter().enumerate() {
            if j + 1 == cols {
                line.push_str(cell);
            } else {
                let pad = widths[j] - cell.chars().count();
                let _ = write!(line, "{cell}{}   ", " ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for (_, w) in warnings.iter().filter(|(at, _)| *at == i + 1) {
            out.push_str(w.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Visits the tree depth first with the box-drawing prefix of each node's line and the
/// prefix that continues below it.
fn walk(n: &Node, prefix: &str, cont: &str, f: &mut dyn FnMut(&Node, &str, &str)) {
    f(n, prefix, cont);
    let last = n.children.len().saturating_sub(1);
    for (i, c) in n.children.iter().enumerate() {
        let (p, next) = if i == last {
            (format!("{cont}└─ "), format!("{cont}   "))
        } else {
            (format!("{cont}├─ "), format!("{cont}│  "))
        };
        walk(c, &p, &next, f);
    }
}

fn dot(tree: &Node) -> String {
    fn quote(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
    fn visit(n: &Node, id: &mut usize, out: &mut String) -> usize {
        let me = *id;
        *id += 1;
        let cond = |c: &Option<Cond>| c.as_ref().map_or("-".to_string(), |c| c.status.clone());
        let mut label = format!(
            "{}/{}\\nSynced={} Ready={}",
            n.kind,
            n.name,
            cond(&n.synced),
            cond(&n.ready)
        );
        let status = status_text(n);
        if n.failing() && !status.is_empty() {
            let short: String = status.chars().take(80).collect();
            label = format!("{label}\\n{short}");
        }
        let color = if n.failing() {
            "red"
        } else if n.ready.as_ref().is_some_and(|c| c.status == "True") {
            "darkgreen"
        } else {
            "gray40"
        };
        // The label keeps its `\n` line breaks; everything else is escaped.
        let escaped = quote(&label).replace("\\\\n", "\\n");
        let _ = writeln!(out, "  n{me} [label={escaped}, color={color}];");
        for c in &n.children {
            let child = visit(c, id, out);
            let _ = writeln!(out, "  n{me} -> n{child};");
        }
        me
    }
    let mut out = String::from("digraph tessera {\n  node [shape=box];\n");
    visit(tree, &mut 0, &mut out);
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectls() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(192), "3m12s");
        assert_eq!(age(1800), "30m");
        assert_eq!(age(3 * 3600 + 120), "3h2m");
        assert_eq!(age(2 * 86400 + 3600), "2d1h");
    }

    #[test]
    fn dot_escapes_quotes_in_messages() {
        let n = Node {
            api_version: "v1".into(),
            kind: "Role".into(),
            name: "a\"b".into(),
            namespace: None,
            ready: Some(Cond {
                status: "False".into(),
                reason: "X".into(),
                message: "say \"no\"".into(),
            }),
            synced: None,
            external_name: None,
            age: "1s".into(),
            connection_secret: None,
            last_warning: None,
            error: None,
            children: vec![],
        };
        let d = dot(&n);
        assert!(
            d.contains(r#"Role/a\"b\nSynced=- Ready=False\nX: say \"no\""#),
            "{d}"
        );
    }
}
