//! The first ten minutes (issue 16), through the real binary: `bridge serve`
//! started by hand on a terminal says what it is (and stays silent for an
//! agent's pipes), `serve --check` answers for the set-up, `http-token` on a
//! terminal says how to capture the token, and the Docker build context
//! stays small however big `target/` grows.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge_tests::{bin, images, yolo};

const WAIT: Duration = Duration::from_secs(30);

/// A child whose chosen streams are one pseudo-terminal; what it writes
/// there is read back through a terminal emulator.
struct OnPty {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl OnPty {
    /// `streams` (stdin, stdout, stderr): which of the child's streams are
    /// the terminal; the others stay as `cmd` sets them.
    fn spawn(mut cmd: Command, streams: [bool; 3]) -> anyhow::Result<Self> {
        let (master, slave) = bridge_tests::pty::open_pty(40, 500)?;
        if streams[0] {
            cmd.stdin(Stdio::from(slave.try_clone()?));
        }
        if streams[1] {
            cmd.stdout(Stdio::from(slave.try_clone()?));
        }
        if streams[2] {
            cmd.stderr(Stdio::from(slave.try_clone()?));
        }
        cmd.env("TERM", "xterm-256color");
        let child = cmd.spawn()?;
        drop(cmd);
        drop(slave);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut master = std::fs::File::from(master);
        let out = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(Self { child, output })
    }

    /// The terminal's screen as text.
    fn screen(&self) -> String {
        let size = |n| std::num::NonZeroU16::new(n).expect("a non-empty terminal");
        let mut parser = vt100::Parser::new(size(40), size(500), 0);
        parser.process(&self.output.lock().unwrap());
        parser.screen().contents()
    }

