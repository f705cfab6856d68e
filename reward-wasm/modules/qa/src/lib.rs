//! `builtin:qa` — SQuAD exact match and token F1 of the whole response against the
//! reference (see `reward_metrics::qa`).

use reward_metrics::qa::{exact_match, token_f1};
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Qa;

impl Scorer for Qa {
    fn info() -> Info {
        Info::new(
            "qa",
            env!("CARGO_PKG_VERSION"),
            "SQuAD-style exact match and token F1 of the response against the reference.",
        )
        .metric(Metric::higher_is_better(
            "exact_match",
            "1 when the SQuAD-normalized response equals the normalized reference.",
        ))
        .metric(Metric::higher_is_better(
            "f1",
            "Token-multiset F1 after SQuAD normalization.",
        ))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        Ok(match sample.reference.as_deref() {
            Some(gold) => vec![
                Some(exact_match(&sample.response, gold)),
                Some(token_f1(&sample.response, gold)),
            ],
            None => vec![None, None],
        })
    }
}

export_scorer!(Qa);
