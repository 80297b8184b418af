//! Nothing a sandboxed command plants in a read-write workspace reaches the
//! host: approved commands plant symlinks, FIFOs and huge files at every path
//! the runner's git snapshot touches, pointing at canaries outside the
//! workspace (a `/data`-like directory with a fake database secret and HTTP
//! token, a credentials file, a victim to overwrite, a host repository).
//! The next approved proposal triggers the snapshot on the host. Through the
//! real binaries and a real Docker engine, inotify must see no canary
//! opened, read or changed; each trap must fail the job with a clear reason
//! (the command not run) or be defused; and no canary content may appear in
//! `proposals.failure`, results, messages, the audit log or the runner's log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bridge_tests::canary::Canaries;
use bridge_tests::yolo::{self, JobRow, World};
use bridge_tests::{Conv, Server, bin, sql};

const SHA: &str = "3b18e512dba79e4c8300dd08aeb37f8e728b8dad";

/// Writable by the sandbox's user (65534), as a read-write workspace must be.
fn open_up(path: &Path, mode: u32) -> anyhow::Result<()> {
    Ok(std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(mode),
    )?)
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    Ok(())
}

/// The operator restores a clean repository between traps (a planted trap
/// blocks every later read-write job, by design).
fn clean_repo(ws: &Path) -> anyhow::Result<()> {
    for name in [".git", ".git-old"] {
        remove(&ws.join(name))?;
    }
    let git = ws.join(".git");
    std::fs::create_dir_all(git.join("refs/heads"))?;
    for d in [&git, &git.join("refs"), &git.join("refs/heads")] {
        open_up(d, 0o777)?;
    }
    for (f, text) in [
        ("HEAD", "ref: refs/heads/main\n".to_owned()),
        ("refs/heads/main", format!("{SHA}\n")),
    ] {
        std::fs::write(git.join(f), text)?;
        open_up(&git.join(f), 0o666)?;
    }
    Ok(())
}

/// Approves `proposal` on the terminal and executes it; returns the final
/// job.
async fn approve_and_run(w: &World, proposal: &str) -> anyhow::Result<JobRow> {
    let token = yolo::approve(&w.db, proposal, &[])?;
    // A refused job is a tool error for the executing agent; the stored row
    // is what this test checks.
    w.server
        .call(
            "execute_command",
            w.conv.args(
                "a",
                serde_json::json!({ "proposal_id": proposal, "approval_token": token }),
            ),
        )
        .await?;
    yolo::wait_final(&w.db, proposal, Duration::from_secs(90))
}

/// A bridge with YOLO on (no rate limit: this test proposes a lot), a runner
/// whose stderr goes to `runner.log`, and a conversation enabled read-write
/// on `ws`.
async fn world(ws: &Path) -> anyhow::Result<World> {
    let image = yolo::sandbox_image();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let server =
        Server::start_with_env(&db, &["--rate-limit", "off"], &[("YOLO_MODE", "1")]).await?;
    let child = Command::new(bin("runner"))
        .arg("--db")
        .arg(&db)
        .env("RUNNER_LOG", "info")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("runner.log"))?)
        .spawn()?;
    let runner = yolo::Runner { child };
    let runner_id = yolo::runner_id(&db)?;
    let conv = Conv::create(&server).await?;
    let ws = ws.to_str().unwrap();
    yolo::enable(
        &db,
        &conv.id,
        &[
            "--mode",
            "yolo",
            "--image",
            image,
            "--timeout",
            "30",
            "--workspace",
            ws,
            "--workspace-rw",
        ],
    )?;
    Ok(World {
        dir,
        db,
        server,
        runner,
        runner_id,
        conv,
    })
}

/// One trap: the shell commands that plant it (run in the sandbox), and
/// the workspace path the refusal must name (`None`: the trap is defused
/// and the job runs).
struct Trap {
    name: &'static str,
    plant: String,
    refused: Option<&'static str>,
}

