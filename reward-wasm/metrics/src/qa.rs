//! SQuAD v1.1 answer normalization, exact match and token F1.

use rustc_hash::FxHashMap;

use crate::f_measure;

/// SQuAD v1.1 `normalize_answer`: lowercase, remove ASCII punctuation (Python
/// `string.punctuation`), remove the articles `a`/`an`/`the` as whole words,
/// collapse whitespace.
///
/// Precisely, in order: lowercase (full Unicode mapping); delete every
/// character of ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``; replace every maximal run
/// of alphanumeric characters equal to `a`, `an` or `the` by a space; join the
/// whitespace tokens with single spaces (no leading or trailing space).
pub fn normalize_answer(s: &str) -> String {
    let without_punct: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();

    // Remove articles: the equivalent of `re.sub(r'\b(a|an|the)\b', ' ', text)`
    // once '_' is gone, a word being a maximal run of alphanumeric characters.
    let mut without_articles = String::with_capacity(without_punct.len());
    let mut rest = without_punct.as_str();
    while let Some(start) = rest.find(char::is_alphanumeric) {
        without_articles.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let word = &rest[..end];
        if matches!(word, "a" | "an" | "the") {
            without_articles.push(' ');
        } else {
            without_articles.push_str(word);
        }
        rest = &rest[end..];
    }
    without_articles.push_str(rest);

    without_articles
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1.0` when [`normalize_answer`] of both sides is equal, else `0.0`.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    if normalize_answer(prediction) == normalize_answer(gold) {
        1.0
    } else {
        0.0
    }
}

/// SQuAD token F1 (multiset overlap of the whitespace tokens of the
/// normalized answers); when either side has no token: `1.0` if both have
/// none, else `0.0`.
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let prediction = normalize_answer(prediction);
    let gold = normalize_answer(gold);
    let pred_tokens: Vec<&str> = prediction.split_whitespace().collect();
    let gold_tokens: Vec<&str> = gold.split_whitespace().collect();
    if pred_tokens.is_empty() || gold_tokens.is_empty() {
        return if pred_tokens.is_empty() && gold_tokens.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut gold_counts: FxHashMap<&str, usize> = FxHashMap::default();
    for &t in &gold_tokens {
        *gold_counts.entry(t).or_insert(0) += 1;
    }
    let mut common = 0usize;
    for t in &pred_tokens {
        if let Some(remaining) = gold_counts.get_mut(t)
            && *remaining > 0
        {
            *remaining -= 1;
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / pred_tokens.len() as f64;
    let recall = common as f64 / gold_tokens.len() as f64;
    f_measure(precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn normalization_lowercases_strips_punctuation_articles_and_spaces() {
        assert_eq!(
            normalize_answer("  The  Eiffel-Tower, in (Paris)!  "),
            "eiffeltower in paris"
        );
    }

    #[test]
    fn articles_are_removed_only_as_whole_words() {
        assert_eq!(
            normalize_answer("a cat and an anteater theme the end"),
            "cat and anteater theme end"
        );
        assert_eq!(normalize_answer("A"), "");
        assert_eq!(normalize_answer("An"), "");
    }

    #[test]
    fn punctuation_is_removed_before_articles() {
        // "(a)" → "a" → article → "" ; "the's" → "thes" (not an article)
        assert_eq!(normalize_answer("(a)"), "");
        assert_eq!(normalize_answer("the's"), "thes");
        // "a.b" → "ab"; "a-the" → "athe"
        assert_eq!(normalize_answer("a.b a-the"), "ab athe");
    }

    #[test]
    fn underscore_is_punctuation() {
        // "_the_" → "the" → article removed
        assert_eq!(normalize_answer("_the_ cat"), "cat");
    }

    #[test]
    fn unicode_letters_are_word_characters() {
        // "théa" is one word, not the article "the" followed by "a".
        assert_eq!(normalize_answer("Théa the été"), "théa été");
        // Non-ASCII punctuation is kept.
        assert_eq!(normalize_answer("«yes»"), "«yes»");
    }

    #[test]
    fn digits_are_word_characters() {
        assert_eq!(normalize_answer("2a the2 a 2"), "2a the2 2");
    }

    #[test]
    fn empty_and_punctuation_only_normalize_to_empty() {
        assert_eq!(normalize_answer(""), "");
        assert_eq!(normalize_answer("?!..."), "");
    }

    #[test]
    fn exact_match_after_normalization() {
        assert_eq!(exact_match("The Cat.", "cat"), 1.0);
        assert_eq!(exact_match("cat", "dog"), 0.0);
        assert_eq!(exact_match("", "the"), 1.0); // both normalize to ""
    }

    #[test]
    fn identical_answers_have_f1_one() {
        assert_eq!(token_f1("Paris, France", "paris france"), 1.0);
    }

    #[test]
    fn empty_sides_follow_the_squad_v2_rule() {
        assert_eq!(token_f1("", ""), 1.0);
        assert_eq!(token_f1("the", "?!"), 1.0); // both normalize to no token
        assert_eq!(token_f1("", "cat"), 0.0);
        assert_eq!(token_f1("cat", "a"), 0.0);
    }

    #[test]
    fn zero_overlap_has_f1_zero() {
        assert_eq!(token_f1("red car", "blue bike"), 0.0);
    }

    #[test]
    fn partial_overlap_hand_computed() {
        // pred [big, red, car], gold [red, car, is, fast]: common 2
        // P = 2/3, R = 2/4 → F1 = 2·(2/3)(1/2)/(2/3 + 1/2) = (2/3)/(7/6) = 4/7
        assert!(close(
            token_f1("the big red car", "red car is fast"),
            4.0 / 7.0
        ));
    }

    #[test]
    fn overlap_is_a_multiset_intersection() {
        // pred [no, no, no], gold [no]: common = min(3, 1) = 1
        // P = 1/3, R = 1 → F1 = (2/3)/(4/3) = 1/2
        assert!(close(token_f1("no no no", "no"), 0.5));
    }
}
