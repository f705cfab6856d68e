//! Length counts: words, sentences and characters.
//!
//! Sentence rule (shared with [`crate::readability`]): a sentence ends at a
//! maximal run of the terminators `.`, `!`, `?` that is followed by
//! whitespace or by the end of the text. The text is cut right after each
//! such run; the count is the number of resulting segments that contain at
//! least one alphanumeric character.

/// Counts for a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthStats {
    /// Number of whitespace-separated tokens.
    pub words: usize,
    /// Number of sentences, see [`sentence_count`].
    pub sentences: usize,
    /// Number of Unicode scalar values (`char`s) of the whole text.
    pub characters: usize,
}

/// `words` = whitespace-separated tokens; `characters` = Unicode scalar
/// values of the whole text; `sentences` = [`sentence_count`].
pub fn length(text: &str) -> LengthStats {
    // One pass over the text, with the ASCII common case decided on the byte
    // alone: about 2.5x faster than three separate `char` iterations (README,
    // Performance). `tests::single_pass_matches_the_definitions` pins it to the
    // plain definitions.
    let mut stats = LengthStats {
        words: 0,
        sentences: 0,
        characters: 0,
    };
    let mut state = State::default();
    if text.is_ascii() {
        // The common case: one byte per character, and the loop walks 8 bytes per
        // iteration so that per-iteration costs (in the sandbox: fuel and epoch
        // checks on the back-edge) are paid once per 8 characters.
        let bytes = text.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            for &b in chunk {
                state.step(ASCII_CLASS[usize::from(b)]);
            }
        }
        for &b in chunks.remainder() {
            state.step(ASCII_CLASS[usize::from(b)]);
        }
        stats.characters = bytes.len();
    } else {
        for c in text.chars() {
            stats.characters += 1;
            state.step(if c.is_ascii() {
                ASCII_CLASS[c as usize]
            } else {
                unicode_class(c)
            });
        }
    }
    stats.words = state.words;
    // The end of the text ends the last segment, terminated or not.
    stats.sentences = state.sentences + usize::from(state.segment_has_alnum);
    stats
}

/// The scan's state between characters.
#[derive(Default)]
struct State {
    words: usize,
    sentences: usize,
    in_word: bool,
    segment_has_alnum: bool,
    after_terminator: bool,
}

impl State {
    /// Branch-free: few blocks per character, which also means little fuel
    /// accounting in the sandbox.
    #[inline(always)]
    fn step(&mut self, class: u8) {
        let whitespace = class & WHITESPACE != 0;
        self.words += usize::from(!whitespace & !self.in_word);
        self.in_word = !whitespace;
        // A run of terminators followed by whitespace ends a sentence.
        let ends = whitespace & self.after_terminator;
        self.sentences += usize::from(ends & self.segment_has_alnum);
        self.segment_has_alnum = (self.segment_has_alnum & !ends) | (class & ALNUM != 0);
        self.after_terminator = class & TERMINATOR != 0;
    }
}

const WHITESPACE: u8 = 1;
const ALNUM: u8 = 2;
const TERMINATOR: u8 = 4;

/// The classes of each ASCII character: U+0009..U+000D and U+0020 are exactly the
/// ASCII `char::is_whitespace`, `[0-9A-Za-z]` the ASCII `char::is_alphanumeric`.
const ASCII_CLASS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = if matches!(c, b'\t'..=b'\r' | b' ') {
            WHITESPACE
        } else if c.is_ascii_alphanumeric() {
            ALNUM
        } else if matches!(c, b'.' | b'!' | b'?') {
            TERMINATOR
        } else {
            0
        };
        b += 1;
    }
    table
};

fn unicode_class(c: char) -> u8 {
    if c.is_whitespace() {
        WHITESPACE
    } else if c.is_alphanumeric() {
        ALNUM
    } else {
        0
    }
}

