//! The baseline: `docker run --rm` with the runner's hardening flags, and
//! the docker CLI's own cost, timed in the same run; and which engine ran.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bridge_tests::bench::Samples;

use crate::{CALL_TIMEOUT, COMMAND};

/// The hardening flags of `runner/src/sandbox/spec.rs::container_spec`, as
/// `docker run` options, in the same order.
pub const DOCKER_HARDENING: &[&str] = &[
    "--network",
    "none",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,noexec,nosuid,nodev,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "--pids-limit",
    "128",
    "--memory",
    "512m",
    "--memory-swap",
    "512m",
    "--cpus",
    "1",
    "--init",
    "--log-driver",
    "none",
];

/// Times one docker CLI invocation (process start to exit); fails unless it
/// succeeds and, when given, prints `want`.
pub async fn time_docker(args: &[&str], want: Option<&str>) -> anyhow::Result<Duration> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let start = Instant::now();
    let out = tokio::time::timeout(CALL_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("`docker {}` took over {CALL_TIMEOUT:?}", args.join(" ")))?
        .with_context(|| format!("running `docker {}`", args.join(" ")))?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "`docker {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(want) = want {
        let got = String::from_utf8_lossy(&out.stdout);
        ensure!(
            got == want,
            "`docker {}` printed {got:?}, expected {want:?}",
            args.join(" ")
        );
    }
    Ok(took)
}

pub fn docker_run_args(image: &str) -> Vec<&str> {
    let mut v = vec!["run", "--rm"];
    v.extend_from_slice(DOCKER_HARDENING);
    v.extend_from_slice(&[image, "/bin/sh", "-c", COMMAND]);
    v
}

pub async fn time_many(
    args: &[&str],
    want: Option<&str>,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Samples> {
    for _ in 0..warmup {
        time_docker(args, want).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(time_docker(args, want).await?);
    }
    Ok(Samples::new(v))
}

/// `Server.Version` etc. of the engine, or a clear error when none answers.
pub fn docker_engine() -> anyhow::Result<String> {
    let out = std::process::Command::new("docker")
        .args([
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => bail!(
            "cannot run the `docker` CLI ({e}); this benchmark needs a Docker engine and its CLI"
        ),
    };
    if !out.status.success() {
        bail!(
            "no Docker engine answers (`docker version`: {}); start it (e.g. `service docker start`) and check this user may use its socket",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let info = std::process::Command::new("docker")
        .args([
            "info",
            "--format",
            "storage driver {{.Driver}}, cgroup v{{.CgroupVersion}}, default runtime {{.DefaultRuntime}}",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(if info.is_empty() {
        version
    } else {
        format!("{version}, {info}")
    })
}
