//! The bridge: an authenticated, redacting, auditable MCP server through
//! which agent sessions talk to each other. It stores, authorizes and audits;
//! it never executes anything.
#![deny(clippy::print_stdout)] // stdout is the MCP channel in `serve`

pub mod cli;
pub mod demo;
pub mod execution;
pub mod guard;
pub mod health;
pub mod http;
pub mod http_conn;
pub mod http_errors;
pub mod http_sessions;
pub mod operator;
pub mod review;
pub mod runner_process;
pub mod serve;
pub mod service;
pub mod startup;
pub mod tally;
pub mod throttle;
pub mod tools;
pub mod untrusted;
pub mod yolo_cli;

pub use service::Bridge;
pub use tools::BridgeServer;
