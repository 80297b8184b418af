//! A sandbox container's life: created and started from the hardened spec,
//! given exactly one command, killed on timeout, runaway output or
//! cancellation, and removed. Every engine call goes through the
//! [`Engine`] trait, so this logic runs on the in-memory fake in unit tests.

use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bridge_state::job_result::JobResult;
use bridge_state::redact::Redactor;
use bridge_state::yolo::ExecParams;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::protocol::{OUTPUT_KILL_FACTOR, OutputStream, command_line};
use super::{HostPaths, Owner, SandboxError, check_workspace, config_key, container_spec};
use crate::engine::Engine;

/// A started container, ready for exactly one command.
#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub image_id: String,
}

/// Creates and starts one hardened container.
pub async fn start_container(
    engine: &dyn Engine,
    p: &ExecParams,
    owner: &Owner,
    host_paths: &HostPaths,
) -> Result<Started, SandboxError> {
    if let Some(w) = &p.workspace {
        check_workspace(w)?;
    }
    let Some(image) = engine.inspect_image(&p.image).await? else {
        return Err(SandboxError::ImageMissing {
            image: p.image.clone(),
            engine: owner.engine.clone(),
        });
    };
    if !image.volumes.is_empty() {
        return Err(SandboxError::ImageVolumes {
            image: p.image.clone(),
            volumes: image.volumes,
        });
    }
    let image_id = image.id;
    let key = config_key(p);
    let name = format!(
        "mcp-sandbox-{}",
        bridge_state::auth::random_hex(8).unwrap_or_default()
    );
    let id = engine
        .create(&name, container_spec(p, owner, &key, host_paths)?)
        .await?;
    if let Err(e) = engine.start(&id).await {
        remove(engine, &id).await;
        return Err(e.into());
    }
    Ok(Started { id, image_id })
}