/// Whether `c` is a sentence terminator.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// Number of sentences: the text is cut after every maximal run of `.`, `!`,
/// `?` that is followed by whitespace or the end of the text, and the
/// segments containing at least one alphanumeric character are counted.
///
/// `""` → 0, `"Hi"` → 1, `"e.g.x"` → 1, `"Yes. No!  Maybe?"` → 3.
pub fn sentence_count(text: &str) -> usize {
    let mut count = 0;
    let mut segment_has_alnum = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            segment_has_alnum = true;
        }
        // `c` ends a maximal terminator run when the next char is not a
        // terminator; the run ends a sentence when that next char is
        // whitespace or the text ends.
        let ends_sentence = is_terminator(c)
            && match chars.peek() {
                None => true,
                Some(&next) => next.is_whitespace(),
            };
        if ends_sentence {
            count += usize::from(segment_has_alnum);
            segment_has_alnum = false;
        }
    }
    count + usize::from(segment_has_alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pass_matches_the_definitions() {
        // The definitions computed the plain way, on text mixing every class.
        for text in [
            "",
            "Yes. No!  Maybe?",
            "e.g. this... and that?!\nnext",
            "\u{a0}naïve café.\u{2003}Ünïcode!  \u{3000}終わり。 x",
            "...!!! ?? . a",
            "trailing terminator.",
            "tab\tseparated\x0bwords\x0cand\rmore",
        ] {
            let words = text.split_whitespace().count();
            let characters = text.chars().count();
            let stats = length(text);
            assert_eq!(
                (stats.words, stats.characters),
                (words, characters),
                "{text:?}"
            );
            assert_eq!(stats.sentences, sentence_count(text), "{text:?}");
        }
    }

    #[test]
    fn empty_text_has_nothing() {
        assert_eq!(
            length(""),
            LengthStats {
                words: 0,
                sentences: 0,
                characters: 0
            }
        );
    }

    #[test]
    fn whitespace_only_text_has_characters_but_no_words_or_sentences() {
        assert_eq!(
            length(" \n\t "),
            LengthStats {
                words: 0,
                sentences: 0,
                characters: 4
            }
        );
    }

    #[test]
    fn text_without_terminator_is_one_sentence() {
        assert_eq!(sentence_count("Hi"), 1);
        assert_eq!(sentence_count("  hello world  "), 1);
    }

    #[test]
    fn documented_examples() {
        assert_eq!(sentence_count(""), 0);
        assert_eq!(sentence_count("Hi"), 1);
        assert_eq!(sentence_count("e.g.x"), 1);
        assert_eq!(sentence_count("Yes. No!  Maybe?"), 3);
    }

    #[test]
    fn terminator_inside_a_token_does_not_end_a_sentence() {
        // "3.14" and "e.g.x" have '.' followed by a non-space.
        assert_eq!(sentence_count("Pi is 3.14 roughly"), 1);
    }

    #[test]
    fn abbreviation_followed_by_space_ends_a_sentence() {
        // "e.g." is followed by a space → segments "I like e.g." and " apples" → 2
        assert_eq!(sentence_count("I like e.g. apples"), 2);
    }

    #[test]
    fn terminator_runs_count_once() {
        // "Wait..." | " what?!" → 2
        assert_eq!(sentence_count("Wait... what?!"), 2);
    }

    #[test]
    fn punctuation_only_text_has_no_sentence() {
        assert_eq!(sentence_count("... !!! ?"), 0);
        assert_eq!(length("?!").words, 1);
    }

    #[test]
    fn segment_needs_an_alphanumeric_character() {
        // "Yes." | " -- ." | " 42" → "Yes." and " 42" count → 2
        assert_eq!(sentence_count("Yes. -- . 42"), 2);
    }

    #[test]
    fn newline_counts_as_whitespace_after_terminator() {
        assert_eq!(sentence_count("One.\nTwo.\nA: three"), 3);
    }

    #[test]
    fn unicode_letters_are_alphanumeric_and_counted_as_one_char() {
        // "Été." | " 日本" → 2 sentences; chars: É t é . space 日 本 = 7
        assert_eq!(
            length("Été. 日本"),
            LengthStats {
                words: 2,
                sentences: 2,
                characters: 7
            }
        );
    }

    #[test]
    fn unicode_whitespace_separates_words() {
        // U+00A0 and U+3000 are White_Space.
        assert_eq!(length("a\u{a0}b\u{3000}c").words, 3);
        // U+001F is not.
        assert_eq!(length("a\u{1f}b").words, 1);
    }
}
