//! Containment: hostile commands, approved and run through the real bridge,
//! runner and Docker engine, hit the sandbox's walls (pids, memory, timeout,
//! network, read-only filesystems, host isolation, output cap), while the
//! bridge and runner stay healthy and no container is left behind.

use std::time::Duration;

use bridge_tests::yolo::{self, World};

/// busybox sh reports a failed fork like this, and gives up.
fn fork_failed(stderr: &str) -> bool {
    stderr.contains("can't fork")
        || stderr.contains("Resource temporarily unavailable")
        || stderr.contains("fork")
}

#[tokio::test(flavor = "multi_thread")]
async fn fork_bomb_hits_the_pids_limit() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("fork_bomb_hits_the_pids_limit") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "10"]).await?;
    // Not the classic `:(){ :|:& };:` (the policy blocks it by pattern):
    // a loop the policy cannot recognise, spawning more processes than the
    // 128 the container may hold.
    let r = w
        .run("i=0; while [ $i -lt 1000 ]; do sleep 30 & i=$((i+1)); done; echo done")
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert!(
        fork_failed(r.stderr()) || r.exit_code() != Some(0),
        "the loop was never stopped by the pids limit: {r:?}"
    );
    assert!(
        !r.stdout().contains("done"),
        "all 1000 forks succeeded: {r:?}"
    );
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_is_oom_killed() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("memory_hog_is_oom_killed") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "30"]).await?;
    // A string that doubles forever: past 512 MiB within a few seconds.
    // (busybox `tail -c 1` streams, so piping /dev/zero into it never
    // grows.)
    let r = w
        .run(r#"awk 'BEGIN { s = "0123456789abcdef"; while (1) s = s s }'; echo "awk exited $?""#)
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert_eq!(r.job.result["timed_out"], false, "{r:?}");
    assert!(
        r.stdout().contains("awk exited 137"),
        "the hog was not OOM-killed (SIGKILL, 137): {r:?}"
    );
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_bound_loop_is_killed_at_the_timeout() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("cpu_bound_loop_is_killed_at_the_timeout") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "3"]).await?;
    let r = w.run("while :; do :; done").await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert_eq!(r.job.result["timed_out"], true, "{r:?}");
    // Killed before it exited: its own status does not exist.
    assert_eq!(r.exit_code(), None, "{r:?}");
    assert!(
        r.job.result["exit_code_unknown_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout"),
        "{r:?}"
    );
    assert_eq!(r.reply["timed_out"], true, "{:?}", r.reply);
    assert!(r.wall < Duration::from_secs(20), "took {:?}", r.wall);
    let duration = r.job.result["duration_ms"].as_u64().unwrap_or(0);
    assert!(
        (2_900..10_000).contains(&duration),
        "killed after {duration} ms, not at 3 s"
    );
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn there_is_no_network_but_loopback() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("there_is_no_network_but_loopback") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "20"]).await?;
    let r = w
        .run(
            "wget -T 2 -q -O- http://127.0.0.1:9 || echo local-failed; \
             wget -T 2 -q -O- http://1.1.1.1/ || echo remote-failed; \
             echo interfaces:; ls /sys/class/net; \
             echo states:; cat /sys/class/net/*/operstate",
        )
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let out = r.stdout();
    assert!(out.contains("local-failed"), "{r:?}");
    assert!(out.contains("remote-failed"), "{r:?}");
    let interfaces: Vec<&str> = out
        .split("interfaces:\n")
        .nth(1)
        .and_then(|s| s.split("states:").next())
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(interfaces, ["lo"], "{r:?}");
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn root_filesystem_is_read_only_and_tmp_is_noexec() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("root_filesystem_is_read_only_and_tmp_is_noexec") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "20"]).await?;
    let r = w
        .run(
            "touch /etc/x || echo etc-refused; touch /bin/x || echo bin-refused; \
             echo hi > /tmp/ok && echo tmp-writable; \
             cp /bin/busybox /tmp/bb && /tmp/bb true || echo tmp-noexec",
        )
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let (out, err) = (r.stdout(), r.stderr());
    assert!(
        out.contains("etc-refused") && out.contains("bin-refused"),
        "{r:?}"
    );
    assert!(err.contains("Read-only file system"), "{r:?}");
    assert!(out.contains("tmp-writable"), "{r:?}");
    assert!(out.contains("tmp-noexec"), "{r:?}");
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_workspace_cannot_be_written() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("read_only_workspace_cannot_be_written") {
        return Ok(());
    }
    let ws = tempfile::tempdir()?;
    // World-writable on the host, so only the read-only mount can say no.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ws.path(), std::fs::Permissions::from_mode(0o777))?;
        std::fs::write(ws.path().join("hello.txt"), "from the host\n")?;
        std::fs::set_permissions(
            ws.path().join("hello.txt"),
            std::fs::Permissions::from_mode(0o666),
        )?;
    }
    let ws_arg = ws.path().to_str().unwrap().to_owned();
    let mut w = World::start(&["--timeout", "20", "--workspace", &ws_arg]).await?;
    let r = w
        .run(
            "cat /workspace/hello.txt; touch /workspace/x || echo create-refused; \
             echo changed >> /workspace/hello.txt || echo append-refused",
        )
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let (out, err) = (r.stdout(), r.stderr());
    assert!(
        out.contains("from the host"),
        "workspace not mounted: {r:?}"
    );
    assert!(
        out.contains("create-refused") && out.contains("append-refused"),
        "{r:?}"
    );
    assert!(err.contains("Read-only file system"), "{r:?}");
    assert!(!ws.path().join("x").exists());
    assert_eq!(
        std::fs::read_to_string(ws.path().join("hello.txt"))?,
        "from the host\n"
    );
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn host_paths_and_the_docker_socket_are_out_of_reach() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("host_paths_and_the_docker_socket_are_out_of_reach") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "20"]).await?;
    let r = w
        .run(
            "cat /etc/shadow || echo no-shadow; \
             echo home:; ls -A /home 2>/dev/null; echo end-home; \
             ls /var/run/docker.sock /run/docker.sock || echo no-socket; \
             echo socket-mounts: $(grep -c docker.sock /proc/mounts); \
             echo root:; ls -A /root 2>/dev/null; echo end-root",
        )
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let out = r.stdout();
    assert!(out.contains("no-shadow"), "{r:?}");
    assert!(
        out.contains("home:\nend-home"),
        "host /home is visible: {r:?}"
    );
    assert!(
        out.contains("root:\nend-root"),
        "host /root is visible: {r:?}"
    );
    assert!(out.contains("no-socket"), "{r:?}");
    assert!(out.contains("socket-mounts: 0"), "{r:?}");
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_as_nobody_without_capabilities_or_new_privileges() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("runs_as_nobody_without_capabilities_or_new_privileges") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "20"]).await?;
    let r = w
        .run("id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status; echo core $(ulimit -H -c)")
        .await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    assert_eq!(r.exit_code(), Some(0), "{r:?}");
    let lines: Vec<Vec<&str>> = r
        .stdout()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["65534"], "{r:?}");
    assert_eq!(lines[1], ["65534"], "{r:?}");
    for cap in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert!(
            lines.contains(&vec![cap, "0000000000000000"]),
            "{cap} not empty: {r:?}"
        );
    }
    assert!(lines.contains(&vec!["NoNewPrivs:", "1"]), "{r:?}");
    assert!(
        lines.contains(&vec!["core", "0"]),
        "core dumps allowed: {r:?}"
    );
    w.assert_healthy().await?;
    w.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gigabyte_of_output_is_capped_and_cut_short() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("a_gigabyte_of_output_is_capped_and_cut_short") {
        return Ok(());
    }
    let mut w = World::start(&["--timeout", "50"]).await?;
    let r = w.run("head -c 1073741824 /dev/zero | tr '\\0' a").await?;
    assert_eq!(r.job.state, "done", "{r:?}");
    let res = &r.job.result;
    assert_eq!(res["truncated"], true, "{res}");
    assert_eq!(r.reply["truncated"], true);
    let stdout = r.stdout();
    assert!(
        stdout.len() < 2 << 20,
        "stored stdout is {} bytes",
        stdout.len()
    );
    assert!(stdout.contains("bytes omitted"), "no truncation marker");
    assert!(stdout.starts_with("aaaa"));
    // The runner stops a command that floods it long before 1 GiB or the
    // 50 s timeout.
    assert_eq!(res["timed_out"], false, "{}", res["timed_out"]);
    assert_eq!(res["output_limit_hit"], true);
    let written = res["stdout_bytes"].as_u64().unwrap_or(0);
    assert!(
        (1 << 20..1 << 30).contains(&written),
        "{written} bytes counted"
    );
    assert!(r.wall < Duration::from_secs(40), "took {:?}", r.wall);
    // The messages both sessions got are bounded too.
    for session in ["a", "b"] {
        let msgs = yolo::inbox(&w.server, &w.conv, session).await?;
        let result = msgs
            .iter()
            .find(|m| m["kind"] == "command_result")
            .expect("a command_result message");
        let body = result["message"].as_str().unwrap_or_default();
        assert!(body.len() < 3 << 20, "{} byte message", body.len());
        assert!(body.contains("too much output"), "{}", &body[..200]);
    }
    w.assert_healthy().await?;
    w.finish().await
}

