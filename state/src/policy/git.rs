//! Safe mode's git allow-lists: the global options before the subcommand, the read-only
//! subcommands, and each one's options. git's global options are compared exactly by git
//! itself; the subcommands use parse-options and the revision parser, which take `--no-NAME`
//! (and, for parse-options, abbreviations, which this policy never accepts).

use super::options::{Spec, Style};

/// Options before the subcommand. `-c`, `--config-env`, `--exec-path` and `-p` are hazards.
#[rustfmt::skip]
pub(super) const GLOBAL: Spec = Spec::getopt("C:P", &[&["no-pager", "no-optional-locks",
    "literal-pathspecs", "glob-pathspecs", "noglob-pathspecs", "icase-pathspecs",
    "no-replace-objects", "git-dir=", "work-tree=", "bare", "version", "html-path", "man-path",
    "info-path", "no-advice"]]);

/// Global options whose value is the next word, so the subcommand comes after it.
pub(super) const GLOBAL_WITH_VALUE: &[&str] = &["-C", "--git-dir", "--work-tree"];

/// Short options of the revision walker and diff machinery, shared by log, show and diff.
const REV_SHORT: &str = "n:puszS:G:L:iEFPgmcM::C::B::DRawbU:WtO:l:X::I:r";

#[rustfmt::skip]
const REV_LONG: &[&str] = &["oneline", "graph", "decorate?", "decorate-refs=",
    "decorate-refs-exclude=", "clear-decorations", "source", "all", "branches?", "tags?",
    "remotes?", "glob=", "exclude=", "author=", "committer=", "grep=", "grep-reflog=", "since=",
    "after=", "until=", "before=", "since-as-filter=", "max-count=", "skip=", "reverse",
    "merges", "no-merges", "min-parents=", "max-parents=", "no-min-parents", "no-max-parents",
    "first-parent", "follow", "format=", "pretty?", "abbrev-commit", "abbrev?", "date=",
    "relative-date", "full-history", "simplify-by-decoration", "simplify-merges",
    "ancestry-path?", "dense", "sparse", "topo-order", "date-order", "author-date-order",
    "left-right", "left-only", "right-only", "cherry", "cherry-pick", "cherry-mark", "boundary",
    "invert-grep", "all-match", "regexp-ignore-case", "extended-regexp", "fixed-strings",
    "perl-regexp", "basic-regexp", "walk-reflogs", "reflog", "full-diff", "log-size", "mailmap",
    "use-mailmap", "encoding=", "expand-tabs?", "notes?", "show-notes?", "parents", "children",
    "no-walk?", "do-walk", "count", "not", "in-commit-order", "show-linear-break?",
    "diff-merges=", "combined-all-paths", "remerge-diff", "cc", "dd", "root", "show-pulls",
    "exclude-first-parent-only", "single-worktree", "standard-notes", "no-standard-notes"];

/// No `text`: it is a prefix of the `--textconv` hazard, and `-a` says the same.
#[rustfmt::skip]
const DIFF_LONG: &[&str] = &["patch", "no-patch", "raw", "patch-with-raw", "patch-with-stat",
    "stat?", "numstat", "shortstat", "dirstat?", "cumulative", "dirstat-by-file?", "summary",
    "name-only", "name-status", "compact-summary", "check", "full-index", "binary", "color?",
    "color-moved?", "color-moved-ws=", "color-words?", "word-diff?", "word-diff-regex=",
    "ws-error-highlight=", "ignore-space-change", "ignore-all-space", "ignore-space-at-eol",
    "ignore-blank-lines", "ignore-cr-at-eol", "ignore-matching-lines=", "ignore-submodules?",
    "unified=", "inter-hunk-context=", "function-context", "minimal", "patience", "histogram",
    "diff-algorithm=", "anchored=", "indent-heuristic", "relative?", "find-renames?",
    "find-copies?", "find-copies-harder", "no-renames", "rename-empty", "break-rewrites?",
    "irreversible-delete", "diff-filter=", "pickaxe-all", "pickaxe-regex", "find-object=",
    "src-prefix=", "dst-prefix=", "no-prefix", "default-prefix", "line-prefix=",
    "ita-invisible-in-index", "ita-visible-in-index", "no-ext-diff", "no-textconv",
    "submodule?", "output-indicator-new=", "output-indicator-old=",
    "output-indicator-context=", "exit-code", "quiet", "stat-width=", "stat-name-width=",
    "stat-graph-width=", "stat-count=", "skip-to=", "rotate-to="];

