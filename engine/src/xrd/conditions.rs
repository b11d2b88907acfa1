//! The XRD's status and events as a pure function of what the controller observed.

use kube::runtime::events::EventType;

use crate::api::common::{
    Condition, condition_type, find_condition, set_condition, set_kstatus_conditions,
};
use crate::api::xrd::{
    CONDITION_CONTROLLERS_RUNNING, CONDITION_ESTABLISHED, CONDITION_OFFERED,
    CompositeResourceDefinition, CompositeResourceDefinitionControllerStatus,
    CompositeResourceDefinitionStatus,
};

/// Condition reasons of XRDs. PascalCase and stable.
pub mod reasons {
    /// Established: the composite CRD is served and its controller runs.
    pub const WATCHING_COMPOSITE: &str = "WatchingComposite";
    /// Offered: the claim CRD is served and its controller runs.
    pub const WATCHING_CLAIM: &str = "WatchingClaim";
    /// Established / Offered: the CRD is not established yet.
    pub const PENDING: &str = "Pending";
    /// Synced: deletion waits until no composite or claim of the XRD's kinds exists.
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    /// ControllersRunning: the composite and claim controllers run and never stopped.
    pub const RUNNING: &str = "Running";
    /// ControllersRunning (and the Warning event): a controller stopped unexpectedly and
    /// was (or is being) restarted.
    pub const CONTROLLER_RESTARTED: &str = "ControllerRestarted";
}

/// How one of the XRD's controllers (composite or claim) fared since it was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ControllerHealth {
    /// `composite` or `claim`.
    pub controller: &'static str,
    /// Restarts after unexpected stops.
    pub restarts: u32,
    /// Whether it runs now (false while it waits to be restarted).
    pub running: bool,
}

impl ControllerHealth {
    /// A controller that is starting.
    pub fn new(controller: &'static str) -> Self {
        ControllerHealth {
            controller,
            restarts: 0,
            running: true,
        }
    }

    /// Takes in what its supervisor reported.
    pub fn observe(&mut self, s: crate::scaffold::Supervised) {
        use crate::scaffold::Supervised;
        (self.restarts, self.running) = match s {
            Supervised::Started { restarts } => (restarts, true),
            Supervised::Stopped { restarts, .. } => (restarts, false),
        };
    }
}

/// The `ControllersRunning` condition of controllers that run (or should).
fn controllers_running(controllers: &[ControllerHealth]) -> Condition {
    let names = |hs: &[&ControllerHealth]| {
        let names: Vec<&str> = hs.iter().map(|h| h.controller).collect();
        names.join(" and ")
    };
    let all: Vec<&ControllerHealth> = controllers.iter().collect();
    let restarts: Vec<String> = controllers
        .iter()
        .filter(|h| h.restarts > 0)
        .map(|h| {
            let times = if h.restarts == 1 { "time" } else { "times" };
            format!("the {} controller {} {times}", h.controller, h.restarts)
        })
        .collect();
    let down: Vec<&ControllerHealth> = controllers.iter().filter(|h| !h.running).collect();
    let verb = |n: usize| if n == 1 { "runs" } else { "run" };
    if !down.is_empty() {
        let (was, it) = if down.len() == 1 {
            ("controller", "it")
        } else {
            ("controllers", "them")
        };
        return Condition::new(
            CONDITION_CONTROLLERS_RUNNING,
            false,
            reasons::CONTROLLER_RESTARTED,
            format!(
                "The {} {was} stopped unexpectedly and Tessera is restarting {it} with backoff (restarted so far: {}); see the controller's logs",
                names(&down),
                restarts.join(", ")
            ),
        );
    }
    let running = format!(
        "The {} controller{} {}",
        names(&all),
        if all.len() == 1 { "" } else { "s" },
        verb(all.len())
    );
    if restarts.is_empty() {
        Condition::new(
            CONDITION_CONTROLLERS_RUNNING,
            true,
            reasons::RUNNING,
            running,
        )
    } else {
        Condition::new(
            CONDITION_CONTROLLERS_RUNNING,
            true,
            reasons::CONTROLLER_RESTARTED,
            format!(
                "{running} again after unexpected stops (restarted: {}); see the controller's logs",
                restarts.join(", ")
            ),
        )
    }
}

