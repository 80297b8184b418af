//! The Markdown section the benchmark prints for BENCHMARKS.md: targets,
//! diagnostics and, when run, the same-run Python baseline.

use std::time::Duration;

use bridge_tests::bench::{Samples, fmt_mb, fmt_ms};
use bridge_tests::bench_report::{revision, status};

use crate::scenarios::{Common, Rate, message};
use crate::{Counts, Options};

/// Everything one run measured.
pub struct Results {
    pub bridge: Common,
    pub ping_pong: Samples,
    pub delivery: Samples,
    pub empty: Samples,
    /// The transport floor: MCP `ping`, and `send_to_partner` alternating
    /// with it on the same client.
    pub floor_ping: Rate,
    pub floor_send: Rate,
    pub python: Option<Common>,
}

pub fn report(r: &Results, k: &Counts, opts: &Options, machine: &str) -> String {
    let (bridge, pp, dl, empty, python) =
        (&r.bridge, &r.ping_pong, &r.delivery, &r.empty, &r.python);
    let s = &bridge.sends;
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "## Bridge benchmark, {}{}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        if opts.quick {
            " (quick run: small counts)"
        } else {
            ""
        }
    ));
    line(format!("- Machine: {machine}"));
    line(format!(
        "- Built: release `bridge` from {}",
        revision(&["bridge"])
    ));
    line(format!("- Command: `{}`", opts.command));
    line(format!(
        "- Method: rmcp's client over stdio against `bridge serve --rate-limit off`, a fresh temporary database per scenario; messages of {} characters. Ping-pong and delivery use two server processes on one database, one per session.\n",
        message(0).chars().count()
    ));
    line("| metric | result | target | status | Python original (issue's figure, not measured in this run) |".into());
    line("|---|---|---|---|---|".into());
    line(format!(
        "| spawn → `initialize` answered, p50 / p95 of {} | {} / {} | < 50 ms | {} | 1.09 s |",
        bridge.init.len(),
        fmt_ms(bridge.init.p(50.0)),
        fmt_ms(bridge.init.p(95.0)),
        status(bridge.init.p(50.0) < Duration::from_millis(50)),
    ));
    line(format!(
        "| sends/s, one client, sequential ({} sends after {} warm-up) | {:.0} /s | ≥ 3000 /s | {} | 18 /s |",
        s.sent,
        k.send_warmup,
        s.per_sec,
        status(s.per_sec >= 3000.0),
    ));
    let (fp, fs) = (&r.floor_ping, &r.floor_send);
    let floor_ratio = fs.per_sec / fp.per_sec;
    line(format!(
        "| `send_to_partner` ÷ MCP `ping` rate, one client, sequential, same run ({:.0} /s ÷ {:.0} /s) | {:.2}× | ≥ 0.8× | {} | — |",
        fs.per_sec,
        fp.per_sec,
        floor_ratio,
        status(floor_ratio >= 0.8),
    ));
    line(format!(
        "| ping-pong (a message round trip between two agents, not MCP `ping`), p50 / p95 / p99 of {} | {} / {} / {} | p50 < 2 ms | {} | 112 ms (p50) |",
        pp.len(),
        fmt_ms(pp.p(50.0)),
        fmt_ms(pp.p(95.0)),
        fmt_ms(pp.p(99.0)),
        status(pp.p(50.0) < Duration::from_millis(2)),
    ));
    line(format!(
        "| long-poll delivery across processes (B waiting, A sends), p50 / p95 / p99 of {} | {} / {} / {} | p50 < 5 ms, p99 ≤ 10 ms (issue 15) | {} | — |",
        dl.len(),
        fmt_ms(dl.p(50.0)),
        fmt_ms(dl.p(95.0)),
        fmt_ms(dl.p(99.0)),
        status(dl.p(50.0) < Duration::from_millis(5) && dl.p(99.0) <= Duration::from_millis(10)),
    ));
    line(format!(
        "| idle RSS (startup, one exchange, {:.1} s idle) | {} | ≤ 12 MB (issue 15; this is the `release` build, `dist` is smaller) | {} | 56 MB |",
        k.idle.as_secs_f64(),
        fmt_mb(bridge.idle_kb),
        status(bridge.idle_kb * 1024 <= 12_000_000),
    ));
    line(format!(
        "| RSS after the sends scenario | {} | — | — | — |",
        fmt_mb(s.rss_kb)
    ));
    line(String::new());
    line("Diagnostics (no target):\n".into());
    line(format!(
        "- first spawn → `initialize` (creates the database): {}",
        fmt_ms(bridge.init_first)
    ));
    line(format!(
        "- one `send_to_partner` call: p50 {} / p99 {} / max {}",
        fmt_ms(s.latency.p(50.0)),
        fmt_ms(s.latency.p(99.0)),
        fmt_ms(s.latency.p(100.0)),
    ));
    line(format!(
        "- transport floor, {} each, alternating blocks: MCP `ping` p50 {} / p99 {}; `send_to_partner` p50 {} / p99 {}",
        fp.latency.len(),
        fmt_ms(fp.latency.p(50.0)),
        fmt_ms(fp.latency.p(99.0)),
        fmt_ms(fs.latency.p(50.0)),
        fmt_ms(fs.latency.p(99.0)),
    ));
    line(format!(
        "- `check_messages` on an empty inbox, no wait: p50 {} / p99 {} ({} calls)",
        fmt_ms(empty.p(50.0)),
        fmt_ms(empty.p(99.0)),
        empty.len(),
    ));
    line("- MB = 10^6 bytes (VmRSS from /proc/PID/status is in KiB).".into());
    if let (Some(py), Some((script, python))) = (&python, &opts.python) {
        let name = script.file_name().map_or_else(
            || script.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        line(String::new());
        line(format!(
            "Same-run baseline: the Python original (`{python} {name} DB`, run alone in a temporary directory so its optional rate limiter and YOLO modules are not loaded, i.e. unthrottled like `--rate-limit off`):\n"
        ));
        line("| metric | bridge | Python original | ratio |".into());
        line("|---|---|---|---|".into());
        let (b, p) = (bridge.init.p(50.0), py.init.p(50.0));
        line(format!(
            "| spawn → `initialize`, p50 | {} | {} | {:.0}× faster |",
            fmt_ms(b),
            fmt_ms(p),
            p.as_secs_f64() / b.as_secs_f64()
        ));
        line(format!(
            "| sends/s, sequential | {:.0} /s ({} sends) | {:.0} /s ({} sends) | {:.0}× |",
            s.per_sec,
            s.sent,
            py.sends.per_sec,
            py.sends.sent,
            s.per_sec / py.sends.per_sec
        ));
        line(format!(
            "| one `send_to_partner` call, p50 | {} | {} | {:.0}× faster |",
            fmt_ms(s.latency.p(50.0)),
            fmt_ms(py.sends.latency.p(50.0)),
            py.sends.latency.p(50.0).as_secs_f64() / s.latency.p(50.0).as_secs_f64()
        ));
        line(format!(
            "| idle RSS | {} | {} | {:.1}× smaller |",
            fmt_mb(bridge.idle_kb),
            fmt_mb(py.idle_kb),
            py.idle_kb as f64 / bridge.idle_kb as f64
        ));
    }
    out
}
