//! Restricted mode's checks of the little languages it admits: a `sed` script may not run (`e`,
//! `s///e`) or write (`w`, `W`, `s///w`) anything, and an `awk` program may not start programs
//! (`system`, pipes, `getline`) or write files (`print > f`). Both are read as GNU sed and
//! busybox read them; anything this parser does not recognise is refused, not guessed at.

/// Why a `sed` script is refused, if it is.
pub(super) fn sed_refusal(script: &str) -> Option<String> {
    let cs: Vec<char> = script.chars().collect();
    let mut i = 0;
    let skip_blank = |i: &mut usize| {
        while cs.get(*i).is_some_and(|c| c.is_whitespace() || *c == ';') {
            *i += 1;
        }
    };
    loop {
        skip_blank(&mut i);
        // At the end of the script nothing was refused.
        let &c = cs.get(i)?;
        if c == '#' {
            i = to_line_end(&cs, i);
            continue;
        }
        if let Err(why) = address(&cs, &mut i) {
            return Some(why);
        }
        while cs.get(i).is_some_and(|c| c.is_whitespace() || *c == '!') {
            i += 1;
        }
        let Some(&command) = cs.get(i) else {
            return Some("the script ends after an address; add a command".into());
        };
        i += 1;
        match command {
            // A block opens or closes: the next command may follow at once.
            '{' | '}' => continue,
            '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x' | 'z' | 'F' => {}
            'q' | 'Q' | 'l' | 'L' => {
                while cs.get(i).is_some_and(|c| *c == ' ' || c.is_ascii_digit()) {
                    i += 1;
                }
            }
            ':' | 'b' | 't' | 'T' | 'v' => {
                while cs.get(i).is_some_and(|c| !matches!(c, ';' | '\n' | '}')) {
                    i += 1;
                }
            }
            'a' | 'i' | 'c' | 'r' | 'R' => i = to_line_end(&cs, i),
            'w' | 'W' => return Some(format!("the `{command}` command writes a file")),
            'e' => return Some("the `e` command runs a shell command".into()),
            's' => {
                if let Err(why) = two_parts(&cs, &mut i) {
                    return Some(why);
                }
                while let Some(&flag) = cs.get(i) {
                    match flag {
                        'e' => {
                            return Some("the `e` flag of `s` runs the result as a command".into());
                        }
                        'w' => return Some("the `w` flag of `s` writes a file".into()),
                        'g' | 'p' | 'i' | 'I' | 'm' | 'M' | '0'..='9' => i += 1,
                        _ => break,
                    }
                }
            }
            'y' => {
                if let Err(why) = two_parts(&cs, &mut i) {
                    return Some(why);
                }
            }
            other => {
                return Some(format!("`{other}` is not a sed command this policy knows"));
            }
        }
        while cs.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        match cs.get(i) {
            None | Some(';' | '\n' | '}' | '#') => {}
            Some(other) => return Some(format!("unexpected `{other}` after a sed command")),
        }
    }
}

fn to_line_end(cs: &[char], mut i: usize) -> usize {
    while let Some(&c) = cs.get(i) {
        match c {
            '\\' => i += 2,
            '\n' => return i,
            _ => i += 1,
        }
    }
    i
}

/// Reads `/re/`-like text up to an unescaped `delimiter`; `i` is after the opening one.
fn until(cs: &[char], i: &mut usize, delimiter: char) -> Result<(), String> {
    while let Some(&c) = cs.get(*i) {
        *i += 1;
        if c == '\\' {
            *i += 1;
        } else if c == delimiter {
            return Ok(());
        } else if c == '\n' {
            break;
        }
    }
    Err("a regular expression or replacement is not terminated".into())
}

/// `s` and `y`: the delimiter after the command letter, then two parts ending in it.
fn two_parts(cs: &[char], i: &mut usize) -> Result<(), String> {
    let delimiter = match cs.get(*i) {
        Some(&d) if d != '\\' && d != '\n' => d,
        _ => return Err("`s` or `y` needs a delimiter such as `/`".into()),
    };
    *i += 1;
    until(cs, i, delimiter)?;
    until(cs, i, delimiter)
}

