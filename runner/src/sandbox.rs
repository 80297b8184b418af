//! The hardened container and running one command in it.
//!
//! [`container_spec`] is the only place a container's configuration is
//! decided. It is one straight-line function whose steps mirror, in the same
//! order, the numbered hardening list in YOLO_MODE.md; each says why. Nothing
//! else in this workspace creates containers (`clippy.toml` forbids
//! `create_container` elsewhere).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::AttachContainerResults;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use bridge_state::job_result::JobResult;
use bridge_state::redact::Redactor;
use bridge_state::redact_stream::StreamRedactor;
use bridge_state::yolo::ExecParams;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::capture::Capture;
use crate::trailer::TrailerFilter;

/// Every container we create carries this label, so a restarted runner can
/// find and remove whatever a crashed one left behind.
pub const LABEL_MANAGED: &str = "mcp-bridge.managed";
pub const LABEL_RUNNER: &str = "mcp-bridge.runner";
pub const LABEL_POOL: &str = "mcp-bridge.pool";
/// The database the owning runner serves; sweeps only ever look at these.
pub const LABEL_DB: &str = "mcp-bridge.db";

/// Who owns a container: a runner, serving one database.
#[derive(Debug, Clone)]
pub struct Owner {
    pub runner: String,
    pub db: String,
}
/// The unprivileged user every command runs as (nobody:nogroup).
pub const USER: &str = "65534:65534";
/// The sandbox's first process: read one base64 line, run it with `sh -c`.
/// The image must provide `/bin/sh` and `base64` (busybox and Debian do).
/// When the command ends, the wrapper writes `\n<nonce> <exit code>\n` to
/// both streams (a builtin: it works even at the pids limit), so the runner
/// has the whole result without waiting for the engine to notice the
/// container's exit. The nonce arrives on stdin, so the command cannot see it
/// in its parent's arguments or environment; the runner counts only the
/// first trailer with that nonce, wherever it is in the stream
/// ([`crate::trailer`]).
pub const WAIT_FOR_COMMAND: &str = r#"IFS= read -r line || exit 97
nonce=${line%% *}
/bin/sh -c "$(printf %s "${line#* }" | base64 -d)" </dev/null
code=$?
printf '\n%s %s\n' "$nonce" "$code"
printf '\n%s %s\n' "$nonce" "$code" >&2"#;
/// A command whose output exceeds this many bytes in total is killed: past
/// that point it is only trying to exhaust something.
pub const OUTPUT_KILL_FACTOR: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "sandbox image `{0}` is not present on this Docker engine; build it (images/sandbox-offline/build.sh, or `docker build -t {0} images/sandbox`) and retry"
    )]
    ImageMissing(String),
    #[error("workspace {0} is refused: {1}")]
    Workspace(String, String),
    #[error("Docker engine error: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("could not hand the command to the sandbox: {0}")]
    Stdin(std::io::Error),
    #[error("sandbox container {0} vanished before reporting an exit code")]
    Vanished(String),
}

/// Maps paths as the runner sees them to paths on the Docker host. A runner
/// inside a container (compose) starts *sibling* containers, whose bind
/// sources the engine resolves on the host; the runner learns the mapping
/// from its own container's mounts. Empty when the runner runs on the host.
#[derive(Debug, Clone, Default)]
pub struct HostPaths(Vec<(std::path::PathBuf, std::path::PathBuf)>);

