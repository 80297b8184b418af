//! Command policy: decides whether a shell command an agent proposes may run in the sandbox in a
//! given mode, and if not, which rule refused it and what the agent can do instead.
//!
//! The throwaway container is the security boundary; this is defence in depth and a clear early
//! "no", in two layers. **Always-blocked rules** (`blocked.rs`) apply in every mode, yolo
//! included: named regexes (deleting `/` or `~`, sudo, raw disk writes, download-and-execute,
//! fork bombs, `eval`) plus the policy file's `[[blocked]]` rules, on the raw text and again
//! with quotes, backslashes and `$IFS` removed. **Mode rules** split the command into simple
//! commands (`shell.rs`), refusing what the split cannot see through, and check each one.
//!
//! What each mode promises (YOLO_MODE.md says the same):
//! - **safe**: read-only inspection. No program it admits can start another program or write
//!   a file. Programs, their options (`programs.rs`, `git.rs`, parsed as each program parses
//!   them: `options.rs`) and environment assignments are allow-listed; anything unlisted is
//!   refused by name. Independently, every word is checked against a separate audit of each
//!   program's ways to run programs or write files (`hazards.rs`), in every abbreviation and
//!   bundling.
//! - **restricted**: runs project tooling by design (`cargo test` executes project code). It
//!   promises only the listed programs and subcommands, no shell features beyond pipes, lists
//!   and redirections, and no option that starts an arbitrary program or deletes files (the
//!   `Exec` and `Delete` hazards, sed/awk commands that run or write: `scripts.rs`). Writes are confined by the container,
//!   whose only writable places are the workspace and a private `/tmp`.
//! - **yolo**: anything not always blocked.
//!
//! Repository configuration (a `core.fsmonitor` or textconv driver in `.git/config`) is beyond
//! this module: that is the container's job. The `regex` crate runs in linear time and every
//! pass here is linear, so a hostile megabyte cannot stall the bridge.

mod blocked;
mod command;
#[cfg(test)]
mod corpus;
mod git;
pub mod hazards;
mod options;
mod programs;
mod scripts;
mod shell;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use shell::split;

/// How much an approved command may do; chosen by the operator per conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Safe,
    Restricted,
    Yolo,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Safe, Mode::Restricted, Mode::Yolo];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Safe => "safe",
            Mode::Restricted => "restricted",
            Mode::Yolo => "yolo",
        }
    }

    /// Parses a mode name as a person types it: surrounding space and case are ignored.
    pub fn parse(s: &str) -> Result<Self, String> {
        let wanted = s.trim();
        let found = Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(wanted));
        found.ok_or_else(|| format!("unknown mode `{wanted}`; valid modes: safe, restricted, yolo"))
    }

    /// One line for the operator, shown next to the mode's name.
    pub fn describe(self) -> &'static str {
        match self {
            Mode::Safe => {
                "read-only inspection (ls, cat, grep, find, git log/diff, …): starts no other program, writes no file"
            }
            Mode::Restricted => {
                "safe commands plus file edits, git, cargo, npm, pip, pytest, make (runs project code); no option that starts an arbitrary program"
            }
            Mode::Yolo => "anything except always-blocked commands (rm -rf /, sudo, curl | sh, …)",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer for one command. `rule` is a stable kebab-case name for logs and audits; `reason`
/// is written for the agent and says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Blocked { rule: String, reason: String },
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}; check that the path is right and readable")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "policy file {path} is not valid: {source}; it may hold only `[safe] commands`, `[restricted] commands` and `[[blocked]]` rules with `name`, `regex` and `reason`"
    )]
    ParseFile {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "blocked rule `{name}` in {path} has an invalid regex: {source}; fix its `regex` (Rust `regex` syntax: no backreferences or look-around)"
    )]
    InvalidRegex {
        path: PathBuf,
        name: String,
        source: regex::Error,
    },
    #[error("policy file {path}: {problem}")]
    InvalidEntry { path: PathBuf, problem: String },
}

