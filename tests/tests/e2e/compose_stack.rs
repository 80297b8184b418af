//! `docker compose up` end to end, with no registry: images built offline,
//! the stack brought up with compose (v2 plugin or v1.29), two MCP clients
//! over HTTP, the YOLO flow with the operator CLI on a pseudo-terminal via
//! `compose exec`, refusals of missing tokens and foreign hosts, then
//! `down -v` leaving no container behind.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge::mcp::service::LONG_POLL_TARGET;
use bridge_tests::yolo::{self, containers_with_label};
use bridge_tests::{bin, call, connect_http, free_port, ok, raw_post, refused};
use bridge_tests::{images, logs};
use serde_json::json;

/// This run's image tags: built, labelled and removed by this test process
/// only (see `bridge_tests::images`).
fn bridge_image() -> String {
    images::run_tag("mcp-bridge", "compose-test")
}

fn sandbox_image() -> String {
    images::run_tag("mcp-bridge-sandbox", "compose-test")
}

/// `docker compose` if the v2 plugin exists, else `docker-compose`.
fn compose_program() -> Option<Vec<String>> {
    let v2 = Command::new("docker").args(["compose", "version"]).output();
    if v2.is_ok_and(|o| o.status.success()) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    let v1 = Command::new("docker-compose").arg("version").output();
    v1.is_ok_and(|o| o.status.success())
        .then(|| vec!["docker-compose".into()])
}

struct Stack {
    program: Vec<String>,
    project: String,
    port: u16,
    workspace: tempfile::TempDir,
    up: bool,
}

