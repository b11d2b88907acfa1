//! What a Composition may make the controller create: the platform's allow-list of API
//! groups and kinds (`tessera controller --composable-resources`).
//!
//! The composite controller applies composed resources with its own credentials, which
//! reach far beyond what a claim's author or a Composition's author may do themselves.
//! Without a limit, whoever can write a Composition could have the controller create a
//! `ClusterRoleBinding` to `cluster-admin`. Every rendered resource is checked against this
//! list before anything of its composite is applied.
//!
//! # Syntax
//! A comma-separated list of entries:
//!
//! | entry | allows |
//! |---|---|
//! | `postgresql.sql.tessera.dev` or `postgresql.sql.tessera.dev/*` | every kind of that API group |
//! | `rbac.authorization.k8s.io/ClusterRoleBinding` | one kind of that group |
//! | `core/Secret` (or `v1/Secret`) | one kind of the core API group (apiVersion `v1`) |
//! | `default` | the default list: the enabled providers' groups, `core/Secret`, `core/ConfigMap` |
//! | `*` | anything (no check) |
//!
//! Neither `core` nor `v1` can name another group: a CRD's group must contain a dot, and no
//! built-in group has either name. Versions are not part of an entry: every version of an
//! allowed kind is allowed.

use std::fmt;
use std::str::FromStr;

/// One entry of the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// Anything.
    Any,
    /// Every kind of an API group (`""` is the core group).
    Group(String),
    /// One kind of an API group.
    Kind { group: String, kind: String },
}

/// The API groups and kinds Compositions may compose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposableResources {
    rules: Vec<Rule>,
}

/// Core kinds every default list allows: what compositions commonly write beside managed
/// resources, and nothing that grants permissions.
const DEFAULT_CORE_KINDS: [&str; 2] = ["Secret", "ConfigMap"];

impl Default for ComposableResources {
    /// `core/Secret` and `core/ConfigMap` only: with no provider enabled, nothing else.
    fn default() -> Self {
        ComposableResources::defaults(std::iter::empty::<String>())
    }
}

/// Why a `--composable-resources` value cannot be used. Messages are lower-case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An empty entry (e.g. two commas in a row).
    #[error("empty entry in the composable resources list")]
    Empty,
    /// An entry with more than one `/`.
    #[error("{entry:?}: write GROUP/KIND without the version, e.g. apps/Deployment or core/Secret")]
    WithVersion {
        /// The entry as given.
        entry: String,
    },
    /// A group or kind with characters no group or kind has.
    #[error("{entry:?}: {part:?} is not an API group or kind name")]
    BadName {
        /// The entry as given.
        entry: String,
        /// The offending part.
        part: String,
    },
}

impl ComposableResources {
    /// The default list: every kind of `groups` (the enabled providers' API groups), plus
    /// `core/Secret` and `core/ConfigMap`.
    pub fn defaults<S: Into<String>>(groups: impl IntoIterator<Item = S>) -> Self {
        let mut rules: Vec<Rule> = groups.into_iter().map(|g| Rule::Group(g.into())).collect();
        rules.extend(DEFAULT_CORE_KINDS.iter().map(|k| Rule::Kind {
            group: String::new(),
            kind: (*k).to_string(),
        }));
        ComposableResources { rules }.deduplicated()
    }

    /// Everything: no check at all.
    pub fn any() -> Self {
        ComposableResources {
            rules: vec![Rule::Any],
        }
    }

    /// Parses a comma-separated list (see the module docs); `default` stands for
    /// `defaults(provider_groups)`.
    pub fn parse<S: Into<String>>(
        list: &str,
        provider_groups: impl IntoIterator<Item = S> + Clone,
    ) -> Result<Self, ParseError> {
        let mut rules = Vec::new();
        for entry in list.split(',').map(str::trim) {
            match entry {
                "" => return Err(ParseError::Empty),
                "default" => {
                    rules.extend(ComposableResources::defaults(provider_groups.clone()).rules)
                }
                "*" => rules.push(Rule::Any),
                _ => rules.push(parse_entry(entry)?),
            }
        }
        Ok(ComposableResources { rules }.deduplicated())
    }

