//! The engine: the passes of rules over a text, each rule's secret spans after its gates
//! (placeholders, code, documentation placeholders, entropy, allowlists), the normalisation
//! shadow, and the raw match spans the streaming redactor cuts around.

use std::borrow::Cow;

use super::{MAX_PASSES, Redactor, Rule};
use crate::redact_normalize::Shadow;
use crate::redact_rules::{self, PLACEHOLDERS_PASS, SEMICOLON};

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

impl Redactor {
    /// For the streaming redactor: every rule's whole matches in `text` as
    /// `(start, end, rule index)`, including those only the normalisation
    /// shadow sees (mapped back to `text`), so no cut can fall inside a
    /// secret that [`Redactor::redact`] would catch; empty when no rule
    /// matches at all.
    pub(crate) fn match_spans(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let mut spans = Vec::new();
        if let Some(cand) = self.prefilter.candidates(text) {
            for (i, rule) in self.rules.iter().enumerate().filter(|(i, _)| cand[*i]) {
                spans.extend(
                    rule.regex()
                        .find_iter(text)
                        .map(|m| (m.start(), m.end(), i)),
                );
            }
        }
        if let Some(shadow) = Shadow::of(text)
            && let Some(cand) = self.prefilter.candidates(&shadow.text)
        {
            for (i, rule) in self.rules.iter().enumerate().filter(|(i, _)| cand[*i]) {
                for m in rule
                    .regex()
                    .find_iter(&shadow.text)
                    .filter(|m| !m.is_empty())
                {
                    let (a, b) = shadow.original(m.start(), m.end());
                    spans.push((a, b, i));
                }
            }
        }
        spans
    }

    pub(super) fn run<'a>(&self, text: &'a str, report: Option<&mut Vec<String>>) -> Cow<'a, str> {
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
    pub(super) fn secret_spans(&self, i: usize, text: &str) -> Vec<(usize, usize)> {
        let rule = &self.rules[i];
        let mut spans = Vec::new();
        let mut last = 0;
        // One set of capture slots for every match (`captures_iter` allocates a fresh one per
        // match: a quarter of the time on secret-dense text).
        let compiled = rule.compiled();
        let mut locs = compiled.regex.capture_locations();
        let named_secret = compiled
            .regex
            .capture_names()
            .position(|n| n == Some("secret"));
        let (mut at, mut last_end) = (0, None);
        while at <= text.len() {
            let Some(whole) = compiled.regex.captures_read_at(&mut locs, text, at) else {
                break;
            };
            // As `captures_iter` does: after an empty match search on from the next character,
            // and no empty match right where the previous match ended.
            at = if whole.is_empty() {
                whole.end() + text[whole.end()..].chars().next().map_or(1, char::len_utf8)
            } else {
                whole.end()
            };
            if whole.is_empty() && last_end == Some(whole.end()) {
                continue;
            }
            last_end = Some(whole.end());
            let (start, mut end) = compiled
                .secret_groups
                .iter()
                .filter_map(|&g| locs.get(g))
                .find(|(a, b)| a != b)
                .unwrap_or((whole.start(), whole.end()));
            if rule.flags & SEMICOLON != 0
                && named_secret.is_some_and(|g| locs.get(g) == Some((start, end)))
            {
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
}
