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

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use std::collections::HashSet;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::redact_gitleaks::{Allowlist, GitleaksRules};
use crate::redact_normalize::Shadow;
use crate::redact_rules::{self, PLACEHOLDERS_PASS, SEMICOLON};
pub use crate::redact_rules::{CorpusExample, corpus_examples};

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

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    name: String,
    regex: Regex,
    placeholder: String,
    /// Capture groups that hold the secret, tried in order (the first that took part and is not
    /// empty wins); empty means "replace the whole match".
    secret_groups: Vec<usize>,
    /// Agents send a lot of code, where `password: String` or `token = get_token()` is no secret;
    /// the assignment rules skip such values rather than turn code into nonsense.
    skip_code: bool,
    /// Lower-case prefilter keywords; empty means the regex runs on every text.
    keywords: Vec<String>,
    /// Minimum Shannon entropy of the secret (0: no gate).
    entropy: f64,
    /// [`redact_rules`] flags ([`PLACEHOLDERS_PASS`], [`SEMICOLON`]).
    flags: u8,
    /// Operator (gitleaks) allowlists of this rule.
    allow: Vec<Allowlist>,
}

impl Rule {
    fn new(
        name: &str,
        pattern: &str,
        placeholder: &str,
        skip_code: bool,
    ) -> Result<Self, regex::Error> {
        let regex = Regex::new(pattern)?;
        let secret_groups = regex
            .capture_names()
            .enumerate()
            .filter(|(_, n)| n.is_some_and(|n| n.starts_with("secret")))
            .map(|(i, _)| i)
            .collect();
        Ok(Self {
            name: name.to_owned(),
            regex,
            placeholder: placeholder.to_owned(),
            secret_groups,
            skip_code,
            keywords: Vec::new(),
            entropy: 0.0,
            flags: 0,
            allow: Vec::new(),
        })
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
        let secret_groups = match secret_group {
            0 => (1..regex.captures_len()).collect(),
            n => vec![n],
        };
        Self {
            name: name.to_owned(),
            regex,
            placeholder,
            secret_groups,
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
struct Prefilter {
    ac: Option<Arc<AhoCorasick>>,
    /// Per keyword (AC pattern id): the rules it enables.
    rules_of: Vec<Vec<usize>>,
    always: Vec<usize>,
    rule_count: usize,
}

impl Prefilter {
    fn new(rules: &[Rule]) -> Result<Self, RedactError> {
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
    fn candidates(&self, text: &str) -> Option<Vec<bool>> {
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

/// True for assignment values that are code, not credentials: a type or literal keyword, a call,
/// generic or index (`get_token(`, `Option<`, `env[`), or a capitalised type name before `,` or `)`.
fn looks_like_code(value: &str, after: &str) -> bool {
    #[rustfmt::skip]
    const NOT_SECRETS: &[&str] = &[
        "String", "str", "string", "Secret", "SecretString", "bool", "number", "None", "null", "nil",
        "true", "false", "undefined", "Self", "self", "$",
    ];
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':';
    NOT_SECRETS.contains(&value)
        || (value.chars().all(ident) && after.starts_with(['(', '<', '[']))
        || (value.starts_with(|c: char| c.is_ascii_uppercase())
            && value.chars().all(|c| c.is_ascii_alphabetic())
            && after.starts_with([',', ')']))
}

/// Text that has been through the redactor. Only [`Redactor`] makes one
/// (the field is private; the one other constructor, [`Redacted::empty_list`],
/// holds no text), so a function
/// that takes `&Redacted` cannot be handed raw text: the type is the proof
/// that redaction ran. Concatenating pieces means formatting plain text and
/// redacting the whole again, so no secret can straddle a seam.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl Redacted {
    /// The empty JSON list `[]` (a message with no files): it holds no text,
    /// so there is nothing to redact, and building a whole [`Redactor`] for
    /// it (every rule compiled) would cost more than the insert it serves.
    pub fn empty_list() -> Self {
        Redacted("[]".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl rusqlite::ToSql for Redacted {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

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
                        let mut rule = Rule::new(name, re, ph, code)
                            .expect("built-in redaction regexes compile (covered by tests)");
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
            if rule.regex.is_match("") {
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

    /// Redacts every string (values AND object keys) inside a JSON value in place; returns true if anything changed.
    pub fn redact_json(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.redact_string(s),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_json(v) | changed),
            Value::Object(map) => {
                let mut changed = false;
                for (key, v) in map.iter_mut() {
                    changed |= match v {
                        Value::String(s) => self.redact_keyed_string(key, s),
                        other => self.redact_json(other),
                    };
                }
                // Keys cannot be renamed in place, so rebuild the map only when one needs it.
                if map.keys().any(|k| self.prefilter.candidates(k).is_some()) {
                    for (key, v) in std::mem::take(map) {
                        let redacted = match self.redact(&key) {
                            Cow::Owned(k) => Some(k),
                            Cow::Borrowed(_) => None,
                        };
                        changed |= redacted.is_some();
                        let key = unique_key(map, redacted.unwrap_or(key));
                        map.insert(key, v);
                    }
                }
                changed
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    /// Redacts fields that belong together (a message's `files_involved`): each field alone, and
    /// also the fields joined end to end, so a secret split across fields (`["AKIAIOSF",
    /// "ODNN7EXAMPLE"]`) is caught too; every piece of such a secret becomes its placeholder.
    /// Returns the fields and whether anything changed.
    pub fn redact_fields(&self, fields: &[String]) -> (Vec<String>, bool) {
        /// How many consecutive fields one split secret may span.
        const SPAN: usize = 8;
        // Per field: local ranges to replace, with the rule's placeholder.
        let mut cuts: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); fields.len()];
        // Each run starts at a field's own start and ends at a field's own end, so word
        // boundaries there hold as they do for the fields alone.
        let runs = (0..fields.len())
            .flat_map(|a| (a + 2..=fields.len().min(a + SPAN)).map(move |b| (a, b)));
        for (first, end) in runs {
            let run = &fields[first..end];
            let joined = run.concat();
            let mut bounds = Vec::with_capacity(run.len());
            let mut at = 0;
            for f in run {
                bounds.push((at, at + f.len()));
                at += f.len();
            }
            let Some(cand) = self.prefilter.candidates(&joined) else {
                continue;
            };
            for i in (0..self.rules.len()).filter(|&i| cand[i]) {
                for (s, e) in self.secret_spans(i, &joined) {
                    if !bounds.iter().any(|&(_, b)| s < b && b < e) {
                        continue;
                    }
                    for (f, &(a, b)) in bounds.iter().enumerate() {
                        let (ls, le) = (s.max(a), e.min(b));
                        if ls < le {
                            cuts[first + f].push((ls - a, le - a, i));
                        }
                    }
                }
            }
        }
        let mut changed = false;
        let out = fields
            .iter()
            .zip(cuts)
            .map(|(field, mut cut)| {
                cut.sort_unstable();
                let mut piece = String::with_capacity(field.len());
                let mut last = 0;
                for (s, e, i) in cut {
                    if !field.is_char_boundary(s) || !field.is_char_boundary(e) {
                        continue;
                    }
                    if s < last {
                        // Overlaps the previous cut: its placeholder covers this one too.
                        last = last.max(e);
                        continue;
                    }
                    piece.push_str(&field[last..s]);
                    piece.push_str(&self.rules[i].placeholder);
                    last = e;
                }
                piece.push_str(&field[last..]);
                let piece = self.redact(&piece).into_owned();
                changed |= piece != *field;
                piece
            })
            .collect();
        (out, changed)
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

    /// For the streaming redactor: every rule's whole matches in `text` as
    /// `(start, end, rule index)`; empty when no rule matches at all.
    pub(crate) fn match_spans(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let Some(cand) = self.prefilter.candidates(text) else {
            return Vec::new();
        };
        let mut spans = Vec::new();
        for (i, rule) in self.rules.iter().enumerate().filter(|(i, _)| cand[*i]) {
            spans.extend(rule.regex.find_iter(text).map(|m| (m.start(), m.end(), i)));
        }
        spans
    }

    /// For the streaming redactor: (name, regex, placeholder) of rule `i`.
    pub(crate) fn rule(&self, i: usize) -> (&str, &str, &str) {
        let r = &self.rules[i];
        (&r.name, r.regex.as_str(), &r.placeholder)
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.rules.len()
    }

    fn run<'a>(&self, text: &'a str, report: Option<&mut Vec<String>>) -> Cow<'a, str> {
        let first = self.prefilter.candidates(text);
        if first.is_none() && text.is_ascii() {
            return Cow::Borrowed(text);
        }
        let mut first = Some(first);
        let mut current = Cow::Borrowed(text);
        let mut hit = vec![false; self.rules.len()];
        // A placeholder can change what an earlier rule sees: in `w://:pwd=/;@` the `/` ends the
        // URL, but once `pwd=/` becomes `pwd=PASSWORD_REDACTED` the URL rule matches. Passes
        // repeat until one changes nothing, so redacting the output again is a no-op. Each pass
        // only turns text into placeholders; the cap is a guard, never reached in practice.
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            // The first pass reuses the scan made above.
            let cand = match first.take() {
                Some(c) => c,
                None => self.prefilter.candidates(&current),
            };
            if let Some(cand) = cand {
                for i in (0..self.rules.len()).filter(|&i| cand[i]) {
                    if let Some(next) = self.apply(i, &current) {
                        hit[i] = true;
                        changed = true;
                        current = Cow::Owned(next);
                    }
                }
            }
            if let Some(next) = self.apply_shadow(&current, &mut hit) {
                changed = true;
                current = Cow::Owned(next);
            }
            if !changed {
                break;
            }
        }
        if let Some(classes) = report {
            let names = self.rules.iter().zip(hit).filter(|(_, h)| *h);
            classes.extend(names.map(|(r, _)| r.name.clone()));
        }
        current
    }

    /// The secrets rule `i` finds in `text`, as byte ranges, in order and not overlapping, after
    /// the rule's gates: already a placeholder, code, documentation placeholder, entropy,
    /// allowlists.
    fn secret_spans(&self, i: usize, text: &str) -> Vec<(usize, usize)> {
        let rule = &self.rules[i];
        let mut spans = Vec::new();
        let mut last = 0;
        for caps in rule.regex.captures_iter(text) {
            let Some(whole) = caps.get(0) else { continue };
            let span = rule
                .secret_groups
                .iter()
                .filter_map(|&g| caps.get(g))
                .find(|m| !m.is_empty())
                .unwrap_or(whole);
            let (start, mut end) = (span.start(), span.end());
            if rule.flags & SEMICOLON != 0 && caps.name("secret") == Some(span) {
                end += redact_rules::semicolon_tail(&text[end..]);
            }
            let secret = &text[start..end];
            if secret.is_empty()
                || start < last
                || self.placeholders.contains(secret)
                || self.starts_with_placeholder(secret)
                || redact_rules::is_masked(secret)
                || (rule.skip_code && looks_like_code(secret, &text[whole.end()..]))
                || (rule.flags & PLACEHOLDERS_PASS != 0 && redact_rules::is_placeholder(secret))
                || (rule.entropy > 0.0 && redact_rules::shannon_entropy(secret) < rule.entropy)
                || self.allowed(rule, text, secret, whole.start(), whole.end())
            {
                continue;
            }
            spans.push((start, end));
            last = end;
        }
        spans
    }

    /// `token:GITHUB_TOKEN_REDACTED@github.com/…`: what follows a placeholder is context the
    /// rule that placed it chose to keep, not more secret.
    fn starts_with_placeholder(&self, secret: &str) -> bool {
        secret.starts_with(|c: char| c.is_ascii_uppercase())
            && self
                .placeholders
                .iter()
                .any(|p| secret.starts_with(p.as_str()))
    }

    /// True when an operator allowlist (the rule's own or a global one targeting it) lets this
    /// finding through.
    fn allowed(&self, rule: &Rule, text: &str, secret: &str, start: usize, end: usize) -> bool {
        if rule.allow.is_empty() && self.global_allow.is_empty() {
            return false;
        }
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let (whole, line) = (&text[start..end], &text[line_start..line_end]);
        rule.allow
            .iter()
            .chain(self.global_allow.iter().filter(|a| a.targets(&rule.name)))
            .any(|a| a.allows(secret, whole, line))
    }

    /// One rule over `text`; None when it replaced nothing.
    fn apply(&self, i: usize, text: &str) -> Option<String> {
        let spans = self.secret_spans(i, text);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (start, end) in spans {
            out.push_str(&text[last..start]);
            out.push_str(&self.rules[i].placeholder);
            last = end;
        }
        out.push_str(&text[last..]);
        Some(out)
    }

    /// The normalisation shadow (see [`crate::redact_normalize`]): every rule over the folded
    /// copy of `text`; what they find is replaced in `text` itself, over the original characters
    /// the match came from. None when the shadow finds nothing (or `text` needs no folding).
    fn apply_shadow(&self, text: &str, hit: &mut [bool]) -> Option<String> {
        let shadow = Shadow::of(text)?;
        let cand = self.prefilter.candidates(&shadow.text)?;
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for i in (0..self.rules.len()).filter(|&i| cand[i]) {
            for (s, e) in self.secret_spans(i, &shadow.text) {
                let (a, b) = shadow.original(s, e);
                spans.push((a, b, i));
            }
        }
        if spans.is_empty() {
            return None;
        }
        // Earliest first, and of two that start together the longer; overlaps go to the first.
        spans.sort_by_key(|&(a, b, i)| (a, std::cmp::Reverse(b), i));
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (a, b, i) in spans {
            if a < last {
                continue;
            }
            out.push_str(&text[last..a]);
            out.push_str(&self.rules[i].placeholder);
            hit[i] = true;
            last = b;
        }
        out.push_str(&text[last..]);
        (out != text).then_some(out)
    }

    fn redact_string(&self, s: &mut String) -> bool {
        match self.redact(s) {
            Cow::Owned(r) => {
                *s = r;
                true
            }
            Cow::Borrowed(_) => false,
        }
    }

    /// A JSON value alone rarely shows that it is secret (`"hunter2"`); redacting it again framed
    /// as `key: "value"` lets the assignment and header rules see `"password": "hunter2"`.
    fn redact_keyed_string(&self, key: &str, s: &mut String) -> bool {
        let mut changed = self.redact_string(s);
        let framed = format!("{key}: \"{s}\"");
        if let Cow::Owned(r) = self.redact(&framed) {
            let head = &framed[..key.len() + 3];
            // If the key itself was redacted the frame no longer lines up; the key is handled
            // separately and the value already was, so there is nothing more to take from here.
            if let Some(inner) = r.strip_prefix(head).and_then(|rest| rest.strip_suffix('"')) {
                *s = inner.to_owned();
                changed = true;
            }
        }
        changed
    }
}

/// Two keys can redact to the same placeholder; suffix rather than silently drop a value.
fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    let mut n = 2;
    loop {
        let candidate = format!("{key}#{n}");
        if !map.contains_key(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Loads extra patterns from a TOML file of the form
/// ```toml
/// [[pattern]]
/// name = "internal-ticket-token"
/// regex = 'TKT-[0-9A-F]{16}'
/// placeholder = "TICKET_TOKEN_REDACTED"
/// ```
/// A capture group named `secret` limits what is replaced (`regex = 'pin=(?P<secret>\d+)'` keeps
/// `pin=`). Unknown keys are an error. Errors name the file and what to fix.
pub fn load_patterns_file(path: &Path) -> Result<Vec<PatternSpec>, RedactError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PatternsFile {
        #[serde(default)]
        pattern: Vec<PatternSpec>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| RedactError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file: PatternsFile = toml::from_str(&text).map_err(|source| RedactError::ParseFile {
        path: path.to_owned(),
        source,
    })?;
    // Compile now so a bad pattern is reported with the file it came from.
    Redactor::with_extra(&file.pattern).map_err(|e| RedactError::InvalidFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(file.pattern)
}

/// An operator's extra rules: the bridge's `[[pattern]]` ones and gitleaks `[[rules]]`.
#[derive(Debug, Clone, Default)]
pub struct OperatorRules {
    pub patterns: Vec<PatternSpec>,
    pub gitleaks: GitleaksRules,
}

/// Loads an operator's rules file in either format, told apart by content: gitleaks' (top-level
/// `[[rules]]`, `[extend]`, `[allowlist]`/`[[allowlists]]` or `title`; see
/// [`crate::redact_gitleaks`]) or the bridge's `[[pattern]]` ([`load_patterns_file`]).
pub fn load_rules_file(path: &Path) -> Result<OperatorRules, RedactError> {
    let text = std::fs::read_to_string(path).map_err(|source| RedactError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|source| RedactError::ParseFile {
        path: path.to_owned(),
        source,
    })?;
    let rules = if crate::redact_gitleaks::looks_like_gitleaks(&table) {
        OperatorRules {
            patterns: Vec::new(),
            gitleaks: crate::redact_gitleaks::from_table(&table, path)?,
        }
    } else {
        OperatorRules {
            patterns: load_patterns_file(path)?,
            gitleaks: GitleaksRules::default(),
        }
    };
    Redactor::with_operator(&rules).map_err(|e| RedactError::InvalidFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// (class, input, secret that must disappear). Secrets are assembled at run time so this file
    /// holds no literal that looks like a live credential to secret scanners.
    #[rustfmt::skip]
    fn positives() -> Vec<(&'static str, String, String)> {
        let pem = "MIIEowIBAAKCAQEAfakefakefakefakefakefakefake0123456789abcdefABCDEF";
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{}", "dozjgNryP4J3jVmN".repeat(2));
        let ghp = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
        let pat = format!("github_pat_11{}_{}", "A1b2C3d4E5f".repeat(2), "x9Y8w7".repeat(10));
        let ant = format!("sk-ant-api03-{}AA", "Ab1-Cd2_".repeat(11));
        let oai = format!("sk-{}", "T3BlbkFJ".repeat(6));
        let proj = format!("sk-proj-{}", "Xy9_Zw8-".repeat(10));
        let slack = format!("xoxb-1234567890-9876543210-{}", "AbCdEf".repeat(4));
        let stripe = format!("sk_live_{}", "4eC39HqLyj".repeat(3));
        let google = format!("AIza{}", &"Sy0-_abcD9".repeat(4)[..35]);
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let p = |class, input: String, secret: &str| (class, input, secret.to_owned());
        vec![
            p("aws-access-key", "key id AKIAIOSFODNN7EXAMPLE in use".into(), "AKIAIOSFODNN7EXAMPLE"),
            p("aws-access-key", "ASIAY34FZKBOKMUTVV7A,".into(), "ASIAY34FZKBOKMUTVV7A"),
            p("aws-secret-key", format!("aws_secret_access_key = {aws}\n"), aws),
            p("aws-secret-key", format!("export AWS_SECRET_ACCESS_KEY=\"{aws}\""), aws),
            p("private-key", format!("a\n-----BEGIN RSA PRIVATE KEY-----\n{pem}\n-----END RSA PRIVATE KEY-----\nb"), pem),
            p("private-key", format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{pem}\n-----END OPENSSH PRIVATE KEY-----"), pem),
            p("private-key", format!("-----BEGIN PGP PRIVATE KEY BLOCK-----\n{pem}\n-----END PGP PRIVATE KEY BLOCK-----"), pem),
            p("private-key", format!("-----BEGIN PRIVATE KEY-----\n{pem}\n(truncated)"), pem),
            p("private-key", format!("\"-----BEGIN EC PRIVATE KEY-----\\n{pem}\\n-----END EC PRIVATE KEY-----\\n\""), pem),
            p("bearer-token", "curl -H 'X-Auth: bearer 4f9aZq81kPq0LmN2' url".into(), "4f9aZq81kPq0LmN2"),
            p("password-assignment", "password=hunter2".into(), "hunter2"),
            p("password-assignment", "DB_PASSWORD: \"s3cr3t with spaces\"".into(), "s3cr3t with spaces"),
            p("password-assignment", "mysql --pwd='p@55w0rd!'".into(), "p@55w0rd!"),
            p("password-assignment", "{\"Passwd\" : \"open sesame\"}".into(), "open sesame"),
            p("secret-assignment", "https://api.example.com/v1?api_key=abcd1234efgh&x=1".into(), "abcd1234efgh"),
            p("secret-assignment", "apikey: 9f8e7d6c5b4a".into(), "9f8e7d6c5b4a"),
            p("secret-assignment", "X-Api-Key: 0123456789abcdef".into(), "0123456789abcdef"),
            p("secret-assignment", "CLIENT_SECRET='m7#Qp!zz'".into(), "m7#Qp!zz"),
            p("secret-assignment", "access_token=ya29.a0AfH6SMBx".into(), "ya29.a0AfH6SMBx"),
            p("secret-assignment", "SECRET_KEY = \"django-insecure-xyz\"".into(), "django-insecure-xyz"),
            p("github-token", format!("GITHUB_TOKEN={ghp}"), &ghp),
            p("github-token", format!("token {pat} end"), &pat),
            p("github-token", format!("gho_{}", "Zz9Yy8Xx7Ww6".repeat(3)), "Zz9Yy8Xx7Ww6"),
            p("github-token", format!("ghs_{}", "Qq1Rr2Ss3Tt4".repeat(3)), "Qq1Rr2Ss3Tt4"),
            p("github-token", format!("ghu_{} ghr_{}", "Uu5".repeat(12), "Rr6".repeat(12)), "Uu5Uu5"),
            p("anthropic-key", format!("ANTHROPIC_API_KEY={ant}"), &ant),
            p("openai-key", format!("key: {oai}."), &oai),
            p("openai-key", format!("\"{proj}\""), &proj),
            p("slack-token", format!("slack {slack}"), &slack),
            p("stripe-key", format!("Stripe.api_key = {stripe}"), &stripe),
            p("stripe-key", format!("rk_live_{} and sk_test_{}", "Ab12Cd34Ef56Gh78", "Zz99Yy88Xx77Ww66"), "Ab12Cd34Ef56Gh78"),
            p("google-api-key", format!("maps?key={google}"), &google),
            p("jwt", format!("session={jwt};"), &jwt),
            p("url-password", "postgres://app:Sup3rS3cret@db.internal:5432/app".into(), "Sup3rS3cret"),
            p("url-password", "redis://:hunter22@cache:6379/0".into(), "hunter22"),
            p("url-password", "https://bob:p@ss:w0rd@example.com/x".into(), "ss:w0rd"),
            p("authorization-header", "Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nHost: x".into(), "dXNlcjpwYXNzd29yZA"),
            p("authorization-header", "{\"authorization\": \"Token abc123def\"}".into(), "abc123def"),
            p("authorization-header", "proxy-authorization:Digest username=\"u\"".into(), "Digest"),
        ]
        .into_iter()
        .chain(redact_rules::corpus_positives())
        .collect()
    }

    #[test]
    fn every_class_is_caught() {
        let r = Redactor::builtin();
        for (class, input, secret) in positives() {
            let (out, classes) = r.redact_report(&input);
            let placeholder = BUILTIN.iter().find(|b| b.0 == class).map(|b| b.2).unwrap();
            assert!(
                !out.contains(&secret),
                "{class}: secret survived in {out:?}"
            );
            assert!(
                out.contains(placeholder),
                "{class}: no {placeholder} in {out:?}"
            );
            assert!(
                classes.iter().any(|c| c == class),
                "{class}: report {classes:?} for {input:?}"
            );
        }
    }

    #[test]
    fn every_builtin_class_has_a_sample() {
        let samples = positives();
        for name in Redactor::builtin().class_names() {
            assert!(
                samples.iter().any(|s| s.0 == name),
                "no positive sample for {name}"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn context_around_secrets_is_kept() {
        let ant = format!("sk-ant-api03-{}", "Ab1-Cd2_".repeat(11));
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.{}", "sIgNaTuRe".repeat(3));
        // (input, exact output, classes reported)
        let cases: Vec<(String, &str, Vec<&str>)> = vec![
            ("password=hunter2".into(), "password=PASSWORD_REDACTED", vec!["password-assignment"]),
            ("pwd: 'x y'".into(), "pwd: 'PASSWORD_REDACTED'", vec!["password-assignment"]),
            ("if password == \"letmein\" {".into(), "if password == \"PASSWORD_REDACTED\" {", vec!["password-assignment"]),
            (r#"{"password":"hun\"ter2"}"#.into(), r#"{"password":"PASSWORD_REDACTED"}"#, vec!["password-assignment"]),
            ("client_secret=abc&grant=1".into(), "client_secret=SECRET_REDACTED&grant=1", vec!["secret-assignment"]),
            ("mysql://root:toor@localhost/db".into(), "mysql://root:URL_PASSWORD_REDACTED@localhost/db", vec!["url-password"]),
            ("Authorization: Basic dXNlcjpw\nnext".into(), "Authorization: AUTHORIZATION_REDACTED\nnext", vec!["authorization-header"]),
            (format!("Authorization: Bearer {jwt}"), "Authorization: AUTHORIZATION_REDACTED", vec!["jwt", "authorization-header"]),
            ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(), "aws_secret_access_key=AWS_SECRET_REDACTED", vec!["aws-secret-key"]),
            (format!("{ant} and AKIAIOSFODNN7EXAMPLE, AKIAIOSFODNN7EXAMPLF, password=x"),
             "ANTHROPIC_KEY_REDACTED and AWS_KEY_REDACTED, AWS_KEY_REDACTED, password=PASSWORD_REDACTED",
             vec!["aws-access-key", "anthropic-key", "password-assignment"]),
        ];
        let r = Redactor::builtin();
        for (input, want, want_classes) in cases {
            let (out, classes) = r.redact_report(&input);
            assert_eq!(out, want, "for {input:?}");
            assert_eq!(classes, want_classes, "for {input:?}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let cases = [
            "let password_field = form.get(\"password\");",
            "fn secret_sauce() {}",
            "The token bucket refills at 10/min",
            "sk-",
            "pip install sk-learn; ask-me-anything",
            "git checkout -b feature/skip-tests",
            "https://example.com/path?x=1",
            "https://example.com:8443/api and ssh://git@github.com/org/repo",
            "mail user@example.com or git@github.com:org/repo.git",
            "```rust\nfn main() {\n    println!(\"hello\");\n}\n```\n",
            "let mut m: HashMap<String, u32> = HashMap::new();\nm.insert(\"alice\".to_string(), 10);",
            "struct Login { password: String, token: Option<String>, secret: &str, api_key: Key, }",
            "let token = get_token(); def connect(password: str = None): pass",
            "password = os.environ[\"DB_PASSWORD\"]; secret=${SECRET}",
            "{\"max_tokens\": 1024, \"password\": null, \"token\": true}",
            "Authorization is handled by the middleware",
            "The bearer of bad news; bearer tokens are in RFC 6750",
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
            "550e8400-e29b-41d4-a716-446655440000",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
            "Ünïcödé prose — 日本語のテキスト",
        ];
        let r = Redactor::builtin();
        let long = "A".repeat(10_000);
        for text in cases.into_iter().chain([long.as_str()]) {
            let out = r.redact(text);
            assert!(
                matches!(out, Cow::Borrowed(_)),
                "changed {text:?} to {out:?}"
            );
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let r = Redactor::builtin();
        let mut inputs: Vec<String> = positives().into_iter().map(|p| p.1).collect();
        inputs.push(inputs.join("\n"));
        for input in inputs {
            let once = r.redact(&input).into_owned();
            let twice = r.redact(&once);
            assert!(
                matches!(twice, Cow::Borrowed(_)),
                "second pass changed {once:?} to {twice:?}"
            );
        }
    }

    #[test]
    fn a_placeholder_that_completes_an_earlier_match_is_redacted_in_the_same_call() {
        // Found by fuzz/fuzz_targets/redact.rs: the first pass left a URL password for a second.
        let r = Redactor::builtin();
        let (once, classes) = r.redact_report("w://:pwd=/;@");
        assert_eq!(once, "w://:URL_PASSWORD_REDACTED@");
        assert_eq!(classes, ["url-password", "password-assignment"]);
        assert!(matches!(r.redact(&once), Cow::Borrowed(_)), "{once:?}");
    }

    #[test]
    fn placeholders_are_never_rematched() {
        let r = Redactor::builtin();
        for &(_, _, ph, _) in BUILTIN {
            for framed in [
                ph.to_owned(),
                format!("password={ph}"),
                format!("token: \"{ph}\""),
                format!("Bearer {ph}"),
                format!("Authorization: {ph}"),
                format!("https://u:{ph}@host"),
            ] {
                assert!(
                    matches!(r.redact(&framed), Cow::Borrowed(_)),
                    "{framed:?} changed"
                );
            }
        }
    }

    #[test]
    fn json_strings_and_keys_are_redacted() {
        let r = Redactor::builtin();
        let mut v = serde_json::json!({
            "count": 3, "ok": true, "none": null, "ratio": 0.5,
            "note": "plain",
            "password": "hunter2",
            "headers": { "Authorization": "Basic dXNlcjpwYXNz" },
            "nested": { "items": ["plain", "id AKIAIOSFODNN7EXAMPLE", { "deep": "password=letmein" }] },
            "AKIAIOSFODNN7EXAMPLE": 1,
            "AKIAIOSFODNN7EXAMPLF": 2,
        });
        assert!(r.redact_json(&mut v));
        let text = v.to_string();
        for secret in ["hunter2", "dXNlcjpwYXNz", "AKIAIOSFODNN7EXAMPL", "letmein"] {
            assert!(!text.contains(secret), "{secret} survived in {text}");
        }
        assert_eq!(v["count"], 3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["none"], Value::Null);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["note"], "plain");
        assert_eq!(v["password"], "PASSWORD_REDACTED");
        assert_eq!(v["headers"]["Authorization"], "AUTHORIZATION_REDACTED");
        assert_eq!(v["nested"]["items"][0], "plain");
        assert_eq!(v["nested"]["items"][1], "id AWS_KEY_REDACTED");
        // Both secret keys survive as distinct entries, so no value is silently lost.
        let mut values = [&v["AWS_KEY_REDACTED"], &v["AWS_KEY_REDACTED#2"]].map(|x| x.as_i64());
        values.sort();
        assert_eq!(values, [Some(1), Some(2)]);
        assert!(!r.redact_json(&mut v), "second pass changed {v}");

        let session = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let mut clean =
            serde_json::json!({ "a": ["b", 1, false], "session": session, "tokens": 7 });
        let before = clean.clone();
        assert!(!r.redact_json(&mut clean));
        assert_eq!(clean, before);
    }

    fn spec(name: &str, regex: &str, placeholder: &str) -> PatternSpec {
        PatternSpec {
            name: name.into(),
            regex: regex.into(),
            placeholder: placeholder.into(),
        }
    }

    #[test]
    #[rustfmt::skip]
    fn extra_patterns_are_checked() {
        let ok = spec("internal-ticket-token", "TKT-[0-9A-F]{16}", "TICKET_TOKEN_REDACTED");
        // (extras, substring the error message must contain, or "" for success)
        let cases = [
            (vec![ok.clone()], ""),
            (vec![spec("bad", "TKT-[", "X_REDACTED")], "`bad` has an invalid regex"),
            (vec![spec("  ", "x", "X_REDACTED")], "#1 has an empty `name`"),
            (vec![spec("t", "x", " ")], "`t` has an empty `placeholder`"),
            (vec![spec("t", "(TKT-1)?", "X_REDACTED")], "can match empty text"),
            (vec![spec("t", "tok_[a-z]+", "tok_redacted_now")], "is itself matched by pattern `t`"),
            (vec![spec("t", "x[0-9]+", "password=1")], "matched by pattern `password-assignment`"),
            (vec![ok.clone(), ok.clone()], "used twice"),
            (vec![spec("jwt", "x[0-9]", "X_REDACTED")], "used twice"),
        ];
        for (extra, want) in cases {
            match (Redactor::with_extra(&extra), want) {
                (Ok(_), "") => {}
                (Ok(_), want) => panic!("{extra:?} accepted, wanted error with {want:?}"),
                (Err(e), want) => assert!(!want.is_empty() && e.to_string().contains(want), "{extra:?}: {e}"),
            }
        }
        let r = Redactor::with_extra(&[ok]).unwrap();
        assert_eq!(r.class_names().last(), Some(&"internal-ticket-token"));
        assert_eq!(r.class_names().len(), BUILTIN.len() + 1);
        let (out, classes) = r.redact_report("see TKT-0123456789ABCDEF now");
        assert_eq!(out, "see TICKET_TOKEN_REDACTED now");
        assert_eq!(classes, ["internal-ticket-token"]);
    }

    #[test]
    fn extra_pattern_secret_group_keeps_context() {
        let pin = spec("pin", r"pin=(?P<secret>\d{4,})", "PIN_REDACTED");
        let r = Redactor::with_extra(&[pin]).unwrap();
        assert_eq!(r.redact("card pin=123456 ok"), "card pin=PIN_REDACTED ok");
        assert!(matches!(
            r.redact("card pin=PIN_REDACTED ok"),
            Cow::Borrowed(_)
        ));
    }

    fn temp_file(tag: &str, contents: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("redact-{}-{nanos}-{tag}.toml", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    #[rustfmt::skip]
    fn patterns_file_round_trip_and_errors() {
        let good = "[[pattern]]\nname = \"internal-ticket-token\"\nregex = 'TKT-[0-9A-F]{16}'\nplaceholder = \"TICKET_TOKEN_REDACTED\"\n";
        // (file contents, substring the error must contain, or "" for success)
        let cases = [
            (good.to_owned(), ""),
            (String::new(), ""),
            (format!("{good}flags = \"i\"\n"), "unknown field `flags`"),
            ("[[patterns]]\nname = \"x\"\n".to_owned(), "unknown field `patterns`"),
            ("[[pattern]]\nname = \"x\"\nregex = 'TKT-['\nplaceholder = \"X_REDACTED\"\n".to_owned(), "`x` has an invalid regex"),
            ("[[pattern]]\nname = \"x\"\n".to_owned(), "missing field"),
        ];
        for (i, (contents, want)) in cases.into_iter().enumerate() {
            let path = temp_file(&format!("case{i}"), &contents);
            let result = load_patterns_file(&path);
            std::fs::remove_file(&path).unwrap();
            match result {
                Ok(specs) => {
                    assert_eq!(want, "", "case {i} accepted");
                    let r = Redactor::with_extra(&specs).unwrap();
                    let want = if specs.is_empty() { "TKT-0123456789ABCDEF" } else { "TICKET_TOKEN_REDACTED" };
                    assert_eq!(r.redact("TKT-0123456789ABCDEF"), want);
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!want.is_empty() && msg.contains(want), "case {i}: {msg}");
                    assert!(msg.contains(&path.display().to_string()), "case {i} does not name the file: {msg}");
                }
            }
        }
        let missing = std::env::temp_dir().join("redact-no-such-file.toml");
        let e = load_patterns_file(&missing).unwrap_err();
        assert!(matches!(e, RedactError::ReadFile { .. }) && e.to_string().contains("redact-no-such-file"), "{e}");
    }

    #[test]
    fn adversarial_input_stays_fast() {
        // Four times the largest message the bridge accepts.
        const MB: usize = 256 << 10;
        let fill = |unit: &str| unit.repeat(MB / unit.len());
        let cases = [
            ("password=…", fill("password=")),
            ("BEGIN without END", fill("-----BEGIN PRIVATE KEY-----\n")),
            ("eyJ and dots", fill("eyJ.")),
            ("eyJ segments", fill("eyJabcdefghijk.")),
            ("a:a@", fill("a:a@")),
            ("scheme + a:a@", format!("x://{}", fill("a:a@"))),
            ("Authorization: ", fill("Authorization: ")),
            ("bearer bearer", fill("bearer ")),
            ("token=\"", fill("token=\"")),
            ("non-ASCII + password=", fill("é password=x ")),
            ("sk-ant-", fill("sk-ant-")),
        ];
        let r = Redactor::builtin();
        let mut worst = (Duration::ZERO, "");
        for (name, input) in &cases {
            let start = Instant::now();
            let out = r.redact(input);
            let took = start.elapsed();
            eprintln!("  {name}: {took:?}");
            // Not a benchmark (timings live in tests/src/bin): a backtracking
            // engine would take hours here, so a minute only catches that.
            assert!(took < Duration::from_secs(60), "{name} took {took:?}");
            assert!(out.len() <= input.len() * 3, "{name} grew too much");
            if took > worst.0 {
                worst = (took, name);
            }
        }
        eprintln!("worst adversarial case: {:?} took {:?}", worst.1, worst.0);
    }

    #[test]
    #[rustfmt::skip]
    fn the_normalisation_shadow_sees_through_invisible_and_fullwidth_characters() {
        let r = Redactor::builtin();
        // (input, exact output, classes)
        let cases = [
            ("key AKIA\u{200b}IOSFODNN7EXAMPLE ok", "key AWS_KEY_REDACTED ok", vec!["aws-access-key"]),
            ("AK\u{2060}IA\u{feff}IOSFODNN7EXAMPLE", "AWS_KEY_REDACTED", vec!["aws-access-key"]),
            ("ｐａｓｓｗｏｒｄ=hunter2 ok", "ｐａｓｓｗｏｒｄ=PASSWORD_REDACTED ok", vec!["password-assignment"]),
            ("password＝ｈｕｎｔｅｒ２", "password＝PASSWORD_REDACTED", vec!["password-assignment"]),
            ("tok\u{ad}en: s3cr\u{200d}3t!", "tok\u{ad}en: SECRET_REDACTED", vec!["secret-assignment"]),
            ("password=abc;def", "password=PASSWORD_REDACTED", vec!["password-assignment"]),
            ("Server=db;Password=abc;User Id=app", "Server=db;Password=PASSWORD_REDACTED;User Id=app", vec!["password-assignment"]),
        ];
        for (input, want, want_classes) in cases {
            let (out, classes) = r.redact_report(input);
            assert_eq!(out, want, "for {input:?}");
            assert_eq!(classes, want_classes, "for {input:?}");
            assert!(matches!(r.redact(&out), Cow::Borrowed(_)), "not idempotent: {out:?}");
        }
    }

    #[test]
    fn a_secret_split_across_fields_is_caught_in_every_piece() {
        let r = Redactor::builtin();
        let fields: Vec<String> = ["src/main.rs", "AKIAIOSF", "ODNN7EXAMPLE", "README.md"]
            .map(String::from)
            .to_vec();
        let (out, changed) = r.redact_fields(&fields);
        assert!(changed);
        assert_eq!(
            out,
            [
                "src/main.rs",
                "AWS_KEY_REDACTED",
                "AWS_KEY_REDACTED",
                "README.md"
            ]
        );
        let plain: Vec<String> = ["a.rs", "b.rs"].map(String::from).to_vec();
        assert_eq!(r.redact_fields(&plain), (plain.clone(), false));
        let whole: Vec<String> = vec!["password=hunter2".into()];
        assert_eq!(r.redact_fields(&whole).0, ["password=PASSWORD_REDACTED"]);
    }

    #[test]
    fn redacted_text_is_the_redactors_output() {
        let red = Redactor::builtin();
        let r = red.redacted("id AKIAIOSFODNN7EXAMPLE");
        assert_eq!(r.as_str(), "id AWS_KEY_REDACTED");
        assert_eq!(r.to_string(), "id AWS_KEY_REDACTED");
        let (r, classes) = red.redacted_report("password=hunter2");
        assert!(!r.as_str().contains("hunter2"));
        assert_eq!(classes.len(), 1);
        let (j, changed) = red.redacted_json(serde_json::json!({"out": "AKIAIOSFODNN7EXAMPLE"}));
        assert!(changed && !j.as_str().contains("AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            format!("{:?}", r.as_str())
        );
    }
}
