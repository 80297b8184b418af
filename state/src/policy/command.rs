//! Checks one simple command (assignments, program, arguments) in safe or restricted mode.
//!
//! Safe mode, in order: every assignment is allow-listed; the program is a read-only one; no
//! argument the shell could turn into an option (`$X`, `*`) reaches a program with hazards;
//! no word spells one of the program's hazards (`hazards.rs`) in any abbreviation or cluster;
//! and the arguments parse, as the program parses them, into allow-listed options only.
//! Restricted mode accepts whatever safe mode accepts, and otherwise its listed programs and
//! subcommands, minus every `Exec` hazard and any sed or awk script that runs or writes.

use super::hazards::{self, Effect, Hazard};
use super::options::{self, Misfit, Spec};
use super::shell::{Word, assigned_name};
use super::{Checked, Mode, Policy, Verdict, git, joined, no, programs, scripts};

/// Variables safe mode lets a command set: locale, time zone and width, which change only how
/// text is printed. Every other one is refused: `GIT_*` (`GIT_TRACE=FILE` writes,
/// `GIT_PAGER` runs), `PAGER`, `LD_*`, `PATH`, `LESSOPEN`, `BASH_ENV`, ….
const SAFE_VARIABLES: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "TZ",
    "COLUMNS",
    "NO_COLOR",
];
/// Restricted mode adds switches of the project tools it runs; none of them names a program
/// (unlike `RUSTC_WRAPPER`, `RUSTFLAGS`, `NODE_OPTIONS`, `PYTHONSTARTUP`).
const RESTRICTED_VARIABLES: &[&str] = &[
    "RUST_BACKTRACE",
    "RUST_LOG",
    "RUST_TEST_THREADS",
    "RUST_MIN_STACK",
    "CARGO_TERM_COLOR",
    "CARGO_INCREMENTAL",
    "CI",
    "NODE_ENV",
    "FORCE_COLOR",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PYTHONHASHSEED",
];

/// The hazards restricted mode refuses; it allows writes, which the container confines.
const RESTRICTED_REFUSES: &[Effect] = &[Effect::Exec, Effect::Delete];

/// A program named by path must live here; `./ls` could be anything.
const SYSTEM_DIRS: &[&str] = &["/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin"];

impl Policy {
    pub(super) fn check_simple(&self, mode: Mode, words: &[Word]) -> Checked {
        let assignments = words
            .iter()
            .take_while(|w| assigned_name(&w.text).is_some());
        let assignments: Vec<&Word> = assignments.collect();
        assignments
            .iter()
            .try_for_each(|w| check_assignment(mode, w))?;
        let Some((first, args)) = words[assignments.len()..].split_first() else {
            return Ok(()); // only assignments: nothing runs
        };
        let prog = program_name(first)?;
        let safe = self.check_safe(prog, args);
        match (mode, safe) {
            (Mode::Restricted, Err(_)) => self.check_restricted(prog, args),
            (_, safe) => safe,
        }
    }

    fn check_safe(&self, prog: &str, args: &[Word]) -> Checked {
        if prog == "git" {
            return check_git(args);
        }
        if !self.safe.contains(prog) {
            let allowed = joined(&self.safe);
            return no(
                "not-read-only",
                format!("`{prog}` is not a read-only command; safe mode allows: {allowed}"),
            );
        }
        check_hazards(prog, args, None)?;
        // A program an operator's policy file adds has no option list: the operator vouches,
        // though a sed or awk script that runs or writes is still refused.
        let Some(spec) = programs::safe_spec(prog) else {
            return check_project_tool(prog, args);
        };
        check_options(Mode::Safe, prog, spec, args).map(drop)
    }