impl HostPaths {
    /// Reads this container's mounts (`--translate-mounts`, set by compose).
    pub async fn discover(docker: &Docker) -> anyhow::Result<Self> {
        let hostname = std::fs::read_to_string("/etc/hostname")?;
        let me = docker.inspect_container(hostname.trim(), None).await.map_err(|e| {
            anyhow::anyhow!(
                "--translate-mounts: cannot inspect this runner's own container `{}` ({e}); run the runner in a container of the same engine, or drop the flag",
                hostname.trim()
            )
        })?;
        let mut pairs: Vec<(std::path::PathBuf, std::path::PathBuf)> = me
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Some((m.destination?.into(), m.source?.into())))
            .collect();
        // Longest destination first, so nested mounts win.
        pairs.sort_by_key(|(d, _)| std::cmp::Reverse(d.as_os_str().len()));
        tracing::info!(?pairs, "translating workspace paths to host paths");
        Ok(Self(pairs))
    }

    pub fn to_host(&self, p: &std::path::Path) -> std::path::PathBuf {
        for (dest, src) in &self.0 {
            if let Ok(rest) = p.strip_prefix(dest) {
                return src.join(rest);
            }
        }
        p.to_path_buf()
    }
}

/// What a container depends on (not the command, mode or timeout): jobs
/// with equal keys can use each other's pre-started containers.
pub fn config_key(p: &ExecParams) -> String {
    let json = serde_json::json!([p.image, p.workspace, p.workspace_rw, p.runtime, p.limits]);
    let mut h = Sha256::new();
    h.update(json.to_string().as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// Refuses workspaces that would hand the sandbox the host: the root, the
/// runtime directories, or anything holding the Docker socket.
pub fn check_workspace(path: &std::path::Path) -> Result<(), SandboxError> {
    let refuse = |why: &str| {
        Err(SandboxError::Workspace(
            path.display().to_string(),
            why.to_owned(),
        ))
    };
    if !path.is_absolute() {
        return refuse("it must be an absolute path");
    }
    for forbidden in [
        "/", "/run", "/var/run", "/var", "/etc", "/proc", "/sys", "/dev", "/root", "/home",
    ] {
        if path == std::path::Path::new(forbidden) {
            return refuse("it is a system directory; choose a project directory");
        }
    }
    // Looked up without following symlinks: an earlier read-write command
    // may have planted them, and following one would turn this check into
    // an oracle on host paths. A symlink inside the workspace resolves in the
    // container's own filesystem, so only a real entry here matters.
    let ws = match crate::confined::Dir::workspace(path) {
        Ok(ws) => ws,
        Err(e) => return refuse(&e.to_string()),
    };
    for dir in [".", "run", "var/run"] {
        let Ok(Some(dir)) = ws.dir(dir) else { continue };
        let kind = dir.kind("docker.sock").ok().flatten();
        if kind.is_some_and(|k| k != rustix::fs::FileType::Symlink) {
            return refuse(
                "it contains a Docker socket, which would give the sandbox control of the host",
            );
        }
    }
    Ok(())
}

/// The hardened container, steps in the order of YOLO_MODE.md.
#[allow(clippy::field_reassign_with_default)] // one step per statement, like the list
pub fn container_spec(
    p: &ExecParams,
    owner: &Owner,
    key: &str,
    host_paths: &HostPaths,
) -> ContainerCreateBody {
    let mut host = HostConfig::default();
    // 1. No network: nothing to exfiltrate to, nothing to download from.
    host.network_mode = Some("none".into());
    // 2. Read-only root filesystem: a command cannot alter the image's tools.
    host.readonly_rootfs = Some(true);
    // 3. A small /tmp that cannot hold executables or setuid files.
    host.tmpfs = Some(HashMap::from([(
        "/tmp".into(),
        format!("rw,noexec,nosuid,nodev,size={}", p.limits.tmpfs_bytes),
    )]));
    // 4. No Linux capabilities at all.
    host.cap_drop = Some(vec!["ALL".into()]);
    // 5. No privilege gain through setuid binaries.
    host.security_opt = Some(vec!["no-new-privileges".into()]);
    // 6. (The user, 65534, is set on the body below.)
    // 7. A process limit, so a fork bomb hits a wall.
    host.pids_limit = Some(p.limits.pids);
    // 8. Memory, with swap equal to it (no swap): a hog is OOM-killed.
    host.memory = Some(p.limits.memory_bytes);
    host.memory_swap = Some(p.limits.memory_bytes);
    // 9. One CPU, so a busy loop cannot starve the host.
    host.nano_cpus = Some(p.limits.nano_cpus);
    // 10. An init process reaps zombies and forwards signals.
    host.init = Some(true);
    // 11. Capped engine-side logs (output is captured through the attach anyway).
    host.log_config = Some(HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            ("max-size".into(), "1m".into()),
            ("max-file".into(), "1".into()),
        ])),
    });
    // 12-13. Timeout and output cap are enforced by `run_command`.
    // 14. The Docker socket is never mounted: the workspace is the only
    //     mount, and `check_workspace` refuses any that holds a socket.
    // 15. The workspace, read-only unless the operator chose read-write.
    host.mounts = p.workspace.as_ref().map(|w| {
        vec![Mount {
            typ: Some(MountType::BIND),
            source: Some(host_paths.to_host(w).display().to_string()),
            target: Some("/workspace".into()),
            read_only: Some(!p.workspace_rw),
            ..Default::default()
        }]
    });
    // 16. An optional stronger runtime (e.g. gVisor's runsc).
    host.runtime = p.runtime.clone();
    // We remove containers ourselves; auto-remove races with inspection.
    host.auto_remove = Some(false);
    ContainerCreateBody {
        image: Some(p.image.clone()),
        // 6. Never root.
        user: Some(USER.into()),
        // The container's one process waits for exactly one command on
        // stdin (base64, one line), then becomes it. Delivering the command
        // to an already-running process skips `docker exec`'s cost.
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), WAIT_FOR_COMMAND.into()]),
        open_stdin: Some(true),
        stdin_once: Some(true),
        working_dir: Some(
            if p.workspace.is_some() {
                "/workspace"
            } else {
                "/tmp"
            }
            .into(),
        ),
        env: Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "HOME=/tmp".into(),
        ]),
        network_disabled: Some(true),
        hostname: Some("sandbox".into()),
        tty: Some(false),
        labels: Some(HashMap::from([
            (LABEL_MANAGED.into(), "1".into()),
            (LABEL_RUNNER.into(), owner.runner.clone()),
            (LABEL_DB.into(), owner.db.clone()),
            (LABEL_POOL.into(), key.into()),
        ])),
        host_config: Some(host),
        ..Default::default()
    }
}

