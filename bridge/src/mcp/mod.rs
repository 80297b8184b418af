//! The MCP face: what agents reach. The tools and their argument checks
//! ([`tools`], and [`execution`] for YOLO's `propose_command` and
//! `execute_command`), the transport-independent behaviour behind them
//! ([`service`]), the HTTP transport ([`http`], [`http_conn`],
//! [`http_errors`], [`http_sessions`]) and the in-memory protections
//! against a hostile client ([`throttle`], [`tally`]).

pub mod execution;
pub mod http;
pub mod http_conn;
pub mod http_errors;
pub mod http_sessions;
pub mod service;
pub mod tally;
pub mod throttle;
pub mod tools;
