//! What the benchmark reports share: the commit the measured binaries were
//! built from, and how a target reads in a results table.

use std::process::Stdio;

/// The commit the binaries were built from, marked when the tree differs
/// under any of `dirs` (workspace folders such as `bridge`), e.g.
/// "commit `abc1234` plus uncommitted changes to bridge/ or runner/".
pub fn revision(dirs: &[&str]) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let paths: Vec<String> = dirs.iter().map(|d| format!("../{d}")).collect();
    let mut status = vec!["status", "--porcelain", "--"];
    status.extend(paths.iter().map(String::as_str));
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown commit".into(),
        Some(rev) => match git(&status) {
            Some(s) if s.is_empty() => format!("commit `{rev}`"),
            _ => {
                let changed: Vec<String> = dirs.iter().map(|d| format!("{d}/")).collect();
                format!(
                    "commit `{rev}` plus uncommitted changes to {}",
                    changed.join(" or ")
                )
            }
        },
    }
}

/// A target's status cell: met, or missed in bold.
pub fn status(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}
