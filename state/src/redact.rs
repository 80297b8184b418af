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

use regex::{Regex, RegexSet};
use serde::Deserialize;
use serde_json::{Map, Value};

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
    #[error("redaction patterns file {path}: {source}")]
    InvalidFile {
        path: PathBuf,
        source: Box<RedactError>,
    },
}

/// A `key = value` assignment whose value is the secret, keeping the key. Accepts `=`, `:`, `:=`,
/// `==` and `=>`. A quoted value is taken whole (escaped quotes included); a bare one stops at
/// characters that end values in URLs and code. There is no left word boundary on purpose, so
/// `DB_PASSWORD=` and `access_token=` count too.
macro_rules! assignment {
    ($keys:literal) => {
        concat!(
            r#"(?i)(?:"#, $keys, r#")["']?[ \t]*(?::=|==|=>|[=:])[ \t]*"#,
            r#"(?:"(?P<secret_dq>(?:[^"\\\r\n]|\\.)+)"|'(?P<secret_sq>[^'\r\n]+)'|["']?(?P<secret>[^\s"'`,;&<>(){}\[\]]+))"#
        )
    };
}

/// The built-in classes, in the order they run: (name, regex, placeholder, skip values that are
/// plainly code). Order matters; see the module docs.
#[rustfmt::skip]
const BUILTIN: &[(&str, &str, &str, bool)] = &[
    // First, so no later rule nibbles at the base64 body. An unterminated block is redacted to
    // the end of the text: a truncated key is still a key.
    ("private-key", r"(?s)-----BEGIN (?:(?:RSA|EC|OPENSSH|DSA|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:(?:RSA|EC|OPENSSH|DSA|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----|\z)", "PRIVATE_KEY_REDACTED", false),
    ("aws-access-key", r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)", "AWS_KEY_REDACTED", false),
    ("aws-secret-key", r#"(?i)aws_?secret_?access_?key["']?[ \t]*[=:][ \t]*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|\z)"#, "AWS_SECRET_REDACTED", false),
    ("github-token", r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})", "GITHUB_TOKEN_REDACTED", false),
    // Before openai-key, which would otherwise claim every `sk-ant-` key.
    ("anthropic-key", r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}", "ANTHROPIC_KEY_REDACTED", false),
    // 32+ characters keeps kebab-case words like `sk-learn` out; real keys are 48 and up.
    ("openai-key", r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}", "OPENAI_KEY_REDACTED", false),
    ("slack-token", r"(?-u:\b)(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}", "SLACK_TOKEN_REDACTED", false),
    ("stripe-key", r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", "STRIPE_KEY_REDACTED", false),
    ("google-api-key", r"(?-u:\b)AIza[A-Za-z0-9_-]{35}", "GOOGLE_API_KEY_REDACTED", false),
    ("jwt", r"(?-u:\b)eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*", "JWT_REDACTED", false),
    // The password runs to the last `@` before the path, so an unencoded `@` in it does not leak
    // the rest. The user part may be empty (`redis://:pw@host`).
    ("url-password", r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@"'<>]*:(?P<secret>[^\s/?#"'<>]+)@"#, "URL_PASSWORD_REDACTED", false),
    // Before bearer-token: the whole credential goes, whatever its scheme.
    ("authorization-header", r#"(?i)(?-u:\b)authorization["']?[ \t]*:[ \t]*["']?(?P<secret>[^\s"'][^"'\r\n]*)"#, "AUTHORIZATION_REDACTED", false),
    ("bearer-token", r"(?i)(?-u:\b)bearer[ \t]+(?P<secret>[A-Za-z0-9._~+/=-]{8,})", "BEARER_TOKEN_REDACTED", false),
    // Last: anything more specific inside the value has already been claimed above.
    ("password-assignment", assignment!("password|passwd|passphrase|pwd"), "PASSWORD_REDACTED", true),
    ("secret-assignment", assignment!("(?:secret[_-]?access|secret|private|api)[_-]?key|secret|token"), "SECRET_REDACTED", true),
];

/// Upper bound on full passes over one text; see [`Redactor::run`].
const MAX_PASSES: usize = 4;

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    regex: Regex,
    placeholder: String,
    /// Capture groups named `secret…`; empty means "replace the whole match".
    secret_groups: Vec<usize>,
    /// Agents send a lot of code, where `password: String` or `token = get_token()` is no secret;
    /// the assignment rules skip such values rather than turn code into nonsense.
    skip_code: bool,
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
        })
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
/// (the field is private and there is no other constructor), so a function
/// that takes `&Redacted` cannot be handed raw text: the type is the proof
/// that redaction ran. Concatenating pieces means formatting plain text and
/// redacting the whole again, so no secret can straddle a seam.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Redacted(String);

impl Redacted {
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
    /// One pass over text that holds no secret (the usual case) answers "nothing to do".
    prefilter: RegexSet,
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
                    .map(|&(name, re, ph, code)| {
                        Rule::new(name, re, ph, code)
                            .expect("built-in redaction regexes compile (covered by tests)")
                    })
                    .collect();
                Self::from_rules(rules)
                    .expect("built-in redaction regexes fit in a RegexSet (covered by tests)")
            })
            .clone()
    }

    /// Built-in classes plus operator-supplied extra ones (appended after the built-ins).
    pub fn with_extra(extra: &[PatternSpec]) -> Result<Self, RedactError> {
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
        let redactor = Self::from_rules(rules)?;
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

    fn from_rules(rules: Vec<Rule>) -> Result<Self, RedactError> {
        let prefilter = RegexSet::new(rules.iter().map(|r| r.regex.as_str()))
            .map_err(|source| RedactError::TooLarge { source })?;
        Ok(Self { rules, prefilter })
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
                if map.keys().any(|k| self.prefilter.is_match(k)) {
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

    /// Names of all rules, in order (for `--help`/docs and tests).
    pub fn class_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// For the streaming redactor: every rule's whole matches in `text` as
    /// `(start, end, rule index)`; empty when no rule matches at all.
    pub(crate) fn match_spans(&self, text: &str) -> Vec<(usize, usize, usize)> {
        if !self.prefilter.is_match(text) {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
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
        if !self.prefilter.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut current = Cow::Borrowed(text);
        let mut hit = vec![false; self.rules.len()];
        // A placeholder can change what an earlier rule sees: in `w://:pwd=/;@` the `/` ends the
        // URL, but once `pwd=/` becomes `pwd=PASSWORD_REDACTED` the URL rule matches. Passes
        // repeat until one changes nothing, so redacting the output again is a no-op. Each pass
        // only turns text into placeholders; the cap is a guard, never reached in practice.
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            for (i, rule) in self.rules.iter().enumerate() {
                if let Some(next) = self.apply(rule, &current) {
                    hit[i] = true;
                    changed = true;
                    current = Cow::Owned(next);
                }
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

    /// One rule over `text`; None when it replaced nothing.
    fn apply(&self, rule: &Rule, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut last = 0;
        let mut changed = false;
        for caps in rule.regex.captures_iter(text) {
            let Some(whole) = caps.get(0) else { continue };
            let span = rule
                .secret_groups
                .iter()
                .find_map(|&i| caps.get(i))
                .unwrap_or(whole);
            let secret = span.as_str();
            if secret.is_empty()
                || self.rules.iter().any(|r| r.placeholder == secret)
                || (rule.skip_code && looks_like_code(secret, &text[whole.end()..]))
            {
                continue;
            }
            out.push_str(&text[last..span.start()]);
            out.push_str(&rule.placeholder);
            last = span.end();
            changed = true;
        }
        changed.then(|| {
            out.push_str(&text[last..]);
            out
        })
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
