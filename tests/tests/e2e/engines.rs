//! A runner spanning two Docker engines: this host's socket, and the same
//! daemon reached again over TCP with mutual TLS through a loopback proxy
//! (`bridge_tests::tls_engine`, certificates made in the test). Jobs are
//! spread over both; the TLS engine is stopped mid-run and brought back:
//! its running job fails once with the reason, nothing is run twice, new
//! jobs go to the engine that answers, the operator sees the engine down
//! and up again, and each engine's leftovers are swept by that engine.
//! Real binaries, a real MCP client, a real Docker engine.

use std::path::Path;
use std::time::Duration;

use bridge_tests::ssh_engine::{self, SshEngine};
use bridge_tests::tls_engine::TlsEngine;
use bridge_tests::yolo::{self, World};

/// Proposes each command and approves it on the operator's terminal:
/// (proposal, token) pairs.
async fn approve_all(w: &World, commands: &[&str]) -> anyhow::Result<Vec<(String, String)>> {
    let mut approved = Vec::new();
    for c in commands {
        let p = w.propose(c).await?;
        let token = yolo::approve(&w.db, &p, &[])?;
        approved.push((p, token));
    }
    Ok(approved)
}

/// Executes every approved proposal at once (`execute_command` waits for
/// the result, so they overlap) and waits for the replies.
async fn execute_all(
    w: &World,
    approved: &[(String, String)],
) -> Vec<anyhow::Result<serde_json::Value>> {
    let calls = approved.iter().map(|(p, token)| w.execute(p, token));
    futures_util::future::join_all(calls).await
}

/// Approves and executes `commands` at once; their proposal ids.
async fn run_all(w: &World, commands: &[&str]) -> anyhow::Result<Vec<String>> {
    let approved = approve_all(w, commands).await?;
    for reply in execute_all(w, &approved).await {
        reply?;
    }
    Ok(approved.into_iter().map(|(p, _)| p).collect())
}

/// The single engine each job started on (each started exactly once).
fn engine_of(db: &Path, proposal: &str) -> anyhow::Result<String> {
    let engines = yolo::job_engines(db, proposal)?;
    anyhow::ensure!(
        engines.len() == 1,
        "{proposal} started {} times: {engines:?}",
        engines.len()
    );
    Ok(engines[0].clone())
}

/// `bridge list`'s line for engine `name`.
fn engine_line(db: &Path, name: &str) -> anyhow::Result<String> {
    let out = bridge_tests::operator(db, &["list"])?;
    anyhow::ensure!(out.status.success(), "bridge list failed: {out:?}");
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(&format!("engine {name} ")))
        .unwrap_or_default()
        .to_owned())
}

