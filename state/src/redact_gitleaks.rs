//! Operator redaction rules in gitleaks' configuration format, so a team's `.gitleaks.toml`
//! works as `--redaction-patterns FILE` unchanged (the file is told apart from the bridge's own
//! `[[pattern]]` format by its content; see [`looks_like_gitleaks`]).
//!
//! Supported: `[[rules]]` with `id`, `regex`, `secretGroup`, `keywords`, `entropy`, `description`,
//! `tags` and `[[rules.allowlists]]` (or the older single `[rules.allowlist]`); global
//! `[[allowlists]]` (with `targetRules`) and the older `[allowlist]`; allowlist `regexes`,
//! `regexTarget` (`secret`, `match`, `line`), `stopwords`, `condition` (`OR`, `AND`) and
//! `description`; `[extend]` with `useDefault` (the bridge's built-in catalogue always applies,
//! so both values are accepted) and `path` (relative to the file, two levels deep at most, as in
//! gitleaks). Anything else (path-only rules, `paths`/`commits` allowlists, `disabledRules`,
//! unknown fields, `\Q…\E` in a regex) is an error naming the rule, never silently dropped.
//!
//! Regexes are RE2 (Go) syntax. Rust's `regex` crate reads nearly all of it the same way, except
//! that `\d`, `\w`, `\s` and `\b` are Unicode-aware in Rust and ASCII-only in RE2; [`translate`]
//! rewrites them to the ASCII classes so a rule matches exactly what it matches under gitleaks.

use std::path::{Path, PathBuf};

use regex::Regex;
use toml::{Table, Value};

use crate::redact::Rule;

/// How deep `[extend] path` may chain (gitleaks' own limit).
const MAX_EXTEND_DEPTH: usize = 2;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {place}: {reason}")]
pub struct GitleaksError {
    path: PathBuf,
    /// `rule `id``, `global allowlist #n`, `[extend]`, or `top level`.
    place: String,
    reason: String,
}

/// Operator rules from a gitleaks file, compiled.
#[derive(Debug, Clone, Default)]
pub struct GitleaksRules {
    pub(crate) rules: Vec<Rule>,
    pub(crate) allowlists: Vec<Allowlist>,
}

impl GitleaksRules {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.allowlists.is_empty()
    }

    /// Appends `other`'s rules and allowlists (a later rule with the same id replaces the
    /// earlier, as gitleaks' `[extend]` does).
    pub fn merge(&mut self, other: GitleaksRules) {
        for rule in other.rules {
            self.rules.retain(|r| r.name() != rule.name());
            self.rules.push(rule);
        }
        self.allowlists.extend(other.allowlists);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Secret,
    Match,
    Line,
}

/// One gitleaks allowlist: a finding it matches is not redacted.
#[derive(Debug, Clone)]
pub(crate) struct Allowlist {
    regexes: Vec<Regex>,
    /// Lower case; a secret containing one is allowed.
    stopwords: Vec<String>,
    target: Target,
    /// `condition = "AND"`: every kind of criterion given must match.
    all: bool,
    /// For global allowlists: the rule ids it applies to (empty: all rules).
    target_rules: Vec<String>,
}

impl Allowlist {
    pub(crate) fn targets(&self, rule: &str) -> bool {
        self.target_rules.is_empty() || self.target_rules.iter().any(|r| r == rule)
    }

    pub(crate) fn allows(&self, secret: &str, whole: &str, line: &str) -> bool {
        let hay = match self.target {
            Target::Secret => secret,
            Target::Match => whole,
            Target::Line => line,
        };
        let by_regex =
            (!self.regexes.is_empty()).then(|| self.regexes.iter().any(|r| r.is_match(hay)));
        let lower = secret.to_ascii_lowercase();
        let by_word = (!self.stopwords.is_empty())
            .then(|| self.stopwords.iter().any(|w| lower.contains(w.as_str())));
        match (by_regex, by_word) {
            (None, None) => false,
            (Some(a), None) | (None, Some(a)) => a,
            (Some(a), Some(b)) if self.all => a && b,
            (Some(a), Some(b)) => a || b,
        }
    }
}

/// True when a parsed TOML file is in gitleaks' format rather than the bridge's `[[pattern]]`.
pub fn looks_like_gitleaks(table: &Table) -> bool {
    [
        "rules",
        "extend",
        "allowlist",
        "allowlists",
        "title",
        "minVersion",
    ]
    .iter()
    .any(|k| table.contains_key(*k))
}

/// Parses and compiles a gitleaks configuration read from `path`.
pub fn from_table(table: &Table, path: &Path) -> Result<GitleaksRules, GitleaksError> {
    load(table, path, 0)
}