#[rustfmt::skip]
pub(super) const SUBCOMMANDS: &[(&str, Spec)] = &[
    ("blame", Spec::getopt("L:ltsS:pcfnewM::C::b", &[&["porcelain", "line-porcelain",
        "incremental", "root", "show-stats", "date=", "show-name", "show-number", "show-email",
        "abbrev?", "reverse=", "first-parent", "encoding=", "contents=", "ignore-rev=",
        "ignore-revs-file=", "color-lines", "color-by-age", "minimal", "score-debug",
        "no-progress"]]).style(Style::Git)),
    ("branch", Spec::getopt("avrl", &[&["all", "remotes", "list", "verbose", "show-current",
        "contains?", "no-contains?", "merged?", "no-merged?", "points-at=", "sort=", "format=",
        "color?", "column?", "abbrev=", "ignore-case", "omit-empty"]]).style(Style::Git)),
    ("describe", Spec::getopt("", &[&["tags", "all", "long", "abbrev=", "always", "dirty?",
        "broken?", "exact-match", "match=", "exclude=", "contains", "first-parent",
        "candidates=", "debug"]]).style(Style::Git)),
    ("diff", Spec::getopt(REV_SHORT, &[DIFF_LONG, &["cached", "staged", "merge-base", "no-index",
        "base", "ours", "theirs"]]).style(Style::Git).numbers()),
    ("grep", Spec::getopt("aA:B:C:cEe:f:FGhHiIlLm:noPpqrvwWz", &[&["cached", "untracked",
        "no-index", "exclude-standard", "recurse-submodules", "invert-match", "ignore-case",
        "word-regexp", "max-depth=", "recursive", "full-name", "extended-regexp",
        "basic-regexp", "fixed-strings", "perl-regexp", "line-number", "column",
        "files-with-matches", "name-only", "files-without-match", "null", "only-matching",
        "count", "color?", "break", "heading", "show-function", "function-context", "context=",
        "after-context=", "before-context=", "threads=", "quiet", "all-match", "and", "or",
        "not", "max-count=", "no-textconv"]]).style(Style::Git).numbers()),
    ("log", Spec::getopt(REV_SHORT, &[REV_LONG, DIFF_LONG]).style(Style::Git).numbers()),
    ("ls-files", Spec::getopt("cdmoisukztvfx:X:", &[&["cached", "deleted", "modified", "others",
        "ignored", "stage", "killed", "unmerged", "resolve-undo", "directory",
        "empty-directory", "eol", "deduplicate", "exclude=", "exclude-from=",
        "exclude-per-directory=", "exclude-standard", "error-unmatch", "with-tree=",
        "full-name", "recurse-submodules", "abbrev?", "debug", "format=", "sparse"]])
        .style(Style::Git)),
    ("rev-parse", Spec::getopt("q", &[&["abbrev-ref?", "short?", "verify", "quiet",
        "show-toplevel", "git-dir", "absolute-git-dir", "git-common-dir",
        "is-inside-work-tree", "is-inside-git-dir", "is-bare-repository",
        "is-shallow-repository", "show-prefix", "show-cdup", "symbolic", "symbolic-full-name",
        "all", "branches?", "tags?", "remotes?", "glob=", "exclude=",
        "show-superproject-working-tree", "shared-index-path", "default=", "sq", "not",
        "since=", "until=", "local-env-vars", "path-format=", "git-path=",
        "show-object-format?", "show-ref-format", "flags", "no-flags", "revs-only", "no-revs",
        "resolve-git-dir=", "prefix=", "disambiguate=", "sq-quote"]])),
    ("shortlog", Spec::getopt("nsecw::", &[REV_LONG, &["numbered", "summary", "email",
        "group=", "committer"]]).style(Style::Git).numbers()),
    ("show", Spec::getopt(REV_SHORT, &[REV_LONG, DIFF_LONG]).style(Style::Git).numbers()),
    ("status", Spec::getopt("sbvu::z", &[&["short", "branch", "show-stash", "porcelain?", "long",
        "verbose", "untracked-files?", "ignored?", "ignore-submodules?", "column?",
        "ahead-behind", "renames", "find-renames?", "null"]]).style(Style::Git)),
];

pub(super) fn subcommand_spec(sub: &str) -> Option<&'static Spec> {
    SUBCOMMANDS.iter().find(|(s, _)| *s == sub).map(|(_, s)| s)
}

pub(super) fn subcommand_names() -> impl Iterator<Item = &'static str> {
    SUBCOMMANDS.iter().map(|(s, _)| *s)
}

/// Index of the subcommand among git's arguments: the first word that is not a global option
/// or the value of one.
pub(super) fn subcommand_index(args: &[&str]) -> Option<usize> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if !a.starts_with('-') {
            return Some(i);
        }
        // `-c`, `--config-env` and friends take a value too, but are refused before this.
        let takes_value = GLOBAL_WITH_VALUE.contains(a)
            || matches!(*a, "-c" | "--config-env" | "--namespace" | "--super-prefix");
        i += if takes_value { 2 } else { 1 };
    }
    None
}