/// The built-in allow-lists and rules, optionally extended by a policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The read-only programs: the built-in ones, whose options are allow-listed, plus those an
    /// operator's policy file adds, which the operator vouches for with any options (the hazard
    /// check still applies).
    safe: BTreeSet<String>,
    /// Program → allowed subcommands (its first non-option argument); empty means any arguments.
    restricted: BTreeMap<String, Vec<String>>,
    /// (name, regex, reason) of the always-blocked rules; the first match is reported.
    blocked: Vec<(String, String, String)>,
    /// The regexes of `blocked`, at the same indices: one scan of the text finds every match.
    blocked_set: RegexSet,
}

#[rustfmt::skip]
const RESTRICTED: &[(&str, &[&str])] = &[
    ("git", &["add", "blame", "branch", "checkout", "commit", "describe", "diff", "fetch", "grep",
              "init", "log", "ls-files", "merge", "mv", "pull", "rebase", "reset", "restore",
              "rev-parse", "rm", "shortlog", "show", "stash", "status", "switch", "tag"]),
    ("npm", &["audit", "ci", "install", "ls", "run", "test"]),
    ("pip", &["freeze", "install", "list", "show"]),
    ("pip3", &["freeze", "install", "list", "show"]),
    ("cargo", &["bench", "build", "check", "clippy", "doc", "fmt", "metadata", "run", "test", "tree"]),
    ("pytest", &[]), ("make", &[]), ("mkdir", &[]), ("touch", &[]), ("cp", &[]), ("mv", &[]),
    ("sed", &[]), ("awk", &[]),
];

/// `Err` carries the refusal, already a [`Verdict::Blocked`].
type Checked = Result<(), Verdict>;

impl Policy {
    /// The built-in policy.
    pub fn builtin() -> Self {
        static BUILTIN: OnceLock<Policy> = OnceLock::new();
        let build = || {
            let rule =
                |(n, p, r): &(&str, &str, &str)| (n.to_string(), blocked::expand(p), r.to_string());
            let blocked: Vec<_> = blocked::ALWAYS_BLOCKED.iter().map(rule).collect();
            let blocked_set =
                RegexSet::new(blocked.iter().map(|r| &r.1)).expect("patterns compile");
            let restricted = RESTRICTED.iter().map(|(p, s)| (p.to_string(), owned(s)));
            Policy {
                safe: programs::safe_names().map(str::to_owned).collect(),
                restricted: restricted.collect(),
                blocked,
                blocked_set,
            }
        };
        BUILTIN.get_or_init(build).clone()
    }

