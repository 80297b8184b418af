//! Safe mode's allow-lists: the read-only programs and, for each, the options it may be given.
//! Only options that read, select or format are listed; everything else is refused by name. An
//! option is listed only where GNU and busybox agree it takes (or does not take) a value, or
//! where a mismatch can only make the program fail. The options that start programs or write
//! files are catalogued separately, in `hazards.rs`, and a test keeps the two apart.

use super::options::{Operands, Spec, Style};

/// Programs that read and print; `cd` only moves the shell, and is in most agents' commands.
#[rustfmt::skip]
pub(super) const SAFE: &[(&str, Spec)] = &[
    ("basename", Spec::getopt("as:z", &[&["multiple", "suffix=", "zero"]])),
    ("cat", Spec::getopt("AbeEnstTuv", &[&["show-all", "number-nonblank", "show-ends", "number",
        "squeeze-blank", "show-tabs", "show-nonprinting"]])),
    ("cd", Spec::getopt("LP", &[]).operands(Operands::AtMost(1))),
    ("cut", Spec::getopt("b:c:d:f:nsz", &[&["bytes=", "characters=", "delimiter=", "fields=",
        "complement", "only-delimited", "output-delimiter=", "zero-terminated"]])),
    ("date", Spec::getopt("d:f:I::r:Ru", &[&["date=", "file=", "iso-8601?", "rfc-email",
        "rfc-3339=", "reference=", "utc", "universal", "debug"]]).operands(Operands::PlusFormat)),
    ("df", Spec::getopt("ahHiklmPTt:x:", &[&["all", "human-readable", "si", "inodes", "local",
        "portability", "print-type", "type=", "exclude-type=", "output?", "total", "block-size="]])),
    ("diff", Spec::getopt("abBcC:dD:eEfF:hiI:nNpqrsS:tTuU:vwW:x:X:y", &[&["brief", "report-identical-files",
        "context?", "unified?", "ed", "normal", "rcs", "side-by-side", "width=", "left-column",
        "suppress-common-lines", "show-c-function", "show-function-line=", "label=",
        "expand-tabs", "initial-tab", "tabsize=", "suppress-blank-empty", "new-file",
        "unidirectional-new-file", "ignore-case", "ignore-tab-expansion",
        "ignore-trailing-space", "ignore-space-change", "ignore-all-space",
        "ignore-blank-lines", "ignore-matching-lines=", "text", "strip-trailing-cr",
        "recursive", "no-dereference", "exclude=", "exclude-from=", "starting-file=",
        "from-file=", "to-file=", "ignore-file-name-case", "no-ignore-file-name-case",
        "minimal", "speed-large-files", "horizon-lines=", "color?", "palette=", "ifdef=",
        "old-group-format=", "new-group-format=", "unchanged-group-format=",
        "changed-group-format=", "line-format=", "old-line-format=", "new-line-format=",
        "unchanged-line-format="]])),
    ("dirname", Spec::getopt("z", &[&["zero"]])),
    ("du", Spec::getopt("0abcd:DhHklLmsSxX:t:B:", &[&["null", "all", "apparent-size", "bytes",
        "total", "max-depth=", "dereference-args", "human-readable", "si", "inodes",
        "dereference", "no-dereference", "count-links", "separate-dirs", "summarize",
        "one-file-system", "exclude=", "exclude-from=", "threshold=", "time?", "time-style=",
        "block-size=", "files0-from="]])),
    ("echo", Spec::getopt("", &[]).style(Style::Text)),
    ("false", Spec::getopt("", &[])),
    ("file", Spec::getopt("0bcdEe:f:F:hiklLm:NnprsSvP:", &[&["brief", "checking-printout",
        "exclude=", "exclude-quiet=", "files-from=", "separator=", "no-dereference",
        "dereference", "mime", "mime-type", "mime-encoding", "keep-going", "list",
        "magic-file=", "no-pad", "no-buffer", "preserve-date", "raw", "special-files",
        "no-sandbox", "extension", "apple", "print0", "parameter="]])),
    ("find", Spec::getopt("", &[]).style(Style::Find)),
    ("grep", GREP), ("egrep", GREP), ("fgrep", GREP),
    ("head", Spec::getopt("c:n:qvz", &[&["bytes=", "lines=", "quiet", "silent", "verbose",
        "zero-terminated"]]).numbers()),
    ("id", Spec::getopt("agGnruzZ", &[&["context", "group", "groups", "name", "real", "user",
        "zero"]])),
    ("ls", Spec::getopt("1aAbBcCdDfFgGhHiI:klLmnNopqQrRsStT:uUvw:xXZ", &[&["all", "almost-all",
        "author", "escape", "block-size=", "ignore-backups", "color?", "colour?", "directory",
        "dired", "classify?", "file-type", "format=", "full-time", "group-directories-first",
        "no-group", "human-readable", "si", "dereference-command-line",
        "dereference-command-line-symlink-to-dir", "hide=", "hyperlink?", "indicator-style=",
        "inode", "ignore=", "kibibytes", "dereference", "numeric-uid-gid", "literal",
        "hide-control-chars", "show-control-chars", "quote-name", "quoting-style=",
        "reverse", "recursive", "size", "sort=", "time=", "time-style=", "tabsize=", "width=",
        "context", "zero"]])),
    ("printf", Spec::getopt("", &[])),
    ("pwd", Spec::getopt("LP", &[]).operands(Operands::AtMost(0))),
    ("realpath", Spec::getopt("eLmPqsz", &[&["canonicalize-existing", "canonicalize-missing",
        "logical", "physical", "quiet", "relative-to=", "relative-base=", "strip",
        "no-symlinks", "zero"]])),
    ("rg", Spec::getopt("0aA:B:cC:e:E:f:FHg:hiIj:lLm:M:noNpPqr:sSt:T:uUvVwxy", &[&["after-context=",
        "before-context=", "context=", "count", "count-matches", "case-sensitive",
        "color=", "colors=", "column", "no-column", "context-separator=", "crlf", "encoding=",
        "regexp=", "file=", "files", "files-with-matches", "files-without-match",
        "fixed-strings", "follow", "glob=", "iglob=", "glob-case-insensitive", "heading",
        "no-heading", "hidden", "no-hidden", "ignore-case", "ignore-file=", "invert-match",
        "json", "line-number", "no-line-number", "line-regexp", "max-columns=",
        "max-columns-preview", "max-count=", "max-depth=", "max-filesize=", "multiline",
        "multiline-dotall", "no-config", "no-ignore", "no-ignore-vcs", "no-ignore-dot",
        "no-ignore-global", "no-ignore-parent", "no-ignore-exclude", "no-ignore-files",
        "no-messages", "no-filename", "with-filename", "null", "null-data", "only-matching",
        "passthru", "pcre2", "pretty", "quiet", "replace=", "smart-case", "sort=", "sortr=",
        "stats", "text", "threads=", "trim", "type=", "type-not=", "type-add=", "type-clear=",
        "type-list", "unrestricted", "vimgrep", "word-regexp", "debug", "trace", "binary",
        "no-binary", "one-file-system", "byte-offset", "engine=", "field-match-separator=",
        "field-context-separator=", "path-separator=", "block-buffered", "line-buffered",
        "auto-hybrid-regex", "no-unicode", "no-require-git", "include-zero", "dfa-size-limit=",
        "regex-size-limit=", "version", "help"]])),
    ("sort", Spec::getopt("bcCdfghik:MnrRsS:t:uVz", &[&["ignore-leading-blanks", "dictionary-order",
        "ignore-case", "general-numeric-sort", "ignore-nonprinting", "month-sort",
        "human-numeric-sort", "numeric-sort", "random-sort", "random-source=", "reverse",
        "sort=", "version-sort", "check?", "debug", "files0-from=", "key=", "merge",
        "stable", "buffer-size=", "field-separator=", "parallel=", "unique",
        "zero-terminated"]])),
    ("stat", Spec::getopt("c:fLt", &[&["dereference", "file-system", "format=", "printf=",
        "terse", "cached="]])),
    ("tail", Spec::getopt("c:fFn:qs:vz", &[&["bytes=", "follow?", "lines=", "pid=", "quiet",
        "silent", "retry", "sleep-interval=", "verbose", "zero-terminated"]]).numbers()),
    ("tr", Spec::getopt("cCdst", &[&["complement", "delete", "squeeze-repeats", "truncate-set1"]])),
    ("tree", Spec::getopt("aACdDfFgilL:nNpPI:qQrstuvxXJUhH:T:", &[&["noreport", "charset=",
        "filelimit=", "dirsfirst", "filesfirst", "gitignore", "prune", "matchdirs", "du",
        "si", "sort=", "timefmt=", "inodes", "device", "ignore-case", "metafirst", "info",
        "noindent", "nolinks", "hintro=", "houtro="]])),
    ("true", Spec::getopt("", &[])),
    ("uname", Spec::getopt("amnoprsvi", &[&["all", "kernel-name", "nodename", "kernel-release",
        "kernel-version", "machine", "processor", "hardware-platform", "operating-system"]])),
    ("uniq", Spec::getopt("cdDf:iRs:uw:z", &[&["count", "repeated", "all-repeated?",
        "skip-fields=", "group?", "ignore-case", "skip-chars=", "unique", "zero-terminated",
        "check-chars="]]).operands(Operands::AtMost(1))),
    ("wc", Spec::getopt("clLmw", &[&["bytes", "chars", "lines", "files0-from=",
        "max-line-length", "words", "total="]])),
    ("which", Spec::getopt("as", &[])),
    ("whoami", Spec::getopt("", &[])),
];

