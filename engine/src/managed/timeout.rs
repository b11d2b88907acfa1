//! Every external call under a deadline: a provider call that never answers (a server
//! that accepts connections but hangs) becomes a transient error instead of a reconcile
//! that never ends, holding its per-ProviderConfig permit and its worker forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::api::common::ConnectionDetails;
use crate::managed::{CreateIdentity, ExternalClient, Observation, ProviderError};

/// The limit of one external call, and what messages call the external system.
#[derive(Clone, Debug)]
pub struct Deadline {
    /// How long one call may take.
    pub timeout: Duration,
    /// The external system ("PostgreSQL").
    pub system: String,
    /// The ProviderConfig the call goes through.
    pub provider_config: String,
}

impl Deadline {
    /// Runs `call` (the operation `operation`, e.g. "observe"); past the timeout it is
    /// dropped and the result is a [`ProviderError::Unanswered`] (it may have taken effect)
    /// naming the operation, the external system and the ProviderConfig.
    pub async fn run<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = std::time::Instant::now();
        let (result, outcome) = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => {
                let outcome = result
                    .as_ref()
                    .map_or_else(ProviderError::category, |_| "ok");
                (result, outcome)
            }
            Err(_) => (
                Err(ProviderError::Unanswered(format!(
                    "{operation} timed out after {:?}: {} (ProviderConfig {:?}) did not answer",
                    self.timeout, self.system, self.provider_config
                ))),
                "Timeout",
            ),
        };
        crate::metrics::external_call(&self.system, operation, outcome, started.elapsed());
        result
    }
}

/// An [`ExternalClient`] whose every call runs under a [`Deadline`].
pub struct TimedClient<M> {
    inner: Arc<dyn ExternalClient<M>>,
    deadline: Deadline,
}

impl<M> TimedClient<M> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ExternalClient<M>>, deadline: Deadline) -> Self {
        TimedClient { inner, deadline }
    }
}

#[async_trait]
impl<M: Send + Sync> ExternalClient<M> for TimedClient<M> {
    fn create_identity(&self) -> CreateIdentity {
        self.inner.create_identity()
    }
    fn marks_ownership(&self) -> bool {
        self.inner.marks_ownership()
    }
    fn connection_secret_type(&self) -> Option<&'static str> {
        self.inner.connection_secret_type()
    }
    async fn mark(&self, mr: &M) -> Result<(), ProviderError> {
        self.deadline.run("mark", self.inner.mark(mr)).await
    }
    async fn observe(&self, mr: &mut M) -> Result<Observation, ProviderError> {
        self.deadline.run("observe", self.inner.observe(mr)).await
    }
    async fn create(&self, mr: &mut M) -> Result<ConnectionDetails, ProviderError> {
        self.deadline.run("create", self.inner.create(mr)).await
    }
    async fn update(&self, mr: &mut M) -> Result<ConnectionDetails, ProviderError> {
        self.deadline.run("update", self.inner.update(mr)).await
    }
    async fn delete(&self, mr: &M) -> Result<(), ProviderError> {
        self.deadline.run("delete", self.inner.delete(mr)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hung;

    #[async_trait]
    impl ExternalClient<()> for Hung {
        async fn observe(&self, _: &mut ()) -> Result<Observation, ProviderError> {
            std::future::pending().await
        }
        async fn create(&self, _: &mut ()) -> Result<ConnectionDetails, ProviderError> {
            std::future::pending().await
        }
        async fn update(&self, _: &mut ()) -> Result<ConnectionDetails, ProviderError> {
            Ok(ConnectionDetails::new())
        }
        async fn delete(&self, _: &()) -> Result<(), ProviderError> {
            std::future::pending().await
        }
    }

    fn timed() -> TimedClient<()> {
        TimedClient::new(
            Arc::new(Hung),
            Deadline {
                timeout: Duration::from_millis(20),
                system: "PostgreSQL".into(),
                provider_config: "default".into(),
            },
        )
    }

    #[tokio::test]
    async fn a_call_that_never_answers_becomes_an_unanswered_error_naming_operation_and_system() {
        match timed().observe(&mut ()).await {
            Err(ProviderError::Unanswered(msg)) => assert_eq!(
                msg,
                "observe timed out after 20ms: PostgreSQL (ProviderConfig \"default\") did not answer"
            ),
            other => panic!("want Unanswered, got {other:?}"),
        }
        for (operation, result) in [
            ("create", timed().create(&mut ()).await.map(|_| ())),
            ("delete", timed().delete(&()).await),
        ] {
            let msg = result.expect_err(operation).to_string();
            assert!(msg.starts_with(&format!("{operation} timed out")), "{msg}");
        }
    }

    #[test]
    fn the_deadline_keeps_the_create_identity_the_kind_declared() {
        let mut fake =
            crate::testing::ExternalClientFns::<()>::new(Box::new(
                |_, _| Ok(Observation::absent()),
            ));
        fake.create_identity = CreateIdentity::Deterministic;
        let wrapped = TimedClient::new(Arc::new(fake), timed().deadline);
        assert_eq!(wrapped.create_identity(), CreateIdentity::Deterministic);
        // A client that declares nothing gets the safe default.
        assert_eq!(
            timed().create_identity(),
            CreateIdentity::AssignedByExternalSystem
        );
    }

    #[tokio::test]
    async fn a_call_that_answers_in_time_returns_its_own_result() {
        assert!(timed().update(&mut ()).await.is_ok());
    }
}
