//! The servers under test and how the scenarios talk to them: this
//! bridge, or the Python original for a same-run baseline (whose answers
//! are prose, parsed here).

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use bridge_tests::{Conv, Server, text_of};
use serde_json::json;

use crate::scenarios::LONG_POLL_SECONDS;

/// A server implementation under test.
pub enum Target {
    Bridge,
    /// The Python original, for a same-run baseline.
    Python {
        script: PathBuf,
        python: String,
    },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bridge => "bridge",
            Self::Python { .. } => "Python original",
        }
    }

    /// Starts a server on `dir/bench.db`; returns once `initialize` is answered.
    pub async fn spawn(&self, dir: &Path) -> anyhow::Result<Server> {
        let db = dir.join("bench.db");
        match self {
            // Without the long poll's debug lines the test harness turns
            // on: measured as it runs in production.
            Self::Bridge => {
                let quiet = [("BRIDGE_LOG", "warn")];
                Server::start_with_env(&db, &["--rate-limit", "off"], &quiet).await
            }
            Self::Python { script, python } => {
                // Alone in a fresh directory the script's optional imports of
                // its rate limiter (10 sends/min, not configurable) and YOLO
                // module fail, so it runs unthrottled, like `--rate-limit off`.
                let copy = dir.join("bridge_original.py");
                if !copy.exists() {
                    std::fs::copy(script, &copy)
                        .with_context(|| format!("copying {}", script.display()))?;
                }
                let log = dir.join("python.stderr");
                let stderr = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?;
                let mut cmd = tokio::process::Command::new(python);
                cmd.arg(&copy).arg(&db);
                Server::spawn(cmd, stderr.into()).await.with_context(|| {
                    let err = std::fs::read_to_string(&log).unwrap_or_default();
                    format!(
                        "starting `{python} {}` (does this python have the `mcp` package?); its stderr:\n{}",
                        script.display(),
                        err.lines().rev().take(15).collect::<Vec<_>>().join("\n")
                    )
                })
            }
        }
    }

    pub async fn create(&self, s: &Server) -> anyhow::Result<Conv> {
        match self {
            Self::Bridge => Conv::create(s).await,
            Self::Python { .. } => {
                // The original answers in prose only.
                let r = s
                    .call(
                        "create_conversation",
                        json!({"my_role": "backend_developer", "partner_role": "frontend_developer"}),
                    )
                    .await?;
                let text = text_of(&r);
                Ok(Conv {
                    id: word_after(&text, "Conversation ID:")?,
                    token_a: word_after(&text, "Your token (keep secret):")?,
                    token_b: word_after(&text, "Partner token (share securely):")?,
                })
            }
        }
    }

    pub async fn send(
        &self,
        s: &Server,
        c: &Conv,
        session: &str,
        msg: String,
    ) -> anyhow::Result<()> {
        match self {
            Self::Bridge => send(s, c, session, msg).await,
            Self::Python { .. } => {
                let r = s
                    .call("send_to_partner", c.args(session, json!({"message": msg})))
                    .await?;
                let text = text_of(&r);
                ensure!(text.contains("Message sent"), "Python send failed: {text}");
                Ok(())
            }
        }
    }

    /// Reads (and marks read) the caller's unread messages; returns how many.
    pub async fn check(&self, s: &Server, c: &Conv, session: &str) -> anyhow::Result<usize> {
        match self {
            Self::Bridge => check(s, c, session, 0).await,
            Self::Python { .. } => {
                let r = s.call("check_messages", c.args(session, json!({}))).await?;
                let text = text_of(&r);
                if text.contains("No new messages") {
                    return Ok(0);
                }
                let head = text
                    .split_once(" new message(s)")
                    .with_context(|| format!("Python check failed: {text}"))?
                    .0;
                Ok(head.split_whitespace().last().unwrap_or("").parse()?)
            }
        }
    }
}

fn word_after(text: &str, label: &str) -> anyhow::Result<String> {
    let rest = text
        .split_once(label)
        .with_context(|| format!("no `{label}` in the server's reply: {text}"))?
        .1;
    Ok(rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

pub async fn send(s: &Server, c: &Conv, session: &str, msg: String) -> anyhow::Result<()> {
    let sent = s
        .ok("send_to_partner", c.args(session, json!({"message": msg})))
        .await?;
    ensure!(sent["status"] == "sent", "unexpected send result {sent}");
    Ok(())
}

/// `check_messages` with `wait_seconds`; returns how many messages came back.
pub async fn check(s: &Server, c: &Conv, session: &str, wait: u64) -> anyhow::Result<usize> {
    let inbox = s
        .ok(
            "check_messages",
            c.args(session, json!({"wait_seconds": wait})),
        )
        .await?;
    Ok(inbox["messages"].as_array().map_or(0, Vec::len))
}

/// Long-polls until at least one message arrives.
pub async fn wait_for_message(s: &Server, c: &Conv, session: &str) -> anyhow::Result<usize> {
    loop {
        match check(s, c, session, LONG_POLL_SECONDS).await? {
            0 => continue,
            n => return Ok(n),
        }
    }
}
