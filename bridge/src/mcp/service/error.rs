//! [`ToolError`]: why a call to the bridge was refused or failed, in words
//! an agent can act on.

use bridge_state::ratelimit::Exceeded;
use bridge_state::store::StoreError;

/// Why a tool call was refused. Messages are safe to show an agent: they
/// carry no secret and say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid argument `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    /// Deliberately uninformative: no oracle for which part was wrong.
    #[error("invalid or expired session token")]
    Unauthorized,
    #[error("{0}")]
    RateLimited(Exceeded),
    /// Too many failed authentications, or too many new conversations;
    /// the text says when to retry.
    #[error("{0}")]
    Throttled(String),
    /// A rule said no (policy, YOLO off, bad approval); the text says why.
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}; the request was not applied, retry it")]
    Internal(String),
}

impl ToolError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for ToolError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::from(e).into()
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ToolError {
    ToolError::Internal(e.to_string())
}
