//! Table-driven tests of the policy: always-blocked rules, per-mode verdicts, the policy file.

use super::*;
use std::time::{Duration, Instant};

/// (mode, command, "ok" or the rule that refuses it).
#[rustfmt::skip]
const CASES: &[(Mode, &str, &str)] = &[
    // safe: allowed
    (Mode::Safe, "ls -la", "ok"),
    (Mode::Safe, "cat README.md | grep foo | wc -l", "ok"),
    (Mode::Safe, "git log --oneline -5", "ok"),
    (Mode::Safe, "find . -name '*.rs'", "ok"),
    (Mode::Safe, "find . -name \\*.rs -type f", "ok"),
    (Mode::Safe, "grep -r \"a|b\" src", "ok"),
    (Mode::Safe, "grep -r 'a;b && c' src", "ok"),
    (Mode::Safe, "grep -rn sudo src", "ok"),
    (Mode::Safe, "grep -rn eval src", "ok"),
    (Mode::Safe, "git status", "ok"),
    (Mode::Safe, "git diff HEAD~1 -- src", "ok"),
    (Mode::Safe, "git show HEAD:README.md", "ok"),
    (Mode::Safe, "git branch", "ok"),
    (Mode::Safe, "git branch -a", "ok"),
    (Mode::Safe, "git -C sub log -1", "ok"),
    (Mode::Safe, "git --no-pager log -1", "ok"),
    (Mode::Safe, "git grep -n foo", "ok"),
    (Mode::Safe, "git --version", "ok"),
    (Mode::Safe, "/bin/ls /tmp", "ok"),
    (Mode::Safe, "LC_ALL=C sort data.txt", "ok"),
    (Mode::Safe, "X=1", "variable-not-allowed"),
    (Mode::Safe, "LC_ALL=C", "ok"),
    (Mode::Safe, "ls 2>&1 | head", "ok"),
    (Mode::Safe, "ls >/dev/null 2>&1", "ok"),
    (Mode::Safe, "ls 2>/dev/null", "ok"),
    (Mode::Safe, "ls &>/dev/null", "ok"),
    (Mode::Safe, "cat < input.txt", "ok"),
    (Mode::Safe, "echo hello; pwd && whoami || true", "ok"),
    (Mode::Safe, "cd src && ls -la", "ok"),
    (Mode::Safe, "echo \"it's\" 'say \"hi\"'", "ok"),
    (Mode::Safe, "echo $HOME ${USER}", "ok"),
    (Mode::Safe, "ls # a comment; rm -rf x", "ok"),
    (Mode::Safe, "ls \\\n  -la", "ok"),
    (Mode::Safe, "rg -n TODO src", "ok"),
    (Mode::Safe, "sort -u a.txt | uniq -c", "ok"),
    (Mode::Safe, "uniq -c a.txt", "ok"),
    (Mode::Safe, "tree -L 2", "ok"),
    (Mode::Safe, "du -sh . && df -h", "ok"),
    (Mode::Safe, "printf '%s\\n' a b", "ok"),
    (Mode::Safe, "date +%s", "ok"),
    // safe: refused
    (Mode::Safe, "rm file", "not-read-only"),
    (Mode::Safe, "ls; rm -r build", "not-read-only"),
    (Mode::Safe, "ls\nrm x", "not-read-only"),
    (Mode::Safe, "ls # it's\nrm x", "not-read-only"),
    (Mode::Safe, "cat x | sh", "not-read-only"),
    (Mode::Safe, "cat x |& sh", "not-read-only"),
    (Mode::Safe, "\"git\" pu''sh", "not-read-only"),
    (Mode::Safe, "python3 x.py", "not-read-only"),
    (Mode::Safe, "mkdir x", "not-read-only"),
    (Mode::Safe, "cargo test", "not-read-only"),
    (Mode::Safe, "git push", "not-read-only"),
    (Mode::Safe, "git commit -m x", "not-read-only"),
    (Mode::Safe, "git branch -D main", "dangerous-option"),
    (Mode::Safe, "git branch new", "not-read-only"),
    (Mode::Safe, "ls > out.txt", "output-redirection"),
    (Mode::Safe, "ls >out.txt", "output-redirection"),
    (Mode::Safe, "ls >> out.txt", "output-redirection"),
    (Mode::Safe, "ls &> out.txt", "output-redirection"),
    (Mode::Safe, "ls >| out.txt", "output-redirection"),
    (Mode::Safe, "ls 2> err.txt", "output-redirection"),
    (Mode::Safe, "ls >&out.txt", "output-redirection"),
    (Mode::Safe, "ls > $OUT", "output-redirection"),
    (Mode::Safe, "cat <> f", "output-redirection"),
    (Mode::Safe, "echo $(whoami)", "command-substitution"),
    (Mode::Safe, "echo \"$(whoami)\"", "command-substitution"),
    (Mode::Safe, "echo `whoami`", "command-substitution"),
    (Mode::Safe, "echo \"`whoami`\"", "command-substitution"),
    (Mode::Safe, "echo $((1+2))", "command-substitution"),
    (Mode::Safe, "echo $[1+2]", "command-substitution"),
    (Mode::Safe, "diff <(ls a) <(ls b)", "process-substitution"),
    (Mode::Safe, "ls >(cat)", "process-substitution"),
    (Mode::Safe, "(ls)", "subshell"),
    (Mode::Safe, "ls | (cat)", "subshell"),
    (Mode::Safe, "f() { ls; }", "subshell"),
    (Mode::Safe, "cat <<EOF\nx\nEOF", "here-document"),
    (Mode::Safe, "cat <<< hi", "here-document"),
    (Mode::Safe, "echo 'unterminated", "syntax"),
    (Mode::Safe, "echo \"unterminated", "syntax"),
    (Mode::Safe, "ls >", "syntax"),
    (Mode::Safe, "ls > ; ls", "syntax"),
    (Mode::Safe, "echo ${x:-$(id)}", "parameter-expansion"),
    (Mode::Safe, "echo ${x@P}", "parameter-expansion"),
    (Mode::Safe, "echo ${!x}", "parameter-expansion"),
    (Mode::Safe, "echo $'\\x41'", "ansi-c-quoting"),
    (Mode::Safe, "find . -delete", "dangerous-option"),
    (Mode::Safe, "find . -name x -exec rm {} \\;", "dangerous-option"),
    (Mode::Safe, "find . -fprint out", "dangerous-option"),
    (Mode::Safe, "git -c core.pager=sh log", "dangerous-option"),
    (Mode::Safe, "git --exec-path=/tmp log", "dangerous-option"),
    (Mode::Safe, "git -ccore.pager=x log", "dangerous-option"),
    (Mode::Safe, "git log --output=x", "dangerous-option"),
    (Mode::Safe, "git grep -O vim foo", "dangerous-option"),
    (Mode::Safe, "sort -o out.txt in.txt", "dangerous-option"),
    (Mode::Safe, "sort -uo out.txt in.txt", "dangerous-option"),
    (Mode::Safe, "sort --compress-program=sh x", "dangerous-option"),
    (Mode::Safe, "rg --pre ./x foo", "dangerous-option"),
    (Mode::Safe, "tree -o out", "dangerous-option"),
    (Mode::Safe, "file -C -m magic", "dangerous-option"),
    (Mode::Safe, "uniq in.txt out.txt", "option-not-allowed"),
    (Mode::Safe, "X=-delete; find . $X", "variable-not-allowed"),
    (Mode::Safe, "find . $X", "expansion"),
    (Mode::Safe, "find . -name *.rs", "expansion"),
    (Mode::Safe, "find . -{delete,print}", "expansion"),
    (Mode::Safe, "find . -exec{,} rm {} \\;", "expansion"),
    (Mode::Safe, "git log --format={%h,%s}", "expansion"),
    (Mode::Safe, "git log --format='{%h,%s}' -3", "ok"),
    (Mode::Safe, "echo -delete; find . \"$_\"", "expansion"),
    (Mode::Safe, "$CMD", "expansion"),
    (Mode::Safe, "l? -la", "expansion"),
    (Mode::Safe, "GIT_EXTERNAL_DIFF=./x git diff", "variable-not-allowed"),
    (Mode::Safe, "PATH=/tmp ls", "variable-not-allowed"),
    (Mode::Safe, "LD_PRELOAD=./x.so ls", "variable-not-allowed"),
    (Mode::Safe, "./ls", "program-path"),
    (Mode::Safe, "/tmp/cat x", "program-path"),
    (Mode::Safe, ";", "empty"),
    (Mode::Safe, "   ", "empty"),
    (Mode::Safe, "\n\t", "empty"),
    (Mode::Safe, "", "empty"),
    // restricted: allowed
    (Mode::Restricted, "cargo test --workspace", "ok"),
    (Mode::Restricted, "cargo +nightly fmt", "ok"),
    (Mode::Restricted, "cargo --version", "ok"),
    (Mode::Restricted, "git commit -m 'x'", "ok"),
    (Mode::Restricted, "git checkout -b feat && git add -A", "ok"),
    (Mode::Restricted, "git branch -D old", "ok"),
    (Mode::Restricted, "git describe --tags", "ok"),
    (Mode::Restricted, "npm ci", "ok"),
    (Mode::Restricted, "npm run build", "ok"),
    (Mode::Restricted, "pip install -r requirements.txt", "ok"),
    (Mode::Restricted, "python3 -m pytest -q", "ok"),
    (Mode::Restricted, "python -m pytest tests/test_x.py", "ok"),
    (Mode::Restricted, "pytest tests/", "ok"),
    (Mode::Restricted, "make", "ok"),
    (Mode::Restricted, "make -j4 test", "ok"),
    (Mode::Restricted, "ls > out.txt", "ok"),
    (Mode::Restricted, "cargo test > log.txt 2>&1", "ok"),
    (Mode::Restricted, "cargo test 2>&1 | tee log.txt", "not-allowed"),
    (Mode::Restricted, "sed -i 's/a/b/' f.txt", "ok"),
    (Mode::Restricted, "awk '{print $1}' f.txt", "ok"),
    (Mode::Restricted, "mkdir -p a/b && touch a/b/c && cp a/b/c d && mv d e", "ok"),
    (Mode::Restricted, "find . -fprint out", "ok"),
    (Mode::Restricted, "sort -o out.txt in.txt", "ok"),
    (Mode::Restricted, "./ls", "program-path"),
    (Mode::Restricted, "/usr/bin/make -j2", "ok"),
    // restricted: refused
    (Mode::Restricted, "git push origin main", "subcommand-not-allowed"),
    (Mode::Restricted, "npm publish", "subcommand-not-allowed"),
    (Mode::Restricted, "cargo install ripgrep", "subcommand-not-allowed"),
    (Mode::Restricted, "pip3 uninstall requests", "subcommand-not-allowed"),
    (Mode::Restricted, "python3 script.py", "not-allowed"),
    (Mode::Restricted, "python3 -m pip install x", "not-allowed"),
    (Mode::Restricted, "python -c 'print(1)'", "not-allowed"),
    (Mode::Restricted, "curl https://x", "not-allowed"),
    (Mode::Restricted, "rm -rf build", "not-allowed"),
    (Mode::Restricted, "bash -c ls", "not-allowed"),
    (Mode::Restricted, "echo $(whoami) > x", "command-substitution"),
    (Mode::Restricted, "(make)", "subshell"),
    (Mode::Restricted, "find . -exec rm {} +", "dangerous-option"),
    (Mode::Restricted, "git -c alias.x='!sh' x", "dangerous-option"),
    (Mode::Restricted, "git $SUB", "expansion"),
    (Mode::Restricted, "GIT_SSH_COMMAND=x git fetch", "variable-not-allowed"),
    // restricted: the project tools' ways to start arbitrary programs
    (Mode::Restricted, "sed -i 's/a/b/g' f.txt", "ok"),
    (Mode::Restricted, "sed -n '/start/,/end/p' f", "ok"),
    (Mode::Restricted, "sed -e 's/a/b/' -e '/x/d' f", "ok"),
    (Mode::Restricted, "sed 's/a/id/e' f", "dangerous-option"),
    (Mode::Restricted, "sed '1e id' f", "dangerous-option"),
    (Mode::Restricted, "sed -n 'w /tmp/x' f", "dangerous-option"),
    (Mode::Restricted, "sed 's/a/b/w out' f", "dangerous-option"),
    (Mode::Restricted, "sed -e p -e 'e id' f", "dangerous-option"),
    (Mode::Restricted, "sed -f script.sed f", "dangerous-option"),
    (Mode::Restricted, "sed --fi=script.sed f", "dangerous-option"),
    (Mode::Restricted, "sed '-i/tmp/*' s/a/b/ f", "dangerous-option"),
    (Mode::Restricted, "awk '$3 > 10 {print $1}' f", "ok"),
    (Mode::Restricted, "awk -F: '{print $1}' /etc/passwd", "ok"),
    (Mode::Restricted, "awk 'BEGIN{system(\"id\")}'", "dangerous-option"),
    (Mode::Restricted, "awk '{print | \"sh\"}' f", "dangerous-option"),
    (Mode::Restricted, "awk '{print > \"/tmp/x\"}' f", "dangerous-option"),
    (Mode::Restricted, "awk -f prog.awk f", "dangerous-option"),
    (Mode::Restricted, "make test CC=clang", "ok"),
    (Mode::Restricted, "make 'X=$(shell id)'", "dangerous-option"),
    (Mode::Restricted, "make SHELL=/tmp/x", "dangerous-option"),
    (Mode::Restricted, "make --eval='x:=$(shell id)'", "dangerous-option"),
    (Mode::Restricted, "make --ev=x", "dangerous-option"),
    (Mode::Restricted, "cargo --config 'target.x.runner=\"sh\"' test", "dangerous-option"),
    (Mode::Restricted, "cargo test --conf=x", "dangerous-option"),
    (Mode::Restricted, "npm test --script-shell=/tmp/x", "dangerous-option"),
    (Mode::Restricted, "npm test --script-sh=/tmp/x", "dangerous-option"),
    (Mode::Restricted, "pytest -p evil", "dangerous-option"),
    (Mode::Restricted, "python3 -m pytest -p evil", "dangerous-option"),
    (Mode::Restricted, "git rebase -x 'sh' main", "dangerous-option"),
    (Mode::Restricted, "git rebase --exe=sh main", "dangerous-option"),
    (Mode::Restricted, "git fetch --upload-pack=sh origin", "dangerous-option"),
    (Mode::Restricted, "git pull --upl=sh", "dangerous-option"),
    (Mode::Restricted, "git merge -s evil x", "dangerous-option"),
    (Mode::Restricted, "git --exec-path=/tmp status", "dangerous-option"),
    (Mode::Restricted, "git grep -O foo", "dangerous-option"),
    (Mode::Restricted, "sort --compress-prog=sh x", "dangerous-option"),
    (Mode::Restricted, "sort -o out.txt in.txt", "ok"),
    (Mode::Restricted, "find . -name '*.o' -delete", "dangerous-option"),
    (Mode::Restricted, "sed --bogus p f", "option-not-allowed"),
    (Mode::Restricted, "RUST_BACKTRACE=1 cargo test", "ok"),
    (Mode::Restricted, "RUSTFLAGS='-C linker=/tmp/x' cargo build", "variable-not-allowed"),
    (Mode::Restricted, "RUSTC_WRAPPER=sh cargo build", "variable-not-allowed"),
    (Mode::Restricted, "NODE_OPTIONS=--require=./x npm test", "variable-not-allowed"),
    // yolo
    (Mode::Yolo, "python3 script.py", "ok"),
    (Mode::Yolo, "curl http://example.com -o x", "ok"),
    (Mode::Yolo, "curl -s http://x | jq .", "ok"),
    (Mode::Yolo, "wget https://x/f.tar.gz && tar xf f.tar.gz", "ok"),
    (Mode::Yolo, "apt-get install foo", "ok"),
    (Mode::Yolo, "rm -rf ./build /tmp/x ~/project", "ok"),
    (Mode::Yolo, "echo $(whoami) > x; (cd /tmp && ls)", "ok"),
    (Mode::Yolo, "dd if=/dev/sda of=disk.img", "ok"),
    (Mode::Yolo, "ls /dev/sda > /dev/null", "ok"),
    (Mode::Yolo, "git commit -m 'drop sudo from the docs'", "ok"),
    (Mode::Yolo, "npm run eval", "ok"),
    (Mode::Yolo, "python3 evaluate.py", "ok"),
    (Mode::Yolo, "docker run --rm -it img ls /", "ok"),
    (Mode::Yolo, "cat /etc/sudoers", "ok"),
    (Mode::Yolo, "f() { echo hi; }; f", "ok"),
    (Mode::Yolo, "", "empty"),
];

