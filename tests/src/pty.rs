//! The operator CLI on a real pseudo-terminal whose window size we choose
//! (rexpect leaves it at 0×0, which the CLI treats as unknown): every byte
//! the program writes is kept for the terminal emulator.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;

pub const WAIT: Duration = Duration::from_secs(30);

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A pseudo-terminal of `rows`×`cols`: (master, slave), both close-on-exec.
/// `openpty(3)` leaves both ends inheritable, and the tests spawn processes
/// from many threads at once: a server another test started at that moment
/// would keep this terminal open for its whole life, and a reader waiting
/// for the child's exit (EIO on the master) would wait for that stranger.
pub fn open_pty(rows: u16, cols: u16) -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .context("opening /dev/ptmx")?;
    rustix::pty::grantpt(&master).context("grantpt")?;
    rustix::pty::unlockpt(&master).context("unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).context("ptsname")?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {name:?}"))?;
    rustix::termios::tcsetwinsize(&slave, winsize(rows, cols))
        .context("setting the window size")?;
    Ok((master, slave))
}

/// A child process whose stdin, stdout and stderr are one pseudo-terminal.
pub struct Pty {
    master: File,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    /// How much of `output` earlier [`Pty::expect`] calls consumed.
    seen: usize,
}

impl Pty {
    /// `bridge --db DB ARGS…` with YOLO_MODE=1, on a `rows`×`cols` terminal.
    pub fn bridge(db: &Path, args: &[&str], rows: u16, cols: u16) -> anyhow::Result<Self> {
        let mut cmd = Command::new(crate::bin("bridge"));
        cmd.arg("--db").arg(db).args(args).env("YOLO_MODE", "1");
        Self::spawn(cmd, rows, cols)
    }

    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> anyhow::Result<Self> {
        let (master, slave) = open_pty(rows, cols)?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            .env("TERM", "xterm-256color")
            .env_remove("BRIDGE_LOG");
        let child = cmd.spawn().context("spawning the operator CLI")?;
        // `cmd` still holds the slave copies; dropping it leaves the child
        // the only holder, so its exit ends our reads.
        drop(cmd);
        let master = File::from(master);
        let output = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let mut master = master.try_clone()?;
            let output = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // EIO once the child has exited and closed the slave.
                while let Ok(n) = master.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        Ok(Self {
            master,
            child,
            output,
            reader: Some(reader),
            seen: 0,
        })
    }

    /// Gives the terminal a new size and tells the program (SIGWINCH), as
    /// a window manager does.
    pub fn resize(&mut self, rows: u16, cols: u16) -> anyhow::Result<()> {
        rustix::termios::tcsetwinsize(&self.master, winsize(rows, cols))?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH)?;
        Ok(())
    }

    /// Whether the program is still running.
    pub fn running(&mut self) -> anyhow::Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> usize {
        self.output.lock().unwrap().len()
    }

    /// Every byte written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output after the last match contains one of
    /// `needles`; returns which one, and consumes the output up to it.
    pub fn expect_any(&mut self, needles: &[&str]) -> anyhow::Result<usize> {
        let deadline = Instant::now() + WAIT;
        loop {
            {
                let out = self.output.lock().unwrap();
                let rest = &out[self.seen.min(out.len())..];
                let found = needles
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| find(rest, n.as_bytes()).map(|at| (at, i, n.len())))
                    .min();
                if let Some((at, i, len)) = found {
                    self.seen += at + len;
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for one of {needles:?}; output so far:\n{}",
                    String::from_utf8_lossy(&self.bytes())
                );
            }
            if let Some(status) = self.child.try_wait()? {
                // Let the reader drain what is left before the last look:
                // it ends at the end of the terminal's output (bounded, in
                // case something else still holds the terminal open).
                let drained = Instant::now() + Duration::from_secs(2);
                while self.reader.as_ref().is_some_and(|r| !r.is_finished())
                    && Instant::now() < drained
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let out = self.output.lock().unwrap();
                if !needles
                    .iter()
                    .any(|n| find(&out[self.seen.min(out.len())..], n.as_bytes()).is_some())
                {
                    bail!(
                        "the program exited ({status}) before printing one of {needles:?}:\n{}",
                        String::from_utf8_lossy(&out)
                    );
                }
                continue;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn expect(&mut self, needle: &str) -> anyhow::Result<()> {
        self.expect_any(&[needle]).map(|_| ())
    }

    /// Types `text` as a person would (the terminal echoes it).
    pub fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.master.write_all(text.as_bytes())?;
        self.master.flush()?;
        Ok(())
    }

    /// Waits for the program to exit; returns its status and all its output.
    pub fn finish(mut self) -> anyhow::Result<(ExitStatus, Vec<u8>)> {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!(
                    "the program did not exit; output:\n{}",
                    String::from_utf8_lossy(&self.bytes())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            r.join()
                .map_err(|_| anyhow::anyhow!("pty reader panicked"))?;
        }
        Ok((status, self.bytes()))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
