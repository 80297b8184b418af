//! A server's stderr as the tests read it: collected from a pipe or a file,
//! searched, and waited on. Tests synchronise on the server's own log
//! lines (above all the long poll's "long poll waiting") instead of
//! sleeping and hoping the server got there first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// The `BRIDGE_LOG` the test harness starts servers with: warnings, plus
/// the long poll's debug events (ids only) that tests wait on.
pub fn bridge_log_filter() -> String {
    format!("warn,{}=debug", bridge::mcp::service::LONG_POLL_TARGET)
}

/// How long a test waits for a log line before it fails.
pub const LOG_WAIT: Duration = Duration::from_secs(15);

/// What the line "long poll waiting" of session `session`'s long poll in
/// conversation `conversation_id` contains. The server prints it once the
/// poll is registered for wake-ups and found nothing, so a message sent
/// after it appears is delivered by a wake-up, not by the first query.
pub fn long_poll_waiting(conversation_id: &str, session: &str) -> String {
    format!("long poll waiting conversation_id={conversation_id} session_id={session}")
}

/// What the line "long poll ended" contains: the poll returned or was
/// dropped (its client went away) and consumes nothing any more.
pub fn long_poll_ended(conversation_id: &str, session: &str) -> String {
    format!("long poll ended conversation_id={conversation_id} session_id={session}")
}

/// Where the text comes from.
#[derive(Clone)]
enum Source {
    /// A pipe drained by a task into memory; `grew` changes on each line.
    Pipe {
        text: Arc<Mutex<String>>,
        grew: watch::Receiver<()>,
    },
    /// A file the server writes; re-read until the line is there.
    File(PathBuf),
    /// Not captured (the caller sent stderr elsewhere).
    None,
}

/// A server's stderr. Each wait returns the *next* line matching its
/// pattern: waiting twice for one pattern waits for its second occurrence,
/// so a test that long-polls twice on one inbox waits for each poll.
#[derive(Clone)]
pub struct ServerLog {
    source: Source,
    /// Per pattern, how many matching lines earlier waits returned.
    returned: Arc<Mutex<HashMap<String, usize>>>,
}

impl ServerLog {
    /// Drains `stderr` into memory for as long as the runtime runs.
    pub fn from_pipe(stderr: tokio::process::ChildStderr) -> Self {
        let text = Arc::new(Mutex::new(String::new()));
        let (tx, grew) = watch::channel(());
        let sink = text.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut t = sink.lock().unwrap_or_else(|p| p.into_inner());
                t.push_str(&line);
                t.push('\n');
                drop(t);
                tx.send_replace(());
            }
        });
        Self::new(Source::Pipe { text, grew })
    }

    /// Reads the file the server's stderr goes to.
    pub fn from_file(path: PathBuf) -> Self {
        Self::new(Source::File(path))
    }

    /// For a server whose stderr is not captured: `text` is empty and every
    /// wait fails, saying so.
    pub fn none() -> Self {
        Self::new(Source::None)
    }

    fn new(source: Source) -> Self {
        Self {
            source,
            returned: Arc::default(),
        }
    }

    /// Everything the server has written to stderr so far.
    pub fn text(&self) -> String {
        match &self.source {
            Source::Pipe { text, .. } => text.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            Source::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
            Source::None => String::new(),
        }
    }

    /// Waits up to `limit` for the next line containing `pattern` that no
    /// earlier wait returned; returns it, or fails with the log so far.
    pub async fn wait_for(&self, pattern: &str, limit: Duration) -> anyhow::Result<String> {
        if matches!(self.source, Source::None) {
            bail!("waiting for {pattern:?}: this server's stderr is not captured");
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut grew = match &self.source {
            Source::Pipe { grew, .. } => Some(grew.clone()),
            _ => None,
        };
        loop {
            if let Some(g) = grew.as_mut() {
                // Mark what is there as seen before reading it, so a line
                // written after the read still ends the wait below.
                g.borrow_and_update();
            }
            let text = self.text();
            {
                let mut returned = self.returned.lock().unwrap_or_else(|p| p.into_inner());
                let n = returned.entry(pattern.to_owned()).or_default();
                if let Some(line) = text.lines().filter(|l| l.contains(pattern)).nth(*n) {
                    *n += 1;
                    return Ok(line.to_owned());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no line with {pattern:?} in the server's stderr within {limit:?}:\n{text}");
            }
            match grew.as_mut() {
                // The writer task ended (the server exited): one more read
                // above found nothing, so nothing more can come.
                Some(g) => {
                    if let Ok(Err(_)) = tokio::time::timeout_at(deadline, g.changed()).await {
                        bail!(
                            "the server's stderr closed without a line with {pattern:?}:\n{text}"
                        );
                    }
                }
                // A file has no change signal: look again shortly.
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Waits for the line saying session `session`'s long poll in
    /// `conversation_id` is waiting (see [`long_poll_waiting`]).
    pub async fn long_poll_waiting(
        &self,
        conversation_id: &str,
        session: &str,
    ) -> anyhow::Result<()> {
        self.wait_for(&long_poll_waiting(conversation_id, session), LOG_WAIT)
            .await
            .map(drop)
    }

    /// Waits for the line saying that long poll ended (see [`long_poll_ended`]).
    pub async fn long_poll_ended(
        &self,
        conversation_id: &str,
        session: &str,
    ) -> anyhow::Result<()> {
        self.wait_for(&long_poll_ended(conversation_id, session), LOG_WAIT)
            .await
            .map(drop)
    }
}