    fn check_restricted(&self, prog: &str, args: &[Word]) -> Checked {
        let python = matches!(prog, "python" | "python3");
        let pytest_module =
            matches!(args, [m, p, ..] if m.text == "-m" && p.text == "pytest" && !p.opaque);
        if python && pytest_module {
            return check_hazards("pytest", &args[2..], Some(RESTRICTED_REFUSES));
        }
        let listed = self.restricted.get(prog);
        if listed.is_none() && !self.safe.contains(prog) && prog != "git" {
            let why = match python {
                true => format!("`{prog}` runs only as `{prog} -m pytest …` in restricted mode"),
                false => format!(
                    "`{prog}` is not allowed in restricted mode, which allows the safe-mode commands plus {} and `python3 -m pytest`",
                    joined(self.restricted.keys())
                ),
            };
            return no(
                "not-allowed",
                format!("{why}; anything else needs yolo mode"),
            );
        }
        let has_hazards = hazards::of(prog).next().is_some();
        if let Some(w) = args.iter().find(|w| has_hazards && w.may_become_option()) {
            return Err(expansion(prog, w));
        }
        // git: global options, then the subcommand's own; others: all arguments.
        let (sub, key, rest) = if prog == "git" {
            let texts: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
            let Some(i) = git::subcommand_index(&texts) else {
                return check_hazards("git", args, Some(RESTRICTED_REFUSES));
            };
            check_hazards("git", &args[..i], Some(RESTRICTED_REFUSES))?;
            (
                Some(&args[i]),
                format!("git {}", args[i].text),
                &args[i + 1..],
            )
        } else {
            let sub = args.iter().find(|w| !w.text.starts_with(['-', '+']));
            (sub, prog.to_owned(), args)
        };
        check_hazards(&key, rest, Some(RESTRICTED_REFUSES))?;
        let subs = listed.map(Vec::as_slice).unwrap_or_default();
        match sub {
            // No subcommand at all is fine: `cargo --version`.
            Some(w) if !subs.is_empty() && (w.opaque || !subs.contains(&w.text)) => {
                let why = format!("`{prog}` allows: {}", subs.join(", "));
                let what = format!("`{prog} {}` is not allowed in restricted mode", w.text);
                return no("subcommand-not-allowed", format!("{what}; {why}"));
            }
            _ => {}
        }
        check_project_tool(prog, args)
    }
}

