//! Task rewards on tokens: where a span's value lands, and how a sample's rewards combine
//! into one reward per completion token (ALaRM's `reward_type` modes).
//!
//! # Which token gets a span
//! A span `(end, value)` is about the response text ending at byte `end` (exclusive).
//! Token `i` covers the bytes from the end of the decoded text of tokens `..i` to the end of
//! that of tokens `..=i` ([`token_ends`]); the span goes to the token covering byte
//! `end − 1`, i.e. the first token whose decoded prefix reaches `end` bytes:
//! - a character split over several byte-level tokens counts as decoded only once it is
//!   complete (a prefix ending in a partial character is measured without it), so a span
//!   ending on that character lands on the token that completes it;
//! - `end = 0` (a span about nothing) lands on the first token;
//! - an `end` past the decoded completion (the text the rewards saw was never longer, but a
//!   module may count differently after a stop string was cut) lands on the last token.
//!
//! Sequence-level rewards land on the last completion token, as TRL and ALaRM place them.
//!
//! # Combining (`combine`)
//! With w_k the rewards' weights, a_t = Σ_k w_k·(reward k's value placed at t), and h the
//! holistic reward's value (after its transform) with weight W_h:
//! - `sum`: a_t (every reward, the holistic one too: ALaRM's `weighted_sum`);
//! - `holistic_only`: W_h·h on the last token;
//! - `aspect_only`: a_t without the holistic reward;
//! - `hierarchical`: `holistic_only` when h < θ, otherwise `sum`.
//!
//! A `None` value adds nothing; a `None` holistic value counts as below θ, so such a
//! sample gets no task reward under `hierarchical` and `holistic_only`. With
//! `short_response_penalty`, a completion of at most 2 tokens gets −10·W_h on its last
//! token and nothing else (ALaRM's rule).

use super::config::Combine;
use crate::error::Result;
use crate::load::tokenizer::Tokenizer;

/// Per completion token, the byte length of the decoded completion up to and including it
/// (a trailing partial character not counted; never decreasing).
pub fn token_ends(tok: &Tokenizer, tokens: &[u32]) -> Result<Vec<usize>> {
    let mut ends = Vec::with_capacity(tokens.len());
    let mut last = 0;
    for i in 1..=tokens.len() {
        let text = tok.decode(&tokens[..i], true)?;
        let complete = text.trim_end_matches('\u{FFFD}').len();
        last = last.max(complete);
        ends.push(last);
    }
    Ok(ends)
}

/// The token a span ending at byte `end` lands on (see the module docs); `None` for an
/// empty completion.
pub fn token_of(end: usize, ends: &[usize]) -> Option<usize> {
    if ends.is_empty() {
        return None;
    }
    let i = ends.partition_point(|&e| e < end.max(1));
    Some(i.min(ends.len() - 1))
}

/// How a run's rewards combine.
#[derive(Debug, Clone, PartialEq)]
pub struct Combination {
    /// The mode.
    pub combine: Combine,
    /// Per reward, its weight.
    pub weights: Vec<f64>,
    /// Per reward, whether its spans are placed (token level).
    pub token_level: Vec<bool>,
    /// The holistic reward, when one is marked.
    pub holistic: Option<usize>,
    /// `hierarchical`'s θ.
    pub threshold: f64,
    /// ALaRM's −10·W_h for completions of at most 2 tokens.
    pub short_response_penalty: bool,
}