fn local_engine(name: &str) -> String {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h.starts_with("unix://"))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    format!("name={name},url={socket},max_parallel=2")
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_spread_over_two_engines_and_a_lost_engine_fails_its_job_once() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("jobs_spread_over_two_engines_and_a_lost_engine_fails_its_job_once") {
        return Ok(());
    }
    let tls = TlsEngine::start().await?;
    let remote = format!("{},max_parallel=2", tls.engine_flag("tls"));
    let local = local_engine("local");
    let runner_args = ["--engine", &local, "--engine", &remote, "--pool-size", "1"];
    // Thirteen proposals from one session: past the default send limit.
    let w = World::start_serving(&["--rate-limit", "off"], &runner_args, &[]).await?;
    let within = Duration::from_secs(60);

    // Placement: four jobs that overlap, two slots per engine.
    let jobs = run_all(&w, &["sleep 2; echo spread"; 4]).await?;
    let mut on = Vec::new();
    for p in &jobs {
        let job = yolo::wait_final(&w.db, p, within)?;
        assert_eq!(job.state, "done", "{p}: {job:?}");
        on.push(engine_of(&w.db, p)?);
    }
    on.sort();
    assert_eq!(on, ["local", "local", "tls", "tls"], "two on each engine");
    assert!(engine_line(&w.db, "tls")?.contains("tls up"));

    // Four long jobs, two on each engine; then the TLS engine goes away.
    let approved = approve_all(&w, &["sleep 6; echo survived"; 4]).await?;
    let jobs: Vec<String> = approved.iter().map(|(p, _)| p.clone()).collect();
    let (db, running) = (w.db.clone(), jobs.clone());
    let stop_mid_run = async {
        tokio::task::spawn_blocking(move || {
            for p in &running {
                yolo::wait_running(&db, p, within)?;
            }
            anyhow::Ok(())
        })
        .await??;
        tls.stop();
        anyhow::Ok(())
    };
    // The lost jobs' replies say they failed; the rows are checked below.
    let (_, stopped) = tokio::join!(execute_all(&w, &approved), stop_mid_run);
    stopped?;
    let mut lost = Vec::new();
    for p in &jobs {
        let job = yolo::wait_final(&w.db, p, within)?;
        match engine_of(&w.db, p)?.as_str() {
            "local" => {
                assert_eq!(job.state, "done", "{p}: {job:?}");
                assert_eq!(job.result["stdout"], "survived\n");
            }
            _ => {
                let why = job.failure.clone().unwrap_or_default();
                assert_eq!(job.state, "failed", "{p}: {job:?}");
                assert!(
                    why.contains("Docker engine `tls` stopped answering")
                        && why.contains("not retried"),
                    "{why}"
                );
                lost.push(job);
            }
        }
    }
    assert_eq!(lost.len(), 2, "the TLS engine's two jobs were lost");
    let down = engine_line(&w.db, "tls")?;
    assert!(
        down.contains("tls DOWN") && down.contains("retry in"),
        "{down}"
    );

    // While it is down, jobs go to the engine that answers.
    let after = w.run("echo placed").await?;
    assert_eq!(after.stdout(), "placed\n");
    assert_eq!(engine_of(&w.db, &after.proposal)?, "local");

    // Back up: the operator sees it, the lost jobs' containers (left on
    // the daemon while it was unreachable) are swept through it, and it
    // takes jobs again.
    tls.restart().await?;
    yolo::wait_until("the TLS engine to be up again", within, || {
        Ok(engine_line(&w.db, "tls")?.contains("tls up"))
    })?;
    for job in &lost {
        let id = job.container_id.clone().unwrap_or_default();
        yolo::wait_until(
            &format!("lost container {id} to be removed"),
            within,
            || Ok(!yolo::container_exists(&id)?),
        )?;
    }
    let jobs = run_all(&w, &["sleep 1; echo back"; 4]).await?;
    let mut on = Vec::new();
    for p in &jobs {
        assert_eq!(yolo::wait_final(&w.db, p, within)?.state, "done");
        on.push(engine_of(&w.db, p)?);
    }
    assert!(
        on.iter().any(|e| e == "tls"),
        "the TLS engine runs jobs again: {on:?}"
    );
    w.finish().await
}

