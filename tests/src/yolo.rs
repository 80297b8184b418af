//! Helpers for the YOLO tests: a real Docker engine, the offline sandbox
//! image, a runner child process, and the operator CLI driven through a real
//! pseudo-terminal.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bin;

/// The image every YOLO test uses; built offline from busybox-static.
pub const TEST_IMAGE: &str = "mcp-bridge-sandbox:test";

/// True when a Docker engine answers. When it does not: with `CI` set the
/// test fails; otherwise it prints a loud skip line and returns false.
pub fn docker_or_skip(test: &str) -> bool {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    });
    if up {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: no Docker engine answers, and CI is set: Docker tests must run in CI");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: no Docker engine answers (set CI=1 to make this a failure) !!!!!!!!\n"
    );
    false
}

/// Builds the offline sandbox image once per test process.
pub fn sandbox_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/sandbox-offline/build.sh");
        let out = Command::new("sh")
            .arg(script)
            .arg(TEST_IMAGE)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building {TEST_IMAGE} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    TEST_IMAGE
}

/// A `runner --db DB` child process, stopped with SIGTERM on drop.
pub struct Runner {
    pub child: Child,
}

impl Runner {
    pub fn start(db: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let child = Command::new(bin("runner"))
            .arg("--db")
            .arg(db)
            .args(extra)
            .env(
                "RUNNER_LOG",
                std::env::var("RUNNER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Self { child })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then wait (up to `grace`), then SIGKILL.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        use nix::sys::signal::{Signal, kill};
        let _ = kill(nix::unistd::Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("runner did not stop within {grace:?} of SIGTERM")
    }

    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop(Duration::from_secs(20));
        }
    }
}

/// The operator CLI on a pseudo-terminal, with YOLO_MODE=1 in its
/// environment.
pub fn operator_pty(db: &Path, args: &[&str]) -> anyhow::Result<rexpect::session::PtySession> {
    let mut cmd = Command::new(bin("bridge"));
    cmd.arg("--db").arg(db).args(args).env("YOLO_MODE", "1");
    Ok(rexpect::session::spawn_command(cmd, Some(20_000))?)
}

/// Stages 2-3 on a real terminal: types the phrase and the one-time code it
/// prints.
pub fn enable(db: &Path, conv: &str, extra: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["yolo", "enable", conv];
    args.extend_from_slice(extra);
    let mut p = operator_pty(db, &args)?;
    p.exp_string("Type exactly `I UNDERSTAND THE RISKS` to continue: ")?;
    p.send_line("I UNDERSTAND THE RISKS")?;
    let (_, line) = p.exp_regex(r"One-time code: [A-Z0-9]{4}-[A-Z0-9]{4}")?;
    let code = line.trim_start_matches("One-time code: ").to_owned();
    p.exp_string("Type the one-time code: ")?;
    p.send_line(&code)?;
    p.exp_string("YOLO enabled for")?;
    p.exp_eof()?;
    Ok(())
}

/// Stage 4 on a real terminal: answers `y` and reads the printed token.
pub fn approve(db: &Path, proposal: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["yolo", "approve", proposal];
    args.extend_from_slice(extra);
    let mut p = operator_pty(db, &args)?;
    p.exp_string("[y/N] ")?;
    p.send_line("y")?;
    let (_, line) = p.exp_regex(r"Approval token: apv_[0-9a-f]{48}")?;
    p.exp_eof()?;
    Ok(line.trim_start_matches("Approval token: ").to_owned())
}

/// Ids of containers carrying `label=value`, running or not.
pub fn containers_with_label(label: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .context("docker ps")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The id of the runner registered in the database (waits for it).
pub fn runner_id(db: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let conn = rusqlite::Connection::open(db)?;
        let id: Option<String> = conn
            .query_row(
                "SELECT id FROM runners ORDER BY started_at DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .ok();
        if let Some(id) = id {
            return Ok(id);
        }
        if Instant::now() > deadline {
            bail!("no runner registered in {}", db.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