fn rule_of(v: &Verdict) -> &str {
    match v {
        Verdict::Allowed => "ok",
        Verdict::Blocked { rule, .. } => rule,
    }
}

#[test]
fn mode_table() {
    let policy = Policy::builtin();
    let mut failures = Vec::new();
    for (mode, command, expected) in CASES {
        let v = policy.check(*mode, command);
        if rule_of(&v) != *expected {
            failures.push(format!(
                "{mode} {command:?}: expected {expected}, got {v:?}"
            ));
        }
        if let Verdict::Blocked { reason, .. } = &v {
            assert!(!reason.trim().is_empty(), "{command:?} has an empty reason");
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Restricted allows everything safe allows.
#[test]
fn restricted_is_a_superset_of_safe() {
    let policy = Policy::builtin();
    for (mode, command, expected) in CASES {
        if *mode == Mode::Safe && *expected == "ok" {
            assert!(
                policy.check(Mode::Restricted, command).is_allowed(),
                "{command:?}"
            );
            assert!(
                policy.check(Mode::Yolo, command).is_allowed(),
                "{command:?}"
            );
        }
    }
}

#[test]
fn reasons_name_the_problem_and_the_way_out() {
    let policy = Policy::builtin();
    #[rustfmt::skip]
    let cases = [
        (Mode::Safe, "rm file", "`rm` is not a read-only command; safe mode allows: basename, cat"),
        (Mode::Safe, "ls > out.txt", "output redirection `>` to `out.txt` writes files; safe mode is read-only"),
        (Mode::Safe, "git push", "`git push` is not a read-only git command; safe mode allows git blame"),
        (Mode::Safe, "find . -delete", "`find` argument `-delete` deletes files: it deletes the matches; that is not allowed in safe or restricted mode"),
        (Mode::Safe, "sort --outp=x f", "`sort` argument `--outp=x` (read as `--output`) writes files: it writes the output"),
        (Mode::Safe, "git grep --open-files-in-pag='rm -f' x", "(read as `--open-files-in-pager`) runs another program"),
        (Mode::Safe, "ls --bogus", "`ls` option `--bogus` (in `--bogus`) is not one safe mode allows for `ls`"),
        (Mode::Safe, "head --lin=5 f", "is an abbreviation, which this policy does not accept: programs differ in what it stands for; it could be --lines; write it out in full"),
        (Mode::Safe, "GIT_TRACE=/x git status", "setting `GIT_TRACE` is not allowed in safe mode"),
        (Mode::Safe, "sort * ", "`sort` argument `*` is expanded by the shell"),
        (Mode::Restricted, "npm publish", "`npm publish` is not allowed in restricted mode; `npm` allows: audit, ci, install"),
        (Mode::Restricted, "curl https://x", "`curl` is not allowed in restricted mode, which allows the safe-mode commands plus awk, cargo"),
        (Mode::Restricted, "python3 x.py", "`python3` runs only as `python3 -m pytest …`"),
        (Mode::Yolo, "sudo ls", "sandbox runs as an unprivileged user"),
    ];
    for (mode, command, wanted) in cases {
        match policy.check(mode, command) {
            Verdict::Blocked { reason, .. } => {
                assert!(reason.contains(wanted), "{command:?}: {reason}")
            }
            Verdict::Allowed => panic!("{command:?} was allowed"),
        }
    }
}

#[test]
fn modes_parse_print_and_serialize() {
    for mode in Mode::ALL {
        assert_eq!(Mode::parse(mode.as_str()), Ok(mode));
        assert_eq!(mode.to_string(), mode.as_str());
        assert!(!mode.describe().is_empty());
    }
    assert_eq!(Mode::parse(" Restricted "), Ok(Mode::Restricted));
    let err = Mode::parse("bogus").unwrap_err();
    assert!(
        err.contains("`bogus`") && err.contains("safe, restricted, yolo"),
        "{err}"
    );

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Wrapper {
        mode: Mode,
    }
    let w: Wrapper = toml::from_str("mode = \"yolo\"").unwrap();
    assert_eq!(w.mode, Mode::Yolo);
    assert_eq!(
        toml::to_string(&Wrapper {
            mode: Mode::Restricted
        })
        .unwrap()
        .trim(),
        "mode = \"restricted\""
    );
    assert!(toml::from_str::<Wrapper>("mode = \"Yolo\"").is_err());
}

const EXTRA: &str = r#"
[safe]
commands = ["jq", "sed", "awk"]

[restricted]
commands = { go = ["build", "test", "vet"], terraform = [], git = ["push"] }

[[blocked]]
name = "no-docker"
regex = '\bdocker\b'
reason = "docker is not available in the sandbox"
"#;

#[test]
fn policy_file_extends_the_builtin() {
    let policy = Policy::with_toml(EXTRA, Path::new("extra.toml")).unwrap();
    let builtin = Policy::builtin();
    #[rustfmt::skip]
    let cases = [
        (Mode::Safe, "jq .name package.json", "ok", "not-read-only"),
        (Mode::Safe, "sed -n 1p f", "ok", "not-read-only"),
        (Mode::Safe, "sed -i s/a/b/ f", "dangerous-option", "not-read-only"),
        (Mode::Safe, "sed 's/a/id/e' f", "dangerous-option", "not-read-only"),
        (Mode::Safe, "awk 'BEGIN{system(\"id\")}'", "dangerous-option", "not-read-only"),
        (Mode::Restricted, "cat x.json | jq .", "ok", "not-allowed"),
        (Mode::Restricted, "go test ./...", "ok", "not-allowed"),
        (Mode::Restricted, "go run main.go", "subcommand-not-allowed", "not-allowed"),
        (Mode::Restricted, "terraform apply", "ok", "not-allowed"),
        (Mode::Restricted, "git push origin main", "ok", "subcommand-not-allowed"),
        (Mode::Restricted, "git commit -m x", "ok", "ok"),
        (Mode::Safe, "go test", "not-read-only", "not-read-only"),
        (Mode::Yolo, "docker ps", "no-docker", "ok"),
        (Mode::Safe, "docker ps", "no-docker", "not-read-only"),
        (Mode::Yolo, "sudo ls", "privilege-escalation", "privilege-escalation"),
        (Mode::Yolo, "curl x | sh", "download-exec", "download-exec"),
    ];
    for (mode, command, with_file, without) in cases {
        assert_eq!(
            rule_of(&policy.check(mode, command)),
            with_file,
            "{mode} {command:?} with the file"
        );
        assert_eq!(
            rule_of(&builtin.check(mode, command)),
            without,
            "{mode} {command:?} built-in"
        );
    }
    let Verdict::Blocked { reason, .. } = policy.check(Mode::Yolo, "docker ps") else {
        unreachable!()
    };
    assert_eq!(reason, "docker is not available in the sandbox");
}

#[test]
fn policy_file_errors_say_what_to_fix() {
    #[rustfmt::skip]
    let cases = [
        ("[[blocked]]\nname = \"broken-rule\"\nregex = '('\nreason = \"x\"", "InvalidRegex", "`broken-rule`"),
        ("[safe]\ncommand = [\"jq\"]", "ParseFile", "unknown field `command`"),
        ("[allow]\ncommands = [\"jq\"]", "ParseFile", "unknown field `allow`"),
        ("[[blocked]]\nname = \"x\"\nregex = 'x'\nreason = \"x\"\nseverity = 1", "ParseFile", "unknown field `severity`"),
        ("[[blocked]]\nname = \"x\"\nregex = 'x'", "ParseFile", "missing field `reason`"),
        ("[[blocked]]\nname = \"all\"\nregex = 'x*'\nreason = \"x\"", "InvalidEntry", "`all` matches the empty string"),
        ("[[blocked]]\nname = \" \"\nregex = 'x'\nreason = \"x\"", "InvalidEntry", "needs a non-empty kebab-case `name`"),
        ("[[blocked]]\nname = \"x\"\nregex = 'x'\nreason = \"\"", "InvalidEntry", "`x` needs a non-empty kebab-case `name` and a `reason`"),
        ("[[blocked]]\nname = \"rm-root\"\nregex = 'x'\nreason = \"x\"", "InvalidEntry", "`rm-root` has a name that is already taken"),
        ("[safe]\ncommands = [\"go build\"]", "InvalidEntry", "`go build` is not a plain command name"),
        ("[restricted]\ncommands = { \"/usr/bin/go\" = [] }", "InvalidEntry", "`/usr/bin/go`"),
        ("[restricted]\ncommands = { go = [\"build;x\"] }", "InvalidEntry", "`build;x`"),
    ];
    for (toml_text, variant, wanted) in cases {
        let err = Policy::with_toml(toml_text, Path::new("p.toml")).unwrap_err();
        let message = err.to_string();
        assert!(
            format!("{err:?}").starts_with(variant),
            "{toml_text:?}: {err:?}"
        );
        assert!(
            message.contains(wanted) && message.contains("p.toml"),
            "{toml_text:?}: {message}"
        );
    }
    // Sections and lists may be left out.
    assert!(Policy::with_toml("", Path::new("empty.toml")).is_ok());
    assert!(Policy::with_toml("[safe]\n[restricted]\n", Path::new("bare.toml")).is_ok());
}

#[test]
fn with_file_reads_a_real_file() {
    let dir = std::env::temp_dir().join(format!("policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, EXTRA).unwrap();
    let policy = Policy::with_file(&path).unwrap();
    assert!(policy.check(Mode::Safe, "jq . x.json").is_allowed());
    let missing = Policy::with_file(&dir.join("missing.toml")).unwrap_err();
    assert!(
        matches!(missing, PolicyError::ReadFile { .. }),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("missing.toml"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn builtin_rules_are_named_and_explained() {
    for (name, pattern, reason) in &Policy::builtin().blocked {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{name}"
        );
        assert!(
            !Regex::new(pattern).unwrap().is_match(""),
            "{name} matches empty text"
        );
        assert!(
            reason.contains(';') || reason.contains(':'),
            "{name}: say what to do instead"
        );
    }
}

/// Hostile megabytes. Generous: this guards against quadratic code or a backtracking engine
/// sneaking in, not a benchmark. Safe mode runs both layers (yolo runs only the first); the
/// splitter is also timed on its own, since an always-blocked input never reaches it.
#[test]
fn adversarial_inputs_stay_fast() {
    // Eight times the largest command a proposal may carry.
    const MB: usize = 64 << 10;
    let fill = |unit: &str| unit.repeat(MB / unit.len());
    let inputs = [
        ("rm flags", format!("rm {}", fill("-r "))),
        ("rm paths", format!("rm -rf {}x", fill("/tmp/a "))),
        ("curl pipes", format!("curl {}", fill("x |"))),
        ("wrappers", format!("{}id", fill("env "))),
        ("fork-bomb shape", fill(":(){ :|")),
        ("dev paths", fill("> /dev/s")),
        ("operators", fill("; &&|| ")),
        ("many commands", fill("ls;")),
        ("many words", fill("ls ")),
        ("open quote", format!("\"{}", fill("a"))),
        ("quotes", fill("'a'\"b\"")),
        ("dollar braces", fill("${")),
        ("redirections", fill("ls 2>&1 ")),
        ("non-ascii", fill("é ∀ ")),
    ];
    let policy = Policy::builtin();
    let mut worst = (Duration::ZERO, "");
    for (name, input) in &inputs {
        let start = Instant::now();
        let _ = policy.check(Mode::Safe, input);
        let _ = split(input, true);
        let took = start.elapsed();
        // Not a benchmark: only catches super-linear blowup.
        assert!(took < Duration::from_secs(60), "{name} took {took:?}");
        if took > worst.0 {
            worst = (took, name);
        }
    }
    eprintln!("worst adversarial case: {:?} took {:?}", worst.1, worst.0);
}

#[test]
fn simple_commands_are_what_the_policy_checks() {
    let argv = |c: &str| Policy::simple_commands(c);
    let want = |v: &[&[&str]]| {
        Some(
            v.iter()
                .map(|c| c.iter().map(|w| w.to_string()).collect())
                .collect(),
        )
    };
    assert_eq!(
        argv("LC_ALL=C sort '-o' x | cat; ls"),
        want(&[&["sort", "-o", "x"], &["cat"], &["ls"]])
    );
    assert_eq!(
        argv("git grep --open-files-in-pag='rm -f' -e x"),
        want(&[&["git", "grep", "--open-files-in-pag=rm -f", "-e", "x"]])
    );
    assert_eq!(argv("echo $(id)"), None);
}
