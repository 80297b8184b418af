//! Option parsing the way the admitted programs parse their arguments, so that safe mode can
//! allow-list options: GNU `getopt_long` and busybox `getopt32` (bundled short options, values
//! attached or in the next word, `--opt=value`, `--` ends options, options after operands),
//! git's parse-options (the same, plus `--no-` negations) and `find`'s expression.
//!
//! Both GNU `getopt_long` and git accept any unambiguous prefix of a long option (`--outp` is
//! `--output`), and which prefixes are unambiguous depends on the program's version and on
//! whether it is the GNU tool or the busybox applet. So an allowed long option must be written
//! out in full: an exact match is what every parser picks first, whatever else it knows. The
//! spelling `--outp` is refused with the full names it could stand for. For the same reason
//! every word is read as an option even after an operand (GNU permutes; busybox does not, but
//! reading more words as options only refuses more).
//!
//! Where GNU and busybox disagree on whether a short option takes a value, a cluster such as
//! `-ko` parses two ways (`-k o`, or `-k -o`). The allow-lists follow GNU, and the more
//! dangerous reading is covered by the hazard check in `command.rs`, which looks at every word,
//! values and operands included, and matches a hazard letter anywhere in a cluster.

use super::shell::Word;

/// How a program reads its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `getopt_long`: GNU coreutils, grep, diff, tree, ripgrep, and the busybox applets.
    Getopt,
    /// git's parse-options: `getopt_long` plus `--no-NAME` for every allowed `NAME`.
    Git,
    /// `find`: leading `-H`/`-L`/`-P`, starting points, then an expression of `-primary` words
    /// with fixed arities; no bundling, no abbreviation, no `--opt=value`.
    Find,
    /// `echo`: every argument is text to print, never an option that does anything.
    Text,
}

/// What a program's operands may be, beyond "any word that is not an option".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operands {
    Any,
    /// At most this many: `uniq IN OUT` writes OUT.
    AtMost(usize),
    /// Only `+FORMAT`: `date MMDDhhmm` sets the clock.
    PlusFormat,
}

/// One program's (or git subcommand's) allowed options.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    pub(super) style: Style,
    /// getopt-style short options: `n:` takes a value (attached or the next word), `M::` takes
    /// one only attached (`-M50%`), a bare letter takes none.
    pub(super) short: &'static str,
    /// Long options without dashes: `all` takes no value, `format=` takes one (attached or the
    /// next word), `color?` takes one only attached (`--color=never`). Several lists, so git's
    /// subcommands can share their diff and revision options.
    pub(super) long: &'static [&'static [&'static str]],
    /// `-20` is a count (`head -20`, `git log -5`, `grep -3`).
    pub(super) number: bool,
    pub(super) operands: Operands,
}

impl Spec {
    pub(super) const fn getopt(
        short: &'static str,
        long: &'static [&'static [&'static str]],
    ) -> Self {
        Spec {
            style: Style::Getopt,
            short,
            long,
            number: false,
            operands: Operands::Any,
        }
    }

    pub(super) const fn numbers(mut self) -> Self {
        self.number = true;
        self
    }

    pub(super) const fn operands(mut self, operands: Operands) -> Self {
        self.operands = operands;
        self
    }

    pub(super) const fn style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    fn long_arity(&self, name: &str) -> Option<Arity> {
        self.long
            .iter()
            .flat_map(|list| list.iter())
            .find_map(|entry| {
                let (entry_name, arity) = split_arity(entry);
                (entry_name == name).then_some(arity)
            })
    }

    fn long_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.long
            .iter()
            .flat_map(|list| list.iter())
            .map(|e| split_arity(e).0)
    }

