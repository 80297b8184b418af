//! The bridge: an authenticated, redacting, auditable MCP server through
//! which agent sessions talk to each other. It stores, authorizes and audits;
//! it never executes anything.
//!
//! Two faces share the state in `bridge-state`: [`mcp`], what agents reach,
//! and [`operator`], what a person at a terminal runs. [`cli`] parses the
//! command line and dispatches; [`serve`] runs the MCP face (with
//! [`startup`]'s checks and hints, and the runner beside it through
//! [`runner_process`], the one process the bridge may start). [`untrusted`]
//! is how agent text reaches a human, for both faces. [`inbox`] is the
//! agent side's hook helper: it tells a participant about new mail.
#![deny(clippy::print_stdout)] // stdout is the MCP channel in `serve`

pub mod cli;
pub mod health;
pub mod inbox;
pub mod mcp;
pub mod operator;
pub mod runner_process;
pub mod serve;
pub mod startup;
pub mod untrusted;

pub use mcp::service::Bridge;
pub use mcp::tools::BridgeServer;
