//! YOLO mode's data and rules: what the operator enabled, the lifecycle of a
//! proposed command, and single-use approval tokens bound to one command.
//!
//! The bridge stays proposal-only. It validates, stores and authorizes; the
//! separate runner (its own crate and process) is the only thing that causes
//! a command to execute. Every state change of a proposal goes through
//! [`JobState::next`], the one place where transitions are defined.
//!
//! By noun: `job_state` (the state machine), `settings` (what was enabled,
//! what a command runs with, the proposal hash), `enablement` (enable,
//! disable, closing what was in flight), `proposals` (the repository of
//! proposals and their results), `approvals` (approval tokens), `rules` (the operator's standing
//! approvals of one exact command). Everything
//! is re-exported here, so callers name `yolo::…`.

use std::path::PathBuf;

use crate::store::StoreError;

mod approvals;
mod enablement;
mod job_state;
mod proposals;
mod rules;
mod settings;

pub use approvals::*;
pub use enablement::*;
pub use job_state::*;
pub use proposals::*;
pub use rules::*;
pub use settings::*;

pub const DEFAULT_IMAGE: &str = "mcp-bridge-sandbox:latest";
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
pub const MAX_TIMEOUT_SECS: u32 = 3600;
pub const DEFAULT_APPROVAL_TTL_SECS: u32 = 300;
pub const MAX_APPROVAL_TTL_SECS: u32 = 3600;
pub const MAX_COMMAND_BYTES: usize = 8 * 1024;
pub const DEFAULT_ENABLE_FOR_SECS: u64 = 3600;
/// How long an executed job may wait for a runner before it is failed
/// instead of run: settings the operator approved ten minutes ago are not
/// necessarily the ones they would approve now.
pub const DEFAULT_QUEUE_TTL_SECS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum YoloError {
    #[error(
        "YOLO mode is off: set YOLO_MODE=1 in the operator's environment to use `bridge yolo` (agents cannot turn it on)"
    )]
    OperatorEnvMissing,
    #[error("no conversation `{0}`; `bridge list` shows the existing ones")]
    NoConversation(String),
    #[error("conversation `{0}` has expired; YOLO can only be enabled for a live conversation")]
    ConversationExpired(String),
    #[error("no proposal `{0}`; `bridge yolo pending` lists the ones awaiting approval")]
    NoProposal(String),
    #[error("proposal {id} is {from:?} and cannot take {event:?}")]
    BadTransition {
        id: String,
        from: JobState,
        event: Event,
    },
    #[error(
        "YOLO is not enabled for conversation {0}, or its enablement expired; the operator runs `bridge yolo enable {0}` on a terminal"
    )]
    NotEnabled(String),
    #[error(
        "the conversation's YOLO settings changed after this command was proposed; the agent must propose it again"
    )]
    SettingsChanged,
    #[error("proposal {0} changed after it was shown; review it again")]
    Tampered(String),
    #[error("workspace {path} is not usable: {problem}")]
    Workspace { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for YoloError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_state_leads_back_to_queued_and_final_states_are_final() {
        let all = [
            JobState::Proposed,
            JobState::Approved,
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Rejected,
            JobState::Expired,
        ];
        let events = [
            Event::Approve,
            Event::Reject,
            Event::Expire,
            Event::Execute,
            Event::Claim,
            Event::Finish,
            Event::Fail,
        ];
        for s in all {
            for e in events {
                if let Some(to) = s.next(e) {
                    assert!(
                        !s.is_final(),
                        "{s:?} --{e:?}--> {to:?} leaves a final state"
                    );
                    if to == JobState::Queued {
                        assert_eq!((s, e), (JobState::Approved, Event::Execute));
                    }
                    if to == JobState::Running {
                        assert_eq!(s, JobState::Queued);
                    }
                }
            }
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        // A job that waited too long fails; it never runs and its token
        // stays spent.
        assert_eq!(JobState::Queued.next(Event::Expire), Some(JobState::Failed));
        assert_eq!(JobState::Running.next(Event::Expire), None);
    }

    #[test]
    fn hash_binds_command_and_params() {
        let p = serde_json::to_string(&ExecParams::from_settings(&Settings::placeholder(), 30))
            .unwrap();
        let q = serde_json::to_string(&ExecParams::from_settings(&Settings::placeholder(), 31))
            .unwrap();
        assert_ne!(proposal_hash("ls", &p), proposal_hash("ls ", &p));
        assert_ne!(proposal_hash("ls", &p), proposal_hash("ls", &q));
        assert_eq!(proposal_hash("ls", &p), proposal_hash("ls", &p));
    }

    #[test]
    fn approval_token_shape() {
        assert!(is_approval_token(&format!("apv_{}", "ab".repeat(24))));
        assert!(!is_approval_token(&"ab".repeat(26)));
        assert!(!is_approval_token(&format!("apv_{}", "AB".repeat(24))));
    }
}