    fn short_arity(&self, c: char) -> Option<Arity> {
        let at = self
            .short
            .char_indices()
            .find(|&(_, s)| s == c && s != ':')?
            .0;
        let rest = &self.short[at + c.len_utf8()..];
        Some(if rest.starts_with("::") {
            Arity::Attached
        } else if rest.starts_with(':') {
            Arity::Required
        } else {
            Arity::Flag
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Required,
    /// Optional, and only attached: `--color=never`, `-M50%`.
    Attached,
}

fn split_arity(entry: &str) -> (&str, Arity) {
    if let Some(name) = entry.strip_suffix('=') {
        (name, Arity::Required)
    } else if let Some(name) = entry.strip_suffix('?') {
        (name, Arity::Attached)
    } else {
        (entry, Arity::Flag)
    }
}

/// One argument as the program reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Arg {
    /// An option in its canonical spelling (`-n`, `--format`, `-name`) with its value, if any.
    Option {
        name: String,
        value: Option<String>,
    },
    Operand(String),
}

/// Why an argument list does not fit a spec; the caller adds the program's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Misfit {
    /// Not an allowed option. `could_be` lists allowed long options it abbreviates.
    Unknown {
        word: String,
        option: String,
        could_be: Vec<String>,
    },
    MissingValue {
        option: String,
    },
    /// A value given to an option that takes none (`--all=x`): GNU refuses it, but another
    /// parser might read it differently, so it is refused here too.
    UnexpectedValue {
        option: String,
    },
    TooManyOperands {
        max: usize,
    },
    BadOperand {
        word: String,
        why: &'static str,
    },
}

/// Parses `args` with `spec`. Words the shell may turn into options (`$X`, `*`) must have been
/// refused before, or be harmless for this program; here they count as operands.
pub(super) fn parse(spec: &Spec, args: &[Word]) -> Result<Vec<Arg>, Misfit> {
    match spec.style {
        Style::Text => Ok(args.iter().map(|w| Arg::Operand(w.text.clone())).collect()),
        Style::Find => parse_find(args),
        Style::Getopt | Style::Git => parse_getopt(spec, args),
    }
}

fn parse_getopt(spec: &Spec, args: &[Word]) -> Result<Vec<Arg>, Misfit> {
    let mut parsed = Vec::new();
    let mut words = args.iter();
    let mut options_end = false;
    while let Some(word) = words.next() {
        let text = word.text.as_str();
        if options_end || word.opaque || !text.starts_with('-') || text == "-" {
            parsed.push(Arg::Operand(text.to_owned()));
            continue;
        }
        if text == "--" {
            options_end = true;
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let arity = spec.long_arity(name).or_else(|| {
                // git: `--no-stat` negates `--stat`; a negation takes no value.
                let positive = name.strip_prefix("no-")?;
                let git = spec.style == Style::Git;
                (git && spec.long_arity(positive).is_some()).then_some(Arity::Flag)
            });
            let Some(arity) = arity else {
                let could_be = spec
                    .long_names()
                    .filter(|n| n.starts_with(name) && !name.is_empty())
                    .map(|n| format!("--{n}"))
                    .collect();
                return Err(Misfit::Unknown {
                    word: text.to_owned(),
                    option: format!("--{name}"),
                    could_be,
                });
            };
            let value = match (arity, attached) {
                (Arity::Flag, Some(_)) => {
                    return Err(Misfit::UnexpectedValue {
                        option: format!("--{name}"),
                    });
                }
                (Arity::Required, None) => Some(next_value(&mut words, &format!("--{name}"))?),
                (_, attached) => attached,
            };
            parsed.push(Arg::Option {
                name: format!("--{name}"),
                value,
            });
            continue;
        }
        let bundle = &text[1..];
        if spec.number && bundle.bytes().all(|b| b.is_ascii_digit()) {
            parsed.push(Arg::Option {
                name: "-NUM".to_owned(),
                value: Some(bundle.to_owned()),
            });
            continue;
        }
        for (at, c) in bundle.char_indices() {
            let option = format!("-{c}");
            let Some(arity) = spec.short_arity(c) else {
                return Err(Misfit::Unknown {
                    word: text.to_owned(),
                    option,
                    could_be: Vec::new(),
                });
            };
            let rest = &bundle[at + c.len_utf8()..];
            let value = match arity {
                Arity::Flag => None,
                Arity::Attached => Some(rest.to_owned()).filter(|r| !r.is_empty()),
                Arity::Required if rest.is_empty() => Some(next_value(&mut words, &option)?),
                Arity::Required => Some(rest.to_owned()),
            };
            let consumed = value.is_some() && arity != Arity::Flag;
            parsed.push(Arg::Option {
                name: option,
                value,
            });
            if consumed || arity == Arity::Attached {
                break;
            }
        }
    }
    let operands = parsed
        .iter()
        .filter(|a| matches!(a, Arg::Operand(_)))
        .count();
    match spec.operands {
        Operands::AtMost(max) if operands > max => Err(Misfit::TooManyOperands { max }),
        Operands::PlusFormat => match parsed.iter().find_map(|a| match a {
            Arg::Operand(o) if !o.starts_with('+') => Some(o.clone()),
            _ => None,
        }) {
            Some(word) => Err(Misfit::BadOperand {
                word,
                why: "sets the clock; only a `+FORMAT` operand is allowed",
            }),
            None => Ok(parsed),
        },
        _ => Ok(parsed),
    }
}

fn next_value<'a>(
    words: &mut impl Iterator<Item = &'a Word>,
    option: &str,
) -> Result<String, Misfit> {
    words
        .next()
        .map(|w| w.text.clone())
        .ok_or_else(|| Misfit::MissingValue {
            option: option.to_owned(),
        })
}