fn traps(out: &Path) -> Vec<Trap> {
    let o = out.display();
    let t = |name, plant: String, refused| Trap {
        name,
        plant,
        refused,
    };
    vec![
        t(
            "the snapshot directory is a symlink to the /data-like directory",
            "cd /workspace/.git/refs/heads && mv bridge-snapshot old-snapshot && ln -s {o}/data bridge-snapshot".replace("{o}", &o.to_string()),
            Some(".git/refs/heads/bridge-snapshot"),
        ),
        t(
            "HEAD is a symlink to a host credentials file",
            format!("cd /workspace/.git && rm HEAD && ln -s {o}/aws/credentials HEAD"),
            Some(".git/HEAD"),
        ),
        t(
            "the branch is a symlink to the database secret",
            format!("cd /workspace/.git/refs/heads && rm main && ln -s {o}/data/bridge.db.secret main"),
            Some("the branch HEAD names"),
        ),
        t(
            "refs/ is a symlink to a host repository",
            format!("cd /workspace/.git && mv refs refs-old && ln -s {o}/repo/.git/refs refs"),
            Some("the branch HEAD names"),
        ),
        t(
            "packed-refs is a symlink to a host file",
            format!("cd /workspace/.git && rm refs/heads/main && ln -s {o}/packed-refs packed-refs"),
            Some(".git/packed-refs"),
        ),
        t(
            "HEAD is a FIFO",
            "cd /workspace/.git && rm HEAD && mkfifo HEAD".into(),
            Some(".git/HEAD"),
        ),
        t(
            "the branch is a FIFO",
            "cd /workspace/.git/refs/heads && rm main && mkfifo main".into(),
            Some("the branch HEAD names"),
        ),
        t(
            "packed-refs is huge",
            "cd /workspace/.git && rm refs/heads/main && head -c 9000000 /dev/zero > packed-refs"
                .into(),
            Some(".git/packed-refs"),
        ),
        t(
            ".git is a FIFO",
            "cd /workspace && mv .git .git-old && mkfifo .git".into(),
            Some(".git"),
        ),
        t(
            "HEAD is huge",
            "head -c 100000 /dev/zero > /workspace/.git/HEAD".into(),
            Some(".git/HEAD"),
        ),
        t(
            ".git is a symlink to a host repository",
            format!("cd /workspace && mv .git .git-old && ln -s {o}/repo/.git .git"),
            Some(".git"),
        ),
        t(
            ".git is a gitdir: file pointing at a host repository",
            format!("cd /workspace && mv .git .git-old && echo 'gitdir: {o}/repo/.git' > .git"),
            Some("gitdir"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_planted_links_fifos_and_huge_files_never_reach_the_host() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("sandbox_planted_links_fifos_and_huge_files_never_reach_the_host") {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let (ws, out) = (tmp.path().join("ws"), tmp.path().join("host"));
    std::fs::create_dir_all(&ws)?;
    open_up(&ws, 0o777)?;
    clean_repo(&ws)?;
    let canaries = Canaries::plant(&out, SHA)?;
    let mut w = world(&ws).await?;

    // Write trap: a pending proposal's snapshot ref is planted as a symlink
    // to a host file before the operator approves that innocent proposal.
    let innocent = w.propose("touch /workspace/ran-innocent").await?;
    let plant = format!(
        "cd /workspace/.git/refs/heads && mv bridge-snapshot old-snapshot && mkdir bridge-snapshot \
         && chmod 777 bridge-snapshot && ln -s {}/data/victim bridge-snapshot/{innocent}",
        out.display()
    );
    let planted = w.run(&plant).await?;
    assert_eq!(planted.job.state, "done", "planting failed: {planted:?}");
    assert_eq!(planted.exit_code(), Some(0), "planting failed: {planted:?}");
    canaries.assert_untouched("after planting the snapshot-ref symlink")?;
    let job = approve_and_run(&w, &innocent).await?;
    assert_eq!(
        job.state, "done",
        "the defused trap should not stop the job: {job:?}"
    );
    canaries.assert_untouched("after the snapshot over a planted ref symlink")?;
    let made = ws.join(".git/refs/heads/bridge-snapshot").join(&innocent);
    assert!(
        made.symlink_metadata()?.is_file(),
        "the planted symlink was not replaced"
    );
    assert_eq!(std::fs::read_to_string(&made)?.trim(), SHA);
    assert!(ws.join("ran-innocent").exists());

    // Every other trap: planted by one approved command, sprung by the next.
    for (i, trap) in traps(&out).into_iter().enumerate() {
        clean_repo(&ws)?;
        let planted = w.run(&trap.plant).await?;
        assert_eq!(
            planted.job.state, "done",
            "{}: planting failed: {planted:?}",
            trap.name
        );
        assert_eq!(
            planted.exit_code(),
            Some(0),
            "{}: planting failed: {planted:?}",
            trap.name
        );
        canaries.assert_untouched(&format!("{}: after planting", trap.name))?;

        let marker = format!("ran-{i}");
        let proposal = w.propose(&format!("touch /workspace/{marker}")).await?;
        let job = approve_and_run(&w, &proposal).await?;
        canaries.assert_untouched(&format!("{}: after the snapshot", trap.name))?;
        let Some(path) = trap.refused else { continue };
        assert_eq!(job.state, "failed", "{}: {job:?}", trap.name);
        let why = job.failure.clone().unwrap_or_default();
        assert!(
            why.contains(path) && why.contains("the command was not run"),
            "{}: the failure does not name `{path}` or say the command did not run: {why}",
            trap.name
        );
        assert!(
            !ws.join(&marker).exists(),
            "{}: the command ran anyway",
            trap.name
        );
    }
    // The /data-like directory gained nothing (a followed snapshot
    // directory would have put a ref there).
    let mut in_data: Vec<_> = std::fs::read_dir(out.join("data"))?
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    in_data.sort();
    assert_eq!(
        in_data,
        ["bridge.db", "bridge.db.secret", "http-token", "victim"]
    );
    canaries.touched()?; // that listing was ours

    // No canary content anywhere the failure texts go.
    let conn = sql(&w.db)?;
    let texts: Vec<(String, String)> = conn
        .prepare(
            "SELECT 'proposals.failure', coalesce(failure, '') FROM proposals
             UNION ALL SELECT 'proposals.result', coalesce(result, '') FROM proposals
             UNION ALL SELECT 'messages', body FROM messages
             UNION ALL SELECT 'audit', detail FROM audit",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    assert!(
        texts.iter().any(|(_, t)| t.contains(".git/HEAD")),
        "no refusal was stored"
    );
    for (where_, text) in &texts {
        Canaries::assert_absent(text, where_);
    }
    for session in ["a", "b"] {
        for m in yolo::inbox(&w.server, &w.conv, session).await? {
            Canaries::assert_absent(&m.to_string(), &format!("session {session}'s inbox"));
        }
    }
    w.assert_healthy().await?;
    let log = w.dir.path().join("runner.log");
    w.runner.stop(Duration::from_secs(20))?;
    let log = std::fs::read_to_string(log)?;
    assert!(log.contains("job failed before or while running"), "{log}");
    Canaries::assert_absent(&log, "the runner's log");
    canaries.assert_untouched("at the end")?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_path_swapped_for_a_symlink_is_refused_and_the_failure_is_redacted()
-> anyhow::Result<()> {
    if !yolo::docker_or_skip(
        "a_workspace_path_swapped_for_a_symlink_is_refused_and_the_failure_is_redacted",
    ) {
        return Ok(());
    }
    // A credential-looking directory name stands in for any secret a
    // failure text may quote: it must reach nothing unredacted.
    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    let tmp = tempfile::tempdir()?;
    let parent = tmp.path().join("enclosing");
    let ws = parent.join(format!("ws-{KEY}"));
    std::fs::create_dir_all(&ws)?;
    open_up(&ws, 0o777)?;
    clean_repo(&ws)?;
    let mut w = world(&ws).await?;

    // What a command in an enclosing read-write workspace could do: swap a
    // directory on the path for a symlink (here to the same tree, so only
    // the swap itself is under test).
    let real = tmp.path().join("moved");
    std::fs::rename(&parent, &real)?;
    std::os::unix::fs::symlink(&real, &parent)?;

    let proposal = w.propose("touch /workspace/ran").await?;
    let job = approve_and_run(&w, &proposal).await?;
    assert_eq!(job.state, "failed", "{job:?}");
    let why = job.failure.clone().unwrap_or_default();
    assert!(
        why.contains("passes through a symbolic link") && why.contains("AWS_KEY_REDACTED"),
        "{why}"
    );
    assert!(
        !real.join(format!("ws-{KEY}/ran")).exists(),
        "the command ran"
    );

    let conn = sql(&w.db)?;
    let texts: Vec<String> = conn
        .prepare(
            "SELECT coalesce(failure, '') FROM proposals UNION ALL SELECT body FROM messages
             UNION ALL SELECT detail FROM audit",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for session in ["a", "b"] {
        for m in yolo::inbox(&w.server, &w.conv, session).await? {
            assert!(
                !m.to_string().contains(KEY),
                "session {session} got the key: {m}"
            );
        }
    }
    let log = w.dir.path().join("runner.log");
    w.runner.stop(Duration::from_secs(20))?;
    let log = std::fs::read_to_string(log)?;
    assert!(
        log.contains("AWS_KEY_REDACTED"),
        "the failure was not logged: {log}"
    );
    for (what, text) in texts
        .iter()
        .map(|t| ("the store", t))
        .chain([("the runner's log", &log)])
    {
        assert!(
            !text.contains(KEY),
            "{what} holds the key unredacted:\n{text}"
        );
    }
    std::fs::remove_file(&parent)?;
    w.finish().await
}
