//! What a person would see: the captured bytes fed to the `vt100` terminal
//! emulator, with every side effect a terminal could perform recorded, and
//! byte-level checks for what the emulator does not model (SGR conceal,
//! bidi reordering, zero-width characters).

use std::num::NonZeroU16;

use vt100::capture::{BasicFormattedCaptureRange, basic_formatted_to_plain};

/// Everything the emulated terminal was asked to do besides drawing text.
#[derive(Debug, Default)]
pub struct Effects(pub Vec<String>);

impl vt100::Callbacks for Effects {
    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.0.push("audible bell".into());
    }
    fn visual_bell(&mut self, _: &mut vt100::Screen) {
        self.0.push("visual bell".into());
    }
    fn resize(&mut self, _: &mut vt100::Screen, request: (u16, u16)) {
        self.0.push(format!("resize to {request:?}"));
    }
    fn set_window_icon_name(&mut self, _: &mut vt100::Screen, name: &[u8]) {
        self.0
            .push(format!("icon name {:?}", String::from_utf8_lossy(name)));
    }
    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.0
            .push(format!("window title {:?}", String::from_utf8_lossy(title)));
    }
    fn copy_to_clipboard(&mut self, _: &mut vt100::Screen, ty: &[u8], data: &[u8]) {
        self.0.push(format!(
            "clipboard write {:?} {:?}",
            String::from_utf8_lossy(ty),
            String::from_utf8_lossy(data)
        ));
    }
    fn paste_from_clipboard(&mut self, _: &mut vt100::Screen, ty: &[u8]) {
        self.0
            .push(format!("clipboard read {:?}", String::from_utf8_lossy(ty)));
    }
    fn unhandled_char(&mut self, _: &mut vt100::Screen, c: char) {
        self.0.push(format!("unhandled char {c:?}"));
    }
    fn unhandled_control(&mut self, _: &mut vt100::Screen, b: u8) {
        self.0.push(format!("unhandled control {b:#04x}"));
    }
    fn unhandled_escape(&mut self, _: &mut vt100::Screen, i1: Option<u8>, i2: Option<u8>, b: u8) {
        self.0
            .push(format!("unhandled escape {i1:?} {i2:?} {b:#04x}"));
    }
    fn unhandled_csi(
        &mut self,
        _: &mut vt100::Screen,
        i1: Option<u8>,
        i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        self.0
            .push(format!("unhandled CSI {i1:?} {i2:?} {params:?} {c:?}"));
    }
    fn unhandled_osc(&mut self, _: &mut vt100::Screen, params: &[&[u8]]) {
        let p: Vec<_> = params.iter().map(|p| String::from_utf8_lossy(p)).collect();
        self.0.push(format!("unhandled OSC {p:?}"));
    }
}

/// A terminal of a fixed size with a long scrollback.
pub struct Screen {
    parser: vt100::Parser<Effects>,
    fed: usize,
}

impl Screen {
    pub fn new(rows: u16, cols: u16) -> Self {
        let size = |n: u16| NonZeroU16::new(n).expect("a non-empty terminal");
        Self {
            parser: vt100::Parser::new_with_callbacks(
                size(rows),
                size(cols),
                100_000,
                Effects::default(),
            ),
            fed: 0,
        }
    }

    /// Feeds the part of `all` (everything captured so far) not fed yet.
    pub fn catch_up(&mut self, all: &[u8]) {
        self.parser.process(&all[self.fed..]);
        self.fed = all.len();
    }

    /// The terminal was resized (what the window manager does to it).
    pub fn set_size(&mut self, rows: u16, cols: u16) {
        let size = |n: u16| NonZeroU16::new(n).expect("a non-empty terminal");
        self.parser.set_size(size(rows), size(cols));
    }

    /// The rows on screen now, right-trimmed.
    pub fn visible(&self) -> Vec<String> {
        let cols = self.parser.screen().size().1.get();
        self.parser
            .screen()
            .rows(0, cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// Every line ever shown, scrollback included, with rows the terminal
    /// wrapped by itself joined back into one line.
    pub fn transcript(&self) -> Vec<String> {
        let mut formatted = String::new();
        self.parser
            .screen()
            .write_contents_formatted_basic(
                &mut formatted,
                BasicFormattedCaptureRange::Full(&mut Default::default()),
            )
            .expect("writing to a String");
        let plain: String = basic_formatted_to_plain(&formatted).collect();
        plain.lines().map(|l| l.trim_end().to_owned()).collect()
    }

    pub fn effects(&self) -> &[String] {
        &self.parser.callbacks().0
    }
}

/// Characters that change how text is laid out or read without being seen:
/// listed here independently of the bridge's own classifier.
fn is_sneaky(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'            // C1 controls (CSI, OSC, DCS, NEL…)
        | '\u{ad}'                     // soft hyphen
        | '\u{61c}'                    // Arabic letter mark
        | '\u{180e}'                   // Mongolian vowel separator
        | '\u{200b}'..='\u{200f}'      // zero-width space/joiners, LRM, RLM
        | '\u{2028}' | '\u{2029}'      // line/paragraph separators
        | '\u{202a}'..='\u{202e}'      // bidi embeddings and overrides
        | '\u{2060}'..='\u{2069}'      // word joiner, invisible operators, isolates
        | '\u{3164}' | '\u{115f}' | '\u{1160}' | '\u{ffa0}' // Hangul fillers
        | '\u{fe00}'..='\u{fe0f}'      // variation selectors
        | '\u{feff}'                   // zero-width no-break space
        | '\u{e0000}'..='\u{e007f}'    // tags
    )
}

/// The byte-level rules for anything the CLI writes to a terminal: no
/// escape sequences at all (it uses no colours), no carriage return except
/// the terminal's own before a newline, no other control character, no
/// invisible or reordering character. Returns what broke them.
pub fn byte_violations(bytes: &[u8]) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match b {
            b'\n' => true,
            b'\r' => bytes.get(i + 1) == Some(&b'\n'),
            0x20..=0x7e | 0x80..=0xff => true,
            _ => false,
        };
        if !ok {
            let from = i.saturating_sub(20);
            bad.push(format!(
                "byte {b:#04x} at {i}, after {:?}",
                String::from_utf8_lossy(&bytes[from..i])
            ));
        }
    }
    let text = String::from_utf8_lossy(bytes);
    for (i, c) in text.char_indices().filter(|(_, c)| is_sneaky(*c)) {
        bad.push(format!("U+{:04X} at byte {i}", c as u32));
    }
    bad
}
