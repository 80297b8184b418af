//! Finding the sandbox wrapper's exit-status trailer in a command's output.
//!
//! When the command ends, the wrapper shell writes `\n<nonce> <status>\n` to
//! stdout and to stderr. The nonce is 128 random bits that reach the wrapper
//! on stdin only, so the command cannot print a trailer that counts: a line
//! with any other nonce is ordinary output. The trailer may arrive split
//! across frames, and a background process the command started may write
//! more output after it; so the filter looks for the first real trailer
//! anywhere in the stream, removes it, and passes everything else on.

/// Exit statuses are 0-255; a few more digits leave room without letting a
/// long digit run be held back.
const MAX_DIGITS: usize = 10;

/// Filters one stream (stdout or stderr).
#[derive(Debug)]
pub struct TrailerFilter {
    /// `\n<nonce> `
    prefix: Vec<u8>,
    /// Bytes that may be the start of the trailer, not yet passed on.
    held: Vec<u8>,
    /// The status from the real trailer, once seen.
    status: Option<i64>,
    /// Bytes passed on after the trailer (from background processes).
    after: u64,
}

enum Candidate {
    /// Could still become the trailer.
    Partial,
    /// Is the trailer, with this status.
    Complete(i64),
    /// Cannot be the trailer.
    Mismatch,
}

impl TrailerFilter {
    pub fn new(nonce: &str) -> Self {
        Self {
            prefix: format!("\n{nonce} ").into_bytes(),
            held: Vec::new(),
            status: None,
            after: 0,
        }
    }

    /// Appends to `out` what of `bytes` is the command's output.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.status.is_some() {
                self.after += rest.len() as u64;
                out.extend_from_slice(rest);
                return;
            }
            if self.held.is_empty() {
                // Only a newline can start the trailer: pass the rest on
                // in one piece.
                match rest.iter().position(|&b| b == b'\n') {
                    None => {
                        out.extend_from_slice(rest);
                        return;
                    }
                    Some(i) => {
                        out.extend_from_slice(&rest[..i]);
                        rest = &rest[i..];
                    }
                }
            }
            self.held.push(rest[0]);
            rest = &rest[1..];
            self.settle(out);
        }
    }

    /// The end of the stream: whatever was held is output after all.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.held);
    }

    /// The command's exit status, if the real trailer was seen.
    pub fn status(&self) -> Option<i64> {
        self.status
    }

    /// Output that arrived after the trailer.
    pub fn bytes_after(&self) -> u64 {
        self.after
    }

    fn settle(&mut self, out: &mut Vec<u8>) {
        loop {
            match self.candidate() {
                Candidate::Partial => return,
                Candidate::Complete(status) => {
                    self.status = Some(status);
                    self.held.clear();
                    return;
                }
                Candidate::Mismatch => {
                    // Pass on everything before the next newline, which may
                    // start the trailer again.
                    match self.held[1..].iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            out.extend(self.held.drain(..=i));
                        }
                        None => {
                            out.append(&mut self.held);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn candidate(&self) -> Candidate {
        let (held, prefix) = (&self.held, &self.prefix);
        if held.len() <= prefix.len() {
            return if prefix.starts_with(held) {
                Candidate::Partial
            } else {
                Candidate::Mismatch
            };
        }
        if !held.starts_with(prefix) {
            return Candidate::Mismatch;
        }
        let tail = &held[prefix.len()..];
        let (digits, done) = match tail.split_last() {
            Some((b'\n', digits)) => (digits, true),
            _ => (tail, false),
        };
        if digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return Candidate::Mismatch;
        }
        if !done {
            return Candidate::Partial;
        }
        match std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
        {
            Some(status) => Candidate::Complete(status),
            None => Candidate::Mismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";

    fn filter(stream: &[u8], chunk: usize) -> (Vec<u8>, Option<i64>, u64) {
        let mut f = TrailerFilter::new(NONCE);
        let mut out = Vec::new();
        for c in stream.chunks(chunk.max(1)) {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        (out, f.status(), f.bytes_after())
    }

    #[test]
    fn the_trailer_is_found_and_removed_at_any_split() {
        let cases: &[(&str, &str, Option<i64>, u64)] = &[
            // (stream, output, status, bytes after)
            ("hello\n\nNONCE 0\n", "hello\n", Some(0), 0),
            (
                "no newline at end\nNONCE 3\n",
                "no newline at end",
                Some(3),
                0,
            ),
            ("\nNONCE 255\n", "", Some(255), 0),
            // A background process wrote after the trailer.
            ("out\n\nNONCE 1\nlate\n", "out\nlate\n", Some(1), 5),
            // Forged: another nonce, no status, a letter, too many digits.
            (
                "\nffffffffffffffffffffffffffffffff 0\n",
                "\nffffffffffffffffffffffffffffffff 0\n",
                None,
                0,
            ),
            ("\nNONCE \n", "\nNONCE \n", None, 0),
            ("\nNONCE 1x\n", "\nNONCE 1x\n", None, 0),
            ("\nNONCE 12345678901\n", "\nNONCE 12345678901\n", None, 0),
            // A prefix of the nonce, then the real trailer.
            ("\n0123\n\nNONCE 7\n", "\n0123\n", Some(7), 0),
            // Only the first real trailer counts; a second is output.
            (
                "\nNONCE 4\n\nNONCE 0\n",
                "\nNONCE 0\n",
                Some(4),
                4 + NONCE.len() as u64,
            ),
            // Cut off mid-trailer: the held bytes are output after all.
            ("x\nNONCE 4", "x\nNONCE 4", None, 0),
        ];
        for (stream, output, status, after) in cases {
            let stream = stream.replace("NONCE", NONCE);
            let output = output.replace("NONCE", NONCE);
            for chunk in 1..=stream.len() {
                let (out, st, af) = filter(stream.as_bytes(), chunk);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    output,
                    "{stream:?} in chunks of {chunk}"
                );
                assert_eq!(st, *status, "{stream:?} in chunks of {chunk}");
                assert_eq!(af, *after, "{stream:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn plain_output_passes_through_untouched() {
        let stream: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 2, 100, 5000] {
            let (out, st, _) = filter(&stream, chunk);
            assert_eq!(out, stream);
            assert_eq!(st, None);
        }
    }
}