    /// Built-in policy extended (never weakened) by a TOML file.
    pub fn with_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path);
        let text = text.map_err(|source| PolicyError::ReadFile {
            path: path.into(),
            source,
        })?;
        Self::with_toml(&text, path)
    }

    /// The file format has no way to remove anything, so every built-in rule survives it.
    fn with_toml(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let parsed = toml::from_str(text);
        let file: PolicyFile = parsed.map_err(|source| PolicyError::ParseFile {
            path: path.into(),
            source,
        })?;
        let invalid = |problem| PolicyError::InvalidEntry {
            path: path.into(),
            problem,
        };
        let shell_char = |c: char| c.is_whitespace() || "/;&|<>()$`'\"\\".contains(c);
        let restricted = file.restricted.commands.iter();
        let mut names = restricted.flat_map(|(p, subs)| std::iter::once(p).chain(subs));
        let mut names = file.safe.commands.iter().chain(&mut names);
        if let Some(bad) = names.find(|n| n.is_empty() || n.contains(shell_char)) {
            let why = "list programs such as `jq` (no paths, spaces or shell characters) and subcommands as items, e.g. `go = [\"build\"]`";
            return Err(invalid(format!(
                "`{bad}` is not a plain command name; {why}"
            )));
        }
        let mut policy = Self::builtin();
        policy.safe.extend(file.safe.commands);
        for (name, subs) in file.restricted.commands {
            // A union, in which an empty list ("any arguments") absorbs every other.
            match policy.restricted.get_mut(&name) {
                None => {
                    policy.restricted.insert(name, subs);
                }
                Some(known) if known.is_empty() || subs.is_empty() => known.clear(),
                Some(known) => subs.into_iter().for_each(|s| {
                    if !known.contains(&s) {
                        known.push(s)
                    }
                }),
            }
        }
        for BlockedSpec {
            name,
            regex,
            reason,
        } in file.blocked
        {
            let problem = if name.trim().is_empty() || reason.trim().is_empty() {
                Some("needs a non-empty kebab-case `name` and a `reason` the agent will read")
            } else if policy.blocked.iter().any(|r| r.0 == name) {
                Some("has a name that is already taken; rename it")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(invalid(format!("blocked rule `{name}` {problem}")));
            }
            let compiled = Regex::new(&regex).map_err(|source| PolicyError::InvalidRegex {
                path: path.into(),
                name: name.clone(),
                source,
            })?;
            if compiled.is_match("") {
                let why =
                    "so it would block every command; make its `regex` need at least one character";
                return Err(invalid(format!(
                    "blocked rule `{name}` matches the empty string, {why}"
                )));
            }
            policy.blocked.push((name, regex, reason));
        }
        let patterns = policy.blocked.iter().map(|r| &r.1);
        policy.blocked_set = RegexSet::new(patterns).map_err(|e| {
            invalid(format!(
                "the blocked rules are too large to compile together ({e}); simplify some"
            ))
        })?;
        Ok(policy)
    }

    /// The simple commands of `command` as argument lists (program first, assignments
    /// dropped), as this policy's splitter reads them; `None` if it refuses to split. For the
    /// fuzz target, which checks accepted commands against [`hazards::violation`].
    pub fn simple_commands(command: &str) -> Option<Vec<Vec<String>>> {
        let commands = split(command, true).ok()?;
        let argv = |words: Vec<shell::Word>| {
            let words = words.into_iter().map(|w| w.text);
            words
                .skip_while(|w| shell::assigned_name(w).is_some())
                .collect()
        };
        Some(commands.into_iter().map(argv).collect())
    }

    pub fn check(&self, mode: Mode, command: &str) -> Verdict {
        if command.trim().is_empty() {
            return blocked("empty", "the command is empty; propose a shell command");
        }
        let plain = blocked::deobfuscate(command);
        let mut hit = self.blocked_set.matches(command).iter().next();
        if plain != command {
            hit = hit
                .into_iter()
                .chain(self.blocked_set.matches(&plain).iter().next())
                .min();
        }
        if let Some((rule, _, reason)) = hit.map(|i| &self.blocked[i]) {
            return blocked(rule, reason);
        }
        if mode == Mode::Yolo {
            return Verdict::Allowed;
        }
        let checked = split(command, mode == Mode::Restricted).and_then(|commands| {
            if commands.is_empty() {
                return no(
                    "empty",
                    "the command runs no program; propose a shell command",
                );
            }
            commands
                .iter()
                .try_for_each(|words| self.check_simple(mode, words))
        });
        checked.err().unwrap_or(Verdict::Allowed)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyFile {
    safe: SafeSection,
    restricted: RestrictedSection,
    blocked: Vec<BlockedSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SafeSection {
    commands: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RestrictedSection {
    commands: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockedSpec {
    name: String,
    regex: String,
    reason: String,
}

fn blocked(rule: &str, reason: impl Into<String>) -> Verdict {
    Verdict::Blocked {
        rule: rule.to_owned(),
        reason: reason.into(),
    }
}

fn no<T>(rule: &str, reason: impl Into<String>) -> Result<T, Verdict> {
    Err(blocked(rule, reason))
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn joined<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    items
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
