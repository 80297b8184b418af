//! Secret redaction: finds credentials (cloud and SaaS API keys, tokens, private keys, passwords in
//! assignments, URLs and headers) in text or JSON and swaps them for named placeholders, so nothing
//! the bridge stores, relays or audits carries a live secret.
//!
//! Rules run in a fixed order, each over the output of the previous one. Specific formats come
//! before generic ones so that, e.g., an Anthropic `sk-ant-` key is reported as Anthropic rather
//! than OpenAI, and `token=ghp_…` as a GitHub token rather than a bare assignment. A rule whose
//! regex has capture groups named `secret…` replaces only the first one that took part in the match
//! (so `password=hunter2` keeps its key); otherwise it replaces the whole match. A match whose
//! replaced text is already a placeholder is skipped, and the passes repeat until one changes
//! nothing: together that is what makes redaction idempotent.
//!
//! All regexes use the `regex` crate, which runs in time linear in the input, so a hostile message
//! cannot stall the bridge; word boundaries are written `(?-u:\b)` because the crate's fast DFA
//! gives up on Unicode word boundaries as soon as it meets non-ASCII text.
//!
//! Here: the error type, [`PatternSpec`], [`Redactor`] and how it is built. The parts: `rule` (one
//! compiled rule and the keyword prefilter), `engine` (the passes, each rule's gates, the
//! normalisation shadow), `fields` (JSON, joined fields, proposals), `redacted` ([`Redacted`]),
//! `files` (operator rule files); the catalogue itself is [`crate::redact_rules`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use serde_json::Value;

use crate::redact_gitleaks::{Allowlist, GitleaksRules};
pub use crate::redact_normalize::is_invisible;
use crate::redact_rules;
pub use crate::redact_rules::{CorpusExample, corpus_examples};

mod engine;
mod fields;
mod files;
mod redacted;
mod rule;

pub use files::{OperatorRules, load_patterns_file, load_rules_file};
pub use redacted::Redacted;
use rule::Prefilter;
pub(crate) use rule::Rule;

/// One class of secret: a name, a regex, and the placeholder that replaces a match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub name: String,
    pub regex: String,
    pub placeholder: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error(
        "redaction pattern `{name}` has an invalid regex: {source}; fix its `regex` in the patterns file"
    )]
    InvalidPattern { name: String, source: regex::Error },
    #[error(
        "redaction pattern #{index} has an empty `name`; give it a short kebab-case name such as `internal-ticket-token`"
    )]
    EmptyName { index: usize },
    #[error(
        "redaction pattern `{name}` has an empty `placeholder`; set one such as `TICKET_TOKEN_REDACTED` so readers can see what was removed"
    )]
    EmptyPlaceholder { name: String },
    #[error(
        "redaction pattern `{name}` can match empty text, which would scatter placeholders everywhere; change its `regex` so every match needs at least one character"
    )]
    MatchesEmpty { name: String },
    #[error(
        "the placeholder `{placeholder}` of redaction pattern `{name}` is itself matched by pattern `{by}`, so redacting twice would change it again; pick a placeholder no pattern matches, e.g. UPPER_SNAKE_CASE ending in _REDACTED"
    )]
    PlaceholderMatched {
        name: String,
        placeholder: String,
        by: String,
    },
    #[error(
        "redaction pattern name `{name}` is used twice; rename the extra pattern (built-in names: {builtin})"
    )]
    DuplicateName { name: String, builtin: String },
    #[error(
        "the redaction patterns together are too large to compile: {source}; remove or simplify some extra patterns"
    )]
    TooLarge { source: regex::Error },
    #[error(
        "cannot read redaction patterns file {path}: {source}; check that the path is right and readable"
    )]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "redaction patterns file {path} is not valid: {source}; it may hold only [[pattern]] tables with `name`, `regex` and `placeholder`"
    )]
    ParseFile {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "the redaction rules' keywords do not build a prefilter: {reason}; remove or shorten some `keywords`"
    )]
    Prefilter { reason: String },
    #[error("redaction rules file (gitleaks format) {source}; fix or remove that part of the file")]
    Gitleaks {
        #[from]
        source: crate::redact_gitleaks::GitleaksError,
    },
    #[error("redaction patterns file {path}: {source}")]
    InvalidFile {
        path: PathBuf,
        source: Box<RedactError>,
    },
}

