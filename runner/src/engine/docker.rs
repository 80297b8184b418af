//! The real [`Engine`]: a Docker engine through bollard, over its unix
//! socket, over TCP with TLS, or through the system `ssh`.
//!
//! This is the only module that holds a `bollard::Docker`, and its
//! [`Engine::create`] is the only call of `create_container` in the runner
//! (both pinned by `runner/clippy.toml`). It translates bollard's quirks
//! (404s, a non-zero exit reported as a wait error) into the trait's plain
//! answers and decides nothing else.
#![allow(clippy::disallowed_types)] // the one holder of a bollard::Docker, behind the Engine trait

use std::collections::HashMap;

use bollard::Docker;
use bollard::container::AttachContainerResults;
use bollard::errors::Error;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use bridge_state::engines::Transport;

use super::{Engine, EngineError, HardenedSpec, Image, describe};

mod tls;

/// A Docker engine reached through a unix socket, over TCP with TLS, or
/// over ssh.
#[derive(Debug, Clone)]
pub struct DockerEngine(Docker);

fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Seconds one engine request may take (bollard's own default).
const REQUEST_TIMEOUT_SECS: u64 = 120;

impl DockerEngine {
    /// Connects to this host's engine and agrees on an API version it
    /// speaks (Debian's 20.10 engine speaks 1.41).
    pub async fn connect() -> Result<Self, ConnectError> {
        let docker = Docker::connect_with_local_defaults().map_err(ConnectError::Unreachable)?;
        Self::negotiated(docker).await
    }

    /// Connects to a configured engine. A client that cannot even be built
    /// (an unreadable certificate) is an error; an engine that does not
    /// answer yet is too, and the caller decides whether to wait for it.
    pub fn open(transport: &Transport) -> Result<Self, ConnectError> {
        let docker = match transport {
            Transport::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            Transport::Tls {
                addr,
                ca,
                cert,
                key,
            } => {
                transport.check_files()?;
                let config = tls::client_config(ca, cert, key)?;
                tls::connect(
                    addr,
                    config,
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            // Each connection bollard opens starts an ssh master (a login)
            // and `docker system dial-stdio` on the engine host; hyper keeps
            // idle ones for the next call.
            Transport::Ssh { url, identity } => {
                transport.check_files()?;
                Docker::connect_with_ssh(
                    url,
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                    identity.as_ref().map(|p| p.to_string_lossy().into_owned()),
                )
            }
        };
        docker.map(Self).map_err(ConnectError::Unreachable)
    }

    /// Agrees on an API version with an opened engine and checks it answers.
    pub async fn negotiate(self) -> Result<Self, ConnectError> {
        Self::negotiated(self.0).await
    }

    async fn negotiated(docker: Docker) -> Result<Self, ConnectError> {
        let docker = docker
            .negotiate_version()
            .await
            .map_err(ConnectError::Negotiate)?;
        docker.ping().await.map_err(ConnectError::Ping)?;
        Ok(Self(docker))
    }
}

/// Why [`DockerEngine::connect`] failed, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot reach the Docker engine (is it running, and may this user use its socket?): {}", describe(.0)
    )]
    Unreachable(#[source] Error),
    #[error(
        "cannot negotiate an API version with the Docker engine (the runner needs API 1.41 or later; over ssh, check that `ssh USER@HOST docker version` works): {}", describe(.0)
    )]
    Negotiate(#[source] Error),
    #[error("the Docker engine does not answer ping (is the daemon healthy?): {}", describe(.0))]
    Ping(#[source] Error),
    #[error("{0}")]
    Config(String),
    #[error("no configured Docker engine answers within a few seconds; check each engine's url")]
    NoneAnswers,
    #[error("{0}")]
    File(#[from] bridge_state::engines::EngineFileError),
}

impl Engine for DockerEngine {
    fn ping(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.0.ping().await.map(drop) })
    }

    fn inspect_image<'a>(
        &'a self,
        image: &'a str,
    ) -> BoxFuture<'a, Result<Option<Image>, EngineError>> {
        Box::pin(async move {
            match self.0.inspect_image(image).await {
                Ok(i) => {
                    let mut volumes: Vec<String> =
                        i.config.and_then(|c| c.volumes).unwrap_or_default();
                    volumes.sort();
                    Ok(Some(Image {
                        id: i.id.unwrap_or_default(),
                        volumes,
                    }))
                }
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn create<'a>(
        &'a self,
        name: &'a str,
        spec: HardenedSpec,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let opts = CreateContainerOptionsBuilder::default().name(name).build();
            #[allow(clippy::disallowed_methods)] // the one place containers are created
            let created = self
                .0
                .create_container(Some(opts), spec.into_body())
                .await?;
            Ok(created.id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(self.0.start_container(id, None))
    }

    fn attach<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<AttachContainerResults, EngineError>> {
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        Box::pin(self.0.attach_container(id, Some(opts)))
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<i64>, EngineError>> {
        Box::pin(async move {
            // The default condition, "not-running", answers at once if it already exited.
            match self
                .0
                .wait_container(id, None::<WaitContainerOptions>)
                .next()
                .await
            {
                Some(Ok(r)) => Ok(Some(r.status_code)),
                // A non-zero exit arrives as an error.
                Some(Err(Error::DockerContainerWaitError { code, .. })) => Ok(Some(code)),
                Some(Err(e)) => Err(e),
                None => Ok(None),
            }
        })
    }

    fn kill<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        let opts = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        Box::pin(self.0.kill_container(id, Some(opts)))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), EngineError>> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        Box::pin(async move {
            match self.0.remove_container(id, Some(opts)).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other,
            }
        })
    }

    fn list_by_label<'a>(
        &'a self,
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ContainerSummary>, EngineError>> {
        Box::pin(async move {
            let filters = HashMap::from([("label".to_owned(), labels.to_vec())]);
            let opts = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            self.0.list_containers(Some(opts)).await
        })
    }

    fn inspect_container<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerInspectResponse, EngineError>> {
        Box::pin(self.0.inspect_container(id, None))
    }
}
