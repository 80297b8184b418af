//! The stdin protocol between the runner and a sandbox's waiting process.
//!
//! A sandbox's first process ([`WAIT_FOR_COMMAND`]) waits for one line on
//! stdin: a nonce and the command in base64 ([`command_line`]). It runs the
//! command, then writes a trailer carrying the nonce and the exit status to
//! both streams. On the way back each output stream loses that trailer
//! ([`crate::trailer`]), is redacted as it streams, and is only then cut to
//! the head and tail the result keeps ([`OutputStream`]).

use bridge_state::redact::Redactor;
use bridge_state::redact_stream::StreamRedactor;

use crate::capture::Capture;
use crate::trailer::TrailerFilter;

/// The sandbox's first process: read one base64 line, run it with `sh -c`.
/// The image must provide `/bin/sh` and `base64` (busybox and Debian do).
/// When the command ends, the wrapper writes `\n<nonce> <exit code>\n` to
/// both streams (a builtin: it works even at the pids limit), so the runner
/// has the whole result without waiting for the engine to notice the
/// container's exit. The nonce arrives on stdin, so the command cannot see it
/// in its parent's arguments or environment; the runner counts only the
/// first trailer with that nonce, wherever it is in the stream
/// ([`crate::trailer`]). The decoded command ends in a guard `x` that is
/// taken off again: command substitution strips trailing newlines, and a
/// command ending in a backslash and a newline would otherwise run as one
/// ending in a bare backslash, not the bytes the operator approved.
pub const WAIT_FOR_COMMAND: &str = r#"IFS= read -r line || exit 97
nonce=${line%% *}
command=$(printf %s "${line#* }" | base64 -d; printf x)
/bin/sh -c "${command%x}" </dev/null
code=$?
printf '\n%s %s\n' "$nonce" "$code"
printf '\n%s %s\n' "$nonce" "$code" >&2"#;
/// A command whose output exceeds this many bytes in total is killed: past
/// that point it is only trying to exhaust something.
pub const OUTPUT_KILL_FACTOR: u64 = 64;

/// The one line the waiting process reads: `<nonce> <base64 command>\n`.
pub fn command_line(nonce: &str, command: &str) -> String {
    format!("{nonce} {}\n", base64_encode(command.as_bytes()))
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// One output stream on its way from the container to the result: the
/// wrapper's trailer is taken out, the rest is redacted as it streams and
/// only then cut to the head and tail the result keeps.
pub struct OutputStream {
    pub trailer: TrailerFilter,
    pub redactor: StreamRedactor,
    pub capture: Capture,
    /// Bytes the command wrote (trailer excluded).
    pub bytes: u64,
    scratch: Vec<u8>,
}

impl OutputStream {
    pub fn new(nonce: &str, red: &Redactor, cap: u64) -> Self {
        Self {
            trailer: TrailerFilter::new(nonce),
            redactor: StreamRedactor::new(red),
            capture: Capture::new(cap),
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    pub fn push(&mut self, frame: &[u8]) {
        self.scratch.clear();
        self.trailer.push(frame, &mut self.scratch);
        self.bytes += self.scratch.len() as u64;
        let clean = self.redactor.push(&self.scratch);
        self.capture.push(clean.as_bytes());
    }

    pub fn finish(&mut self) {
        self.scratch.clear();
        self.trailer.finish(&mut self.scratch);
        self.bytes += self.scratch.len() as u64;
        let mut clean = self.redactor.push(&self.scratch);
        clean.push_str(&self.redactor.finish());
        self.capture.push(clean.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn the_output_stream_drops_the_trailer_and_redacts_before_the_cut() {
        let red = Redactor::builtin();
        let mut s = OutputStream::new("n0nce", &red, 1 << 20);
        s.push(b"token ghp_");
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyzAB\n");
        s.push(b"\nn0nce 3\n");
        s.finish();
        assert_eq!(s.trailer.status(), Some(3));
        let out = s.capture.render();
        assert!(!out.contains("n0nce"), "{out}");
        assert!(!out.contains("ghp_0123"), "{out}");
        assert_eq!(s.bytes, 49);
    }

    #[test]
    fn the_command_line_is_the_nonce_and_the_base64_command() {
        assert_eq!(command_line("ab12", "echo hi"), "ab12 ZWNobyBoaQ==\n");
    }
}
