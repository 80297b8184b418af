//! What the bridge and the runner share. The two processes meet only in one
//! SQLite database; this crate is everything both must agree on about it:
//! the schema and its typed repositories (conversations and sessions,
//! messages, quotas, YOLO proposals and jobs),
//! what may be written into it (the redactor and its `Redacted` type, the
//! command policy), who wrote what (the audit chain), and the settings, secrets,
//! clock and wake-ups around it. It links neither the MCP server (rmcp, axum)
//! nor the container engine client; `tests/tests/e2e/invariants.rs`
//! checks that.
#![deny(clippy::print_stdout)] // stdout is the MCP channel of `bridge serve`

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod conversations;
pub mod engines;
pub mod fileperm;
pub mod job_result;
pub mod jobs;
pub mod logging;
pub mod messages;
pub mod policy;
pub mod ratelimit;
pub mod redact;
pub mod redact_gitleaks;
mod redact_normalize;
mod redact_rules;
pub mod redact_stream;
pub mod shutdown;
pub mod store;
pub mod wake;
pub mod yolo;

pub use config::Settings;
