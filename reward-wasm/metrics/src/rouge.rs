//! ROUGE-1, ROUGE-2 and ROUGE-L F1, matching Google's `rouge-score` package
//! (`RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=False)`,
//! `fmeasure`).

use rustc_hash::FxHashMap;

use crate::f_measure;

/// F1 scores of one candidate against one reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RougeScores {
    /// ROUGE-1 F1 (clipped unigram overlap).
    pub rouge1: f64,
    /// ROUGE-2 F1 (clipped bigram overlap).
    pub rouge2: f64,
    /// ROUGE-L F1 (longest common token subsequence).
    pub rouge_l: f64,
}

/// `rouge-score`'s default tokenization (no stemming): lowercase the whole
/// text (full Unicode mapping), then every maximal run of characters outside
/// `[a-z0-9]` is a separator; empty tokens are dropped.
///
/// Non-ASCII letters and digits are therefore separators: `"Café"` →
/// `["caf"]`, `"日本"` → `[]`. Lowercasing happens first, so a character
/// whose lowercase form is ASCII (the Kelvin sign `K` → `k`) joins a token.
pub fn tokenize(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Counts of every n-gram of `tokens`.
fn ngram_counts(tokens: &[String], n: usize) -> FxHashMap<&[String], usize> {
    let mut counts = FxHashMap::default();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-N F1 with clipped overlap, as `rouge_scorer._score_ngrams`.
fn rouge_n(candidate: &[String], reference: &[String], n: usize) -> f64 {
    let cand = ngram_counts(candidate, n);
    let refe = ngram_counts(reference, n);
    let overlap: usize = cand
        .iter()
        .map(|(gram, &c)| refe.get(gram).map_or(0, |&r| c.min(r)))
        .sum();
    let cand_total = candidate.len().saturating_sub(n - 1);
    let ref_total = reference.len().saturating_sub(n - 1);
    let precision = overlap as f64 / cand_total.max(1) as f64;
    let recall = overlap as f64 / ref_total.max(1) as f64;
    f_measure(precision, recall)
}

/// Length of the longest common subsequence of two token lists.
fn lcs_length(a: &[String], b: &[String]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// ROUGE-L F1, as `rouge_scorer._score_lcs`.
fn rouge_l(candidate: &[String], reference: &[String]) -> f64 {
    if candidate.is_empty() || reference.is_empty() {
        return 0.0;
    }
    let lcs = lcs_length(reference, candidate) as f64;
    f_measure(lcs / candidate.len() as f64, lcs / reference.len() as f64)
}

/// F1 of ROUGE-1, ROUGE-2 (clipped n-gram overlap) and ROUGE-L (LCS),
/// candidate vs reference, on [`tokenize`]d text. `F = 2PR / (P + R)`, `0.0`
/// when the overlap is 0 or either side has no token / n-gram.
pub fn rouge(candidate: &str, reference: &str) -> RougeScores {
    let cand = tokenize(candidate);
    let refe = tokenize(reference);
    RougeScores {
        rouge1: rouge_n(&cand, &refe, 1),
        rouge2: rouge_n(&cand, &refe, 2),
        rouge_l: rouge_l(&cand, &refe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn tokenize_lowercases_and_splits_on_non_alphanumerics() {
        assert_eq!(
            tokenize("Hello, World! It's 2024."),
            ["hello", "world", "it", "s", "2024"]
        );
    }

    #[test]
    fn tokenize_treats_non_ascii_letters_as_separators() {
        assert_eq!(tokenize("Café Ωmega 日本"), ["caf", "mega"]);
        assert_eq!(tokenize("naïve"), ["na", "ve"]);
    }

    #[test]
    fn tokenize_lowercases_before_filtering() {
        // U+212A KELVIN SIGN lowercases to ASCII 'k'.
        assert_eq!(tokenize("\u{212A}ey"), ["key"]);
    }

    #[test]
    fn tokenize_of_punctuation_only_is_empty() {
        assert!(tokenize("?!... --").is_empty());
        assert!(tokenize("").is_empty());
    }

    #[test]
    fn identical_strings_score_one() {
        let s = rouge("The cat sat on the mat.", "the CAT sat on the mat");
        assert_eq!(
            s,
            RougeScores {
                rouge1: 1.0,
                rouge2: 1.0,
                rouge_l: 1.0
            }
        );
    }

    #[test]
    fn zero_overlap_scores_zero() {
        let s = rouge("alpha beta", "gamma delta");
        assert_eq!((s.rouge1, s.rouge2, s.rouge_l), (0.0, 0.0, 0.0));
    }

    #[test]
    fn empty_side_scores_zero() {
        let zero = RougeScores {
            rouge1: 0.0,
            rouge2: 0.0,
            rouge_l: 0.0,
        };
        assert_eq!(rouge("", "the cat"), zero);
        assert_eq!(rouge("the cat", "..."), zero);
        assert_eq!(rouge("", ""), zero);
    }

    #[test]
    fn single_tokens_have_no_bigram() {
        // rouge1 = 1 (same token); no bigram on either side → rouge2 = 0.
        let s = rouge("Yes.", "yes");
        assert_eq!((s.rouge1, s.rouge2, s.rouge_l), (1.0, 0.0, 1.0));
    }

    #[test]
    fn partial_overlap_hand_computed() {
        // cand = [the, cat, sat], ref = [the, cat, ran, away]
        // R1: overlap 2, P = 2/3, R = 2/4 → F = 2·(2/3)(1/2)/(2/3+1/2) = (2/3)/(7/6) = 4/7
        // R2: cand bigrams (the cat)(cat sat), ref (the cat)(cat ran)(ran away):
        //     overlap 1, P = 1/2, R = 1/3 → F = (1/3)/(5/6) = 2/5
        // RL: LCS = 2 (the cat), same as R1 → 4/7
        let s = rouge("the cat sat", "the cat ran away");
        assert!(close(s.rouge1, 4.0 / 7.0));
        assert!(close(s.rouge2, 0.4));
        assert!(close(s.rouge_l, 4.0 / 7.0));
    }

    #[test]
    fn overlap_is_clipped_by_counts() {
        // cand = [a, a, a], ref = [a, b]: R1 overlap min(3, 1) = 1,
        // P = 1/3, R = 1/2 → F = (1/3)/(5/6) = 2/5
        // R2: cand bigrams (a a)×2, ref (a b) → 0
        // RL: LCS 1 → same as R1 = 2/5
        let s = rouge("a a a", "a b");
        assert!(close(s.rouge1, 0.4));
        assert_eq!(s.rouge2, 0.0);
        assert!(close(s.rouge_l, 0.4));
    }

    #[test]
    fn lcs_respects_order() {
        // cand = [c, b, a], ref = [a, b, c]: R1 = 1 (all unigrams match);
        // R2 = 0; LCS = 1 → P = R = 1/3 → F = 1/3
        let s = rouge("c b a", "a b c");
        assert_eq!(s.rouge1, 1.0);
        assert_eq!(s.rouge2, 0.0);
        assert!(close(s.rouge_l, 1.0 / 3.0));
    }

    #[test]
    fn scores_are_symmetric() {
        let a = rouge("the quick brown fox", "a quick brown dog jumps");
        let b = rouge("a quick brown dog jumps", "the quick brown fox");
        assert_eq!(a, b);
    }
}