/// The same daemon as a remote engine over ssh (a loopback sshd): jobs at
/// once all run there, each once; an engine whose login is refused is
/// shown down with ssh's reason and takes no job.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_run_on_an_engine_reached_over_ssh() -> anyhow::Result<()> {
    let test = "jobs_run_on_an_engine_reached_over_ssh";
    if !yolo::docker_or_skip(test) || !ssh_engine::sshd_or_skip(test) {
        return Ok(());
    }
    let ssh = SshEngine::start()?;
    let good = format!("{},max_parallel=3", ssh.engine_flag("viassh"));
    let refused = ssh.unauthorized_flag("nologin");
    let runner_args = ["--engine", &good, "--engine", &refused, "--pool-size", "1"];
    let w = World::start_serving_env(
        &["--rate-limit", "off"],
        &runner_args,
        &ssh.runner_env(),
        &[],
    )
    .await?;
    let within = Duration::from_secs(60);

    let jobs = run_all(&w, &["sleep 1; echo over-ssh"; 3]).await?;
    for p in &jobs {
        let job = yolo::wait_final(&w.db, p, within)?;
        assert_eq!(job.state, "done", "{p}: {job:?}");
        assert_eq!(job.result["stdout"], "over-ssh\n");
        assert_eq!(engine_of(&w.db, p)?, "viassh");
    }
    let up = engine_line(&w.db, "viassh")?;
    assert!(up.contains("viassh up") && up.contains("ssh://"), "{up}");
    let down = engine_line(&w.db, "nologin")?;
    assert!(
        down.contains("nologin DOWN") && down.contains("Permission denied (publickey)"),
        "ssh's own reason reaches the operator: {down}"
    );
    // The same, as data: `bridge engines --json`.
    let engines = bridge_tests::operator_json(&w.db, &["engines"])?;
    let by_name = |name: &str| {
        engines
            .as_array()
            .and_then(|a| a.iter().find(|e| e["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    let (up, down) = (by_name("viassh"), by_name("nologin"));
    assert_eq!(up["up"], true, "{engines}");
    assert_eq!(up["local"], false, "{engines}");
    assert_eq!(down["up"], false, "{engines}");
    assert!(down["next_retry_at"].is_i64(), "{engines}");
    assert!(
        down["error"]
            .as_str()
            .is_some_and(|e| e.contains("Permission denied (publickey)")),
        "{engines}"
    );
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_job_is_refused_by_a_runner_without_a_local_engine() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_workspace_job_is_refused_by_a_runner_without_a_local_engine") {
        return Ok(());
    }
    let tls = TlsEngine::start().await?;
    let ws = tempfile::tempdir()?;
    let ws_arg = ws.path().to_str().unwrap().to_owned();
    let remote = tls.engine_flag("remote");
    let w = World::start_with(&["--engine", &remote], &["--workspace", &ws_arg]).await?;
    let p = w.propose("ls /workspace").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    w.execute(&p, &token).await?;
    let job = yolo::wait_final(&w.db, &p, Duration::from_secs(60))?;
    assert_eq!(job.state, "failed");
    let why = job.failure.unwrap_or_default();
    assert!(
        why.contains("no local Docker engine") && why.contains("local = true"),
        "{why}"
    );
    assert_eq!(
        yolo::job_starts(&w.db, &p)?,
        0,
        "it never reached a container"
    );
    // The sessions were told why.
    let inbox = yolo::inbox(&w.server, &w.conv, "a").await?;
    let told = serde_json::Value::from(inbox).to_string();
    assert!(told.contains("no local Docker engine"), "{told}");
    w.finish().await
}

#[test]
fn bad_engine_settings_stop_the_runner_with_the_fix() {
    for (flag, says) in [
        (
            "name=plain,url=tcp://127.0.0.1:2375",
            "needs TLS: set ca, cert and key",
        ),
        ("url=unix:///var/run/docker.sock", "missing field `name`"),
        (
            "name=Bad,url=unix:///var/run/docker.sock",
            "is invalid: use 1-32 of a-z",
        ),
        (
            "name=s,url=ssh://me@127.0.0.1:2222",
            "ssh:// takes no port; give the host a `Host` entry",
        ),
        (
            "name=s,url=ssh://-oProxyCommand=sh",
            "must be ssh://USER@HOST or ssh://HOST",
        ),
        (
            "name=t,url=tcp://127.0.0.1:9,ca=/nonexistent/ca.pem,cert=/c,key=/k",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            "name=s,url=ssh://me@host,identity=/nonexistent/id",
            "cannot read /nonexistent/id",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(bridge_tests::bin("runner"))
            .arg("--db")
            .arg(dir.path().join("b.db"))
            .args(["--engine", flag])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag}: the runner started");
        assert!(err.contains(says), "{flag}: {err}");
    }
}

/// What the operator sees of a runner's engines, written as a runner
/// writes them (no Docker needed): `bridge list` gives each engine's state
/// and the last error, `/healthz` (via `bridge health`) only names which are
/// up, and the console puts a down engine at the top of its jobs pane. The
/// error text is shown escaped, wherever it came from.
#[tokio::test]
async fn the_operator_sees_which_engines_are_down_and_why() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let http = bridge_tests::http_bridge::HttpBridge::start(&db, &[], &[])?;
    let now = chrono::Utc::now().timestamp_millis();
    let conn = bridge_tests::sql(&db)?;
    conn.execute(
        // Its heartbeat stays fresh for the whole test.
        "INSERT INTO runners (id, pid, started_at, heartbeat_at) VALUES ('run_a1', 1, ?1, ?2)",
        [now, now + 3_600_000],
    )?;
    for (name, up, error) in [
        ("here", true, None),
        (
            "build-02",
            false,
            Some("ping failed: connect refused\u{1b}[2J"),
        ),
    ] {
        conn.execute(
            "INSERT INTO engines (runner_id, name, endpoint, local, up, since, error, next_retry_at,
                                  running, max_parallel, warm, updated_at)
             VALUES ('run_a1', ?1, 'tcp://10.0.0.12:2376', 0, ?2, ?3, ?4, ?5, 1, 8, 2, ?3)",
            rusqlite::params![name, up, now - 12_000, error, now + 4_000],
        )?;
    }

    let out = bridge_tests::operator(&db, &["list"])?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.contains("engine here up · 1/8 running · 2 warm"),
        "{text}"
    );
    let down = text
        .lines()
        .find(|l| l.contains("build-02"))
        .unwrap_or_default();
    assert!(down.contains("build-02 DOWN for 12 s, retry in "), "{down}");
    assert!(
        down.contains("connect refused\\e[2J") && !down.contains('\u{1b}'),
        "{down}"
    );

    let health = std::process::Command::new(bridge_tests::bin("bridge"))
        .args(["health", &format!("http://{}/healthz", http.addr)])
        .output()?;
    let said = String::from_utf8(health.stdout)?;
    let err = String::from_utf8_lossy(&health.stderr);
    assert!(health.status.success(), "{said}{err}");
    assert!(
        said.contains("engines: 1 of 2 up (down: build-02;"),
        "{said}"
    );
    assert!(
        !said.contains("10.0.0.12"),
        "no addresses to HTTP clients: {said}"
    );

    let mut cmd = std::process::Command::new(bridge_tests::bin("bridge"));
    cmd.arg("--db").arg(&db).args(["console", "--watch"]);
    let mut c = bridge_tests::console::Console::spawn(cmd, 30, 240)?;
    let screen = c.shows(
        "the engines in the jobs pane",
        "engines: build-02 DOWN, here up",
    )?;
    let line = screen
        .iter()
        .find(|l| l.contains("engine build-02 DOWN"))
        .cloned();
    assert!(
        line.is_some_and(|l| l.contains("connect refused\\e[2J")),
        "{screen:#?}"
    );
    c.quit()?;
    Ok(())
}

