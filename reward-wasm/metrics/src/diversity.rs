//! MaRio diversity: how little the rationale repeats its own n-grams.
//!
//! The rationale is the text before the first `"So the answer is"` (no
//! trailing space required), trimmed. Its whitespace tokens give, for
//! `n = 2, 3, 4`, `rep_n = 1 - unique_n / total_n` (`0` when there is no
//! n-gram), and `diversity = Π (1 - rep_n)`.

use rustc_hash::FxHashSet;

/// The phrase that ends the rationale (no trailing space).
const PHRASE: &str = "So the answer is";

/// Text before the first `"So the answer is"` (no trailing space required),
/// trimmed; the whole text trimmed when absent.
pub fn rationale(response: &str) -> &str {
    match response.find(PHRASE) {
        Some(end) => response[..end].trim(),
        None => response.trim(),
    }
}

/// MaRio diversity of [`rationale`]`(response)`: whitespace tokens; for
/// `n = 2, 3, 4` `rep_n = 1 - unique/total` n-grams; if some `n` has no
/// n-gram, it and every larger `n` count as rep 0;
/// `diversity = (1 - rep_2)(1 - rep_3)(1 - rep_4)`. In `[0, 1]`; a rationale
/// with fewer than two tokens scores `1.0`.
pub fn diversity(response: &str) -> f64 {
    let tokens: Vec<&str> = rationale(response).split_whitespace().collect();
    let mut product = 1.0;
    for n in 2..=4 {
        if tokens.len() < n {
            // No n-gram for this n, hence none for any larger n either: rep 0.
            break;
        }
        let total = tokens.len() - n + 1;
        let unique: FxHashSet<&[&str]> = tokens.windows(n).collect();
        let rep = 1.0 - unique.len() as f64 / total as f64;
        product *= 1.0 - rep;
    }
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn rationale_is_the_trimmed_text_before_the_phrase() {
        assert_eq!(
            rationale("  Birds fly.\n So the answer is yes."),
            "Birds fly."
        );
    }

    #[test]
    fn rationale_phrase_needs_no_trailing_space() {
        assert_eq!(rationale("Birds fly. So the answer is: (a)"), "Birds fly.");
    }

    #[test]
    fn rationale_without_phrase_is_the_whole_text_trimmed() {
        assert_eq!(rationale("\t no phrase here \n"), "no phrase here");
    }

    #[test]
    fn rationale_stops_at_the_first_of_repeated_phrases() {
        assert_eq!(
            rationale("a b So the answer is x So the answer is y"),
            "a b"
        );
    }

    #[test]
    fn empty_text_scores_one() {
        // No token → no n-gram for any n → every rep is 0 → product 1.
        assert_eq!(diversity(""), 1.0);
        assert_eq!(diversity("So the answer is yes."), 1.0);
    }

    #[test]
    fn single_token_scores_one() {
        assert_eq!(diversity("Hello. So the answer is yes."), 1.0);
    }

    #[test]
    fn all_distinct_ngrams_score_one() {
        assert_eq!(diversity("the cat sat on the mat"), 1.0);
    }

    #[test]
    fn repeated_token_is_penalised_per_n() {
        // tokens "a a a a a" (k = 5)
        // n=2: 4 bigrams, 1 unique → 1/4; n=3: 3 trigrams, 1 unique → 1/3;
        // n=4: 2 four-grams, 1 unique → 1/2. Product = 1/4 * 1/3 * 1/2 = 1/24.
        assert!(close(diversity("a a a a a"), 1.0 / 24.0));
    }

    #[test]
    fn missing_larger_ngrams_count_as_no_repetition() {
        // tokens "x x x" (k = 3): n=2: 2 bigrams, 1 unique → 1/2;
        // n=3: 1 trigram, 1 unique → 1; n=4: none → 1. Product = 0.5.
        assert!(close(diversity("x x x"), 0.5));
    }

    #[test]
    fn repeated_sentence_is_penalised() {
        // "A B. A B." tokens: A, B., A, B. (k = 4)
        // bigrams: (A,B.) (B.,A) (A,B.) → 2 unique of 3 → 2/3
        // trigrams: (A,B.,A) (B.,A,B.) → 2/2 = 1; 4-grams: 1/1 = 1.
        assert!(close(diversity("A B. A B."), 2.0 / 3.0));
    }

    #[test]
    fn tokens_are_case_and_punctuation_sensitive() {
        // "a A a" → bigrams (a,A) (A,a): 2 unique of 2; trigram 1/1 → 1.0
        assert_eq!(diversity("a A a"), 1.0);
    }

    #[test]
    fn unicode_tokens_are_compared_exactly() {
        // "été été été" → bigrams 1 unique of 2 → 1/2; trigram 1/1 → 0.5
        assert!(close(diversity("été été été"), 0.5));
    }

    #[test]
    fn punctuation_only_tokens_count_as_tokens() {
        // "! ! ! !" (k = 4): 1/3 * 1/2 * 1/1 = 1/6
        assert!(close(diversity("! ! ! !"), 1.0 / 6.0));
    }
}
