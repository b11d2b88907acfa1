//! kstatus' rules (sigs.k8s.io/cli-utils `pkg/kstatus/status`, which Flux's default health
//! check and `kubectl wait`-style tooling follow) for custom resources, ported to read the
//! objects the tests get from the real kube-apiserver.

use serde_json::Value;

/// What kstatus makes of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

/// kstatus' `Compute` for a custom resource: Terminating while deleted; InProgress while
/// `status.observedGeneration` differs from `metadata.generation`; InProgress with a
/// `Reconciling=True` condition, Failed with `Stalled=True`; then, for kinds without
/// these, the `Ready` condition: Current when True, InProgress when False or Unknown;
/// Current when none of this is there.
pub fn compute(obj: &Value) -> KStatus {
    if obj["metadata"]["deletionTimestamp"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        return KStatus::Terminating;
    }
    if let (Some(generation), Some(observed)) = (
        obj["metadata"]["generation"].as_i64(),
        obj["status"]["observedGeneration"].as_i64(),
    ) && generation != observed
    {
        return KStatus::InProgress;
    }
    let conditions = obj["status"]["conditions"].as_array();
    let status_of = |t: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t)
            .and_then(|c| c["status"].as_str())
    };
    for c in conditions.into_iter().flatten() {
        match (c["type"].as_str(), c["status"].as_str()) {
            (Some("Reconciling"), Some("True")) => return KStatus::InProgress,
            (Some("Stalled"), Some("True")) => return KStatus::Failed,
            _ => {}
        }
    }
    match status_of("Ready") {
        Some("True") => KStatus::Current,
        Some("False") | Some("Unknown") => KStatus::InProgress,
        _ => KStatus::Current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ported_rules_read_generation_reconciling_stalled_and_ready() {
        let obj = |gen_: i64, observed: i64, conds: Value| {
            json!({ "metadata": { "generation": gen_ },
                    "status": { "observedGeneration": observed, "conditions": conds } })
        };
        let c = |t: &str, s: &str| json!({ "type": t, "status": s });
        let cases = [
            ("no conditions", obj(2, 2, json!([])), KStatus::Current),
            ("a newer spec", obj(3, 2, json!([])), KStatus::InProgress),
            (
                "stalled wins over ready",
                obj(2, 2, json!([c("Ready", "True"), c("Stalled", "True")])),
                KStatus::Failed,
            ),
            (
                "reconciling",
                obj(2, 2, json!([c("Reconciling", "True")])),
                KStatus::InProgress,
            ),
            (
                "ready",
                obj(2, 2, json!([c("Ready", "True")])),
                KStatus::Current,
            ),
            (
                "not ready, without Stalled: in progress, never failed",
                obj(2, 2, json!([c("Ready", "False"), c("Synced", "False")])),
                KStatus::InProgress,
            ),
            (
                "false abnormal conditions fall through to Ready",
                obj(
                    2,
                    2,
                    json!([
                        c("Reconciling", "False"),
                        c("Stalled", "False"),
                        c("Ready", "True")
                    ]),
                ),
                KStatus::Current,
            ),
            (
                "deleted",
                json!({ "metadata": { "deletionTimestamp": "2026-01-01T00:00:00Z" } }),
                KStatus::Terminating,
            ),
        ];
        for (reason, o, want) in cases {
            assert_eq!(compute(&o), want, "{reason}");
        }
    }
}
