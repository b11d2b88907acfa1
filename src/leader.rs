//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager): one
//! replica runs the controllers, the others wait with none started.
//!
//! ```text
//!  standby ──(Lease free or expired)──▶ leader: controllers start, Lease renewed every ~4 s
//!     ▲  the Lease's holder is watched: a released Lease is taken at once
//!     └── a leader that loses the Lease exits (status 1) and is restarted as a standby
//!  SIGTERM: controllers finish their reconciles (bounded), the Lease is released, exit 0;
//!           a standby that had just written itself into the Lease releases it too
//! ```
//!
//! A leader that dies without releasing holds the Lease until it expires: the standby
//! takes over [`LEASE_DURATION`] after the last renewal at most, plus up to a second.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a Lease is valid after its last renewal: the longest failover after a leader
/// died without releasing it.
pub const LEASE_DURATION: u64 = 10;
/// The leader renews this long before its Lease expires (every 4 s).
const RENEW_BEFORE_EXPIRY: u64 = 6;

/// Where the Lease is and who this replica is.
pub struct Election {
    pub client: Client,
    pub namespace: String,
    pub lease: String,
    pub identity: String,
}

/// The held Lease: renewed in the background until released.
pub struct Leadership {
    /// Turns `false` when the Lease was lost.
    pub held: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Releases the Lease (clearing its holder so that a standby takes it at once).
    pub async fn release(self) {
        let Leadership { held, task } = self;
        // Closing the channel makes the manager's task release the Lease and end.
        drop(held);
        match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "failed to release the leader Lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the Lease task failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it expires by itself"),
        }
    }
}

impl Election {
    async fn manager(&self) -> anyhow::Result<LeaseManager> {
        LeaseManagerBuilder::new(self.client.clone(), &self.lease)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(LEASE_DURATION)
            .with_grace(RENEW_BEFORE_EXPIRY)
            .with_field_manager(format!("tessera-leader-election/{}", self.identity))
            .build()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "leader election: cannot use Lease {}/{}: {e}",
                    self.namespace,
                    self.lease
                )
            })
    }

    /// Releases the Lease if it names this replica although no [`Leadership`] came of it:
    /// a stop while [`Election::acquire`] had written this replica into the Lease but not
    /// yet returned would otherwise leave the standbys waiting for it to expire.
    pub async fn release_if_held(&self) {
        let released = async {
            let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
            let holder = api
                .get_opt(&self.lease)
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity);
            if holder.as_deref() != Some(self.identity.as_str()) {
                return anyhow::Ok(false);
            }
            // Cleared only while it still names this replica.
            self.manager().await?.release().await?;
            anyhow::Ok(true)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), released).await {
            Ok(Ok(true)) => tracing::info!("released the leader Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "failed to release the leader Lease"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it expires by itself"),
        }
    }

    /// Waits until this replica holds the Lease. A Lease released by its holder is taken
    /// as soon as the watch reports it, not only when the standby's next check is due.
    pub async fn acquire(&self) -> anyhow::Result<Leadership> {
        tracing::info!(lease = %self.lease, namespace = %self.namespace, identity = %self.identity, "waiting to become the leader");
        let (released_tx, mut released) = watch::channel(());
        let watch_task = tokio::spawn(watch_releases(
            Api::namespaced(self.client.clone(), &self.namespace),
            self.lease.clone(),
            released_tx,
        ));
        let result = loop {
            let manager = match self.manager().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "retrying in 2 s");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
            };
            released.borrow_and_update();
            tokio::select! {
                changed = manager.changed() => match changed {
                    Ok(true) => {
                        let (held, task) = manager.watch().await;
                        break Ok(Leadership { held, task });
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election failed; retrying in 2 s");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                },
                // A standby holds nothing: dropping its manager and starting a fresh one
                // reads the Lease again at once.
                _ = released.changed() => {}
            }
        };
        watch_task.abort();
        result
    }
}

/// Signals `released` whenever the Lease `name` has no holder.
async fn watch_releases(api: Api<Lease>, name: String, released: watch::Sender<()>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config).default_backoff().applied_objects();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        if let Ok(lease) = event {
            let holder = lease.spec.and_then(|s| s.holder_identity);
            if holder.is_none_or(|h| h.is_empty()) {
                released.send_replace(());
            }
        }
    }
}

/// This replica's identity: `POD_NAME`, else the hostname and the process id.
pub fn identity() -> String {
    if let Some(pod) = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()) {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tessera".into());
    format!("{host}-{}", std::process::id())
}
