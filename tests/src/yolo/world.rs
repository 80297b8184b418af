//! The worlds the YOLO tests run in: [`World`] (a bridge with YOLO on, a
//! runner, and a conversation the operator enabled on a real terminal)
//! with [`Ran`], what one approved command did; and [`Enabled`], the same
//! without a runner.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{
    JobRow, Runner, approve, assert_audit_verifies, container_exists, containers_with_label,
    enable, runner_id, sandbox_image, wait_final, wait_until,
};

/// One YOLO test's world: a bridge with YOLO on, a runner, and one
/// conversation the operator enabled on a real terminal (`yolo` mode, the
/// offline test image, plus `enable_extra`).
pub struct World {
    pub dir: tempfile::TempDir,
    pub db: std::path::PathBuf,
    pub server: crate::Server,
    pub runner: Runner,
    pub runner_id: String,
    pub conv: crate::Conv,
}

/// What one approved command did, as the agent and the database see it.
#[derive(Debug, Clone)]
pub struct Ran {
    pub proposal: String,
    /// What `execute_command` returned.
    pub reply: serde_json::Value,
    /// The stored job once final.
    pub job: JobRow,
    /// From the `execute_command` call to the final state.
    pub wall: Duration,
}

impl Ran {
    pub fn stdout(&self) -> &str {
        self.job.result["stdout"].as_str().unwrap_or_default()
    }
    pub fn stderr(&self) -> &str {
        self.job.result["stderr"].as_str().unwrap_or_default()
    }
    pub fn exit_code(&self) -> Option<i64> {
        self.job.result["exit_code"].as_i64()
    }
}

impl World {
    pub async fn start(enable_extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(&[], enable_extra).await
    }

    /// Like [`World::start`], with extra `runner` arguments.
    pub async fn start_with(runner_args: &[&str], enable_extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_serving(&[], runner_args, enable_extra).await
    }

    /// Like [`World::start_with`], with extra `bridge serve` arguments.
    pub async fn start_serving(
        serve_args: &[&str],
        runner_args: &[&str],
        enable_extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_serving_env(serve_args, runner_args, &[], enable_extra).await
    }

    /// Like [`World::start_serving`], with extra environment variables for
    /// the runner.
    pub async fn start_serving_env(
        serve_args: &[&str],
        runner_args: &[&str],
        runner_env: &[(String, String)],
        enable_extra: &[&str],
    ) -> anyhow::Result<Self> {
        let image = sandbox_image();
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("b.db");
        let server = crate::Server::start_with_env(&db, serve_args, &[("YOLO_MODE", "1")]).await?;
        let runner = Runner::start_with_env(&db, runner_args, runner_env)?;
        let runner_id = runner_id(&db)?;
        let conv = crate::Conv::create(&server).await?;
        let mut args = vec!["--mode", "yolo", "--image", image];
        args.extend_from_slice(enable_extra);
        enable(&db, &conv.id, &args)?;
        Ok(Self {
            dir,
            db,
            server,
            runner,
            runner_id,
            conv,
        })
    }

    /// Session `a` proposes `command`; returns the proposal id.
    pub async fn propose(&self, command: &str) -> anyhow::Result<String> {
        let p = self
            .server
            .ok(
                "propose_command",
                self.conv
                    .args("a", serde_json::json!({ "command": command })),
            )
            .await?;
        Ok(p["proposal_id"].as_str().context("proposal_id")?.to_owned())
    }

    /// The proposing session `a` executes an approved proposal with `token`.
    pub async fn execute(&self, proposal: &str, token: &str) -> anyhow::Result<serde_json::Value> {
        self.server
            .ok(
                "execute_command",
                self.conv.args(
                    "a",
                    serde_json::json!({ "proposal_id": proposal, "approval_token": token }),
                ),
            )
            .await
    }

    /// Propose, approve on the terminal, execute, and wait for the final
    /// state; then waits until the job's container is gone.
    pub async fn run(&self, command: &str) -> anyhow::Result<Ran> {
        let proposal = self.propose(command).await?;
        let token = approve(&self.db, &proposal, &[])?;
        let t0 = Instant::now();
        let reply = self.execute(&proposal, &token).await?;
        let job = wait_final(&self.db, &proposal, Duration::from_secs(90))?;
        let wall = t0.elapsed();
        if let Some(id) = &job.container_id {
            wait_until(
                &format!("container {id} of {proposal} to be removed"),
                Duration::from_secs(30),
                || Ok(!container_exists(id)?),
            )?;
        }
        Ok(Ran {
            proposal,
            reply,
            job,
            wall,
        })
    }

    /// The bridge still answers and the runner is still alive.
    pub async fn assert_healthy(&mut self) -> anyhow::Result<()> {
        self.server
            .ok(
                "check_partner_status",
                self.conv.args("a", serde_json::json!({})),
            )
            .await
            .context("the bridge stopped answering")?;
        anyhow::ensure!(self.runner.child.try_wait()?.is_none(), "the runner exited");
        Ok(())
    }

    /// Stops the runner with SIGTERM, then checks nothing is left behind
    /// and the audit chain verifies.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.runner.stop(Duration::from_secs(20))?;
        let left = containers_with_label(&format!("mcp-bridge.runner={}", self.runner_id))?;
        anyhow::ensure!(left.is_empty(), "containers left behind: {left:?}");
        assert_audit_verifies(&self.db)?;
        self.server.stop().await
    }
}

/// A bridge with YOLO on and one conversation the operator enabled on a
/// real terminal with `enable_args`, but no runner: for what agents can and
/// cannot do before anything is queued.
pub struct Enabled {
    pub dir: tempfile::TempDir,
    pub db: std::path::PathBuf,
    pub server: crate::Server,
    pub conv: crate::Conv,
}

impl Enabled {
    pub async fn start(enable_args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("b.db");
        let server = crate::Server::start_with_env(&db, &[], &[("YOLO_MODE", "1")]).await?;
        let conv = crate::Conv::create(&server).await?;
        enable(&db, &conv.id, enable_args)?;
        Ok(Self {
            dir,
            db,
            server,
            conv,
        })
    }
}