/// A started container, ready for exactly one command.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub image_id: String,
}

/// Creates and starts one hardened container.
pub async fn start_container(
    docker: &Docker,
    p: &ExecParams,
    owner: &Owner,
    host_paths: &HostPaths,
) -> Result<Started, SandboxError> {
    if let Some(w) = &p.workspace {
        check_workspace(w)?;
    }
    let image = match docker.inspect_image(&p.image).await {
        Ok(i) => i,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            return Err(SandboxError::ImageMissing(p.image.clone()));
        }
        Err(e) => return Err(e.into()),
    };
    let key = config_key(p);
    let name = format!(
        "mcp-sandbox-{}",
        bridge_state::auth::random_hex(8).unwrap_or_default()
    );
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    #[allow(clippy::disallowed_methods)] // the one place containers are created
    let created = docker
        .create_container(Some(opts), container_spec(p, owner, &key, host_paths))
        .await?;
    if let Err(e) = docker.start_container(&created.id, None).await {
        remove(docker, &created.id).await;
        return Err(e.into());
    }
    Ok(Started {
        id: created.id,
        image_id: image.id.unwrap_or_default(),
    })
}

/// Removes a container and its anonymous volumes; errors are logged.
pub async fn remove(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => tracing::warn!(container = id, error = %e, "could not remove container"),
    }
}

async fn kill(docker: &Docker, id: &str) {
    let opts = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    let _ = docker.kill_container(id, Some(opts)).await;
}

