//! An in-memory [`Engine`] for unit tests: containers are map entries, and
//! an attached container plays the sandbox's side of the stdin protocol
//! from a [`Script`] (it reads the command line, writes output, then the
//! nonce trailer, or hangs until killed, or dies without one). Every call is
//! recorded as an [`Event`], and any operation can be made to fail, so the
//! lifecycle, pool, job and reaping logic is tested without Docker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::models::{ContainerInspectResponse, ContainerState, ContainerSummary};
use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineError, HardenedSpec, Image};

/// An engine operation, to make it fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Ping,
    InspectImage,
    Create,
    Start,
    Attach,
    Kill,
    Remove,
    List,
}

/// What the engine was asked to do (successful or not), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping,
    InspectImage(String),
    Create(String),
    Start(String),
    Attach(String),
    Kill(String),
    Remove(String),
    List,
}

/// How an attached container's command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The command exits with this status: the trailer on both streams.
    Exit(i64),
    /// It runs until killed.
    Hang,
    /// The wrapper dies without a trailer; the container exits with this code.
    Die(i64),
}

/// What an attached container does with the command it is handed.
#[derive(Debug, Clone)]
pub struct Script {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: End,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            stdout: b"hi\n".to_vec(),
            stderr: Vec::new(),
            end: End::Exit(0),
        }
    }
}

struct Container {
    labels: HashMap<String, String>,
    running: bool,
    exit: Option<i64>,
    killed: CancellationToken,
    /// The line the container read on stdin.
    received: Option<String>,
}

#[derive(Default)]
struct State {
    images: HashMap<String, Image>,
    containers: BTreeMap<String, Container>,
    next: u64,
    failing: HashSet<Op>,
    events: Vec<Event>,
    script: Script,
    /// How long a container start takes (none: at once).
    start_delay: Option<std::time::Duration>,
}

/// The fake engine; clone the `Arc` to share it with the code under test.
#[derive(Default)]
pub struct FakeEngine(Mutex<State>);

fn failure(op: Op) -> EngineError {
    EngineError::DockerResponseServerError {
        status_code: 500,
        message: format!("fake engine: {op:?} fails"),
    }
}

fn not_found(id: &str) -> EngineError {
    EngineError::DockerResponseServerError {
        status_code: 404,
        message: format!("No such container: {id}"),
    }
}

impl FakeEngine {
    /// An engine that has `image`.
    pub fn with_image(image: &str) -> Arc<Self> {
        let fake = Self::default();
        fake.state().images.insert(
            image.to_owned(),
            Image {
                id: format!("sha256:{image}"),
                volumes: vec![],
            },
        );
        Arc::new(fake)
    }

    /// Makes `image` declare `VOLUME`s at `paths`.
    pub fn image_volumes(&self, image: &str, paths: &[&str]) {
        if let Some(i) = self.state().images.get_mut(image) {
            i.volumes = paths.iter().map(|p| p.to_string()).collect();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every later call of `op` fail.
    pub fn fail(&self, op: Op) {
        self.state().failing.insert(op);
    }

    pub fn heal(&self, op: Op) {
        self.state().failing.remove(&op);
    }

    /// Container starts take `d` from now on (as a real engine's do).
    pub fn slow_start(&self, d: std::time::Duration) {
        self.state().start_delay = Some(d);
    }

    /// What attached containers do from now on.
    pub fn script(&self, script: Script) {
        self.state().script = script;
    }

    /// A container some other runner made: labelled, running.
    pub fn leftover(&self, id: &str, labels: &[(&str, &str)]) {
        self.state().containers.insert(
            id.to_owned(),
            Container {
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                running: true,
                exit: None,
                killed: CancellationToken::new(),
                received: None,
            },
        );
    }

    pub fn events(&self) -> Vec<Event> {
        self.state().events.clone()
    }

    /// How many recorded events match.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.state().events.iter().filter(|e| f(e)).count()
    }

    /// Ids of the containers that exist (not removed).
    pub fn containers(&self) -> Vec<String> {
        self.state().containers.keys().cloned().collect()
    }

    /// The stdin line container `id` read.
    pub fn received(&self, id: &str) -> Option<String> {
        self.state().containers.get(id)?.received.clone()
    }

    /// Records the call, then fails it if `op` is set to fail.
    fn call(&self, op: Op, event: Event) -> Result<(), EngineError> {
        let mut s = self.state();
        s.events.push(event);
        if s.failing.contains(&op) {
            return Err(failure(op));
        }
        Ok(())
    }
}

/// The sandbox's side of the protocol, for one attached container.
async fn play(
    fake: Arc<FakeEngine>,
    id: String,
    stdin: tokio::io::DuplexStream,
    out: mpsc::UnboundedSender<Result<LogOutput, EngineError>>,
) {
    let mut line = String::new();
    let _ = BufReader::new(stdin).read_line(&mut line).await;
    let (script, killed) = {
        let mut s = fake.state();
        let script = s.script.clone();
        let Some(c) = s.containers.get_mut(&id) else {
            return;
        };
        c.received = Some(line.clone());
        (script, c.killed.clone())
    };
    let nonce = line.split(' ').next().unwrap_or_default().to_owned();
    let send = |frame: LogOutput| {
        let _ = out.send(Ok(frame));
    };
    if !script.stdout.is_empty() {
        send(LogOutput::StdOut {
            message: script.stdout.into(),
        });
    }
    if !script.stderr.is_empty() {
        send(LogOutput::StdErr {
            message: script.stderr.into(),
        });
    }
    let code = match script.end {
        End::Exit(code) => {
            let trailer = format!("\n{nonce} {code}\n").into_bytes();
            send(LogOutput::StdOut {
                message: trailer.clone().into(),
            });
            send(LogOutput::StdErr {
                message: trailer.into(),
            });
            code
        }
        End::Die(code) => code,
        End::Hang => {
            killed.cancelled().await;
            137
        }
    };
    if let Some(c) = fake.state().containers.get_mut(&id) {
        c.running = false;
        c.exit.get_or_insert(code);
    }
    // Dropping `out` ends the output stream: the container exited.
}

/// A boxed future over `Arc<FakeEngine>` (attach spawns the container's side).
type Fut<'a, T> = BoxFuture<'a, Result<T, EngineError>>;

impl Engine for Arc<FakeEngine> {
    fn ping(&self) -> Fut<'_, ()> {
        Box::pin(async move { self.call(Op::Ping, Event::Ping) })
    }

