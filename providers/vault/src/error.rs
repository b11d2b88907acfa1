//! Turning Vault's answers into [`ProviderError`]s whose class drives the reconciler
//! (backoff, wait for a spec change, or fix the ProviderConfig) and whose message says
//! what to do. Messages carry Vault's own error text (never a request body, so never a
//! token or a secret value).

use tessera_engine::managed::ProviderError;
use vaultrs::error::ClientError;

/// A failed call to Vault.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Vault answered with an error status and its `errors` list.
    Api { code: u16, errors: Vec<String> },
    /// No answer: the server could not be reached, or the answer was not Vault's.
    Transport(String),
    /// The request was sent (or may have been) and no whole answer came back: the
    /// connection was lost or the request timed out. Vault may have carried it out.
    Unanswered(String),
}

impl CallError {
    /// The error of sending a request with reqwest: only a connection that could not be
    /// made means the request never left.
    pub(crate) fn sending(e: &reqwest::Error) -> CallError {
        let text = error_chain(e);
        if e.is_connect() {
            CallError::Transport(text)
        } else {
            CallError::Unanswered(text)
        }
    }
}

impl From<ClientError> for CallError {
    fn from(e: ClientError) -> Self {
        use rustify::errors::ClientError as Rest;
        let text = error_chain(&e);
        match e {
            ClientError::APIError { code, errors } => CallError::Api { code, errors },
            ClientError::RestClientError {
                source: Rest::RequestError { source, .. },
            } => match source.downcast_ref::<reqwest::Error>() {
                Some(e) if e.is_connect() => CallError::Transport(text),
                _ => CallError::Unanswered(text),
            },
            ClientError::RestClientError {
                source: Rest::ResponseError { .. },
            } => CallError::Unanswered(text),
            _ => CallError::Transport(text),
        }
    }
}

/// `err` and its sources, joined by ": ".
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Who was talking to Vault, for messages about the ProviderConfig.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// Name of the ProviderConfig.
    pub provider_config: String,
    /// The server's address.
    pub address: String,
}

impl Origin {
    /// Classifies an error of `action` (e.g. `write policy "app"`).
    pub(crate) fn error(&self, action: &str, err: CallError) -> ProviderError {
        let pc = &self.provider_config;
        match err {
            CallError::Api { code: 403, errors } => ProviderError::Config(format!(
                "ProviderConfig {pc:?}: Vault refused to {action}: {} (the token of the \
                 ProviderConfig needs a policy that allows it; a revoked or expired token \
                 is reported as such at the next try)",
                errors_text(&errors, "permission denied")
            )),
            CallError::Api { code, errors } if (400..500).contains(&code) => {
                ProviderError::InvalidSpec(format!(
                    "cannot {action}: Vault said: {}",
                    errors_text(&errors, &format!("status {code}"))
                ))
            }
            CallError::Api { code, errors } => ProviderError::Transient(format!(
                "cannot {action}: Vault at {} answered {code}: {}",
                self.address,
                errors_text(&errors, "no detail")
            )),
            CallError::Transport(text) => ProviderError::Transient(format!(
                "cannot {action}: Vault at {} did not answer: {text}",
                self.address
            )),
            // Vault may have carried it out: a create that ends so is looked for, not taken
            // for someone else's object (a KV secret is written before its mark).
            CallError::Unanswered(text) => ProviderError::Unanswered(format!(
                "cannot {action}: Vault at {} did not answer: {text}",
                self.address
            )),
        }
    }
}

pub(crate) fn errors_text(errors: &[String], empty: &str) -> String {
    let errors: Vec<&str> = errors
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .collect();
    if errors.is_empty() {
        empty.to_string()
    } else {
        errors.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            provider_config: "default".into(),
            address: "http://vault:8200".into(),
        }
    }

    #[test]
    fn each_answer_gets_the_class_that_says_who_must_act() {
        struct Case {
            reason: &'static str,
            err: CallError,
            want: &'static str,
            contains: &'static str,
        }
        let cases = [
            Case {
                reason: "a refused token is the ProviderConfig's to fix",
                err: CallError::Api {
                    code: 403,
                    errors: vec!["permission denied".into()],
                },
                want: "ProviderConfigError",
                contains: "ProviderConfig \"default\": Vault refused to write policy \"p\": permission denied",
            },
            Case {
                reason: "a rejected request carries Vault's own words",
                err: CallError::Api {
                    code: 400,
                    errors: vec!["failed to parse policy: At 1:42: error".into()],
                },
                want: "InvalidSpec",
                contains: "Vault said: failed to parse policy: At 1:42: error",
            },
            Case {
                reason: "a server error is retried",
                err: CallError::Api {
                    code: 503,
                    errors: vec!["Vault is sealed".into()],
                },
                want: "TransientError",
                contains: "answered 503: Vault is sealed",
            },
            Case {
                reason: "an unreachable server is retried",
                err: CallError::Transport("connection refused".into()),
                want: "TransientError",
                contains: "did not answer: connection refused",
            },
        ];
        for c in cases {
            let e = origin().error("write policy \"p\"", c.err);
            assert_eq!(e.category(), c.want, "{}", c.reason);
            assert!(e.to_string().contains(c.contains), "{}: {e}", c.reason);
        }
    }
}