/// The container's exit code: the wrapper shell's (or the init's), which
/// is the command's only when the wrapper wrote its trailer.
async fn wait_exit(docker: &Docker, id: &str) -> Result<i64, SandboxError> {
    // The default condition, "not-running", answers at once if it already exited.
    match docker
        .wait_container(id, None::<WaitContainerOptions>)
        .next()
        .await
    {
        Some(Ok(r)) => Ok(r.status_code),
        // A non-zero exit arrives as an error.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(e.into()),
        None => Err(SandboxError::Vanished(id.to_owned())),
    }
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// One output stream on its way from the container to the result: the
/// wrapper's trailer is taken out, the rest is redacted as it streams and
/// only then cut to the head and tail the result keeps.
struct Stream {
    trailer: TrailerFilter,
    redactor: StreamRedactor,
    capture: Capture,
    /// Bytes the command wrote (trailer excluded).
    bytes: u64,
    scratch: Vec<u8>,
}

impl Stream {
    fn new(nonce: &str, red: &Redactor, cap: u64) -> Self {
        Self {
            trailer: TrailerFilter::new(nonce),
            redactor: StreamRedactor::new(red),
            capture: Capture::new(cap),
            bytes: 0,
            scratch: Vec::new(),
        }
    }

    fn push(&mut self, frame: &[u8]) {
        self.scratch.clear();
        self.trailer.push(frame, &mut self.scratch);
        self.bytes += self.scratch.len() as u64;
        let clean = self.redactor.push(&self.scratch);
        self.capture.push(clean.as_bytes());
    }

    fn finish(&mut self) {
        self.scratch.clear();
        self.trailer.finish(&mut self.scratch);
        self.bytes += self.scratch.len() as u64;
        let mut clean = self.redactor.push(&self.scratch);
        clean.push_str(&self.redactor.finish());
        self.capture.push(clean.as_bytes());
    }
}

/// How long output from background processes is still collected after the
/// command itself has exited (the container stops right after anyway).
const LATE_OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Runs `command` once in `container` (handing it to the waiting process on
/// stdin), with the timeout and output
/// cap of `p`. The container is killed on timeout, on runaway output and on
/// cancellation; the caller removes it afterwards in every case.
pub async fn run_command(
    docker: &Docker,
    container: &Started,
    p: &ExecParams,
    command: &str,
    red: &Redactor,
    cancel: CancellationToken,
) -> Result<JobResult, SandboxError> {
    let started = Instant::now();
    let opts = AttachContainerOptionsBuilder::default()
        .stream(true)
        .stdin(true)
        .stdout(true)
        .stderr(true)
        .build();
    let AttachContainerResults {
        mut output,
        mut input,
    } = docker.attach_container(&container.id, Some(opts)).await?;
    // 128 bits: the command cannot guess it, so it cannot forge a trailer.
    let nonce = bridge_state::auth::random_hex(16)
        .map_err(|e| SandboxError::Stdin(std::io::Error::other(e.to_string())))?;
    let line = format!("{nonce} {}\n", base64_encode(command.as_bytes()));
    input
        .write_all(line.as_bytes())
        .await
        .map_err(SandboxError::Stdin)?;
    // Closing our side closes the command's stdin (stdin_once): it reads EOF.
    input.shutdown().await.map_err(SandboxError::Stdin)?;
    drop(input);
    let cap = p.limits.output_cap_bytes;
    let (mut out, mut err) = (Stream::new(&nonce, red, cap), Stream::new(&nonce, red, cap));
    let kill_at = cap.saturating_mul(OUTPUT_KILL_FACTOR);
    let deadline = tokio::time::sleep(Duration::from_secs(u64::from(p.timeout_secs)));
    tokio::pin!(deadline);
    let late = tokio::time::sleep(Duration::from_secs(u64::from(p.timeout_secs)));
    tokio::pin!(late);
    let mut late_armed = false;
    let (mut timed_out, mut output_limit_hit, mut cancelled) = (false, false, false);
    loop {
        // The wrapper writes the trailer only after the command exited.
        let exited = out.trailer.status().is_some() || err.trailer.status().is_some();
        tokio::select! {
            frame = output.next() => match frame {
                None => break,
                Some(Ok(bollard::container::LogOutput::StdOut { message })) => out.push(&message),
                Some(Ok(bollard::container::LogOutput::StdErr { message })) => err.push(&message),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "output stream failed");
                    break;
                }
            },
            _ = &mut deadline => { timed_out = !exited; break; }
            _ = &mut late, if late_armed => break,
            _ = cancel.cancelled() => { cancelled = !exited; break; }
        }
        if out.bytes + err.bytes > kill_at {
            output_limit_hit = true;
            break;
        }
        if out.trailer.status().is_some() && err.trailer.status().is_some() {
            if out.trailer.bytes_after() + err.trailer.bytes_after() == 0 {
                // The usual end: no need to wait for the engine to notice.
                break;
            }
            if !late_armed {
                late.as_mut()
                    .reset(tokio::time::Instant::now() + LATE_OUTPUT_GRACE);
                late_armed = true;
            }
        }
    }
    drop(output);
    if timed_out || output_limit_hit || cancelled {
        kill(docker, &container.id).await;
    }
    out.finish();
    err.finish();
    let (exit_code, exit_code_unknown_reason) = match (out.trailer.status(), err.trailer.status()) {
        (Some(a), Some(b)) if a != b => (
            None,
            Some(format!(
                "the sandbox reported two different exit statuses ({a} on stdout, {b} on stderr); neither can be trusted"
            )),
        ),
        (Some(code), _) | (_, Some(code)) => (Some(code), None),
        (None, None) if timed_out => (
            None,
            Some(format!("the command was killed at its {} s timeout before it exited", p.timeout_secs)),
        ),
        (None, None) if output_limit_hit => (
            None,
            Some(format!("the command was killed for writing more than {kill_at} bytes of output before it exited")),
        ),
        (None, None) if cancelled => (
            None,
            Some("the command was stopped before it exited (YOLO was disabled or the runner shut down)".to_owned()),
        ),
        (None, None) => (None, Some(vanished_reason(docker, &container.id).await?)),
    };
    let mut classes = out.redactor.classes();
    classes.extend(err.redactor.classes());
    classes.dedup();
    Ok(JobResult {
        exit_code,
        exit_code_unknown_reason,
        duration_ms: started.elapsed().as_millis() as u64,
        truncated: out.capture.truncated() || err.capture.truncated(),
        stdout: out.capture.render(),
        stderr: err.capture.render(),
        stdout_bytes: out.bytes,
        stderr_bytes: err.bytes,
        timed_out,
        output_limit_hit,
        cancelled,
        container_id: container.id.clone(),
        image_id: container.image_id.clone(),
        redacted_classes: classes,
    })
}

