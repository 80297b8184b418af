//! Starting the runner next to `bridge serve --spawn-runner`. This is the
//! only process the bridge ever starts, and it starts nothing else: the
//! bridge executes no command itself.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::watch;

use bridge_state::Settings;

/// Keeps one runner child alive until told to stop.
pub struct Supervisor {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The runner binary: the given path, or `runner` beside this executable.
pub fn runner_binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match explicit {
        Some(b) => b,
        None => std::env::current_exe()
            .context("cannot locate this executable")?
            .with_file_name("runner"),
    };
    if !bin.is_file() {
        bail!(
            "runner binary {} not found; build it (`cargo build --release -p runner`) or pass --runner-bin PATH",
            bin.display()
        );
    }
    Ok(bin)
}

impl Supervisor {
    /// Starts the runner on the bridge's database, with the bridge's config
    /// and redaction patterns files so both redact the same secrets, and its
    /// policy file so both judge commands alike.
    /// `policy` is the bridge's `--policy` file: the runner re-checks every
    /// job against the same rules before it runs it.
    pub fn start(
        explicit: Option<PathBuf>,
        settings: &Settings,
        policy: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let bin = runner_binary(explicit)?;
        let db = settings.db.clone();
        let mut extra: Vec<std::ffi::OsString> = Vec::new();
        if let Some(c) = &settings.config_file {
            extra.extend(["--config".into(), c.into()]);
        }
        if let Some(p) = &settings.patterns_file {
            extra.extend(["--redaction-patterns".into(), p.into()]);
        }
        if let Some(p) = policy {
            extra.extend(["--policy".into(), p.into()]);
        }
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                // stdout is the MCP channel of this process: the runner's
                // stdout goes nowhere; its logs (stderr) are shared.
                #[allow(clippy::disallowed_methods)] // the one process the bridge may start
                let child = tokio::process::Command::new(&bin)
                    .arg("--db")
                    .arg(&db)
                    .args(&extra)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .kill_on_drop(true)
                    .spawn();
                let mut child = match child {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(bin = %bin.display(), error = %e, "cannot start the runner");
                        return;
                    }
                };
                tracing::info!(pid = child.id(), "runner started");
                tokio::select! {
                    status = child.wait() => {
                        tracing::error!(?status, "runner exited; restarting in 2 s");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                            _ = stopped.changed() => return,
                        }
                    }
                    _ = stopped.changed() => {
                        // SIGTERM lets the runner finish or fail in-flight
                        // jobs and remove its containers.
                        if let Some(pid) = child.id() {
                            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                        }
                        if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                            tracing::warn!("runner did not stop within 20 s; killing it");
                            let _ = child.kill().await;
                        }
                        return;
                    }
                }
            }
        });
        Ok(Self { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
