//! The command policy as the runner sees it: the operator's policy file,
//! re-read when it changes, so a job is claimed only if the policy in force
//! *now* still allows it.

use std::path::PathBuf;
use std::time::SystemTime;

use bridge_state::policy::{Policy, PolicyError};

/// The built-in policy, or the built-in one extended by a file.
#[derive(Debug)]
pub struct PolicyWatch {
    path: Option<PathBuf>,
    /// (modification time, length) of the file when it was last read.
    stamp: Option<(SystemTime, u64)>,
    policy: Policy,
}

impl PolicyWatch {
    /// Reads the file once; an unreadable or invalid file is an error at
    /// start, so a typo never silently means "built-in rules only".
    pub fn load(path: Option<PathBuf>) -> Result<Self, PolicyError> {
        let mut w = Self {
            path,
            stamp: None,
            policy: Policy::builtin(),
        };
        w.reload()?;
        Ok(w)
    }

    /// The policy in force now, re-read if the file changed. When the file
    /// became unreadable or invalid the error is returned and the caller
    /// claims nothing (fail closed) until it is fixed.
    pub fn current(&mut self) -> Result<Policy, PolicyError> {
        if self.file_stamp() != self.stamp {
            self.reload()?;
        }
        Ok(self.policy.clone())
    }

    fn file_stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(self.path.as_ref()?).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn reload(&mut self) -> Result<(), PolicyError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let stamp = self.file_stamp();
        self.policy = Policy::with_file(path)?;
        self.stamp = stamp;
        tracing::info!(file = %path.display(), "command policy loaded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_state::policy::Mode;

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(&file, "").unwrap();
        let mut w = PolicyWatch::load(Some(file.clone())).unwrap();
        assert!(
            w.current()
                .unwrap()
                .check(Mode::Yolo, "echo hi")
                .is_allowed()
        );
        std::fs::write(
            &file,
            "[[blocked]]\nname = \"no-echo\"\nregex = '\\becho\\b'\nreason = \"no echo here\"\n",
        )
        .unwrap();
        assert!(
            !w.current()
                .unwrap()
                .check(Mode::Yolo, "echo hi")
                .is_allowed()
        );
        std::fs::write(&file, "this is not toml [").unwrap();
        assert!(
            w.current().is_err(),
            "a broken file must not fall back to looser rules"
        );
        std::fs::remove_file(&file).unwrap();
        assert!(
            w.current().is_err(),
            "a vanished file must not fall back to looser rules"
        );
    }
}