/// A TLS engine's certificate must chain to the `ca` file, and to nothing
/// else: not to a root the system trusts (here `SSL_CERT_FILE`, which the
/// system store honours, holds the engine's real CA while `ca` names
/// another). Trusting the system's roots is the operator's explicit
/// `ca=system`.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_engine_is_trusted_through_its_ca_file_alone() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_tls_engine_is_trusted_through_its_ca_file_alone") {
        return Ok(());
    }
    let tls = TlsEngine::start().await?;
    let other = bridge_tests::tls_engine::Certs::make()?;
    let system_store = vec![(
        "SSL_CERT_FILE".to_owned(),
        tls.certs.path("ca.pem").display().to_string(),
    )];
    let client = format!(
        "cert={},key={}",
        tls.certs.path("client-cert.pem").display(),
        tls.certs.path("client-key.pem").display()
    );
    let flag = |ca: &str| format!("name=tls,url=tcp://127.0.0.1:{},ca={ca},{client}", tls.port);
    let within = Duration::from_secs(30);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("b.db");
    let local = local_engine("local");

    let wrong_ca = flag(&other.path("ca.pem").display().to_string());
    let mut runner = yolo::Runner::start_with_env(
        &db,
        &["--engine", &local, "--engine", &wrong_ca],
        &system_store,
    )?;
    yolo::wait_until("the TLS engine to be recorded down", within, || {
        Ok(engine_line(&db, "tls")?.contains("tls DOWN"))
    })?;
    let line = engine_line(&db, "tls")?;
    assert!(
        line.contains("tls DOWN") && line.contains("certificate"),
        "an engine certificate from a CA other than `ca` is refused: {line}"
    );
    runner.stop(Duration::from_secs(20))?;

    let mut runner = yolo::Runner::start_with_env(
        &db,
        &["--engine", &local, "--engine", &flag("system")],
        &system_store,
    )?;
    yolo::wait_until("the TLS engine to be up with ca=system", within, || {
        Ok(engine_line(&db, "tls")?.contains("tls up"))
    })?;
    runner.stop(Duration::from_secs(20))?;
    Ok(())
}
