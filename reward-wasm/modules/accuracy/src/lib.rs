//! `builtin:accuracy` — MaRio's label accuracy (see `reward_metrics::accuracy`).

use reward_metrics::accuracy::accuracy;
use reward_sdk::{Info, Metric, Row, Sample, Scorer, export_scorer};

struct Accuracy;

impl Scorer for Accuracy {
    fn info() -> Info {
        Info::new(
            "accuracy",
            env!("CARGO_PKG_VERSION"),
            "MaRio label accuracy: the label after the first 'So the answer is ' equals the reference's.",
        )
        .metric(Metric::higher_is_better(
            "accuracy",
            "1 when the response's label equals the reference label, else 0; null without a reference.",
        ))
    }

    fn score_sample(sample: &Sample) -> Result<Row, String> {
        Ok(vec![
            sample
                .reference
                .as_deref()
                .map(|reference| accuracy(&sample.response, reference)),
        ])
    }
}

export_scorer!(Accuracy);