#[rustfmt::skip]
const GREP: Spec = Spec::getopt("aA:bB:cC:d:D:e:EFf:GhHiIlLm:noPqrRsTuUvVwxyzZ", &[&["extended-regexp",
    "fixed-strings", "basic-regexp", "perl-regexp", "regexp=", "file=", "ignore-case",
    "no-ignore-case", "word-regexp", "line-regexp", "null-data", "no-messages", "invert-match",
    "max-count=", "byte-offset", "line-number", "no-line-number", "line-buffered",
    "with-filename", "no-filename", "label=", "only-matching", "quiet", "silent",
    "binary-files=", "text", "directories=", "devices=", "recursive", "dereference-recursive",
    "include=", "exclude=", "exclude-from=", "exclude-dir=", "files-without-match",
    "files-with-matches", "count", "initial-tab", "null", "before-context=", "after-context=",
    "context=", "group-separator=", "no-group-separator", "color?", "colour?", "binary"]])
    .numbers();

/// The allow-list entry of a read-only program.
pub(super) fn safe_spec(program: &str) -> Option<&'static Spec> {
    SAFE.iter().find(|(p, _)| *p == program).map(|(_, s)| s)
}

/// The names of the read-only programs, for messages.
pub(super) fn safe_names() -> impl Iterator<Item = &'static str> {
    SAFE.iter().map(|(p, _)| *p)
}
