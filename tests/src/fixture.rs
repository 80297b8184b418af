//! The checked-in fixture database (`tests/fixtures/main-ed90d0f/`): what it
//! holds, and how it was made. A database written by an older release must
//! open with the current code, migrate in place and stay usable; the
//! fixture freezes one such database so a schema change that breaks old
//! files fails a test (`tests/tests/e2e/fixture_migration.rs`).
//!
//! [`generate`] drives the real binaries through the real interfaces (MCP
//! tools, the operator's terminal, a runner with Docker) and writes
//! `bridge.db`, its `bridge.db.secret` and `fixture.json` (ids, tokens and
//! the expected content). `cargo run -p bridge-tests --bin make_fixture_db
//! -- DIR` runs it. Regenerate a fixture only from the commit whose schema
//! it should freeze, and keep the old ones: each is a release's database
//! that must keep opening.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::{Value, json};

use crate::yolo::{self, Runner};
use crate::{Conv, Server};

/// Where the fixture databases live.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A GitHub token shape the bridge redacts before storing (built here so
/// no scanner mistakes this file for a leak).
pub fn secret() -> String {
    format!("ghp_{}", "xTuRe5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5")
}

/// The messages the fixture holds, in order: (sender, text as sent). The
/// third carries [`secret`], which the bridge stores redacted.
pub fn messages() -> Vec<(&'static str, String)> {
    vec![
        ("a", "fixture: hello from a".into()),
        ("b", "fixture: reply from b".into()),
        (
            "a",
            format!("fixture: the key is {}, do not store it", secret()),
        ),
        ("b", "fixture: unread by a".into()),
    ]
}

/// The command the fixture's completed job ran, and what it printed.
pub const JOB_COMMAND: &str = "echo fixture-$((6*7))";
pub const JOB_STDOUT: &str = "fixture-42\n";

/// Writes a fresh fixture into `out` (created; must not hold one yet).
/// Needs Docker (the job runs in a sandbox container).
pub async fn generate(out: &Path) -> anyhow::Result<Value> {
    ensure!(
        !out.join("bridge.db").exists(),
        "{} already holds a fixture: pick a new folder (old fixtures stay)",
        out.display()
    );
    std::fs::create_dir_all(out)?;
    let work = tempfile::tempdir()?;
    let db = work.path().join("bridge.db");
    // A century-long TTL: the fixture's conversation must still be live
    // when a test opens it years from now.
    let server = Server::start_with_env(
        &db,
        &["--conversation-ttl", "36500d"],
        &[("YOLO_MODE", "1")],
    )
    .await?;
    let mut runner = Runner::start(&db, &[])?;
    let conv = Conv::create(&server).await?;
    let image = yolo::sandbox_image();
    yolo::enable(&db, &conv.id, &["--mode", "yolo", "--image", image])?;

    let mut ids = Vec::new();
    for (from, text) in messages() {
        let r = server
            .ok(
                "send_to_partner",
                conv.args(from, json!({ "message": text })),
            )
            .await?;
        ids.push(r["message_id"].clone());
    }
    // b reads its inbox; a leaves its second message unread.
    server
        .ok("check_messages", conv.args("b", json!({})))
        .await?;
    server
        .ok(
            "update_my_status",
            conv.args("a", json!({ "status": "working" })),
        )
        .await?;

    let propose = |command: &'static str| {
        let server = &server;
        let conv = &conv;
        async move {
            let p = server
                .ok(
                    "propose_command",
                    conv.args("a", json!({ "command": command })),
                )
                .await?;
            anyhow::Ok(p["proposal_id"].as_str().context("proposal_id")?.to_owned())
        }
    };
    let ran = propose(JOB_COMMAND).await?;
    let token = yolo::approve(&db, &ran, &[])?;
    server
        .ok(
            "execute_command",
            conv.args("b", json!({ "proposal_id": ran, "approval_token": token })),
        )
        .await?;
    let job = yolo::wait_final(&db, &ran, Duration::from_secs(90))?;
    ensure!(
        job.result["stdout"] == JOB_STDOUT,
        "the fixture job printed {:?}",
        job.result
    );
    let rejected = propose("ls -la").await?;
    let out_reject = yolo::operator_yolo(&db, &["yolo", "reject", rejected.as_str()])?;
    ensure!(
        out_reject.status.success(),
        "yolo reject failed: {}",
        String::from_utf8_lossy(&out_reject.stderr)
    );
    let pending = propose("pwd").await?;

    runner.stop(Duration::from_secs(20))?;
    yolo::assert_audit_verifies(&db)?;
    server.stop().await?;

    // One compact file, the write-ahead log folded in.
    let conn = crate::sql(&db)?;
    conn.execute(
        "VACUUM INTO ?1",
        [out.join("bridge.db").to_string_lossy().into_owned()],
    )?;
    std::fs::copy(
        work.path().join("bridge.db.secret"),
        out.join("bridge.db.secret"),
    )?;
    let made_by = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let manifest = json!({
        "made_by": made_by,
        "schema_version": bridge_state::store::latest_version(),
        "conversation_id": conv.id,
        "token_a": conv.token_a,
        "token_b": conv.token_b,
        "message_ids": ids,
        "proposals": { "ran": ran, "rejected": rejected, "pending": pending },
    });
    std::fs::write(
        out.join("fixture.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    Ok(manifest)
}

/// A working copy of a checked-in fixture in a temporary folder (the
/// checked-in files are never opened for writing).
pub struct FixtureCopy {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub manifest: Value,
    pub conv: Conv,
}

/// Copies the fixture `name` (a folder under [`fixtures_dir`]).
pub fn copy(name: &str) -> anyhow::Result<FixtureCopy> {
    use std::os::unix::fs::PermissionsExt;
    let from = fixtures_dir().join(name);
    let dir = tempfile::tempdir()?;
    for file in ["bridge.db", "bridge.db.secret"] {
        std::fs::copy(from.join(file), dir.path().join(file))
            .with_context(|| format!("copying {}", from.join(file).display()))?;
    }
    // git does not keep the 0600 the bridge wants of its files.
    for file in ["bridge.db", "bridge.db.secret"] {
        std::fs::set_permissions(
            dir.path().join(file),
            std::fs::Permissions::from_mode(0o600),
        )?;
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("fixture.json"))?)?;
    let field = |k: &str| -> anyhow::Result<String> {
        Ok(manifest[k]
            .as_str()
            .with_context(|| format!("fixture.json has no {k}"))?
            .to_owned())
    };
    let conv = Conv {
        id: field("conversation_id")?,
        token_a: field("token_a")?,
        token_b: field("token_b")?,
    };
    Ok(FixtureCopy {
        db: dir.path().join("bridge.db"),
        dir,
        manifest,
        conv,
    })
}