/// One generated CRD, as the controller last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CrdState {
    /// The CRD's name.
    pub name: String,
    /// Whether the API server reports it Established.
    pub established: bool,
}

/// What one reconcile of an XRD found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    /// The XRD cannot be turned into CRDs, or the API server refused them.
    Failed {
        /// Capitalised, actionable message.
        message: String,
    },
    /// Both CRDs are applied.
    Applied {
        /// The composite CRD.
        composite: CrdState,
        /// The claim CRD, if the XRD offers a claim.
        claim: Option<CrdState>,
        /// Whether the composite and claim controllers run.
        running: bool,
        /// How they fared since they were started (empty when they do not run).
        controllers: Vec<ControllerHealth>,
    },
    /// The XRD is being deleted, but composites or claims of its kinds still exist.
    DeletionBlocked {
        /// Capitalised, actionable message.
        message: String,
    },
}

/// The XRD's next status: its current status with the conditions the observation implies.
/// Conditions carry the XRD's generation; transition times change only with the status.
pub(crate) fn next_status(
    xrd: &CompositeResourceDefinition,
    obs: &Observation,
    now: &str,
) -> CompositeResourceDefinitionStatus {
    let mut status = xrd.status.clone().unwrap_or_default();
    let generation = xrd.metadata.generation;
    let set = |conditions: &mut Vec<Condition>, c: Condition| {
        let c = Condition {
            observed_generation: generation,
            ..c
        };
        set_condition(conditions, c, now);
    };
    let conditions = &mut status.conditions;
    match obs {
        Observation::Failed { message } => {
            set(conditions, Condition::reconcile_error(message.as_str()));
            if find_condition(conditions, condition_type::READY).is_none() {
                set(
                    conditions,
                    Condition::creating().with_message(message.as_str()),
                );
            }
        }
        Observation::DeletionBlocked { message } => {
            set(
                conditions,
                Condition::deleting().with_message(message.as_str()),
            );
            set(
                conditions,
                Condition::new(
                    condition_type::SYNCED,
                    false,
                    reasons::DELETION_BLOCKED,
                    message.as_str(),
                ),
            );
        }
        Observation::Applied {
            composite,
            claim,
            running,
            controllers,
        } => {
            let spec = &xrd.spec;
            let describe = |what: &str, kind: Option<crate::api::xrd::TypeReference>| {
                kind.map(|t| {
                    format!(
                        "{what} {} ({}) is served and reconciled",
                        t.kind, t.api_version
                    )
                })
                .unwrap_or_default()
            };
            let waiting =
                |crd: &CrdState| format!("Waiting for CRD {} to be established", crd.name);
            let mut pending = None;
            let established = if composite.established && *running {
                Condition::new(
                    CONDITION_ESTABLISHED,
                    true,
                    reasons::WATCHING_COMPOSITE,
                    describe("Composite", spec.composite_type()),
                )
            } else {
                pending.get_or_insert_with(|| waiting(composite));
                Condition::new(
                    CONDITION_ESTABLISHED,
                    false,
                    reasons::PENDING,
                    waiting(composite),
                )
            };
            set(conditions, established);
            match claim {
                None => conditions.retain(|c| c.type_ != CONDITION_OFFERED),
                Some(c) if c.established && *running => set(
                    conditions,
                    Condition::new(
                        CONDITION_OFFERED,
                        true,
                        reasons::WATCHING_CLAIM,
                        describe("Claim", spec.claim_type()),
                    ),
                ),
                Some(c) => {
                    pending.get_or_insert_with(|| waiting(c));
                    set(
                        conditions,
                        Condition::new(CONDITION_OFFERED, false, reasons::PENDING, waiting(c)),
                    );
                }
            }
            set(
                conditions,
                match pending {
                    None => Condition::available(),
                    Some(message) => Condition::creating().with_message(message),
                },
            );
            set(conditions, Condition::reconcile_success());
            if !controllers.is_empty() {
                set(conditions, controllers_running(controllers));
            }
            if *running {
                status.controllers = Some(CompositeResourceDefinitionControllerStatus {
                    composite_resource_type: spec.composite_type(),
                    composite_resource_claim_type: spec.claim_type(),
                });
            }
        }
    }
    set_kstatus_conditions(&mut status.conditions, now);
    status.observed_generation = generation;
    status
}

