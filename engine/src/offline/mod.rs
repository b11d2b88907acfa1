//! Offline tools for platform teams' CI: `tessera render` and `tessera validate`. No
//! cluster, no network: files in, text out.
//!
//! ```text
//!  claim.yaml ──claim_to_composite──▶ XR ──compose::render──▶ composed resources ─┐
//!  composition.yaml, xrd.yaml ────────────────────────────────────────────────────┤ render
//!  observed/*.yaml ──compose::observe──▶ XR status, readiness, secret keys ───────┘
//!
//!  files/dirs ──documents──▶ catalog (CRDs, XRDs ──xrd::crd──▶ CRDs) ──schema──▶ problems  validate
//! ```
//!
//! Both use the controllers' own code: [`crate::claim::claim_to_composite`],
//! [`crate::compose::render()`] and [`crate::compose::observe()`] for rendering, and the
//! CRDs the XRD controller generates ([`crate::xrd::crd`]) for schemas. What they report
//! is a [`Problem`]: `file:line: resource: message`.

mod catalog;
mod composition;
pub mod documents;
mod observed;
mod produced;
pub mod render;
pub mod schema;
pub mod validate;

use std::fmt;

pub use catalog::{Catalog, Found, KindInfo};
pub use documents::{Document, parse_documents, read_paths};
pub use render::{RenderInput, render};
pub use validate::{Report, not_composable, validate};

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Probably a mistake, but the objects work as written.
    Warning,
    /// The objects do not work as written (the API server refuses them, or composing fails
    /// or produces something other than intended).
    Error,
}

/// A problem found in a file: `file:line: resource: message` (a warning's message starts
/// with `warning: `). Never contains secret values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problem {
    /// The file, as given or found.
    pub file: String,
    /// The line of the YAML document the problem is in, when known.
    pub line: Option<usize>,
    /// The object and the place in it, e.g.
    /// `Composition/postgres-shared resources[1] 'database' patch 2`; empty for problems of
    /// the file itself.
    pub resource: String,
    /// What is wrong.
    pub message: String,
    /// How bad it is.
    pub severity: Severity,
}

impl Problem {
    /// An error.
    pub fn error(
        file: &str,
        line: Option<usize>,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            file: file.to_string(),
            line,
            resource: resource.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// The same problem as a warning.
    pub fn warning(self) -> Self {
        Problem {
            severity: Severity::Warning,
            ..self
        }
    }

    /// Whether it is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.resource.is_empty() {
            write!(f, ": {}", self.resource)?;
        }
        if self.severity == Severity::Warning {
            write!(f, ": warning")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Several problems, one per line; what `tessera render` fails with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems(vec![p])
    }
}