fn load(table: &Table, path: &Path, depth: usize) -> Result<GitleaksRules, GitleaksError> {
    let err = |place: &str, reason: String| GitleaksError {
        path: path.to_owned(),
        place: place.to_owned(),
        reason,
    };
    let mut out = GitleaksRules::default();
    for key in table.keys() {
        match key.as_str() {
            "title" | "description" | "minVersion" | "rules" | "allowlist" | "allowlists"
            | "extend" => {}
            "pattern" => {
                return Err(err(
                    "top level",
                    "`[[pattern]]` tables cannot be mixed with gitleaks `[[rules]]`; put them in separate files or convert them to `[[rules]]`".into(),
                ));
            }
            other => {
                return Err(err(
                    "top level",
                    format!("field `{other}` is not supported; remove it"),
                ));
            }
        }
    }
    if let Some(extend) = table.get("extend") {
        let extend = as_table(extend).ok_or_else(|| err("[extend]", "must be a table".into()))?;
        for (key, value) in extend {
            match key.as_str() {
                // The built-in catalogue always applies, whatever `useDefault` says.
                "useDefault" => {
                    value.as_bool().ok_or_else(|| {
                        err("[extend]", "`useDefault` must be true or false".into())
                    })?;
                }
                "path" => {
                    let rel = value
                        .as_str()
                        .ok_or_else(|| err("[extend]", "`path` must be a string".into()))?;
                    if depth >= MAX_EXTEND_DEPTH {
                        return Err(err(
                            "[extend]",
                            format!(
                                "`path` chains deeper than {MAX_EXTEND_DEPTH} files; flatten the configuration"
                            ),
                        ));
                    }
                    let base = path.parent().unwrap_or(Path::new(".")).join(rel);
                    let text = std::fs::read_to_string(&base).map_err(|e| {
                        err("[extend]", format!("cannot read `{}`: {e}", base.display()))
                    })?;
                    let parsed: Table = toml::from_str(&text).map_err(|e| {
                        err(
                            "[extend]",
                            format!("`{}` is not valid TOML: {e}", base.display()),
                        )
                    })?;
                    out.merge(load(&parsed, &base, depth + 1)?);
                }
                other => {
                    return Err(err(
                        "[extend]",
                        format!(
                            "`{other}` is not supported (only `useDefault` and `path`); built-in rules cannot be disabled or fetched from a URL"
                        ),
                    ));
                }
            }
        }
    }
    let mut own = GitleaksRules::default();
    for (n, value) in array_of_tables(table.get("allowlists"))
        .map_err(|r| err("top level", format!("`allowlists` {r}")))?
        .into_iter()
        .chain(table.get("allowlist").and_then(as_table))
        .enumerate()
    {
        let place = format!("global allowlist #{}", n + 1);
        own.allowlists
            .push(allowlist(value, true).map_err(|r| err(&place, r))?);
    }
    for (n, value) in array_of_tables(table.get("rules"))
        .map_err(|r| err("top level", format!("`rules` {r}")))?
        .into_iter()
        .enumerate()
    {
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{}", n + 1));
        let place = format!("rule `{id}`");
        if own.rules.iter().any(|r| r.name() == id) {
            return Err(err(
                &place,
                "the id is used twice in this file; rename one".into(),
            ));
        }
        own.rules
            .push(rule(value, &id).map_err(|r| err(&place, r))?);
    }
    out.merge(own);
    Ok(out)
}

fn as_table(v: &Value) -> Option<&Table> {
    v.as_table()
}

fn array_of_tables(v: Option<&Value>) -> Result<Vec<&Table>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_table()
                    .ok_or_else(|| "must be an array of tables".to_owned())
            })
            .collect(),
        Some(_) => Err("must be an array of tables ([[...]])".into()),
    }
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or_else(|| format!("`{field}` must be an array of strings"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`{field}` must be an array of strings"))
        })
        .collect()
}

fn rule(t: &Table, id: &str) -> Result<Rule, String> {
    let mut regex = None;
    let mut secret_group = 0usize;
    let mut keywords = Vec::new();
    let mut entropy = 0.0;
    let mut allow = Vec::new();
    for (key, value) in t {
        match key.as_str() {
            "id" => {
                let id = value.as_str().ok_or("`id` must be a string")?;
                if id.trim().is_empty() {
                    return Err("`id` is empty; give the rule a short kebab-case id".into());
                }
            }
            "description" | "tags" => {}
            "regex" => {
                let re = value.as_str().ok_or("`regex` must be a string")?;
                let translated = translate(re)?;
                regex = Some(
                    Regex::new(&translated)
                        .map_err(|e| format!("`regex` does not compile: {e}"))?,
                );
            }
            "secretGroup" => {
                let n = value
                    .as_integer()
                    .ok_or("`secretGroup` must be an integer")?;
                secret_group = usize::try_from(n).map_err(|_| "`secretGroup` must be 0 or more")?;
            }
            "keywords" => {
                keywords = strings(value, "keywords")?
                    .into_iter()
                    .map(|k| k.to_ascii_lowercase())
                    .collect();
                if keywords.iter().any(String::is_empty) {
                    return Err(
                        "`keywords` holds an empty string, which would match everything; remove it"
                            .into(),
                    );
                }
            }
            "entropy" => {
                entropy = value
                    .as_float()
                    .or_else(|| value.as_integer().map(|i| i as f64))
                    .ok_or("`entropy` must be a number")?;
            }
            "allowlists" => {
                for a in array_of_tables(Some(value)).map_err(|r| format!("`allowlists` {r}"))? {
                    allow.push(allowlist(a, false)?);
                }
            }
            "allowlist" => {
                let a = value.as_table().ok_or("`allowlist` must be a table")?;
                allow.push(allowlist(a, false)?);
            }
            "path" => {
                return Err("`path` rules match file paths, and messages have none; remove the rule or its `path`".into());
            }
            other => return Err(format!("field `{other}` is not supported; remove it")),
        }
    }
    let regex = regex.ok_or("has no `regex`; path-only rules do not apply to messages")?;
    if regex.is_match("") {
        return Err(
            "`regex` can match empty text; make every match need at least one character".into(),
        );
    }
    if secret_group >= regex.captures_len() {
        return Err(format!(
            "`secretGroup = {secret_group}` but the regex has only {} capture group(s)",
            regex.captures_len() - 1
        ));
    }
    let placeholder = placeholder_for(id);
    Ok(Rule::gitleaks(
        id,
        regex,
        placeholder,
        secret_group,
        keywords,
        entropy,
        allow,
    ))
}

