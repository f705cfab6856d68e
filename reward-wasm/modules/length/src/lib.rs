//! `builtin:length` — word, sentence and character counts of the response (see
//! `reward_metrics::length`).

use reward_metrics::length::length;
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Length;

impl Scorer for Length {
    fn info() -> Info {
        // Length is a cost in ALaRM's verbosity analysis, hence lower-is-better.
        Info::new(
            "length",
            env!("CARGO_PKG_VERSION"),
            "Words, sentences and characters of the response.",
        )
        .metric(Metric::lower_is_better("words", "Whitespace-separated tokens."))
        .metric(Metric::lower_is_better(
            "sentences",
            "Segments ended by . ! or ? before whitespace or the end, with an alphanumeric character.",
        ))
        .metric(Metric::lower_is_better("characters", "Unicode scalar values."))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        let stats = length(&sample.response);
        Ok(vec![
            Some(stats.words as f64),
            Some(stats.sentences as f64),
            Some(stats.characters as f64),
        ])
    }
}

export_scorer!(Length);
