//! Helpers for the YOLO tests: a real Docker engine, the offline sandbox
//! image, a runner child process, and the operator CLI driven through a real
//! pseudo-terminal.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bin;

pub mod world;
pub use world::{Enabled, Ran, World};

/// The image every YOLO test uses, built offline from busybox-static by
/// [`sandbox_image`]: tagged and labelled for this test process only, and
/// removed when it exits (see `images`). Naming it builds nothing.
pub fn test_image() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| crate::images::run_tag("mcp-bridge-sandbox", "test"))
}

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

/// Builds the offline sandbox image once per test process (removed when
/// the process exits).
pub fn sandbox_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        crate::images::ensure_reaper();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/sandbox-offline/build.sh");
        let out = Command::new("sh")
            .arg(script)
            .arg(test_image())
            .env("IMAGE_LABEL", crate::images::run_label())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "building {} failed: {}",
                test_image(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    test_image()
}

/// A `runner --db DB` child process, stopped with SIGTERM on drop.
pub struct Runner {
    pub child: Child,
}

impl Runner {
    pub fn start(db: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(db, extra, &[])
    }

    /// Like [`Runner::start`], with extra environment variables.
    pub fn start_with_env(
        db: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let child = Command::new(bin("runner"))
            .arg("--db")
            .arg(db)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (k, v)))
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
        // Already reaped: its pid may belong to someone else by now.
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
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
/// prints; returns that code.
pub fn enable(db: &Path, conv: &str, extra: &[&str]) -> anyhow::Result<String> {
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
    Ok(code)
}

/// Stage 4 on a real terminal: pages through the review (Enter at each
/// page prompt), answers `y` and reads the printed token.
pub fn approve(db: &Path, proposal: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["yolo", "approve", proposal];
    args.extend_from_slice(extra);
    let mut p = operator_pty(db, &args)?;
    loop {
        let (_, prompt) = p.exp_regex(r"(Enter for more, q to decline --|\[y/N\] )")?;
        if prompt.ends_with("[y/N] ") {
            break;
        }
        p.send_line("")?;
    }
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

/// The operator CLI with YOLO_MODE=1 but no terminal (for the commands that
/// do not need one: `reject`, `disable`, `pending`, `tokens`).
pub fn operator_yolo(db: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Ok(Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("YOLO_MODE", "1")
        .stdin(Stdio::null())
        .output()?)
}

/// `bridge audit verify` must pass.
pub fn assert_audit_verifies(db: &Path) -> anyhow::Result<()> {
    let out = crate::operator(db, &["audit", "verify"])?;
    anyhow::ensure!(
        out.status.success(),
        "audit verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// True while `docker inspect` still finds the container.
pub fn container_exists(id: &str) -> anyhow::Result<bool> {
    Ok(Command::new("docker")
        .args(["inspect", "--format", "{{.Id}}", id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("docker inspect")?
        .success())
}

/// Polls `cond` every 100 ms until it holds or `within` passes.
pub fn wait_until(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A proposal (which is also the job) as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub state: String,
    pub failure: Option<String>,
    pub container_id: Option<String>,
    /// The runner's stored (redacted) outcome; `Null` until it finished.
    pub result: serde_json::Value,
}

impl JobRow {
    pub fn is_final(&self) -> bool {
        matches!(
            self.state.as_str(),
            "done" | "failed" | "rejected" | "expired"
        )
    }
}

/// The runner that claimed a proposal's job, if one has.
pub fn claimant(db: &Path, proposal: &str) -> anyhow::Result<Option<String>> {
    Ok(crate::sql(db)?.query_row(
        "SELECT runner_id FROM proposals WHERE id = ?1",
        [proposal],
        |r| r.get(0),
    )?)
}

pub fn job(db: &Path, proposal: &str) -> anyhow::Result<JobRow> {
    let conn = crate::sql(db)?;
    let (state, failure, container_id, result): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = conn.query_row(
        "SELECT state, failure, container_id, result FROM proposals WHERE id = ?1",
        [proposal],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(JobRow {
        state,
        failure,
        container_id,
        result: match result {
            Some(s) => serde_json::from_str(&s)?,
            None => serde_json::Value::Null,
        },
    })
}

/// Waits (up to `within`) until the job is in a final state.
pub fn wait_final(db: &Path, proposal: &str, within: Duration) -> anyhow::Result<JobRow> {
    let mut last = None;
    wait_until(&format!("job {proposal} to finish"), within, || {
        let j = job(db, proposal)?;
        let done = j.is_final();
        last = Some(j);
        Ok(done)
    })?;
    last.context("no job row")
}

/// Waits until a runner is executing the job in a container; returns the
/// container id.
pub fn wait_running(db: &Path, proposal: &str, within: Duration) -> anyhow::Result<String> {
    let mut container = None;
    wait_until(&format!("job {proposal} to run"), within, || {
        let j = job(db, proposal)?;
        anyhow::ensure!(
            !j.is_final(),
            "job {proposal} ended before it was seen running: {j:?}"
        );
        if j.state == "running" {
            container = j.container_id;
        }
        Ok(container.is_some())
    })?;
    container.context("no container")
}

/// Every message a session has not read yet (all pages).
pub async fn inbox(
    s: &crate::Server,
    c: &crate::Conv,
    session: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut all = Vec::new();
    loop {
        let page = s
            .ok("check_messages", c.args(session, serde_json::json!({})))
            .await?;
        all.extend(crate::messages(&page));
        if page["has_more"] != true {
            return Ok(all);
        }
    }
}

/// Calls a tool from a spawned task (for calls that wait, such as
/// `execute_command`), on the same MCP connection.
pub fn spawn_call(
    s: &crate::Server,
    tool: &str,
    args: serde_json::Value,
) -> tokio::task::JoinHandle<anyhow::Result<rmcp::model::CallToolResult>> {
    let peer = s.client.peer().clone();
    let tool = tool.to_owned();
    tokio::spawn(async move {
        let serde_json::Value::Object(args) = args else {
            bail!("tool arguments must be an object");
        };
        let params = rmcp::model::CallToolRequestParams::new(tool).with_arguments(args);
        Ok(peer.call_tool(params).await?)
    })
}

/// How many times a runner started `proposal` in a container (`job.start`
/// audit rows).
pub fn job_starts(db: &Path, proposal: &str) -> anyhow::Result<usize> {
    Ok(job_engines(db, proposal)?.len())
}

/// The engine of each start of `proposal` (`job.start` audit rows).
pub fn job_engines(db: &Path, proposal: &str) -> anyhow::Result<Vec<String>> {
    let mut engines = Vec::new();
    for row in crate::audit_rows_for(db, "job.start")? {
        let detail: serde_json::Value = serde_json::from_str(&row.detail)?;
        if detail["proposal_id"] == proposal {
            engines.push(detail["engine"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(engines)
}