impl Combination {
    /// One task reward per completion token for a sample with per-reward `values`, the
    /// token-level rewards' `spans` (`(end byte, value)`, per reward) and its tokens'
    /// [`token_ends`].
    pub fn place(
        &self,
        values: &[Option<f64>],
        spans: &[Vec<(usize, f64)>],
        ends: &[usize],
    ) -> Vec<f64> {
        let mut out = vec![0.0; ends.len()];
        let Some(last) = ends.len().checked_sub(1) else {
            return out;
        };
        let w_h = self.holistic.map_or(0.0, |h| self.weights[h]);
        if self.short_response_penalty && ends.len() <= 2 {
            out[last] = -10.0 * w_h;
            return out;
        }
        let h = self.holistic.and_then(|h| values.get(h).copied().flatten());
        let holistic_alone = match self.combine {
            Combine::HolisticOnly => true,
            Combine::Hierarchical => h.is_none_or(|h| h < self.threshold),
            Combine::Sum | Combine::AspectOnly => false,
        };
        if holistic_alone {
            out[last] = w_h * h.unwrap_or(0.0);
            return out;
        }
        for (k, &w) in self.weights.iter().enumerate() {
            if self.combine == Combine::AspectOnly && self.holistic == Some(k) {
                continue;
            }
            if self.token_level[k] {
                for &(end, v) in spans.get(k).map_or(&[][..], Vec::as_slice) {
                    if let Some(i) = token_of(end, ends) {
                        out[i] += w * v;
                    }
                }
            } else if let Some(v) = values.get(k).copied().flatten() {
                out[last] += w * v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(combine: Combine) -> Combination {
        // Reward 0: holistic (W_h 5), sequence level; reward 1: a token-level aspect.
        Combination {
            combine,
            weights: vec![5.0, 1.0],
            token_level: vec![false, true],
            holistic: Some(0),
            threshold: 0.6,
            short_response_penalty: true,
        }
    }

    /// ALaRM's rule written out directly: hierarchical = holistic-only below θ, else the
    /// weighted sum of aspects plus W_h·h on the last token.
    fn transcription(mode: &str, h: f64, aspects: &[f64], w_h: f64, theta: f64) -> Vec<f64> {
        let n = aspects.len();
        let mut r = vec![0.0; n];
        let holistic = |r: &mut Vec<f64>| r[n - 1] += w_h * h;
        match mode {
            "holistic_only" => holistic(&mut r),
            "aspect_only" => r.copy_from_slice(aspects),
            "weighted_sum" => {
                r.copy_from_slice(aspects);
                holistic(&mut r);
            }
            "hierarchical" if h < theta => holistic(&mut r),
            "hierarchical" => {
                r.copy_from_slice(aspects);
                holistic(&mut r);
            }
            _ => unreachable!(),
        }
        if n <= 2 {
            r = vec![0.0; n];
            r[n - 1] = -10.0 * w_h;
        }
        r
    }

    #[test]
    fn every_mode_matches_the_transcription_of_alarms_rule() {
        // Four tokens ending at bytes 3, 8, 12, 20; spans end at 8 and 20 (sentence ends).
        let ends = [3, 8, 12, 20];
        let spans = vec![vec![], vec![(8, 0.5), (20, -0.25)]];
        let aspects = [0.0, 0.5, 0.0, -0.25];
        for (mode, combine) in [
            ("holistic_only", Combine::HolisticOnly),
            ("aspect_only", Combine::AspectOnly),
            ("weighted_sum", Combine::Sum),
            ("hierarchical", Combine::Hierarchical),
        ] {
            for h in [0.2, 0.6, 0.9] {
                let got = alarm(combine).place(&[Some(h), None], &spans, &ends);
                assert_eq!(
                    got,
                    transcription(mode, h, &aspects, 5.0, 0.6),
                    "{mode} h={h}"
                );
            }
        }
        // Two tokens: the penalty, whatever the mode.
        let got = alarm(Combine::Sum).place(&[Some(1.0), None], &spans, &[3, 8]);
        assert_eq!(
            got,
            transcription("weighted_sum", 1.0, &[0.0, 0.5], 5.0, 0.6)
        );
    }

    #[test]
    fn a_missing_holistic_value_gates_everything_off() {
        let got = alarm(Combine::Hierarchical).place(
            &[None, None],
            &[vec![], vec![(3, 1.0)]],
            &[3, 8, 9],
        );
        assert_eq!(got, vec![0.0; 3]);
    }

    #[test]
    fn spans_land_on_the_token_covering_their_last_byte() {
        let ends = [3, 3, 8, 12];
        assert_eq!(token_of(0, &ends), Some(0));
        assert_eq!(token_of(3, &ends), Some(0));
        assert_eq!(token_of(4, &ends), Some(2));
        assert_eq!(token_of(12, &ends), Some(3));
        assert_eq!(token_of(99, &ends), Some(3));
        assert_eq!(token_of(1, &[]), None);
    }
}
