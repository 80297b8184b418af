//! One compiled rule (its regex, secret groups and gates) and the Aho-Corasick keyword prefilter
//! that picks which rules' regexes run on a text at all.

use std::sync::{Arc, OnceLock};

use aho_corasick::AhoCorasick;
use regex::Regex;

use super::RedactError;
use crate::redact_gitleaks::Allowlist;

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(super) name: String,
    pattern: Arc<str>,
    groups: Groups,
    /// Compiled the first time a text holds one of the rule's keywords, then shared by clones.
    /// Most texts hold none, so most built-in regexes never run in a process; compiling all ~80
    /// at start cost ~6 MB of heap, half the idle RSS of `bridge serve` (issue 15).
    compiled: Arc<OnceLock<Compiled>>,
    pub(super) placeholder: String,
    /// Agents send a lot of code, where `password: String` or `token = get_token()` is no secret;
    /// the assignment rules skip such values rather than turn code into nonsense.
    pub(super) skip_code: bool,
    /// Lower-case prefilter keywords; empty means the regex runs on every text.
    pub(super) keywords: Vec<String>,
    /// Minimum Shannon entropy of the secret (0: no gate).
    pub(super) entropy: f64,
    /// [`redact_rules`] flags ([`PLACEHOLDERS_PASS`], [`SEMICOLON`]).
    pub(super) flags: u8,
    /// Operator (gitleaks) allowlists of this rule.
    pub(super) allow: Vec<Allowlist>,
}

/// Which capture groups hold the secret.
#[derive(Debug, Clone, Copy)]
enum Groups {
    /// Those named `secret…`.
    Named,
    /// gitleaks' `secretGroup` (0: every group).
    Gitleaks(usize),
}

#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) regex: Regex,
    /// Capture groups that hold the secret, tried in order (the first that took part and is not
    /// empty wins); empty means "replace the whole match".
    pub(super) secret_groups: Vec<usize>,
}

impl Compiled {
    fn new(regex: Regex, groups: Groups) -> Self {
        let secret_groups = match groups {
            Groups::Named => regex
                .capture_names()
                .enumerate()
                .filter(|(_, n)| n.is_some_and(|n| n.starts_with("secret")))
                .map(|(i, _)| i)
                .collect(),
            Groups::Gitleaks(0) => (1..regex.captures_len()).collect(),
            Groups::Gitleaks(n) => vec![n],
        };
        Self {
            regex,
            secret_groups,
        }
    }
}

impl Rule {
    /// A rule compiled now, so a bad pattern is reported when it is loaded (operator rules).
    pub(super) fn new(
        name: &str,
        pattern: &str,
        placeholder: &str,
        skip_code: bool,
    ) -> Result<Self, regex::Error> {
        let rule = Self::lazy(name, pattern, placeholder, skip_code);
        let _ = rule
            .compiled
            .set(Compiled::new(Regex::new(pattern)?, Groups::Named));
        Ok(rule)
    }

    /// A rule whose regex is compiled on first use: for the built-in catalogue, whose every
    /// pattern a unit test compiles.
    pub(super) fn lazy(name: &str, pattern: &str, placeholder: &str, skip_code: bool) -> Self {
        Self {
            name: name.to_owned(),
            pattern: pattern.into(),
            groups: Groups::Named,
            compiled: Arc::default(),
            placeholder: placeholder.to_owned(),
            skip_code,
            keywords: Vec::new(),
            entropy: 0.0,
            flags: 0,
            allow: Vec::new(),
        }
    }

    pub(super) fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            let regex = Regex::new(&self.pattern).unwrap_or_else(|e| {
                panic!(
                    "built-in redaction rule {} does not compile ({e}); the catalogue's unit test catches this",
                    self.name
                )
            });
            Compiled::new(regex, self.groups)
        })
    }

    pub(super) fn regex(&self) -> &Regex {
        &self.compiled().regex
    }

    pub(super) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// A gitleaks-style rule: `secret_group` picks the secret (0: the first capture group that
    /// matched something, or the whole match when there is none), as gitleaks does.
    pub(crate) fn gitleaks(
        name: &str,
        regex: Regex,
        placeholder: String,
        secret_group: usize,
        keywords: Vec<String>,
        entropy: f64,
        allow: Vec<Allowlist>,
    ) -> Self {
        let groups = Groups::Gitleaks(secret_group);
        Self {
            name: name.to_owned(),
            pattern: regex.as_str().into(),
            groups,
            compiled: Arc::new(OnceLock::from(Compiled::new(regex, groups))),
            placeholder,
            skip_code: false,
            keywords,
            entropy,
            flags: 0,
            allow,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

/// The Aho-Corasick keyword prefilter: one pass over the text says which rules can match at all,
/// so only their regexes run (gitleaks does the same). Rules without keywords always run.
#[derive(Debug, Clone)]
pub(super) struct Prefilter {
    pub(super) ac: Option<Arc<AhoCorasick>>,
    /// Per keyword (AC pattern id): the rules it enables.
    pub(super) rules_of: Vec<Vec<usize>>,
    pub(super) always: Vec<usize>,
    pub(super) rule_count: usize,
}

impl Prefilter {
    pub(super) fn new(rules: &[Rule]) -> Result<Self, RedactError> {
        let mut keywords: Vec<&str> = Vec::new();
        let mut rules_of: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(i);
            }
            for k in &rule.keywords {
                match keywords.iter().position(|x| x == k) {
                    Some(p) => rules_of[p].push(i),
                    None => {
                        keywords.push(k);
                        rules_of.push(vec![i]);
                    }
                }
            }
        }
        let ac = if keywords.is_empty() {
            None
        } else {
            // A full DFA: the keyword scan runs over every byte of every text, so it is worth
            // the memory (a few hundred KB for the built-in keywords).
            let ac = AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(&keywords)
                .map_err(|e| RedactError::Prefilter {
                    reason: e.to_string(),
                })?;
            Some(Arc::new(ac))
        };
        Ok(Self {
            ac,
            rules_of,
            always,
            rule_count: rules.len(),
        })
    }

    /// Which rules may match `text`; None when none can.
    pub(super) fn candidates(&self, text: &str) -> Option<Vec<bool>> {
        let mut cand = vec![false; self.rule_count];
        let mut any = false;
        for &i in &self.always {
            cand[i] = true;
            any = true;
        }
        if let Some(ac) = &self.ac {
            let mut seen = vec![false; self.rules_of.len()];
            for m in ac.find_overlapping_iter(text) {
                let k = m.pattern().as_usize();
                if !std::mem::replace(&mut seen[k], true) {
                    for &i in &self.rules_of[k] {
                        cand[i] = true;
                    }
                    any = true;
                }
            }
        }
        any.then_some(cand)
    }
}
