//! Flesch–Kincaid grade level with a simple, fully specified syllable rule.
//!
//! Words are whitespace tokens containing at least one alphabetic character;
//! sentences follow [`crate::length::sentence_count`] (at least 1 when there
//! is a word); syllables follow [`syllables`]. [`sentence_grades`] grades each
//! sentence of [`crate::sentences::split`] on its own, for span rewards.

use std::ops::Range;

use crate::length::sentence_count;

/// Whether `c` (an ASCII lowercase letter) is a vowel for syllable counting.
fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Syllables of one word: keep only its ASCII letters, lowercased (a word
/// with none has 1 syllable); count the maximal groups of consecutive vowels
/// from `{a, e, i, o, u, y}`; if the letters end in `"e"` but not in `"le"`
/// and the count is greater than 1, subtract 1 (silent e); the result is at
/// least 1.
pub fn syllables(word: &str) -> usize {
    let letters: Vec<u8> = word
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if letters.is_empty() {
        return 1;
    }
    let mut count = 0;
    let mut previous_was_vowel = false;
    for &c in &letters {
        let vowel = is_vowel(c);
        if vowel && !previous_was_vowel {
            count += 1;
        }
        previous_was_vowel = vowel;
    }
    if letters.ends_with(b"e") && !letters.ends_with(b"le") && count > 1 {
        count -= 1;
    }
    count.max(1)
}

/// Flesch–Kincaid grade level:
/// `0.39 * (words / sentences) + 11.8 * (syllables / words) - 15.59`, where
/// words are the whitespace tokens containing an alphabetic character,
/// `sentences = max(1, sentence_count(text))` and syllables is the sum of
/// [`syllables`] over the words. `None` when the text has no word.
pub fn flesch_kincaid_grade(text: &str) -> Option<f64> {
    let (words, total_syllables) = word_stats(text)?;
    Some(grade(words, sentence_count(text).max(1), total_syllables))
}

/// Per sentence of `text` ([`crate::sentences::split`]), the Flesch–Kincaid grade
/// of that sentence alone: [`flesch_kincaid_grade`]'s formula with one sentence,
/// so `0.39 * words + 11.8 * (syllables / words) - 15.59`. Sentences without a
/// word are left out; the rest come in order with their byte ranges.
pub fn sentence_grades(text: &str) -> Vec<(Range<usize>, f64)> {
    crate::sentences::split(text)
        .into_iter()
        .filter_map(|range| {
            let (words, total_syllables) = word_stats(&text[range.clone()])?;
            Some((range, grade(words, 1, total_syllables)))
        })
        .collect()
}

/// Words (whitespace tokens with an alphabetic character) and their syllables;
/// `None` when there is no word.
fn word_stats(text: &str) -> Option<(usize, usize)> {
    let mut words = 0usize;
    let mut total_syllables = 0usize;
    for token in text.split_whitespace() {
        if token.chars().any(char::is_alphabetic) {
            words += 1;
            total_syllables += syllables(token);
        }
    }
    (words > 0).then_some((words, total_syllables))
}

/// The formula, evaluated in one fixed order so every caller's floats agree.
fn grade(words: usize, sentences: usize, total_syllables: usize) -> f64 {
    let words = words as f64;
    0.39 * (words / sentences as f64) + 11.8 * (total_syllables as f64 / words) - 15.59
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn vowel_groups_are_counted() {
        assert_eq!(syllables("cat"), 1);
        assert_eq!(syllables("water"), 2); // a, e
        assert_eq!(syllables("beautiful"), 3); // eau, i, u
        assert_eq!(syllables("rhythm"), 1); // y
    }

    #[test]
    fn silent_e_is_dropped_when_more_than_one_group() {
        assert_eq!(syllables("make"), 1); // a, e → 2 − 1
        assert_eq!(syllables("the"), 1); // e → 1, not > 1
        assert_eq!(syllables("free"), 1); // ee → 1
    }

    #[test]
    fn final_le_keeps_its_syllable() {
        assert_eq!(syllables("table"), 2); // a, e; ends in "le"
        assert_eq!(syllables("le"), 1);
    }

    #[test]
    fn only_the_silent_e_rule_applies() {
        assert_eq!(syllables("jumped"), 2); // u, e; no "ed" rule
        assert_eq!(syllables("boxes"), 2); // o, e; no "es" rule
    }

    #[test]
    fn non_letters_are_ignored_and_case_folded() {
        assert_eq!(syllables("MAKE."), 1); // letters "make"
        assert_eq!(syllables("(a)"), 1); // letters "a"
        assert_eq!(syllables("don't"), 1); // letters "dont" → o
    }

    #[test]
    fn word_without_vowel_or_letter_has_one_syllable() {
        assert_eq!(syllables("hmm"), 1);
        assert_eq!(syllables("42"), 1);
        assert_eq!(syllables(""), 1);
        assert_eq!(syllables("日本"), 1);
    }

    #[test]
    fn non_ascii_letters_are_dropped() {
        // "café" → letters "caf" → a → 1 (é is not an ASCII letter)
        assert_eq!(syllables("café"), 1);
    }

    #[test]
    fn empty_or_wordless_text_has_no_grade() {
        assert_eq!(flesch_kincaid_grade(""), None);
        assert_eq!(flesch_kincaid_grade("  ... 42 !? "), None);
    }

    #[test]
    fn grade_of_a_simple_sentence() {
        // "The cat sat." → W = 3, S = 1, Y = 1 + 1 + 1 = 3
        // 0.39 * 3 + 11.8 * 1 - 15.59 = 1.17 + 11.8 - 15.59 = -2.62
        let g = flesch_kincaid_grade("The cat sat.").unwrap();
        assert!(close(g, 0.39 * 3.0 + 11.8 - 15.59));
    }

    #[test]
    fn numbers_are_not_words_but_count_for_sentences() {
        // "It is 42. Yes" → words: It, is, Yes (W = 3); "42." is not a word.
        // sentences: "It is 42." | " Yes" → S = 2; Y = 1 + 1 + 1 = 3
        // 0.39 * 1.5 + 11.8 * 1 - 15.59
        let g = flesch_kincaid_grade("It is 42. Yes").unwrap();
        assert!(close(g, 0.39 * 1.5 + 11.8 * 1.0 - 15.59));
    }

    #[test]
    fn two_sentences_with_polysyllables() {
        // "Water is beautiful. I agree." → words Water(2) is(1) beautiful(3) I(1) agree(2: a, ee; ends "e", 2 → 1)
        // Y = 2 + 1 + 3 + 1 + 1 = 8, W = 5, S = 2
        // 0.39 * 2.5 + 11.8 * 1.6 - 15.59
        let g = flesch_kincaid_grade("Water is beautiful. I agree.").unwrap();
        assert!(close(g, 0.39 * 2.5 + 11.8 * (8.0 / 5.0) - 15.59));
    }

    #[test]
    fn each_sentence_is_graded_alone() {
        let text = "Water is beautiful. I agree. ... Mr. Smith sat.";
        let grades = sentence_grades(text);
        let ranges: Vec<&str> = grades.iter().map(|(r, _)| &text[r.clone()]).collect();
        // "..." has no word and is no sentence; "Mr." does not end one.
        assert_eq!(
            ranges,
            ["Water is beautiful.", "I agree.", "Mr. Smith sat."]
        );
        // Water(2) is(1) beautiful(3): W = 3, Y = 6 → 0.39 * 3 + 11.8 * 2 - 15.59
        assert!(close(grades[0].1, 0.39 * 3.0 + 11.8 * 2.0 - 15.59));
        // I(1) agree(1): W = 2, Y = 2 → 0.39 * 2 + 11.8 * 1 - 15.59
        assert!(close(grades[1].1, 0.39 * 2.0 + 11.8 - 15.59));
        // Mr.(letters "mr": no vowel → 1) Smith(1) sat(1): one sentence although
        // sentence_count would see two → 0.39 * 3 + 11.8 - 15.59
        assert!(close(grades[2].1, 0.39 * 3.0 + 11.8 - 15.59));
        assert!(sentence_grades("").is_empty());
        assert!(sentence_grades("42. 7!").is_empty());
    }

    #[test]
    fn unicode_word_counts_as_a_word_with_one_syllable() {
        // "日本" is alphabetic → W = 1, Y = 1, S = 1 → 0.39 + 11.8 - 15.59
        let g = flesch_kincaid_grade("日本").unwrap();
        assert!(close(g, 0.39 + 11.8 - 15.59));
    }
}