/// Why there is no exit status when the wrapper never wrote its trailer:
/// something killed the wrapper shell (the command, the OOM killer) before
/// the command ended. The container's own exit code is named, but it is the
/// wrapper's, not the command's.
async fn vanished_reason(docker: &Docker, id: &str) -> Result<String, SandboxError> {
    // The output stream can also break while the container still runs:
    // do not wait for it forever.
    let Ok(code) = tokio::time::timeout(Duration::from_secs(5), wait_exit(docker, id)).await else {
        kill(docker, id).await;
        return Ok(
            "the output stream from the sandbox broke before the command reported its exit status; the sandbox was killed".to_owned(),
        );
    };
    let code = code?;
    let oom = docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|c| c.state?.oom_killed)
        .unwrap_or(false);
    Ok(format!(
        "the sandbox's shell ended before the command reported its exit status (container exit code {code}{}); the command's own status is unknown",
        if oom { ", out of memory" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_state::policy::Mode;
    use bridge_state::yolo::Limits;

    fn owner() -> Owner {
        Owner {
            runner: "r1".into(),
            db: "d1".into(),
        }
    }

    fn params(ws: Option<&str>, rw: bool) -> ExecParams {
        ExecParams {
            mode: Mode::Safe,
            image: "img".into(),
            workspace: ws.map(Into::into),
            workspace_rw: rw,
            runtime: None,
            timeout_secs: 30,
            limits: Limits::default(),
        }
    }

    #[test]
    fn spec_is_hardened() {
        let s = container_spec(
            &params(Some("/work/project"), false),
            &owner(),
            "k",
            &HostPaths::default(),
        );
        let h = s.host_config.clone().unwrap();
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(s.network_disabled, Some(true));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(s.user.as_deref(), Some("65534:65534"));
        assert_eq!(h.pids_limit, Some(128));
        assert_eq!(h.memory, Some(512 << 20));
        assert_eq!(h.memory_swap, h.memory);
        assert_eq!(h.nano_cpus, Some(1_000_000_000));
        assert_eq!(h.init, Some(true));
        assert!(h.tmpfs.unwrap()["/tmp"].contains("noexec,nosuid"));
        assert!(h.privileged.is_none() || h.privileged == Some(false));
        assert!(h.binds.is_none());
        let mounts = h.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[0].target.as_deref(), Some("/workspace"));
        let rw = container_spec(
            &params(Some("/work/project"), true),
            &owner(),
            "k",
            &HostPaths::default(),
        );
        assert_eq!(
            rw.host_config.unwrap().mounts.unwrap()[0].read_only,
            Some(false)
        );
        let none = container_spec(&params(None, false), &owner(), "k", &HostPaths::default());
        assert!(none.host_config.unwrap().mounts.is_none());
    }

    #[test]
    fn host_paths_translate_the_longest_matching_mount() {
        let h = HostPaths(vec![
            ("/workspace/sub".into(), "/srv/other".into()),
            ("/workspace".into(), "/home/me/proj/workspace".into()),
        ]);
        assert_eq!(
            h.to_host("/workspace/a".as_ref()),
            std::path::Path::new("/home/me/proj/workspace/a")
        );
        assert_eq!(
            h.to_host("/workspace/sub/x".as_ref()),
            std::path::Path::new("/srv/other/x")
        );
        assert_eq!(
            h.to_host("/elsewhere".as_ref()),
            std::path::Path::new("/elsewhere")
        );
        assert_eq!(
            HostPaths::default().to_host("/w".as_ref()),
            std::path::Path::new("/w")
        );
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn dangerous_workspaces_are_refused() {
        for bad in ["/", "/var/run", "/run", "/etc", "relative/dir"] {
            assert!(check_workspace(std::path::Path::new(bad)).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        check_workspace(dir.path()).unwrap();
        std::fs::write(dir.path().join("docker.sock"), b"").unwrap();
        assert!(check_workspace(dir.path()).is_err());
    }

    #[test]
    fn the_socket_check_follows_no_symlink_the_sandbox_planted() {
        let host = tempfile::tempdir().unwrap();
        let _socket =
            std::os::unix::net::UnixListener::bind(host.path().join("docker.sock")).unwrap();
        let ws = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            host.path().join("docker.sock"),
            ws.path().join("docker.sock"),
        )
        .unwrap();
        std::os::unix::fs::symlink(host.path(), ws.path().join("run")).unwrap();
        check_workspace(ws.path()).unwrap();
        std::fs::create_dir_all(ws.path().join("var/run")).unwrap();
        let _real =
            std::os::unix::net::UnixListener::bind(ws.path().join("var/run/docker.sock")).unwrap();
        assert!(check_workspace(ws.path()).is_err());
    }

    #[test]
    fn config_key_ignores_command_level_settings() {
        let a = params(Some("/w"), false);
        let mut b = a.clone();
        b.timeout_secs = 5;
        b.mode = Mode::Yolo;
        assert_eq!(config_key(&a), config_key(&b));
        b.workspace_rw = true;
        assert_ne!(config_key(&a), config_key(&b));
    }
}
