//! What the operator enabled ([`Settings`], with the sandbox [`Limits`]) and
//! what one command runs with ([`ExecParams`]): the parameters the proposal
//! hash binds, and the check that a conversation's current settings still
//! give what was approved.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::Mode;

/// Sandbox resource limits. Part of [`ExecParams`], so an approval binds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub tmpfs_bytes: i64,
    pub output_cap_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            nano_cpus: 1_000_000_000,
            pids: 128,
            tmpfs_bytes: 64 << 20,
            output_cap_bytes: 1 << 20,
        }
    }
}

/// What the operator enabled for a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub mode: Mode,
    /// Absolute host path, bind-mounted at /workspace.
    pub workspace: Option<PathBuf>,
    pub workspace_rw: bool,
    pub image: String,
    /// e.g. `runsc` (gVisor); the engine's default runtime when absent.
    pub runtime: Option<String>,
    /// The default and the maximum per command.
    pub timeout_secs: u32,
    pub limits: Limits,
}

/// Everything that decides how one command runs. Hashed together with the
/// command; the approval token is bound to that hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecParams {
    pub mode: Mode,
    pub image: String,
    pub workspace: Option<PathBuf>,
    pub workspace_rw: bool,
    pub runtime: Option<String>,
    pub timeout_secs: u32,
    pub limits: Limits,
}

impl ExecParams {
    pub fn from_settings(s: &Settings, timeout_secs: u32) -> Self {
        Self {
            mode: s.mode,
            image: s.image.clone(),
            workspace: s.workspace.clone(),
            workspace_rw: s.workspace_rw,
            runtime: s.runtime.clone(),
            timeout_secs,
            limits: s.limits.clone(),
        }
    }
}

/// SHA-256 over the exact command and its canonical parameters.
pub fn proposal_hash(command: &str, params_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(command.as_bytes());
    h.update([0u8]);
    h.update(params_json.as_bytes());
    hex::encode(h.finalize())
}

/// Names the execution parameters of `approved` that the conversation's
/// current settings would not give: every field the proposal hash binds,
/// and a timeout above the current maximum. Empty means "still the same".
pub fn settings_mismatch(current: &Settings, approved: &ExecParams) -> Vec<&'static str> {
    let now = ExecParams::from_settings(current, approved.timeout_secs);
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("mode", approved.mode != now.mode);
    check("image", approved.image != now.image);
    check("workspace", approved.workspace != now.workspace);
    check(
        "workspace read-write",
        approved.workspace_rw != now.workspace_rw,
    );
    check("runtime", approved.runtime != now.runtime);
    check("timeout", approved.timeout_secs > current.timeout_secs);
    check("limits", approved.limits != now.limits);
    // A field added to ExecParams later and forgotten above still counts.
    if out.is_empty() && *approved != now {
        out.push("parameters");
    }
    out
}

impl Settings {
    pub(crate) fn placeholder() -> Self {
        Self {
            mode: Mode::Safe,
            workspace: None,
            workspace_rw: false,
            image: String::new(),
            runtime: None,
            timeout_secs: 0,
            limits: Limits::default(),
        }
    }
}
