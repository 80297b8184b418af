//! File permissions through the real binary: a database, WAL, secret or
//! token file that others could change or read, a file another user owns,
//! and a directory others could rename files in are refused with the
//! command that fixes them; a sticky shared directory is fine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use bridge_tests::{Conv, Server, bin, free_port};

fn chmod(path: &Path, mode: u32) -> anyhow::Result<()> {
    Ok(std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(mode),
    )?)
}

/// `bridge --db DB serve EXTRA…` with no client: returns (success, stderr).
fn serve_refused(db: &Path, extra: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin("bridge"))
        .arg("--db")
        .arg(db)
        .arg("serve")
        .args(extra)
        .env("BRIDGE_LOG", "warn")
        .env_remove("YOLO_MODE")
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(!out.status.success(), "the bridge started: {stderr}");
    Ok(stderr)
}

/// A database the bridge created and closed cleanly.
async fn made(db: &Path) -> anyhow::Result<()> {
    let s = Server::start(db, &[]).await?;
    Conv::create(&s).await?;
    s.stop().await
}

fn assert_says(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "missing `{p}` in: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_or_wal_others_can_write_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    made(&db).await?;
    let path = db.display().to_string();
    chmod(&db, 0o666)?;
    let err = serve_refused(&db, &[])?;
    assert_says(
        &err,
        &[
            "writable by group or others",
            "mode 666",
            &format!("chmod 600 {path}"),
        ],
    );
    // The operator CLI and the runner open it the same way.
    let out = bridge_tests::operator(&db, &["list"])?;
    assert!(!out.status.success());
    chmod(&db, 0o600)?;

    let wal = dir.path().join("b.db-wal");
    std::fs::write(&wal, b"")?;
    chmod(&wal, 0o666)?;
    let err = serve_refused(&db, &[])?;
    assert_says(&err, &[&format!("chmod 600 {}", wal.display())]);
    std::fs::remove_file(&wal)?;

    // Readable-only by others is still only a warning (the file is created
    // 0600; an operator may have widened it on purpose for backups).
    chmod(&db, 0o644)?;
    made(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn files_owned_by_another_user_are_refused() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED files_owned_by_another_user_are_refused: chown to another uid needs root"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    made(&db).await?;
    let other = Some(nix::unistd::Uid::from_raw(4242));
    chmod(&db, 0o644)?;
    nix::unistd::chown(&db, other, None)?;
    let err = serve_refused(&db, &[])?;
    assert_says(&err, &["owned by uid 4242", "uid 0", "chown 0"]);
    nix::unistd::chown(&db, Some(nix::unistd::Uid::from_raw(0)), None)?;
    chmod(&db, 0o600)?;

    let secret = dir.path().join("b.db.secret");
    nix::unistd::chown(&secret, other, None)?;
    let err = serve_refused(&db, &[])?;
    assert_says(&err, &["b.db.secret", "owned by uid 4242"]);
    nix::unistd::chown(&secret, Some(nix::unistd::Uid::from_raw(0)), None)?;
    made(&db).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_others_can_write_needs_the_sticky_bit() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared)?;
    let db = shared.join("b.db");
    chmod(&shared, 0o777)?;
    let err = serve_refused(&db, &[])?;
    assert_says(
        &err,
        &[
            "writable by group or others without the sticky bit",
            &format!("chmod go-w {}", shared.display()),
        ],
    );
    assert!(!db.exists(), "nothing is created in an unsafe directory");
    // /tmp-style: others may write, but only owners may rename or delete.
    chmod(&shared, 0o1777)?;
    made(&db).await?;
    chmod(&shared, 0o775)?;
    serve_refused(&db, &[])?;
    chmod(&shared, 0o700)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_and_token_files_must_both_be_0600() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    made(&db).await?;
    let secret = dir.path().join("b.db.secret");
    chmod(&secret, 0o640)?;
    let err = serve_refused(&db, &[])?;
    assert_says(
        &err,
        &[
            "readable by group or others",
            &format!("chmod 600 {}", secret.display()),
        ],
    );
    chmod(&secret, 0o600)?;

    let token = dir.path().join("http.token");
    std::fs::write(&token, format!("{}\n", bridge_tests::random_hex(32)))?;
    chmod(&token, 0o640)?;
    let addr = format!("127.0.0.1:{}", free_port());
    let path = token.display().to_string();
    let err = serve_refused(&db, &["--http", &addr, "--http-token-file", &path])?;
    assert_says(
        &err,
        &[
            "readable by group or others",
            "mode 640",
            &format!("chmod 600 {path}"),
        ],
    );
    Ok(())
}