/// `find`'s read-only primaries and how many words follow each. GNU findutils and busybox
/// agree on these; neither abbreviates.
#[rustfmt::skip]
const FIND_PRIMARIES: &[(&str, usize)] = &[
    ("-name", 1), ("-iname", 1), ("-path", 1), ("-ipath", 1), ("-wholename", 1),
    ("-iwholename", 1), ("-regex", 1), ("-iregex", 1), ("-regextype", 1), ("-lname", 1),
    ("-ilname", 1), ("-type", 1), ("-xtype", 1), ("-size", 1), ("-mtime", 1), ("-mmin", 1),
    ("-atime", 1), ("-amin", 1), ("-ctime", 1), ("-cmin", 1), ("-newer", 1), ("-anewer", 1),
    ("-cnewer", 1), ("-user", 1), ("-group", 1), ("-uid", 1), ("-gid", 1), ("-perm", 1),
    ("-links", 1), ("-inum", 1), ("-samefile", 1), ("-maxdepth", 1), ("-mindepth", 1),
    ("-fstype", 1), ("-used", 1), ("-printf", 1), ("-files0-from", 1),
    ("-empty", 0), ("-executable", 0), ("-readable", 0), ("-writable", 0), ("-nouser", 0),
    ("-nogroup", 0), ("-true", 0), ("-false", 0), ("-print", 0), ("-print0", 0), ("-ls", 0),
    ("-prune", 0), ("-quit", 0), ("-depth", 0), ("-xdev", 0), ("-mount", 0), ("-follow", 0),
    ("-noleaf", 0), ("-ignore_readdir_race", 0), ("-noignore_readdir_race", 0),
    ("-daystart", 0), ("-not", 0), ("-a", 0), ("-and", 0), ("-o", 0), ("-or", 0),
    ("(", 0), (")", 0), ("!", 0), (",", 0), ("-help", 0), ("--help", 0), ("-version", 0),
    ("--version", 0),
];

