//! The hardened container and running one command in it, split by noun:
//!
//! - [`spec`]: the container's configuration. [`container_spec`] is the only
//!   place it is decided, one straight-line function whose steps mirror, in
//!   the same order, the numbered hardening list in YOLO_MODE.md; plus the
//!   workspace check and the pool key.
//! - [`lifecycle`]: create and start a container, run one command in it with
//!   its timeout and output cap, kill and remove it, all through the
//!   [`Engine`](crate::engine::Engine) trait.
//! - [`protocol`]: how the command reaches the container's waiting process
//!   (one base64 line on stdin) and how its output and exit status come back.
//! - [`host_paths`]: runner paths to Docker-host paths, for a runner that
//!   itself runs in a container.

pub mod host_paths;
pub mod lifecycle;
pub mod protocol;
pub mod spec;

pub use host_paths::HostPaths;
pub use lifecycle::{Started, remove, run_command, start_container, unremoved};
pub use protocol::{OUTPUT_KILL_FACTOR, WAIT_FOR_COMMAND, base64_encode};
pub use spec::{
    HardenedSpec, LABEL_DB, LABEL_ENGINE, LABEL_MANAGED, LABEL_POOL, LABEL_RUNNER, Owner, USER,
    check_workspace, config_key, container_spec,
};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "sandbox image `{image}` is not present on Docker engine `{engine}`; build or load it there (images/sandbox-offline/build.sh, or `docker build -t {image} images/sandbox`; for a remote engine `docker save {image} | docker -H ENGINE load`) and retry"
    )]
    ImageMissing { image: String, engine: String },
    #[error(
        "sandbox image `{image}` declares VOLUME {}: every sandbox would get a writable Docker volume there, outside its read-only root and its limits; build the image without VOLUME and retry",
        volumes.join(", ")
    )]
    ImageVolumes { image: String, volumes: Vec<String> },
    #[error(
        "the job was stopped before its command was handed over (YOLO was disabled or the runner is shutting down); it was not run"
    )]
    Withheld,
    #[error("workspace {0} is refused: {1}")]
    Workspace(String, String),
    #[error("Docker engine error: {}", crate::engine::describe(.0))]
    Docker(#[from] crate::engine::EngineError),
    #[error("could not hand the command to the sandbox: {0}")]
    Stdin(std::io::Error),
    #[error("sandbox container {0} vanished before reporting an exit code")]
    Vanished(String),
}
