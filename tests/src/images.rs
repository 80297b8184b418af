//! Docker images (and containers, networks, volumes) a test process
//! creates are its own: tagged with a suffix unique to this process, labelled
//! `mcp-bridge.test-run=<run id>`, and removed when the process ends, however
//! it ends (success, panic, abort, SIGKILL). Nothing another run created is
//! ever touched: every removal filters on this run's id.
//!
//! How: the first time this process is about to create something, it
//! starts a reaper, `sh` in its own process group (so a Ctrl-C to the test
//! does not reach it) reading a pipe whose only writer is this process.
//! When this process exits for any reason the kernel closes the pipe, the
//! reaper's `cat` sees end-of-file, and it removes exactly what carries
//! this run's label, plus the containers started from those images and the
//! compose project named after this run.

use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The label key every test-created image carries.
pub const RUN_LABEL: &str = "mcp-bridge.test-run";

/// This process's run id: the pid and 32 random bits, e.g. `4242-1a2b3c4d`.
pub fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{}-{}", std::process::id(), crate::random_hex(4)))
}

/// `mcp-bridge.test-run=<run id>`, for `docker --filter label=…` and
/// `LABEL` instructions.
pub fn run_label() -> String {
    format!("{RUN_LABEL}={}", run_id())
}

/// `repo:tag` made unique to this run: `mcp-bridge-sandbox:test-4242-1a2b3c4d`.
pub fn run_tag(repo: &str, tag: &str) -> String {
    format!("{repo}:{tag}-{}", run_id())
}

/// The compose project name of this run (compose labels what it creates
/// with it; the reaper removes that project's leftovers).
pub fn compose_project() -> String {
    format!("mcpbt{}", run_id().replace('-', ""))
}

/// The shell script the reaper runs with `$1` = the run label and `$2` =
/// the compose project: wait for the pipe to close, then remove this run's
/// containers (labelled, started from its images, or in its compose
/// project), its images, and its project's networks and volumes.
const REAPER: &str = r#"cat >/dev/null
images=$(docker images -q --filter "label=$1" | sort -u)
ids=$(docker ps -aq --filter "label=$1"; docker ps -aq --filter "label=com.docker.compose.project=$2"; for i in $images; do docker ps -aq --filter "ancestor=$i"; done)
[ -z "$ids" ] || docker rm -f $(echo "$ids" | sort -u) >/dev/null 2>&1
nets=$(docker network ls -q --filter "label=com.docker.compose.project=$2")
[ -z "$nets" ] || docker network rm $nets >/dev/null 2>&1
vols=$(docker volume ls -q --filter "label=com.docker.compose.project=$2")
[ -z "$vols" ] || docker volume rm -f $vols >/dev/null 2>&1
[ -z "$images" ] || docker image rm -f $images >/dev/null 2>&1
exit 0
"#;

/// Starts this process's reaper (once). Call before creating anything on
/// the engine; creation must label with [`run_label`] or name with
/// [`compose_project`].
pub fn ensure_reaper() {
    static PIPE: OnceLock<Result<Mutex<ChildStdin>, String>> = OnceLock::new();
    let r = PIPE.get_or_init(|| {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .args(["-c", REAPER, "mcp-bridge-test-reaper"])
            .arg(run_label())
            .arg(compose_project())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C that stops the tests must
            // not stop the clean-up.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the image reaper: {e}"))?;
        let stdin = child.stdin.take().ok_or("the reaper has no stdin")?;
        // Held until this process exits; the kernel then closes it.
        Ok(Mutex::new(stdin))
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// Ids of the images carrying `label` (`key=value`).
pub fn images_with_label(label: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("docker")
        .args(["images", "-q", "--filter", &format!("label={label}")])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "docker images failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}