/// Removes a container and its anonymous volumes; errors are logged. A
/// failed attempt is repeated twice (after 0.2 s and 1 s): removing is
/// idempotent, and a remote engine's transport can fail one connection
/// (an ssh login refused under load) while the engine is fine. A container
/// still there after that is recorded in [`unremoved`], and every sweep
/// tries it again until it is gone: it may still hold a command's
/// background processes and its memory.
pub async fn remove(engine: &dyn Engine, id: &str) {
    let mut delays = [200, 1000].into_iter();
    loop {
        let Err(e) = engine.remove(id).await else {
            unremoved_set().remove(id);
            return;
        };
        let Some(ms) = delays.next() else {
            tracing::warn!(container = id, error = %crate::engine::describe(&e), "could not remove container; the sweep will try again");
            unremoved_set().insert(id.to_owned());
            return;
        };
        tracing::debug!(container = id, error = %crate::engine::describe(&e), "removing a container failed; trying again");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Containers of this process that [`remove`] gave up on, for the sweep.
pub fn unremoved() -> Vec<String> {
    unremoved_set().iter().cloned().collect()
}

fn unremoved_set() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<String>> {
    static SET: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    SET.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn kill(engine: &dyn Engine, id: &str) {
    let _ = engine.kill(id).await;
}

/// The container's exit code: the wrapper shell's (or the init's), which
/// is the command's only when the wrapper wrote its trailer.
async fn wait_exit(engine: &dyn Engine, id: &str) -> Result<i64, SandboxError> {
    engine
        .wait(id)
        .await?
        .ok_or_else(|| SandboxError::Vanished(id.to_owned()))
}

/// How long output from background processes is still collected after the
/// command itself has exited (the container stops right after anyway).
const LATE_OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Runs `command` once in `container` (handing it to the waiting process on
/// stdin), with the timeout and output
/// cap of `p`. `attached` is the container's attach stream when the pool
/// opened it ahead of time; otherwise it is opened here. The container is
/// killed on timeout, on runaway output and on cancellation; the caller
/// removes it afterwards in every case.
pub async fn run_command(
    engine: &dyn Engine,
    container: &Started,
    attached: Option<AttachContainerResults>,
    p: &ExecParams,
    command: &str,
    red: &Redactor,
    cancel: CancellationToken,
) -> Result<JobResult, SandboxError> {
    let started = Instant::now();
    let AttachContainerResults {
        mut output,
        mut input,
    } = match attached {
        Some(a) => a,
        None => engine.attach(&container.id).await?,
    };
    // 128 bits: the command cannot guess it, so it cannot forge a trailer.
    let nonce = bridge_state::auth::random_hex(16)
        .map_err(|e| SandboxError::Stdin(std::io::Error::other(e.to_string())))?;
    let line = command_line(&nonce, command);
    // The last moment the command can still be withheld: YOLO disabled (or
    // the runner stopping) since the start was recorded.
    if cancel.is_cancelled() {
        return Err(SandboxError::Withheld);
    }
    input
        .write_all(line.as_bytes())
        .await
        .map_err(SandboxError::Stdin)?;
    // Closing our side closes the command's stdin (stdin_once): it reads EOF.
    input.shutdown().await.map_err(SandboxError::Stdin)?;
    drop(input);
    let cap = p.limits.output_cap_bytes;
    let (mut out, mut err) = (
        OutputStream::new(&nonce, red, cap),
        OutputStream::new(&nonce, red, cap),
    );
    let kill_at = cap.saturating_mul(OUTPUT_KILL_FACTOR);
    let deadline = tokio::time::sleep(Duration::from_secs(u64::from(p.timeout_secs)));
    tokio::pin!(deadline);
    let late = tokio::time::sleep(Duration::from_secs(u64::from(p.timeout_secs)));
    tokio::pin!(late);
    let mut late_armed = false;
    let (mut timed_out, mut output_limit_hit, mut cancelled) = (false, false, false);
    loop {
        // The wrapper writes the trailer only after the command exited.
        let exited = out.trailer.status().is_some() || err.trailer.status().is_some();
        tokio::select! {
            frame = output.next() => match frame {
                None => break,
                Some(Ok(LogOutput::StdOut { message })) => out.push(&message),
                Some(Ok(LogOutput::StdErr { message })) => err.push(&message),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "output stream failed");
                    break;
                }
            },
            _ = &mut deadline => { timed_out = !exited; break; }
            _ = &mut late, if late_armed => break,
            _ = cancel.cancelled() => { cancelled = !exited; break; }
        }
        if out.bytes + err.bytes > kill_at {
            output_limit_hit = true;
            break;
        }
        if out.trailer.status().is_some() && err.trailer.status().is_some() {
            if out.trailer.bytes_after() + err.trailer.bytes_after() == 0 {
                // The usual end: no need to wait for the engine to notice.
                break;
            }
            if !late_armed {
                late.as_mut()
                    .reset(tokio::time::Instant::now() + LATE_OUTPUT_GRACE);
                late_armed = true;
            }
        }
    }
    drop(output);
    if timed_out || output_limit_hit || cancelled {
        kill(engine, &container.id).await;
    }
    out.finish();
    err.finish();
    let (exit_code, exit_code_unknown_reason) = match (out.trailer.status(), err.trailer.status()) {
        (Some(a), Some(b)) if a != b => (
            None,
            Some(format!(
                "the sandbox reported two different exit statuses ({a} on stdout, {b} on stderr); neither can be trusted"
            )),
        ),
        (Some(code), _) | (_, Some(code)) => (Some(code), None),
        (None, None) if timed_out => (
            None,
            Some(format!("the command was killed at its {} s timeout before it exited", p.timeout_secs)),
        ),
        (None, None) if output_limit_hit => (
            None,
            Some(format!("the command was killed for writing more than {kill_at} bytes of output before it exited")),
        ),
        (None, None) if cancelled => (
            None,
            Some("the command was stopped before it exited (YOLO was disabled or the runner shut down)".to_owned()),
        ),
        (None, None) => (None, Some(vanished_reason(engine, &container.id).await?)),
    };
    let mut classes = out.redactor.classes();
    classes.extend(err.redactor.classes());
    classes.dedup();
    Ok(JobResult {
        exit_code,
        exit_code_unknown_reason,
        duration_ms: started.elapsed().as_millis() as u64,
        truncated: out.capture.truncated() || err.capture.truncated(),
        stdout: out.capture.render(),
        stderr: err.capture.render(),
        stdout_bytes: out.bytes,
        stderr_bytes: err.bytes,
        timed_out,
        output_limit_hit,
        cancelled,
        container_id: container.id.clone(),
        image_id: container.image_id.clone(),
        redacted_classes: classes,
    })
}

/// Why there is no exit status when the wrapper never wrote its trailer:
/// something killed the wrapper shell (the command, the OOM killer) before
/// the command ended. The container's own exit code is named, but it is the
/// wrapper's, not the command's.
async fn vanished_reason(engine: &dyn Engine, id: &str) -> Result<String, SandboxError> {
    // The output stream can also break while the container still runs:
    // do not wait for it forever.
    let Ok(code) = tokio::time::timeout(Duration::from_secs(5), wait_exit(engine, id)).await else {
        kill(engine, id).await;
        return Ok(
            "the output stream from the sandbox broke before the command reported its exit status; the sandbox was killed".to_owned(),
        );
    };
    let code = code?;
    let oom = engine
        .inspect_container(id)
        .await
        .ok()
        .and_then(|c| c.state?.oom_killed)
        .unwrap_or(false);
    Ok(format!(
        "the sandbox's shell ended before the command reported its exit status (container exit code {code}{}); the command's own status is unknown",
        if oom { ", out of memory" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::{End, Event, FakeEngine, Op, Script, owner, params};

    async fn start(fake: &std::sync::Arc<FakeEngine>) -> Result<Started, SandboxError> {
        start_container(fake, &params(), &owner(), &HostPaths::default()).await
    }

    async fn run(
        fake: &std::sync::Arc<FakeEngine>,
        c: &Started,
        cancel: CancellationToken,
    ) -> Result<JobResult, SandboxError> {
        let red = Redactor::builtin();
        run_command(fake, c, None, &params(), "echo hi", &red, cancel).await
    }

    #[tokio::test]
    async fn a_command_is_handed_over_on_stdin_and_its_trailer_is_its_status() {
        let fake = FakeEngine::with_image("img");
        fake.script(Script {
            stdout: b"out\n".to_vec(),
            stderr: b"err\n".to_vec(),
            end: End::Exit(3),
        });
        let c = start(&fake).await.unwrap();
        assert_eq!(c.image_id, "sha256:img");
        let r = run(&fake, &c, CancellationToken::new()).await.unwrap();
        assert_eq!((r.exit_code, r.exit_code_unknown_reason), (Some(3), None));
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
        assert!(!r.timed_out && !r.output_limit_hit && !r.cancelled);
        let line = fake.received(&c.id).unwrap();
        let (nonce, cmd) = line.split_once(' ').unwrap();
        assert_eq!(nonce.len(), 32);
        assert_eq!(cmd, "ZWNobyBoaQ==\n");
        // Nobody killed it, and removing it is the caller's.
        assert_eq!(
            fake.count(|e| matches!(e, Event::Kill(_) | Event::Remove(_))),
            0
        );
        assert_eq!(fake.containers(), std::slice::from_ref(&c.id));
    }

    #[tokio::test]
    async fn a_job_stopped_before_the_hand_over_never_gets_its_command() {
        let fake = FakeEngine::with_image("img");
        let c = start(&fake).await.unwrap();
        let stopped = CancellationToken::new();
        stopped.cancel();
        let e = run(&fake, &c, stopped).await.unwrap_err();
        assert!(matches!(e, SandboxError::Withheld), "{e}");
        assert!(e.to_string().contains("it was not run"), "{e}");
        assert_eq!(fake.received(&c.id), None);
    }

    #[tokio::test]
    async fn an_image_that_declares_volumes_is_refused_and_nothing_is_created() {
        let fake = FakeEngine::with_image("img");
        fake.image_volumes("img", &["/data", "/var/cache"]);
        let e = start(&fake).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("`img` declares VOLUME /data, /var/cache"),
            "{e}"
        );
        assert_eq!(fake.events(), [Event::InspectImage("img".into())]);
    }

    #[tokio::test]
    async fn a_missing_image_is_named_and_nothing_is_created() {
        let fake = FakeEngine::with_image("other");
        let e = start(&fake).await.unwrap_err();
        assert!(
            matches!(&e, SandboxError::ImageMissing { image, engine } if image == "img" && engine == "local"),
            "{e}"
        );
        assert_eq!(fake.events(), [Event::InspectImage("img".into())]);
    }

    #[tokio::test]
    async fn a_failed_create_leaves_nothing_behind() {
        let fake = FakeEngine::with_image("img");
        fake.fail(Op::Create);
        assert!(matches!(start(&fake).await, Err(SandboxError::Docker(_))));
        assert_eq!(fake.count(|e| matches!(e, Event::Start(_))), 0);
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_failed_start_removes_the_created_container() {
        let fake = FakeEngine::with_image("img");
        fake.fail(Op::Start);
        assert!(matches!(start(&fake).await, Err(SandboxError::Docker(_))));
        let ev = fake.events();
        let Event::Start(id) = &ev[2] else {
            panic!("{ev:?}")
        };
        assert_eq!(ev[3], Event::Remove(id.clone()));
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn a_failed_attach_is_an_engine_error_and_hands_nothing_over() {
        let fake = FakeEngine::with_image("img");
        let c = start(&fake).await.unwrap();
        fake.fail(Op::Attach);
        let e = run(&fake, &c, CancellationToken::new()).await.unwrap_err();
        assert!(e.to_string().starts_with("Docker engine error: "), "{e}");
        assert_eq!(fake.received(&c.id), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_past_its_timeout_is_killed() {
        let fake = FakeEngine::with_image("img");
        fake.script(Script {
            end: End::Hang,
            ..Script::default()
        });
        let c = start(&fake).await.unwrap();
        let before = tokio::time::Instant::now();
        let r = run(&fake, &c, CancellationToken::new()).await.unwrap();
        assert_eq!(before.elapsed(), Duration::from_secs(30));
        assert!(r.timed_out && !r.cancelled && !r.output_limit_hit);
        assert_eq!(r.exit_code, None);
        assert!(
            r.exit_code_unknown_reason
                .unwrap()
                .contains("killed at its 30 s timeout")
        );
        assert_eq!(r.stdout, "hi\n");
        assert_eq!(fake.count(|e| *e == Event::Kill(c.id.clone())), 1);
    }

    #[tokio::test]
    async fn cancellation_kills_the_command() {
        let fake = FakeEngine::with_image("img");
        fake.script(Script {
            end: End::Hang,
            ..Script::default()
        });
        let c = start(&fake).await.unwrap();
        let cancel = CancellationToken::new();
        // Once the command is handed over (before that it is withheld).
        let later = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            later.cancel();
        });
        let r = run(&fake, &c, cancel).await.unwrap();
        assert!(fake.received(&c.id).is_some(), "it was handed over");
        assert!(r.cancelled && !r.timed_out);
        assert!(
            r.exit_code_unknown_reason
                .unwrap()
                .contains("stopped before it exited")
        );
        assert_eq!(fake.count(|e| *e == Event::Kill(c.id.clone())), 1);
    }

    #[tokio::test]
    async fn runaway_output_is_killed() {
        let fake = FakeEngine::with_image("img");
        let mut p = params();
        p.limits.output_cap_bytes = 16;
        fake.script(Script {
            stdout: vec![b'x'; 16 * 64 + 1],
            end: End::Hang,
            ..Script::default()
        });
        let c = start(&fake).await.unwrap();
        let r = run_command(
            &fake,
            &c,
            None,
            &p,
            "yes",
            &Redactor::builtin(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(r.output_limit_hit && r.truncated && !r.timed_out);
        assert_eq!(r.stdout_bytes, 16 * 64 + 1);
        assert_eq!(fake.count(|e| *e == Event::Kill(c.id.clone())), 1);
    }

    #[tokio::test]
    async fn a_wrapper_that_dies_without_a_trailer_gives_no_status() {
        let fake = FakeEngine::with_image("img");
        fake.script(Script {
            end: End::Die(137),
            ..Script::default()
        });
        let c = start(&fake).await.unwrap();
        let r = run(&fake, &c, CancellationToken::new()).await.unwrap();
        assert_eq!(r.exit_code, None);
        let why = r.exit_code_unknown_reason.unwrap();
        assert!(why.contains("container exit code 137)"), "{why}");
        assert_eq!(fake.count(|e| matches!(e, Event::Kill(_))), 0);
    }
}
