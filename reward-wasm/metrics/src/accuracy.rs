//! Answer accuracy: does the response's final answer equal the reference label?
//!
//! The answer is whatever follows the answer phrase `"So the answer is "` (with
//! its trailing space, case-sensitive), cut before any second occurrence of
//! the phrase, trimmed of whitespace, stripped of `'.'` at both ends and
//! lowercased. See the crate documentation for the shared vocabulary.

/// The answer phrase, including its trailing space.
const PHRASE: &str = "So the answer is ";

/// Trim whitespace, then strip `'.'` at both ends, then lowercase.
fn clean_label(text: &str) -> String {
    text.trim().trim_matches('.').to_lowercase()
}

/// Text after the first `"So the answer is "` and before any second
/// occurrence, trimmed of whitespace, then `'.'` stripped at both ends,
/// lowercased. `None` when the phrase is absent.
///
/// The phrase includes its trailing space, so `"So the answer is: (F)"` has no
/// answer (`None`), while `"So the answer is : (F)."` yields `": (f)"`.
pub fn extract_answer(text: &str) -> Option<String> {
    let start = text.find(PHRASE)? + PHRASE.len();
    let rest = &text[start..];
    let answer = match rest.find(PHRASE) {
        Some(end) => &rest[..end],
        None => rest,
    };
    Some(clean_label(answer))
}

/// The reference's label: [`extract_answer`]`(reference)` when it has the
/// phrase, else the whole reference trimmed, `'.'`-stripped at both ends,
/// lowercased.
pub fn reference_label(reference: &str) -> String {
    extract_answer(reference).unwrap_or_else(|| clean_label(reference))
}

/// `1.0` when the response's label ([`extract_answer`]) equals
/// [`reference_label`]`(reference)`, else `0.0`; a response without the
/// phrase scores `0.0`.
pub fn accuracy(response: &str, reference: &str) -> f64 {
    match extract_answer(response) {
        Some(label) if label == reference_label(reference) => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_text_after_the_phrase_trimmed_dot_stripped_lowercased() {
        assert_eq!(
            extract_answer("Birds fly. So the answer is  Yes. ").as_deref(),
            Some("yes")
        );
    }

    #[test]
    fn no_phrase_means_no_answer_and_zero_accuracy() {
        assert_eq!(extract_answer("The answer is yes."), None);
        assert_eq!(accuracy("The answer is yes.", "yes"), 0.0);
    }

    #[test]
    fn empty_text_has_no_answer() {
        assert_eq!(extract_answer(""), None);
        assert_eq!(accuracy("", ""), 0.0);
    }

    #[test]
    fn phrase_is_case_sensitive() {
        assert_eq!(extract_answer("so the answer is yes"), None);
    }

    #[test]
    fn repeated_phrase_keeps_only_the_text_between_first_and_second() {
        let text = "A. So the answer is (b). Hmm. So the answer is (c).";
        // rest after first phrase = "(b). Hmm. " → trim "(b). Hmm." → strip '.' "(b). Hmm"
        assert_eq!(extract_answer(text).as_deref(), Some("(b). hmm"));
    }

    #[test]
    fn phrase_immediately_repeated_gives_empty_label() {
        assert_eq!(
            extract_answer("So the answer is So the answer is yes").as_deref(),
            Some("")
        );
    }

    #[test]
    fn colon_right_after_is_means_the_phrase_is_absent() {
        // "is:" — the phrase requires a space after "is".
        assert_eq!(extract_answer("So the answer is: (F)"), None);
        assert_eq!(accuracy("So the answer is: (F)", "(f)"), 0.0);
    }

    #[test]
    fn colon_after_the_phrase_stays_part_of_the_label() {
        assert_eq!(
            extract_answer("So the answer is : (F).").as_deref(),
            Some(": (f)")
        );
        assert_eq!(accuracy("So the answer is : (F).", "(F)"), 0.0);
    }

    #[test]
    fn dots_are_stripped_only_at_the_ends_after_trimming() {
        // trim → ". yes ." → strip '.' → " yes " (not trimmed again)
        assert_eq!(
            extract_answer("So the answer is  . yes . ").as_deref(),
            Some(" yes ")
        );
        assert_eq!(extract_answer("So the answer is ...").as_deref(), Some(""));
        assert_eq!(
            extract_answer("So the answer is e.g.").as_deref(),
            Some("e.g")
        );
    }

    #[test]
    fn unicode_labels_are_lowercased_fully() {
        assert_eq!(
            extract_answer("So the answer is ÉTÉ.").as_deref(),
            Some("été")
        );
        assert_eq!(accuracy("So the answer is ÉTÉ.", "été"), 1.0);
    }

    #[test]
    fn reference_without_phrase_is_cleaned_whole() {
        assert_eq!(reference_label("  (A).\n"), "(a)");
        assert_eq!(reference_label("Yes"), "yes");
    }

    #[test]
    fn reference_with_phrase_uses_the_extracted_answer() {
        assert_eq!(reference_label("Because. So the answer is No."), "no");
    }

    #[test]
    fn matching_labels_score_one_and_others_zero() {
        assert_eq!(accuracy("X. So the answer is (B).", "(b)"), 1.0);
        assert_eq!(accuracy("X. So the answer is (B).", "(A)"), 0.0);
        assert_eq!(
            accuracy("So the answer is yes.", "So the answer is YES"),
            1.0
        );
    }

    #[test]
    fn empty_label_matches_empty_reference() {
        // "So the answer is ." → "." → "" ; reference "" → ""
        assert_eq!(accuracy("So the answer is .", ""), 1.0);
        assert_eq!(accuracy("So the answer is .", "yes"), 0.0);
    }

    #[test]
    fn punctuation_only_response_scores_zero() {
        assert_eq!(accuracy("?!...", "?!"), 0.0);
    }
}
