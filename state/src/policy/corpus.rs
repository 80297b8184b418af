//! Corpus and property tests of safe mode: everyday commands it must keep accepting, hostile
//! ones it must refuse (including every hazard of `hazards.rs` in every spelling), and the
//! oracle [`hazards::violation`] over generated argument lists.

use super::hazards::{self, Effect, HAZARDS};
use super::{Mode, Policy, Verdict, git, programs};

const ALLOWED: &str = include_str!("corpus/allowed.txt");
const REFUSED: &str = include_str!("corpus/refused.txt");

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

#[test]
fn safe_mode_accepts_the_everyday_corpus() {
    let policy = Policy::builtin();
    let mut failures = Vec::new();
    let mut count = 0;
    for command in lines(ALLOWED) {
        count += 1;
        for mode in [Mode::Safe, Mode::Restricted] {
            if let Verdict::Blocked { rule, reason } = policy.check(mode, command) {
                failures.push(format!("{mode} {command:?}: {rule}: {reason}"));
            }
        }
    }
    assert!(count >= 400, "the corpus shrank to {count} commands");
    eprintln!("everyday commands accepted: {count}");
    assert!(
        failures.is_empty(),
        "{} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn safe_mode_refuses_the_hostile_corpus() {
    let policy = Policy::builtin();
    let mut failures = Vec::new();
    for line in lines(REFUSED) {
        let (both, command) = match line.strip_prefix("both: ") {
            Some(command) => (true, command),
            None => (false, line),
        };
        let modes: &[Mode] = if both {
            &[Mode::Safe, Mode::Restricted]
        } else {
            &[Mode::Safe]
        };
        for &mode in modes {
            if policy.check(mode, command).is_allowed() {
                failures.push(format!("{mode} allowed {command:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} allowed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every way to write one hazard option: each long option's every prefix, bare and with a value;
/// each short option alone, with an attached value and inside clusters; `find` words as they are.
fn spellings(option: &str) -> Vec<String> {
    if let Some(long) = option.strip_prefix("--") {
        let ends = long.char_indices().map(|(i, c)| i + c.len_utf8());
        ends.flat_map(|end| {
            let p = &long[..end];
            [
                format!("--{p}"),
                format!("--{p}=sh"),
                format!("--{p}=/tmp/x"),
            ]
        })
        .collect()
    } else if option.len() == 2 {
        let c = &option[1..];
        let mut all = vec![
            option.to_owned(),
            format!("{option}x"),
            format!("{option}/tmp/x"),
        ];
        all.extend("nrvailsu".chars().map(|b| format!("-{b}{c}")));
        all.extend("nrvailsu".chars().map(|b| format!("-{b}{c}x")));
        all
    } else {
        vec![option.to_owned()]
    }
}

/// The command that puts `word` where `program` (or `git SUB`, or bare `git`) reads options.
fn command_with(program: &str, word: &str) -> String {
    match program.strip_prefix("git ") {
        _ if program == "git" => format!("git '{word}' log"),
        Some(sub) => format!("git {sub} '{word}' x"),
        None => format!("{program} '{word}' x"),
    }
}

#[test]
fn every_hazard_is_refused_in_every_spelling() {
    let policy = Policy::builtin();
    let mut failures = Vec::new();
    let mut tried = 0;
    for hazard in HAZARDS {
        for option in hazard.options {
            for word in spellings(option) {
                let command = command_with(hazard.program, &word);
                tried += 1;
                let mut modes = vec![Mode::Safe];
                if hazard.effect != Effect::Write {
                    modes.push(Mode::Restricted);
                }
                for mode in modes {
                    if policy.check(mode, &command).is_allowed() {
                        failures.push(format!("{mode} allowed {command:?}"));
                    }
                }
            }
        }
    }
    assert!(tried > 1000, "only {tried} spellings");
    eprintln!("hazard spellings tried: {tried}");
    assert!(
        failures.is_empty(),
        "{} allowed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The allow-lists and the hazard table must not overlap, counting every parser: an allowed
/// short letter is never a hazard letter, and an allowed long option is never a prefix of a
/// hazard (a parser that lacked the allowed option would read it as the hazard).
#[test]
fn allow_lists_and_hazards_are_disjoint() {
    let mut specs: Vec<(String, &super::options::Spec)> = programs::SAFE
        .iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    specs.push(("git".into(), &git::GLOBAL));
    specs.extend(
        git::SUBCOMMANDS
            .iter()
            .map(|(s, spec)| (format!("git {s}"), spec)),
    );
    let mut failures = Vec::new();
    for (key, spec) in &specs {
        let shorts = spec.short.chars().filter(|c| *c != ':');
        let longs = spec
            .long
            .iter()
            .flat_map(|l| l.iter())
            .map(|l| l.trim_end_matches(['=', '?']));
        let words: Vec<String> = shorts
            .map(|c| format!("-{c}"))
            .chain(longs.map(|l| format!("--{l}")))
            .collect();
        for word in words {
            if let Some((_, option)) = hazards::spelled_by(key, &word) {
                failures.push(format!("{key}: allowed {word} spells hazard {option}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small deterministic generator (xorshift), so the property test needs no dependency and
/// every run tries the same cases; a failure prints the command to replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Words for `key`'s arguments: its hazards in every spelling, its allowed options (so that
/// commands get accepted and the property has something to check), clusters of random
/// letters, prefixes of allowed long options, and plain operands.
fn pool(key: &str, spec: &super::options::Spec) -> Vec<String> {
    let mut words: Vec<String> = hazards::of(key)
        .flat_map(|h| h.options.iter().flat_map(|o| spellings(o)))
        .collect();
    for list in spec.long {
        for long in *list {
            let name = long.trim_end_matches(['=', '?']);
            words.push(format!("--{name}"));
            words.push(format!("--{name}=1"));
            words.push(format!("--{}", &name[..name.len().div_ceil(2)]));
        }
    }
    let letters: Vec<char> = spec.short.chars().filter(|c| *c != ':').collect();
    for &c in &letters {
        words.push(format!("-{c}"));
    }
    for a in ['a', 'o', 'p', 'z', 'O', 'T', 'R', 'c', 'l', 's', 'C'] {
        for &b in letters.iter().take(6) {
            words.push(format!("-{b}{a}"));
            words.push(format!("-{a}{b}"));
        }
    }
    words.extend(
        [
            "--", "-", "-5", "file", "src", "HEAD", "-x", "--x", "+%s", "%G?",
        ]
        .map(String::from),
    );
    words
}

fn quoted(argv: &[String]) -> String {
    let quote = |w: &String| format!("'{}'", w.replace('\'', r"'\''"));
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[test]
fn safe_mode_never_accepts_a_hazard_in_generated_argvs() {
    let policy = Policy::builtin();
    let mut targets: Vec<(Vec<String>, String, &super::options::Spec)> = programs::SAFE
        .iter()
        .map(|(p, s)| (vec![p.to_string()], p.to_string(), s))
        .collect();
    for (sub, spec) in git::SUBCOMMANDS {
        targets.push((
            vec!["git".into(), sub.to_string()],
            format!("git {sub}"),
            spec,
        ));
    }
    let pools: Vec<Vec<String>> = targets
        .iter()
        .map(|(_, key, spec)| pool(key, spec))
        .collect();
    let global = pool("git", &git::GLOBAL);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut cases) = (0, 0);
    for _ in 0..40_000 {
        let t = rng.below(targets.len());
        let (prefix, _, _) = &targets[t];
        let mut argv = vec![prefix[0].clone()];
        if prefix.len() > 1 {
            for _ in 0..rng.below(3) {
                argv.push(rng.pick(&global).clone());
            }
            argv.push(prefix[1].clone());
        }
        for _ in 0..rng.below(5) {
            argv.push(rng.pick(&pools[t]).clone());
        }
        cases += 1;
        let command = quoted(&argv);
        if policy.check(Mode::Safe, &command).is_allowed() {
            accepted += 1;
            if let Some(v) = hazards::violation(&argv) {
                panic!("safe mode accepted {command}, but {v}");
            }
            let restricted = policy.check(Mode::Restricted, &command);
            assert!(
                restricted.is_allowed(),
                "safe accepts, restricted refuses {command}: {restricted:?}"
            );
        }
    }
    // The property must be exercised, not vacuous: a good share of the cases get accepted.
    assert!(accepted * 10 > cases, "only {accepted} of {cases} accepted");
    eprintln!("generated argvs: {cases}, accepted by safe mode: {accepted}");
}
