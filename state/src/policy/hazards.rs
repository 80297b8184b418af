//! Every admitted program's ways to start another program or write a file, from an audit of the
//! GNU tools (Debian image) and the busybox applets (offline image), kept apart from the
//! allow-lists on purpose: the allow-lists say what safe mode accepts, this table says what must
//! never get through. Safe mode refuses every entry; restricted mode refuses the `Exec` and
//! `Delete` ones.
//! The tests and the fuzz target check the allow-lists against this table ([`violation`]).
//!
//! Spellings: `-o` is a short option, matched anywhere in a cluster (`-uo`, `-to`); `--output`
//! is a long option, matched by every prefix (`--o`, `--outp=x`), since `getopt_long`, git, npm
//! (nopt) and pip (optparse) all take unambiguous prefixes; `-exec` is a `find`-style word,
//! matched exactly (find never abbreviates). A program key `git log` holds the options after
//! that subcommand, `git` those before any subcommand.
//!
//! Absent because no mode admits them, so the splitter's program check refuses them first:
//! wrappers that start their arguments (`xargs`, `env`, `nice`, `timeout`, `nohup`, `stdbuf`,
//! `command`, `exec`), writers (`tee`, `dd`), pagers and editors (`less` with `LESSOPEN`,
//! `more`, `man`, `vi`), interpreters. git aliases cannot shadow the admitted subcommands (git
//! runs a builtin before an alias of the same name), and the variables that reconfigure
//! programs (`GIT_*`, `PAGER`, `LESSOPEN`, `LD_*`) are outside the variable allow-lists.

/// What an option does that safe mode must never allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Starts another program (a shell, a pager, an editor, a decompressor, a hook).
    Exec,
    /// Writes a file (or the clock).
    Write,
    /// Deletes files: refused in restricted mode too, which has no `rm` either.
    Delete,
}

/// One row: a program (or `git SUBCOMMAND`), what its options do, and why.
#[derive(Debug, Clone, Copy)]
pub struct Hazard {
    pub program: &'static str,
    pub effect: Effect,
    pub options: &'static [&'static str],
    pub why: &'static str,
}

use Effect::{Delete, Exec, Write};

const fn h(
    program: &'static str,
    effect: Effect,
    options: &'static [&'static str],
    why: &'static str,
) -> Hazard {
    Hazard {
        program,
        effect,
        options,
        why,
    }
}

/// git options that start programs wherever they appear after a subcommand.
const GIT_DIFF_EXEC: &[&str] = &["--ext-diff", "--textconv", "--show-signature", "--help"];
const GIT_OUTPUT: &[&str] = &["--output", "--output-directory"];

