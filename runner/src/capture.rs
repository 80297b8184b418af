//! Bounded capture of a command's output: the first and last bytes of each
//! stream are kept, the middle is counted and dropped, so a command that
//! prints a gigabyte costs the runner a fixed amount of memory and the
//! result still shows how it started and how it ended. It receives text
//! the streaming redactor already redacted, so no cut can split a secret.

use std::collections::VecDeque;

/// One stream (stdout or stderr).
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    half: usize,
    total: u64,
}

impl Capture {
    /// Keeps at most `cap` bytes: `cap / 2` from the start and the rest
    /// from the end.
    pub fn new(cap: u64) -> Self {
        let half = (cap / 2) as usize;
        Self {
            head: Vec::new(),
            tail: VecDeque::new(),
            half,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.half.saturating_sub(self.head.len());
        let take = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if bytes.is_empty() {
            return;
        }
        let tail_cap = self.half.max(1);
        if bytes.len() >= tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - tail_cap..]);
        } else {
            let overflow = (self.tail.len() + bytes.len()).saturating_sub(tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(bytes);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text, with a marker where bytes were dropped. Invalid UTF-8
    /// is replaced, never rejected.
    pub fn render(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if self.tail.is_empty() && !self.truncated() {
            return head.into_owned();
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail);
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        if dropped == 0 {
            format!("{head}{tail}")
        } else {
            format!(
                "{head}\n[… {dropped} bytes omitted; {} bytes in total …]\n{tail}",
                self.total
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut c = Capture::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.render(), "hello world");
        assert!(!c.truncated());
    }

    #[test]
    fn long_output_keeps_head_and_tail_with_counts() {
        let mut c = Capture::new(10);
        for chunk in [&b"0123"[..], b"4567", b"89abcdef", b"ghij"] {
            c.push(chunk);
        }
        assert_eq!(c.total(), 20);
        assert!(c.truncated());
        let r = c.render();
        assert!(r.starts_with("01234\n"), "{r}");
        assert!(r.ends_with("\nfghij"), "{r}");
        assert!(r.contains("10 bytes omitted; 20 bytes in total"), "{r}");
    }

    #[test]
    fn memory_stays_bounded_for_huge_output() {
        let mut c = Capture::new(1024);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..1000 {
            c.push(&chunk);
        }
        assert_eq!(c.total(), 64 * 1024 * 1000);
        assert!(c.render().len() < 2048);
    }

    #[test]
    fn exactly_cap_is_not_truncated() {
        let mut c = Capture::new(8);
        c.push(b"abcdefgh");
        assert!(!c.truncated());
        assert_eq!(c.render(), "abcdefgh");
    }
}
