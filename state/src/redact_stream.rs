//! Redaction of a byte stream as it arrives (a command's output), before
//! anything is cut or truncated, so a secret split across chunks or across
//! the runner's head/tail cut is still seen whole and replaced whole.
//!
//! The stream is decoded as UTF-8 (invalid bytes become U+FFFD) and held in a
//! buffer. Text is released only once at least [`WINDOW`] bytes follow it, and
//! only at a cut point that no rule's match straddles: a secret shorter than
//! the window is therefore always redacted in one piece. A match that grows
//! past the window (an unterminated `-----BEGIN … PRIVATE KEY-----`, or a
//! megabyte-long "token") is replaced by its placeholder up to the cut, and
//! the rest of it is dropped up to where such a secret ends: the END line for
//! private keys, the end of the line for every other rule (all built-in
//! rules except `private-key` match within one line). At the end of the
//! stream the rest is redacted as a whole text, where the private-key rule
//! already redacts an unterminated block to the end.
//!
//! The rules come from a [`Redactor`], so a larger catalogue plugs in here
//! unchanged; [`window_for`] checks that the window covers every rule whose
//! matches have a bounded length.

use std::sync::OnceLock;

use regex::Regex;

use crate::redact::Redactor;

/// Text held back so that a secret split across chunks is seen whole: at
/// least as long as the longest secret a rule is meant to catch. Private keys
/// are the longest: an 8192-bit RSA key is about 6.4 KB of PEM, a PGP secret
/// key block with an RSA-4096 key and subkey about 7 KB.
pub const WINDOW: usize = 16 * 1024;

/// How much text is redacted and released at once beyond the window, so the
/// overlap that is scanned twice stays small next to the text released.
const BATCH: usize = 64 * 1024;

/// The longest a private key's END line can be; kept when searching for it.
const END_LINE_MAX: usize = 64;

/// The window for `red`: [`WINDOW`], or more if some rule can match longer
/// text with a bounded length (an operator pattern such as `[A-Z]{20000}`).
/// Rules with unbounded matches (`{30,}`, `.*?`) rely on the over-long path
/// described in the module docs.
pub fn window_for(red: &Redactor) -> usize {
    (0..red.rule_count())
        .filter_map(|i| max_match_len(red.rule(i).1))
        .fold(WINDOW, usize::max)
}

/// The longest text `pattern` can match, in bytes, if that is bounded.
pub fn max_match_len(pattern: &str) -> Option<usize> {
    regex_syntax::parse(pattern)
        .ok()?
        .properties()
        .maximum_len()
}

/// Where the rest of an over-long secret ends.
#[derive(Debug, Clone)]
enum Swallow {
    /// At the next newline (kept).
    Line,
    /// Just after the next match of this regex.
    Until(&'static Regex),
}

/// Redacts one stream incrementally; feed it with [`push`](Self::push) and
/// end it with [`finish`](Self::finish). Memory stays below
/// `window + BATCH + chunk` bytes whatever the stream's length.
#[derive(Debug)]
pub struct StreamRedactor {
    /// `base` with every document-gated rule whose keyword the stream has
    /// held so far enabled for the rest of it: a rule gated on a keyword that
    /// is not part of its match (`kind: Secret` for the data lines below it)
    /// still runs once that keyword has left the window.
    red: Redactor,
    base: Redactor,
    /// The document-gating keywords alone (a few), and the rule of each.
    gates: Option<(aho_corasick::AhoCorasick, Vec<usize>)>,
    /// Per rule: has its keyword occurred in the stream.
    keyword_seen: Vec<bool>,
    /// How many bytes at the end of `pending` have not been looked at for
    /// keywords (text leaves `pending` only from the front).
    unscanned: usize,
    window: usize,
    batch: usize,
    /// The start of a UTF-8 sequence split across chunks (at most 3 bytes).
    partial: Vec<u8>,
    /// Decoded text not yet released.
    pending: String,
    /// Inside an over-long secret whose placeholder was already released.
    swallow: Option<Swallow>,
    /// Per rule: did it redact anything.
    hit: Vec<bool>,
}

impl StreamRedactor {
    pub fn new(red: &Redactor) -> Self {
        Self {
            window: window_for(red),
            batch: BATCH,
            red: red.clone(),
            base: red.clone(),
            gates: document_gates(red),
            keyword_seen: vec![false; red.rule_count()],
            unscanned: 0,
            partial: Vec::new(),
            pending: String::new(),
            swallow: None,
            hit: vec![false; red.rule_count()],
        }
    }