#[rustfmt::skip]
pub const HAZARDS: &[Hazard] = &[
    h("git", Exec, &["-c", "--config-env", "--exec-path", "-p", "--paginate", "--help"],
      "sets configuration (pagers, diff drivers, aliases, hooks), picks the helper directory, forces a pager or starts `man`"),
    h("git log", Exec, GIT_DIFF_EXEC, "runs external diff or textconv drivers, gpg, or `man`"),
    h("git log", Write, GIT_OUTPUT, "writes the output to a file"),
    h("git show", Exec, GIT_DIFF_EXEC, "runs external diff or textconv drivers, gpg, or `man`"),
    h("git show", Write, GIT_OUTPUT, "writes the output to a file"),
    h("git diff", Exec, GIT_DIFF_EXEC, "runs external diff or textconv drivers or `man`"),
    h("git diff", Write, GIT_OUTPUT, "writes the output to a file"),
    h("git shortlog", Exec, GIT_DIFF_EXEC, "runs external diff or textconv drivers or `man`"),
    h("git shortlog", Write, GIT_OUTPUT, "writes the output to a file"),
    h("git blame", Exec, &["--textconv", "--help"], "runs textconv drivers or `man`"),
    h("git grep", Exec, &["-O", "--open-files-in-pager", "--textconv", "--help"],
      "opens the matches in a pager or editor of the agent's choosing, or runs textconv drivers"),
    h("git describe", Exec, &["--help"], "starts `man`"),
    h("git ls-files", Exec, &["--help"], "starts `man`"),
    h("git rev-parse", Exec, &["--help"], "starts `man`"),
    h("git status", Exec, &["--help"], "starts `man`"),
    h("git branch", Exec, &["--edit-description", "--help"], "starts an editor or `man`"),
    h("git branch", Write, &["-d", "-D", "-m", "-M", "-c", "-C", "-f", "-u", "--delete", "--move", "--copy",
      "--force", "--set-upstream-to", "--unset-upstream", "--track", "--create-reflog"],
      "creates, renames, copies or deletes branches"),
    // restricted mode's git subcommands
    h("git fetch", Exec, &["--upload-pack", "--help"], "runs a program of the agent's choosing as the remote end"),
    h("git pull", Exec, &["--upload-pack", "-s", "--strategy", "-x", "--exec", "--help"],
      "runs a program as the remote end or as a merge strategy"),
    h("git merge", Exec, &["-s", "--strategy", "--help"], "runs `git-merge-STRATEGY` found on the PATH"),
    h("git rebase", Exec, &["-x", "--exec", "-s", "--strategy", "-i", "--interactive", "--help"],
      "runs shell commands after each commit, a merge strategy, or the sequence editor"),
    h("git commit", Exec, &["-e", "--edit", "--help"], "starts an editor"),
    h("git tag", Exec, &["-e", "--edit", "--help"], "starts an editor"),
    h("git add", Exec, &["-e", "--edit", "--help"], "starts an editor"),
    // reading tools
    h("find", Exec, &["-exec", "-execdir", "-ok", "-okdir"], "runs a program on every match"),
    h("find", Delete, &["-delete"], "deletes the matches"),
    h("find", Write, &["-fprint", "-fprint0", "-fprintf", "-fls"], "writes a file"),
    h("sort", Exec, &["--compress-program"], "runs a program to compress temporary files"),
    h("sort", Write, &["-o", "--output", "-T", "--temporary-directory"], "writes the output, or its temporary files, where the agent says"),
    h("rg", Exec, &["--pre", "-z", "--search-zip", "--hostname-bin"], "runs a preprocessor, decompressors or a hostname program"),
    h("tree", Exec, &["-R"], "runs tree again in every directory with `-o 00Tree.html`"),
    h("tree", Write, &["-o"], "writes the output to a file"),
    h("file", Exec, &["-z", "-Z", "--uncompress", "--uncompress-noreport"], "may start external decompressors"),
    h("file", Write, &["-C", "--compile"], "compiles a magic file and writes it"),
    h("diff", Exec, &["-l", "--paginate"], "pipes the output through `pr`"),
    h("date", Write, &["-s", "--set"], "sets the system clock"),
    // `uniq IN OUT` writes OUT: an operand, not an option (see `Operands::AtMost`).
    // restricted mode's project tools
    h("cargo", Exec, &["--config", "-Z"], "sets configuration such as `build.rustc-wrapper` or a target runner: any program"),
    h("npm", Exec, &["--script-shell", "--node-options", "--userconfig", "--globalconfig"],
      "picks the shell or node options scripts run with, or loads another configuration"),
    h("make", Exec, &["--eval", "-E", "--file", "--makefile", "-f"], "evaluates make code or reads a makefile the agent names, e.g. outside the workspace"),
    h("pytest", Exec, &["-p", "--pdbcls"], "loads any importable module as a plugin or debugger"),
    h("python", Exec, &["-c"], "runs code given on the command line"),
    h("python3", Exec, &["-c"], "runs code given on the command line"),
    h("sed", Exec, &["-f", "--file"], "reads a script this policy cannot check (which may use `e` or `w`)"),
    h("sed", Write, &["-i", "--in-place"], "edits the files in place"),
    h("awk", Exec, &["-f", "--file", "-E", "--exec", "-l", "--load", "-i", "--include"],
      "reads a program file or loads an extension this policy cannot check"),
];

