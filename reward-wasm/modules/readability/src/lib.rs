//! `builtin:readability` — Flesch–Kincaid grade level, as ALaRM's MT readability
//! reward (see `reward_metrics::readability` for the syllable rule).

use reward_metrics::readability::flesch_kincaid_grade;
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Readability;

impl Scorer for Readability {
    fn info() -> Info {
        Info::new(
            "readability",
            env!("CARGO_PKG_VERSION"),
            "Flesch-Kincaid grade level of the response.",
        )
        .metric(Metric::lower_is_better(
            "fk_grade",
            "0.39 words/sentence + 11.8 syllables/word - 15.59; null when the response has no word.",
        ))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        Ok(vec![flesch_kincaid_grade(&sample.response)])
    }
}

export_scorer!(Readability);
