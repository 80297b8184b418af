//! `--tls` / `--ssh`: what an engine reached over TCP with mutual TLS, or
//! over ssh, adds per job.
//!
//! The same jobs run twice in one run against the same daemon: first with
//! the runner on this host's socket, then with a runner whose only engine
//! is that daemon reached the other way: behind a loopback TLS proxy
//! (`bridge_tests::tls_engine`, certificates made for the run), or through
//! a loopback sshd (`bridge_tests::ssh_engine`). bollard's TLS client keeps
//! no idle connections, so every engine call of a job pays a TCP connect and
//! a TLS handshake; over ssh each new connection is an ssh login and a
//! `docker system dial-stdio`, and idle ones are kept. The warm pool moves
//! create and start off the job's path, the hand-over and the result
//! remain. The proxy's (or sshd's) own copying is included.

use std::time::Duration;

use bridge_tests::bench::{Samples, fmt_ms};
use bridge_tests::ssh_engine::SshEngine;
use bridge_tests::tls_engine::TlsEngine;
use bridge_tests::yolo::{self, Runner};

use crate::docker::{docker_run_args, time_many};
use crate::flow::{Exec, Setup, approve_batch, sequential, wait_for_warm_pool};
use crate::report::load;

/// The second way to the same daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls,
    Ssh,
}

impl Kind {
    fn title(self) -> &'static str {
        match self {
            Kind::Tls => "TCP + TLS",
            Kind::Ssh => "ssh",
        }
    }
    fn flag(self) -> &'static str {
        match self {
            Kind::Tls => "--tls",
            Kind::Ssh => "--ssh",
        }
    }
}

/// Keeps the second way open while its runner uses it (closed on drop).
#[allow(dead_code)] // held for its Drop, never read
enum Way {
    Tls(TlsEngine),
    Ssh(SshEngine),
}

/// One engine's sequential runs: paused, then back to back.
struct Side {
    paused: Vec<Exec>,
    back_to_back: Vec<Exec>,
}

async fn side(st: &Setup, runs: usize, pause: Duration) -> anyhow::Result<Side> {
    let batch = approve_batch(st, 1).await?;
    wait_for_warm_pool(st).await?;
    sequential(st, &batch, pause).await?;
    let batch = approve_batch(st, runs).await?;
    wait_for_warm_pool(st).await?;
    let paused = sequential(st, &batch, pause).await?;
    let batch = approve_batch(st, runs).await?;
    wait_for_warm_pool(st).await?;
    let back_to_back = sequential(st, &batch, Duration::ZERO).await?;
    Ok(Side {
        paused,
        back_to_back,
    })
}

/// Runs the comparison and returns its Markdown section.
pub async fn compare(
    st: &mut Setup,
    kind: Kind,
    runs: usize,
    pause: Duration,
    image: &str,
) -> anyhow::Result<String> {
    let load_before = load();
    let (tag, title) = (kind.flag().trim_start_matches('-'), kind.title());
    eprintln!("[{tag}] {runs} paused and {runs} back-to-back jobs on the local socket");
    let local = side(st, runs, pause).await?;

    eprintln!("[{tag}] the same daemon over {title}, through a loopback proxy or sshd");
    let (way, flag, env) = match kind {
        Kind::Tls => {
            let tls = TlsEngine::start().await?;
            let flag = tls.engine_flag("remote");
            (Way::Tls(tls), flag, Vec::new())
        }
        Kind::Ssh => {
            let ssh = tokio::task::spawn_blocking(SshEngine::start).await??;
            let (flag, env) = (ssh.engine_flag("remote"), ssh.runner_env());
            (Way::Ssh(ssh), flag, env)
        }
    };
    st.runner.stop(Duration::from_secs(20))?;
    let pool_arg = st.pool_size.to_string();
    st.runner =
        Runner::start_with_env(&st.db, &["--pool-size", &pool_arg, "--engine", &flag], &env)?;
    st.runner_id = {
        let db = st.db.clone();
        tokio::task::spawn_blocking(move || yolo::runner_id(&db)).await??
    };
    let remote = side(st, runs, pause).await?;

    // Stopped while the second way is still open: it removes its warm
    // containers through the remote engine.
    st.runner.stop(Duration::from_secs(20))?;
    let left = yolo::containers_with_label(&format!("mcp-bridge.runner={}", st.runner_id))?;
    anyhow::ensure!(
        left.is_empty(),
        "the {title} runner left {} container(s) behind",
        left.len()
    );
    drop(way);

    eprintln!("[docker] {runs} × docker run --rm with the same hardening");
    let docker_run = time_many(&docker_run_args(image), Some("hi\n"), 1, runs).await?;
    let mut out = format!(
        "## An engine over {title}: its cost per job, {} (`bench_yolo {}`)\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        kind.flag()
    );
    out += &format!(
        "Load average (1 min) before / after: {load_before} / {}. `echo hi`, approved → result from the agent's side (MCP stdio), {runs} jobs per row.\n\n",
        load()
    );
    out += &format!(
        "| | local socket p50 / p95 | {title} p50 / p95 | {title} − local, p50 | ÷ `docker run --rm` p50 (local / {title}) |\n|---|---|---|---|---|\n"
    );
    let dr = docker_run.p(50.0).as_secs_f64();
    for (name, l, r) in [
        ("paused", &local.paused, &remote.paused),
        ("back to back", &local.back_to_back, &remote.back_to_back),
    ] {
        let lat = |runs: &[Exec]| Samples::new(runs.iter().map(|e| e.latency).collect());
        let (l, r) = (lat(l), lat(r));
        out += &format!(
            "| {name} | {} / {} | {} / {} | {} | {:.3}× / {:.3}× |\n",
            fmt_ms(l.p(50.0)),
            fmt_ms(l.p(95.0)),
            fmt_ms(r.p(50.0)),
            fmt_ms(r.p(95.0)),
            fmt_ms(r.p(50.0).saturating_sub(l.p(50.0))),
            l.p(50.0).as_secs_f64() / dr,
            r.p(50.0).as_secs_f64() / dr,
        );
    }
    out += &format!(
        "\n`docker run --rm` (same hardening, local socket) p50 {} in the same run.\n",
        fmt_ms(docker_run.p(50.0))
    );
    Ok(out)
}
