//! The end-to-end suite as one test binary: each module was once its own
//! `tests/*.rs` binary. One binary links the workspace once and runs the
//! nested `cargo build --bins` (`bridge_tests::bin`) once, instead of once
//! per file.
//!
//! The modules share one process and run on parallel threads, so nothing
//! here may change process-global state: no `std::env::set_var` /
//! `remove_var` (`tests/clippy.toml` forbids them), no `set_current_dir`,
//! no umask or signal-disposition changes. Give a child process its
//! environment and working directory on its `Command` instead.
//!
//! Run one module with `cargo test -p bridge-tests --test e2e MODULE::`.

mod agent_hooks;
mod bridge_auth;
mod bridge_binary;
mod bridge_durability;
mod bridge_files;
mod bridge_messaging;
mod bridge_operator;
mod bridge_quotas;
mod bridge_ratelimit;
mod bridge_redaction;
mod bridge_tools;
mod bridge_validation;
mod compose_stack;
mod engines;
mod first_run;
mod fixture_migration;
mod host_isolation;
mod http_errors;
mod http_limits;
mod http_transport;
mod image_cleanup;
mod invariants;
mod log_secrets;
mod operator_screen;
mod security_regressions;
mod teams;
mod tidy;
mod yolo_containment;
mod yolo_crash;
mod yolo_flow;
mod yolo_jobs;
mod yolo_tokens;