fn parse_find(args: &[Word]) -> Result<Vec<Arg>, Misfit> {
    let mut parsed = Vec::new();
    let mut words = args.iter().peekable();
    // Leading options: `-H`, `-L`, `-P`, `-D LIST`, `-Olevel`.
    while let Some(w) = words.peek() {
        match w.text.as_str() {
            "-H" | "-L" | "-P" => parsed.push(Arg::Option {
                name: w.text.clone(),
                value: None,
            }),
            "-D" => {
                words.next();
                let value = next_value(&mut words, "-D")?;
                parsed.push(Arg::Option {
                    name: "-D".to_owned(),
                    value: Some(value),
                });
                continue;
            }
            t if t.len() == 3 && t.starts_with("-O") => parsed.push(Arg::Option {
                name: "-O".to_owned(),
                value: Some(t[2..].to_owned()),
            }),
            _ => break,
        }
        words.next();
    }
    let expression_start = |t: &str| t.starts_with('-') || matches!(t, "(" | ")" | "!" | ",");
    while let Some(w) = words.next_if(|w| w.opaque || !expression_start(&w.text)) {
        parsed.push(Arg::Operand(w.text.clone()));
    }
    while let Some(word) = words.next() {
        let text = word.text.as_str();
        let newer_xy = text.len() == 8
            && text.starts_with("-newer")
            && text[6..].bytes().all(|b| b"amcBt".contains(&b));
        let arity = FIND_PRIMARIES
            .iter()
            .find(|(p, _)| *p == text)
            .map(|(_, n)| *n)
            .or(newer_xy.then_some(1));
        let Some(arity) = arity else {
            return Err(Misfit::Unknown {
                word: text.to_owned(),
                option: text.to_owned(),
                could_be: Vec::new(),
            });
        };
        let value = match arity {
            0 => None,
            _ => Some(next_value(&mut words, text)?),
        };
        parsed.push(Arg::Option {
            name: text.to_owned(),
            value,
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &str) -> Vec<Word> {
        args.split_whitespace().map(Word::literal).collect()
    }

    fn opt(name: &str, value: Option<&str>) -> Arg {
        Arg::Option {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        }
    }

    const SORT: Spec = Spec::getopt("nrk:t:S:M::", &[&["numeric-sort", "key=", "color?"]]);

    #[test]
    fn getopt_reads_bundles_values_and_end_of_options() {
        let cases: &[(&str, Vec<Arg>)] = &[
            ("-Sn1", vec![opt("-S", Some("n1"))]),
            ("-nS1", vec![opt("-n", None), opt("-S", Some("1"))]),
            (
                "-nS 1 f",
                vec![
                    opt("-n", None),
                    opt("-S", Some("1")),
                    Arg::Operand("f".into()),
                ],
            ),
            ("-k -o", vec![opt("-k", Some("-o"))]),
            (
                "--key 2 --key=3",
                vec![opt("--key", Some("2")), opt("--key", Some("3"))],
            ),
            (
                "--color x",
                vec![opt("--color", None), Arg::Operand("x".into())],
            ),
            ("-M -n", vec![opt("-M", None), opt("-n", None)]),
            (
                "-M50% f",
                vec![opt("-M", Some("50%")), Arg::Operand("f".into())],
            ),
            ("f -n", vec![Arg::Operand("f".into()), opt("-n", None)]),
            (
                "-- -o --output",
                vec![Arg::Operand("-o".into()), Arg::Operand("--output".into())],
            ),
            ("-", vec![Arg::Operand("-".into())]),
        ];
        for (args, want) in cases {
            assert_eq!(parse(&SORT, &words(args)).as_ref(), Ok(want), "{args}");
        }
    }

    #[test]
    fn getopt_refuses_what_it_does_not_know() {
        let unknown = |args: &str| match parse(&SORT, &words(args)) {
            Err(Misfit::Unknown {
                option, could_be, ..
            }) => (option, could_be),
            other => panic!("{args}: {other:?}"),
        };
        assert_eq!(unknown("-no x"), ("-o".into(), vec![]));
        assert_eq!(unknown("--outp=x"), ("--outp".into(), vec![]));
        assert_eq!(
            unknown("--numeric"),
            ("--numeric".into(), vec!["--numeric-sort".into()])
        );
        assert_eq!(
            unknown("--no-numeric-sort"),
            ("--no-numeric-sort".into(), vec![])
        );
        assert_eq!(
            parse(&SORT, &words("-k")),
            Err(Misfit::MissingValue {
                option: "-k".into()
            })
        );
        assert_eq!(
            parse(&SORT, &words("--numeric-sort=1")),
            Err(Misfit::UnexpectedValue {
                option: "--numeric-sort".into()
            })
        );
        let git = SORT.style(Style::Git);
        assert!(parse(&git, &words("--no-numeric-sort")).is_ok());
    }

    #[test]
    fn find_reads_its_expression() {
        let parsed = parse_find(&words("-L . src -name x -newermt y ( -type f -o -empty )"));
        assert_eq!(parsed.unwrap().len(), 10);
        for bad in [
            "-exec",
            ". -delete",
            ". -name x -fprint y",
            ". -execdir",
            ". -exe",
        ] {
            assert!(parse_find(&words(bad)).is_err(), "{bad}");
        }
        // A primary's value is a value, whatever it looks like; the hazard check reads it.
        assert!(parse_find(&words(". -name -delete")).is_ok());
    }
}
