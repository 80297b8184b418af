//! Table-driven tests of the untrusted-text renderer and the JSON formatter.

use super::terminal::{Table, Terminal, safe_layout};
use super::*;

/// (input, what a terminal must be sent)
const RENDERED: &[(&str, &str)] = &[
    ("ls -la src", "ls -la src"),
    ("", ""),
    ("tab\there", "tab\\there"),
    ("two\nlines", "two\\nlines"),
    // The issue's example: CR, then erase-line, then a fake command.
    (
        "rm -rf src .git #\r\x1b[2K  command:   ls -la src",
        "rm -rf src .git #\\r\\e[2K  command:   ls -la src",
    ),
    ("up\x1b[Aover", "up\\e[Aover"),
    ("\x1b[H\x1b[2J", "\\e[H\\e[2J"),
    ("abc\x08\x08\x08xyz", "abc\\b\\b\\bxyz"),
    ("\x1b]0;pwned\x07", "\\e]0;pwned\\a"),
    ("\x1b]52;c;cm0gLXJmIH4=\x07", "\\e]52;c;cm0gLXJmIH4=\\a"),
    ("\x1b[8mhidden\x1b[0m", "\\e[8mhidden\\e[0m"),
    ("\x05", "\\x05"),
    ("\x1b[6n", "\\e[6n"),
    ("\x1bP$q m\x1b\\", "\\eP$q m\\e\\"),
    ("\0\x0b\x0c\x7f", "\\0\\v\\f\\x7f"),
    // C1: CSI, OSC, DCS, NEL as single code points.
    ("\u{9b}2J\u{9d}0;x\u{9c}", "\\u{9b}2J\\u{9d}0;x\\u{9c}"),
    ("\u{90}q\u{85}", "\\u{90}q\\u{85}"),
    // Bidi overrides and isolates.
    ("ls \u{202e}fdp.exe", "ls \\u{202e}fdp.exe"),
    (
        "\u{2066}a\u{2067}b\u{2068}c\u{2069}\u{200e}\u{200f}\u{61c}",
        "\\u{2066}a\\u{2067}b\\u{2068}c\\u{2069}\\u{200e}\\u{200f}\\u{61c}",
    ),
    // Zero-width and other invisible characters.
    (
        "r\u{200b}m\u{2060}\u{feff}\u{ad}\u{200d}",
        "r\\u{200b}m\\u{2060}\\u{feff}\\u{ad}\\u{200d}",
    ),
    ("\u{e0041}\u{e007f}", "\\u{e0041}\\u{e007f}"),
    (
        "a\u{3164}b\u{115f}\u{ffa0}\u{2800}",
        "a\\u{3164}b\\u{115f}\\u{ffa0}\\u{2800}",
    ),
    ("x\u{fe0f}\u{34f}\u{180e}", "x\\u{fe0f}\\u{34f}\\u{180e}"),
    // Separators and look-alike spaces.
    ("a\u{2028}b\u{2029}c", "a\\u{2028}b\\u{2029}c"),
    (
        "rm\u{a0}-rf\u{3000}x\u{2009}",
        "rm\\u{a0}-rf\\u{3000}x\\u{2009}",
    ),
    // Private use and unassigned code points.
    (
        "\u{e000}\u{10ffff}\u{50000}",
        "\\u{e000}\\u{10ffff}\\u{50000}",
    ),
    // Printable non-ASCII text stays as it is.
    (
        "café ünïcode 日本 😀 \u{430}",
        "café ünïcode 日本 😀 \u{430}",
    ),
    ("e\u{301}", "e\u{301}"),
];

#[test]
fn every_unprintable_character_becomes_a_visible_escape() {
    for (input, want) in RENDERED {
        let got = Escaped(input).to_string();
        assert_eq!(&got, want, "{input:?}");
        assert!(
            got.chars().all(|c| !is_unprintable(c)),
            "{input:?} rendered as {got:?}"
        );
        // Escaping is idempotent, so escaping twice (a table of escaped
        // cells) shows the same.
        assert_eq!(Escaped(&got).to_string(), got);
    }
}

#[test]
fn every_control_and_format_character_is_unprintable() {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    for c in (0u32..=0x10ffff).filter_map(char::from_u32) {
        let cat = get_general_category(c);
        if matches!(
            cat,
            G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator
        ) {
            assert!(is_unprintable(c), "U+{:04X} ({cat:?})", c as u32);
        }
        if c.is_ascii() {
            assert_eq!(is_unprintable(c), !(' '..='~').contains(&c), "{c:?}");
        }
    }
}

#[test]
fn layout_keeps_its_own_newlines_only() {
    for (input, want) in [
        ("a\nb", "a\nb"),
        ("a\r\nb", "a\\r\nb"),
        ("\x1b[31mred\x1b[0m\n", "\\e[31mred\\e[0m\n"),
        ("tab\t", "tab\\t"),
        ("\u{202e}x", "\\u{202e}x"),
    ] {
        assert_eq!(safe_layout(input), want, "{input:?}");
    }
    let mut t = Terminal::new(Vec::new());
    t.println(format_args!("{}: {}", "role", "\x1b]0;t\x07"))
        .unwrap();
    assert_eq!(t.into_inner(), b"role: \\e]0;t\\a\n");
}

#[test]
fn shortening_never_cuts_an_escape() {
    for (input, max, want) in [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("this is too long", 10, "this is t…"),
        ("ab\x1b[2Kcd", 4, "ab…"),
        ("ab\x1b[2Kcd", 5, "ab\\e…"),
        ("\u{202e}\u{202e}", 9, "\\u{202e}…"),
    ] {
        assert_eq!(escaped_shortened(input, max), want, "{input:?} {max}");
    }
}

