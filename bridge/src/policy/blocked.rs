//! The always-blocked rules: named regexes that refuse a command in every mode, yolo included.

use std::borrow::Cow;

/// Where a command word starts: at the start, after an operator, or after a wrapper such as
/// `env`, `xargs` or `VAR=x`; then an optional directory, so `/usr/bin/sudo` counts.
const CMD: &str = r"(?:^|[;&|(){}`!\n]|\$\()\s*(?:(?:[A-Za-z_][A-Za-z0-9_]*=[^\s;&|]*|env|exec|command|builtin|nohup|time|nice|stdbuf|setsid|xargs|if|then|else|elif|do|while|until|timeout(?:\s+-[^\s;&|]*)*\s+[0-9.]+[smhd]?)\s+(?:-[^\s;&|]*\s+)*)*(?:[^\s;&|()`]*/)?";
const END: &str = r#"(?:$|[\s;&|()`'"])"#;
/// Raw disks and memory; partitions match by prefix (`/dev/sda1`).
const DEV: &str = r"/dev/(?:[shv]d[a-z]|xvd[a-z]|nvme[0-9]|mmcblk[0-9]|md[0-9]|dm-[0-9]|loop[0-9]|nbd[0-9]|sr[0-9]|disk/|mapper/|k?mem@END@|port@END@)";
const SHELL: &str = r"(?:(?:ba|da|z|k|c|tc|a|fi)?sh|python[0-9.]*|perl|ruby|node|php)";
const FETCH: &str = r"(?:[^\s;&|()`]*/)?(?:curl|wget)(?-u:\b)";
/// A function name in a fork bomb: anything the shell accepts, `:` included.
const FN: &str = r#"[^\s(){}|&;<>'"`]+"#;

/// `@NAME@` in the patterns below stands for a fragment above; DEV holds END, so it goes first.
#[rustfmt::skip]
const FRAGMENTS: &[(&str, &str)] = &[("@DEV@", DEV), ("@CMD@", CMD), ("@END@", END), ("@SHELL@", SHELL), ("@FETCH@", FETCH), ("@FN@", FN)];

/// (rule, pattern, reason), most specific first: `curl x | sudo sh` is reported as a download.
#[rustfmt::skip]
pub(super) const ALWAYS_BLOCKED: &[(&str, &str, &str)] = &[
    // No `-r` required: the flag has too many spellings, and `rm /` alone is pointless anyway.
    ("rm-root", r"(?:^|[^A-Za-z0-9_.-])rm(?:\s+[^\s;&|<>()`]+)*?\s+(?:/+(?:\.\.?/*|\*)?|~/*\*?|\$\{?HOME\}?/*\*?)@END@",
     "deletes the root or home directory; name the directory you mean, e.g. `rm -rf ./build`"),
    ("no-preserve-root", r"--no-preserve-root",
     "`--no-preserve-root` exists only to act on `/` itself; drop it and name a specific path"),
    ("block-device-write", r">\|?\s*@DEV@|(?-u:\b)of=@DEV@|(?-u:\b)tee(?:\s+[^\s;&|]+)*?\s+@DEV@",
     "writes to a raw disk or memory device; work with files in the workspace instead"),
    ("disk-format", r"(?-u:\b)(?:mkfs(?:\.[A-Za-z0-9]+)?|mke2fs|mkswap|wipefs|blkdiscard)@END@",
     "formats or wipes a disk; there is no disk to format in the sandbox"),
    ("download-exec", r"@FETCH@(?:.*[^|])?\|\s*(?:(?:sudo|doas|env|exec|command|nohup|time)\s+(?:-[^\s;&|]*\s+)*)*(?:[^\s;&|()`]*/)?@SHELL@@END@",
     "pipes a download into an interpreter, running code nobody reviewed; save it to a file, show it, and run it as a separate command"),
    ("download-exec", r"<\(\s*@FETCH@|(?:^|[^A-Za-z0-9_.-])@SHELL@\s+(?:-[^\s;&|]*\s+)*-[A-Za-z]*c[A-Za-z]*\s+(?:\$\(|`)\s*@FETCH@",
     "runs a download as a script, code nobody reviewed; save it to a file, show it, and run it as a separate command"),
    // `:(){ :|:& };:` or `bomb(){ bomb|bomb& };bomb`: a function whose body starts by piping into
    // a background command. Without backreferences the names cannot be required to match, which
    // only widens the net.
    ("fork-bomb", r"@FN@\s*\(\s*\)\s*\{\s*@FN@\s*\|\s*@FN@\s*&|(?-u:\b)function\s+@FN@\s*(?:\(\s*\)\s*)?\{\s*@FN@\s*\|\s*@FN@\s*&",
     "looks like a fork bomb, which exhausts the process table; not allowed"),
    ("privilege-escalation", r"@CMD@(?:sudo|su|doas|pkexec|run0)@END@",
     "`sudo`, `su` and `doas` are unavailable: the sandbox runs as an unprivileged user by design; run the command without them"),
    ("eval", r"@CMD@eval@END@",
     "`eval` runs a string as code, hiding it from review; write the command out directly"),
];

pub(super) fn expand(pattern: &str) -> String {
    FRAGMENTS
        .iter()
        .fold(pattern.to_owned(), |p, (marker, fragment)| {
            p.replace(marker, fragment)
        })
}

/// The command as the always-blocked rules see it a second time: line continuations joined,
/// `$IFS` turned back into a space, quotes and backslashes dropped (`su''do`, `\sudo`, `"rm"`).
pub(super) fn deobfuscate(command: &str) -> Cow<'_, str> {
    if !command.contains(['\'', '"', '\\', '$']) {
        return Cow::Borrowed(command);
    }
    let joined = command
        .replace("\\\n", "")
        .replace("${IFS}", " ")
        .replace("$IFS", " ");
    Cow::Owned(
        joined
            .chars()
            .filter(|c| !matches!(c, '\'' | '"' | '\\'))
            .collect(),
    )
}
