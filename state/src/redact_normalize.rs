//! The normalisation shadow: a copy of a text folded with NFKC (so fullwidth `ｐａｓｓｗｏｒｄ`
//! reads `password`) with every invisible character ([`is_invisible`]: format characters such as
//! zero-width space and joiners, soft hyphen, bidi controls, BOM, and the letters and marks a
//! terminal draws as nothing, such as variation selectors and Hangul fillers) removed, plus a map from each byte of the copy back
//! to the character of the original it came from. The redactor matches on the shadow and
//! replaces the mapped spans in the original, so `AKIA\u{200b}IOSF…` cannot slip a key past the
//! rules and the text around a secret keeps its original characters.
//!
//! Folding is per character (NFKC of each character alone), which is what compatibility
//! folding of look-alikes needs and keeps the map exact; combining sequences are left as they
//! are, and no secret format uses them.

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// True for a character that shows as nothing: a format character (general category Cf), or
/// a default-ignorable letter or mark that a category check misses. The redactor matches as if
/// it were not there, and the operator's screen shows it as an escape: one list for both, so
/// nothing a reader cannot see can split a secret for the rules.
pub fn is_invisible(c: char) -> bool {
    !c.is_ascii()
        && (get_general_category(c) == GeneralCategory::Format
            || matches!(c,
                '\u{034f}'                  // combining grapheme joiner
                | '\u{115f}' | '\u{1160}'   // Hangul choseong/jungseong fillers
                | '\u{17b4}' | '\u{17b5}'   // Khmer inherent vowels
                | '\u{180b}'..='\u{180f}'   // Mongolian variation selectors
                | '\u{2800}'                // braille blank
                | '\u{3164}'                // Hangul filler
                | '\u{fe00}'..='\u{fe0f}'   // variation selectors
                | '\u{ffa0}'                // halfwidth Hangul filler
                | '\u{e0100}'..='\u{e01ef}' // variation selectors supplement
            ))
}

/// A folded copy of a text and, for each of its bytes, where in the original the character
/// that produced it starts (its end follows from the original; one 32-bit offset per byte keeps
/// the map small, which matters on long texts that fold almost everywhere: with 64-bit offsets
/// the map of a 200 000-character fullwidth text was 1.6 MB, past the L2 cache, and made the
/// redaction grow faster than the text).
#[derive(Debug)]
pub(crate) struct Shadow<'a> {
    pub text: String,
    origin: Vec<u32>,
    source: &'a str,
}

impl<'a> Shadow<'a> {
    /// The shadow of `text`, or None when folding changes nothing (always so for ASCII text,
    /// the usual case, which costs one `is_ascii` scan), or when `text` is 4 GiB or longer
    /// (offsets are 32-bit; the bridge's messages are at most 50 000 characters, and the
    /// stream redactor works on windows of a few KiB).
    pub fn of(text: &'a str) -> Option<Self> {
        // Most non-ASCII text (accents, CJK, emoji) is already NFKC and has no format
        // characters: answer that without building anything.
        let needs_folding = |c: char| {
            !c.is_ascii()
                && (is_invisible(c) || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes)
        };
        if text.is_ascii() || u32::try_from(text.len()).is_err() || !text.chars().any(needs_folding)
        {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut origin: Vec<u32> = Vec::with_capacity(text.len());
        let mut changed = false;
        for (i, c) in text.char_indices() {
            // In range: `text` is shorter than 4 GiB (checked above).
            let at = i as u32;
            if is_invisible(c) {
                changed = true;
                continue;
            }
            if c.is_ascii() {
                out.push(c);
                origin.push(at);
                continue;
            }
            if let Some(ascii) = fullwidth_ascii(c) {
                // The common evasion, and NFKC's iterator is slow: fold it directly.
                out.push(ascii);
                origin.push(at);
                changed = true;
                continue;
            }
            let before = out.len();
            out.extend(std::iter::once(c).nfkc());
            changed |= out[before..] != text[i..i + c.len_utf8()];
            origin.resize(out.len(), at);
        }
        changed.then_some(Self {
            text: out,
            origin,
            source: text,
        })
    }

    /// The original byte range behind the shadow's `start..end` (whole characters, including any
    /// removed format characters inside it).
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        debug_assert!(start < end && end <= self.origin.len());
        let last = self.origin[end - 1] as usize;
        let last_len = self.source[last..].chars().next().map_or(0, char::len_utf8);
        (self.origin[start] as usize, last + last_len)
    }
}

/// NFKC of the fullwidth forms of ASCII (U+FF01..=U+FF5E) is the ASCII character itself.
fn fullwidth_ascii(c: char) -> Option<char> {
    ('\u{ff01}'..='\u{ff5e}')
        .contains(&c)
        .then(|| char::from_u32(u32::from(c) - 0xfee0))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fullwidth_fast_path_is_nfkc() {
        for c in '\u{ff00}'..='\u{ff60}' {
            let nfkc: String = std::iter::once(c).nfkc().collect();
            match fullwidth_ascii(c) {
                Some(a) => assert_eq!(nfkc, a.to_string(), "{c:?}"),
                None => assert!(
                    !nfkc.is_ascii() || nfkc.len() != 1 || c == '\u{ff00}',
                    "{c:?}"
                ),
            }
        }
    }

    #[test]
    fn ascii_and_already_normal_text_have_no_shadow() {
        assert!(Shadow::of("password=hunter2").is_none());
        assert!(Shadow::of("Ünïcödé prose — 日本語のテキスト").is_none());
    }

    #[test]
    fn format_characters_go_and_fullwidth_folds() {
        let text = "id AKIA\u{200b}IOSF\u{00ad}ODNN7 ｐａｓｓ=1";
        let s = Shadow::of(text).unwrap();
        assert_eq!(s.text, "id AKIAIOSFODNN7 pass=1");
        let start = s.text.find("AKIA").unwrap();
        let (a, b) = s.original(start, start + "AKIAIOSFODNN7".len());
        assert_eq!(&text[a..b], "AKIA\u{200b}IOSF\u{00ad}ODNN7");
        let p = s.text.find("pass").unwrap();
        let (a, b) = s.original(p, p + 4);
        assert_eq!(&text[a..b], "ｐａｓｓ");
    }
}
