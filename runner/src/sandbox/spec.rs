//! The hardened container's configuration, and what is checked before one
//! is made.
//!
//! [`container_spec`] is the only place a container's configuration is
//! decided. It is one straight-line function whose steps mirror, in the same
//! order, the numbered hardening list in YOLO_MODE.md; each says why. Its
//! result, a [`HardenedSpec`], is the only thing the
//! [`Engine`](crate::engine::Engine) creates containers from, and nothing
//! else can build one.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType, ResourcesUlimits,
};
use bridge_state::yolo::ExecParams;
use sha2::{Digest, Sha256};

use super::protocol::WAIT_FOR_COMMAND;
use super::{HostPaths, SandboxError};

/// Every container we create carries this label, so a restarted runner can
/// find and remove whatever a crashed one left behind.
pub const LABEL_MANAGED: &str = "mcp-bridge.managed";
pub const LABEL_RUNNER: &str = "mcp-bridge.runner";
pub const LABEL_POOL: &str = "mcp-bridge.pool";
/// The database the owning runner serves; sweeps only ever look at these.
pub const LABEL_DB: &str = "mcp-bridge.db";
/// The configured engine (its name) the container was created through.
/// One daemon may be reached as two engines; each reaps only its own.
pub const LABEL_ENGINE: &str = "mcp-bridge.engine";

/// Who owns a container: a runner, serving one database, through one of
/// its engines.
#[derive(Debug, Clone)]
pub struct Owner {
    pub runner: String,
    pub db: String,
    pub engine: String,
}
/// The unprivileged user every command runs as (nobody:nogroup).
pub const USER: &str = "65534:65534";

/// A container configuration built by [`container_spec`], and only there
/// (the field is private): the engine creates containers from nothing else.
#[derive(Debug, Clone)]
pub struct HardenedSpec(ContainerCreateBody);

impl HardenedSpec {
    pub fn body(&self) -> &ContainerCreateBody {
        &self.0
    }

    pub fn into_body(self) -> ContainerCreateBody {
        self.0
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
) -> Result<HardenedSpec, SandboxError> {
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
    // 11. No engine-side logs: the output is captured through the attach,
    //     and a log file would keep the command's unredacted output on the
    //     host's disk until the container is removed.
    host.log_config = Some(HostConfigLogConfig {
        typ: Some("none".into()),
        config: None,
    });
    // 11b. No core dumps, and no raising the limit (the engine's default
    //      is soft 0, hard unlimited): a crashing command would write one
    //      into a read-write workspace (or start the host's core handler).
    host.ulimits = Some(vec![ResourcesUlimits {
        name: Some("core".into()),
        soft: Some(0),
        hard: Some(0),
    }]);
    // 12-13. Timeout and output cap are enforced by `run_command`.
    // 14. The Docker socket is never mounted: the workspace is the only
    //     mount, and `check_workspace` refuses any that holds a socket.
    // 15. The workspace, read-only unless the operator chose read-write.
    host.mounts = match &p.workspace {
        None => None,
        Some(w) => {
            let source = host_paths
                .to_host(w)
                .map_err(|e| SandboxError::Workspace(w.display().to_string(), e.to_string()))?;
            Some(vec![Mount {
                typ: Some(MountType::BIND),
                source: Some(source.display().to_string()),
                target: Some("/workspace".into()),
                read_only: Some(!p.workspace_rw),
                ..Default::default()
            }])
        }
    };
    // 16. An optional stronger runtime (e.g. gVisor's runsc).
    host.runtime = p.runtime.clone();
    // We remove containers ourselves; auto-remove races with inspection.
    host.auto_remove = Some(false);
    Ok(HardenedSpec(ContainerCreateBody {
        image: Some(p.image.clone()),
        // 6. Never root.
        user: Some(USER.into()),
        // The container's one process waits for exactly one command on
        // stdin (base64, one line), then becomes it. Delivering the command
        // to an already-running process skips `docker exec`'s cost.
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), WAIT_FOR_COMMAND.into()]),
        // The image's own entrypoint, if any, would wrap that process and
        // run first: none (an empty list resets it).
        entrypoint: Some(vec![]),
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
            (LABEL_ENGINE.into(), owner.engine.clone()),
            (LABEL_POOL.into(), key.into()),
        ])),
        host_config: Some(host),
        ..Default::default()
    }))
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
            engine: "e1".into(),
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
        )
        .unwrap();
        let s = s.body();
        let h = s.host_config.clone().unwrap();
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(s.network_disabled, Some(true));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(s.user.as_deref(), Some("65534:65534"));
        assert_eq!(
            s.entrypoint,
            Some(vec![]),
            "the image's entrypoint is reset"
        );
        let core = h.ulimits.clone().unwrap_or_default();
        assert!(
            core.iter().any(
                |u| u.name.as_deref() == Some("core") && (u.soft, u.hard) == (Some(0), Some(0))
            ),
            "{core:?}"
        );
        assert_eq!(h.pids_limit, Some(128));
        let labels = s.labels.clone().unwrap();
        assert_eq!(labels[LABEL_ENGINE], "e1", "reaping finds it by engine");
        assert_eq!(h.memory, Some(512 << 20));
        assert_eq!(h.memory_swap, h.memory);
        assert_eq!(h.nano_cpus, Some(1_000_000_000));
        assert_eq!(h.init, Some(true));
        assert_eq!(
            h.log_config.clone().and_then(|l| l.typ).as_deref(),
            Some("none"),
            "no copy of the output on the engine's disk"
        );
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
        )
        .unwrap();
        assert_eq!(
            rw.into_body().host_config.unwrap().mounts.unwrap()[0].read_only,
            Some(false)
        );
        let none =
            container_spec(&params(None, false), &owner(), "k", &HostPaths::default()).unwrap();
        assert!(none.into_body().host_config.unwrap().mounts.is_none());
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
