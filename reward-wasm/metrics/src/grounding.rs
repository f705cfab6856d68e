//! Grounding per sentence: how much of what each sentence of a response says is
//! supported, word for word, by a source text (the retrieved passages). A cheap
//! lexical stand-in for an attribution model, as a span reward.
//!
//! Words are the maximal runs of alphanumeric characters, each lower-cased
//! ([`words`]); content words are the words not in [`STOP_WORDS`]; sentences are
//! [`crate::sentences::split`]'s.

use std::ops::Range;

use rustc_hash::FxHashSet;

use crate::sentences;

/// English function words, which say nothing about grounding, plus the pieces
/// that apostrophes leave (`don't` → `don`, `t`; `it's` → `it`, `s`). Sorted, so
/// lookups are a binary search.
pub const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "being", "both", "but", "by", "can", "could", "d", "did", "do", "does", "each", "for", "from",
    "had", "has", "have", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "just", "ll", "m", "may", "me", "might", "more", "most", "must", "my", "no",
    "not", "of", "on", "or", "other", "our", "re", "s", "shall", "she", "should", "so", "some",
    "such", "t", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "us", "ve", "very", "was", "we", "were", "what", "when", "where", "which",
    "who", "whom", "why", "will", "with", "would", "you", "your",
];

/// Whether `word` (already lower-cased) is in [`STOP_WORDS`].
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// The words of `text`: maximal runs of alphanumeric characters
/// ([`char::is_alphanumeric`]), each lower-cased ([`str::to_lowercase`]).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Per sentence of `response`, the share of its content words (words not in
/// [`STOP_WORDS`], counted with repetition) that occur among the words of
/// `source`, in `[0, 1]`. Sentences without a content word are left out; the
/// rest come in order, each with its byte range in `response` (from
/// [`sentences::split`]: the terminator included, trailing whitespace not).
pub fn grounding(response: &str, source: &str) -> Vec<(Range<usize>, f64)> {
    let known: FxHashSet<String> = words(source).collect();
    sentences::split(response)
        .into_iter()
        .filter_map(|range| {
            let (mut content, mut grounded) = (0usize, 0usize);
            for word in words(&response[range.clone()]).filter(|w| !is_stop_word(w)) {
                content += 1;
                grounded += usize::from(known.contains(&word));
            }
            (content > 0).then(|| (range, grounded as f64 / content as f64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_word_list_is_sorted_and_lower_case() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STOP_WORDS.iter().all(|w| w.to_lowercase() == *w));
    }

    #[test]
    fn words_are_lower_cased_alphanumeric_runs() {
        let w: Vec<String> = words("Don't PANIC: 42 Ωmega-3, café!").collect();
        assert_eq!(w, ["don", "t", "panic", "42", "ωmega", "3", "café"]);
    }

    #[test]
    fn each_sentence_gets_its_share_of_grounded_content_words() {
        let source = "The Eiffel Tower is in Paris, France. It opened in 1889.";
        let response = "The tower is in Paris. It was built by aliens from Mars! \
                        Paris has aliens. It is what it is.";
        let spans = grounding(response, source);
        let pieces: Vec<(&str, f64)> = spans
            .iter()
            .map(|(r, v)| (&response[r.clone()], *v))
            .collect();
        assert_eq!(
            pieces,
            [
                // content: tower, paris; both in the source → 2/2
                ("The tower is in Paris.", 1.0),
                // content: built, aliens, mars (it, was, by, from are stop words) → 0/3
                ("It was built by aliens from Mars!", 0.0),
                // content: paris, aliens (has is a stop word) → 1/2
                ("Paris has aliens.", 0.5),
                // "It is what it is." has only stop words: no span.
            ]
        );
    }

    #[test]
    fn repeated_words_count_each_time() {
        // content: paris, paris, london → paris twice grounded → 2/3
        let spans = grounding("Paris, Paris, London", "paris");
        assert_eq!(spans, vec![(0..20, 2.0 / 3.0)]);
    }

    #[test]
    fn case_and_multi_byte_words_match() {
        // "Ça" → "ça", "Très" → "très"; source has "très" and "ÇA" → "ça".
        let spans = grounding("Ça va. Très bien!", "ÇA, très");
        // "Ça va.": ça (grounded), va → 1/2; "Très bien!": très, bien → 1/2.
        assert_eq!(spans, vec![(0..7, 0.5), (8..19, 0.5)]);
    }

    #[test]
    fn an_empty_response_or_source() {
        assert!(grounding("", "anything").is_empty());
        assert_eq!(grounding("Cats purr.", ""), vec![(0..10, 0.0)]);
    }
}
