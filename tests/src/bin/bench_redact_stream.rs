//! Measures what redacting command output as it streams costs next to
//! redacting the same text in one piece: benign build-log text and text
//! dense with private keys and tokens, fed in 32 KiB frames as the runner
//! receives them; prints a Markdown table of MB/s and the ratio.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_redact_stream`
//! (`--quick` for 4 MiB inputs instead of 32 MiB).

use std::hint::black_box;
use std::time::Instant;

use bridge_state::redact::Redactor;
use bridge_state::redact_stream::StreamRedactor;

const FRAME: usize = 32 * 1024;

fn benign(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 64);
    let mut i = 0u64;
    while s.len() < bytes {
        s.push_str(&format!(
            "   Compiling crate-{i} v0.{}.{} (/src/crate-{i}) in {} ms\n",
            i % 7,
            i % 13,
            i * 37 % 1000
        ));
        i += 1;
    }
    s
}

/// A private key (about 1.7 KB) and a token every 8 KiB of log text.
fn dense(bytes: usize) -> String {
    let key_body: String = (0..25)
        .map(|i| {
            format!(
                "{}\n",
                "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(3)[i % 3..i % 3 + 64].to_owned()
            )
        })
        .collect();
    let mut s = String::with_capacity(bytes + 4096);
    let log = benign(8 * 1024);
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&log);
        s.push_str("-----BEGIN PRIVATE KEY-----\n");
        s.push_str(&key_body);
        s.push_str("-----END PRIVATE KEY-----\n");
        s.push_str(&format!("token=ghp_{:036}\n", i));
        i += 1;
    }
    s
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let size = if quick { 4 << 20 } else { 32 << 20 };
    let red = Redactor::builtin();
    println!(
        "| input | size | whole text (MB/s) | streaming, 32 KiB frames (MB/s) | streaming / whole |"
    );
    println!("|---|---|---|---|---|");
    for (name, text) in [
        ("benign build log", benign(size)),
        ("key + token every 8 KiB", dense(size)),
    ] {
        let t = Instant::now();
        let whole = red.redact(&text).into_owned();
        let whole_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut r = StreamRedactor::new(&red);
        let mut out = String::with_capacity(text.len());
        for frame in text.as_bytes().chunks(FRAME) {
            out.push_str(&r.push(frame));
        }
        out.push_str(&r.finish());
        let stream_s = t.elapsed().as_secs_f64();
        black_box(&whole);
        assert_eq!(
            out.len(),
            whole.len(),
            "{name}: streaming and whole-text redaction differ"
        );
        println!(
            "| {name} | {} MiB | {:.0} | {:.0} | {:.2}× |",
            text.len() >> 20,
            mb_per_s(text.len(), whole_s),
            mb_per_s(text.len(), stream_s),
            stream_s / whole_s
        );
    }
}
