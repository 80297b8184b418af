//! `bridge console` on a pseudo-terminal of a known size, read back through
//! the terminal emulator: what the screen tests and `bench_console` drive.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};

use crate::emulator::Screen;
use crate::pty::{Pty, WAIT};

/// The console on a terminal of a known size, and what it shows.
pub struct Console {
    pty: Pty,
    screen: Screen,
    /// Keys pressed so far.
    pub keys: usize,
    /// When the last [`Console::wait_for`] first saw its condition hold.
    pub first_seen: Instant,
}

/// How long the output must be still for the screen to count as drawn.
const QUIET: Duration = Duration::from_millis(40);

impl Console {
    /// `bridge --db DB console ARGS…` with YOLO_MODE=1; returns once its
    /// first screen is drawn.
    pub fn start(db: &Path, args: &[&str], rows: u16, cols: u16) -> anyhow::Result<Self> {
        let mut all = vec!["console"];
        all.extend_from_slice(args);
        let pty = Pty::bridge(db, &all, rows, cols)?;
        let mut c = Self {
            pty,
            screen: Screen::new(rows, cols),
            keys: 0,
            first_seen: Instant::now(),
        };
        c.wait_for("the console's header", |s| {
            s.first().is_some_and(|r| r.starts_with("bridge console"))
        })?;
        Ok(c)
    }

    /// Any console command line, e.g. without YOLO_MODE.
    pub fn spawn(cmd: Command, rows: u16, cols: u16) -> anyhow::Result<Self> {
        Ok(Self {
            pty: Pty::spawn(cmd, rows, cols)?,
            screen: Screen::new(rows, cols),
            keys: 0,
            first_seen: Instant::now(),
        })
    }

    /// Every byte the console wrote.
    pub fn bytes(&self) -> Vec<u8> {
        self.pty.bytes()
    }

    pub fn running(&mut self) -> anyhow::Result<bool> {
        self.pty.running()
    }

    /// The rows on screen now.
    pub fn visible(&mut self) -> Vec<String> {
        self.screen.catch_up(&self.pty.bytes());
        self.screen.visible()
    }

    /// Waits until the screen satisfies `ok` and has stopped changing (no
    /// output for [`QUIET`]): a frame read while it is still arriving is
    /// half old, half new, and a person never sees that one. Returns the
    /// settled screen; [`Console::first_seen`] is when `ok` first held.
    pub fn wait_for(
        &mut self,
        what: &str,
        ok: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + WAIT;
        let mut seen: Option<Instant> = None;
        loop {
            let fed = self.pty.written();
            let rows = self.visible();
            if ok(&rows) {
                let at = *seen.get_or_insert_with(Instant::now);
                std::thread::sleep(QUIET);
                if self.pty.written() == fed {
                    self.first_seen = at;
                    return Ok(rows);
                }
                continue;
            }
            seen = None;
            if !self.pty.running()? {
                bail!(
                    "the console exited while waiting for {what}:\n{}",
                    rows.join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what}; the screen:\n{}",
                    rows.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn shows(&mut self, what: &str, needle: &str) -> anyhow::Result<Vec<String>> {
        self.wait_for(what, |s| s.iter().any(|r| r.contains(needle)))
    }

    /// Presses keys, counted.
    pub fn press(&mut self, keys: &str) -> anyhow::Result<()> {
        self.keys += keys.chars().count();
        self.pty.send(keys)
    }

    /// Sends bytes that are not keystrokes (a paste, a resize).
    pub fn send_raw(&mut self, bytes: &str) -> anyhow::Result<()> {
        self.pty.send(bytes)
    }

    pub fn resize(&mut self, rows: u16, cols: u16) -> anyhow::Result<()> {
        self.pty.resize(rows, cols)?;
        // The emulator follows with what was drawn so far, then the new size.
        self.screen.catch_up(&self.pty.bytes());
        self.screen.set_size(rows, cols);
        Ok(())
    }

    /// Everything the terminal was asked to do besides drawing: only the
    /// bell and the fixed `--notify osc9` text are allowed (and SGR 59,
    /// "default underline colour", which the console's own styling sends
    /// and the emulator does not model).
    pub fn assert_no_effects(&mut self, what: &str) {
        self.visible();
        let osc9 = regex::Regex::new(
            r#"^unhandled OSC \["9", "proposal waiting in conv_[0-9a-f]{16}"\]$"#,
        )
        .expect("a valid pattern");
        let effects: Vec<&String> = self
            .screen
            .effects()
            .iter()
            .filter(|e| {
                e.as_str() != "audible bell"
                    && e.as_str() != "unhandled CSI None None [[59]] 'm'"
                    && !osc9.is_match(e)
            })
            .collect();
        assert!(
            effects.is_empty(),
            "{what}: the terminal was made to act: {effects:?}"
        );
    }

    /// Audible bells so far.
    pub fn bells(&mut self) -> usize {
        self.visible();
        self.screen
            .effects()
            .iter()
            .filter(|e| e.as_str() == "audible bell")
            .count()
    }

    /// Ctrl-C, which quits from any screen.
    pub fn quit(mut self) -> anyhow::Result<Vec<u8>> {
        self.pty.send("\x03")?;
        let (status, bytes) = self.pty.finish()?;
        ensure!(status.success(), "the console failed: {status}");
        Ok(bytes)
    }
}