#[test]
fn intake_names_the_first_bad_character_and_where_it_is() {
    let nl_tab = ['\n', '\t'];
    for (input, allowed, want) in [
        ("ls -la\n\tpwd", &nl_tab[..], None),
        ("café 日本", &nl_tab[..], None),
        ("ab\rc", &nl_tab[..], Some(('\r', 2, 2))),
        ("é\u{202e}", &nl_tab[..], Some(('\u{202e}', 1, 2))),
        ("line\nrole", &[][..], Some(('\n', 4, 4))),
        ("x\u{200b}", &[][..], Some(('\u{200b}', 1, 1))),
        ("\u{9b}", &nl_tab[..], Some(('\u{9b}', 0, 0))),
    ] {
        let got = first_unprintable(input, allowed).map(|u| (u.ch, u.char_index, u.byte_index));
        assert_eq!(got, want, "{input:?}");
    }
    let u = first_unprintable("ab\x1b[2K", &[]).unwrap();
    assert_eq!(
        u.to_string(),
        "contains \\e (U+001B, a control character) at character 2 (byte 2; both counted from 0)"
    );
    let u = first_unprintable("ab\u{202e}", &[]).unwrap();
    assert!(
        u.to_string()
            .contains("\\u{202e} (U+202E, a bidirectional-text control)")
    );
}

#[test]
fn notable_characters_carry_line_column_and_byte() {
    let found = notable_chars("ok\nr\u{e9}m\r\x1b\n\u{430}");
    let got: Vec<_> = found
        .iter()
        .map(|n| (n.ch, n.line, n.column, n.byte, n.escaped))
        .collect();
    assert_eq!(
        got,
        [
            ('\u{e9}', 2, 2, 4, false),
            ('\r', 2, 4, 7, true),
            ('\x1b', 2, 5, 8, true),
            ('\u{430}', 3, 1, 10, false),
        ]
    );
    assert_eq!(found[1].to_string(), "\\r U+000D at 2:4 byte 7");
    assert_eq!(found[0].to_string(), "'\u{e9}' U+00E9 at 2:2 byte 4");
    assert!(notable_chars("plain ascii\nlines\n").is_empty());
}

#[test]
fn table_cells_are_escaped_and_stay_on_one_line() {
    let mut t = Table::new(&["who", "text"]);
    t.row(["a", "x\r\x1b[2Ky\nz\u{202e}"]);
    let s = t.to_string();
    assert!(s.contains("x\\r\\e[2Ky\\nz\\u{202e}"), "{s}");
    assert!(!s.contains('\x1b') && !s.contains('\r') && !s.contains('\u{202e}'));
    assert_eq!(s.lines().count(), 5, "{s}");
}

/// (value, exact JSON)
const JSON: &[(&str, &str)] = &[
    ("plain", r#""plain""#),
    ("\x1b[2K\r\n\t", r#""\u001b[2K\r\n\t""#),
    ("del\x7f", r#""del\u007f""#),
    ("c1\u{9b}\u{85}", r#""c1\u009b\u0085""#),
    ("bidi\u{202e}\u{2066}", r#""bidi\u202e\u2066""#),
    ("zw\u{200b}\u{2060}\u{feff}", r#""zw\u200b\u2060\ufeff""#),
    ("sep\u{2028}\u{2029}", r#""sep\u2028\u2029""#),
    ("tag\u{e0041}", r#""tag\udb40\udc41""#),
    ("quote\"back\\", r#""quote\"back\\""#),
    ("café 日本 😀", "\"café 日本 😀\""),
];

#[test]
fn json_escapes_del_c1_and_format_characters_and_round_trips() {
    for (value, want) in JSON {
        let got = json::to_string_pretty(value).unwrap();
        assert_eq!(&got, want, "{value:?}");
        assert!(got.chars().all(|c| !is_unprintable(c) || c == '\n'));
        let back: String = serde_json::from_str(&got).unwrap();
        assert_eq!(&back, value);
    }
}

#[test]
fn json_keys_and_nested_values_are_escaped_and_layout_is_pretty() {
    let v = serde_json::json!({"k\u{202e}": ["\x1b]52;c;eA==\x07", {"n": 1}]});
    let got = json::to_string_pretty(&v).unwrap();
    assert_eq!(
        got,
        "{\n  \"k\\u202e\": [\n    \"\\u001b]52;c;eA==\\u0007\",\n    {\n      \"n\": 1\n    }\n  ]\n}"
    );
    assert_eq!(serde_json::from_str::<serde_json::Value>(&got).unwrap(), v);
    // Only the escapes differ from serde_json's own pretty output.
    let plain = serde_json::to_string_pretty(&v).unwrap();
    assert_eq!(got, plain.replace('\u{202e}', "\\u202e"));
}

#[test]
fn a_listed_command_escapes_right_to_left_letters_where_prose_keeps_them() {
    // `cp א >ב`: a bidi terminal can draw the `>` mirrored, away from where
    // the shell reads it. Listings of commands show what the approve screen
    // shows; messages and reasons keep their letters.
    let command = "cp \u{5d0} >\u{5d1}";
    assert_eq!(command_shortened(command, 40), "cp \\u{5d0} >\\u{5d1}");
    assert_eq!(escaped_shortened(command, 40), command);
    // An escape is never cut in half.
    assert_eq!(command_shortened(command, 8), "cp …");
    assert_eq!(command_shortened("a\u{5d0}\u{5d0}", 10), "a\\u{5d0}…");
}
