//! Test runs clean up after themselves (issue 16): an image a test process
//! builds carries that run's label and is gone once the process ends,
//! whether it returns, panics or is killed, while an image of another run
//! is left alone.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bridge_tests::images::{RUN_LABEL, images_with_label};
use bridge_tests::{bin, random_hex, yolo};

/// An image labelled as another run's: this test's own, removed on drop.
struct Foreign {
    tag: String,
    label: String,
}

impl Foreign {
    fn build() -> anyhow::Result<Self> {
        let run = format!("other-{}", random_hex(4));
        let tag = format!("mcp-bridge-sandbox:cleanup-{run}");
        let label = format!("{RUN_LABEL}={run}");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../images/sandbox-offline/build.sh");
        let out = Command::new("sh")
            .arg(script)
            .arg(&tag)
            .env("IMAGE_LABEL", &label)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Self { tag, label })
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.tag])
            .output();
    }
}

fn wait_gone(label: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if images_with_label(label)?.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("images labelled {label} are still there 60 s after their run ended");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the probe; returns it and the label of its run, once its image
/// exists.
fn probe(how: &str) -> anyhow::Result<(std::process::Child, String)> {
    let mut child = Command::new(bin("image_probe"))
        .arg(how)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let (run, tag) = line
        .trim()
        .split_once(' ')
        .with_context(|| format!("probe said {line:?}"))?;
    assert!(
        tag.ends_with(run),
        "the tag {tag} is not unique to run {run}"
    );
    Ok((child, format!("{RUN_LABEL}={run}")))
}

#[test]
fn a_runs_images_are_removed_when_it_ends_and_no_others() -> anyhow::Result<()> {
    if !yolo::docker_or_skip("image_cleanup") {
        return Ok(());
    }
    let foreign = Foreign::build()?;
    assert_eq!(images_with_label(&foreign.label)?.len(), 1);

    for how in ["exit", "panic", "wait"] {
        let (mut child, label) = probe(how)?;
        if how == "wait" {
            // Alive: its image is there. Then SIGKILL: no destructor runs.
            assert_eq!(images_with_label(&label)?.len(), 1, "{how}");
            child.kill()?;
        }
        let status = child.wait()?;
        match how {
            "exit" => assert!(status.success(), "{status}"),
            _ => assert!(!status.success(), "{how}: {status}"),
        }
        let took = wait_gone(&label)?;
        eprintln!("{how}: the run's image was removed {took:?} after it ended");
    }
    assert_eq!(
        images_with_label(&foreign.label)?.len(),
        1,
        "another run's image was removed"
    );
    Ok(())
}