fn address(cs: &[char], i: &mut usize) -> Result<(), String> {
    for part in 0..2 {
        match cs.get(*i) {
            Some(c) if c.is_ascii_digit() => {
                while cs.get(*i).is_some_and(|c| c.is_ascii_digit() || *c == '~') {
                    *i += 1;
                }
            }
            Some('$') => *i += 1,
            Some('+' | '~') if part == 1 => {
                *i += 1;
                while cs.get(*i).is_some_and(char::is_ascii_digit) {
                    *i += 1;
                }
            }
            Some('/') => {
                *i += 1;
                until(cs, i, '/')?;
            }
            Some('\\') => {
                let d = cs.get(*i + 1).copied().ok_or("`\\` ends the script")?;
                *i += 2;
                until(cs, i, d)?;
            }
            _ if part == 0 => return Ok(()),
            _ => return Err("an address range has no end after `,`".into()),
        }
        while cs.get(*i).is_some_and(|c| matches!(c, 'I' | 'M')) {
            *i += 1;
        }
        if cs.get(*i) != Some(&',') {
            return Ok(());
        }
        *i += 1;
    }
    Ok(())
}

/// Why an `awk` program is refused, if it is. Deliberately coarse: a word such as `system`
/// inside a string is refused too, which costs a rephrase, not a hole.
pub(super) fn awk_refusal(program: &str) -> Option<String> {
    for word in ["system", "getline", "@load", "@include", "@namespace"] {
        if program.contains(word) {
            return Some(format!("`{word}` runs programs or loads code"));
        }
    }
    let bytes = program.as_bytes();
    let lone_pipe = (0..bytes.len()).any(|i| {
        bytes[i] == b'|' && bytes.get(i + 1) != Some(&b'|') && (i == 0 || bytes[i - 1] != b'|')
    });
    if lone_pipe {
        return Some(
            "`|` pipes to or from a command (use `||` for or, `grep -E` for alternation)".into(),
        );
    }
    let writes = program
        .split([';', '{', '}', '\n'])
        .any(|statement| statement.contains("print") && statement.contains('>'));
    writes.then(|| "`print … >` writes a file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sed_scripts() {
        for ok in [
            "s/a/b/",
            "s/a/b/g",
            "s|a|b|gI",
            "1,5d",
            "/x/,/y/p",
            "$!N;P;D",
            "s/e/w/",
            "s/\\/e/x/2",
            "y/abc/xyz/",
            "/start/,+3{s/a/b/;p}",
            "1~2d",
            "\\,x,d",
            "a hello",
            "/w/ r file",
            "# comment\np",
            ":a;N;ba",
            "s/a/b/;s/c/d/",
        ] {
            assert_eq!(sed_refusal(ok), None, "{ok}");
        }
        for bad in [
            "s/a/id/e",
            "s/a/b/w out",
            "w out",
            "1e id",
            "/x/e",
            "e",
            "W f",
            "$ w f",
            "s/a/b/ge",
            "1!e id",
            "s/a/b/;e id",
            "{e id}",
            "s/a",
            "k",
            "s/a/b/x",
        ] {
            assert!(sed_refusal(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn awk_programs() {
        for ok in [
            "{print $1}",
            "$3 > 10 {print}",
            "NR==1 || /x/",
            "{s+=$1} END {print s}",
        ] {
            assert_eq!(awk_refusal(ok), None, "{ok}");
        }
        for bad in [
            "{system(\"id\")}",
            "{print | \"sh\"}",
            "{\"id\" | getline x}",
            "{print > \"/tmp/x\"}",
            "{printf \"%s\", $1 >> \"f\"}",
            "@load \"x\"",
        ] {
            assert!(awk_refusal(bad).is_some(), "{bad}");
        }
    }
}