/// Builds an image `FROM` the test image with `lines` added (offline: the
/// base is local), labelled for this run's cleanup; returns its tag.
fn derived_image(repo: &str, lines: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tag = bridge_tests::images::run_tag(repo, "test");
    let dockerfile = format!(
        "FROM {}\n{lines}\nLABEL {}\n",
        yolo::sandbox_image(),
        bridge_tests::images::run_label()
    );
    let mut child = Command::new("docker")
        .args(["build", "-q", "-t", &tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(dockerfile.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "docker build of {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(tag)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_entrypoint_never_wraps_the_command_and_an_image_volume_is_refused()
-> anyhow::Result<()> {
    if !yolo::docker_or_skip(
        "an_image_entrypoint_never_wraps_the_command_and_an_image_volume_is_refused",
    ) {
        return Ok(());
    }
    let entry = derived_image(
        "mcp-bridge-entrypoint",
        r#"ENTRYPOINT ["/bin/echo", "hijacked"]"#,
    )?;
    let volume = derived_image("mcp-bridge-volume", "VOLUME /data")?;
    let w = World::start(&["--timeout", "20"]).await?;
    let enable = |image: &str| {
        yolo::enable(
            &w.db,
            &w.conv.id,
            &["--mode", "yolo", "--image", image, "--timeout", "20"],
        )
    };
    enable(&entry)?;
    let r = w.run("echo ran").await?;
    assert_eq!(
        (r.job.state.as_str(), r.stdout()),
        ("done", "ran\n"),
        "{r:?}"
    );

    enable(&volume)?;
    let p = w.propose("echo never").await?;
    let token = yolo::approve(&w.db, &p, &[])?;
    w.execute(&p, &token).await?;
    let job = yolo::wait_final(&w.db, &p, Duration::from_secs(90))?;
    assert_eq!(job.state, "failed", "{job:?}");
    let failure = job.failure.unwrap_or_default();
    assert!(failure.contains("declares VOLUME /data"), "{failure}");
    w.finish().await
}
