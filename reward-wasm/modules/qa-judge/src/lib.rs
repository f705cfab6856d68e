//! `builtin:qa-judge` — a pairwise judge for long-form answers grounded in passages (the
//! ALaRM comparison's judge, deterministic): the answer whose SQuAD token F1 against the
//! reference is higher by more than [`MARGIN`] wins; otherwise the answer whose sentences
//! are better grounded in the `passages` field (the mean of `builtin:grounding`'s
//! per-sentence shares, the prompt standing in when there is no such field) by more than
//! [`MARGIN`]; otherwise a tie. It needs a reference.

use reward_metrics::{grounding::grounding, qa::token_f1};
use reward_sdk::{Info, Judge, Sample, Verdict, export_judge};

/// Differences up to this are ties: a word or two of F1 on a 50-word answer.
const MARGIN: f64 = 0.02;

struct QaJudge;

/// The mean per-sentence grounding of a response (0 when no sentence has a content word).
fn grounded(sample: &Sample) -> f64 {
    let source = sample
        .fields
        .iter()
        .find(|(k, _)| k == "passages")
        .map_or(sample.prompt.as_str(), |(_, v)| v.as_str());
    let g = grounding(&sample.response, source);
    if g.is_empty() {
        0.0
    } else {
        g.iter().map(|(_, v)| v).sum::<f64>() / g.len() as f64
    }
}

fn verdict(delta: f64) -> Option<Verdict> {
    if delta > MARGIN {
        Some(Verdict::First)
    } else if delta < -MARGIN {
        Some(Verdict::Second)
    } else {
        None
    }
}

impl Judge for QaJudge {
    fn info() -> Info {
        Info::new(
            "qa-judge",
            env!("CARGO_PKG_VERSION"),
            "Prefers the answer with the higher token F1 against the reference (by more than \
             0.02), then the one better grounded in the passages, else a tie.",
        )
    }

    fn compare(first: Sample, second: Sample) -> Result<Verdict, String> {
        let reference = first
            .reference
            .as_deref()
            .or(second.reference.as_deref())
            .ok_or_else(|| "qa-judge needs a reference answer on the samples".to_string())?;
        let f1 = token_f1(&first.response, reference) - token_f1(&second.response, reference);
        Ok(verdict(f1)
            .or_else(|| verdict(grounded(&first) - grounded(&second)))
            .unwrap_or(Verdict::Tie))
    }
}

export_judge!(QaJudge);