    fn inspect_image<'a>(&'a self, image: &'a str) -> Fut<'a, Option<Image>> {
        Box::pin(async move {
            self.call(Op::InspectImage, Event::InspectImage(image.to_owned()))?;
            Ok(self.state().images.get(image).cloned())
        })
    }

    fn create<'a>(&'a self, name: &'a str, spec: HardenedSpec) -> Fut<'a, String> {
        Box::pin(async move {
            self.call(Op::Create, Event::Create(name.to_owned()))?;
            let mut s = self.state();
            s.next += 1;
            let id = format!("fake{:04}", s.next);
            let labels = spec.into_body().labels.unwrap_or_default();
            s.containers.insert(
                id.clone(),
                Container {
                    labels,
                    running: false,
                    exit: None,
                    killed: CancellationToken::new(),
                    received: None,
                },
            );
            Ok(id)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Op::Start, Event::Start(id.to_owned()))?;
            let delay = self.state().start_delay;
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut s = self.state();
            let c = s.containers.get_mut(id).ok_or_else(|| not_found(id))?;
            c.running = true;
            Ok(())
        })
    }

    fn attach<'a>(&'a self, id: &'a str) -> Fut<'a, AttachContainerResults> {
        Box::pin(async move {
            self.call(Op::Attach, Event::Attach(id.to_owned()))?;
            if !self.state().containers.contains_key(id) {
                return Err(not_found(id));
            }
            let (input, stdin) = tokio::io::duplex(64 * 1024);
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(play(self.clone(), id.to_owned(), stdin, tx));
            let output = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            Ok(AttachContainerResults {
                output: Box::pin(output),
                input: Box::pin(input),
            })
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> Fut<'a, Option<i64>> {
        Box::pin(async move {
            let killed = {
                let s = self.state();
                let c = s.containers.get(id).ok_or_else(|| not_found(id))?;
                if !c.running {
                    return Ok(c.exit);
                }
                c.killed.clone()
            };
            killed.cancelled().await;
            Ok(self.state().containers.get(id).and_then(|c| c.exit))
        })
    }

    fn kill<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Op::Kill, Event::Kill(id.to_owned()))?;
            let mut s = self.state();
            let c = s.containers.get_mut(id).ok_or_else(|| not_found(id))?;
            if c.running {
                c.running = false;
                c.exit = Some(137);
            }
            c.killed.cancel();
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            self.call(Op::Remove, Event::Remove(id.to_owned()))?;
            if let Some(c) = self.state().containers.remove(id) {
                c.killed.cancel();
            }
            Ok(())
        })
    }

    fn list_by_label<'a>(&'a self, labels: &'a [String]) -> Fut<'a, Vec<ContainerSummary>> {
        Box::pin(async move {
            self.call(Op::List, Event::List)?;
            let s = self.state();
            Ok(s.containers
                .iter()
                .filter(|(_, c)| {
                    labels.iter().all(|l| {
                        let (k, v) = l.split_once('=').unwrap_or((l, ""));
                        c.labels.get(k).is_some_and(|x| x == v)
                    })
                })
                .map(|(id, c)| ContainerSummary {
                    id: Some(id.clone()),
                    labels: Some(c.labels.clone()),
                    ..Default::default()
                })
                .collect())
        })
    }

    fn inspect_container<'a>(&'a self, id: &'a str) -> Fut<'a, ContainerInspectResponse> {
        Box::pin(async move {
            let s = self.state();
            let c = s.containers.get(id).ok_or_else(|| not_found(id))?;
            Ok(ContainerInspectResponse {
                id: Some(id.to_owned()),
                state: Some(ContainerState {
                    running: Some(c.running),
                    exit_code: c.exit,
                    oom_killed: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
    }
}

/// Parameters for a job on image `img` without a workspace.
pub fn params() -> bridge_state::yolo::ExecParams {
    bridge_state::yolo::ExecParams {
        mode: bridge_state::policy::Mode::Safe,
        image: "img".into(),
        workspace: None,
        workspace_rw: false,
        runtime: None,
        timeout_secs: 30,
        limits: bridge_state::yolo::Limits::default(),
    }
}

pub fn owner() -> crate::sandbox::Owner {
    crate::sandbox::Owner {
        runner: "run_me".into(),
        db: "db1".into(),
        engine: "local".into(),
    }
}

/// Lets spawned tasks run (a current-thread test runtime) until `done`
/// holds; panics if they go idle first. Fake calls never block, so every
/// step completes within a few polls.
pub async fn settle(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the tasks under test went idle before the condition held");
}