    /// A smaller window, for tests that place secrets at every offset.
    #[cfg(test)]
    fn with_window(red: &Redactor, window: usize, batch: usize) -> Self {
        Self {
            window,
            batch,
            ..Self::new(red)
        }
    }

    /// Takes the next chunk; returns redacted text that is final (possibly
    /// empty). Concatenating every return value and [`finish`](Self::finish)
    /// gives the redacted stream.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let before = self.pending.len();
        self.decode(bytes);
        self.unscanned += self.pending.len() - before;
        let mut out = String::new();
        loop {
            if self.swallow.is_some() {
                self.swallow_step();
                if self.swallow.is_some() {
                    break;
                }
            }
            if self.pending.len() < self.window + self.batch {
                break;
            }
            let target = floor_boundary(&self.pending, self.pending.len() - self.window);
            self.release(target, &mut out);
        }
        out
    }

    /// Ends the stream: returns the rest, redacted.
    pub fn finish(&mut self) -> String {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.pending.push_str(&String::from_utf8_lossy(&rest));
        }
        if self.swallow.is_some() {
            self.swallow_step();
            if self.swallow.take().is_some() {
                // The over-long secret ran to the end of the stream.
                self.pending.clear();
            }
        }
        let rest = std::mem::take(&mut self.pending);
        self.redact_piece(&rest)
    }

    /// Names of the classes redacted so far, in rule order.
    pub fn classes(&self) -> Vec<String> {
        self.hit
            .iter()
            .enumerate()
            .filter(|(_, h)| **h)
            .map(|(i, _)| self.red.rule(i).0.to_owned())
            .collect()
    }

    fn decode(&mut self, bytes: &[u8]) {
        let joined: Vec<u8>;
        let mut bytes = if self.partial.is_empty() {
            bytes
        } else {
            let mut v = std::mem::take(&mut self.partial);
            v.extend_from_slice(bytes);
            joined = v;
            &joined[..]
        };
        loop {
            match std::str::from_utf8(bytes) {
                Ok(s) => {
                    self.pending.push_str(s);
                    return;
                }
                Err(e) => {
                    let (good, bad) = bytes.split_at(e.valid_up_to());
                    // Checked just above: `good` is valid UTF-8.
                    self.pending
                        .push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            self.pending.push(char::REPLACEMENT_CHARACTER);
                            bytes = &bad[n..];
                        }
                        None => {
                            // An incomplete sequence at the end: wait for more.
                            self.partial = bad.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Releases the text before a cut near `target`, moved back to a line
    /// start when one is near and then before any match that straddles it.
    fn release(&mut self, target: usize, out: &mut String) {
        self.note_keywords();
        let floor = target.saturating_sub(self.window / 2);
        let mut cut = match self.pending[..target].rfind('\n') {
            Some(i) if i + 1 > floor => i + 1,
            _ => target,
        };
        let spans = self.red.match_spans(&self.pending);
        while let Some(&(start, _, _)) = spans
            .iter()
            .filter(|(s, e, _)| *s < cut && cut < *e)
            .min_by_key(|(s, _, _)| *s)
        {
            cut = start;
        }
        if cut == 0 {
            // Overlapping matches cover the front: release up to where the
            // last of them ends, if it ended at all.
            let mut chain: Vec<usize> = Vec::new();
            let mut end = 0;
            while let Some(&(_, e, rule)) = spans
                .iter()
                .filter(|(s, e, _)| *e > end && (*s < end || *s == 0))
                .max_by_key(|(_, e, _)| *e)
            {
                end = e;
                chain.push(rule);
            }
            if end < self.pending.len() {
                cut = end;
            } else {
                self.drop_overlong(target, &spans, &chain, out);
                return;
            }
        }
        let rest = self.pending.split_off(cut);
        let piece = std::mem::replace(&mut self.pending, rest);
        if spans.is_empty() {
            // No rule matches anywhere in the buffer (the usual case): the
            // piece needs no second look.
            out.push_str(&piece);
        } else {
            out.push_str(&self.redact_piece(&piece));
        }
    }

    /// A match that started at least a window ago still runs to the end of
    /// the buffer: too long to hold. The placeholders of the matches
    /// covering the front stand for all of it; the text up to `target` is
    /// dropped now and the rest of the secret as it arrives.
    fn drop_overlong(
        &mut self,
        target: usize,
        spans: &[(usize, usize, usize)],
        chain: &[usize],
        out: &mut String,
    ) {
        let mut rules = chain.to_vec();
        rules.sort_unstable();
        rules.dedup();
        for &rule in &rules {
            out.push_str(self.red.rule(rule).2);
            self.hit[rule] = true;
        }
        let len = self.pending.len();
        let key_runs_on = spans
            .iter()
            .any(|&(_, e, rule)| e == len && self.red.rule(rule).0 == "private-key");
        self.swallow = Some(if key_runs_on {
            Swallow::Until(private_key_end())
        } else {
            Swallow::Line
        });
        self.pending.drain(..target);
    }

    /// Drops the rest of an over-long secret from the front of `pending`.
    fn swallow_step(&mut self) {
        match &self.swallow {
            None => {}
            Some(Swallow::Line) => match self.pending.find('\n') {
                Some(i) => {
                    self.pending.drain(..i);
                    self.swallow = None;
                }
                None => self.pending.clear(),
            },
            Some(Swallow::Until(end)) => match end.find(&self.pending) {
                Some(m) => {
                    let to = m.end();
                    self.pending.drain(..to);
                    self.swallow = None;
                }
                None => {
                    // Keep what could be the start of a split END line.
                    let keep = floor_boundary(
                        &self.pending,
                        self.pending.len().saturating_sub(END_LINE_MAX),
                    );
                    self.pending.drain(..keep);
                }
            },
        }
    }

    /// Enables, for the rest of the stream, every rule whose keyword the
    /// buffer holds now (see `red`).
    fn note_keywords(&mut self) {
        let Some((ac, rule_of)) = &self.gates else {
            return;
        };
        // The new text, and before it as much as a keyword split by the
        // last look could have left there: each byte is looked at about
        // once, not once per release.
        let len = self.pending.len();
        let fresh = self.unscanned.min(len);
        let from = floor_boundary(
            &self.pending,
            (len - fresh).saturating_sub(ac.max_pattern_len()),
        );
        self.unscanned = 0;
        let mut new = false;
        for m in ac.find_iter(&self.pending[from..]) {
            let rule = rule_of[m.pattern().as_usize()];
            new |= !std::mem::replace(&mut self.keyword_seen[rule], true);
        }
        if new {
            let seen: Vec<usize> = (0..self.keyword_seen.len())
                .filter(|&i| self.keyword_seen[i])
                .collect();
            self.red = self.base.with_rules_enabled(&seen);
        }
    }

    fn redact_piece(&mut self, piece: &str) -> String {
        let (out, classes) = self.red.redact_report(piece);
        for c in classes {
            if let Some(i) = (0..self.red.rule_count()).find(|&i| self.red.rule(i).0 == c) {
                self.hit[i] = true;
            }
        }
        out.into_owned()
    }
}

/// A scanner for the keywords of `red`'s document-gated rules, and the rule
/// of each keyword; `None` when it has none.
fn document_gates(red: &Redactor) -> Option<(aho_corasick::AhoCorasick, Vec<usize>)> {
    let (mut keywords, mut rule_of) = (Vec::new(), Vec::new());
    for (rule, words) in red.document_gates() {
        for w in words {
            keywords.push(w.clone());
            rule_of.push(rule);
        }
    }
    if keywords.is_empty() {
        return None;
    }
    let ac = aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&keywords)
        .ok()?;
    Some((ac, rule_of))
}

fn private_key_end() -> &'static Regex {
    static END: OnceLock<Regex> = OnceLock::new();
    END.get_or_init(|| {
        Regex::new(
            r"-----END (?:(?:RSA|EC|OPENSSH|DSA|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----",
        )
        .expect("the END-line regex compiles (covered by tests)")
    })
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
#[path = "redact_stream_tests.rs"]
mod tests;
