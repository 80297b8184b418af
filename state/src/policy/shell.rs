//! The shell splitter: one pass over a command that yields its simple commands as words, refusing
//! what it cannot see through (substitutions, subshells, here-documents, `${…}` operators, `$'…'`).

use super::{Checked, Verdict, blocked, no};

// Fixed reasons, named so the splitter below reads as code.
const SUBSHELL: &str = "parentheses start a subshell or function, which this policy does not analyse; write the commands out one after another";
const HEREDOC: &str = "here-documents and here-strings (`<<`, `<<<`) are not analysed; put the text in a file or pipe it from `printf`";
const ANSI_C: &str =
    "`$'…'` quoting is read differently by bash and sh; use plain quotes, and `printf` for escapes";
const NO_TARGET: &str = "a redirection has no target; name the file after it";

pub(super) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME` if the word is a `NAME=value` assignment.
pub(super) fn assigned_name(word: &str) -> Option<&str> {
    word.split_once('=')
        .map(|(name, _)| name)
        .filter(|name| is_name(name))
}

/// A word of a simple command with quotes and escapes removed, as the shell would.
#[derive(Debug, Default, Clone)]
pub(super) struct Word {
    pub(super) text: String,
    /// Holds an unquoted glob, brace expansion or `$`: the shell may turn it into something else
    /// entirely (even `-delete`), so `text` says nothing reliable about it.
    pub(super) opaque: bool,
    /// Holds an unquoted `{`, which with a `,` or `..` is brace expansion.
    brace: bool,
    /// Starts with an expansion or glob, so its first character, and whether it reads as an
    /// option, is up to the shell (`*` can match a file named `--output=x`).
    lead_opaque: bool,
    /// Holds an unquoted `$` expansion, which the shell splits into words at spaces.
    splits: bool,
}

impl Word {
    fn is_fd(&self) -> bool {
        !self.opaque && !self.text.is_empty() && self.text.bytes().all(|b| b.is_ascii_digit())
    }

    /// Whether the shell could turn this word into one starting with `-`, i.e. an option.
    /// `src/*.rs` cannot (its first character is a literal `s`); `*.rs`, `$X` and `a$X` can.
    pub(super) fn may_become_option(&self) -> bool {
        self.opaque && (self.lead_opaque || self.splits || self.brace || self.text.starts_with('-'))
    }

    /// A word as the policy's tests and the fuzz oracle build it: plain text, no expansion.
    #[cfg(test)]
    pub(super) fn literal(text: &str) -> Self {
        Word {
            text: text.to_owned(),
            ..Word::default()
        }
    }
}

/// One pass over a command, collecting simple commands of words.
#[derive(Default)]
struct Splitter {
    allow_writes: bool,
    commands: Vec<Vec<Word>>,
    words: Vec<Word>,
    word: Option<Word>,
    /// A redirection operator waiting for its target word.
    redirect: Option<&'static str>,
}

pub(super) fn split(command: &str, allow_writes: bool) -> Result<Vec<Vec<Word>>, Verdict> {
    let cs: Vec<char> = command.chars().collect();
    let mut sp = Splitter {
        allow_writes,
        ..Splitter::default()
    };
    let mut i = 0;
    while let Some(&c) = cs.get(i) {
        let (next, after) = (cs.get(i + 1).copied(), cs.get(i + 2).copied());
        let rest = &cs[i + 1..];
        i += 1;
        match c {
            '\'' => {
                let len = rest
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or_else(|| unterminated('\''))?;
                sp.push(&rest[..len], false);
                i += len + 1;
            }
            '"' => i = sp.double_quoted(&cs, i)?,
            // An escaped newline joins lines; a trailing backslash stands for itself.
            '\\' if next == Some('\n') => i += 1,
            '\\' => {
                sp.push(&[next.unwrap_or('\\')], false);
                i += 1;
            }
            // `#` at the start of a word opens a comment; overlooking that would let a quote in
            // the comment hide the next line from this analysis.
            '#' if sp.word.is_none() => i += rest.iter().take_while(|&&c| c != '\n').count(),
            ' ' | '\t' => sp.end_word()?,
            '\n' | ';' | '|' | '&' if (c, next) != ('&', Some('>')) => {
                i += usize::from(matches!(
                    (c, next),
                    ('|', Some('|' | '&')) | ('&', Some('&'))
                ));
                sp.end_command()?;
            }
            '(' | ')' => return no("subshell", SUBSHELL),
            '`' => return Err(substitution("`…`")),
            '$' => i = sp.dollar(&cs, i - 1, false)?,
            '<' | '>' if next == Some('(') => {
                let why = "runs a hidden command; run it on its own and use a file";
                return no(
                    "process-substitution",
                    format!("process substitution `{c}(…)` {why}"),
                );
            }
            '<' if next == Some('<') => return no("here-document", HEREDOC),
            '<' | '>' | '&' => {
                let op = match (c, next, after) {
                    ('&', _, Some('>')) => "&>>",
                    ('&', ..) => "&>",
                    ('>', Some('>'), _) => ">>",
                    ('>', Some('|'), _) => ">|",
                    ('>', Some('&'), _) => ">&",
                    ('<', Some('>'), _) => "<>",
                    ('<', Some('&'), _) => "<&",
                    ('<', ..) => "<",
                    _ => ">",
                };
                i += op.len() - 1;
                sp.start_redirect(op)?;
            }
            _ => {
                sp.push(&[c], matches!(c, '*' | '?' | '['));
                sp.word.as_mut().expect("just pushed").brace |= c == '{';
            }
        }
    }
    sp.end_command()?;
    Ok(sp.commands)
}

fn unterminated(quote: char) -> Verdict {
    blocked(
        "syntax",
        format!("the command has an unterminated `{quote}`; close it"),
    )
}

fn substitution(form: &str) -> Verdict {
    let why = "runs a command hidden inside another, which this policy cannot check";
    blocked(
        "command-substitution",
        format!("`{form}` {why}; run it on its own first"),
    )
}

impl Splitter {
    fn push(&mut self, cs: &[char], opaque: bool) {
        let word = self.word.get_or_insert_with(Word::default);
        if word.text.is_empty() && !cs.is_empty() {
            word.lead_opaque = opaque;
        }
        word.text.extend(cs);
        word.opaque |= opaque;
    }

    /// Reads a double-quoted string from after its opening quote; returns the index after the
    /// closing one.
    fn double_quoted(&mut self, cs: &[char], mut i: usize) -> Result<usize, Verdict> {
        self.push(&[], false); // `""` is still a word
        loop {
            match (cs.get(i).copied(), cs.get(i + 1).copied()) {
                (None, _) => return Err(unterminated('"')),
                (Some('"'), _) => return Ok(i + 1),
                (Some('`'), _) => return Err(substitution("`…`")),
                (Some('$'), _) => i = self.dollar(cs, i, true)?,
                (Some('\\'), Some('\n')) => i += 2,
                (Some('\\'), Some(n @ ('$' | '`' | '"' | '\\'))) => {
                    self.push(&[n], false);
                    i += 2;
                }
                (Some(c), _) => {
                    self.push(&[c], false);
                    i += 1;
                }
            }
        }
    }

    /// Handles the `$` at `i`; returns the index after what it consumed.
    fn dollar(&mut self, cs: &[char], i: usize, quoted: bool) -> Result<usize, Verdict> {
        let special = |c: char| c.is_ascii_alphanumeric() || "_@*#?$!-".contains(c);
        match cs.get(i + 1).copied() {
            Some('(') => Err(substitution("$(…)")),
            // Old bash arithmetic, which can run commands through array subscripts.
            Some('[') => Err(substitution("$[…]")),
            Some('{') => {
                let len = cs[i + 2..].iter().position(|&c| c == '}');
                let len = len.ok_or_else(|| unterminated('{'))?;
                let name: String = cs[i + 2..i + 2 + len].iter().collect();
                // Operators such as `${x:1}`, `${!x}` or `${x@P}` evaluate arithmetic or prompt
                // strings, which can run commands; a plain name or special parameter cannot.
                let digits = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit());
                if !(is_name(&name) || digits || (name.len() == 1 && name.chars().all(special))) {
                    let why = "can run commands; use plain `$NAME` or `${NAME}`";
                    return no(
                        "parameter-expansion",
                        format!("`${{{name}}}` has operators, which {why}"),
                    );
                }
                self.push(&cs[i..i + len + 3], true);
                self.mark_split(quoted);
                Ok(i + len + 3)
            }
            // bash reads `$'…'` with backslash escapes, dash as `$` and a plain quote: they
            // disagree on where the quote ends, so either reading could hide an operator.
            Some('\'') if !quoted => no("ansi-c-quoting", ANSI_C),
            // `$"…"` is a bash translation (dash keeps the `$`); the rest are expansions.
            next => {
                let expands = next.is_some_and(|c| special(c) || (c == '"' && !quoted));
                self.push(&['$'], expands);
                if expands {
                    self.mark_split(quoted);
                }
                Ok(i + 1)
            }
        }
    }

    fn mark_split(&mut self, quoted: bool) {
        if let Some(word) = self.word.as_mut() {
            word.splits |= !quoted;
        }
    }

    fn start_redirect(&mut self, op: &'static str) -> Checked {
        // In `2>` the digits name a file descriptor; they are not an argument.
        if self.word.as_ref().is_some_and(Word::is_fd) {
            self.word = None;
        }
        self.end_word()?;
        match self.redirect.replace(op) {
            Some(_) => no("syntax", NO_TARGET),
            None => Ok(()),
        }
    }

    fn end_word(&mut self) -> Checked {
        let Some(mut word) = self.word.take() else {
            return Ok(());
        };
        word.opaque |= word.brace && (word.text.contains(',') || word.text.contains(".."));
        let Some(op) = self.redirect.take() else {
            self.words.push(word);
            return Ok(());
        };
        let target = word.text.as_str();
        let discard = ["/dev/null", "/dev/stdout", "/dev/stderr"].contains(&target) && !word.opaque;
        let harmless = matches!(op, "<" | "<&")
            || (op == ">&" && (word.is_fd() || target == "-"))
            || (op != "<>" && discard);
        if harmless || self.allow_writes {
            return Ok(());
        }
        let why = "safe mode is read-only (only `>/dev/null` and `2>&1` are allowed)";
        no(
            "output-redirection",
            format!("output redirection `{op}` to `{target}` writes files; {why}"),
        )
    }

    fn end_command(&mut self) -> Checked {
        self.end_word()?;
        if self.redirect.take().is_some() {
            return no("syntax", NO_TARGET);
        }
        if !self.words.is_empty() {
            self.commands.push(std::mem::take(&mut self.words));
        }
        Ok(())
    }
}