fn check_assignment(mode: Mode, word: &Word) -> Checked {
    let (name, value) = word.text.split_once('=').expect("an assignment");
    let restricted = mode == Mode::Restricted && RESTRICTED_VARIABLES.contains(&name);
    if !SAFE_VARIABLES.contains(&name) && !restricted {
        let mut allowed = SAFE_VARIABLES.to_vec();
        if mode == Mode::Restricted {
            allowed.extend(RESTRICTED_VARIABLES);
        }
        let why = "other variables can make programs load or run other programs or write files (`GIT_TRACE`, `PAGER`, `LD_PRELOAD`)";
        return no(
            "variable-not-allowed",
            format!(
                "setting `{name}` is not allowed in {mode} mode: {why}; leave it out (allowed: {})",
                allowed.join(", ")
            ),
        );
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.@+-,:=".contains(c);
    // A zone name such as `Europe/Paris` names a file under the zone directory; a leading `/`
    // or a `..` would name any file.
    let zone = name == "TZ" && !value.starts_with(['/', ':']) && !value.contains("..");
    let plain = value.chars().all(|c| plain(c) || (zone && c == '/'));
    if word.opaque || !plain {
        return no(
            "variable-not-allowed",
            format!(
                "`{name}` may be set only to a plain word such as `C` or `en_US.UTF-8` (no `/`, spaces or expansions); write the value out"
            ),
        );
    }
    Ok(())
}

fn program_name(word: &Word) -> Result<&str, Verdict> {
    let text = word.text.as_str();
    if word.opaque {
        let why = "so this policy cannot tell what runs; write the name out";
        return no(
            "expansion",
            format!("the program name `{text}` is expanded by the shell, {why}"),
        );
    }
    match text.rsplit_once('/') {
        None => Ok(text),
        // Restricted mode promises the listed programs, not a workspace file named like one.
        Some((dir, base)) if SYSTEM_DIRS.contains(&dir) => Ok(base),
        Some(_) => {
            let why = "runs a file outside the system directories, not the system tool";
            no(
                "program-path",
                format!("`{text}` {why}; write the bare name"),
            )
        }
    }
}

fn check_git(args: &[Word]) -> Checked {
    let texts: Vec<&str> = args.iter().map(|w| w.text.as_str()).collect();
    let sub = git::subcommand_index(&texts);
    let (global, rest) = args.split_at(sub.unwrap_or(args.len()));
    check_hazards("git", global, None)?;
    check_options(Mode::Safe, "git", &git::GLOBAL, global)?;
    let Some((sub, rest)) = rest.split_first() else {
        return Ok(()); // `git --version`
    };
    let names = || git::subcommand_names().collect::<Vec<_>>().join(", ");
    let Some(spec) = git::subcommand_spec(&sub.text).filter(|_| !sub.opaque) else {
        return no(
            "not-read-only",
            format!(
                "`git {}` is not a read-only git command; safe mode allows git {}",
                sub.text,
                names()
            ),
        );
    };
    let key = format!("git {}", sub.text);
    check_hazards(&key, rest, None)?;
    if let Some(w) = rest.iter().find(|w| w.text.contains("%G")) {
        let why = "`%G` placeholders verify signatures by running gpg";
        return no(
            "dangerous-option",
            format!("`{key}` argument `{}`: {why}; leave them out", w.text),
        );
    }
    let parsed = check_options(Mode::Safe, &key, spec, rest)?;
    let lists = parsed.iter().any(
        |a| matches!(a, options::Arg::Option { name, .. } if name == "--list" || name == "-l"),
    );
    let operand = parsed.iter().any(|a| matches!(a, options::Arg::Operand(_)));
    if sub.text == "branch" && operand && !lists {
        let why = "creates a branch; safe mode allows `git branch` only to list (add `--list` to match patterns)";
        return no(
            "not-read-only",
            format!("`git branch` with a branch name {why}"),
        );
    }
    Ok(())
}

/// Refuses words the shell may turn into options for a program with hazards, then any word
/// that spells a hazard (all of them, or only `only`'s).
fn check_hazards(key: &str, args: &[Word], only: Option<&[Effect]>) -> Checked {
    let relevant = |h: &&Hazard| only.is_none_or(|e| e.contains(&h.effect));
    if hazards::of(key).find(relevant).is_none() {
        return Ok(());
    }
    if let Some(w) = args.iter().find(|w| w.may_become_option()) {
        return Err(expansion(key, w));
    }
    for w in args {
        let Some((hazard, option)) = hazards::spelled_by(key, &w.text) else {
            continue;
        };
        if !relevant(&hazard) {
            continue;
        }
        let (does, mode) = match hazard.effect {
            Effect::Exec => ("runs another program", "safe or restricted mode"),
            Effect::Delete => ("deletes files", "safe or restricted mode"),
            Effect::Write => ("writes files", "safe mode, which is read-only"),
        };
        let same = if w.text.split('=').next() == Some(option) {
            String::new()
        } else {
            format!(" (read as `{option}`)")
        };
        return no(
            "dangerous-option",
            format!(
                "`{key}` argument `{}`{same} {does}: it {}; that is not allowed in {mode}",
                w.text, hazard.why
            ),
        );
    }
    Ok(())
}

fn check_options(
    mode: Mode,
    key: &str,
    spec: &Spec,
    args: &[Word],
) -> Result<Vec<options::Arg>, Verdict> {
    let misfit = match options::parse(spec, args) {
        Ok(parsed) => return Ok(parsed),
        Err(misfit) => misfit,
    };
    let wider = match mode {
        Mode::Safe => "ask for restricted or yolo mode",
        _ => "ask for yolo mode",
    };
    let next = format!(
        "write it out in full if it is one of these, or leave it out; other options need you to {wider}"
    );
    let reason = match misfit {
        Misfit::Unknown {
            word,
            option,
            could_be,
        } if !could_be.is_empty() => format!(
            "`{key}` option `{option}` (in `{word}`) is an abbreviation, which this policy does not accept: programs differ in what it stands for; it could be {}; {next}",
            could_be.join(", ")
        ),
        Misfit::Unknown { word, option, .. } => format!(
            "`{key}` option `{option}` (in `{word}`) is not one {mode} mode allows for `{key}`, which accepts only options it knows to read, select or format; leave it out, or {wider}"
        ),
        Misfit::MissingValue { option } => {
            format!("`{key}` option `{option}` needs a value; add it")
        }
        Misfit::UnexpectedValue { option } => {
            format!("`{key}` option `{option}` takes no value; drop the `=…`")
        }
        Misfit::TooManyOperands { max } => format!(
            "`{key}` takes at most {max} operand(s) in {mode} mode (a second `uniq` operand is a file it writes); give fewer and read the output"
        ),
        Misfit::BadOperand { word, why } => format!("`{key} {word}` {why}"),
    };
    no("option-not-allowed", reason)
}

fn expansion(key: &str, w: &Word) -> Verdict {
    let why = "so this policy cannot tell whether it becomes an option that runs a program or writes a file; write it out, or start a glob with `./`";
    let what = format!("`{key}` argument `{}` is expanded by the shell", w.text);
    super::blocked(
        "expansion",
        format!("{what} (variable, glob or braces), {why}"),
    )
}

/// Restricted mode's checks of the project tools' arguments: sed and awk scripts, sed's
/// in-place suffix, make's variable assignments.
fn check_project_tool(prog: &str, args: &[Word]) -> Checked {
    let refuse = |why: String| {
        no(
            "dangerous-option",
            format!("`{prog}`: {why}; write the command without it, or ask for yolo mode"),
        )
    };
    match prog {
        "sed" => {
            let spec = Spec::getopt(
                "nrsuzEe:i::l:",
                &[&[
                    "quiet",
                    "silent",
                    "expression=",
                    "in-place?",
                    "line-length=",
                    "null-data",
                    "zero-terminated",
                    "regexp-extended",
                    "separate",
                    "unbuffered",
                    "posix",
                    "debug",
                    "sandbox",
                    "follow-symlinks",
                ]],
            );
            let parsed = check_options(Mode::Restricted, "sed", &spec, args)?;
            let mut expressions = Vec::new();
            let mut operands = Vec::new();
            for arg in &parsed {
                match arg {
                    options::Arg::Option {
                        name,
                        value: Some(v),
                    } if name == "-e" || name == "--expression" => {
                        expressions.push(v.clone());
                    }
                    options::Arg::Option {
                        name,
                        value: Some(v),
                    } if (name == "-i" || name == "--in-place") && v.contains('/') => {
                        return refuse(format!(
                            "the in-place suffix `{v}` puts backups in another directory"
                        ));
                    }
                    options::Arg::Operand(o) => operands.push(o.clone()),
                    _ => {}
                }
            }
            // Without `-e`, the first operand is the script.
            let scripts = match expressions.is_empty() {
                true => operands.into_iter().take(1).collect(),
                false => expressions,
            };
            match scripts.iter().find_map(|s| scripts::sed_refusal(s)) {
                Some(why) => refuse(why),
                None => Ok(()),
            }
        }
        "awk" => {
            let spec = Spec::getopt("F:v:", &[&["field-separator=", "assign="]]);
            let parsed = check_options(Mode::Restricted, "awk", &spec, args)?;
            let program = parsed.iter().find_map(|a| match a {
                options::Arg::Operand(o) => Some(o),
                _ => None,
            });
            match program.and_then(|p| scripts::awk_refusal(p)) {
                Some(why) => refuse(why),
                None => Ok(()),
            }
        }
        "make" => {
            let assignment = args.iter().find(|w| {
                w.text.split_once('=').is_some_and(|(name, value)| {
                    value.contains('$')
                        || matches!(
                            name.trim_end_matches([':', '+', '?']),
                            "SHELL" | ".SHELLFLAGS" | "MAKEFLAGS" | "MAKE" | "MAKEFILES"
                        )
                })
            });
            match assignment {
                Some(w) => refuse(format!(
                    "the variable assignment `{}` can run commands",
                    w.text
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}
