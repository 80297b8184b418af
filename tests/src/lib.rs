//! Shared helpers for the end-to-end tests and benchmarks: locate (and build)
//! the real binaries, start `bridge serve` as a child process, and speak MCP
//! to it with rmcp's client.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ()>;

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Path of a workspace binary, built once per test process so tests always
/// run the current code (the tests crate cannot depend on another
/// package's binary directly).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let built = BUILT.get_or_init(|| {
        let mut cmd =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "--bins"])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        if profile == "release" {
            cmd.arg("--release");
        }
        match cmd.status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("`cargo build --bins` failed with {s}")),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    target_dir().join(profile).join(name)
}

/// A `bridge serve` child process with an MCP client attached.
pub struct Server {
    pub client: Client,
    pub pid: u32,
}

impl Server {
    /// Starts `bridge serve --db DB EXTRA…`.
    pub async fn start(db: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(db, extra, &[]).await
    }

    pub async fn start_with_env(
        db: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let db = db.to_path_buf();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cmd = tokio::process::Command::new(bin("bridge")).configure(|c| {
            c.arg("--db").arg(&db).arg("serve").args(&extra);
            c.env("BRIDGE_LOG", "warn");
            c.env_remove("BRIDGE_RATE_LIMIT");
            c.env_remove("YOLO_MODE");
            for (k, v) in &env {
                c.env(k, v);
            }
        });
        let transport = TokioChildProcess::new(cmd)?;
        let pid = transport.id().context("child has no pid")?;
        let client = ().serve(transport).await?;
        Ok(Self { client, pid })
    }

    pub async fn call(&self, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
        call(&self.client, tool, args).await
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn ok(&self, tool: &str, args: Value) -> anyhow::Result<Value> {
        ok(self.call(tool, args).await?)
    }

    /// Calls a tool that must be refused; returns the error text.
    pub async fn refused(&self, tool: &str, args: Value) -> anyhow::Result<String> {
        refused(self.call(tool, args).await?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.client.cancel().await?;
        Ok(())
    }
}

pub async fn call(client: &Client, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
    let args = match args {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        other => bail!("tool arguments must be an object, got {other}"),
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args);
    Ok(client.call_tool(params).await?)
}

pub fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn ok(r: CallToolResult) -> anyhow::Result<Value> {
    if r.is_error == Some(true) {
        bail!("tool call refused: {}", text_of(&r));
    }
    r.structured_content
        .context("result has no structuredContent")
}

pub fn refused(r: CallToolResult) -> anyhow::Result<String> {
    if r.is_error != Some(true) {
        bail!("expected a refusal, got success: {}", text_of(&r));
    }
    Ok(text_of(&r))
}

/// A conversation's ids and tokens.
#[derive(Debug, Clone)]
pub struct Conv {
    pub id: String,
    pub token_a: String,
    pub token_b: String,
}

impl Conv {
    pub async fn create(s: &Server) -> anyhow::Result<Self> {
        let v = s
            .ok(
                "create_conversation",
                serde_json::json!({"my_role": "backend_developer", "partner_role": "frontend_developer"}),
            )
            .await?;
        Ok(Self {
            id: v["conversation_id"]
                .as_str()
                .context("conversation_id")?
                .into(),
            token_a: v["session_a_token"]
                .as_str()
                .context("session_a_token")?
                .into(),
            token_b: v["session_b_token"]
                .as_str()
                .context("session_b_token")?
                .into(),
        })
    }

    /// The auth arguments for session `a` or `b`, merged with `extra`.
    pub fn args(&self, session: &str, extra: Value) -> Value {
        let token = if session == "a" {
            &self.token_a
        } else {
            &self.token_b
        };
        let mut v =
            serde_json::json!({"conversation_id": self.id, "session_id": session, "token": token});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    }
}

/// Runs the operator CLI against a database.
pub fn operator(db: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(std::process::Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("YOLO_MODE")
        .output()?)
}

/// Runs the operator CLI with `--json` and parses its output; fails on a
/// non-zero exit.
pub fn operator_json(db: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = operator(db, &all)?;
    if !out.status.success() {
        bail!(
            "bridge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The bytes of the database and its WAL, for "never stored" checks.
pub fn db_bytes(db: &Path) -> Vec<u8> {
    let mut all = std::fs::read(db).unwrap_or_default();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    all.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