/// The events a status change deserves: warnings when Synced turns False or its message
/// changes, and a note when Established or Offered turns True. Nothing in steady state.
pub(crate) fn transitions(
    old: &[Condition],
    new: &[Condition],
) -> Vec<(EventType, String, String)> {
    let mut events = Vec::new();
    let was = |t: &str| find_condition(old, t);
    if let Some(synced) = find_condition(new, condition_type::SYNCED)
        && !synced.is_true()
        && was(condition_type::SYNCED).is_none_or(|o| o.is_true() || o.message != synced.message)
    {
        events.push((
            EventType::Warning,
            synced.reason.clone(),
            synced.message.clone(),
        ));
    }
    for type_ in [CONDITION_ESTABLISHED, CONDITION_OFFERED] {
        if let Some(c) = find_condition(new, type_)
            && c.is_true()
            && !was(type_).is_some_and(Condition::is_true)
        {
            events.push((EventType::Normal, type_.to_string(), c.message.clone()));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn xrd(claim: bool) -> CompositeResourceDefinition {
        let mut v = json!({
            "apiVersion": "apiextensions.tessera.dev/v1",
            "kind": "CompositeResourceDefinition",
            "metadata": { "name": "xdbs.example.org", "generation": 3 },
            "spec": {
                "group": "example.org",
                "names": { "kind": "XDb", "plural": "xdbs" },
                "claimNames": { "kind": "Db", "plural": "dbs" },
                "versions": [{ "name": "v1", "served": true, "referenceable": true }],
            },
        });
        if !claim {
            v["spec"].as_object_mut().map(|s| s.remove("claimNames"));
        }
        serde_json::from_value(v).expect("test XRD")
    }

    fn crd(name: &str, established: bool) -> CrdState {
        CrdState {
            name: name.to_string(),
            established,
        }
    }

    fn summary(status: &CompositeResourceDefinitionStatus) -> Vec<(String, String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn row(t: &str, s: &str, r: &str) -> (String, String, String) {
        (t.into(), s.into(), r.into())
    }

    #[test]
    fn conditions_follow_what_the_controller_observed() {
        let cases = [
            (
                "both CRDs established and controllers running",
                true,
                Observation::Applied {
                    composite: crd("xdbs.example.org", true),
                    claim: Some(crd("dbs.example.org", true)),
                    running: true,
                    controllers: vec![],
                },
                vec![
                    row("Established", "True", "WatchingComposite"),
                    row("Offered", "True", "WatchingClaim"),
                    row("Ready", "True", "Available"),
                    row("Synced", "True", "ReconcileSuccess"),
                    row("Reconciling", "False", "Available"),
                    row("Stalled", "False", "Available"),
                ],
            ),
            (
                "claim CRD not established yet",
                true,
                Observation::Applied {
                    composite: crd("xdbs.example.org", true),
                    claim: Some(crd("dbs.example.org", false)),
                    running: false,
                    controllers: vec![],
                },
                vec![
                    row("Established", "False", "Pending"),
                    row("Offered", "False", "Pending"),
                    row("Ready", "False", "Creating"),
                    row("Synced", "True", "ReconcileSuccess"),
                    row("Reconciling", "True", "Creating"),
                    row("Stalled", "False", "Creating"),
                ],
            ),
            (
                "no claim names: no Offered condition",
                false,
                Observation::Applied {
                    composite: crd("xdbs.example.org", true),
                    claim: None,
                    running: true,
                    controllers: vec![],
                },
                vec![
                    row("Established", "True", "WatchingComposite"),
                    row("Ready", "True", "Available"),
                    row("Synced", "True", "ReconcileSuccess"),
                    row("Reconciling", "False", "Available"),
                    row("Stalled", "False", "Available"),
                ],
            ),
            (
                "invalid XRD on the first reconcile says Ready=False",
                true,
                Observation::Failed {
                    message: "Spec.group is invalid".into(),
                },
                vec![
                    row("Synced", "False", "ReconcileError"),
                    row("Ready", "False", "Creating"),
                    row("Reconciling", "False", "ReconcileError"),
                    row("Stalled", "True", "ReconcileError"),
                ],
            ),
            (
                "deletion blocked",
                true,
                Observation::DeletionBlocked {
                    message: "Cannot delete".into(),
                },
                vec![
                    row("Ready", "False", "Deleting"),
                    row("Synced", "False", "DeletionBlocked"),
                    row("Reconciling", "False", "DeletionBlocked"),
                    row("Stalled", "True", "DeletionBlocked"),
                ],
            ),
        ];
        for (reason, claim, obs, want) in cases {
            let status = next_status(&xrd(claim), &obs, "t1");
            assert_eq!(summary(&status), want, "{reason}");
            assert_eq!(status.observed_generation, Some(3), "{reason}");
            assert!(
                status
                    .conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(3)),
                "{reason}"
            );
        }
    }

    #[test]
    fn established_xrd_reports_its_kinds_and_steady_state_changes_nothing() {
        let mut x = xrd(true);
        let obs = Observation::Applied {
            composite: crd("xdbs.example.org", true),
            claim: Some(crd("dbs.example.org", true)),
            running: true,
            controllers: vec![],
        };
        let first = next_status(&x, &obs, "t1");
        let controllers = first.controllers.clone().expect("controllers");
        assert_eq!(
            controllers.composite_resource_type.map(|t| t.api_version),
            Some("example.org/v1".to_string())
        );
        assert_eq!(
            controllers.composite_resource_claim_type.map(|t| t.kind),
            Some("Db".to_string())
        );
        let established = find_condition(&first.conditions, CONDITION_ESTABLISHED).expect("set");
        assert_eq!(
            established.message,
            "Composite XDb (example.org/v1) is served and reconciled"
        );
        let events = transitions(&[], &first.conditions);
        let reasons: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(reasons, ["Established", "Offered"]);

        x.status = Some(first.clone());
        let second = next_status(&x, &obs, "t2");
        assert_eq!(second, first, "nothing changed, nothing to write");
        assert!(transitions(&first.conditions, &second.conditions).is_empty());
    }

    #[test]
    fn warnings_are_published_once_per_distinct_failure() {
        let mut x = xrd(true);
        let failed = |m: &str| Observation::Failed { message: m.into() };
        let first = next_status(&x, &failed("A is wrong"), "t1");
        assert_eq!(transitions(&[], &first.conditions).len(), 1);
        x.status = Some(first.clone());
        let same = next_status(&x, &failed("A is wrong"), "t2");
        assert!(transitions(&first.conditions, &same.conditions).is_empty());
        let other = next_status(&x, &failed("B is wrong"), "t3");
        let events = transitions(&first.conditions, &other.conditions);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].2, "B is wrong");
    }

    #[test]
    fn a_stopped_controller_sets_controllers_running_false_until_it_runs_again() {
        let mut x = xrd(true);
        let applied = |composite: ControllerHealth| Observation::Applied {
            composite: crd("xdbs.example.org", true),
            claim: Some(crd("dbs.example.org", true)),
            running: true,
            controllers: vec![composite, ControllerHealth::new("claim")],
        };
        let condition = |status: &CompositeResourceDefinitionStatus| {
            find_condition(&status.conditions, CONDITION_CONTROLLERS_RUNNING)
                .cloned()
                .expect("ControllersRunning")
        };

        let healthy = next_status(&x, &applied(ControllerHealth::new("composite")), "t1");
        let c = condition(&healthy);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Running"));
        assert_eq!(c.message, "The composite and claim controllers run");

        x.status = Some(healthy.clone());
        let mut composite = ControllerHealth::new("composite");
        composite.observe(crate::scaffold::Supervised::Stopped {
            restarts: 1,
            panicked: true,
        });
        let down = next_status(&x, &applied(composite.clone()), "t2");
        let c = condition(&down);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ControllerRestarted")
        );
        assert_eq!(
            c.message,
            "The composite controller stopped unexpectedly and Tessera is restarting it with backoff (restarted so far: the composite controller 1 time); see the controller's logs"
        );
        assert_eq!(c.last_transition_time.as_deref(), Some("t2"));
        let ready = find_condition(&down.conditions, "Ready").expect("Ready");
        assert!(ready.is_true(), "serving the CRDs is not affected");

        x.status = Some(down);
        composite.observe(crate::scaffold::Supervised::Started { restarts: 1 });
        let again = next_status(&x, &applied(composite), "t3");
        let c = condition(&again);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "ControllerRestarted")
        );
        assert_eq!(
            c.message,
            "The composite and claim controllers run again after unexpected stops (restarted: the composite controller 1 time); see the controller's logs"
        );
    }
}