impl Stack {
    fn command(&self, args: &[&str]) -> Command {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..])
            .args(["-p", &self.project, "-f"])
            .arg(root.join("compose.yaml"))
            .args(args)
            .current_dir(&root)
            .env("BRIDGE_IMAGE", bridge_image())
            .env("SANDBOX_IMAGE", sandbox_image())
            .env("BRIDGE_PORT", self.port.to_string())
            .env("WORKSPACE", self.workspace.path())
            .env("YOLO_MODE", "1")
            // The long poll's readiness line (ids only), which the test
            // waits on instead of sleeping.
            .env("BRIDGE_LOG", format!("info,{LONG_POLL_TARGET}=debug"));
        c
    }

    /// Waits until the bridge container's log says session `session`'s
    /// long poll in `conversation_id` is waiting (registered for wake-ups).
    /// The container's stderr reaches us only through `compose logs`, so
    /// it is read again until the line is there.
    async fn long_poll_waiting(&self, conversation_id: &str, session: &str) -> anyhow::Result<()> {
        let line = logs::long_poll_waiting(conversation_id, session);
        let deadline = Instant::now() + logs::LOG_WAIT;
        loop {
            let out =
                tokio::process::Command::from(self.command(&["logs", "--no-color", "bridge"]))
                    .output()
                    .await?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(&line) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the bridge never logged {line:?}; its log:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = self.command(args).output()?;
        if !out.status.success() {
            bail!(
                "compose {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    fn container(&self, service: &str) -> anyhow::Result<String> {
        let out = self.run(&["ps", "-q", service])?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        anyhow::ensure!(!id.is_empty(), "service {service} has no container");
        Ok(id)
    }

    fn wait_healthy(&self, service: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let id = self.container(service)?;
            let out = Command::new("docker")
                .args(["inspect", "--format", "{{.State.Health.Status}}", &id])
                .output()?;
            let status = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if status == "healthy" {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs = self.command(&["logs", "--no-color", service]).output()?;
                bail!(
                    "{service} is {status:?} after {limit:?}; logs:\n{}",
                    String::from_utf8_lossy(&logs.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.up {
            let _ = self
                .command(&["down", "-v", "--remove-orphans", "-t", "30"])
                .output();
        }
    }
}

fn build_images() -> anyhow::Result<()> {
    let bin_dir = bin("bridge").parent().context("bin dir")?.to_path_buf();
    bin("runner");
    images::ensure_reaper();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/offline/build.sh");
    let out = Command::new("sh")
        .arg(script)
        .arg("--bin-dir")
        .arg(bin_dir)
        .env("BRIDGE_IMAGE", bridge_image())
        .env("SANDBOX_IMAGE", sandbox_image())
        .env("IMAGE_LABEL", images::run_label())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "offline image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_up_serves_http_mcp_and_runs_an_approved_command() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("compose_stack") {
        return Ok(());
    }
    let Some(program) = compose_program() else {
        if std::env::var_os("CI").is_some() {
            bail!("neither `docker compose` nor `docker-compose` is installed, and CI is set");
        }
        eprintln!("\n!!!!!!!! SKIPPED compose_stack: no docker compose !!!!!!!!\n");
        return Ok(());
    };
    build_images()?;
    let mut stack = Stack {
        program,
        // Named after this run: the reaper removes what compose leaves.
        project: images::compose_project(),
        port: free_port(),
        workspace: tempfile::tempdir()?,
        up: false,
    };
    std::fs::write(
        stack.workspace.path().join("README.txt"),
        "hello from the host\n",
    )?;
    stack.up = true;
    stack.run(&["up", "-d"])?;
    stack.wait_healthy("bridge", Duration::from_secs(60))?;
    stack.wait_healthy("runner", Duration::from_secs(60))?;

    let token = String::from_utf8(
        stack
            .run(&["exec", "-T", "bridge", "bridge", "http-token"])?
            .stdout,
    )?
    .trim()
    .to_owned();
    assert_eq!(token.len(), 64);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", stack.port).parse()?;
    let host = format!("127.0.0.1:{}", stack.port);
    let bearer = format!("Bearer {token}");
    assert_eq!(raw_post(addr, &host, &[])?, 401, "no token");
    assert_eq!(
        raw_post(addr, "evil.example.com", &[("Authorization", &bearer)])?,
        403,
        "foreign Host"
    );
    assert_eq!(
        raw_post(addr, &host, &[("Authorization", &bearer)])?,
        200,
        "token and Host right"
    );

    let url = format!("http://127.0.0.1:{}/mcp", stack.port);
    let a = connect_http(&url, Some(&token)).await?;
    let b = connect_http(&url, Some(&token)).await?;
    let conv = ok(call(
        &a,
        "create_conversation",
        json!({"my_role": "backend", "partner_role": "frontend"}),
    )
    .await?)?;
    let cid = conv["conversation_id"].as_str().unwrap().to_owned();
    let auth = |s: &str, extra: serde_json::Value| {
        let token = conv[if s == "a" {
            "session_a_token"
        } else {
            "session_b_token"
        }]
        .clone();
        let mut v = json!({"conversation_id": cid, "session_id": s, "token": token});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };

    // B long-polls; A's message wakes it.
    let waiting = {
        let args = auth("b", json!({"wait_seconds": 30}));
        let peer = b.peer().clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let params = rmcp::model::CallToolRequestParams::new("check_messages")
                .with_arguments(args.as_object().unwrap().clone());
            (peer.call_tool(params).await, started.elapsed())
        })
    };
    stack.long_poll_waiting(&cid, "b").await?;
    ok(call(
        &a,
        "send_to_partner",
        auth("a", json!({"message": "over HTTP"})),
    )
    .await?)?;
    let (r, waited) = waiting.await?;
    let inbox = ok(r?)?;
    assert_eq!(inbox["messages"][0]["message"], "over HTTP");
    assert!(
        waited < Duration::from_secs(10),
        "long poll was not woken: {waited:?}"
    );

    // YOLO: enable and approve through `compose exec` on a real terminal.
    let mut en = rexpect::session::spawn_command(
        stack.command(&[
            "exec",
            "bridge",
            "bridge",
            "yolo",
            "enable",
            &cid,
            "--mode",
            "safe",
            "--image",
            &sandbox_image(),
            "--workspace",
            "/workspace",
        ]),
        Some(60_000),
    )?;
    en.exp_string("to continue: ")?;
    en.send_line("I UNDERSTAND THE RISKS")?;
    let (_, line) = en.exp_regex(r"One-time code: [A-Z0-9]{4}-[A-Z0-9]{4}")?;
    en.exp_string("Type the one-time code: ")?;
    en.send_line(line.trim_start_matches("One-time code: "))?;
    en.exp_string("YOLO enabled for")?;
    en.exp_eof()?;

    let p = ok(call(
        &a,
        "propose_command",
        auth("a", json!({"command": "cat /workspace/README.txt; id -u"})),
    )
    .await?)?;
    let pid = p["proposal_id"].as_str().unwrap().to_owned();
    let mut ap = rexpect::session::spawn_command(
        stack.command(&["exec", "bridge", "bridge", "yolo", "approve", &pid]),
        Some(60_000),
    )?;
    ap.exp_string("[y/N] ")?;
    ap.send_line("y")?;
    let (_, line) = ap.exp_regex(r"Approval token: apv_[0-9a-f]{48}")?;
    ap.exp_eof()?;
    let approval = line.trim_start_matches("Approval token: ").to_owned();
    let r = ok(call(
        &b,
        "execute_command",
        auth("a", json!({"proposal_id": pid, "approval_token": approval})),
    )
    .await?)?;
    assert_eq!(r["state"], "done", "{r}");
    assert_eq!(r["stdout"], "hello from the host\n65534\n");
    let again = refused(
        call(
            &b,
            "execute_command",
            auth("a", json!({"proposal_id": pid, "approval_token": approval})),
        )
        .await?,
    )?;
    assert!(
        again.contains("already used") || again.contains("invalid"),
        "{again}"
    );
    let inbox = ok(call(&a, "check_messages", auth("a", json!({}))).await?)?;
    assert!(
        inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "command_result")
    );

    a.cancel().await?;
    b.cancel().await?;
    let logs =
        String::from_utf8_lossy(&stack.run(&["logs", "--no-color", "runner"])?.stdout).into_owned();
    let runner_id = regex::Regex::new(r"run_[0-9a-f]{12}")?
        .find(&logs)
        .map(|m| m.as_str().to_owned())
        .context("runner id in the runner's logs")?;
    stack.run(&["down", "-v", "--remove-orphans", "-t", "30"])?;
    stack.up = false;
    assert!(
        containers_with_label(&format!("com.docker.compose.project={}", stack.project))?.is_empty()
    );
    assert!(
        containers_with_label(&format!("mcp-bridge.runner={runner_id}"))?.is_empty(),
        "sandbox containers left"
    );
    Ok(())
}
