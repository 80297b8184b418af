//! Benchmarks the real release `bridge serve` over MCP stdio with rmcp's client: spawn→`initialize`, sequential sends/s, `send_to_partner` against the MCP `ping` floor, two-process ping-pong (a message round trip between two agents), long-poll delivery latency and RSS; prints a Markdown section for BENCHMARKS.md.
//!
//! Run: `cargo run --release -p bridge-tests --bin bench_bridge -- [--quick]
//! [--python-baseline SCRIPT [--python PYTHON]]`. `--quick` uses small counts
//! (a CI smoke run of a few seconds). `--python-baseline` also runs scenarios
//! 1, 2 and 5 against the Python original (`PYTHON SCRIPT DB`, PYTHON
//! defaulting to `python3`, which must have the `mcp` package) so the ratios
//! come from the same run. A missed target is reported, not an error: the
//! exit status is non-zero only when something failed.

mod report;
mod scenarios;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bridge_tests::bin;

use scenarios::{common, delivery, empty_checks, floor, ping_pong};
use target::Target;

/// How much work each scenario does.
struct Counts {
    inits: usize,
    sends: usize,
    send_warmup: usize,
    /// A sends run stops early after this long (the Python original is slow).
    send_budget: Duration,
    rounds: usize,
    round_warmup: usize,
    deliveries: usize,
    empty_checks: usize,
    /// MCP pings, and as many sends, in the floor scenario.
    floor: usize,
    idle: Duration,
}

const FULL: Counts = Counts {
    inits: 20,
    sends: 5000,
    send_warmup: 200,
    send_budget: Duration::from_secs(30),
    rounds: 500,
    round_warmup: 20,
    deliveries: 200,
    empty_checks: 1000,
    floor: 5000,
    idle: Duration::from_secs(2),
};

const QUICK: Counts = Counts {
    inits: 3,
    sends: 200,
    send_warmup: 20,
    send_budget: Duration::from_secs(3),
    rounds: 20,
    round_warmup: 2,
    deliveries: 10,
    empty_checks: 50,
    floor: 200,
    idle: Duration::from_millis(300),
};

struct Options {
    quick: bool,
    python: Option<(PathBuf, String)>,
    command: String,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut script = None;
    let mut python = "python3".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--python-baseline" => {
                script = Some(PathBuf::from(it.next().context(
                    "--python-baseline needs the path of the Python server script",
                )?));
            }
            "--python" => python = it.next().context("--python needs an interpreter")?.clone(),
            "-h" | "--help" => {
                println!(
                    "usage: bench_bridge [--quick] [--python-baseline SCRIPT [--python PYTHON]]"
                );
                std::process::exit(0);
            }
            other => bail!(
                "unknown argument `{other}`; usage: bench_bridge [--quick] [--python-baseline SCRIPT [--python PYTHON]]"
            ),
        }
    }
    let mut command = "cargo run --release -p bridge-tests --bin bench_bridge".to_owned();
    if !args.is_empty() {
        command = format!("{command} -- {}", args.join(" "));
    }
    if let Some(s) = &script {
        ensure!(s.is_file(), "no Python script at {}", s.display());
    }
    Ok(Options {
        quick,
        python: script.map(|s| (s, python)),
        command,
    })
}

fn machine() -> String {
    // Other work on the machine skews every number; say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{}; load average (1/5/15 min) at start {}",
        bridge_tests::machine_summary(),
        load.join(" / ")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = options()?;
    let k = if opts.quick { &QUICK } else { &FULL };
    let machine = machine();
    // Build (if needed) before any timing.
    let binary = bin("bridge");
    ensure!(binary.is_file(), "no bridge binary at {}", binary.display());

    let bridge = common(&Target::Bridge, k).await?;
    eprintln!("[bridge] ping-pong: {} rounds", k.rounds);
    let pp = ping_pong(k).await?;
    eprintln!("[bridge] long-poll delivery: {} samples", k.deliveries);
    let dl = delivery(k).await?;
    eprintln!("[bridge] empty checks: {}", k.empty_checks);
    let empty = empty_checks(k).await?;
    eprintln!(
        "[bridge] transport floor: {} MCP pings and {} sends, alternating",
        k.floor, k.floor
    );
    let (floor_ping, floor_send) = floor(k).await?;
    let python = match &opts.python {
        Some((script, python)) => {
            let t = Target::Python {
                script: script.clone(),
                python: python.clone(),
            };
            Some(common(&t, k).await?)
        }
        None => None,
    };

    let results = report::Results {
        bridge,
        ping_pong: pp,
        delivery: dl,
        empty,
        floor_ping,
        floor_send,
        python,
    };
    print!("{}", report::report(&results, k, &opts, &machine));
    Ok(())
}
