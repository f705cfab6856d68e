//! Sentence splitting with a cheap, fully specified rule, for span rewards that
//! score a response sentence by sentence.
//!
//! ALaRM splits with spaCy's statistical sentence segmenter; this is a rule that
//! needs no model, runs the same inside a wasm32 guest, and is exact about what it
//! does, at the price of missing what only a parser sees (a sentence ending in an
//! abbreviation, quotes without a terminator). [`split`] is the rule.

use std::ops::Range;

/// Abbreviations (lower-cased, without their period) after which a single `.`
/// does not end a sentence. Small on purpose: "etc." and "no." are left out
/// because they end sentences at least as often as not ("So the answer is no.").
pub const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "fig", "approx",
];

/// Characters that end a sentence when a run of them is followed by whitespace,
/// by the end of the text, or by closing quotes or brackets and then one of those.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// Closing quotes and brackets that belong to the sentence they follow:
/// `He said "no."` ends after the quote.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '\u{201d}' | '\u{2019}' | '\u{bb}'
    )
}

/// Opening quotes and brackets, stripped before a word is compared with
/// [`ABBREVIATIONS`]: `("Dr.` is the word `Dr`.
fn is_opener(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | '(' | '[' | '{' | '\u{201c}' | '\u{2018}' | '\u{ab}'
    )
}

/// Whether `word` (the text between the last whitespace and a single `.`) is an
/// abbreviation: one of [`ABBREVIATIONS`] (any case), a single letter (an initial,
/// `J.`), or a word with a period inside (`e.g`, `i.e`, `U.S`).
fn is_abbreviation(word: &str) -> bool {
    let word = word.trim_start_matches(is_opener);
    let mut chars = word.chars();
    let single_letter =
        matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic());
    single_letter
        || word.contains('.')
        || ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word))
}

/// The sentences of `text`, as byte ranges in order, each from its first
/// non-whitespace character to its last (trailing whitespace excluded).
///
/// The rule:
/// * A sentence ends after a maximal run of `.`, `!`, `?`, together with any
///   closing quotes or brackets right after it (`"`, `'`, `)`, `]`, `}`, `”`,
///   `’`, `»`), when what follows is whitespace or the end of the text. So a
///   period inside a token does not end one: decimals (`3.5`), `e.g.x`, URLs.
/// * Except: a run that is a single `.` right after an abbreviation (see
///   [`is_abbreviation`]: `Mr.`, `Dr.`, `e.g.`, `i.e.`, `U.S.`, an initial like
///   `J.`) does not end a sentence.
/// * A line feed (U+000A) always ends a sentence, terminated or not.
/// * Text after the last terminator is a last sentence.
/// * A piece with no alphanumeric character (`...`, `!!`, a `-` bullet alone) is
///   not a sentence and is dropped.
///
/// Empty or whitespace-only text has no sentence. Ranges are on character
/// boundaries, so `&text[range]` never panics.
///
/// ```
/// use reward_metrics::sentences::split;
///
/// let text = "Dr. Who paid 3.5 euros. Why?\nNo idea";
/// let pieces: Vec<&str> = split(text).into_iter().map(|r| &text[r]).collect();
/// assert_eq!(pieces, ["Dr. Who paid 3.5 euros.", "Why?", "No idea"]);
/// ```
pub fn split(text: &str) -> Vec<Range<usize>> {
    let mut sentences = Vec::new();
    // First byte of the sentence being read, once it has a non-whitespace char.
    let mut start: Option<usize> = None;
    // End of the last non-whitespace character of that sentence.
    let mut content_end = 0;
    // Where the current whitespace-delimited word begins, for abbreviations.
    let mut word_start = 0;
    let mut close = |start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take()
            && text[s..end].chars().any(char::is_alphanumeric)
        {
            sentences.push(s..end);
        }
    };
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let next = i + c.len_utf8();
        if c == '\n' {
            close(&mut start, content_end);
            word_start = next;
            i = next;
            continue;
        }
        if c.is_whitespace() {
            word_start = next;
            i = next;
            continue;
        }
        start.get_or_insert(i);
        if !is_terminator(c) {
            content_end = next;
            i = next;
            continue;
        }
        // A run of terminators, then closing quotes and brackets.
        let run_start = i;
        let mut end = next;
        let mut run_len = 1;
        while let Some(t) = text[end..].chars().next().filter(|&t| is_terminator(t)) {
            end += t.len_utf8();
            run_len += 1;
        }
        while let Some(q) = text[end..].chars().next().filter(|&q| is_closer(q)) {
            end += q.len_utf8();
        }
        let at_boundary = text[end..].chars().next().is_none_or(char::is_whitespace);
        let abbreviation =
            run_len == 1 && c == '.' && is_abbreviation(&text[word_start..run_start]);
        content_end = end;
        if at_boundary && !abbreviation {
            close(&mut start, end);
        }
        i = end;
    }
    close(&mut start, content_end);
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<&str> {
        split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn terminators_followed_by_space_or_end_split() {
        assert_eq!(pieces("Yes. No!  Maybe?"), ["Yes.", "No!", "Maybe?"]);
        assert_eq!(pieces("Wait... what?!"), ["Wait...", "what?!"]);
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert_eq!(
            pieces("Mr. Smith met Dr. Jones, e.g. at noon. Then J. R. left."),
            ["Mr. Smith met Dr. Jones, e.g. at noon.", "Then J. R. left."]
        );
        assert_eq!(
            pieces("I met (Prof. X) here. Ok"),
            ["I met (Prof. X) here.", "Ok"]
        );
        // "no." and "etc." are not abbreviations here.
        assert_eq!(
            pieces("So the answer is no. Next"),
            ["So the answer is no.", "Next"]
        );
    }

    #[test]
    fn decimals_and_inner_periods_do_not_end_sentences() {
        assert_eq!(
            pieces("Pi is 3.14 or so. See example.com now."),
            ["Pi is 3.14 or so.", "See example.com now."]
        );
        assert_eq!(pieces("e.g.x"), ["e.g.x"]);
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        assert_eq!(
            pieces("He said \"stop.\" (It worked!) Fine."),
            ["He said \"stop.\"", "(It worked!)", "Fine."]
        );
        assert_eq!(pieces("«Oui.» Non"), ["«Oui.»", "Non"]);
    }

    #[test]
    fn multi_byte_text_gives_char_boundary_ranges() {
        let text = "Ça va. Très bien!";
        // "Ça va." is 7 bytes (Ç takes 2); "Très bien!" is 11 (è takes 2).
        assert_eq!(split(text), vec![0..7, 8..19]);
        assert_eq!(
            pieces("日本語です。 Yes. 終わり"),
            ["日本語です。 Yes.", "終わり"]
        );
    }

    #[test]
    fn newlines_end_sentences_and_trailing_text_is_a_sentence() {
        assert_eq!(
            pieces("- first point\n- second point.\n\nlast words  "),
            ["- first point", "- second point.", "last words"]
        );
        assert_eq!(pieces("no terminator at all"), ["no terminator at all"]);
        assert_eq!(pieces("  padded.  "), ["padded."]);
        assert_eq!(split("  padded.  "), vec![2..9]);
    }

    #[test]
    fn empty_and_contentless_text_has_no_sentence() {
        assert!(split("").is_empty());
        assert!(split(" \n\t ").is_empty());
        assert!(split("... !!! ?").is_empty());
        assert_eq!(pieces("Hi. ... Bye."), ["Hi.", "Bye."]);
    }
}