/// The hazards of `program` (a name, or `git SUBCOMMAND`).
pub fn of(program: &str) -> impl Iterator<Item = &'static Hazard> + '_ {
    HAZARDS.iter().filter(move |h| h.program == program)
}

/// The first hazard `word` could spell for `program`, in any abbreviation or bundling, with the
/// option it spells. Deliberately generous: `-to` matches `-o` even where `-t` takes `o` as its
/// value, because a program that parses `-t` differently would write a file.
pub fn spelled_by(program: &str, word: &str) -> Option<(&'static Hazard, &'static str)> {
    of(program).find_map(|hazard| {
        let option = hazard.options.iter().find(|o| spells(word, o))?;
        Some((hazard, *option))
    })
}

/// Whether `word` can be read as `option` by some parser.
fn spells(word: &str, option: &str) -> bool {
    if let Some(long) = option.strip_prefix("--") {
        let Some(typed) = word.strip_prefix("--") else {
            return false;
        };
        let name = typed.split_once('=').map_or(typed, |(n, _)| n);
        !name.is_empty() && long.starts_with(name)
    } else if option.len() == 2 {
        let letter = option.as_bytes()[1] as char;
        word.strip_prefix('-')
            .is_some_and(|cluster| !cluster.starts_with('-') && cluster.contains(letter))
    } else {
        word == option
    }
}

/// The independent safety property that tests and the fuzz target check: given an argv safe
/// mode accepted (program first), the first word that spells one of the program's hazards. It
/// reads nothing of the allow-lists. For git it finds the subcommand itself, skipping the
/// global options that take a separate value.
pub fn violation(argv: &[String]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let program = program.rsplit('/').next().unwrap_or(program);
    if program != "git" {
        return args
            .iter()
            .find_map(|w| spelled_by(program, w).map(|(_, o)| format!("`{w}` spells `{o}`")));
    }
    let mut words = args.iter();
    while let Some(w) = words.next() {
        if let Some((_, o)) = spelled_by("git", w) {
            return Some(format!("git global `{w}` spells `{o}`"));
        }
        if matches!(
            w.as_str(),
            "-C" | "-c"
                | "--git-dir"
                | "--work-tree"
                | "--namespace"
                | "--config-env"
                | "--super-prefix"
        ) {
            words.next();
            continue;
        }
        if !w.starts_with('-') {
            let key = format!("git {w}");
            return words.find_map(|a| {
                spelled_by(&key, a).map(|(_, o)| format!("`{key} {a}` spells `{o}`"))
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_cover_abbreviations_and_clusters() {
        for (word, option, hit) in [
            ("--outp=x", "--output", true),
            ("--o", "--output", true),
            ("--output", "--output", true),
            ("--output-indicator-new=x", "--output", false),
            ("--", "--output", false),
            ("-uo", "-o", true),
            ("-to", "-o", true),
            ("--o", "-o", false),
            ("-execdir", "-exec", false),
            ("-exec", "-exec", true),
            ("-O", "-o", false),
        ] {
            assert_eq!(spells(word, option), hit, "{word} vs {option}");
        }
    }

    #[test]
    fn violation_finds_git_subcommands() {
        let argv = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(violation(&argv("git -C d grep -nO x")).is_some());
        assert!(violation(&argv("git --no-pager grep --open-files-in-pag=rm x")).is_some());
        assert!(violation(&argv("git -c core.pager=sh log")).is_some());
        assert!(
            violation(&argv("git log -c")).is_none(),
            "-c after log is a diff format"
        );
        assert!(violation(&argv("/usr/bin/sort --compress-prog=sh")).is_some());
        assert!(violation(&argv("sort -n x")).is_none());
    }

    #[test]
    fn every_row_is_explained_and_well_formed() {
        for h in HAZARDS {
            assert!(!h.why.is_empty() && !h.options.is_empty(), "{h:?}");
            for o in h.options {
                assert!(o.starts_with('-') && o.len() >= 2, "{}: {o}", h.program);
            }
        }
    }
}