    fn wait_for_screen(&self, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                bail!("`{needle}` never appeared; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OnPty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bridge(db: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin("bridge"));
    c.arg("--db")
        .arg(db)
        .args(args)
        .env("BRIDGE_LOG", "warn")
        .env_remove("YOLO_MODE")
        .env_remove("BRIDGE_HTTP");
    c
}

#[test]
fn serve_on_a_terminal_says_it_is_an_mcp_server_waiting_for_a_client() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let p = OnPty::spawn(bridge(&db, &["serve"]), [true, true, true])?;
    let screen = p.wait_for_screen(bridge::startup::STDIO_HINT)?;
    let line = screen
        .lines()
        .find(|l| l.contains(bridge::startup::STDIO_HINT))
        .unwrap_or_default();
    for needle in [
        "waiting for an MCP client on stdin",
        "claude mcp add",
        "--check",
    ] {
        assert!(line.contains(needle), "{needle} missing from {line:?}");
    }
    // One line, and nothing else on the screen (it is still a server).
    let printed: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        printed.len() == 1,
        "more than the hint (500 columns wide):\n{screen}"
    );
    Ok(())
}

#[test]
fn serve_on_pipes_writes_nothing_to_stderr_before_initialize() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let mut child = bridge(&db, &["serve"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let errors = Arc::new(Mutex::new(Vec::new()));
    {
        let mut stderr = child.stderr.take().context("stderr")?;
        let errors = errors.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                errors.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    // Silence is what is tested, so there is no event to wait for: this
    // is long enough for the server to be up and (wrongly) say something.
    std::thread::sleep(Duration::from_millis(1500));
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"pipe","version":"0"}}}"#,
    )?;
    stdin.write_all(b"\n")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    assert!(line.contains(r#""serverInfo""#), "{line}");
    let said = String::from_utf8_lossy(&errors.lock().unwrap()).into_owned();
    assert!(said.is_empty(), "stderr before initialize: {said}");
    drop(stdin);
    let status = child.wait()?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn serve_check_opens_the_database_answers_initialize_and_exits_0() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("fresh.db");
    let out = bridge(&db, &["serve", "--check"])
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("OK: "), "{stdout}");
    assert!(stdout.contains("fresh.db"), "{stdout}");
    assert!(stdout.contains("answered an MCP initialize"), "{stdout}");
    assert!(db.exists(), "the check did not open (create) the database");

    // With --http it also checks the token and address, without binding.
    let token_file = dir.path().join("http-token");
    let out = bridge(
        &db,
        &[
            "serve",
            "--check",
            "--http",
            "0.0.0.0:1",
            "--http-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("HTTP on 0.0.0.0:1"));
    let out = bridge(&db, &["serve", "--check", "--http", "0.0.0.0:1"])
        .env_remove("BRIDGE_HTTP_TOKEN")
        .env_remove("BRIDGE_HTTP_TOKEN_FILE")
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without authentication"));
    Ok(())
}

#[test]
fn serve_check_fails_with_the_fix_on_a_database_others_can_write() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("shared.db");
    std::fs::write(&db, b"")?;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666))?;
    let out = bridge(&db, &["serve", "--check"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 0666 database passed the check");
    assert_eq!(out.stdout, b"", "printed OK anyway");
    assert!(stderr.contains("writable by group or others"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    Ok(())
}

#[test]
fn http_token_on_a_terminal_says_where_the_token_is_and_how_to_capture_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("http-token");
    let token = bridge_tests::random_hex(32);
    std::fs::write(&file, format!("{token}\n"))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let args = ["http-token", "--file", file.to_str().unwrap()];

    // stdout on a terminal: the token there, the hint on stderr.
    let mut cmd = bridge(&dir.path().join("unused.db"), &args);
    let hint_file = dir.path().join("stderr");
    let hint_out = std::fs::File::create(&hint_file)?;
    cmd.stdin(Stdio::null()).stderr(hint_out);
    let p = OnPty::spawn(cmd, [false, true, false])?;
    p.wait_for_screen(&token)?;
    let deadline = Instant::now() + WAIT;
    let hint = loop {
        let hint = std::fs::read_to_string(&hint_file)?;
        if hint.contains(bridge::startup::TOKEN_HINT) || Instant::now() > deadline {
            break hint;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for needle in [bridge::startup::TOKEN_HINT, "exec -T", "\\r"] {
        assert!(hint.contains(needle), "{needle} missing: {hint}");
    }
    assert!(
        !p.screen().contains("exec -T"),
        "the hint went to stdout:\n{}",
        p.screen()
    );

    // stdout captured (a pipe): exactly the token, and no hint.
    let out = bridge(&dir.path().join("unused.db"), &args).output()?;
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout)?, format!("{token}\n"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    Ok(())
}

/// "Sending build context to Docker daemon  12.3MB" → bytes.
fn context_bytes(output: &str) -> Option<f64> {
    let rest = output
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Sending build context to Docker daemon")
        })?
        .trim();
    let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = rest.split_at(split);
    let scale = match unit.trim() {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * scale)
}

#[test]
fn the_docker_build_context_leaves_target_out() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("the_docker_build_context_leaves_target_out") {
        return Ok(());
    }
    let root = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))?;
    // However big target/ is here, make it at least 64 MB more (a sparse
    // file: no disk used, but a context that included it would send it).
    std::fs::create_dir_all(root.join("target"))?;
    let probe = root
        .join("target")
        .join(format!("dockerignore-probe-{}.bin", images::run_id()));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    std::fs::File::create(&probe)?.set_len(64 << 20)?;
    let _remove = Remove(&probe);

    // A throwaway Dockerfile that copies what images/bridge/Dockerfile's
    // `cargo build --locked -p bridge -p runner` needs: the build fails if
    // .dockerignore leaves any of it out.
    let dockerfile_dir = tempfile::tempdir()?;
    let dockerfile = dockerfile_dir.path().join("Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM scratch\nCOPY Cargo.toml Cargo.lock /src/\nCOPY bridge /src/bridge\nCOPY runner /src/runner\nCOPY tests /src/tests\n",
    )?;
    images::ensure_reaper();
    let out = Command::new("docker")
        .args([
            "build",
            "--rm",
            "--force-rm",
            "--label",
            &images::run_label(),
            "-f",
        ])
        .arg(&dockerfile)
        .arg(&root)
        .env("DOCKER_BUILDKIT", "0")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(id) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
    {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", id.trim()])
            .output();
    }
    assert!(
        out.status.success(),
        "the context lacks what the bridge image needs:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = context_bytes(&stdout).with_context(|| format!("no context size in:\n{stdout}"))?;
    eprintln!("build context: {:.1} MB", bytes / 1e6);
    assert!(
        bytes < 50e6,
        "the build context is {:.0} MB: .dockerignore lets target/ (or other bulk) in",
        bytes / 1e6
    );
    Ok(())
}

#[test]
fn context_sizes_parse() {
    assert_eq!(
        context_bytes("Sending build context to Docker daemon  12.5MB\r\n"),
        Some(12.5e6)
    );
    assert_eq!(
        context_bytes("x\nSending build context to Docker daemon  2.048kB\n"),
        Some(2048.0)
    );
    assert_eq!(context_bytes("Step 1/2 : FROM scratch"), None);
}

/// `.env.example` names every variable compose.yaml reads, each with the
/// default compose.yaml falls back to, and nothing else.
#[test]
fn the_example_env_matches_compose_yaml() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose = std::fs::read_to_string(root.join("compose.yaml"))?;
    let example = std::fs::read_to_string(root.join(".env.example"))?;
    let used: std::collections::BTreeMap<String, String> =
        regex::Regex::new(r"\$\{([A-Z_]+):-([^}]*)\}")?
            .captures_iter(&compose)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
    anyhow::ensure!(
        !compose.contains("${") || !used.is_empty(),
        "compose.yaml variables not recognised"
    );
    let listed: std::collections::BTreeMap<String, String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    assert_eq!(
        listed, used,
        ".env.example and compose.yaml's ${{VAR:-default}} disagree"
    );
    assert_eq!(
        compose.matches("${").count(),
        compose.matches(":-").count(),
        "a compose variable without a default"
    );
    Ok(())
}
