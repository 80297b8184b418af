//! Redaction of structured text: JSON values (strings and keys, and values framed by their key),
//! fields that belong together scanned joined (`files_involved`), and a YOLO proposal's reason
//! and command scanned line by line and joined.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{Redacted, Redactor};

impl Redactor {
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
        let out = self.redact_fields_report(fields);
        let changed = out.iter().zip(fields).any(|((o, _), f)| o != f);
        (out.into_iter().map(|(o, _)| o).collect(), changed)
    }

    /// A YOLO proposal's command and reason, as they are stored and shown: every line of each
    /// alone, and consecutive lines joined end to end (the reason's, then the command's), so a
    /// secret split across lines (a shell `\` continuation included) or between the reason and
    /// the command is caught in every piece. Lines are joined with nothing between them (a
    /// line's `\r` and continuation `\` are set aside first), and a match counts there only when
    /// its secret itself spans a seam, so joining cannot turn text on one side into a secret.
    /// Each text is then redacted whole as well, for rules whose context is on another line.
    /// The classes are those found in the command (pieces of split secrets included): the caller
    /// refuses a command with any, so a stored command is always the command itself.
    pub fn redacted_proposal(
        &self,
        command: &str,
        reason: Option<&str>,
    ) -> (Redacted, Option<Redacted>, Vec<String>) {
        // Per line: its body and what ends it (`\r`, `\`, both or nothing).
        let split = |text: &str| -> Vec<(String, String)> {
            text.split('\n')
                .map(|line| {
                    let body = line.strip_suffix('\r').unwrap_or(line);
                    let body = body.strip_suffix('\\').unwrap_or(body);
                    (body.to_owned(), line[body.len()..].to_owned())
                })
                .collect()
        };
        let mut lines = reason.map(split).unwrap_or_default();
        let reason_lines = lines.len();
        lines.extend(split(command));
        let bodies: Vec<String> = lines.iter().map(|(b, _)| b.clone()).collect();
        let out = self.redact_fields_report(&bodies);
        let join = |range: std::ops::Range<usize>| {
            range
                .map(|i| format!("{}{}", out[i].0, lines[i].1))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut hit = vec![false; self.rules.len()];
        for &i in out[reason_lines..].iter().flat_map(|(_, h)| h) {
            hit[i] = true;
        }
        // Then each text whole, as a message is: rules that take their
        // context from another line (a provider's name on the line above its
        // key, `kind: Secret` anywhere, netrc's `login` and `password`) see
        // it there. Whatever this finds in the command refuses it too.
        let mut whole = Vec::new();
        let command = self
            .run(&join(reason_lines..lines.len()), Some(&mut whole))
            .into_owned();
        let classes = self
            .rules
            .iter()
            .zip(hit)
            .filter(|(r, h)| *h || whole.contains(&r.name))
            .map(|(r, _)| r.name.clone())
            .collect();
        let reason = reason.map(|_| Redacted(self.run(&join(0..reason_lines), None).into_owned()));
        (Redacted(command), reason, classes)
    }

    /// [`Redactor::redact_fields`] with, per field, the rules that changed it.
    fn redact_fields_report(&self, fields: &[String]) -> Vec<(String, Vec<usize>)> {
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
                    if self.runs_on(i, &joined, &bounds, (s, e)) {
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
        fields
            .iter()
            .zip(cuts)
            .map(|(field, mut cut)| {
                cut.sort_unstable();
                let mut piece = String::with_capacity(field.len());
                let mut last = 0;
                let mut hit = Vec::new();
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
                    hit.push(i);
                    last = e;
                }
                piece.push_str(&field[last..]);
                let mut classes = Vec::new();
                let piece = self.run(&piece, Some(&mut classes)).into_owned();
                hit.extend(
                    (0..self.rules.len()).filter(|&i| classes.contains(&self.rules[i].name)),
                );
                (piece, hit)
            })
            .collect()
    }

    /// True when secret `span` of rule `i` in the joined `run` (fields at `bounds`) does not
    /// need the run's last or first field: the run without it holds the same secret, from the
    /// same start or to the same end. Such a match is a secret of fewer fields whose greedy shape
    /// (`ghp_[A-Za-z0-9]{30,}`) ran on into the next field's text (`ghp_…` then `please`): the
    /// shorter run already took that secret, and the neighbour's text is not part of it.
    fn runs_on(
        &self,
        i: usize,
        run: &str,
        bounds: &[(usize, usize)],
        span: (usize, usize),
    ) -> bool {
        let (s, e) = span;
        let (last_start, first_end) = (bounds[bounds.len() - 1].0, bounds[0].1);
        (e > last_start
            && self
                .secret_spans(i, &run[..last_start])
                .iter()
                .any(|&(a, _)| a == s))
            || (s < first_end
                && self
                    .secret_spans(i, &run[first_end..])
                    .iter()
                    .any(|&(_, b)| b + first_end == e))
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
