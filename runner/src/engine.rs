//! The container engine as the runner needs it: a small, object-safe trait.
//!
//! The runner's logic (starting hardened containers, handing over and
//! watching one command, the warm pool, reaping leftovers) is written
//! against [`Engine`], not against bollard, so unit tests run it on an
//! in-memory fake (`engine::fake`, tests only) and a runner holds
//! several engines as `Arc<dyn Engine>` (`fleet`). [`docker::DockerEngine`] is the
//! real implementation and the only code that holds bollard's `Docker` client
//! (`runner/clippy.toml` forbids the type elsewhere).
//!
//! The trait speaks the Docker API's own types (bodies, summaries, attach
//! streams) and its errors: it is a seam for tests and for more engines, not
//! a second container model. A container is created only from a
//! [`HardenedSpec`], which only `sandbox::container_spec` builds.

pub mod docker;
#[cfg(test)]
pub mod fake;

use std::sync::Arc;

use bollard::container::AttachContainerResults;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use futures_util::future::BoxFuture;

pub use crate::sandbox::spec::HardenedSpec;

/// What an engine call fails with: the engine's own answer.
pub type EngineError = bollard::errors::Error;

/// An engine error with the causes bollard's own text leaves out, e.g.
/// `… client error (Connect): ssh: Permission denied (publickey)` where
/// bollard alone says `client error (Connect)`.
/// `text` cut to [`ERROR_CHARS`] characters: an engine's error text is the
/// engine's to write (a hostile remote engine can send megabytes), and it
/// is stored and shown. Cut only redacted text: a cut through a secret
/// could leave a start that no rule recognises.
pub fn bounded(text: &str) -> String {
    match text.char_indices().nth(ERROR_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!(
            "{}… ({} more characters)",
            &text[..at],
            text[at..].chars().count()
        ),
    }
}

/// The most characters of an engine's error kept (see [`bounded`]).
pub const ERROR_CHARS: usize = 1_000;

pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        let more = more.trim();
        if !more.is_empty() && !text.contains(more) {
            text.push_str(": ");
            text.push_str(more);
        }
        cause = c.source();
    }
    text
}

/// An engine shared by the runner's tasks.
pub type SharedEngine = Arc<dyn Engine>;

/// An image as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    /// Paths the image declares with `VOLUME`: each container would get a
    /// writable Docker volume there, past the read-only root and the limits.
    pub volumes: Vec<String>,
}

/// The engine operations the runner uses, one method per Docker API call.
/// Methods return boxed futures so the trait stays object-safe (stable Rust
/// cannot put an `async fn` trait behind `dyn`).
pub trait Engine: Send + Sync {
    /// Answers when the engine does (health checks and down-marking).
    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>>;

    /// What the runner needs to know of an image, or `None` when this
    /// engine does not have it.
    fn inspect_image<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<Image>, EngineError>>;

    /// Creates (does not start) a container named `name`; returns its id.
    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: HardenedSpec,
    ) -> BoxFuture<'a, Result<String, EngineError>>;

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Attaches to the container's stdin, stdout and stderr (streaming).
    fn attach<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<AttachContainerResults, EngineError>>;

    /// Waits until the container is not running; its exit code, or `None`
    /// when the engine ended the wait without one (the container vanished).
    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<i64>, EngineError>>;

    /// Sends SIGKILL.
    fn kill<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Removes the container (forced, with its anonymous volumes). A
    /// container that is already gone is not an error.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Every container, running or not, that carries all of `labels`
    /// (each `key=value`).
    fn list_by_label<'a>(
        &'a self,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ContainerSummary>, EngineError>>;

    fn inspect_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerInspectResponse, EngineError>>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_engines_error_text_is_kept_to_a_bounded_length() {
        let long = format!("ping failed: {}", "é".repeat(5_000));
        let kept = super::bounded(&long);
        assert_eq!(
            kept.chars().count(),
            super::ERROR_CHARS + "… (4013 more characters)".chars().count()
        );
        assert!(kept.ends_with("… (4013 more characters)"), "{kept}");
        assert_eq!(super::bounded("short"), "short");
    }
}