/// `internal-ticket` → `INTERNAL_TICKET_REDACTED`.
fn placeholder_for(id: &str) -> String {
    let mut p: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    p.push_str("_REDACTED");
    p
}

fn allowlist(t: &Table, global: bool) -> Result<Allowlist, String> {
    let mut a = Allowlist {
        regexes: Vec::new(),
        stopwords: Vec::new(),
        target: Target::Secret,
        all: false,
        target_rules: Vec::new(),
    };
    for (key, value) in t {
        match key.as_str() {
            "description" => {}
            "regexes" => {
                for re in strings(value, "regexes")? {
                    let translated = translate(&re)?;
                    a.regexes
                        .push(Regex::new(&translated).map_err(|e| {
                            format!("allowlist regex `{re}` does not compile: {e}")
                        })?);
                }
            }
            "stopwords" => {
                a.stopwords = strings(value, "stopwords")?
                    .into_iter()
                    .map(|w| w.to_ascii_lowercase())
                    .collect();
            }
            "regexTarget" => {
                a.target = match value.as_str() {
                    Some("secret") => Target::Secret,
                    Some("match") => Target::Match,
                    Some("line") => Target::Line,
                    _ => {
                        return Err(
                            "`regexTarget` must be \"secret\", \"match\" or \"line\"".into()
                        );
                    }
                };
            }
            "condition" => {
                a.all = match value.as_str().map(str::to_ascii_uppercase).as_deref() {
                    Some("OR") => false,
                    Some("AND") => true,
                    _ => return Err("`condition` must be \"OR\" or \"AND\"".into()),
                };
            }
            "targetRules" if global => a.target_rules = strings(value, "targetRules")?,
            "paths" | "commits" => {
                return Err(format!(
                    "allowlist `{key}` match git {key}, and messages have none; remove `{key}` from this allowlist"
                ));
            }
            other => {
                return Err(format!(
                    "allowlist field `{other}` is not supported; remove it"
                ));
            }
        }
    }
    if a.regexes.is_empty() && a.stopwords.is_empty() {
        return Err("allowlist has neither `regexes` nor `stopwords`, so it would allow nothing; add one or remove it".into());
    }
    Ok(a)
}

/// Rewrites an RE2 regex for Rust's `regex` crate: `\d \w \s \b` (and their negations) become
/// their ASCII forms, as RE2 means them. `\Q…\E` and `\C` have no equivalent and are errors.
pub(crate) fn translate(re: &str) -> Result<String, String> {
    let mut out = String::with_capacity(re.len() + 16);
    let mut chars = re.chars().peekable();
    // Inside a bracket class; `class_start` marks the position right after `[` or `[^`, where
    // a `]` is a literal.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_start = std::mem::replace(&mut class_start, false);
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("`regex` ends with a lone backslash".into());
                };
                let rep = match (n, in_class) {
                    ('Q', _) => return Err("`\\Q…\\E` quoting is not supported; escape the special characters one by one instead".into()),
                    ('C', _) => return Err("`\\C` (any byte) is not supported; use `.`".into()),
                    ('d', false) => "[0-9]",
                    ('d', true) => "0-9",
                    ('D', false) => "[^0-9]",
                    ('D', true) => "[:^digit:]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('w', true) => "0-9A-Za-z_",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('W', true) => "[:^word:]",
                    ('s', false) => r"[\t\n\f\r ]",
                    ('s', true) => r"\t\n\f\r ",
                    ('S', false) => r"[^\t\n\f\r ]",
                    ('S', true) => "[:^space:]",
                    ('b', false) => r"(?-u:\b)",
                    ('B', false) => r"(?-u:\B)",
                    _ => {
                        out.push('\\');
                        out.push(n);
                        continue;
                    }
                };
                out.push_str(rep);
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class_start = true;
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class `[:alpha:]`: copy through its closing `:]`.
                out.push('[');
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            ']' if in_class && !at_start => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "redact_gitleaks_tests.rs"]
mod tests;
