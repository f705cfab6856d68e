//! `builtin:diversity` — MaRio's n-gram diversity of the rationale (see
//! `reward_metrics::diversity`).

use reward_metrics::diversity::diversity;
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Diversity;

impl Scorer for Diversity {
    fn info() -> Info {
        Info::new(
            "diversity",
            env!("CARGO_PKG_VERSION"),
            "MaRio diversity of the rationale: product over n=2..4 of unique/total n-grams.",
        )
        .metric(Metric::higher_is_better(
            "diversity",
            "Product of (1 - rep_n) for n = 2, 3, 4 over whitespace tokens of the rationale.",
        ))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        Ok(vec![Some(diversity(&sample.response))])
    }
}

export_scorer!(Diversity);