/// The built-in classes, in the order they run: (name, regex, placeholder, skip values that are
/// plainly code). The catalogue with its keywords, entropy gates and families lives in
/// [`crate::redact_rules`]; order matters (see the module docs).
const BUILTIN: &[(&str, &str, &str, bool)] = redact_rules::RULES;

/// Upper bound on full passes over one text; see [`Redactor::run`].
const MAX_PASSES: usize = 4;

/// The compiled rules. Cloning is cheap: the compiled regexes are shared, not recompiled.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// One pass over text that holds no rule's keyword (the usual case) answers "nothing to do".
    prefilter: Prefilter,
    /// Every rule's placeholder: a match whose secret is one is already redacted.
    placeholders: Arc<HashSet<String>>,
    /// Operator (gitleaks) allowlists that apply to every rule they target.
    global_allow: Arc<Vec<Allowlist>>,
}

impl Redactor {
    /// The built-in classes only.
    pub fn builtin() -> Self {
        // Compiled once per process; cloning shares the compiled programs.
        static BUILT: OnceLock<Redactor> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let rules = BUILTIN
                    .iter()
                    .zip(redact_rules::META)
                    .map(|(&(name, re, ph, code), meta)| {
                        let mut rule = Rule::lazy(name, re, ph, code);
                        rule.keywords = meta.keywords.iter().map(|k| (*k).to_owned()).collect();
                        rule.entropy = meta.entropy;
                        rule.flags = meta.flags;
                        rule
                    })
                    .collect();
                Self::from_rules(rules, Vec::new())
                    .expect("built-in keywords build a prefilter (covered by tests)")
            })
            .clone()
    }

    /// Built-in classes plus operator-supplied extra ones (appended after the built-ins).
    pub fn with_extra(extra: &[PatternSpec]) -> Result<Self, RedactError> {
        Self::with_operator(&OperatorRules {
            patterns: extra.to_vec(),
            gitleaks: GitleaksRules::default(),
        })
    }

    /// Built-in classes plus an operator's rules of either format (see [`load_rules_file`]):
    /// `[[pattern]]` ones first, then gitleaks `[[rules]]`, all after the built-ins.
    pub fn with_operator(operator: &OperatorRules) -> Result<Self, RedactError> {
        let extra = &operator.patterns;
        if extra.is_empty() && operator.gitleaks.is_empty() {
            // The shared built-in redactor, not a copy with a second keyword automaton.
            return Ok(Self::builtin());
        }
        let mut rules = Self::builtin().rules;
        let builtin_count = rules.len();
        for (i, spec) in extra.iter().enumerate() {
            let name = spec.name.trim();
            if name.is_empty() {
                return Err(RedactError::EmptyName { index: i + 1 });
            }
            if spec.placeholder.trim().is_empty() {
                return Err(RedactError::EmptyPlaceholder {
                    name: name.to_owned(),
                });
            }
            if rules.iter().any(|r| r.name == name) {
                let builtin = rules[..builtin_count]
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(RedactError::DuplicateName {
                    name: name.to_owned(),
                    builtin,
                });
            }
            let rule =
                Rule::new(name, &spec.regex, &spec.placeholder, false).map_err(|source| {
                    RedactError::InvalidPattern {
                        name: name.to_owned(),
                        source,
                    }
                })?;
            if rule.regex().is_match("") {
                return Err(RedactError::MatchesEmpty {
                    name: name.to_owned(),
                });
            }
            rules.push(rule);
        }
        for rule in &operator.gitleaks.rules {
            if rules.iter().any(|r| r.name == rule.name) {
                let builtin = rules[..builtin_count]
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(RedactError::DuplicateName {
                    name: rule.name.clone(),
                    builtin,
                });
            }
            rules.push(rule.clone());
        }
        let redactor = Self::from_rules(rules, operator.gitleaks.allowlists.clone())?;
        for rule in &redactor.rules[builtin_count..] {
            let (out, by) = redactor.redact_report(&rule.placeholder);
            if let (Cow::Owned(_), Some(by)) = (out, by.into_iter().next()) {
                return Err(RedactError::PlaceholderMatched {
                    name: rule.name.clone(),
                    placeholder: rule.placeholder.clone(),
                    by,
                });
            }
        }
        Ok(redactor)
    }

    fn from_rules(rules: Vec<Rule>, global_allow: Vec<Allowlist>) -> Result<Self, RedactError> {
        let prefilter = Prefilter::new(&rules)?;
        let placeholders = rules.iter().map(|r| r.placeholder.clone()).collect();
        Ok(Self {
            rules,
            prefilter,
            placeholders: Arc::new(placeholders),
            global_allow: Arc::new(global_allow),
        })
    }

    /// Redacts `text`; returns Cow::Borrowed when nothing matched (fast path via RegexSet::is_match).
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.run(text, None)
    }

    /// Like redact, also returning the names of the classes that matched (deduplicated, in rule order).
    pub fn redact_report<'a>(&self, text: &'a str) -> (Cow<'a, str>, Vec<String>) {
        let mut classes = Vec::new();
        let out = self.run(text, Some(&mut classes));
        (out, classes)
    }

    /// Redacts `text` into a [`Redacted`], the only form the store accepts
    /// for messages, job failures and results.
    pub fn redacted(&self, text: &str) -> Redacted {
        Redacted(self.redact(text).into_owned())
    }

    /// Like [`Redactor::redacted`], also returning the classes that matched.
    pub fn redacted_report(&self, text: &str) -> (Redacted, Vec<String>) {
        let (out, classes) = self.redact_report(text);
        (Redacted(out.into_owned()), classes)
    }

    /// Redacts every string (and key) in `value` and serializes it; the flag
    /// says whether anything changed.
    pub fn redacted_json(&self, mut value: Value) -> (Redacted, bool) {
        let changed = self.redact_json(&mut value);
        (Redacted(value.to_string()), changed)
    }

    /// The family (`ai`, `cloud`, `code-hosting`, …) of built-in class `name`, for reports grouped
    /// by kind of provider; None for operator rules.
    pub fn family(name: &str) -> Option<&'static str> {
        BUILTIN
            .iter()
            .zip(redact_rules::META)
            .find(|(r, _)| r.0 == name)
            .map(|(_, m)| m.family)
    }

    /// Names of all rules, in order (for `--help`/docs and tests).
    pub fn class_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// For the streaming redactor: (name, regex, placeholder) of rule `i`.
    pub(crate) fn rule(&self, i: usize) -> (&str, &str, &str) {
        let r = &self.rules[i];
        (&r.name, r.pattern(), &r.placeholder)
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// For the streaming redactor: each rule whose keyword gates a whole
    /// document ([`redact_rules::DOCUMENT_GATE`]), with its keywords.
    pub(crate) fn document_gates(&self) -> Vec<(usize, &[String])> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.flags & redact_rules::DOCUMENT_GATE != 0 && !r.keywords.is_empty())
            .map(|(i, r)| (i, r.keywords.as_slice()))
            .collect()
    }

    /// This redactor with `rules` run whether or not their keywords occur
    /// in the text at hand: for a stream whose earlier text held them
    /// (`kind: Secret` above the data lines it gates).
    pub(crate) fn with_rules_enabled(&self, rules: &[usize]) -> Self {
        let mut out = self.clone();
        out.prefilter.always.extend_from_slice(rules);
        out.prefilter.always.sort_unstable();
        out.prefilter.always.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