    /// Whether a resource of `api_version` (`group/version`, or `v1` for the core group)
    /// and `kind` may be composed.
    pub fn allows(&self, api_version: &str, kind: &str) -> bool {
        let group = match api_version.split_once('/') {
            Some((group, _)) => group,
            None => "",
        };
        self.rules.iter().any(|r| match r {
            Rule::Any => true,
            Rule::Group(g) => g == group,
            Rule::Kind { group: g, kind: k } => g == group && k == kind,
        })
    }

    /// Whether every kind is allowed.
    pub fn allows_everything(&self) -> bool {
        self.rules.contains(&Rule::Any)
    }

    fn deduplicated(mut self) -> Self {
        let mut seen = Vec::new();
        self.rules.retain(|r| {
            let new = !seen.contains(r);
            if new {
                seen.push(r.clone());
            }
            new
        });
        self
    }
}

fn parse_entry(entry: &str) -> Result<Rule, ParseError> {
    let bad = |part: &str| ParseError::BadName {
        entry: entry.to_string(),
        part: part.to_string(),
    };
    let (group, kind) = match entry.split_once('/') {
        None => (entry, None),
        Some((_, rest)) if rest.contains('/') => {
            return Err(ParseError::WithVersion {
                entry: entry.to_string(),
            });
        }
        Some((group, "*")) => (group, None),
        Some((group, kind)) => (group, Some(kind)),
    };
    let group = match group {
        "core" | "v1" => "",
        g if is_group_name(g) => g,
        g => return Err(bad(g)),
    };
    match kind {
        None => Ok(Rule::Group(group.to_string())),
        Some(k) if is_kind_name(k) => Ok(Rule::Kind {
            group: group.to_string(),
            kind: k.to_string(),
        }),
        Some(k) => Err(bad(k)),
    }
}

/// A DNS subdomain: lower-case letters, digits, `-` and `.`, starting and ending
/// alphanumeric, at most 253 characters.
fn is_group_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A kind: an ASCII letter, then letters and digits, at most 63 characters.
fn is_kind_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

impl FromStr for ComposableResources {
    type Err = ParseError;

    /// Parses a list without provider groups (`default` is then `core/Secret` and
    /// `core/ConfigMap`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ComposableResources::parse(s, std::iter::empty::<String>())
    }
}

impl fmt::Display for ComposableResources {
    /// The list in the flag's syntax, e.g. `postgresql.sql.tessera.dev, core/Secret`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self
            .rules
            .iter()
            .map(|r| match r {
                Rule::Any => "*".to_string(),
                Rule::Group(g) if g.is_empty() => "core/*".to_string(),
                Rule::Group(g) => g.clone(),
                Rule::Kind { group, kind } if group.is_empty() => format!("core/{kind}"),
                Rule::Kind { group, kind } => format!("{group}/{kind}"),
            })
            .collect();
        f.write_str(&entries.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "postgresql.sql.tessera.dev";

    #[test]
    fn entries_parse_to_what_they_allow() {
        struct Case {
            reason: &'static str,
            list: &'static str,
            api_version: &'static str,
            kind: &'static str,
            allowed: bool,
        }
        let cases = [
            Case {
                reason: "a group allows its kinds",
                list: PG,
                api_version: "postgresql.sql.tessera.dev/v1alpha1",
                kind: "Role",
                allowed: true,
            },
            Case {
                reason: "group/* is the same as the group",
                list: "postgresql.sql.tessera.dev/*",
                api_version: "postgresql.sql.tessera.dev/v1alpha1",
                kind: "Grant",
                allowed: true,
            },
            Case {
                reason: "a group does not allow another group",
                list: PG,
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: false,
            },
            Case {
                reason: "a group does not allow a group it is a suffix of",
                list: "tessera.dev",
                api_version: "postgresql.sql.tessera.dev/v1alpha1",
                kind: "Role",
                allowed: false,
            },
            Case {
                reason: "a kind entry allows that kind",
                list: "rbac.authorization.k8s.io/ClusterRoleBinding",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: true,
            },
            Case {
                reason: "a kind entry allows no other kind of its group",
                list: "rbac.authorization.k8s.io/RoleBinding",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: false,
            },
            Case {
                reason: "kinds are case-sensitive, as in apiVersion/kind",
                list: "rbac.authorization.k8s.io/clusterrolebinding",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: false,
            },
            Case {
                reason: "core/KIND names a core kind",
                list: "core/Secret",
                api_version: "v1",
                kind: "Secret",
                allowed: true,
            },
            Case {
                reason: "v1/KIND names a core kind too",
                list: "v1/ConfigMap",
                api_version: "v1",
                kind: "ConfigMap",
                allowed: true,
            },
            Case {
                reason: "a core kind is not a kind of another group",
                list: "core/Secret",
                api_version: "example.org/v1",
                kind: "Secret",
                allowed: false,
            },
            Case {
                reason: "core/Secret does not allow ServiceAccounts",
                list: "core/Secret",
                api_version: "v1",
                kind: "ServiceAccount",
                allowed: false,
            },
            Case {
                reason: "`core` alone allows every core kind",
                list: "core",
                api_version: "v1",
                kind: "ServiceAccount",
                allowed: true,
            },
            Case {
                reason: "* allows anything",
                list: "*",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: true,
            },
            Case {
                reason: "entries add up, with spaces around commas",
                list: "core/Secret, rbac.authorization.k8s.io/ClusterRoleBinding",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: true,
            },
            Case {
                reason: "default holds the provider groups",
                list: "default",
                api_version: "postgresql.sql.tessera.dev/v1alpha1",
                kind: "Role",
                allowed: true,
            },
            Case {
                reason: "default holds core/ConfigMap",
                list: "default,apps/Deployment",
                api_version: "v1",
                kind: "ConfigMap",
                allowed: true,
            },
            Case {
                reason: "default does not hold RBAC",
                list: "default",
                api_version: "rbac.authorization.k8s.io/v1",
                kind: "ClusterRoleBinding",
                allowed: false,
            },
            Case {
                reason: "a list without default drops the provider groups",
                list: "rbac.authorization.k8s.io/ClusterRoleBinding",
                api_version: "postgresql.sql.tessera.dev/v1alpha1",
                kind: "Role",
                allowed: false,
            },
        ];
        for c in cases {
            let list = ComposableResources::parse(c.list, [PG]).unwrap_or_else(|e| {
                panic!("{}: {:?} does not parse: {e}", c.reason, c.list);
            });
            assert_eq!(
                list.allows(c.api_version, c.kind),
                c.allowed,
                "{}: {:?} with {} {}",
                c.reason,
                c.list,
                c.api_version,
                c.kind
            );
        }
    }

    #[test]
    fn bad_entries_are_refused_with_what_to_write() {
        let cases = [
            ("apps/v1/Deployment", "write GROUP/KIND without the version"),
            ("core/Secret,,core/ConfigMap", "empty entry"),
            ("", "empty entry"),
            ("Postgresql.Example.org", "is not an API group or kind name"),
            (
                "rbac.authorization.k8s.io/Cluster-Role",
                "is not an API group",
            ),
            ("example.org/", "is not an API group or kind name"),
            ("/Secret", "is not an API group or kind name"),
        ];
        for (list, want) in cases {
            let err = ComposableResources::parse(list, [PG])
                .expect_err(list)
                .to_string();
            assert!(err.contains(want), "{list:?}: {err}");
        }
    }

    #[test]
    fn the_default_is_the_provider_groups_and_core_secrets_and_config_maps() {
        let list = ComposableResources::defaults([PG]);
        assert_eq!(
            list.to_string(),
            format!("{PG}, core/Secret, core/ConfigMap")
        );
        assert!(!list.allows_everything());
        assert!(list.allows("v1", "Secret"));
        assert!(!list.allows("v1", "Pod"));
        let bare = ComposableResources::default();
        assert_eq!(bare.to_string(), "core/Secret, core/ConfigMap");
        assert!(!bare.allows("postgresql.sql.tessera.dev/v1alpha1", "Role"));
    }

    #[test]
    fn the_list_prints_in_the_flags_syntax_without_duplicates() {
        let list =
            ComposableResources::parse("default, v1/Secret, core, example.org/*, *", [PG]).unwrap();
        assert_eq!(
            list.to_string(),
            format!("{PG}, core/Secret, core/ConfigMap, core/*, example.org, *")
        );
        assert!(list.allows_everything());
        assert_eq!(ComposableResources::any().to_string(), "*");
    }
}
